package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/hookd/hookd/ingest"
	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/config"
	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/ghapp"
	"github.com/hookd/hookd/internal/preflight"
	"github.com/hookd/hookd/planner"
	"github.com/hookd/hookd/processor"
	"github.com/hookd/hookd/sweep"
)

func newServeCmd() *cobra.Command {
	var roles []string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run hookd: webhook endpoint, processor and sweeps",
		Long: `serve runs hookd until SIGINT or SIGTERM, then drains in-flight work within
shutdown_timeout. A second SIGINT or SIGTERM ends it at once, with exit status 1.

By default it starts an embedded nats-server with JetStream (file storage under data_dir,
listening on 127.0.0.1:4222 so that 'hookd dlq', 'hookd status' and the nats CLI can reach it);
one hookd at a time may use a data_dir, and a second one stops at once saying so.
With HOOKD_NATS_URL it joins an external NATS instead; run several replicas against one NATS
cluster to scale out.

Without GitHub App credentials serve still starts: it logs what is missing, keeps /healthz up
and answers 503 on /readyz until you provide them (and on /webhook while no webhook secret is
set; with a secret, deliveries are stored and wait for a processor).`,
		Example: `  # everything in one process, embedded JetStream under ./data
  HOOKD_GITHUB_APP_ID=12345 HOOKD_GITHUB_PRIVATE_KEY_FILE=app.pem \
  HOOKD_GITHUB_WEBHOOK_SECRET=s3cret hookd serve

  # ingest only, joining a NATS cluster (scale ingest apart from processors)
  HOOKD_NATS_URL=nats://n1:4222,nats://n2:4222,nats://n3:4222 HOOKD_NATS_REPLICAS=3 \
  hookd serve --roles ingest`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("roles") {
				// As HOOKD_ROLES: spaces around names are dropped; an empty list is an error here
				// rather than a process that takes no role at all.
				cfg.Roles = nil
				for _, r := range roles {
					if r = strings.TrimSpace(r); r != "" {
						cfg.Roles = append(cfg.Roles, r)
					}
				}
				if len(cfg.Roles) == 0 {
					return fmt.Errorf("--roles: no role given; use any of %s, comma-separated, or leave the flag out for all of them", strings.Join(config.AllRoles, ", "))
				}
				if err := cfg.Validate(); err != nil {
					return err
				}
			}
			log := newLogger(cfg.Log, cmd.ErrOrStderr())
			a, err := newApp(cmd.Context(), cfg, log, appOptions{})
			if err != nil {
				return err
			}
			return a.Run(cmd.Context())
		},
	}
	cmd.Flags().StringSliceVar(&roles, "roles", nil, "roles to run: ingest, process, sweep (default all; env HOOKD_ROLES)")
	return cmd
}

// appOptions are what tests and the demo change about an app.
type appOptions struct {
	// Listener replaces listening on http.addr (tests listen on 127.0.0.1:0).
	Listener net.Listener
	// Handlers registers extra Go handlers (tests, demo) after the built-in ones.
	Handlers func(*processor.Mux) error
	// Registry replaces the process's Prometheus registry.
	Registry *prometheus.Registry
}

// maxHeaderRoom is what a stored delivery's headers may add to its body.
const maxHeaderRoom = 64 << 10

// app is one hookd process, assembled by hand from its parts.
type app struct {
	cfg   *config.Config
	log   zerolog.Logger
	reg   *prometheus.Registry
	nats  *server.Server // the embedded server; nil with an external NATS
	nc    *nats.Conn
	js    jetstream.JetStream
	gh    *ghapp.App // nil without credentials
	http  *ingest.Server
	sched *planner.Scheduler // nil without credentials; set by plan before planned is closed
	sweep *sweep.Service     // nil without credentials
	specs []planner.Spec     // this process's task specs, planned again when tenants change
	ln    net.Listener

	opts       appOptions
	budget     *ghapp.KVBudget
	obs        *rateObserver
	planned    chan struct{}      // closed when plan returned (sched is set if it succeeded)
	stopped    chan struct{}      // closed when Run returned
	unlock     func()             // releases nats.data_dir, held while the embedded server runs
	stopBudget context.CancelFunc // stops the shared rate-limit budget's goroutine
}

