package processor_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/processor"
)

func TestMultipleHandlers(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	rec := newRecorder()
	var failed atomic.Bool
	var mux processor.Mux
	must(t, mux.HandleFunc("first", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		rec.add(call{handler: ev.Handler, attempt: ev.Attempt})
		return nil
	}))
	must(t, mux.HandleFunc("second", processor.On("issues.opened"), func(ctx context.Context, ev *processor.Event) error {
		rec.add(call{handler: ev.Handler, attempt: ev.Attempt})
		if failed.CompareAndSwap(false, true) {
			return errors.New("flaky")
		}
		return nil
	}))
	p := newProcessor(t, env, fastConfig(), &mux, nil)
	started(t, p)
	publish(t, env.JS, "issues", "multi", body(t, "issues.opened", repo{1, 2, "acme/m"}, nil))
	calls := rec.wait(t, 3, 10*time.Second)
	got := fmt.Sprintf("%s %d %s %d %s %d", calls[0].handler, calls[0].attempt, calls[1].handler, calls[1].attempt, calls[2].handler, calls[2].attempt)
	if got != "first 1 second 1 second 2" {
		t.Fatalf("calls %s, want first 1 second 1 second 2 (the retry runs only the failed handler)", got)
	}
	rec.quiet(t, 300*time.Millisecond)
}

// TestGracefulHandover: a stopping replica hands back what it buffered, finishes what runs, and
// unpins: a waiting replica takes over at once (well before PinnedTTL) and order holds.
func TestGracefulHandover(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t, func(c *broker.Config) { c.Partitions = 1 })
	cfg := fastConfig()
	cfg.PinnedTTL = 20 * time.Second // a failover would take this long; a handover must not
	rec := newRecorder()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	mk := func(name string, block bool) *processor.Mux {
		var mux processor.Mux
		must(t, mux.HandleFunc("h", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
			if block && ev.Meta.Delivery == "x-0" {
				entered <- struct{}{}
				<-release
			}
			rec.add(call{handler: name, delivery: ev.Meta.Delivery, seq: ev.Seq, tenant: ev.Tenant, at: time.Now()})
			return nil
		}))
		return &mux
	}
	p1 := newProcessor(t, env, cfg, mk("p1", true), nil)
	stop1 := started(t, p1)
	x := repo{1, 5, "acme/x"}
	for i := range 5 {
		publish(t, env.JS, "issues", fmt.Sprintf("x-%d", i), body(t, "issues.opened", x, nil))
	}
	<-entered
	p2 := newProcessor(t, env, cfg, mk("p2", false), nil)
	started(t, p2)

	stopped := make(chan error, 1)
	begin := time.Now()
	go func() { stopped <- stop1() }()
	time.Sleep(100 * time.Millisecond) // p1 is draining, its handler still runs
	close(release)
	must(t, <-stopped)
	calls := rec.wait(t, 5, 10*time.Second)
	if took := time.Since(begin); took > 5*time.Second {
		t.Fatalf("handover took %s; PinnedTTL is %s: the pin was not released", took, cfg.PinnedTTL)
	}
	for i, c := range calls {
		want := "p2"
		if i == 0 {
			want = "p1"
		}
		if c.delivery != fmt.Sprintf("x-%d", i) || c.handler != want {
			t.Fatalf("call %d: %s by %s, want x-%d by %s", i, c.delivery, c.handler, i, want)
		}
	}
}
