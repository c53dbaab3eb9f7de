package sweep

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/githubfake"
)

func TestSweep(t *testing.T) {
	t.Parallel()

	t.Run("an unchanged repository costs one 304 and no rate limit", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			t.Fatal(err)
		}
		e.markSeen(e.api, 1)
		e.fake.Advance(5 * time.Minute)
		if rep := e.sweep(e.svc, e.api); rep.Outcome != OutcomeClean || rep.Calls != 1 || rep.Listed != 1 {
			t.Fatalf("first pass: %+v", rep)
		}
		before := e.fake.Stats(e.inst.ID)
		e.fake.Advance(e.svc.cfg.MaxInterval)
		rep := e.sweep(e.svc, e.api)
		after := e.fake.Stats(e.inst.ID)
		if rep.Outcome != OutcomeUnchanged || rep.Calls != 0 || rep.NotModified != 1 {
			t.Fatalf("second pass: %+v", rep)
		}
		if after.Requests != before.Requests || after.NotModified != before.NotModified+1 {
			t.Fatalf("second pass spent rate limit: before %+v after %+v", before, after)
		}
	})

	t.Run("drift during a webhook outage becomes one reconcile event", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", "it breaks"); err != nil {
			t.Fatal(err)
		}
		e.markSeen(e.api, 1) // hookd handled the opening
		e.fake.Advance(time.Minute)
		e.fake.SetWebhookOutage(true)
		if err := e.fake.LabelIssue("acme/api", 1, "bob", "triage"); err != nil {
			t.Fatal(err)
		}
		e.fake.SetWebhookOutage(false)
		is, _ := e.fake.Issue("acme/api", 1)

		// Too recent: the webhook may still be on its way.
		e.fake.Advance(30 * time.Second)
		if rep := e.sweep(e.svc, e.api); rep.Drift != 0 || rep.Deferred != 1 {
			t.Fatalf("young change: %+v", rep)
		}
		e.fake.Advance(e.svc.cfg.MaxInterval)
		rep := e.sweep(e.svc, e.api)
		if rep.Outcome != OutcomeDrift || rep.Drift != 1 {
			t.Fatalf("pass: %+v", rep)
		}
		msgs := e.reconciles()
		if len(msgs) != 1 {
			t.Fatalf("%d reconcile events stored, want 1", len(msgs))
		}
		m := msgs[0]
		id := ReconcileDeliveryID(e.api.RepositoryID, 1, is.UpdatedAt)
		ss, err := event.ParseStoredSubject(m.Subject)
		if err != nil {
			t.Fatal(err)
		}
		if ss.InstallationID != e.inst.ID || ss.RepositoryID != e.api.RepositoryID || ss.Event != "issues" || ss.Delivery != id {
			t.Fatalf("subject %s, want installation %d repository %d issues %s", m.Subject, e.inst.ID, e.api.RepositoryID, id)
		}
		meta, err := event.MetaFromHeader(m.Header)
		if err != nil {
			t.Fatal(err)
		}
		if meta.Action != "reconcile" || meta.Source != event.SourceReconcile || meta.Sender != e.fake.BotLogin() ||
			meta.SenderType != "Bot" || meta.Repository != "acme/api" || meta.InstallationID != e.inst.ID {
			t.Fatalf("meta %+v", meta)
		}
		var p struct {
			Action string `json:"action"`
			Issue  struct {
				Number int `json:"number"`
				Labels []struct {
					Name string `json:"name"`
				} `json:"labels"`
				UpdatedAt time.Time `json:"updated_at"`
			} `json:"issue"`
			Repository struct {
				ID       int64  `json:"id"`
				FullName string `json:"full_name"`
				Name     string `json:"name"`
				Owner    struct {
					Login string `json:"login"`
				} `json:"owner"`
			} `json:"repository"`
			Installation struct {
				ID int64 `json:"id"`
			} `json:"installation"`
			Sender struct {
				Login string `json:"login"`
				Type  string `json:"type"`
			} `json:"sender"`
		}
		if err := json.Unmarshal(m.Data, &p); err != nil {
			t.Fatal(err)
		}
		if p.Action != "reconcile" || p.Issue.Number != 1 || len(p.Issue.Labels) != 1 || p.Issue.Labels[0].Name != "triage" ||
			p.Repository.ID != e.api.RepositoryID || p.Repository.FullName != "acme/api" || p.Repository.Name != "api" ||
			p.Repository.Owner.Login != "acme" || p.Installation.ID != e.inst.ID || p.Sender.Type != "Bot" {
			t.Fatalf("payload %s", m.Data)
		}
		// The processor's metadata extraction agrees.
		var pm event.Meta
		if err := event.ParsePayload(&pm, m.Data); err != nil || pm.InstallationID != e.inst.ID || pm.RepositoryID != e.api.RepositoryID {
			t.Fatalf("ParsePayload: %+v %v", pm, err)
		}

		// Again: nothing new (304, or the same deterministic id).
		e.fake.Advance(e.svc.cfg.MaxInterval)
		if rep := e.sweep(e.svc, e.api); rep.Drift != 0 {
			t.Fatalf("second pass: %+v", rep)
		}
		// Without the ETag and cursor (a full listing): still stored once.
		if err := e.svc.sweep.Delete(e.ctx, repoKey(e.api)); err != nil {
			t.Fatal(err)
		}
		if rep := e.sweep(e.svc, e.api); rep.Drift != 0 || rep.Duplicates != 1 {
			t.Fatalf("full relisting: %+v", rep)
		}
		// Once the processor recorded the change: no drift at all.
		e.markSeen(e.api, 1)
		if err := e.svc.sweep.Delete(e.ctx, repoKey(e.api)); err != nil {
			t.Fatal(err)
		}
		if rep := e.sweep(e.svc, e.api); rep.Outcome != OutcomeClean || rep.Drift != 0 || rep.Duplicates != 0 || rep.Listed != 1 {
			t.Fatalf("after the state caught up: %+v", rep)
		}
		if n := len(e.reconciles()); n != 1 {
			t.Fatalf("%d reconcile events, want 1", n)
		}
	})

	t.Run("a pull request's reconcile event carries the pull request", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		e.fake.SetWebhookOutage(true)
		pr, err := e.fake.OpenPullRequest("acme/api", "alice", githubfake.PullRequest{Title: "fix"})
		if err != nil {
			t.Fatal(err)
		}
		e.fake.Advance(5 * time.Minute)
		if rep := e.sweep(e.svc, e.api); rep.Drift != 1 || rep.Calls != 2 {
			t.Fatalf("pass: %+v", rep)
		}
		msgs := e.reconciles()
		if len(msgs) != 1 {
			t.Fatalf("%d events", len(msgs))
		}
		ss, _ := event.ParseStoredSubject(msgs[0].Subject)
		var p struct {
			Number      int `json:"number"`
			PullRequest struct {
				Number int `json:"number"`
				Head   struct {
					SHA string `json:"sha"`
				} `json:"head"`
			} `json:"pull_request"`
			Issue json.RawMessage `json:"issue"`
		}
		if err := json.Unmarshal(msgs[0].Data, &p); err != nil {
			t.Fatal(err)
		}
		if ss.Event != "pull_request" || p.Number != pr.Number || p.PullRequest.Number != pr.Number || p.PullRequest.Head.SHA == "" || p.Issue != nil {
			t.Fatalf("subject %s payload %s", msgs[0].Subject, msgs[0].Data)
		}
	})

	t.Run("a drifted pull request is fetched once while its reconcile event waits", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		e.fake.SetWebhookOutage(true)
		if _, err := e.fake.OpenPullRequest("acme/api", "alice", githubfake.PullRequest{Title: "fix"}); err != nil {
			t.Fatal(err)
		}
		e.fake.Advance(5 * time.Minute)
		if rep := e.sweep(e.svc, e.api); rep.Drift != 1 || rep.Calls != 2 {
			t.Fatalf("first pass: %+v", rep)
		}
		// The processor has not handled the reconcile event yet; another change makes the
		// listing answer 200 again.
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			t.Fatal(err)
		}
		e.fake.Advance(5 * time.Minute)
		if rep := e.sweep(e.svc, e.api); rep.Drift != 1 || rep.Duplicates != 1 || rep.Calls != 1 {
			t.Fatalf("second pass: %+v, want the listing as its only call (the pull request's event is stored)", rep)
		}
	})

	t.Run("a listing that fails midway carries on after the pages it read", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		const n = 2*perPage + 50
		e.lostIssuesApart(n) // every change is lost: only the sweep finds them
		e.fake.Advance(e.svc.cfg.DriftMinAge)
		// GitHub answers 502 to the listing's second page.
		var lists atomic.Int32
		hook := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err == nil && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/repos/acme/api/issues") && lists.Add(1) == 1 {
				e.fake.InjectFault(githubfake.ServerError("/repos/acme/api/issues", 1, http.StatusBadGateway))
			}
			return resp, err
		})
		svc := e.serviceOver(hook)
		rep, err := svc.sweepOnce(e.ctx, e.api)
		if err == nil || rep.Drift != perPage {
			t.Fatalf("pass with a 502 on page 2: %+v %v", rep, err)
		}
		// The next pass starts after the page read: two calls for the 150 items left, not
		// three for all of them again.
		rep = e.sweep(svc, e.api)
		if rep.Drift != n-perPage || rep.Calls != 2 || rep.Duplicates > 1 {
			t.Fatalf("pass after the 502: %+v", rep)
		}
		got := e.reconciledIssues()
		for i := 1; i <= n; i++ {
			if !got[i] {
				t.Fatalf("issue %d has no reconcile event", i)
			}
		}
	})

	t.Run("an item updated while the listing is read does not push another off its pages", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		const n = perPage + 50
		e.lostIssuesApart(n) // every change is lost: only the sweep finds them
		e.fake.Advance(e.svc.cfg.DriftMinAge)
		// After the first page, issue 1 (read on it) is updated and moves to the listing's end.
		var lists atomic.Int32
		hook := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err == nil && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/repos/acme/api/issues") && lists.Add(1) == 1 {
				if err := e.fake.LabelIssue("acme/api", 1, "bob", "triage"); err != nil {
					t.Error(err)
				}
			}
			return resp, err
		})
		svc := e.serviceOver(hook)
		rep := e.sweep(svc, e.api)
		if lists.Load() < 2 || rep.Drift != n || rep.Deferred != 1 {
			t.Fatalf("pass over %d listing pages: %+v, want %d drifted and issue 1 deferred after its update", lists.Load(), rep, n)
		}
		got := e.reconciledIssues()
		for i := 2; i <= n; i++ {
			if !got[i] {
				t.Fatalf("issue %d has no reconcile event: the listing passed over it", i)
			}
		}
	})

	t.Run("more than a page of items changed in one second are all read", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		const n = perPage + 50
		e.fake.SetWebhookOutage(true)
		for range n { // the fake's clock stands still: one updated_at for all
			if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
				t.Fatal(err)
			}
		}
		e.fake.SetWebhookOutage(false)
		e.fake.Advance(e.svc.cfg.DriftMinAge + time.Second)
		if rep := e.sweep(e.svc, e.api); rep.Drift != n || rep.Calls > 3 {
			t.Fatalf("pass: %+v, want %d drifted in at most 3 calls", rep, n)
		}
	})

	t.Run("events nobody subscribes to are not emitted", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{}, func(o *Options) { o.Subscribed = func(ev string) bool { return ev == "pull_request" } })
		e.fake.SetWebhookOutage(true)
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			t.Fatal(err)
		}
		e.fake.Advance(5 * time.Minute)
		if rep := e.sweep(e.svc, e.api); rep.Drift != 0 || rep.Listed != 1 {
			t.Fatalf("pass: %+v", rep)
		}
	})

	t.Run("the first pass looks back only so far", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{Lookback: time.Hour})
		e.fake.SetWebhookOutage(true)
		if _, err := e.fake.OpenIssue("acme/api", "alice", "old", ""); err != nil {
			t.Fatal(err)
		}
		e.fake.Advance(2 * time.Hour)
		if _, err := e.fake.OpenIssue("acme/api", "alice", "new", ""); err != nil {
			t.Fatal(err)
		}
		e.fake.Advance(5 * time.Minute)
		if rep := e.sweep(e.svc, e.api); rep.Drift != 1 || rep.Listed != 1 {
			t.Fatalf("pass: %+v", rep)
		}
	})

	t.Run("quiet repositories slow down, active ones speed up", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{Interval: 4 * time.Minute, MinInterval: time.Minute, MaxInterval: 16 * time.Minute, QuietPasses: 2})
		pass := func() SweepReport {
			rep := e.sweep(e.svc, e.api)
			st := e.repoState(e.api)
			e.fake.Advance(st.NextDue.Sub(e.fake.Now()) + time.Second)
			return rep
		}
		pass() // first listing: empty
		var got []time.Duration
		for range 6 {
			pass()
			got = append(got, e.repoState(e.api).Interval)
		}
		want := []time.Duration{8 * time.Minute, 8 * time.Minute, 16 * time.Minute, 16 * time.Minute, 16 * time.Minute, 16 * time.Minute}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("intervals %v, want %v", got, want)
			}
		}
		if rep := e.sweep(e.svc, e.api); rep.Outcome != OutcomeUnchanged {
			t.Fatalf("quiet pass: %+v", rep)
		}
		// Not due a moment later.
		if rep := e.sweep(e.svc, e.api); rep.Outcome != OutcomeNotDue {
			t.Fatalf("pass before due: %+v", rep)
		}
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			t.Fatal(err)
		}
		e.fake.Advance(17 * time.Minute)
		e.sweep(e.svc, e.api)
		if st := e.repoState(e.api); st.Interval != time.Minute {
			t.Fatalf("after a change the interval is %s, want 1m", st.Interval)
		}
	})

	t.Run("a low rate limit is left to event handling", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{RateLimitShare: 0.5})
		e.fake.SetRateLimit(e.inst.ID, 2000, e.fake.Now().Add(time.Hour))
		if rep := e.sweep(e.svc, e.api); rep.Outcome == OutcomeRateLimited {
			t.Fatalf("first pass had no rate information yet: %+v", rep)
		}
		e.fake.Advance(e.svc.cfg.MaxInterval)
		before := e.fake.Stats(e.inst.ID)
		// Below the share a conditional pass still runs: the unchanged repository answers 304,
		// which spends nothing.
		if rep := e.sweep(e.svc, e.api); rep.Outcome == OutcomeRateLimited || rep.Calls != 0 || rep.NotModified != 1 {
			t.Fatalf("conditional pass with 1999/5000 left: %+v", rep)
		}
		if after := e.fake.Stats(e.inst.ID); after.Requests != before.Requests {
			t.Fatalf("a 304 pass spent rate limit: %+v -> %+v", before, after)
		}
		// With nothing left, no pass at all.
		reset := e.fake.Now().Add(time.Hour)
		e.fake.SetRateLimit(e.inst.ID, 0, reset)
		// What event handling's response tells every client's observer.
		e.svc.ObserveResponse(e.inst.ID, &http.Response{StatusCode: http.StatusOK, Header: http.Header{
			"X-Ratelimit-Limit": {"5000"}, "X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(reset.Unix(), 10)},
		}})
		e.fake.Advance(e.svc.cfg.MaxInterval)
		before = e.fake.Stats(e.inst.ID)
		if rep := e.sweep(e.svc, e.api); rep.Outcome != OutcomeRateLimited {
			t.Fatalf("pass with 0/5000 left: %+v", rep)
		}
		if after := e.fake.Stats(e.inst.ID); after != before {
			t.Fatalf("a skipped pass made requests: %+v -> %+v", before, after)
		}
		// After the reset the sweep resumes.
		e.fake.Advance(time.Hour)
		if rep := e.sweep(e.svc, e.api); rep.Outcome == OutcomeRateLimited {
			t.Fatalf("pass after the reset: %+v", rep)
		}
	})

	t.Run("with the whole budget shared, nothing left still skips the pass", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{RateLimitShare: 1})
		reset := e.fake.Now().Add(time.Hour)
		e.fake.SetRateLimit(e.inst.ID, 0, reset)
		e.svc.ObserveResponse(e.inst.ID, &http.Response{StatusCode: http.StatusOK, Header: http.Header{
			"X-Ratelimit-Limit": {"5000"}, "X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(reset.Unix(), 10)},
		}})
		before := e.fake.Stats(e.inst.ID)
		if rep, err := e.svc.sweepOnce(e.ctx, e.api); err != nil || rep.Outcome != OutcomeRateLimited {
			t.Fatalf("pass with 0/5000 left and rate_limit_share 1: %+v %v", rep, err)
		}
		if after := e.fake.Stats(e.inst.ID); after != before {
			t.Fatalf("a skipped pass made requests: %+v -> %+v", before, after)
		}
	})

	t.Run("only the installation's core budget counts", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{RateLimitShare: 0.5})
		for _, tc := range []struct {
			name   string
			status int
			header map[string]string
		}{
			// Event handling searched: the search budget (30 a minute) is nearly spent.
			{"search budget", http.StatusOK, map[string]string{"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "1", "X-RateLimit-Resource": "search"}},
			{"graphql budget", http.StatusOK, map[string]string{"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0", "X-RateLimit-Resource": "graphql"}},
			// A revoked token's 401 carries the unauthenticated budget of the caller's IP.
			{"401", http.StatusUnauthorized, map[string]string{"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0"}},
		} {
			h := http.Header{"X-Ratelimit-Reset": {strconv.FormatInt(e.fake.Now().Add(time.Hour).Unix(), 10)}}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			e.svc.ObserveResponse(e.inst.ID, &http.Response{StatusCode: tc.status, Header: h})
			if rep := e.sweep(e.svc, e.api); rep.Outcome == OutcomeRateLimited {
				t.Fatalf("after a response with the %s: %+v", tc.name, rep)
			}
			e.fake.Advance(e.svc.cfg.MaxInterval)
		}
	})

	t.Run("what other replicas saw of the rate limit counts too", func(t *testing.T) {
		t.Parallel()
		var shared atomic.Pointer[[3]int64] // limit, remaining, reset (unix)
		e := setup(t, Config{RateLimitShare: 0.5}, func(o *Options) {
			o.SharedRate = func(id int64) (int, int, time.Time, bool) {
				v := shared.Load()
				if v == nil {
					return 0, 0, time.Time{}, false
				}
				return int(v[0]), int(v[1]), time.Unix(v[2], 0), true
			}
		})
		// Another replica's handlers spent the installation's budget; this process has seen
		// nothing yet (its own GitHub still answers with plenty left).
		shared.Store(&[3]int64{5000, 10, e.fake.Now().Add(time.Hour).Unix()})
		before := e.fake.Stats(e.inst.ID)
		if rep := e.sweep(e.svc, e.api); rep.Outcome != OutcomeRateLimited {
			t.Fatalf("pass with 10/5000 left on another replica: %+v", rep)
		}
		if after := e.fake.Stats(e.inst.ID); after != before {
			t.Fatalf("a skipped pass made requests: %+v -> %+v", before, after)
		}
		// A shared observation from a window that has ended does not hold sweeps back.
		shared.Store(&[3]int64{5000, 10, e.fake.Now().Add(-time.Minute).Unix()})
		if rep := e.sweep(e.svc, e.api); rep.Outcome == OutcomeRateLimited {
			t.Fatalf("pass after the shared window ended: %+v", rep)
		}
	})

	t.Run("a suspended installation pauses and triggers a re-list", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		if err := e.fake.SuspendInstallation(e.inst.ID, true); err != nil {
			t.Fatal(err)
		}
		if rep := e.sweep(e.svc, e.api); rep.Outcome != OutcomeSuspended {
			t.Fatalf("pass: %+v", rep)
		}
		if _, err := e.svc.sweep.Get(e.ctx, keySignalInstalls); err != nil {
			t.Fatalf("no re-list signal: %v", err)
		}
	})

	t.Run("two replicas sweep each repository once per interval", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		other := e.newService(Config{}, func(o *Options) { o.Replica = "b" })
		e.fake.SetWebhookOutage(true)
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			t.Fatal(err)
		}
		e.fake.Advance(5 * time.Minute)
		for round := range 3 {
			before := e.fake.Stats(e.inst.ID)
			var wg sync.WaitGroup
			reps, errs := make([]SweepReport, 2), make([]error, 2)
			for i, s := range []*Service{e.svc, other} {
				wg.Add(1)
				go func() { defer wg.Done(); reps[i], errs[i] = s.sweepOnce(e.ctx, e.api) }()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			after := e.fake.Stats(e.inst.ID)
			swept := 0
			for _, r := range reps {
				if r.Outcome != OutcomeLeased && r.Outcome != OutcomeNotDue {
					swept++
				}
			}
			calls := after.Requests - before.Requests + after.NotModified - before.NotModified
			if swept != 1 || calls != 1 {
				t.Fatalf("round %d: outcomes %s/%s, %d API calls; want one sweep and one call", round, reps[0].Outcome, reps[1].Outcome, calls)
			}
			e.fake.Advance(e.svc.cfg.MaxInterval)
		}
		if n := len(e.reconciles()); n != 1 {
			t.Fatalf("%d reconcile events, want 1", n)
		}
	})
}

