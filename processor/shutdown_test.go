package processor_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/processor"
)

// TestShutdownInterrupted: a handler still running at processor.shutdown_timeout is cancelled
// and its event handed back. The handlers of that event that had succeeded are recorded, so the
// next replica does not run them again; and the tenant keeps its fence at the interrupted
// event, so the next replica does not run the tenant's later events (handed back before it)
// first.
func TestShutdownInterrupted(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t, func(c *broker.Config) { c.Partitions = 1 })
	cfg := fastConfig()
	cfg.ShutdownTimeout = 100 * time.Millisecond
	rec := newRecorder()
	var mu sync.Mutex
	steady := map[string]int{} // delivery → calls of the handler that always succeeds
	entered := make(chan uint64, 1)
	mk := func(first bool) *processor.Mux {
		var mux processor.Mux
		must(t, mux.HandleFunc("steady", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
			mu.Lock()
			steady[ev.Meta.Delivery]++
			mu.Unlock()
			return nil
		}))
		must(t, mux.HandleFunc("slow", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
			if first && ev.Meta.Delivery == "s-1" {
				entered <- ev.Seq
				<-ctx.Done() // runs past the shutdown timeout
				return ctx.Err()
			}
			rec.add(call{delivery: ev.Meta.Delivery, seq: ev.Seq})
			return nil
		}))
		return &mux
	}
	stop1 := started(t, newProcessor(t, env, cfg, mk(true), nil))
	r := repo{1, 61, "acme/shutdown"}
	publish(t, env.JS, "issues", "s-1", body(t, "issues.opened", r, nil))
	publish(t, env.JS, "issues", "s-2", body(t, "issues.labeled", r, nil))
	var seq1 uint64
	select {
	case seq1 = <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow handler never ran")
	}
	must(t, stop1())

	ctx := context.Background()
	state, err := env.JS.KeyValue(ctx, broker.BucketState)
	must(t, err)
	e, err := state.Get(ctx, "fence.0."+r.tenant().Key())
	if err != nil {
		t.Fatalf("no fence for the tenant of the interrupted event after shutdown: %v", err)
	}
	var f struct{ Seq uint64 }
	must(t, json.Unmarshal(e.Value(), &f))
	if f.Seq != seq1 {
		t.Fatalf("fence at %d, want the interrupted event's %d", f.Seq, seq1)
	}

	started(t, newProcessor(t, env, cfg, mk(false), nil))
	calls := rec.wait(t, 2, 20*time.Second)
	if calls[0].delivery != "s-1" || calls[1].delivery != "s-2" {
		t.Fatalf("after the handover: %s then %s, want s-1 then s-2", calls[0].delivery, calls[1].delivery)
	}
	rec.quiet(t, 300*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if steady["s-1"] != 1 || steady["s-2"] != 1 {
		t.Fatalf("steady ran %d times for s-1 and %d for s-2, want once each", steady["s-1"], steady["s-2"])
	}
}

// TestShutdownRecordsState: a handler that completes although shutdown cancelled its context
// has its event acknowledged, and the state recorded for the staleness guard (else the
// sweep would see drift and store a reconcile event for a change hookd handled).
func TestShutdownRecordsState(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t, func(c *broker.Config) { c.Partitions = 1 })
	cfg := fastConfig()
	cfg.ShutdownTimeout = 100 * time.Millisecond
	entered := make(chan struct{})
	var mux processor.Mux
	must(t, mux.HandleFunc("last-step", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		close(entered)
		<-ctx.Done() // cancelled at the shutdown timeout, as its work completes anyway
		return nil
	}))
	stop := started(t, newProcessor(t, env, cfg, &mux, nil))
	r := repo{1, 62, "acme/state"}
	publish(t, env.JS, "issues", "st-1", body(t, "issues.opened", r, func(m map[string]any) {
		m["issue"].(map[string]any)["number"] = 9
	}))
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never ran")
	}
	must(t, stop())
	ctx := context.Background()
	state, err := env.JS.KeyValue(ctx, broker.BucketState)
	must(t, err)
	e, err := state.Get(ctx, processor.StateKey(r.tenant(), 9))
	if err != nil {
		t.Fatalf("issue state not recorded for an event handled during shutdown: %v", err)
	}
	var st processor.ItemState
	must(t, json.Unmarshal(e.Value(), &st))
	if st.Delivery != "st-1" || st.UpdatedAt.IsZero() {
		t.Fatalf("state %+v", st)
	}
}
