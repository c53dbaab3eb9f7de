package ghapp

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"
)

// Budget is an installation's primary rate-limit budget as hookd knows it, possibly shared by
// every replica (NewKVBudget). The App feeds it every response and asks it before every request.
type Budget interface {
	// Observe records the X-RateLimit-* headers of a response of installationID (0: the app's
	// JWT calls). It is called on the request path: it must not block on I/O, nor read or close
	// the body.
	Observe(installationID int64, resp *http.Response)
	// Check reports whether installationID's budget is exhausted (no request remaining, reset
	// in the future) and how long until it resets.
	Check(installationID int64) (wait time.Duration, exhausted bool)
}

// Rate is one installation's primary (core) rate limit, as GitHub's X-RateLimit-* headers say.
type Rate struct {
	// Limit is the window's size (X-RateLimit-Limit); 0 when the response did not say.
	Limit int `json:"limit,omitempty"`
	// Remaining requests in the window (X-RateLimit-Remaining).
	Remaining int `json:"remaining"`
	// Reset is when the window ends (X-RateLimit-Reset, whole seconds).
	Reset time.Time `json:"reset"`
	// Seen is when the response was received, by the replica that received it: the latest
	// observation wins.
	Seen time.Time `json:"seen"`
}

// exhausted reports whether no request remains before r.Reset, and the wait until then.
func (r Rate) exhausted(now time.Time) (time.Duration, bool) {
	if r.Reset.IsZero() || r.Remaining > 0 || !now.Before(r.Reset) {
		return 0, false
	}
	return r.Reset.Sub(now), true
}

// ParseRate reads the primary rate limit from a response's X-RateLimit-* headers. ok is false
// when they are absent or malformed, or when they describe another resource than "core" (the
// search and GraphQL budgets are separate and do not block REST calls).
func ParseRate(h http.Header, seen time.Time) (r Rate, ok bool) {
	if res := h.Get("X-RateLimit-Resource"); res != "" && res != "core" {
		return Rate{}, false
	}
	remaining, err := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	if err != nil {
		return Rate{}, false
	}
	reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil || reset <= 0 {
		return Rate{}, false
	}
	limit, _ := strconv.Atoi(h.Get("X-RateLimit-Limit"))
	return Rate{Limit: max(limit, 0), Remaining: max(remaining, 0), Reset: time.Unix(reset, 0), Seen: seen}, true
}

// budgetGate refuses requests of an installation whose budget is exhausted, without sending
// them: it answers the *github.RateLimitError GitHub would, so that planner.Classify waits for
// the reset.
type budgetGate struct {
	budget Budget
	id     int64
	next   http.RoundTripper
}

func (g budgetGate) RoundTrip(req *http.Request) (*http.Response, error) {
	wait, exhausted := g.budget.Check(g.id)
	if !exhausted {
		return g.next.RoundTrip(req)
	}
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, exhaustedError(req, g.id, time.Now().Add(wait))
}

// exhaustedError is the *github.RateLimitError of a request refused before it was sent.
func exhaustedError(req *http.Request, id int64, reset time.Time) *github.RateLimitError {
	who := "the app"
	if id != 0 {
		who = fmt.Sprintf("installation %d", id)
	}
	return &github.RateLimitError{
		Rate:     github.Rate{Remaining: 0, Reset: github.Timestamp{Time: reset}},
		Response: syntheticResponse(req, http.StatusForbidden),
		Message: fmt.Sprintf("the GitHub API rate limit of %s is exhausted until %s (shared budget); not making the request",
			who, reset.UTC().Format(time.RFC3339)),
	}
}

// syntheticResponse is the response attached to an error for a request that was not sent.
func syntheticResponse(req *http.Request, status int) *http.Response {
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode: status,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{},
		Body:       io.NopCloser(strings.NewReader("")),
		Request:    req,
	}
}
