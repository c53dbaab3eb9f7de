package planner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/hookd/hookd/internal/event"
)

// SchedulerConfig configures a Scheduler. The fields with yaml tags form the `scheduler:`
// configuration section; the others are wired in by cmd/hookd. Zero fields take the defaults.
type SchedulerConfig struct {
	// ShutdownTimeout is how long, once Run's context ends (or Apply removes a unit), in-flight
	// interval passes may run to completion and services may take to return. At the deadline
	// the passes' contexts are cancelled and the scheduler waits one more tenth of it; what
	// still runs then is abandoned and named in the error. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// StartJitter caps the random delay before an interval unit's first pass, uniform in
	// [0, min(StartJitter, Interval)), so that tenants' passes spread out. Default 10s;
	// negative: every first pass starts at once.
	StartJitter time.Duration `yaml:"start_jitter"`

	// Policy is hookd's retry policy (the `retry:` section). Zero fields take its defaults.
	Policy RetryPolicy `yaml:"-"`
	// Log receives every line about a unit with fields task and tenant. Zero value: no logs.
	Log zerolog.Logger `yaml:"-"`
	// Registerer, when set, receives the scheduler's metrics (hookd_task_runs_total,
	// hookd_task_retries_total, hookd_preflight_ok, hookd_scheduler_ready, hookd_worker_units).
	Registerer prometheus.Registerer `yaml:"-"`
	// Clock is the time source for every wait. Default: the system clock.
	Clock Clock `yaml:"-"`
}

// Defaults fills unset fields, including the policy's.
func (c *SchedulerConfig) Defaults() {
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.StartJitter == 0 {
		c.StartJitter = 10 * time.Second
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	c.Policy.Defaults()
}

// Validate reports every problem at once, each naming the setting to change.
func (c SchedulerConfig) Validate() error {
	var errs []error
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("scheduler.shutdown_timeout: must be positive, got %s", c.ShutdownTimeout))
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ErrStopped is returned by Apply once Run has returned or is shutting down.
var ErrStopped = errors.New("planner: scheduler stopped")

// errServiceReturned stands in for a nil error from a service that returned on its own.
var errServiceReturned = errors.New("service returned before shutdown")

// PreflightError is one failed preflight: which, for which tenant, and why. Run (and Apply)
// return them joined.
type PreflightError struct {
	Task     string
	Tenant   event.Tenant
	Class    Class
	Attempts int
	Err      error
}

// Error names the task, the attempts, the class and the cause.
func (e *PreflightError) Error() string {
	return fmt.Sprintf("preflight %s failed after %d attempt(s) (%s error): %v", e.Task, e.Attempts, e.Class, e.Err)
}

// Unwrap returns the preflight's error.
func (e *PreflightError) Unwrap() error { return e.Err }

// ShutdownError names the units that did not stop by the shutdown deadline; they were
// abandoned (their goroutines may still be running).
type ShutdownError struct {
	Tasks   []string
	Timeout time.Duration
}

// Error names the tasks and the setting to change.
func (e *ShutdownError) Error() string {
	return fmt.Sprintf("planner: %d task(s) did not stop within scheduler.shutdown_timeout (%s) and were abandoned: %s; make them return when their context ends, or raise scheduler.shutdown_timeout",
		len(e.Tasks), e.Timeout, strings.Join(e.Tasks, ", "))
}

// Scheduler runs a Plan: phase 1, the preflights, concurrently and all to success; then phase
// 2, the workers, until Run's context ends. Apply changes the running workers. Make one with
// NewScheduler; Run it once.
//
// Failure rules (the retry policy decides the delays):
//   - preflight: transient errors retry up to Policy.MaxAttempts; unknown and permanent errors,
//     and exhausted retries, fail the preflight, and with it Run.
//   - interval pass: transient errors retry with the normal backoff, unknown ones with the long
//     backoff and an error-level log; a permanent error, or unknown retries exhausted, is logged
//     and the unit waits its next interval. A worker never stops the process.
//   - service: any return before shutdown (nil included) restarts it; transient errors after
//     the normal backoff, the rest after the long one, logged at error level. A service that ran
//     for at least Policy.Max before failing starts again from attempt 1.
//
// A server wait hint (Retry-After, rate-limit reset; see Classify) wins over a shorter backoff.
type Scheduler struct {
	cfg     SchedulerConfig
	log     zerolog.Logger
	clock   Clock
	m       *metrics
	initial Plan

	ready chan struct{} // closed when the preflights passed and the workers started
	done  chan struct{} // closed when Run returns
	ran   atomic.Bool

	applyMu sync.Mutex // one Apply at a time

	mu       sync.Mutex
	runCtx   context.Context // Run's context, set when phase 2 starts
	stopping bool
	units    map[string]*unitRun   // wanted workers by name
	alive    map[*unitRun]struct{} // worker goroutines not yet returned (wanted or draining)
	passed   map[string]struct{}   // preflight names that passed
}

type unitRun struct {
	unit Unit
	soft context.CancelFunc // stop: no new pass; a service's ctx ends
	hard context.CancelFunc // the in-flight pass's ctx ends
	done chan struct{}
}

// NewScheduler applies the config's defaults and validates it and the plan, and registers the
// metrics, before anything runs.
func NewScheduler(plan Plan, cfg SchedulerConfig) (*Scheduler, error) {
	cfg.Defaults()
	if err := errors.Join(cfg.Validate(), plan.Validate()); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	plan.Preflights = slices.Clone(plan.Preflights)
	plan.Workers = slices.Clone(plan.Workers)
	return &Scheduler{
		cfg:     cfg,
		log:     cfg.Log,
		clock:   cfg.Clock,
		m:       m,
		initial: plan,
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		units:   map[string]*unitRun{},
		alive:   map[*unitRun]struct{}{},
		passed:  map[string]struct{}{},
	}, nil
}

// Ready is closed once every preflight passed and the workers started; /readyz uses it. It is
// never closed when a preflight fails.
func (s *Scheduler) Ready() <-chan struct{} { return s.ready }

// PreflightsPassed reports whether Ready is closed.
func (s *Scheduler) PreflightsPassed() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// Running returns the names of the worker units whose goroutines run, sorted: the wanted ones
// and those still draining (or abandoned after the shutdown deadline).
func (s *Scheduler) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.alive))
	for r := range s.alive {
		names = append(names, r.unit.Name)
	}
	slices.Sort(names)
	return names
}

