package planner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/event"
)

// testPolicy has round numbers and next to no jitter, so delays can be compared exactly enough.
func testPolicy() RetryPolicy {
	return RetryPolicy{
		Initial: time.Second, Max: time.Minute, Multiplier: 2,
		UnknownInitial: 30 * time.Second, UnknownMax: 30 * time.Minute,
		MaxAttempts: 5, Jitter: 1e-9,
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the logged JSON objects whose message is msg.
func (b *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

type bundle struct {
	s      *Scheduler
	clk    *fakeClock
	logs   *syncBuffer
	cancel context.CancelFunc
	errc   chan error
}

// setup makes a scheduler for plan on clk (no start jitter, test policy), runs it, and stops it
// at the end of the test if the test did not.
func setup(t *testing.T, plan Plan, clk *fakeClock, mod ...func(*SchedulerConfig)) *bundle {
	t.Helper()
	logs := &syncBuffer{}
	cfg := SchedulerConfig{
		ShutdownTimeout: 30 * time.Second,
		StartJitter:     -1,
		Policy:          testPolicy(),
		Log:             zerolog.New(logs).Level(zerolog.DebugLevel),
		Registerer:      prometheus.NewRegistry(),
		Clock:           clk,
	}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := NewScheduler(plan, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &bundle{s: s, clk: clk, logs: logs, cancel: cancel, errc: make(chan error, 1)}
	go func() { b.errc <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after the test")
		}
	})
	return b
}

// result waits for Run to return.
func (b *bundle) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-b.errc:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func (b *bundle) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-b.s.Ready():
	case err := <-b.errc:
		t.Fatalf("Run returned before Ready: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("scheduler not ready")
	}
}

// waitRunning waits until Running reports exactly names.
func (b *bundle) waitRunning(t *testing.T, names ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(b.s.Running(), names) {
		if time.Now().After(deadline) {
			t.Fatalf("Running() = %v, want %v", b.s.Running(), names)
		}
		time.Sleep(time.Millisecond)
	}
}

var repoTenant = event.Tenant{InstallationID: 1, RepositoryID: 10, Owner: "acme", Name: "api"}

func preflightUnit(name string, run func(context.Context) error) Unit {
	return Unit{Name: name, Phase: PhasePreflight, Resource: "repository", Kind: OneShot, Tenant: repoTenant, Run: run}
}

func intervalUnit(name string, run func(context.Context) error) Unit {
	return Unit{Name: name, Phase: PhaseWorker, Resource: "sweep", Kind: Interval, Interval: time.Hour, Tenant: repoTenant, Run: run}
}

func serviceUnit(name string, run func(context.Context) error) Unit {
	return Unit{Name: name, Phase: PhaseWorker, Resource: "consume", Kind: Service, Tenant: repoTenant, Run: run}
}

// counter returns a run function that signals each call on calls.
func workerStarted(calls *atomic.Int32) func(context.Context) error {
	return func(context.Context) error { calls.Add(1); return nil }
}

func TestSchedulerPreflights(t *testing.T) {
	t.Parallel()

	t.Run("a failing preflight keeps workers from starting and is named", func(t *testing.T) {
		t.Parallel()
		var workerCalls atomic.Int32
		b := setup(t, Plan{
			Preflights: []Unit{
				preflightUnit("preflight:repository:acme/api", func(context.Context) error {
					return Permanent(errors.New("GET /repos/acme/api: 404 Not Found"))
				}),
				{Name: "preflight:app", Phase: PhasePreflight, Resource: "app", Run: func(ctx context.Context) error { return nil }},
			},
			Workers: []Unit{intervalUnit("worker:sweep:acme/api", workerStarted(&workerCalls))},
		}, newFakeClock(true))
		err := b.result(t)
		if err == nil {
			t.Fatal("Run returned nil")
		}
		for _, want := range []string{"preflight:repository:acme/api", "404 Not Found", "workers not started", "permanent"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		var pe *PreflightError
		if !errors.As(err, &pe) || pe.Task != "preflight:repository:acme/api" || pe.Tenant != repoTenant || pe.Class != PermanentClass || pe.Attempts != 1 {
			t.Errorf("PreflightError = %+v", pe)
		}
		if n := workerCalls.Load(); n != 0 {
			t.Errorf("worker ran %d times", n)
		}
		if b.s.PreflightsPassed() {
			t.Error("PreflightsPassed after a failure")
		}
		if v := value(t, b.s.m.preflight.WithLabelValues("repository")); v != 0 {
			t.Errorf("hookd_preflight_ok{repository} = %v", v)
		}
		if got := b.logs.lines(t, "preflight failed"); len(got) != 1 || got[0]["task"] != "preflight:repository:acme/api" || got[0]["tenant"] != "acme/api" {
			t.Errorf("failure log = %v", got)
		}
	})

	t.Run("a transient error is retried then passes", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock(true)
		var times []time.Time
		var workerCalls atomic.Int32
		b := setup(t, Plan{
			Preflights: []Unit{preflightUnit("preflight:repository:acme/api", func(context.Context) error {
				times = append(times, clk.Now())
				if len(times) < 3 {
					return Transient(errors.New("502 bad gateway"))
				}
				return nil
			})},
			Workers: []Unit{serviceUnit("worker:consume:acme/api", func(ctx context.Context) error {
				workerCalls.Add(1)
				<-ctx.Done()
				return nil
			})},
		}, clk)
		b.waitReady(t)
		clk.manual() // the shutdown deadline must not pass at once
		if len(times) != 3 {
			t.Fatalf("preflight ran %d times, want 3", len(times))
		}
		g1, g2 := times[1].Sub(times[0]), times[2].Sub(times[1])
		if g1 < 999*time.Millisecond || g1 > time.Second || g2 < 1999*time.Millisecond || g2 > 2*time.Second {
			t.Errorf("gaps between attempts = %s, %s; want 1s, 2s", g1, g2)
		}
		retries := b.logs.lines(t, "retrying")
		if len(retries) != 2 || retries[0]["class"] != "transient" || retries[0]["attempt"] != 1.0 || retries[0]["delay"] == nil || retries[0]["level"] != "warn" {
			t.Errorf("retry logs = %v", retries)
		}
		b.cancel()
		if err := b.result(t); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if workerCalls.Load() != 1 {
			t.Errorf("worker started %d times", workerCalls.Load())
		}
	})

	t.Run("an unknown error is fatal at once", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		b := setup(t, Plan{Preflights: []Unit{preflightUnit("preflight:repository:acme/api", func(context.Context) error {
			calls.Add(1)
			return errors.New("config.yml: no such key")
		})}}, newFakeClock(true))
		err := b.result(t)
		var pe *PreflightError
		if !errors.As(err, &pe) || pe.Class != Unknown || pe.Attempts != 1 || calls.Load() != 1 {
			t.Errorf("Run = %v (%+v), calls %d", err, pe, calls.Load())
		}
	})

	t.Run("transient retries are bounded by max_attempts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Plan{Preflights: []Unit{preflightUnit("preflight:repository:acme/api", func(context.Context) error {
			return Transient(errors.New("timeout"))
		})}}, newFakeClock(true))
		var pe *PreflightError
		if err := b.result(t); !errors.As(err, &pe) || pe.Attempts != 5 || pe.Class != TransientClass {
			t.Errorf("Run = %v (%+v)", err, pe)
		}
	})

	t.Run("a spec's own classification makes an error transient", func(t *testing.T) {
		t.Parallel()
		errWarming := errors.New("cache warming")
		var calls atomic.Int32
		u := preflightUnit("preflight:repository:acme/api", func(context.Context) error {
			if calls.Add(1) == 1 {
				return fmt.Errorf("check: %w", errWarming)
			}
			return nil
		})
		u.Transient = func(err error) bool { return errors.Is(err, errWarming) }
		b := setup(t, Plan{Preflights: []Unit{u}}, newFakeClock(true))
		b.waitReady(t)
		if calls.Load() != 2 {
			t.Errorf("calls = %d, want 2", calls.Load())
		}
	})

	t.Run("a panic is a failure, not a crash", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Plan{Preflights: []Unit{preflightUnit("preflight:repository:acme/api", func(context.Context) error {
			panic("boom")
		})}}, newFakeClock(true))
		if err := b.result(t); err == nil || !strings.Contains(err.Error(), "panicked: boom") {
			t.Errorf("Run = %v", err)
		}
	})

	t.Run("a panicking classifier is a failure, not a crash", func(t *testing.T) {
		t.Parallel()
		u := preflightUnit("preflight:repository:acme/api", func(context.Context) error { return errors.New("odd") })
		u.Transient = func(err error) bool { panic("classifier bug") }
		b := setup(t, Plan{Preflights: []Unit{u}}, newFakeClock(true))
		var pe *PreflightError
		if err := b.result(t); !errors.As(err, &pe) || pe.Class != Unknown || pe.Attempts != 1 {
			t.Errorf("Run = %v (%+v); want the preflight failed with an unknown error", err, pe)
		}
		if l := b.logs.lines(t, "the spec's Transient classifier panicked; the error stays unclassified"); len(l) == 0 || l[0]["panic"] != "classifier bug" {
			t.Errorf("panic logs = %v", l)
		}
	})

	t.Run("cancelled during preflights: nil, no workers", func(t *testing.T) {
		t.Parallel()
		var workerCalls atomic.Int32
		started := make(chan struct{})
		b := setup(t, Plan{
			Preflights: []Unit{preflightUnit("preflight:repository:acme/api", func(ctx context.Context) error {
				close(started)
				<-ctx.Done()
				return ctx.Err()
			})},
			Workers: []Unit{intervalUnit("worker:sweep:acme/api", workerStarted(&workerCalls))},
		}, newFakeClock(true))
		<-started
		b.cancel()
		if err := b.result(t); err != nil || workerCalls.Load() != 0 {
			t.Errorf("Run = %v, worker calls %d", err, workerCalls.Load())
		}
	})
}

