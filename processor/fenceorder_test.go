package processor_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/processor"
)

// TestFenceBeforeHandBack: when an event is handed back for a retry, its tenant's fence is
// written before the hand-back is sent. Written after it, a crash in between would leave the
// retry unfenced, and the replica taking over could run the tenant's later events first.
//
// Both go out on the processor's one connection, so a subscriber to every subject sees them in
// the order they were sent.
func TestFenceBeforeHandBack(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t, func(c *broker.Config) { c.Partitions = 1 })
	var mux processor.Mux
	var calls atomic.Int32
	must(t, mux.HandleFunc("flaky", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		if calls.Add(1) == 1 {
			return processor.Transient(errors.New("not yet"))
		}
		return nil
	}))

	order := make(chan string, 100)
	nc, err := nats.Connect(env.URL)
	must(t, err)
	defer nc.Close()
	sub, err := nc.Subscribe(">", func(m *nats.Msg) {
		switch {
		case strings.HasPrefix(m.Subject, "$KV."+broker.BucketState+".fence."):
			order <- "fence"
		case strings.HasPrefix(m.Subject, "$JS.ACK."+broker.StreamEvents+".") && strings.HasPrefix(string(m.Data), "-NAK"):
			order <- "nak"
		}
	})
	must(t, err)
	defer sub.Unsubscribe()
	must(t, nc.Flush())

	p := newProcessor(t, env, fastConfig(), &mux, nil)
	started(t, p)
	publish(t, env.JS, "issues", "fence-1", body(t, "issues.opened", repo{1, 11, "acme/a"}, nil))
	select {
	case first := <-order:
		if first != "fence" {
			t.Fatalf("the hand-back went out before the tenant's fence was written")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no fence and no hand-back within 20s")
	}
	deadline := time.Now().Add(20 * time.Second)
	for calls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the retry did not run within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