// Run runs the preflights and, if they all pass, the workers until ctx ends, then drains them
// (two gears: no new passes and services' contexts cancelled; at ShutdownTimeout the in-flight
// passes' contexts cancelled too). It returns nil after a clean drain or when ctx ends during
// the preflights; the joined *PreflightError values when a preflight fails (the first failure
// cancels the other preflights, which are not reported); a *ShutdownError naming the units that
// did not stop. Calling Run twice is an error.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("planner: Scheduler.Run called twice; make a new Scheduler")
	}
	defer close(s.done)

	s.log.Info().Int("preflights", len(s.initial.Preflights)).Int("workers", len(s.initial.Workers)).Msg("phase 1: preflights starting")
	failures := s.runPreflights(ctx, s.initial.Preflights, true)
	if ctx.Err() != nil {
		s.log.Info().Msg("stopped during preflights; workers not started")
		return nil
	}
	if len(failures) > 0 {
		return fmt.Errorf("planner: %d of %d preflight(s) failed; workers not started: %w",
			len(failures), len(s.initial.Preflights), errors.Join(failures...))
	}

	s.mu.Lock()
	s.runCtx = ctx
	for _, u := range s.initial.Preflights {
		s.passed[u.Name] = struct{}{}
	}
	for _, u := range s.initial.Workers {
		s.startLocked(u)
	}
	s.mu.Unlock()
	close(s.ready)
	s.m.ready.Set(1)
	s.log.Info().Int("workers", len(s.initial.Workers)).Msg("phase 2: preflights passed; workers started")

	<-ctx.Done()
	s.mu.Lock()
	s.stopping = true
	runs := slices.Collect(maps.Keys(s.alive))
	for _, r := range runs {
		r.soft()
	}
	s.mu.Unlock()
	s.log.Info().Int("workers", len(runs)).Dur("shutdown_timeout", s.cfg.ShutdownTimeout).Msg("draining workers")
	err := s.drain(runs)
	s.m.ready.Set(0)
	if err == nil {
		s.log.Info().Msg("workers drained")
	}
	return err
}

