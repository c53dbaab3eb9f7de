package processor

import (
	"errors"
	"fmt"
	"time"

	"github.com/hookd/hookd/planner"
)

// Config is the `processor` section of hookd's configuration. The zero value, after Defaults, is
// a working configuration; every field documents its default.
type Config struct {
	// Concurrency is how many tenants one replica handles at once, over all partitions. A
	// tenant's events are always handled one at a time. Default 64.
	Concurrency int `yaml:"concurrency"`
	// MaxAckPending is how many events of one partition may be out of the stream and not yet
	// acknowledged at once: buffered in tenant queues, running, or waiting for a retry. It is the
	// read-ahead window within which a quiet repository overtakes a busy one in the same
	// partition: a quiet repository's event waits behind another repository's burst only for the
	// part of the burst beyond the window. When it is reached the server stops delivering to the
	// partition (back-pressure). Payloads beyond ReadAheadBytes are not held, so the window costs
	// a few hundred bytes per event. Default 8192. See docs/ARCHITECTURE.md "Fairness".
	MaxAckPending int `yaml:"max_ack_pending"`
	// ReadAheadBytes bounds the payload bytes one replica holds for events received before their
	// turn, over all its partitions. Events received beyond it are held without their payload,
	// which is read back from the stream (one direct get) when their turn comes. Default 16 MiB
	// (16777216); at least 1 MiB.
	ReadAheadBytes int64 `yaml:"read_ahead_bytes"`
	// AckWait is how long the server waits for an acknowledgement before it re-delivers an event
	// (to this replica, or to the survivor after a failover). Events that wait in a tenant queue
	// or run long are kept alive with "in progress" signals every AckWait/4. Default 10s.
	AckWait time.Duration `yaml:"ack_wait"`
	// PinnedTTL is the failover bound: the server moves a partition to another replica when the
	// pinned replica has not asked for events for this long. It must exceed AckWait plus the pull
	// expiry (AckWait/4, at least 1s) so that the events a dead replica held are re-deliverable
	// before any survivor receives later ones (see docs/ARCHITECTURE.md). Default 15s.
	PinnedTTL time.Duration `yaml:"pinned_ttl"`
	// HandlerTimeout bounds one handler call; the handler's context is cancelled after it and the
	// attempt counts as a transient failure. Default 5m.
	HandlerTimeout time.Duration `yaml:"handler_timeout"`
	// ShutdownTimeout is how long in-flight handlers may run after shutdown begins before their
	// contexts are cancelled. Default 20s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// BotLogin is this app's bot account, "<app-slug>[bot]". Events sent by it are not dispatched
	// to handlers unless they opt in with AllowBotEvents (feedback-loop prevention). Empty
	// (default): no event is filtered; set it in production.
	BotLogin string `yaml:"bot_login"`
	// Consumer is the prefix of the durable consumers' names; partition p's consumer is
	// "<Consumer>_<p>". Default "hookd_processor". Change it only to run two independent
	// processors against one stream.
	Consumer string `yaml:"consumer"`
	// Retry is the retry policy for failed handlers (planner.RetryPolicy, the one retry policy):
	// transient errors back off from retry.initial to retry.max; unclassified errors use the long
	// backoff and are dead-lettered after retry.max_attempts attempts; permanent errors at once.
	// Set from the top-level retry section (one policy for the whole process), not in the file.
	Retry planner.RetryPolicy `yaml:"-"`
}

// PriorityGroup is the priority group every partition consumer is created with.
const PriorityGroup = "hookd"

// Defaults fills unset fields with their documented defaults.
func (c *Config) Defaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 8192
	}
	if c.ReadAheadBytes == 0 {
		c.ReadAheadBytes = 16 << 20
	}
	if c.AckWait == 0 {
		c.AckWait = 10 * time.Second
	}
	if c.PinnedTTL == 0 {
		c.PinnedTTL = 15 * time.Second
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 5 * time.Minute
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.Consumer == "" {
		c.Consumer = "hookd_processor"
	}
	c.Retry.Defaults()
}

// pullExpiry is how long one pull request waits on the server; the pinned replica renews its
// pull (and so its pin) at least this often.
func (c Config) pullExpiry() time.Duration {
	return min(max(c.AckWait/4, time.Second), 30*time.Second)
}

// keepAlive is how often held events are kept alive with an "in progress" signal.
func (c Config) keepAlive() time.Duration { return max(c.AckWait/4, 100*time.Millisecond) }

// Validate reports every problem at once, each naming the setting to change.
func (c Config) Validate() error {
	var errs []error
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("processor.concurrency: want >= 1, got %d", c.Concurrency))
	}
	if c.MaxAckPending < 1 {
		errs = append(errs, fmt.Errorf("processor.max_ack_pending: want >= 1, got %d", c.MaxAckPending))
	}
	if c.ReadAheadBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("processor.read_ahead_bytes: want >= 1048576 (1 MiB), got %d", c.ReadAheadBytes))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("processor.ack_wait: want >= 1s, got %s", c.AckWait))
	}
	if need := c.AckWait + c.pullExpiry(); c.PinnedTTL < need {
		errs = append(errs, fmt.Errorf("processor.pinned_ttl: %s is too short for processor.ack_wait %s: want >= %s (ack_wait + ack_wait/4) so that a dead replica's events come back before a survivor gets later ones; raise pinned_ttl or lower ack_wait", c.PinnedTTL, c.AckWait, need))
	}
	if c.HandlerTimeout <= 0 {
		errs = append(errs, fmt.Errorf("processor.handler_timeout: must be positive, got %s", c.HandlerTimeout))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("processor.shutdown_timeout: must be positive, got %s", c.ShutdownTimeout))
	}
	if !validName(c.Consumer) {
		errs = append(errs, fmt.Errorf("processor.consumer: %q: use letters, digits, '-' and '_'", c.Consumer))
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, err) // the top-level retry section: its messages name retry.<key>
	}
	return errors.Join(errs...)
}

// validName reports whether s is usable as a handler or consumer name: 1..64 of letters, digits,
// '-' and '_' (one token in subjects, KV keys and headers).
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
