package broker

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
)

// StartEmbedded starts an in-process nats-server with JetStream and file storage under
// cfg.DataDir/jetstream, listening on cfg.Listen, and waits until it accepts connections. The
// caller shuts it down with Shutdown and WaitForShutdown after everything using it has stopped.
func StartEmbedded(cfg Config, log zerolog.Logger) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats.listen %q: want host:port: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats.listen %q: bad port: %w", cfg.Listen, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:         "hookd-embedded",
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           filepath.Join(cfg.DataDir, "jetstream"),
		SyncAlways:         cfg.Sync == SyncAlways,
		SyncInterval:       cfg.SyncEvery,
		NoSigs:             true,
		MaxPayload:         32 << 20, // GitHub caps payloads at 25 MiB; headers come on top
		JetStreamMaxMemory: 256 << 20,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	fatal := make(chan string, 1)
	srv.SetLoggerV2(natsLogger{log.With().Str("component", "nats-server").Logger(), fatal}, false, false, false)
	go srv.Start()
	// The server reports what stops it from starting (a taken port, a store directory it cannot
	// use) through Fatalf and then never becomes ready: fail with its reason at once.
	for deadline := time.Now().Add(30 * time.Second); !srv.ReadyForConnections(100 * time.Millisecond); {
		select {
		case msg := <-fatal:
			srv.Shutdown()
			return nil, fmt.Errorf("embedded nats-server did not start: %s (a port in use: set nats.listen; a store that cannot be created or written: set nats.data_dir, now %s)", msg, cfg.DataDir)
		default:
		}
		if time.Now().After(deadline) {
			srv.Shutdown()
			return nil, fmt.Errorf("embedded nats-server did not become ready on %s within 30s (is the port taken? set nats.listen)", cfg.Listen)
		}
	}
	log.Info().Str("url", srv.ClientURL()).Str("store_dir", opts.StoreDir).Str("sync", cfg.Sync).Msg("embedded JetStream started")
	return srv, nil
}

// natsLogger adapts zerolog to nats-server's logger. fatal, when not nil, receives the first
// Fatalf message (the server calls Fatalf when it cannot start).
type natsLogger struct {
	l     zerolog.Logger
	fatal chan<- string
}

// Noticef is debug (the server's start-up banner is long) except for what an operator must see:
// a slow consumer means a client was disconnected and its in-flight work waits for ack_wait.
func (n natsLogger) Noticef(f string, v ...any) {
	if strings.Contains(f, "Slow Consumer") {
		n.l.Warn().Msgf(f, v...)
		return
	}
	n.l.Debug().Msgf(f, v...)
}

// Warnf is warn, except for the server's advice against payloads over 8 MB: hookd raises
// max_payload on purpose, because GitHub sends deliveries of up to 25 MiB.
func (n natsLogger) Warnf(f string, v ...any) {
	if strings.HasPrefix(f, "Maximum payloads over") {
		n.l.Debug().Msgf(f, v...)
		return
	}
	n.l.Warn().Msgf(f, v...)
}
func (n natsLogger) Fatalf(f string, v ...any) {
	n.l.Error().Msgf(f, v...)
	select {
	case n.fatal <- fmt.Sprintf(f, v...):
	default:
	}
}
func (n natsLogger) Errorf(f string, v ...any) { n.l.Error().Msgf(f, v...) }
func (n natsLogger) Debugf(f string, v ...any) { n.l.Trace().Msgf(f, v...) }
func (n natsLogger) Tracef(f string, v ...any) { n.l.Trace().Msgf(f, v...) }