// Apply makes the running workers those of p, without a restart; call it when the tenant set
// changes (installations added, removed, suspended). Units are identified by name:
//   - p's preflights that have not passed before (new tenants, or ones that failed earlier)
//     run first, concurrently, each to its own end (one failing does not cancel the others);
//   - workers whose names are new start, unless a preflight of their tenant failed (a failed
//     global preflight holds back every new worker, an installation's holds back its tenants);
//     they start on the next Apply once their preflights pass;
//   - running workers whose names are not in p are stopped like at shutdown, and Apply waits
//     for them (up to the shutdown deadline);
//   - running workers still in p are left as they are, even if their fields changed.
//
// Apply waits until Run has passed phase 1. It returns the joined *PreflightError and
// *ShutdownError values, ErrStopped once Run is shutting down, or an error for an invalid plan
// (before changing anything). Calls are serialised.
func (s *Scheduler) Apply(ctx context.Context, p Plan) error {
	if err := p.Validate(); err != nil {
		return err
	}
	select {
	case <-s.ready:
	case <-s.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()

	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return ErrStopped
	}
	runCtx := s.runCtx
	var fresh []Unit
	for _, u := range p.Preflights {
		if _, ok := s.passed[u.Name]; !ok {
			fresh = append(fresh, u)
		}
	}
	s.mu.Unlock()

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(runCtx, cancel)()
	failures := s.runPreflights(pctx, fresh, false)
	if pctx.Err() != nil {
		if runCtx.Err() != nil {
			return ErrStopped
		}
		return ctx.Err()
	}
	var failed []event.Tenant
	for _, err := range failures {
		failed = append(failed, err.(*PreflightError).Tenant)
	}

	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return ErrStopped
	}
	passed := make(map[string]struct{}, len(p.Preflights))
	failedNames := make(map[string]bool, len(failures))
	for _, err := range failures {
		failedNames[err.(*PreflightError).Task] = true
	}
	for _, u := range p.Preflights {
		if !failedNames[u.Name] {
			passed[u.Name] = struct{}{}
		}
	}
	s.passed = passed // forget tenants that left, so they are checked again if they return
	want := make(map[string]bool, len(p.Workers))
	for _, u := range p.Workers {
		want[u.Name] = true
	}
	var stop []*unitRun
	for name, r := range s.units {
		if !want[name] {
			delete(s.units, name)
			r.soft()
			stop = append(stop, r)
			s.unitLog(r.unit).Info().Msg("worker removed; stopping")
		}
	}
	started, held := 0, 0
	for _, u := range p.Workers {
		if _, ok := s.units[u.Name]; ok {
			continue
		}
		if heldBack(failed, u.Tenant) {
			held++
			s.unitLog(u).Warn().Msg("worker not started: a preflight for its tenant failed; the next Apply retries it")
			continue
		}
		s.startLocked(u)
		started++
	}
	s.mu.Unlock()
	s.log.Info().Int("preflights", len(fresh)).Int("preflights_failed", len(failures)).
		Int("started", started).Int("stopped", len(stop)).Int("held_back", held).Msg("plan applied")

	return errors.Join(errors.Join(failures...), s.drain(stop))
}

// heldBack reports whether a failed preflight of one of the failed tenants covers t.
func heldBack(failed []event.Tenant, t event.Tenant) bool {
	for _, f := range failed {
		switch {
		case f == event.Tenant{}:
			return true
		case f.RepositoryID == 0 && f.InstallationID == t.InstallationID:
			return true
		case f.RepositoryID != 0 && f.RepositoryID == t.RepositoryID:
			return true
		}
	}
	return false
}

// runPreflights runs units concurrently and returns the *PreflightError of each that failed on
// its own (not by ctx ending). With failFast the first failure cancels the rest.
func (s *Scheduler) runPreflights(ctx context.Context, units []Unit, failFast bool) []error {
	if len(units) == 0 {
		return nil
	}
	results := make([]error, len(units))
	g, gctx := errgroup.WithContext(ctx)
	for i, u := range units {
		g.Go(func() error {
			results[i] = s.preflight(gctx, u)
			if failFast {
				return results[i]
			}
			return nil
		})
	}
	_ = g.Wait() // the failures are in results
	var failures []error
	ok := map[string]float64{}
	for i, err := range results {
		res := units[i].Resource
		var pe *PreflightError
		switch {
		case errors.As(err, &pe):
			failures = append(failures, pe)
			ok[res] = 0
		case err == nil:
			if _, seen := ok[res]; !seen {
				ok[res] = 1
			}
		}
	}
	for res, v := range ok {
		s.m.preflight.WithLabelValues(res).Set(v)
	}
	return failures
}

