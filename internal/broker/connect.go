package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Connect opens a connection that reconnects forever (hookd outlives NATS restarts) and logs
// disconnects. The first connection must succeed within cfg.ConnectTimeout.
func Connect(ctx context.Context, url string, cfg Config, name string, log zerolog.Logger) (*nats.Conn, error) {
	timeout := cfg.ConnectTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	nc, err := nats.Connect(url,
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
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w (check nats.url / HOOKD_NATS_URL and that the server is up)", redact(url), err)
	}
	return nc, nil
}

// redact hides credentials in a NATS URL list.
func redact(url string) string {
	parts := strings.Split(url, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if s := strings.Index(p, "://"); s >= 0 && s < at {
				parts[i] = p[:s+3] + "***" + p[at:]
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
