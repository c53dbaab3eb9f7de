package processor_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/processor"
)

// script returns, per delivery, the errors successive calls return (nil once exhausted).
type script struct {
	mu    sync.Mutex
	steps map[string][]error
}

func (s *script) next(delivery string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.steps[delivery]
	if len(q) == 0 {
		return nil
	}
	s.steps[delivery] = q[1:]
	return q[0]
}

func TestRetries(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	rec := newRecorder()
	boom := errors.New("boom")
	sc := &script{steps: map[string][]error{
		"transient": {processor.Transient(boom), processor.Transient(boom), processor.Transient(boom)},
		"after":     {processor.RetryAfter(boom, 3*time.Second)},
		"permanent": {processor.Permanent(boom)},
		"unknown":   {boom, boom, boom, boom},
		"mixed":     {processor.Transient(boom), processor.Transient(boom), processor.Transient(boom), boom},
		"head":      {processor.Transient(boom), processor.Transient(boom)},
	}}
	var panicked atomic.Bool
	var mux processor.Mux
	must(t, mux.HandleFunc("script", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		rec.add(call{handler: ev.Handler, delivery: ev.Meta.Delivery, tenant: ev.Tenant, seq: ev.Seq, attempt: ev.Attempt, at: time.Now()})
		if ev.Meta.Delivery == "panic" && panicked.CompareAndSwap(false, true) {
			panic("handler bug")
		}
		return sc.next(ev.Meta.Delivery)
	}))
	p := newProcessor(t, env, fastConfig(), &mux, nil)
	started(t, p)

	t.Run("transient then success: growing delays", func(t *testing.T) {
		publish(t, env.JS, "issues", "transient", body(t, "issues.opened", repo{1, 11, "acme/a"}, nil))
		calls := rec.wait(t, 4, 20*time.Second)
		for i, c := range calls {
			if c.delivery != "transient" || c.attempt != i+1 {
				t.Fatalf("call %d: %+v", i, c)
			}
		}
		g1, g2, g3 := calls[1].at.Sub(calls[0].at), calls[2].at.Sub(calls[1].at), calls[3].at.Sub(calls[2].at)
		if g1 < 45*time.Millisecond || g2 < 95*time.Millisecond || g3 < 190*time.Millisecond {
			t.Fatalf("delays %s %s %s, want about 50ms, 100ms, 200ms", g1, g2, g3)
		}
	})

	t.Run("permanent goes to the dead letters at once; replay brings it back", func(t *testing.T) {
		publish(t, env.JS, "issues", "permanent", body(t, "issues.opened", repo{1, 12, "acme/b"}, nil))
		rec.wait(t, 1, 10*time.Second)
		dl := waitDeadLetter(t, env, "permanent")
		if dl.Attempts != 1 || dl.Class != "permanent" || len(dl.Handlers) != 1 || dl.Handlers[0] != "script" ||
			dl.Error == "" || dl.StreamSeq == 0 || dl.FirstFailed.IsZero() || dl.Meta.RepositoryID != 12 {
			t.Fatalf("dead letter %+v", dl)
		}
		rec.quiet(t, 300*time.Millisecond)
		n, err := processor.NewDLQ(env.JS).Replay(context.Background(), dl.ID)
		if err != nil || n != 1 {
			t.Fatalf("replay: %d, %v", n, err)
		}
		c := rec.wait(t, 1, 10*time.Second)[0]
		if c.delivery != "permanent" || c.attempt != 1 {
			t.Fatalf("replayed call %+v", c)
		}
		if _, err := processor.NewDLQ(env.JS).Get(context.Background(), dl.ID); !errors.Is(err, processor.ErrNotFound) {
			t.Fatalf("dead letter still there after replay: %v", err)
		}
		// replaying the same id again: nothing left to replay
		if _, err := processor.NewDLQ(env.JS).Replay(context.Background(), dl.ID); !errors.Is(err, processor.ErrNotFound) {
			t.Fatalf("second replay: %v", err)
		}
	})

	t.Run("unknown errors are dead-lettered after max attempts", func(t *testing.T) {
		publish(t, env.JS, "issues", "unknown", body(t, "issues.opened", repo{1, 13, "acme/c"}, nil))
		calls := rec.wait(t, 3, 10*time.Second)
		if calls[2].attempt != 3 {
			t.Fatalf("calls %+v", calls)
		}
		dl := waitDeadLetter(t, env, "unknown")
		if dl.Attempts != 3 || dl.Class != "unknown" {
			t.Fatalf("dead letter %+v", dl)
		}
		rec.quiet(t, 300*time.Millisecond)
	})

	t.Run("transient failures do not use up the attempts of an unclassified error", func(t *testing.T) {
		publish(t, env.JS, "issues", "mixed", body(t, "issues.opened", repo{1, 16, "acme/f"}, nil))
		// Three transient failures, then an unclassified one at attempt 4 (over max_attempts 3):
		// it is retried, and the fifth attempt succeeds.
		calls := rec.wait(t, 5, 20*time.Second)
		if calls[4].delivery != "mixed" || calls[4].attempt != 5 {
			t.Fatalf("calls %+v", calls)
		}
		rec.quiet(t, 300*time.Millisecond)
		if dls, err := processor.NewDLQ(env.JS).List(context.Background()); err != nil {
			t.Fatal(err)
		} else {
			for _, dl := range dls {
				if dl.Meta.Delivery == "mixed" {
					t.Fatalf("dead-lettered: %+v", dl)
				}
			}
		}
	})

	t.Run("a panic is recovered and retried", func(t *testing.T) {
		publish(t, env.JS, "issues", "panic", body(t, "issues.opened", repo{1, 14, "acme/d"}, nil))
		calls := rec.wait(t, 2, 10*time.Second)
		if calls[1].attempt != 2 {
			t.Fatalf("calls %+v", calls)
		}
	})

	t.Run("a tenant's later events wait for its head's retries", func(t *testing.T) {
		r := repo{1, 15, "acme/e"}
		publish(t, env.JS, "issues", "head", body(t, "issues.opened", r, nil))
		publish(t, env.JS, "issues", "second", body(t, "issues.labeled", r, nil))
		publish(t, env.JS, "issues", "third", body(t, "issues.assigned", r, nil))
		calls := rec.wait(t, 5, 10*time.Second)
		var order []string
		for _, c := range calls {
			order = append(order, c.delivery)
		}
		want := []string{"head", "head", "head", "second", "third"}
		for i := range want {
			if order[i] != want[i] {
				t.Fatalf("order %v, want %v", order, want)
			}
		}
	})

	t.Run("RetryAfter is honoured", func(t *testing.T) {
		publish(t, env.JS, "issues", "after", body(t, "issues.opened", repo{1, 16, "acme/f"}, nil))
		calls := rec.wait(t, 2, 10*time.Second)
		if gap := calls[1].at.Sub(calls[0].at); gap < 3*time.Second {
			t.Fatalf("retried after %s, want >= 3s", gap)
		}
	})
}

