package planner

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-github/v60/github"
)

// Class is how the retry policy treats an error.
type Class int

const (
	// Unknown errors were not classified by anyone. Preflights treat them as fatal; workers and
	// event handling retry them with the long backoff, logged loudly, up to MaxAttempts.
	Unknown Class = iota
	// TransientClass errors (network, 5xx, rate limits, explicit Transient/RetryAfter) are retried.
	TransientClass
	// PermanentClass errors (4xx other than rate limits, decode errors, explicit Permanent) are
	// never retried: a preflight fails, an event goes to the dead letters.
	PermanentClass
)

func (c Class) String() string {
	switch c {
	case TransientClass:
		return "transient"
	case PermanentClass:
		return "permanent"
	default:
		return "unknown"
	}
}

type classified struct {
	err   error
	class Class
	wait  time.Duration
}

func (c *classified) Error() string { return c.err.Error() }
func (c *classified) Unwrap() error { return c.err }

// Permanent marks err as not worth retrying: the work goes to the dead letters (events) or fails
// the phase (preflights).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, class: PermanentClass}
}

// Transient marks err as worth retrying with backoff.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, class: TransientClass}
}

// RetryAfter marks err as transient with a server-given wait: the retry happens no sooner than d.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, class: TransientClass, wait: d}
}

// Classify returns err's class and the server's wait hint (zero when there is none). Explicit
// marks (Permanent, Transient, RetryAfter) win; then go-github's rate-limit errors (primary: wait
// until the reset; secondary: Retry-After), HTTP statuses (5xx, 429 and 408 transient, waiting their
// Retry-After in seconds or as an HTTP-date; other 4xx permanent), and network errors
// (transient). now is used to turn a reset time or a date into a wait.
func Classify(err error, now time.Time) (Class, time.Duration) {
	if err == nil {
		return Unknown, 0
	}
	var c *classified
	if errors.As(err, &c) {
		return c.class, c.wait
	}
	var rl *github.RateLimitError
	if errors.As(err, &rl) {
		return TransientClass, max(0, rl.Rate.Reset.Time.Sub(now))
	}
	var abuse *github.AbuseRateLimitError
	if errors.As(err, &abuse) {
		if abuse.RetryAfter != nil {
			return TransientClass, *abuse.RetryAfter
		}
		return TransientClass, time.Minute
	}
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return classifyStatus(er.Response, now)
	}
	var ae *github.AcceptedError
	if errors.As(err, &ae) {
		return TransientClass, 0
	}
	var cert *tls.CertificateVerificationError
	if errors.As(err, &cert) {
		return PermanentClass, 0 // retrying does not fix a certificate (or the URL that reached it)
	}
	var ue *url.Error
	if errors.As(err, &ue) && (ue.Op == "parse" || strings.Contains(ue.Err.Error(), "unsupported protocol scheme")) {
		return PermanentClass, 0 // a URL setting that is not an http:// or https:// URL
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return TransientClass, 0
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return TransientClass, 0
	}
	return Unknown, 0
}

func classifyStatus(resp *http.Response, now time.Time) (Class, time.Duration) {
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		if d := ParseRetryAfter(resp.Header.Get("Retry-After"), now); d > 0 {
			return TransientClass, d
		}
		// GitHub answers its primary rate limit with 403 or 429 and x-ratelimit-remaining 0:
		// wait for x-ratelimit-reset. Any other 429 without Retry-After: at least a minute, as
		// GitHub asks of secondary limits.
		if resp.Header.Get("X-RateLimit-Remaining") == "0" {
			if reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
				return TransientClass, max(0, time.Unix(reset, 0).Sub(now))
			}
		}
		return TransientClass, time.Minute
	case resp.StatusCode == http.StatusRequestTimeout: // the server gave up waiting: try again
		return TransientClass, 0
	case resp.StatusCode >= 500:
		return TransientClass, ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	case resp.StatusCode >= 400:
		return PermanentClass, 0
	}
	return Unknown, 0
}

// ParseRetryAfter reads a Retry-After header in either of its forms, delay-seconds or an
// HTTP-date (RFC 9110, section 10.2.3). Missing, malformed, zero, negative and past values give
// 0; a number of seconds too large for a time.Duration gives the largest one.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case secs <= 0:
			return 0
		case secs > int64(math.MaxInt64/time.Second):
			return math.MaxInt64
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now))
	}
	return 0
}

