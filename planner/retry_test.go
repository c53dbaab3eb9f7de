package planner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
)

// statusError is the error go-github returns for an HTTP status without a rate-limit meaning.
func statusError(code int, retryAfter string) error {
	h := http.Header{}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return &github.ErrorResponse{Response: &http.Response{StatusCode: code, Header: h}, Message: http.StatusText(code)}
}

// rateLimited is GitHub's 429 primary rate limit: no Retry-After, remaining 0, reset at reset.
func rateLimited(reset time.Time) error {
	h := http.Header{}
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	return &github.ErrorResponse{Response: &http.Response{StatusCode: http.StatusTooManyRequests, Header: h}, Message: "API rate limit exceeded"}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		err   error
		class Class
		wait  time.Duration
	}{
		{"nil", nil, Unknown, 0},
		{"plain", errors.New("mystery"), Unknown, 0},
		{"explicit mark wins over the status", Permanent(statusError(503, "")), PermanentClass, 0},
		{"RetryAfter through %w", fmt.Errorf("x: %w", RetryAfter(errors.New("busy"), time.Minute)), TransientClass, time.Minute},
		{"5xx through %w", fmt.Errorf("GET /app: %w", statusError(502, "")), TransientClass, 0},
		{"429 with seconds", statusError(429, "120"), TransientClass, 2 * time.Minute},
		{"429 primary limit waits for the reset", fmt.Errorf("x: %w", rateLimited(now.Add(7*time.Minute))), TransientClass, 7 * time.Minute},
		{"429 without any hint waits a minute", statusError(429, ""), TransientClass, time.Minute},
		{"503 with an HTTP-date", statusError(503, now.Add(90*time.Second).Format(http.TimeFormat)), TransientClass, 90 * time.Second},
		{"503 with a past HTTP-date", statusError(503, now.Add(-time.Hour).Format(http.TimeFormat)), TransientClass, 0},
		{"503 with a negative Retry-After", statusError(503, "-5"), TransientClass, 0},
		{"503 with a malformed Retry-After", statusError(503, "12abc"), TransientClass, 0},
		{"503 with the largest int64 of seconds", statusError(503, "9223372036854775807"), TransientClass, math.MaxInt64},
		{"503 with more seconds than an int64", statusError(503, "99999999999999999999"), TransientClass, math.MaxInt64},
		{"4xx", fmt.Errorf("x: %w", statusError(404, "")), PermanentClass, 0},
		{"rate limit through %w", fmt.Errorf("x: %w", &github.RateLimitError{Rate: github.Rate{Reset: github.Timestamp{Time: now.Add(time.Minute)}}}), TransientClass, time.Minute},
		{"rate limit reset passed", &github.RateLimitError{Rate: github.Rate{Reset: github.Timestamp{Time: now.Add(-time.Minute)}}}, TransientClass, 0},
		{"secondary rate limit", fmt.Errorf("x: %w", &github.AbuseRateLimitError{RetryAfter: new(30 * time.Second)}), TransientClass, 30 * time.Second},
		{"secondary rate limit without a hint", &github.AbuseRateLimitError{}, TransientClass, time.Minute},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), TransientClass, 0},
		{"connection refused in url.Error", &url.Error{Op: "Get", URL: "https://api.github.com/app", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, TransientClass, 0},
		{"net.OpError through %w", fmt.Errorf("x: %w", &net.OpError{Op: "read", Err: errors.New("broken")}), TransientClass, 0},
		{"status inside url.Error", &url.Error{Op: "Get", URL: "u", Err: fmt.Errorf("mint token: %w", statusError(401, ""))}, PermanentClass, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			class, wait := Classify(tt.err, now)
			if class != tt.class || wait != tt.wait {
				t.Errorf("Classify(%v) = %s, %s; want %s, %s", tt.err, class, wait, tt.class, tt.wait)
			}
		})
	}
}