// preflight runs one preflight to success or failure; it returns a *PreflightError, or
// ctx.Err() when ctx ended first.
func (s *Scheduler) preflight(ctx context.Context, u Unit) error {
	log := s.unitLog(u)
	for attempt := 1; ; attempt++ {
		err := s.call(ctx, u, log)
		if err == nil {
			log.Info().Int("attempt", attempt).Msg("preflight passed")
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := s.decide(u, err, attempt)
		if !d.Retry {
			log.Error().Err(err).Int("attempt", attempt).Stringer("class", d.Class).Msg("preflight failed")
			return &PreflightError{Task: u.Name, Tenant: u.Tenant, Class: d.Class, Attempts: attempt, Err: err}
		}
		s.retrying(log, u, err, attempt, d)
		if !s.sleep(ctx, d.Delay) {
			return ctx.Err()
		}
	}
}

// startLocked starts worker u; s.mu is held and s.runCtx set.
func (s *Scheduler) startLocked(u Unit) {
	soft, softCancel := context.WithCancel(s.runCtx)
	hard, hardCancel := context.WithCancel(context.WithoutCancel(s.runCtx))
	r := &unitRun{unit: u, soft: softCancel, hard: hardCancel, done: make(chan struct{})}
	s.units[u.Name] = r
	s.alive[r] = struct{}{}
	gauge := s.m.units.WithLabelValues(u.Resource)
	gauge.Inc()
	log := s.unitLog(u)
	log.Info().Stringer("kind", u.Kind).Dur("interval", u.Interval).Msg("worker starting")
	go func() {
		defer func() {
			hardCancel()
			softCancel()
			gauge.Dec()
			s.mu.Lock()
			delete(s.alive, r) // with done, under the lock: Running and drain agree
			close(r.done)
			s.mu.Unlock()
		}()
		switch u.Kind {
		case Interval:
			s.runInterval(soft, hard, u, log)
		case Service:
			s.runService(soft, u, log)
		}
	}()
}

// runInterval is the loop around one pass. soft ends the loop; hard is the passes' context,
// which outlives soft until the drain deadline.
func (s *Scheduler) runInterval(soft, hard context.Context, u Unit, log *zerolog.Logger) {
	wait := s.startDelay(u.Interval)
	attempt := 0
	for s.sleep(soft, wait) {
		err := s.call(hard, u, log)
		switch {
		case err == nil:
			log.Debug().Msg("pass done")
			attempt, wait = 0, u.Interval
			continue
		case soft.Err() != nil:
			log.Warn().Err(err).Msg("last pass before shutdown failed")
			return
		}
		attempt++
		d := s.decide(u, err, attempt)
		if !d.Retry {
			log.Error().Err(err).Int("attempt", attempt).Stringer("class", d.Class).Dur("delay", u.Interval).
				Msg("pass failed; giving up until the next interval")
			attempt, wait = 0, u.Interval
			continue
		}
		s.retrying(log, u, err, attempt, d)
		wait = d.Delay
	}
}

// runService runs u until soft ends, restarting it when it returns early.
func (s *Scheduler) runService(soft context.Context, u Unit, log *zerolog.Logger) {
	attempt := 0
	for {
		started := s.clock.Now()
		err := s.call(soft, u, log)
		if soft.Err() != nil {
			if err != nil && !errors.Is(err, context.Canceled) {
				log.Warn().Err(err).Msg("service stopped with an error")
			} else {
				log.Info().Msg("service stopped")
			}
			return
		}
		if err == nil {
			err = errServiceReturned
		}
		if s.clock.Now().Sub(started) >= s.cfg.Policy.Max {
			attempt = 0 // it was healthy for a while: this is a new run of failures
		}
		attempt++
		d := s.decide(u, err, attempt)
		if !d.Retry { // permanent, or unknown retries exhausted: a service has no next interval
			p := s.cfg.Policy
			d.Retry, d.Delay = true, max(d.Delay, p.backoff(p.UnknownInitial, p.UnknownMax, attempt))
		}
		s.retrying(log, u, err, attempt, d)
		if !s.sleep(soft, d.Delay) {
			return
		}
	}
}

// drain waits for runs (already soft-stopped) up to ShutdownTimeout, then cancels their passes
// and waits a tenth more; it returns a *ShutdownError naming those still running.
func (s *Scheduler) drain(runs []*unitRun) error {
	if len(runs) == 0 {
		return nil
	}
	all := make(chan struct{})
	go func() {
		for _, r := range runs {
			<-r.done
		}
		close(all)
	}()
	select {
	case <-all:
		return nil
	case <-s.clock.After(s.cfg.ShutdownTimeout):
	}
	s.log.Warn().Dur("shutdown_timeout", s.cfg.ShutdownTimeout).Msg("shutdown deadline passed; cancelling in-flight passes")
	for _, r := range runs {
		r.hard()
	}
	select {
	case <-all:
		return nil
	case <-s.clock.After(s.cfg.ShutdownTimeout / 10):
	}
	var stuck []string
	for _, r := range runs {
		select {
		case <-r.done:
		default:
			stuck = append(stuck, r.unit.Name)
			s.unitLog(r.unit).Error().Msg("did not stop by the shutdown deadline; abandoned")
		}
	}
	if len(stuck) == 0 {
		return nil
	}
	slices.Sort(stuck)
	return &ShutdownError{Tasks: stuck, Timeout: s.cfg.ShutdownTimeout}
}

// call runs u once, turning a panic into an error, and counts the outcome.
func (s *Scheduler) call(ctx context.Context, u Unit, log *zerolog.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("task %s panicked: %v", u.Name, r)
			log.Error().Interface("panic", r).Str("stack", string(debug.Stack())).Msg("task panicked")
		}
		outcome := "ok"
		if err != nil {
			c, _ := Classify(s.classified(u, err), s.clock.Now())
			outcome = c.String()
		}
		s.m.runs.WithLabelValues(u.Phase.String(), u.Resource, outcome).Inc()
	}()
	return u.Run(ctx)
}

