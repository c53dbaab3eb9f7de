package sweep

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/planner"
)

// GitHub is what the sweep needs of the GitHub App; *ghapp.App implements it.
type GitHub interface {
	// Client is the app-level client (JWT): installations, the webhook's delivery log.
	Client() *github.Client
	// Installation is an installation's client: its repositories, issues and pull requests.
	Installation(id int64) (*github.Client, error)
}

// Options are what cmd/hookd wires into the Service besides its Config.
type Options struct {
	// GitHub is the app. Required.
	GitHub GitHub
	// JS is the JetStream context; the events stream and the hookd_state and hookd_sweep
	// buckets must exist (broker.Ensure). Required.
	JS jetstream.JetStream
	// Subscribed reports whether some rule or handler subscribes to a webhook event name: only
	// those deliveries are redelivered, and reconcile events are emitted only for "issues" and
	// "pull_request" when subscribed. Nil: every event counts as subscribed.
	Subscribed func(eventName string) bool
	// BotLogin is the app's bot, "<slug>[bot]": the sender of reconcile events. Empty: read
	// from GET /app on first use.
	BotLogin string
	// Apply receives the installations (with their repositories) whenever the installations
	// worker lists them and they changed: cmd/hookd re-plans and calls Scheduler.Apply.
	// Nil: the installations worker only logs.
	Apply func(ctx context.Context, installs []planner.Installation) error
	// Replica names this process in leases. Default: a random id.
	Replica string
	// Log receives one line per pass outcome worth telling (debug for quiet ones), with fields
	// task and tenant. Zero value: no logs.
	Log zerolog.Logger
	// Registerer receives the sweep metrics. Nil: not registered.
	Registerer prometheus.Registerer
	// Now is the clock for cursors, due times and ages. Default time.Now.
	Now func() time.Time
	// SharedRate reports an installation's rate limit as the replicas share it (ghapp.KVBudget:
	// the latest X-RateLimit-* any replica saw, kept in NATS), so that sweeps yield to event
	// handling done by other replicas too. Nil: only what this process observes
	// (ObserveResponse) counts.
	SharedRate func(installationID int64) (limit, remaining int, reset time.Time, ok bool)
	// Wait pauses between redelivery requests (RedeliverySpacing); tests make it instant.
	// Default: a timer that ends early with ctx.
	Wait func(ctx context.Context, d time.Duration) error
}

// Service is hookd's sweep: the installations worker, the redelivery worker and the
// per-repository drift sweeps. Make one with New; its methods are the workers' passes.
type Service struct {
	cfg   Config
	gh    GitHub
	js    jetstream.JetStream
	sweep jetstream.KeyValue // hookd_sweep
	state jetstream.KeyValue // hookd_state
	log   zerolog.Logger
	m     *metrics
	opts  Options

	maxTodo int // cap of RedeliverState.Todo: defaultMaxTodo, smaller in tests

	botMu sync.Mutex
	bot   string

	rateMu sync.Mutex
	rates  map[int64]rate

	instMu   sync.Mutex
	lastList []planner.Installation
	listed   bool
}

