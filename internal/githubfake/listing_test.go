package githubfake_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/hookd/hookd/internal/githubfake"
)

// clock is a settable clock for Options.Now. It stays near the real time: ghinstallation signs
// its JWTs with time.Now.
type clock struct {
	mu   sync.Mutex
	base time.Time // a whole second
	at   time.Time
}

func newClock() *clock {
	b := time.Now().UTC().Truncate(time.Second)
	return &clock{base: b, at: b}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

// set moves the clock to base+d.
func (c *clock) set(d time.Duration) {
	c.mu.Lock()
	c.at = c.base.Add(d)
	c.mu.Unlock()
}

// ghTimestamp is GitHub's timestamp format: RFC 3339, UTC, whole seconds.
var ghTimestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)

// The issue listing the sweep reads: state=all&sort=updated&direction=asc&since=… with page and
// per_page, as GitHub answers it.
func TestIssueListing(t *testing.T) {
	t.Parallel()
	clk := newClock()
	clk.set(900 * time.Millisecond)
	e := setup(t, githubfake.Options{Now: clk.Now})
	s := clk.base
	// Second s holds #2; second s+1 holds #3, #4 and #1 (labeled last): changed in an order
	// that is not their numbers' within one second.
	steps := []struct {
		at time.Duration
		do func() error
	}{
		{900 * time.Millisecond, func() error { _, err := e.fake.OpenIssue("acme/widgets", "alice", "one", ""); return err }},
		{950 * time.Millisecond, func() error { _, err := e.fake.OpenIssue("acme/widgets", "alice", "two", ""); return err }},
		{1100 * time.Millisecond, func() error { _, err := e.fake.OpenIssue("acme/widgets", "alice", "three", ""); return err }},
		{1200 * time.Millisecond, func() error {
			_, err := e.fake.OpenPullRequest("acme/widgets", "bob", githubfake.PullRequest{Title: "four"})
			return err
		}},
		{1500 * time.Millisecond, func() error { return e.fake.LabelIssue("acme/widgets", 1, "bob", "bug") }},
	}
	for _, st := range steps {
		clk.set(st.at)
		if err := st.do(); err != nil {
			t.Fatal(err)
		}
	}
	list := func(t *testing.T, query url.Values) ([]*github.Issue, []map[string]any, *github.Response) {
		t.Helper()
		req, err := e.cli.NewRequest(http.MethodGet, "repos/acme/widgets/issues?"+query.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var raw json.RawMessage
		resp, err := e.cli.Do(e.ctx, req, &raw)
		if err != nil {
			t.Fatal(err)
		}
		var issues []*github.Issue
		var fields []map[string]any
		if err := json.Unmarshal(raw, &issues); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &fields); err != nil {
			t.Fatal(err)
		}
		return issues, fields, resp
	}
	numbers := func(is []*github.Issue) []int {
		out := []int{}
		for _, i := range is {
			out = append(out, i.GetNumber())
		}
		return out
	}
	q := func(kv ...string) url.Values {
		v := url.Values{"state": {"all"}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	at := func(d time.Duration) string { return s.Add(d).Format(time.RFC3339) }

	t.Run("sort and since", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			query url.Values
			want  []int
		}{
			{"ascending, ties by number", q("sort", "updated", "direction", "asc", "since", at(0)), []int{2, 1, 3, 4}},
			{"since is inclusive at whole seconds", q("sort", "updated", "direction", "asc", "since", at(time.Second)), []int{1, 3, 4}},
			{"since after every change", q("sort", "updated", "direction", "asc", "since", at(2*time.Second)), []int{}},
			{"descending by default", q("sort", "updated"), []int{4, 3, 1, 2}},
			{"created, descending by default", q(), []int{4, 3, 2, 1}},
			{"open only by default", url.Values{"sort": {"updated"}, "direction": {"asc"}}, []int{2, 1, 3, 4}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, _, _ := list(t, tc.query)
				if n := numbers(got); fmt.Sprint(n) != fmt.Sprint(tc.want) {
					t.Fatalf("%s: numbers %v, want %v", tc.query.Encode(), n, tc.want)
				}
			})
		}
	})
	t.Run("timestamps have whole seconds", func(t *testing.T) {
		got, fields, _ := list(t, q("sort", "updated", "direction", "asc"))
		want := map[int]time.Time{1: s.Add(time.Second), 2: s, 3: s.Add(time.Second), 4: s.Add(time.Second)}
		for i, is := range got {
			for _, k := range []string{"created_at", "updated_at"} {
				if v, _ := fields[i][k].(string); !ghTimestamp.MatchString(v) {
					t.Errorf("#%d %s = %q, want YYYY-MM-DDTHH:MM:SSZ", is.GetNumber(), k, v)
				}
			}
			if !is.GetUpdatedAt().Time.Equal(want[is.GetNumber()]) {
				t.Errorf("#%d updated_at = %v, want %v", is.GetNumber(), is.GetUpdatedAt().Time, want[is.GetNumber()])
			}
			snap, err := e.fake.Issue("acme/widgets", is.GetNumber())
			if err != nil || !snap.UpdatedAt.Equal(is.GetUpdatedAt().Time) {
				t.Errorf("#%d snapshot UpdatedAt %v (%v), listed %v", is.GetNumber(), snap.UpdatedAt, err, is.GetUpdatedAt().Time)
			}
		}
	})
	t.Run("pull requests are issues with a pull_request key", func(t *testing.T) {
		got, fields, _ := list(t, q())
		for i, is := range got {
			_, has := fields[i]["pull_request"]
			if isPR := is.GetNumber() == 4; has != isPR || is.IsPullRequest() != isPR {
				t.Errorf("#%d: pull_request key %v, IsPullRequest %v", is.GetNumber(), has, is.IsPullRequest())
			}
		}
	})
	t.Run("pages", func(t *testing.T) {
		base := q("sort", "updated", "direction", "asc", "since", at(0), "per_page", "3")
		got, _, resp := list(t, base)
		if n := numbers(got); fmt.Sprint(n) != "[2 1 3]" || resp.NextPage != 2 || resp.LastPage != 2 || resp.PrevPage != 0 {
			t.Fatalf("page 1: %v next %d last %d prev %d", n, resp.NextPage, resp.LastPage, resp.PrevPage)
		}
		base.Set("page", "2")
		got, _, resp = list(t, base)
		if n := numbers(got); fmt.Sprint(n) != "[4]" || resp.NextPage != 0 || resp.PrevPage != 1 || resp.FirstPage != 1 {
			t.Fatalf("page 2: %v next %d prev %d first %d", n, resp.NextPage, resp.PrevPage, resp.FirstPage)
		}
		// The next page keeps the query: the Link URL carries since, sort and direction.
		next, err := url.Parse(linkURL(t, resp.Header.Get("Link"), "first"))
		if err != nil || next.Query().Get("since") != at(0) || next.Query().Get("direction") != "asc" {
			t.Fatalf("Link first = %v (%v)", next, err)
		}
		base.Set("page", "3")
		if got, _, resp = list(t, base); len(got) != 0 || resp.NextPage != 0 {
			t.Fatalf("past the last page: %v next %d", numbers(got), resp.NextPage)
		}
	})
	t.Run("comments since", func(t *testing.T) {
		clk.set(1600 * time.Millisecond)
		iss, err := e.fake.OpenIssue("acme/gadgets", "alice", "c", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []time.Duration{1700 * time.Millisecond, 2100 * time.Millisecond} {
			clk.set(d)
			if _, err := e.fake.CommentIssue("acme/gadgets", iss.Number, "bob", "hi"); err != nil {
				t.Fatal(err)
			}
		}
		for since, want := range map[time.Duration]int{time.Second: 2, 2 * time.Second: 1, 3 * time.Second: 0} {
			from := s.Add(since)
			cs, _, err := e.cli.Issues.ListComments(e.ctx, "acme", "gadgets", iss.Number, &github.IssueListCommentsOptions{Since: &from})
			if err != nil || len(cs) != want {
				t.Fatalf("since +%v: %d comments (%v), want %d", since, len(cs), err, want)
			}
		}
	})
}

