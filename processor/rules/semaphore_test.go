package rules

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker/brokertest"
)

func TestKVSemaphore(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	ctx := context.Background()
	newSem := func(t *testing.T, holder string, lease time.Duration) *KVSemaphore {
		s, err := NewKVSemaphore(ctx, env.JS, SemaphoreConfig{Lease: lease, Holder: holder}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("at most N holders across replicas", func(t *testing.T) {
		t.Parallel()
		// Three "replicas" (separate semaphores, one broker), limit 2, six contenders.
		sems := []*KVSemaphore{newSem(t, "a", 5*time.Second), newSem(t, "b", 5*time.Second), newSem(t, "c", 5*time.Second)}
		var cur, peak atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				actx, cancel := context.WithTimeout(ctx, 15*time.Second)
				defer cancel()
				_, release, err := sems[i%3].Acquire(actx, "limited", 2, time.Time{})
				if err != nil {
					errs <- err
					return
				}
				n := cur.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(50 * time.Millisecond) // hold the slot while others contend
				cur.Add(-1)
				release()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if p := peak.Load(); p != 2 {
			t.Fatalf("peak holders %d, want 2", p)
		}
	})

	t.Run("a waiter gets the slot when it is released", func(t *testing.T) {
		t.Parallel()
		s := newSem(t, "x", 5*time.Second)
		_, release, err := s.Acquire(ctx, "one", 1, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if _, _, err := s.Acquire(short, "one", 1, time.Time{}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second holder: %v", err)
		}
		got := make(chan error, 1)
		go func() {
			_, rel, err := s.Acquire(ctx, "one", 1, time.Time{})
			if err == nil {
				rel()
			}
			got <- err
		}()
		release()
		release() // twice is fine
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(2 * time.Second): // well under the Lease/2 poll: the watch woke it
			t.Fatal("waiter not woken by the release")
		}
	})

	t.Run("a wait bound ends the wait with ErrSlotsBusy, the held context keeps ctx's deadline", func(t *testing.T) {
		t.Parallel()
		s := newSem(t, "bound", 5*time.Second)
		_, release, err := s.Acquire(ctx, "bounded", 1, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, _, err := s.Acquire(ctx, "bounded", 1, start.Add(200*time.Millisecond)); !errors.Is(err, ErrSlotsBusy) {
			t.Fatalf("all taken, wait bound passed: %v, want ErrSlotsBusy", err)
		}
		if _, _, err := s.Acquire(ctx, "bounded", 1, start.Add(-time.Second)); !errors.Is(err, ErrSlotsBusy) {
			t.Fatalf("all taken, bound already past: %v, want ErrSlotsBusy", err)
		}
		release()
		dctx, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		held, rel, err := s.Acquire(dctx, "bounded", 1, time.Now().Add(-time.Second))
		if err != nil {
			t.Fatalf("a free slot with the bound past: %v, want it taken", err)
		}
		defer rel()
		if dl, _ := held.Deadline(); dl.Before(time.Now().Add(59 * time.Minute)) {
			t.Fatalf("held context's deadline %s: it must be ctx's, not the wait bound", dl)
		}
	})

	t.Run("a dead holder's lease expires and is reclaimed", func(t *testing.T) {
		t.Parallel()
		s := newSem(t, "live", time.Second)
		// A holder that died right after taking slot 0: created with the lease TTL, never renewed.
		kv, err := env.JS.KeyValue(ctx, DefaultSemaphoreBucket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Create(ctx, "crashy.0", []byte(`{"holder":"dead"}`), jetstream.KeyTTL(time.Second)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		held, release, err := s.Acquire(actx, "crashy", 1, time.Time{})
		if err != nil {
			t.Fatalf("slot not reclaimed: %v", err)
		}
		defer release()
		if waited := time.Since(start); waited < 500*time.Millisecond {
			t.Errorf("acquired after %s, before the dead lease expired", waited)
		}
		// A live holder keeps its slot past several lease periods by renewing it.
		time.Sleep(2500 * time.Millisecond)
		if held.Err() != nil {
			t.Fatalf("live lease lost: %v", context.Cause(held))
		}
		short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel2()
		if _, _, err := s.Acquire(short, "crashy", 1, time.Time{}); err == nil {
			t.Fatal("renewed slot taken by another holder")
		}
	})

	t.Run("a stolen slot cancels its holder", func(t *testing.T) {
		t.Parallel()
		s := newSem(t, "victim", time.Second)
		held, release, err := s.Acquire(ctx, "stolen", 1, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		kv, _ := env.JS.KeyValue(ctx, DefaultSemaphoreBucket)
		if _, err := kv.Put(ctx, "stolen.0", []byte("thief")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-held.Done():
			if !errors.Is(context.Cause(held), ErrLeaseLost) {
				t.Fatalf("cause %v", context.Cause(held))
			}
		case <-time.After(3 * time.Second):
			t.Fatal("holder not told it lost its slot")
		}
	})

	t.Run("limit 0 is unlimited; bucket creation is idempotent", func(t *testing.T) {
		t.Parallel()
		s := newSem(t, "u", 5*time.Second)
		newSem(t, "u2", 5*time.Second)
		for range 3 {
			if _, _, err := s.Acquire(ctx, "free", 0, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestExecuteConcurrency runs a rule with concurrency 1 on the real semaphore.
func TestExecuteConcurrency(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	ctx := context.Background()
	// Three replicas: three connections, three semaphores over one bucket.
	var sems []*KVSemaphore
	for range 3 {
		nc, err := nats.Connect(env.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		sem, err := NewKVSemaphore(ctx, js, SemaphoreConfig{Lease: 5 * time.Second}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		sems = append(sems, sem)
	}
	dir := t.TempDir()
	// The agent fails if another run is inside its critical section.
	agent := script(t, `
if ! mkdir "$LOCK" 2>/dev/null; then echo "overlap" >&2; exit 9; fi
sleep 0.1
rmdir "$LOCK"
echo ok`)
	r := load(t, `
rules:
  - name: gpu
    on: [issues]
    concurrency: 1
    run:
      command: ["`+agent+`"]
      env: {LOCK: "`+dir+`/lock"}
`, Options{}).Rule("gpu")
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := input(t, "issues.opened", nil)
			in.Delivery = string(rune('a' + i))
			_, err := r.Execute(ctx, in, Deps{Semaphore: sems[i%len(sems)]})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Without a semaphore the rule refuses to run rather than running unbounded.
	if _, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{}); err == nil {
		t.Fatal("ran without a semaphore")
	}
}