// New applies the config's defaults and validates it, looks up the stream and buckets, and
// registers the metrics.
func New(ctx context.Context, cfg Config, opts Options) (*Service, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.GitHub == nil || opts.JS == nil {
		return nil, errors.New("sweep: Options.GitHub and Options.JS are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Wait == nil {
		opts.Wait = wait
	}
	if opts.Replica == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		opts.Replica = "replica-" + hex.EncodeToString(b[:])
	}
	sweepKV, err := opts.JS.KeyValue(ctx, broker.BucketSweep)
	if err != nil {
		return nil, fmt.Errorf("sweep: KV bucket %s: %w (run broker.Ensure first)", broker.BucketSweep, err)
	}
	stateKV, err := opts.JS.KeyValue(ctx, broker.BucketState)
	if err != nil {
		return nil, fmt.Errorf("sweep: KV bucket %s: %w (run broker.Ensure first)", broker.BucketState, err)
	}
	if _, err := opts.JS.Stream(ctx, broker.StreamEvents); err != nil {
		return nil, fmt.Errorf("sweep: stream %s: %w (run broker.Ensure first)", broker.StreamEvents, err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Service{
		cfg: cfg, gh: opts.GitHub, js: opts.JS, sweep: sweepKV, state: stateKV,
		log: opts.Log, m: m, opts: opts, bot: opts.BotLogin, rates: map[int64]rate{},
		maxTodo: defaultMaxTodo,
	}, nil
}

// Config returns the configuration in use, defaults applied.
func (s *Service) Config() Config { return s.cfg }

// Specs returns the sweep's workers as planner specs:
//
//	worker:installations            global, a service: re-lists on installation webhooks and every installations_interval
//	worker:redeliver                global, every redeliver_interval (left out when sweep.redeliver is false)
//	worker:sweep:<owner>/<name>     per repository, every min_interval (each pass skips a repository not yet due)
func (s *Service) Specs() []planner.Spec {
	specs := []planner.Spec{
		{Phase: planner.PhaseWorker, Resource: "installations", Scope: planner.Global, Kind: planner.Service,
			Run: func(ctx context.Context, _ event.Tenant) error { return s.RunInstallations(ctx) }},
		{Phase: planner.PhaseWorker, Resource: "sweep", Scope: planner.PerRepository, Kind: planner.Interval,
			Interval: s.cfg.MinInterval, Run: s.SweepRepository},
	}
	if s.cfg.RedeliverEnabled() {
		specs = append(specs, planner.Spec{Phase: planner.PhaseWorker, Resource: "redeliver", Scope: planner.Global,
			Kind: planner.Interval, Interval: s.cfg.RedeliverInterval,
			Run: func(ctx context.Context, _ event.Tenant) error { _, err := s.redeliverOnce(ctx); return err }})
	}
	return specs
}

func (s *Service) now() time.Time { return s.opts.Now().UTC() }

func (s *Service) subscribed(ev string) bool {
	return s.opts.Subscribed == nil || s.opts.Subscribed(ev)
}

// botLogin is the sender of reconcile events.
func (s *Service) botLogin(ctx context.Context) (string, error) {
	s.botMu.Lock()
	defer s.botMu.Unlock()
	if s.bot != "" {
		return s.bot, nil
	}
	app, _, err := s.gh.Client().Apps.Get(ctx, "")
	if err != nil {
		return "", fmt.Errorf("GET /app for the bot login: %w", err)
	}
	s.bot = app.GetSlug() + "[bot]"
	return s.bot, nil
}

// ---- rate limits ----

type rate struct {
	Limit, Remaining int
	Reset            time.Time
}

// ObserveResponse records an installation's rate limit from a GitHub response (its
// X-RateLimit-* headers); the sweep feeds its own responses here. Wire it into
// ghapp.Options.OnResponse so that event handling's calls count too, and sweeps yield to it.
// installationID 0 (the app's JWT calls) is ignored, and so are the budgets that are not the
// installation's core one: a 401's headers (the unauthenticated, per-IP budget) and those of
// other resources (X-RateLimit-Resource search, graphql, ...).
func (s *Service) ObserveResponse(installationID int64, resp *http.Response) {
	if installationID == 0 || resp == nil || resp.StatusCode == http.StatusUnauthorized {
		return
	}
	if res := resp.Header.Get("X-RateLimit-Resource"); res != "" && res != "core" {
		return
	}
	limit, err1 := strconv.Atoi(resp.Header.Get("X-RateLimit-Limit"))
	remaining, err2 := strconv.Atoi(resp.Header.Get("X-RateLimit-Remaining"))
	reset, err3 := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || limit <= 0 {
		return
	}
	s.rateMu.Lock()
	s.rates[installationID] = rate{Limit: limit, Remaining: remaining, Reset: time.Unix(reset, 0)}
	s.rateMu.Unlock()
	s.m.rateRemaining.WithLabelValues(strconv.FormatInt(installationID, 10)).Set(float64(remaining))
}

// rateLow reports whether sweeps must leave installation id's remaining budget to event
// handling: less than (1-share) of the limit remains, or nothing (share 1), and the window has
// not reset.
//
// What this process observed and what the replicas share (Options.SharedRate) are combined:
// within the current window the lower remaining count is the later observation.
func (s *Service) rateLow(id int64) (rate, bool) {
	now := s.now()
	s.rateMu.Lock()
	r, ok := s.rates[id]
	s.rateMu.Unlock()
	ok = ok && now.Before(r.Reset)
	if s.opts.SharedRate != nil {
		if limit, remaining, reset, sok := s.opts.SharedRate(id); sok && limit > 0 && now.Before(reset) {
			if !ok || remaining < r.Remaining {
				r, ok = rate{Limit: limit, Remaining: remaining, Reset: reset}, true
			}
		}
	}
	if !ok {
		return r, false
	}
	return r, r.Remaining <= 0 || float64(r.Remaining) < (1-s.cfg.RateLimitShare)*float64(r.Limit)
}

// ---- leases ----

// lease takes key in hookd_sweep for ttl unless another replica holds it. It is re-entrant for
// this replica. release deletes it (only if it is still ours).
func (s *Service) lease(ctx context.Context, key string, ttl time.Duration) (release func(), ok bool, err error) {
	ttl = max(ttl, time.Second)
	me := []byte(s.opts.Replica)
	rev, err := s.sweep.Create(ctx, key, me, jetstream.KeyTTL(ttl))
	if errors.Is(err, jetstream.ErrKeyExists) {
		e, gerr := s.sweep.Get(ctx, key)
		switch {
		case errors.Is(gerr, jetstream.ErrKeyNotFound):
			return nil, false, nil // expired meanwhile; the next pass takes it
		case gerr != nil:
			return nil, false, fmt.Errorf("read lease %s: %w", key, gerr)
		case string(e.Value()) != s.opts.Replica:
			return nil, false, nil
		}
		rev, err = e.Revision(), nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("take lease %s: %w", key, err)
	}
	return func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.sweep.Delete(dctx, key, jetstream.LastRevision(rev))
	}, true, nil
}

func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// KV keys in hookd_sweep.
const (
	keyRepoPrefix      = "repo."            // repo.<installation>.<repository>: RepoState
	keyLeaseSweep      = "lease.sweep."     // lease.sweep.<repository>: the replica sweeping it
	keyLeaseRedeliver  = "lease.redeliver"  // the replica reading the delivery log
	keyRedeliverCursor = "redeliver.cursor" // RedeliverState
	keyRedeliveryGUID  = "redeliver.guid."  // redeliver.guid.<guid>.<n>: one redelivery request, TTL = window
	keySignalInstalls  = "signal.installations"
)

func repoKey(t event.Tenant) string { return keyRepoPrefix + t.Key() }