// newApp connects to (or starts) JetStream, ensures the topology and builds every part the roles
// ask for. Errors here stop the process with a message naming the setting.
func newApp(ctx context.Context, cfg *config.Config, log zerolog.Logger, o appOptions) (a *app, err error) {
	a = &app{cfg: cfg, log: log, reg: o.Registry, ln: o.Listener, opts: o, planned: make(chan struct{}), stopped: make(chan struct{})}
	if a.reg == nil {
		a.reg = prometheus.NewRegistry()
		a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	self := a
	defer func() {
		if err != nil {
			self.Close()
		}
	}()

	url := cfg.NATS.URL
	if url == "" {
		a.unlock, err = lockDataDir(cfg.NATS.DataDir)
		switch {
		case errors.Is(err, errNoLock):
			log.Warn().Err(err).Msg("nats.data_dir cannot be locked: nothing stops a second hookd from using it")
		case err != nil:
			return nil, err
		}
		if a.nats, err = broker.StartEmbedded(cfg.NATS, log); err != nil {
			return nil, err
		}
		url = a.nats.ClientURL()
	}
	if a.nc, a.js, err = broker.Open(ctx, url, cfg.NATS, "hookd", log); err != nil {
		return nil, err
	}
	if mp := a.nc.MaxPayload(); cfg.HasRole(config.RoleIngest) && mp < cfg.HTTP.MaxBodyBytes+maxHeaderRoom {
		log.Warn().Int64("max_payload", mp).Int64("max_body_bytes", cfg.HTTP.MaxBodyBytes).
			Msg("the NATS server's max_payload is below http.max_body_bytes: larger deliveries will be answered 503 and never stored; raise max_payload on the NATS servers (32MB fits GitHub's 25 MiB cap), or lower http.max_body_bytes")
	}

	var ready []func(context.Context) error
	if missing := missingCredentials(cfg); len(missing) > 0 {
		msg := "GitHub App credentials missing: " + strings.Join(missing, ", ") +
			"; set them in the config file's github section or in the environment (values from the GitHub App's settings page)"
		log.Error().Strs("missing", missing).Msg(msg + "; /readyz answers 503 until then")
		ready = append(ready, func(context.Context) error { return errors.New(msg) })
	}
	if msg := keyFileWarning(cfg.GitHub.PrivateKeyFile); msg != "" {
		log.Warn().Msg(msg)
	}
	if u := unknownEnv(os.Environ()); len(u) > 0 {
		log.Warn().Strs("variables", u).Msg("hookd reads none of these HOOKD_* variables: misspelt? ('hookd config env' lists the variables it reads)")
	}
	if cfg.GitHub.CanCallAPI() {
		// The key is read here, so that a bad one stops the process at once; what needs GitHub
		// (checking the app, listing its installations, planning) runs in Run, once /healthz is
		// served, however long GitHub takes or makes hookd wait.
		a.obs = &rateObserver{}
		// It stops with the app (Close), not only with ctx: its watch would take the closed
		// connection for a failure and say so.
		bctx, bcancel := context.WithCancel(ctx)
		a.stopBudget = bcancel
		a.budget = ghapp.NewKVBudget(bctx, a.js, log)
		if a.gh, err = ghapp.New(cfg.GitHub, ghapp.Options{OnResponse: a.obs.observe, Budget: a.budget}); err != nil {
			return nil, err
		}
		ready = append(ready, func(context.Context) error {
			select {
			case <-a.planned:
			default:
				return errors.New("starting: checking the GitHub App and listing its installations")
			}
			if a.sched == nil || !a.sched.PreflightsPassed() {
				return errors.New("preflights have not passed yet")
			}
			return nil
		})
	} else {
		close(a.planned)
	}

	secrets := cfg.GitHub.WebhookSecrets
	if a.http, err = ingest.New(cfg.HTTP, ingest.Deps{
		JetStream:  a.js,
		Conn:       a.nc,
		Secrets:    secrets,
		Log:        log,
		Registerer: a.reg,
		Gatherer:   a.reg,
		Ready:      ready,
		Webhook:    cfg.HasRole(config.RoleIngest),
	}); err != nil {
		return nil, err
	}
	return a, nil
}

// missingCredentials lists the GitHub App credentials that this process's roles need and the
// configuration lacks.
func missingCredentials(cfg *config.Config) []string {
	var missing []string
	for _, m := range cfg.GitHub.Missing() {
		// Only the ingest role verifies deliveries; processors and sweeps need no webhook secret.
		if strings.HasPrefix(m, "github.webhook_secrets") && !cfg.HasRole(config.RoleIngest) {
			continue
		}
		missing = append(missing, m)
	}
	return missing
}

// plan builds the GitHub side: the app client, the sweep service, the processor with its
// handlers and rules, the task specs of this process's roles, and the scheduler with the first
// plan over the installations GitHub lists.
func (a *app) plan(ctx context.Context, o appOptions) error {
	cfg, log, budget := a.cfg, a.log, a.budget
	var installs []planner.Installation
	err := retryOnce(ctx, cfg.Retry, log.With().Str("task", "preflight:installations").Logger(), func(ctx context.Context) (err error) {
		if cfg.Processor.BotLogin == "" {
			// The app's own bot is "<slug>[bot]": events it sends must not trigger rules.
			app, _, err := a.gh.Client().Apps.Get(ctx, "")
			if err != nil {
				return fmt.Errorf("GET /app: %w", preflight.ExplainAppError(err, a.gh.ID()))
			}
			cfg.Processor.BotLogin = app.GetSlug() + "[bot]"
		}
		installs, err = sweep.ListInstallations(ctx, a.gh)
		return err
	})
	if err != nil {
		return fmt.Errorf("preflight:installations: %w", err)
	}

	needs := needsOf(cfg)
	if a.sweep, err = sweep.New(ctx, cfg.Sweep, sweep.Options{
		GitHub: a.gh, JS: a.js, BotLogin: cfg.Processor.BotLogin, Log: log, Registerer: a.reg,
		Subscribed: func(ev string) bool { return slices.Contains(needs.Events, ev) },
		Apply:      a.apply,
		SharedRate: func(id int64) (int, int, time.Time, bool) {
			r, ok := budget.Rate(id)
			return r.Limit, r.Remaining, r.Reset, ok
		},
	}); err != nil {
		return err
	}
	a.obs.svc.Store(a.sweep)
	a.sweep.SetInstallations(installs)

	// The Go handlers' events count as much as the rules' (in every role: a sweep replica has to
	// know what the processors take), so the handlers are registered once here just to read
	// them. The sweep reads needs.Events only once it runs.
	var probe processor.Mux
	if err := registerHandlers(&probe, handlerDeps{log: log, sweep: a.sweep}); err != nil {
		return err
	}
	if o.Handlers != nil {
		if err := o.Handlers(&probe); err != nil {
			return err
		}
	}
	for _, ev := range probe.Events() {
		if !slices.Contains(needs.Events, ev) {
			needs.Events = append(needs.Events, ev)
		}
	}
	slices.Sort(needs.Events)

	checks := &preflight.Checks{GitHub: a.gh, Needs: needs, PublicURL: cfg.GitHub.PublicURL, Log: log}
	a.specs = checks.Specs()
	if cfg.HasRole(config.RoleProcess) {
		mux := &processor.Mux{}
		if err := registerHandlers(mux, handlerDeps{log: log, sweep: a.sweep}); err != nil {
			return err
		}
		if err := registerRules(ctx, mux, a); err != nil {
			return err
		}
		if o.Handlers != nil {
			if err := o.Handlers(mux); err != nil {
				return err
			}
		}
		plog := log
		proc, err := processor.New(cfg.Processor, processor.Deps{
			JS: a.js, Mux: mux, Clients: a.gh, Log: plog, Registerer: a.reg, Partitions: cfg.NATS.Partitions,
		})
		if err != nil {
			return err
		}
		a.specs = append(a.specs, planner.Spec{
			Phase: planner.PhaseWorker, Resource: "process", Scope: planner.Global, Kind: planner.Service,
			Run: func(ctx context.Context, _ event.Tenant) error { return proc.Run(ctx) },
		})
	}
	if cfg.HasRole(config.RoleSweep) {
		a.specs = append(a.specs, a.sweep.Specs()...)
	}
	plan, err := a.planFor(installs)
	if err != nil {
		return err
	}
	sc := cfg.Scheduler
	sc.Policy, sc.Log, sc.Registerer = cfg.Retry, log, a.reg
	sched, err := planner.NewScheduler(plan, sc)
	if err != nil {
		return err
	}
	a.sched = sched
	return nil
}

// planFor is the Planner over this process's specs: installations to named units.
func (a *app) planFor(installs []planner.Installation) (planner.Plan, error) {
	plan, err := (planner.Planner{Specs: a.specs, Tenants: a.cfg.Tenants}).Plan(installs)
	if err != nil {
		return plan, err
	}
	for _, ex := range plan.Excluded {
		a.log.Warn().Str("tenant", ex.Tenant.String()).Str("reason", ex.Reason).Msg("tenant excluded")
	}
	return plan, nil
}

// apply re-plans when the installations worker finds installations or repositories added or
// removed, and starts and stops their units without a restart.
func (a *app) apply(ctx context.Context, installs []planner.Installation) error {
	plan, err := a.planFor(installs)
	if err != nil {
		return err
	}
	a.log.Info().Int("installations", len(plan.Tenants.Installations)).Int("repositories", len(plan.Tenants.Repositories)).Msg("tenant set changed; applying the new plan")
	return a.sched.Apply(ctx, plan)
}

// rateObserver feeds the GitHub responses of every client to the sweep's rate-limit share.
type rateObserver struct{ svc atomic.Pointer[sweep.Service] }

func (r *rateObserver) observe(installationID int64, resp *http.Response) {
	if s := r.svc.Load(); s != nil {
		s.ObserveResponse(installationID, resp)
	}
}

// Run serves until ctx ends, then drains: the HTTP server stops accepting and finishes in-flight
// publishes while the scheduler drains its workers; JetStream closes last.
func (a *app) Run(ctx context.Context) error {
	defer a.Close()
	a.log.Info().Strs("roles", a.cfg.Roles).Str("version", version).Msg("hookd serving")
	defer close(a.stopped)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if a.ln != nil {
			return a.http.Serve(gctx, a.ln)
		}
		return a.http.Run(gctx)
	})
	if a.gh != nil {
		g.Go(func() error {
			err := a.plan(gctx, a.opts)
			close(a.planned)
			if err != nil {
				return err
			}
			return a.sched.Run(gctx)
		})
	}
	err := g.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		a.log.Error().Err(err).Msg("hookd stopped with an error")
		return err
	}
	a.log.Info().Msg("hookd stopped")
	return nil
}

