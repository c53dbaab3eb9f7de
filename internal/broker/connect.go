package broker

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Connect opens a connection that reconnects forever (hookd outlives NATS restarts) and logs
// disconnects. The first connection must succeed within cfg.ConnectTimeout, however many servers
// url lists, and before ctx ends; until then, servers that refuse the connection (not started
// yet, as when hookd and a NATS cluster are deployed together) are tried again.
func Connect(ctx context.Context, url string, cfg Config, name string, log zerolog.Logger) (*nats.Conn, error) {
	timeout := cfg.ConnectTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	go func() {
		wait := 250 * time.Millisecond
		for {
			nc, err := connect(url, timeout, name, log)
			if err == nil || !errors.Is(err, nats.ErrNoServers) || tctx.Err() != nil {
				done <- result{nc, err}
				return
			}
			log.Info().Err(err).Dur("retry_in", wait).Msg("NATS refuses connections (not up yet?); trying again within nats.connect_timeout")
			select {
			case <-time.After(wait):
			case <-tctx.Done():
				done <- result{nil, err}
				return
			}
			wait = min(2*wait, 2*time.Second)
		}
	}()
	var r result
	select {
	case r = <-done:
	case <-tctx.Done():
		// nats.Connect tries each listed server in turn, each within timeout, and cannot be
		// interrupted: a connection it makes after all is closed.
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		r.err = ctx.Err()
		if r.err == nil {
			r.err = fmt.Errorf("no connection within nats.connect_timeout (%s): %w", timeout, tctx.Err())
		}
	}
	if r.err != nil {
		err := r.err
		var uerr *neturl.Error
		if errors.As(err, &uerr) {
			err = fmt.Errorf("invalid URL: %w", uerr.Err) // the url.Error repeats the URL, credentials and all
		}
		return nil, fmt.Errorf("connect to NATS at %s: %w (check nats.url / HOOKD_NATS_URL and that the server is up)", RedactURL(url), err)
	}
	return r.nc, nil
}

func connect(url string, timeout time.Duration, name string, log zerolog.Logger) (*nats.Conn, error) {
	return nats.Connect(url,
		nats.Name(name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			if err == nil || c.IsClosed() {
				return // closed on purpose (shutdown)
			}
			log.Warn().Err(err).Msg("disconnected from NATS; reconnecting")
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info().Str("url", c.ConnectedUrlRedacted()).Msg("reconnected to NATS")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Error().Err(err).Str("subject", subj).Msg("NATS async error")
		}),
	)
}

// RedactURL hides the credentials (user:password@ or token@) of each URL of a comma-separated
// NATS URL list, with or without a scheme (nats.go accepts user:password@host:port), for
// errors, logs and printed configuration.
func RedactURL(url string) string {
	parts := strings.Split(url, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if s := strings.Index(p, "://"); s >= 0 && s < at {
				parts[i] = p[:s+3] + "***" + p[at:]
			} else {
				lead := p[:len(p)-len(strings.TrimLeft(p, " "))]
				parts[i] = lead + "***" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// IsDuplicateSubject reports whether a publish was refused because its per-delivery subject already
// holds a message: the delivery is already stored.
func IsDuplicateSubject(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "maximum messages per subject exceeded")
}

// IsStreamFull reports whether a publish was refused because the events stream reached its
// size limit.
func IsStreamFull(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (strings.Contains(apiErr.Description, "maximum bytes exceeded") ||
		strings.Contains(apiErr.Description, "maximum messages exceeded"))
}

// PublishOutcome interprets the result of publishing a delivery to the events stream: duplicate is
// true when the delivery was already stored (caught by the short Nats-Msg-Id window or by the
// one-message-per-delivery subject limit); err is non-nil only when the delivery is not stored.
func PublishOutcome(ack *jetstream.PubAck, err error) (duplicate bool, _ error) {
	switch {
	case err == nil:
		return ack != nil && ack.Duplicate, nil
	case IsDuplicateSubject(err):
		return true, nil
	default:
		return false, err
	}
}
