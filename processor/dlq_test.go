package processor_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/processor"
)

func TestDLQAndStatus(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	ctx := context.Background()
	var fail atomic.Bool
	fail.Store(true)
	handled := make(chan string, 10)
	var mux processor.Mux
	must(t, mux.HandleFunc("strict", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		if fail.Load() {
			return processor.Permanent(errors.New("rejected:\nbad input")) // multi-line errors become one header line
		}
		handled <- ev.Meta.Delivery
		return nil
	}))
	cfg := fastConfig()
	p := newProcessor(t, env, cfg, &mux, nil)
	started(t, p)
	for _, d := range []string{"x1", "x2", "x3"} {
		publish(t, env.JS, "issues", d, body(t, "issues.opened", repo{2, 50, "acme/dlq"}, nil))
	}
	waitDeadLetter(t, env, "x3")
	dlq := processor.NewDLQ(env.JS)
	all, err := dlq.List(ctx)
	must(t, err)
	if len(all) != 3 || all[0].Meta.Delivery != "x1" || all[0].Error != "strict: rejected: bad input" {
		t.Fatalf("dead letters %+v", all)
	}
	st, err := processor.ReadStatus(ctx, env.JS, cfg, env.Config.Partitions)
	must(t, err)
	var perPartition uint64
	for _, ps := range st.Partitions {
		if !ps.Exists {
			t.Errorf("partition %d consumer missing", ps.Partition)
		}
		perPartition += ps.DeadLetters
	}
	if st.DeadLetters != 3 || perPartition != 3 || len(st.Partitions) != env.Config.Partitions {
		t.Fatalf("status %+v", st)
	}

	must(t, dlq.Delete(ctx, all[0].ID))
	if _, err := dlq.Get(ctx, all[0].ID); !errors.Is(err, processor.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	fail.Store(false)
	n, err := dlq.ReplayAll(ctx)
	if err != nil || n != 2 {
		t.Fatalf("replay all: %d, %v", n, err)
	}
	got := map[string]bool{}
	for range 2 {
		select {
		case d := <-handled:
			got[d] = true
		case <-time.After(10 * time.Second):
			t.Fatal("replayed events not handled")
		}
	}
	if !got["x2"] || !got["x3"] {
		t.Fatalf("handled %v", got)
	}
	if left, _ := dlq.List(ctx); len(left) != 0 {
		t.Fatalf("left %+v", left)
	}
	// Purge
	fail.Store(true)
	publish(t, env.JS, "issues", "x4", body(t, "issues.opened", repo{2, 50, "acme/dlq"}, nil))
	waitDeadLetter(t, env, "x4")
	must(t, dlq.Purge(ctx))
	if left, _ := dlq.List(ctx); len(left) != 0 {
		t.Fatalf("after purge %+v", left)
	}
	if tok := processor.ReplayDeliveryToken("abc", 7); tok != "abc_r7" || !event.ValidDeliveryID(tok) {
		t.Fatalf("token %q", tok)
	}
}
