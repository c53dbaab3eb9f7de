package ghapp

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	seen := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   Rate
		ok     bool
	}{
		{"core", map[string]string{"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "12", "X-RateLimit-Reset": "1700000600", "X-RateLimit-Resource": "core"},
			Rate{Limit: 5000, Remaining: 12, Reset: time.Unix(1_700_000_600, 0), Seen: seen}, true},
		{"no resource header", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000600"},
			Rate{Remaining: 0, Reset: time.Unix(1_700_000_600, 0), Seen: seen}, true},
		{"search budget", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000600", "X-RateLimit-Resource": "search"}, Rate{}, false},
		{"no headers", nil, Rate{}, false},
		{"malformed reset", map[string]string{"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "soon"}, Rate{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			got, ok := ParseRate(h, seen)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("ParseRate = %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestWorthSharing(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	reset := t0.Add(time.Hour)
	shared := Rate{Limit: 5000, Remaining: 4000, Reset: reset, Seen: t0}
	for _, tc := range []struct {
		name string
		r    Rate
		want bool
	}{
		{"one request later", Rate{Limit: 5000, Remaining: 3999, Reset: reset, Seen: t0.Add(time.Second)}, false},
		{"half the limit crossed", Rate{Limit: 5000, Remaining: 2499, Reset: reset, Seen: t0.Add(time.Second)}, true},
		{"exhausted", Rate{Limit: 5000, Remaining: 0, Reset: reset, Seen: t0.Add(time.Second)}, true},
		{"refresh interval passed", Rate{Limit: 5000, Remaining: 3000, Reset: reset, Seen: t0.Add(budgetRefresh)}, true},
		{"refresh interval passed, nothing spent", Rate{Limit: 5000, Remaining: 4000, Reset: reset, Seen: t0.Add(budgetRefresh)}, false},
		{"new window", Rate{Limit: 5000, Remaining: 4999, Reset: reset.Add(time.Hour), Seen: t0.Add(time.Second)}, true},
		{"reset moved earlier", Rate{Limit: 5000, Remaining: 3999, Reset: t0.Add(3 * time.Second), Seen: t0.Add(time.Second)}, true},
		{"reset jitter", Rate{Limit: 5000, Remaining: 3999, Reset: reset.Add(time.Second), Seen: t0.Add(time.Second)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := worthSharing(shared, tc.r); got != tc.want {
				t.Fatalf("worthSharing = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRateExhausted(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	if w, ex := (Rate{Remaining: 0, Reset: now.Add(time.Minute)}).exhausted(now); !ex || w != time.Minute {
		t.Fatalf("exhausted = %s %v", w, ex)
	}
	for _, r := range []Rate{{Remaining: 1, Reset: now.Add(time.Minute)}, {Remaining: 0, Reset: now}, {Remaining: 0}} {
		if _, ex := r.exhausted(now); ex {
			t.Errorf("%+v exhausted", r)
		}
	}
}

func TestMutating(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method, path string
		want         bool
	}{
		{"GET", "/repos/a/b", false},
		{"HEAD", "/repos/a/b", false},
		{"POST", "/repos/a/b/issues/1/comments", true},
		{"PATCH", "/repos/a/b/issues/1", true},
		{"PUT", "/repos/a/b/issues/1/labels", true},
		{"DELETE", "/repos/a/b/issues/1/labels/x", true},
		{"POST", "/app/installations/42/access_tokens", false},
		{"POST", "/api/v3/app/installations/42/access_tokens", false},
		{"POST", "/app/hook/deliveries/7/attempts", true},
	} {
		req := &http.Request{Method: tc.method, URL: &url.URL{Path: tc.path}}
		if got := mutating(req); got != tc.want {
			t.Errorf("mutating(%s %s) = %v, want %v", tc.method, tc.path, got, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"60", time.Minute, true},
		{"0", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, false},
	} {
		if got, ok := parseRetryAfter(tc.v, now); got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %s %v, want %s %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}
