package ghapp

import (
	"fmt"
	"net/http"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-github/v60/github"
)

// DefaultMutationSpacing is the least time between two mutating requests of one installation:
// GitHub asks integrations to wait at least one second between POST, PATCH, PUT and DELETE
// requests to stay clear of its secondary rate limits.
const DefaultMutationSpacing = time.Second

// governor paces GitHub's secondary rate limits in this process: per installation, mutating
// requests run one at a time, each at least a spacing after the previous one finished, and
// none before a Retry-After received for that installation has passed. Reads are neither
// spaced nor held.
type governor struct {
	mu    sync.Mutex
	lanes map[int64]*lane
}

// lane is one installation's mutating requests.
type lane struct {
	turn chan struct{} // holds a token while a mutation waits for its slot or is in flight

	mu      sync.Mutex
	next    time.Time // the end of the last mutation plus the spacing
	blocked time.Time // Retry-After of the last secondary rate limit
}

func newGovernor() *governor {
	return &governor{lanes: map[int64]*lane{}}
}

func (g *governor) lane(id int64) *lane {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.lanes[id]
	if l == nil {
		l = &lane{turn: make(chan struct{}, 1)}
		g.lanes[id] = l
	}
	return l
}

// transport is the governor's RoundTripper for installation id (0: the app) over next, spacing
// its mutations by spacing (<= 0: no spacing, still one at a time).
func (g *governor) transport(id int64, spacing time.Duration, next http.RoundTripper) http.RoundTripper {
	return governed{g: g, id: id, spacing: spacing, next: next}
}

type governed struct {
	g       *governor
	id      int64
	spacing time.Duration
	next    http.RoundTripper
}

func (t governed) RoundTrip(req *http.Request) (*http.Response, error) {
	l := t.g.lane(t.id)
	if !mutating(req) {
		resp, err := t.next.RoundTrip(req)
		l.noteRetryAfter(resp)
		return resp, err
	}
	ctx := req.Context()
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		closeBody(req)
		return nil, ctx.Err()
	}
	defer func() { <-l.turn }()

	l.mu.Lock()
	next, blocked := l.next, l.blocked
	l.mu.Unlock()
	now := time.Now()
	if deadline, ok := ctx.Deadline(); ok && blocked.After(now) && deadline.Before(blocked) {
		// The caller cannot wait that long: say when to come back instead of holding it.
		closeBody(req)
		return nil, blockedError(req, t.id, blocked.Sub(now))
	}
	if until := maxTime(next, blocked); until.After(now) {
		timer := time.NewTimer(until.Sub(now))
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			closeBody(req)
			return nil, ctx.Err()
		}
	}
	resp, err := t.next.RoundTrip(req)
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		// A 401 (stale token, replayed at once with a new one) created nothing.
		l.mu.Lock()
		l.next = time.Now().Add(t.spacing)
		l.mu.Unlock()
	}
	l.noteRetryAfter(resp)
	return resp, err
}

// noteRetryAfter holds the lane's mutations until the Retry-After of a secondary rate limit
// (a 403 or 429 carrying Retry-After) has passed.
func (l *lane) noteRetryAfter(resp *http.Response) {
	if resp == nil || (resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests) {
		return
	}
	d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	if !ok {
		return
	}
	until := time.Now().Add(d)
	l.mu.Lock()
	if until.After(l.blocked) {
		l.blocked = until
	}
	l.mu.Unlock()
}

// mutating reports whether req counts as content-creating for GitHub's secondary limits.
// Minting installation tokens is exempt: spacing it would delay every installation's first
// call by its rank in the queue.
func mutating(req *http.Request) bool {
	switch req.Method {
	case http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	return !isTokenMint(req)
}

func isTokenMint(req *http.Request) bool {
	if req.Method != http.MethodPost || path.Base(req.URL.Path) != "access_tokens" {
		return false
	}
	dir := path.Dir(path.Dir(req.URL.Path)) // .../app/installations/<id>/access_tokens
	return path.Base(dir) == "installations" && path.Base(path.Dir(dir)) == "app"
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(secs, 0)) * time.Second, secs > 0
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now), true
	}
	return 0, false
}

// blockedError is the *github.AbuseRateLimitError of a mutation refused because a secondary
// rate limit's Retry-After outlasts the caller's deadline; planner.Classify waits RetryAfter.
func blockedError(req *http.Request, id int64, retryAfter time.Duration) *github.AbuseRateLimitError {
	who := "the app"
	if id != 0 {
		who = fmt.Sprintf("installation %d", id)
	}
	return &github.AbuseRateLimitError{
		Response:   syntheticResponse(req, http.StatusForbidden),
		Message:    fmt.Sprintf("GitHub's secondary rate limit holds the mutations of %s for %s more, past the request's deadline; not making the request", who, retryAfter.Round(time.Second)),
		RetryAfter: &retryAfter,
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
