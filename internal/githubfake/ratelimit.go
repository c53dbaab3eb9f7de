package githubfake

import (
	"net/http"
	"path"
	"strconv"
	"time"
)

// Stats is the fake's accounting for one installation (or, under id 0, for the app's JWT calls).
type Stats struct {
	// Requests answered and counted against the primary rate limit.
	Requests int
	// NotModified conditional requests answered 304, which cost nothing, like GitHub.
	NotModified int
	// RateLimited requests refused with 403 because the budget was exhausted.
	RateLimited int
	// Faults requests answered by an injected fault (secondary limit or 5xx).
	Faults int
	// TokensMinted installation tokens created for the installation (counted under its id).
	TokensMinted int
}

// Stats returns the accounting for installation id; id 0 is the app itself (JWT calls).
func (f *Fake) Stats(id int64) Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.statsLocked(id)
}

func (f *Fake) statsLocked(id int64) *Stats {
	s := f.stats[id]
	if s == nil {
		s = &Stats{}
		f.stats[id] = s
	}
	return s
}

// bucket is a primary rate-limit window.
type bucket struct {
	limit     int
	remaining int
	used      int
	reset     time.Time
}

// bucketLocked returns the window of id, starting a new one when the last one has reset.
func (f *Fake) bucketLocked(id int64, now time.Time) *bucket {
	b := f.buckets[id]
	if b == nil || !now.Before(b.reset) {
		b = &bucket{limit: f.opts.RateLimit, remaining: f.opts.RateLimit, reset: now.Add(time.Hour)}
		f.buckets[id] = b
	}
	return b
}

func (b *bucket) setHeaders(h http.Header, now time.Time) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(b.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(b.remaining, 0)))
	h.Set("X-RateLimit-Used", strconv.Itoa(b.used))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(b.reset.Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
}

// SetRateLimit sets the remaining primary budget of installation id (0: the app's JWT calls)
// until reset, when a full window starts again.
func (f *Fake) SetRateLimit(id int64, remaining int, reset time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.bucketLocked(id, f.nowLocked())
	b.remaining, b.reset = remaining, reset
	b.used = max(b.limit-remaining, 0)
}

func (f *Fake) getRateLimit(c *call) reply {
	b := f.bucketLocked(c.inst.ID, c.now)
	rate := map[string]int64{
		"limit": int64(b.limit), "remaining": int64(max(b.remaining, 0)),
		"used": int64(b.used), "reset": b.reset.Unix(),
	}
	return ok(map[string]any{"resources": map[string]any{"core": rate}, "rate": rate})
}

// Fault makes the next Times requests matching Method and Path fail.
type Fault struct {
	// Method to match; empty matches any.
	Method string
	// Path to match, a path.Match pattern relative to the API base with a leading slash,
	// e.g. "/repos/*/*/issues/*/comments". Empty matches any path.
	Path string
	// Times is how many requests fail; at least 1.
	Times int
	// Status of the response: 403 or 429 with Secondary, else a 5xx. Default 502.
	Status int
	// Secondary answers GitHub's secondary-rate-limit error (go-github v60 decodes a 403 one as
	// *github.AbuseRateLimitError; a 429 one as *github.ErrorResponse).
	Secondary bool
	// RetryAfter sets the Retry-After header (whole seconds) when positive.
	RetryAfter time.Duration
}

// SecondaryRateLimit is a Fault answering the next n requests on pathPattern with GitHub's
// 403 secondary rate limit and Retry-After.
func SecondaryRateLimit(pathPattern string, n int, retryAfter time.Duration) Fault {
	return Fault{Path: pathPattern, Times: n, Status: http.StatusForbidden, Secondary: true, RetryAfter: retryAfter}
}

// ServerError is a Fault answering the next n requests on pathPattern with status (a 5xx).
func ServerError(pathPattern string, n, status int) Fault {
	return Fault{Path: pathPattern, Times: n, Status: status}
}

// InjectFault adds a fault. Faults are matched in the order injected; a faulted request does not
// count against the primary rate limit.
func (f *Fake) InjectFault(ft Fault) {
	if ft.Times < 1 {
		ft.Times = 1
	}
	if ft.Status == 0 {
		ft.Status = http.StatusBadGateway
		if ft.Secondary {
			ft.Status = http.StatusForbidden
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &ft)
}

func (f *Fake) matchFaultLocked(r *http.Request) *Fault {
	for i, ft := range f.faults {
		if ft.Method != "" && ft.Method != r.Method {
			continue
		}
		if ft.Path != "" {
			if m, _ := path.Match(ft.Path, r.URL.Path); !m {
				continue
			}
		}
		ft.Times--
		if ft.Times <= 0 {
			f.faults = append(f.faults[:i], f.faults[i+1:]...)
		}
		return ft
	}
	return nil
}

func (ft *Fault) write(w http.ResponseWriter) {
	if ft.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((ft.RetryAfter+time.Second-1)/time.Second)))
	}
	if ft.Secondary {
		writeJSON(w, ft.Status, errorJSON{Message: msgSecondary, DocumentationURL: docsSecondary})
		return
	}
	if ft.Status >= 500 {
		writeJSON(w, ft.Status, errorJSON{Message: "Server Error", DocumentationURL: docsREST})
		return
	}
	writeJSON(w, ft.Status, errBody(http.StatusText(ft.Status)))
}