// TestSweepUnchangedAtScale measures the cost of sweeping many unchanged repositories: one
// conditional request each, answered 304, no rate limit spent. (BenchmarkSweepUnchanged runs
// it with 1000 repositories.)
func TestSweepUnchangedAtScale(t *testing.T) {
	t.Parallel()
	const n = 100
	e, repos := setupMany(t, n)
	before := e.fake.Stats(e.inst.ID)
	calls, notModified := 0, 0
	for _, r := range repos {
		rep := e.sweep(e.svc, r)
		calls += rep.Calls
		notModified += rep.NotModified
	}
	after := e.fake.Stats(e.inst.ID)
	if calls != 0 || notModified != n || after.Requests != before.Requests || after.NotModified-before.NotModified != n {
		t.Fatalf("%d repositories: %d paid calls, %d 304s; fake: %+v -> %+v", n, calls, notModified, before, after)
	}
}

// setupMany installs the app on n repositories of "many" and sweeps each once (the pass that
// stores the ETags), then advances the clock so that every repository is due.
func setupMany(t testing.TB, n int) (*env, []event.Tenant) {
	t.Helper()
	e := setup(t, Config{})
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("r%04d", i)
	}
	inst, err := e.fake.AddInstallation("many", names...)
	if err != nil {
		t.Fatal(err)
	}
	e.inst = inst
	repos := make([]event.Tenant, n)
	for i, name := range names {
		repos[i] = tenantOf(inst, name)
		e.sweep(e.svc, repos[i])
	}
	e.fake.Advance(e.svc.cfg.MaxInterval)
	return e, repos
}

func BenchmarkSweepUnchanged(b *testing.B) {
	const n = 1000
	e, repos := setupMany(b, n)
	b.ResetTimer()
	calls, notModified := 0, 0
	for range b.N {
		for _, r := range repos {
			rep := e.sweep(e.svc, r)
			calls += rep.Calls
			notModified += rep.NotModified
		}
		b.StopTimer()
		e.fake.Advance(e.svc.cfg.MaxInterval)
		b.StartTimer()
	}
	b.ReportMetric(float64(calls)/float64(b.N*n), "paid_calls/repo")
	b.ReportMetric(float64(notModified)/float64(b.N*n), "304s/repo")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/repo")
}
