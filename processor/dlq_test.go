package processor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hookd/hookd/internal/broker"
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

// TestReplayReconcile: a dead-lettered reconcile event (sent in the bot's name) is still a
// reconcile event when replayed: it reaches the handler that failed, past the bot filter, and
// the handler that had succeeded does not run again.
func TestReplayReconcile(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	ctx := context.Background()
	var failed atomic.Bool
	var steady atomic.Int32
	sources := make(chan string, 10)
	var mux processor.Mux
	must(t, mux.HandleFunc("steady", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		steady.Add(1)
		return nil
	}, processor.AllowBotEvents()))
	must(t, mux.HandleFunc("drift", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		if ev.Meta.Source != event.SourceReconcile {
			return nil
		}
		sources <- ev.Meta.Source
		if failed.CompareAndSwap(false, true) {
			return processor.Permanent(errors.New("rejected"))
		}
		return nil
	}))
	started(t, newProcessor(t, env, fastConfig(), &mux, nil))

	// Stored the way the sweep stores a reconcile event.
	r := repo{1, 71, "acme/recon"}
	m := event.Meta{
		Event: "issues", Action: "reconcile", Delivery: "reconcile-71-1-1700000000", InstallationID: r.inst,
		RepositoryID: r.id, Repository: r.name, Owner: "acme", Sender: "hookd-test[bot]", SenderType: "Bot",
		ReceivedAt: time.Now().UTC(), SecretIndex: -1, Source: event.SourceReconcile,
	}
	b := body(t, "issues.opened", r, func(p map[string]any) { p["action"] = "reconcile" })
	if _, err := broker.PublishOutcome(env.JS.PublishMsg(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: b})); err != nil {
		t.Fatal(err)
	}
	dl := waitDeadLetter(t, env, m.Delivery)
	if n, err := processor.NewDLQ(env.JS).Replay(ctx, dl.ID); err != nil || n != 1 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	for i := range 2 {
		select {
		case <-sources:
		case <-time.After(10 * time.Second):
			t.Fatalf("the failed handler ran %d times, want twice: the replayed reconcile event did not reach it", i)
		}
	}
	if n := steady.Load(); n != 1 {
		t.Fatalf("the handler that had succeeded ran %d times, want once", n)
	}
}

// TestDLQListMany: List reads many dead letters in batches, oldest first, with their headers and
// without their payloads.
func TestDLQListMany(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	ctx := context.Background()
	const n = 700 // more than one batch
	big := bytes.Repeat([]byte("x"), 64<<10)
	for i := range n {
		m := event.Meta{Event: "issues", Action: "opened", Delivery: fmt.Sprintf("many-%d", i), InstallationID: 1, RepositoryID: 2, SecretIndex: -1}
		h := m.Header()
		h.Set(processor.HeaderDLQError, fmt.Sprintf("error %d", i))
		h.Set(processor.HeaderDLQAttempts, "3")
		subj := fmt.Sprintf("%s.0.%s.issues.%s", event.DLQPrefix, m.Tenant().Key(), m.Delivery)
		if _, err := env.JS.PublishMsgAsync(&nats.Msg{Subject: subj, Header: h, Data: big}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-env.JS.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publishing the dead letters took over 30s")
	}
	all, err := processor.NewDLQ(env.JS).List(ctx)
	must(t, err)
	if len(all) != n {
		t.Fatalf("listed %d dead letters, want %d", len(all), n)
	}
	for i, dl := range all {
		if dl.Meta.Delivery != fmt.Sprintf("many-%d", i) || dl.Error != fmt.Sprintf("error %d", i) || dl.Attempts != 3 ||
			dl.Body != nil || dl.Header.Get("Nats-Msg-Size") != "" || (i > 0 && dl.ID <= all[i-1].ID) {
			t.Fatalf("dead letter %d: %+v (%d body bytes)", i, dl.Meta, len(dl.Body))
		}
	}
	dl, err := processor.NewDLQ(env.JS).Get(ctx, all[n-1].ID)
	must(t, err)
	if !bytes.Equal(dl.Body, big) {
		t.Fatalf("Get: %d body bytes, want %d", len(dl.Body), len(big))
	}
}