// waitDeadLetter polls the dead letters for delivery.
func waitDeadLetter(t testing.TB, env *brokertest.Env, delivery string) processor.DeadLetter {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		all, err := processor.NewDLQ(env.JS).List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, dl := range all {
			if dl.Meta.Delivery == delivery {
				return dl
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no dead letter for %s", delivery)
	return processor.DeadLetter{}
}

// TestRetryRunsOnlyFailedHandlers: of two handlers of one event, the one that succeeded is not
// run again when the other's failure makes the event retry.
func TestRetryRunsOnlyFailedHandlers(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	rec := newRecorder()
	var failed atomic.Int32
	var mux processor.Mux
	for _, name := range []string{"steady", "flaky"} {
		must(t, mux.HandleFunc(name, processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
			rec.add(call{handler: ev.Handler, delivery: ev.Meta.Delivery, attempt: ev.Attempt})
			if ev.Handler == "flaky" && failed.Add(1) <= 2 {
				return processor.Transient(errors.New("flaky"))
			}
			return nil
		}))
	}
	started(t, newProcessor(t, env, fastConfig(), &mux, nil))
	publish(t, env.JS, "issues", "two-handlers", body(t, "issues.opened", repo{1, 12, "acme/two"}, nil))
	calls := rec.wait(t, 4, 20*time.Second) // steady once, flaky three times
	rec.quiet(t, 500*time.Millisecond)
	n := map[string]int{}
	for _, c := range calls {
		n[c.handler]++
	}
	if n["steady"] != 1 || n["flaky"] != 3 {
		t.Fatalf("calls per handler %v, want steady 1, flaky 3", n)
	}
}