// TestDecideDelayBounds: whatever the attempt number and however extreme the (valid, or
// NaN) multiplier and cap, the delay stays within (0, max].
func TestDecideDelayBounds(t *testing.T) {
	t.Parallel()
	policies := map[string]RetryPolicy{
		"defaults":           {},
		"multiplier 1":       {Multiplier: 1},
		"multiplier +Inf":    {Multiplier: math.Inf(1)},
		"multiplier NaN":     {Multiplier: math.NaN()},
		"max is the largest": {Max: math.MaxInt64, UnknownMax: math.MaxInt64, Jitter: 1e-300},
		"tiny jitter":        {Jitter: 1e-300},
	}
	attempts := []int{-1, 0, 1, 2, 30, 64, 1025, 1 << 40, math.MaxInt - 1}
	for name, p := range policies {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p.Defaults()
			p.MaxAttempts = math.MaxInt
			for _, attempt := range attempts {
				for _, err := range []error{Transient(errors.New("t")), errors.New("unknown")} {
					d := p.Decide(PhaseWorker, err, attempt, time.Now())
					maxD := p.Max
					if d.Class == Unknown {
						maxD = p.UnknownMax
					}
					if !d.Retry || d.Delay <= 0 || d.Delay > maxD {
						t.Errorf("attempt %d, %s error: delay %s (retry %v); want in (0, %s]", attempt, d.Class, d.Delay, d.Retry, maxD)
					}
				}
			}
		})
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	p := testPolicy()
	now := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		phase   Phase
		err     error
		attempt int
		retry   bool
		min     time.Duration // Delay within [min, max]
		max     time.Duration
	}{
		{"preflight unknown is fatal", PhasePreflight, errors.New("x"), 1, false, 0, 0},
		{"preflight transient retries", PhasePreflight, Transient(errors.New("x")), 4, true, 8*time.Second - time.Millisecond, 8 * time.Second},
		{"preflight transient exhausted", PhasePreflight, Transient(errors.New("x")), 5, false, 0, 0},
		{"worker transient is never exhausted", PhaseWorker, Transient(errors.New("x")), 500, true, time.Minute - time.Millisecond, time.Minute},
		{"worker unknown takes the long backoff", PhaseWorker, errors.New("x"), 2, true, time.Minute - time.Millisecond, time.Minute},
		{"worker unknown exhausted", PhaseWorker, errors.New("x"), 5, false, 0, 0},
		{"permanent", PhaseWorker, Permanent(errors.New("x")), 1, false, 0, 0},
		{"an HTTP-date hint wins", PhaseWorker, statusError(503, now.Add(10*time.Minute).Format(http.TimeFormat)), 1, true, 10 * time.Minute, 10 * time.Minute},
		{"a shorter hint loses", PhaseWorker, RetryAfter(errors.New("x"), time.Millisecond), 3, true, 4*time.Second - time.Millisecond, 4 * time.Second},
		{"a hint is capped at an hour", PhaseWorker, statusError(503, "86400"), 1, true, time.Hour, time.Hour},
		{"408 is tried again", PhaseWorker, statusError(408, ""), 1, true, time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := p.Decide(tt.phase, tt.err, tt.attempt, now)
			if d.Retry != tt.retry || d.Delay < tt.min || d.Delay > tt.max {
				t.Errorf("Decide = %+v; want retry %v, delay in [%s, %s]", d, tt.retry, tt.min, tt.max)
			}
		})
	}
}

func TestRetryPolicyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  func(*RetryPolicy)
		want string // "" for valid
	}{
		{"defaults", func(*RetryPolicy) {}, ""},
		{"multiplier below 1", func(p *RetryPolicy) { p.Multiplier = 0.5 }, "retry.multiplier"},
		{"multiplier NaN", func(p *RetryPolicy) { p.Multiplier = math.NaN() }, "retry.multiplier"},
		{"jitter 1", func(p *RetryPolicy) { p.Jitter = 1 }, "retry.jitter"},
		{"jitter NaN", func(p *RetryPolicy) { p.Jitter = math.NaN() }, "retry.jitter"},
		{"max below initial", func(p *RetryPolicy) { p.Max = p.Initial / 2 }, "retry.initial/retry.max"},
		{"unknown max below initial", func(p *RetryPolicy) { p.UnknownMax = time.Second }, "retry.unknown_initial/retry.unknown_max"},
		{"max attempts", func(p *RetryPolicy) { p.MaxAttempts = -1 }, "retry.max_attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var p RetryPolicy
			p.Defaults()
			tt.mod(&p)
			err := p.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v; want it to name %s", err, tt.want)
			}
		})
	}
}

// TestClassifyRealClientErrors classifies errors as net/http's client makes them: a certificate
// that does not verify and a URL without a usable scheme are permanent (a setting to fix), a
// refused connection transient.
func TestClassifyRealClientErrors(t *testing.T) {
	t.Parallel()
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler()) // signed by no CA the client trusts
	t.Cleanup(tlsSrv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for _, tc := range []struct {
		name, url string
		class     Class
	}{
		{"certificate that does not verify", tlsSrv.URL, PermanentClass},
		{"no scheme", strings.TrimPrefix(tlsSrv.URL, "https://"), PermanentClass},
		{"another scheme", "ftp" + strings.TrimPrefix(tlsSrv.URL, "https"), PermanentClass},
		{"connection refused", closedURL, TransientClass},
	} {
		resp, err := http.Get(tc.url)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: GET %s succeeded", tc.name, tc.url)
		}
		if c, _ := Classify(fmt.Errorf("GET /app: %w", err), time.Now()); c != tc.class {
			t.Errorf("%s: Classify(%v) = %v, want %v", tc.name, err, c, tc.class)
		}
	}
}