func TestSchedulerWorkers(t *testing.T) {
	t.Parallel()

	t.Run("transient errors retry with growing backoff", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock(false)
		var times []time.Time
		var mu sync.Mutex
		b := setup(t, Plan{Workers: []Unit{intervalUnit("worker:sweep:acme/api", func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			times = append(times, clk.Now())
			if len(times) <= 3 {
				return Transient(errors.New("connection reset"))
			}
			return nil
		})}}, clk)
		var waits []time.Duration
		for range 4 {
			d := clk.nextWait(t)
			waits = append(waits, d)
			clk.Advance(d)
		}
		approx := func(d, want time.Duration) bool { return d <= want && d > want-time.Millisecond }
		if !approx(waits[0], time.Second) || !approx(waits[1], 2*time.Second) || !approx(waits[2], 4*time.Second) || waits[3] != time.Hour {
			t.Errorf("waits = %v; want ~1s, 2s, 4s, then the 1h interval", waits)
		}
		mu.Lock()
		if len(times) < 4 || times[3].Sub(times[2]) <= times[2].Sub(times[1]) || times[2].Sub(times[1]) <= times[1].Sub(times[0]) {
			t.Errorf("attempt times %v do not spread out", times)
		}
		mu.Unlock()
		b.cancel()
		if err := b.result(t); err != nil {
			t.Fatal(err)
		}
		for _, l := range b.logs.lines(t, "retrying") {
			if l["task"] != "worker:sweep:acme/api" || l["tenant"] != "acme/api" || l["class"] != "transient" || l["attempt"] == nil || l["delay"] == nil {
				t.Errorf("retry log lacks fields: %v", l)
			}
		}
		m := b.s.m
		if v := value(t, m.runs.WithLabelValues("worker", "sweep", "transient")); v != 3 {
			t.Errorf("runs{transient} = %v", v)
		}
		if v := value(t, m.runs.WithLabelValues("worker", "sweep", "ok")); v < 1 {
			t.Errorf("runs{ok} = %v", v)
		}
		if v := value(t, m.retries.WithLabelValues("worker", "sweep", "transient")); v != 3 {
			t.Errorf("retries = %v", v)
		}
	})

	hintTests := []struct {
		name string
		err  func(now time.Time) error
		want time.Duration
	}{
		{"RetryAfter", func(time.Time) error { return RetryAfter(errors.New("busy"), 10*time.Minute) }, 10 * time.Minute},
		{"rate limit reset", func(now time.Time) error {
			req := httptest.NewRequest(http.MethodGet, "https://api.github.com/repos/acme/api/issues", nil)
			return &github.RateLimitError{
				Rate:     github.Rate{Reset: github.Timestamp{Time: now.Add(7 * time.Minute)}},
				Response: &http.Response{StatusCode: http.StatusForbidden, Request: req},
				Message:  "API rate limit exceeded",
			}
		}, 7 * time.Minute},
	}
	for _, tt := range hintTests {
		t.Run("server wait hint wins: "+tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock(false)
			var calls atomic.Int32
			setup(t, Plan{Workers: []Unit{intervalUnit("worker:sweep:acme/api", func(context.Context) error {
				if calls.Add(1) == 1 {
					return tt.err(clk.Now())
				}
				return nil
			})}}, clk)
			if d := clk.nextWait(t); d != tt.want {
				t.Errorf("wait after the hint = %s, want %s", d, tt.want)
			}
		})
	}

	t.Run("unknown errors take the long backoff and log at error level", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock(false)
		b := setup(t, Plan{Workers: []Unit{intervalUnit("worker:sweep:acme/api", func(context.Context) error {
			return errors.New("mystery")
		})}}, clk)
		d1 := clk.nextWait(t)
		clk.Advance(d1)
		d2 := clk.nextWait(t)
		if d1 > 30*time.Second || d1 < 29*time.Second || d2 < 59*time.Second || d2 > time.Minute {
			t.Errorf("waits = %s, %s; want ~30s, ~60s", d1, d2)
		}
		if l := b.logs.lines(t, "retrying"); len(l) == 0 || l[0]["level"] != "error" || l[0]["class"] != "unknown" {
			t.Errorf("retry log = %v", l)
		}
	})

	t.Run("a permanent error waits for the next interval", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock(false)
		var calls atomic.Int32
		b := setup(t, Plan{Workers: []Unit{intervalUnit("worker:sweep:acme/api", func(context.Context) error {
			calls.Add(1)
			return Permanent(errors.New("403 resource not accessible"))
		})}}, clk)
		for i := range 2 {
			if d := clk.nextWait(t); d != time.Hour {
				t.Fatalf("wait %d = %s, want the 1h interval", i, d)
			}
			clk.Advance(time.Hour)
		}
		clk.nextWait(t)
		if calls.Load() != 3 {
			t.Errorf("passes = %d, want 3", calls.Load())
		}
		if l := b.logs.lines(t, "pass failed; giving up until the next interval"); len(l) != 3 || l[0]["class"] != "permanent" {
			t.Errorf("logs = %v", l)
		}
	})

	t.Run("a service that fails is restarted", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock(false)
		var calls atomic.Int32
		running := make(chan struct{})
		b := setup(t, Plan{Workers: []Unit{serviceUnit("worker:consume:acme/api", func(ctx context.Context) error {
			switch calls.Add(1) {
			case 1:
				return Transient(errors.New("nats: connection closed"))
			case 2:
				return nil // returned on its own: restarted on the long backoff
			case 3:
				return Permanent(errors.New("consumer deleted"))
			}
			close(running)
			<-ctx.Done()
			return ctx.Err()
		})}}, clk)
		var waits []time.Duration
		for range 3 {
			d := clk.nextWait(t)
			waits = append(waits, d)
			clk.Advance(d)
		}
		<-running
		if waits[0] > time.Second || waits[0] < 999*time.Millisecond || waits[1] < 59*time.Second || waits[1] > time.Minute ||
			waits[2] < 119*time.Second || waits[2] > 2*time.Minute {
			t.Errorf("waits = %v; want ~1s (transient), ~60s and ~120s (long backoff)", waits)
		}
		b.cancel()
		if err := b.result(t); err != nil {
			t.Fatal(err)
		}
		if l := b.logs.lines(t, "service stopped"); len(l) != 1 {
			t.Errorf("stop logs = %v", l)
		}
	})
}