// ready is closed once the scheduler's preflights passed and its workers started; never if
// Run ends first (tests and the demo wait on it beside Run's result).
func (a *app) ready() <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		select {
		case <-a.planned:
		case <-a.stopped:
			return
		}
		if a.sched == nil {
			return
		}
		select {
		case <-a.sched.Ready():
			close(ch)
		case <-a.stopped:
		}
	}()
	return ch
}

// Close releases the connection, stops the embedded server and releases its data_dir.
func (a *app) Close() {
	if a.stopBudget != nil {
		a.stopBudget()
	}
	if a.nc != nil {
		// Every part has stopped: make sure the server has what they sent last (acks, the
		// last publishes) before closing. Drain would only start doing so in the background.
		_ = a.nc.FlushTimeout(5 * time.Second)
		a.nc.Close()
		a.nc = nil
	}
	if a.nats != nil {
		a.nats.Shutdown()
		a.nats.WaitForShutdown()
		a.nats = nil
	}
	if a.unlock != nil {
		a.unlock()
		a.unlock = nil
	}
}

// errNoLock: lockDataDir could not lock data_dir, whose file system takes no locks (some network
// file systems); the unlock it returns is still to be called.
var errNoLock = errors.New("data_dir not locked")

// URL is the NATS URL clients of this process's JetStream use.
func (a *app) natsURL() string { return strings.TrimSpace(a.nc.ConnectedUrl()) }
