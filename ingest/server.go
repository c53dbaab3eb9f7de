package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
)

// Deps is what a Server uses besides its Config.
type Deps struct {
	// JetStream stores deliveries. Required when Webhook is set.
	JetStream jetstream.JetStream
	// Conn is the NATS connection, for readiness and to refuse deliveries at once while it is
	// down. Default: JetStream.Conn().
	Conn *nats.Conn
	// Secrets are the webhook secrets; any of them verifies a delivery (rotation: add the new one,
	// change it on GitHub, remove the old one). Empty: see the package documentation.
	Secrets []string
	// Log receives one line per webhook request and the server's errors.
	Log zerolog.Logger
	// Registerer gets ingest's metrics (only when Webhook is set). Nil: metrics are not registered.
	Registerer prometheus.Registerer
	// Gatherer is served at GET /metrics. Nil: the Registerer if it is also a Gatherer, else no
	// /metrics route.
	Gatherer prometheus.Gatherer
	// Ready are extra readiness checks for /readyz (preflights passed, processor running, ...).
	// Each gets a context that expires after 500ms; any error makes /readyz answer 503 with it.
	Ready []func(context.Context) error
	// Webhook serves the webhook route. False for roles without ingest: only /healthz, /readyz
	// and /metrics are served.
	Webhook bool
}

// readyBudget bounds /readyz: it must answer fast even when a check hangs.
const readyBudget = 500 * time.Millisecond

// servedKey marks the context of requests served by Serve, whose http.Server enforces
// Config.ReadTimeout.
type servedKey struct{}

// Server is hookd's HTTP server: the webhook route, health, readiness and metrics.
type Server struct {
	cfg    Config
	deps   Deps
	hook   *webhook
	routes *http.ServeMux
	log    zerolog.Logger
}

// New applies cfg's defaults, validates it and the dependencies, and registers the metrics. Nothing
// listens until Run.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Webhook && deps.JetStream == nil {
		return nil, errors.New("ingest: Deps.JetStream is required to serve the webhook")
	}
	if deps.Conn == nil && deps.JetStream != nil {
		deps.Conn = deps.JetStream.Conn()
	}
	secrets := make([][]byte, 0, len(deps.Secrets))
	for i, s := range deps.Secrets {
		if s == "" {
			return nil, fmt.Errorf("ingest: webhook secret #%d is empty; remove it from the list or set it", i)
		}
		secrets = append(secrets, []byte(s))
	}
	reg := deps.Registerer
	if !deps.Webhook {
		reg = nil
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if deps.Gatherer == nil {
		deps.Gatherer, _ = deps.Registerer.(prometheus.Gatherer)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	s := &Server{
		cfg:  cfg,
		deps: deps,
		log:  deps.Log.With().Str("component", "ingest").Logger(),
	}
	s.hook = &webhook{
		cfg:       cfg,
		secrets:   secrets,
		js:        deps.JetStream,
		nc:        deps.Conn,
		log:       s.log,
		m:         m,
		reqPrefix: hex.EncodeToString(rnd[:]) + "-",
	}
	s.routes = http.NewServeMux()
	if deps.Webhook {
		s.routes.Handle(cfg.PathPrefix+cfg.Path, s.hook)
	}
	s.routes.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	s.routes.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.ready(r.Context()); err != nil {
			writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
		writeText(w, http.StatusOK, "ready")
	})
	if deps.Gatherer != nil {
		s.routes.Handle("GET /metrics", promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{}))
	}
	if deps.Webhook && len(secrets) == 0 {
		s.log.Warn().Msg("no webhook secret configured: every delivery is answered 503 and /readyz fails; set the GitHub App's webhook secret")
	}
	return s, nil
}

// Handler is the webhook handler alone (the route's handler, without the mux), for tests and
// benchmarks.
func (s *Server) Handler() http.Handler { return s.hook }

// Routes is every route the server serves: the webhook (when Deps.Webhook), /healthz, /readyz and
// /metrics.
func (s *Server) Routes() http.Handler { return s.routes }

// Run listens on Config.Addr and serves until ctx is done, then shuts down gracefully (see Serve).
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("ingest: listen on %s: %w (is the port taken? set http.addr)", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then stops accepting connections, lets the requests in
// flight finish (their publishes are not cancelled by ctx) for at most Config.ShutdownTimeout,
// closes what is left and returns. It returns nil after a complete graceful shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	base := context.WithoutCancel(ctx)
	srv := &http.Server{
		Handler:           s.routes,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.HandlerTimeout + time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return context.WithValue(base, servedKey{}, true) },
		ErrorLog:          stdlog.New(s.log.With().Str("source", "net/http").Logger(), "", 0),
	}
	// HTTP/1.1, and HTTP/2 without TLS (prior knowledge) for an ingress that speaks h2c to its
	// backends (Envoy and Istio, Traefik's h2c://, Caddy's versions h2c): without it, every
	// delivery through such a proxy fails at the connection.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	s.log.Info().Str("addr", ln.Addr().String()).Bool("webhook", s.deps.Webhook).
		Str("path", s.cfg.PathPrefix+s.cfg.Path).Int("secrets", len(s.hook.secrets)).Msg("HTTP server listening")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("ingest: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info().Dur("timeout", s.cfg.ShutdownTimeout).Msg("HTTP server shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(base, s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc // http.ErrServerClosed, at once
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("ingest: requests still in flight after http.shutdown_timeout (%s) were cut off: %w", s.cfg.ShutdownTimeout, err)
	}
	s.log.Info().Msg("HTTP server stopped")
	return nil
}

// ready is /readyz: the connection's state, then the events stream and the extra checks, all
// within readyBudget.
func (s *Server) ready(ctx context.Context) error {
	if s.deps.Webhook && len(s.hook.secrets) == 0 {
		return ErrNoSecret
	}
	if nc := s.deps.Conn; nc != nil && !nc.IsConnected() {
		return fmt.Errorf("NATS connection is %s", nc.Status())
	}
	ctx, cancel := context.WithTimeout(ctx, readyBudget)
	defer cancel()
	// The checks run aside, so that one ignoring its context cannot hold /readyz past the budget.
	done := make(chan error, 1)
	go func() { done <- s.runChecks(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("readiness checks did not answer within %s", readyBudget)
	}
}

func (s *Server) runChecks(ctx context.Context) error {
	if js := s.deps.JetStream; js != nil {
		// A connected NATS may still have no JetStream to store in (a cluster without quorum, a
		// stream gone): ask the events stream, whose leader stores every delivery.
		if _, err := js.Stream(ctx, broker.StreamEvents); err != nil {
			return fmt.Errorf("JetStream: stream %s: %w", broker.StreamEvents, err)
		}
	}
	for i, check := range s.deps.Ready {
		if err := check(ctx); err != nil {
			return fmt.Errorf("readiness check #%d: %w", i, err)
		}
	}
	return nil
}

func writeText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}