// classified applies the unit's own classification to an error Classify leaves Unknown. A
// classifier that panics leaves the error Unknown, like the task's own panic.
func (s *Scheduler) classified(u Unit, err error) (out error) {
	if u.Transient == nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			out = err
			s.unitLog(u).Error().Interface("panic", r).Msg("the spec's Transient classifier panicked; the error stays unclassified")
		}
	}()
	if c, _ := Classify(err, s.clock.Now()); c == Unknown && u.Transient(err) {
		return Transient(err)
	}
	return err
}

func (s *Scheduler) decide(u Unit, err error, attempt int) Decision {
	return s.cfg.Policy.Decide(u.Phase, s.classified(u, err), attempt, s.clock.Now())
}

// retrying logs and counts a scheduled retry: transient at warn, the rest at error level.
func (s *Scheduler) retrying(log *zerolog.Logger, u Unit, err error, attempt int, d Decision) {
	ev := log.Warn()
	if d.Class != TransientClass {
		ev = log.Error()
	}
	ev.Err(err).Int("attempt", attempt).Stringer("class", d.Class).Dur("delay", d.Delay).Msg("retrying")
	s.m.retries.WithLabelValues(u.Phase.String(), u.Resource, d.Class.String()).Inc()
}

// sleep waits d on the clock; false when ctx ended first.
func (s *Scheduler) sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	if d <= 0 {
		return true
	}
	select {
	case <-ctx.Done():
		return false
	case <-s.clock.After(d):
		return true
	}
}

func (s *Scheduler) startDelay(interval time.Duration) time.Duration {
	j := min(s.cfg.StartJitter, interval)
	if j <= 0 {
		return 0
	}
	return rand.N(j)
}

func (s *Scheduler) unitLog(u Unit) *zerolog.Logger {
	l := s.log.With().Str("task", u.Name).Str("tenant", u.Tenant.String()).Logger()
	return &l
}