func TestSchedulerShutdown(t *testing.T) {
	t.Parallel()

	t.Run("an interval pass in flight completes", func(t *testing.T) {
		t.Parallel()
		started, release := make(chan struct{}), make(chan struct{})
		var passErr error
		var passes atomic.Int32
		b := setup(t, Plan{Workers: []Unit{intervalUnit("worker:sweep:acme/api", func(ctx context.Context) error {
			passes.Add(1)
			close(started)
			<-release
			passErr = ctx.Err() // read after Run returns
			return nil
		})}}, newFakeClock(false))
		<-started
		b.cancel()
		close(release)
		if err := b.result(t); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if passErr != nil || passes.Load() != 1 {
			t.Errorf("pass saw ctx error %v (passes %d); want a live context and one pass", passErr, passes.Load())
		}
	})

	t.Run("an in-flight pass is cancelled at the deadline", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock(false)
		started := make(chan struct{})
		b := setup(t, Plan{Workers: []Unit{intervalUnit("worker:sweep:acme/api", func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})}}, clk)
		<-started
		b.cancel()
		if d := clk.nextWait(t); d != 30*time.Second {
			t.Fatalf("drain waited %s, want the 30s shutdown timeout", d)
		}
		clk.Advance(30 * time.Second)
		if err := b.result(t); err != nil {
			t.Errorf("Run = %v; the pass returned when cancelled", err)
		}
	})

	t.Run("a service that ignores cancellation is named", func(t *testing.T) {
		t.Parallel()
		clk := newFakeClock(false)
		started, release := make(chan struct{}), make(chan struct{})
		defer close(release)
		b := setup(t, Plan{Workers: []Unit{
			serviceUnit("worker:consume:acme/api", func(ctx context.Context) error {
				close(started)
				<-release
				return nil
			}),
			{Name: "worker:redeliver", Phase: PhaseWorker, Resource: "redeliver", Kind: Service, Run: func(ctx context.Context) error {
				<-ctx.Done()
				return nil
			}},
		}}, clk)
		<-started
		b.cancel()
		b.waitRunning(t, "worker:consume:acme/api") // worker:redeliver has stopped
		clk.Advance(clk.nextWait(t))                // the shutdown timeout
		clk.Advance(clk.nextWait(t))                // the grace after cancelling passes
		err := b.result(t)
		var se *ShutdownError
		if !errors.As(err, &se) || len(se.Tasks) != 1 || se.Tasks[0] != "worker:consume:acme/api" {
			t.Fatalf("Run = %v; want a ShutdownError naming worker:consume:acme/api only", err)
		}
		if !strings.Contains(err.Error(), "scheduler.shutdown_timeout") {
			t.Errorf("error %q does not say what to change", err)
		}
	})
}