// linkURL returns the URL of rel in a Link header.
func linkURL(t *testing.T, link, rel string) string {
	t.Helper()
	m := regexp.MustCompile(`<([^>]*)>; rel="` + rel + `"`).FindStringSubmatch(link)
	if m == nil {
		t.Fatalf("no rel=%q in Link %q", rel, link)
	}
	return m[1]
}

func TestPrimaryRateLimit429(t *testing.T) {
	t.Parallel()
	e := setup(t, githubfake.Options{RateLimitStatus: http.StatusTooManyRequests})
	if _, _, err := e.cli.Repositories.Get(e.ctx, "acme", "widgets"); err != nil { // mints the token
		t.Fatal(err)
	}
	reset := e.fake.Now().Add(10 * time.Minute).Truncate(time.Second)
	e.fake.SetRateLimit(e.inst.ID, 0, reset)
	_, _, err := client(t, e.fake, e.cli.Client().Transport).Repositories.Get(e.ctx, "acme", "widgets")
	// go-github v60 decodes only a 403 as RateLimitError: a 429 is an ErrorResponse with the headers.
	var rl *github.RateLimitError
	var er *github.ErrorResponse
	if errors.As(err, &rl) || !errors.As(err, &er) || er.Response.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("error = %#v, want an ErrorResponse with status 429", err)
	}
	h := er.Response.Header
	if h.Get("X-RateLimit-Remaining") != "0" || h.Get("X-RateLimit-Reset") != fmt.Sprint(reset.Unix()) {
		t.Fatalf("headers %v", h)
	}
	if _, err := githubfake.New(githubfake.Options{RateLimitStatus: http.StatusServiceUnavailable}); err == nil {
		t.Fatal("RateLimitStatus 503 accepted")
	}
}