// RetryPolicy is hookd's one retry policy, shared by preflights, workers and event handling.
// Zero fields take the documented defaults (see Defaults).
type RetryPolicy struct {
	// Initial is the first backoff for a transient error. Default 1s.
	Initial time.Duration `yaml:"initial"`
	// Max caps the backoff for transient errors. Default 5m.
	Max time.Duration `yaml:"max"`
	// Multiplier grows the backoff per attempt. Default 2.
	Multiplier float64 `yaml:"multiplier"`
	// UnknownInitial is the first backoff for unclassified errors in workers and event handling
	// (the long backoff). Default 30s; capped by UnknownMax.
	UnknownInitial time.Duration `yaml:"unknown_initial"`
	// UnknownMax caps the long backoff. Default 30m.
	UnknownMax time.Duration `yaml:"unknown_max"`
	// MaxAttempts is how many attempts of an event may fail with an unclassified error before it
	// is dead-lettered (transient errors are retried without limit, permanent ones dead-lettered
	// at once), and how many times a preflight is tried before it fails. Default 10.
	MaxAttempts int `yaml:"max_attempts"`
	// Jitter is the random fraction (0..1) taken off each backoff to spread retries. Default 0.2.
	Jitter float64 `yaml:"jitter"`
}

// Defaults fills unset fields.
func (p *RetryPolicy) Defaults() {
	if p.Initial == 0 {
		p.Initial = time.Second
	}
	if p.Max == 0 {
		p.Max = 5 * time.Minute
	}
	if p.Multiplier == 0 {
		p.Multiplier = 2
	}
	if p.UnknownInitial == 0 {
		p.UnknownInitial = 30 * time.Second
	}
	if p.UnknownMax == 0 {
		p.UnknownMax = 30 * time.Minute
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 10
	}
	if p.Jitter == 0 {
		p.Jitter = 0.2
	}
}

// Validate reports settings that cannot work.
func (p RetryPolicy) Validate() error {
	var errs []error
	if p.Initial <= 0 || p.Max < p.Initial {
		errs = append(errs, fmt.Errorf("retry.initial/retry.max: want 0 < initial <= max, got %s and %s", p.Initial, p.Max))
	}
	if p.UnknownInitial <= 0 || p.UnknownMax < p.UnknownInitial {
		errs = append(errs, fmt.Errorf("retry.unknown_initial/retry.unknown_max: want 0 < initial <= max, got %s and %s", p.UnknownInitial, p.UnknownMax))
	}
	if !(p.Multiplier >= 1) { // NaN too
		errs = append(errs, fmt.Errorf("retry.multiplier: want >= 1, got %v", p.Multiplier))
	}
	if p.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("retry.max_attempts: want >= 1, got %d", p.MaxAttempts))
	}
	if !(p.Jitter >= 0 && p.Jitter < 1) { // NaN too
		errs = append(errs, fmt.Errorf("retry.jitter: want 0 <= jitter < 1, got %v", p.Jitter))
	}
	return errors.Join(errs...)
}

// Phase says which rules apply to an unclassified error.
type Phase int

const (
	// PhasePreflight: one-shot checks; unknown errors are fatal.
	PhasePreflight Phase = iota
	// PhaseWorker: interval tasks, services and event handling; unknown errors retry on the long
	// backoff.
	PhaseWorker
)

func (p Phase) String() string {
	if p == PhasePreflight {
		return "preflight"
	}
	return "worker"
}

// Decision is what to do after a failed attempt.
type Decision struct {
	Class Class
	Retry bool          // false: give up (fail the preflight, dead-letter the event)
	Delay time.Duration // wait before the next attempt when Retry
}

// Decide applies the policy to the attempt-th failure (1-based) of work in phase. A server's wait
// hint (Retry-After, rate-limit reset) wins over the computed backoff when it is longer.
func (p RetryPolicy) Decide(phase Phase, err error, attempt int, now time.Time) Decision {
	p.Defaults()
	class, hint := Classify(err, now)
	d := Decision{Class: class}
	switch class {
	case PermanentClass:
		return d
	case Unknown:
		if phase == PhasePreflight || attempt >= p.MaxAttempts {
			return d
		}
		d.Retry, d.Delay = true, p.backoff(p.UnknownInitial, p.UnknownMax, attempt)
	case TransientClass:
		if attempt >= p.MaxAttempts && phase == PhasePreflight {
			return d
		}
		d.Retry, d.Delay = true, p.backoff(p.Initial, p.Max, attempt)
	}
	if hint > d.Delay {
		d.Delay = max(d.Delay, min(hint, maxHint))
	}
	return d
}

// maxHint caps a server's wait hint: GitHub's rate limits reset within the hour, and a larger
// Retry-After (or one that saturated) would park a task for good.
const maxHint = time.Hour

func (p RetryPolicy) backoff(initial, maxD time.Duration, attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := maxD // also when the growth is NaN or +Inf, or too large to convert back
	switch f := float64(initial) * math.Pow(p.Multiplier, float64(attempt-1)); {
	case f < float64(initial): // a Multiplier below 1, or negative (Validate rejects both)
		d = initial
	case f < float64(maxD):
		d = time.Duration(f)
	}
	if p.Jitter > 0 {
		d -= time.Duration(float64(d) * min(p.Jitter, 1) * rand.Float64())
	}
	return d
}