func TestSchedulerApply(t *testing.T) {
	t.Parallel()
	var (
		mu         sync.Mutex
		preflights = map[string]int{}
		broken     atomic.Bool
		stopped    = make(chan string, 10)
	)
	broken.Store(true)
	planner := Planner{Specs: []Spec{
		{Phase: PhasePreflight, Resource: "repository", Scope: PerRepository, Run: func(_ context.Context, tn event.Tenant) error {
			mu.Lock()
			preflights[tn.FullName()]++
			mu.Unlock()
			if tn.Owner == "globex" && broken.Load() {
				return Permanent(errors.New("404 Not Found"))
			}
			return nil
		}},
		{Phase: PhaseWorker, Resource: "sweep", Scope: PerRepository, Kind: Interval, Interval: time.Hour, Run: nop},
		{Phase: PhaseWorker, Resource: "consume", Scope: PerInstallation, Kind: Service, Run: func(ctx context.Context, tn event.Tenant) error {
			<-ctx.Done()
			stopped <- tn.FullName()
			return nil
		}},
	}}
	plan := func(in ...Installation) Plan {
		p, err := planner.Plan(in)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	acmeAPI := Installation{ID: 1, Account: "acme", Repositories: []Repository{{ID: 10, Name: "api"}}}
	acmeBoth := Installation{ID: 1, Account: "acme", Repositories: []Repository{{ID: 10, Name: "api"}, {ID: 11, Name: "web"}}}
	globex := Installation{ID: 2, Account: "globex", Repositories: []Repository{{ID: 30, Name: "x"}}}

	b := setup(t, plan(acmeAPI), newFakeClock(false))
	b.waitReady(t)
	assertStrings(t, "running at start", b.s.Running(), []string{"worker:consume:acme", "worker:sweep:acme/api"})
	ctx := context.Background()

	// Two tenants arrive; one fails its preflight and is held back.
	err := b.s.Apply(ctx, plan(acmeBoth, globex))
	var pe *PreflightError
	if !errors.As(err, &pe) || pe.Task != "preflight:repository:globex/x" {
		t.Fatalf("Apply = %v; want the globex/x preflight failure", err)
	}
	assertStrings(t, "running after adding", b.s.Running(), []string{
		"worker:consume:acme", "worker:consume:globex", "worker:sweep:acme/api", "worker:sweep:acme/web",
	})

	// The failure is fixed: the next Apply checks it again and starts its worker.
	broken.Store(false)
	if err := b.s.Apply(ctx, plan(acmeBoth, globex)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	assertStrings(t, "running after the fix", b.s.Running(), []string{
		"worker:consume:acme", "worker:consume:globex", "worker:sweep:acme/api", "worker:sweep:acme/web", "worker:sweep:globex/x",
	})
	mu.Lock()
	if preflights["acme/api"] != 1 || preflights["acme/web"] != 1 || preflights["globex/x"] != 2 {
		t.Errorf("preflight runs = %v; passed ones must not run again", preflights)
	}
	mu.Unlock()

	// globex uninstalls, acme drops web: their workers stop and Apply waits for them.
	if err := b.s.Apply(ctx, plan(acmeAPI)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	assertStrings(t, "running after removing", b.s.Running(), []string{"worker:consume:acme", "worker:sweep:acme/api"})
	select {
	case who := <-stopped:
		if who != "globex" {
			t.Errorf("stopped %s, want globex", who)
		}
	default:
		t.Error("Apply returned before the removed service stopped")
	}

	if err := b.s.Apply(ctx, Plan{Workers: []Unit{{Name: "bad"}}}); err == nil {
		t.Error("Apply accepted an invalid plan")
	}
	b.cancel()
	if err := b.result(t); err != nil {
		t.Fatal(err)
	}
	if err := b.s.Apply(ctx, plan(acmeAPI)); !errors.Is(err, ErrStopped) {
		t.Errorf("Apply after Run = %v, want ErrStopped", err)
	}
	if err := b.s.Run(ctx); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestSchedulerStartJitter(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(false)
	b := setup(t, Plan{Workers: []Unit{intervalUnit("worker:sweep:acme/api", func(context.Context) error { return nil })}}, clk,
		func(c *SchedulerConfig) { c.StartJitter = 10 * time.Second })
	b.waitReady(t)
	if d := clk.nextWait(t); d < 0 || d >= 10*time.Second {
		t.Errorf("first pass waited %s; want [0, 10s)", d)
	}
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}

func TestHeldBack(t *testing.T) {
	t.Parallel()
	inst := event.Tenant{InstallationID: 1, Owner: "acme"}
	api := event.Tenant{InstallationID: 1, RepositoryID: 10, Owner: "acme", Name: "api"}
	web := event.Tenant{InstallationID: 1, RepositoryID: 11, Owner: "acme", Name: "web"}
	other := event.Tenant{InstallationID: 2, RepositoryID: 30, Owner: "globex", Name: "x"}
	tests := []struct {
		name   string
		failed []event.Tenant
		worker event.Tenant
		want   bool
	}{
		{"nothing failed", nil, api, false},
		{"global failure holds back everything", []event.Tenant{{}}, other, true},
		{"installation failure holds back its repositories", []event.Tenant{inst}, web, true},
		{"installation failure holds back its installation worker", []event.Tenant{inst}, inst, true},
		{"installation failure spares other installations", []event.Tenant{inst}, other, false},
		{"repository failure holds back that repository", []event.Tenant{api}, api, true},
		{"repository failure spares its siblings", []event.Tenant{api}, web, false},
		{"repository failure spares its installation", []event.Tenant{api}, inst, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := heldBack(tt.failed, tt.worker); got != tt.want {
				t.Errorf("heldBack(%v, %v) = %v, want %v", tt.failed, tt.worker, got, tt.want)
			}
		})
	}
}
