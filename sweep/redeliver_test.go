package sweep

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/githubfake"
)

func (e *env) redeliver(s *Service) RedeliverReport {
	e.t.Helper()
	rep, err := s.redeliverOnce(e.ctx)
	if err != nil {
		e.t.Fatalf("redeliver: %v", err)
	}
	return rep
}

// attempts returns the delivery log entries of guid, oldest first.
func (e *env) attempts(guid string) []githubfake.Delivery {
	var out []githubfake.Delivery
	for _, d := range e.fake.Deliveries() {
		if d.GUID == guid {
			out = append(out, d)
		}
	}
	return out
}

// lastGUID is the GUID of the newest delivery.
func (e *env) lastGUID() string {
	ds := e.fake.Deliveries()
	return ds[len(ds)-1].GUID
}

// lostIssues opens n issues in acme/api while GitHub cannot deliver webhooks and returns the
// GUIDs of their failed deliveries, oldest first.
func (e *env) lostIssues(n int) []string {
	e.t.Helper()
	e.fake.SetWebhookOutage(true)
	defer e.fake.SetWebhookOutage(false)
	guids := make([]string, 0, n)
	for range n {
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			e.t.Fatal(err)
		}
		guids = append(guids, e.lastGUID())
	}
	return guids
}

// lostIssuesApart opens n issues in acme/api a second apart (each its own updated_at) while
// GitHub cannot deliver webhooks.
func (e *env) lostIssuesApart(n int) {
	e.t.Helper()
	e.fake.SetWebhookOutage(true)
	defer e.fake.SetWebhookOutage(false)
	for range n {
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			e.t.Fatal(err)
		}
		e.fake.Advance(time.Second)
	}
}

// storedGUID reports whether the events stream holds a delivery with id guid.
func (e *env) storedGUID(guid string) bool {
	for _, m := range e.stored() {
		if m.Header.Get("Hookd-Delivery") == guid {
			return true
		}
	}
	return false
}

func TestRedeliver(t *testing.T) {
	t.Parallel()
	const settle = 3 * time.Minute // past redelivery_min_age

	t.Run("deliveries failed during an outage are redelivered with their GUID", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		e.fake.SetWebhookOutage(true)
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			t.Fatal(err)
		}
		guid := e.lastGUID()
		e.fake.SetWebhookOutage(false)
		e.fake.Advance(settle)
		if rep := e.redeliver(e.svc); rep.Requested != 1 {
			t.Fatalf("pass: %+v", rep)
		}
		at := e.attempts(guid)
		if len(at) != 2 || !at[1].Redelivery || !at[1].OK() || !e.storedGUID(guid) {
			t.Fatalf("attempts %+v stored %v", at, e.storedGUID(guid))
		}
		e.fake.Advance(settle)
		if rep := e.redeliver(e.svc); rep.Requested != 0 || rep.Stored != 1 {
			t.Fatalf("second pass: %+v", rep)
		}
	})

	t.Run("a delivery logged OK but lost is redelivered", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		e.mode.Store(modeDrop)
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			t.Fatal(err)
		}
		guid := e.lastGUID()
		e.mode.Store(modeStore)
		e.fake.Advance(settle)
		if rep := e.redeliver(e.svc); rep.Requested != 1 || !e.storedGUID(guid) {
			t.Fatalf("pass: %+v", rep)
		}
	})

	t.Run("a delivery logged failed but stored is not redelivered", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		e.mode.Store(modeStoreFail)
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			t.Fatal(err)
		}
		guid := e.lastGUID()
		if e.attempts(guid)[0].OK() {
			t.Fatal("setup: the delivery should be logged as failed")
		}
		e.fake.Advance(settle)
		if rep := e.redeliver(e.svc); rep.Requested != 0 || rep.Stored != 2 { // with installation.created
			t.Fatalf("pass: %+v", rep)
		}
		if n := len(e.attempts(guid)); n != 1 {
			t.Fatalf("%d attempts", n)
		}
	})

	t.Run("young deliveries are left alone until they settle", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		e.fake.SetWebhookOutage(true)
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			t.Fatal(err)
		}
		e.fake.SetWebhookOutage(false)
		e.fake.Advance(30 * time.Second)
		if rep := e.redeliver(e.svc); rep.Requested != 0 || rep.Young != 2 { // with installation.created
			t.Fatalf("young pass: %+v", rep)
		}
		e.fake.Advance(settle)
		if rep := e.redeliver(e.svc); rep.Requested != 1 {
			t.Fatalf("settled pass: %+v", rep)
		}
	})

	t.Run("at most max_redeliveries per GUID", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{MaxRedeliveries: 3})
		e.mode.Store(modeFail)
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			t.Fatal(err)
		}
		guid := e.lastGUID()
		var requested, exhausted int
		for range 6 {
			e.fake.Advance(settle)
			rep := e.redeliver(e.svc)
			requested += rep.Requested
			exhausted += rep.Exhausted
		}
		if requested != 3 || exhausted != 1 {
			t.Fatalf("requested %d exhausted %d, want 3 and 1", requested, exhausted)
		}
		if n := len(e.attempts(guid)); n != 4 {
			t.Fatalf("%d attempts, want 1 + 3 redeliveries", n)
		}
	})

	t.Run("events nobody subscribes to are skipped", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{}, func(o *Options) { o.Subscribed = func(ev string) bool { return ev == "issues" } })
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			t.Fatal(err)
		}
		e.fake.SetWebhookOutage(true)
		if _, err := e.fake.CommentIssue("acme/api", 1, "bob", "me too"); err != nil {
			t.Fatal(err)
		}
		e.fake.Advance(settle)
		if rep := e.redeliver(e.svc); rep.Requested != 0 || rep.Unsubscribed != 2 || rep.Stored != 1 { // installation.created and the comment; the opening
			t.Fatalf("pass: %+v", rep)
		}
	})

	t.Run("redeliveries per pass are capped and spaced", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{RedeliveriesPerPass: 2})
		e.lostIssues(3)
		e.fake.Advance(settle)
		if rep := e.redeliver(e.svc); rep.Requested != 2 || !rep.Capped || e.waits.Load() != 1 {
			t.Fatalf("first pass: %+v, %d waits", rep, e.waits.Load())
		}
		e.fake.Advance(settle)
		if rep := e.redeliver(e.svc); rep.Requested != 1 || rep.Capped {
			t.Fatalf("second pass: %+v", rep)
		}
		if n := len(e.stored()); n != 4 {
			t.Fatalf("%d stored, want 4 (installation.created and 3 issues)", n)
		}
	})

	t.Run("a young delivery numbered below a settled one is not passed over", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		// GitHub numbers a delivery when its attempt ends and dates it when it starts: a slow
		// delivery gets a higher id than a quick one that started minutes later.
		e.mode.Store(modeHold)
		opened := make(chan error, 1)
		go func() { _, err := e.fake.OpenIssue("acme/api", "alice", "slow", ""); opened <- err }()
		<-e.held
		e.mode.Store(modeStore)
		e.fake.Advance(settle)
		e.fake.SetWebhookOutage(true)
		if _, err := e.fake.OpenIssue("acme/api", "alice", "lost", ""); err != nil {
			t.Fatal(err)
		}
		lost := e.lastGUID()
		e.fake.SetWebhookOutage(false)
		close(e.release)
		if err := <-opened; err != nil {
			t.Fatal(err)
		}
		ds := e.fake.Deliveries()
		if slow := ds[len(ds)-1]; slow.GUID == lost || !slow.OK() || slow.ID < ds[len(ds)-2].ID {
			t.Fatalf("setup: want the slow delivery logged last, with the highest id: %+v", ds)
		}
		// The slow delivery is settled, the lost one (numbered below it) is young.
		if rep := e.redeliver(e.svc); rep.Young != 1 || rep.Requested != 0 {
			t.Fatalf("first pass: %+v", rep)
		}
		e.fake.Advance(settle)
		if rep := e.redeliver(e.svc); rep.Requested != 1 || !e.storedGUID(lost) {
			t.Fatalf("second pass: %+v, lost delivery stored %v", rep, e.storedGUID(lost))
		}
	})

	t.Run("a delivery GitHub refuses to redeliver is passed over", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		guids := e.lostIssues(2)
		e.fake.Advance(settle)
		// The first (oldest) one is refused, as GitHub refuses a delivery gone from its log.
		e.fake.InjectFault(githubfake.Fault{Method: http.MethodPost, Path: "/app/hook/deliveries/*/attempts", Status: http.StatusUnprocessableEntity})
		rep, err := e.svc.redeliverOnce(e.ctx)
		if err != nil || rep.Refused != 1 || rep.Requested != 1 || e.storedGUID(guids[0]) || !e.storedGUID(guids[1]) {
			t.Fatalf("pass: %+v %v; stored %v %v", rep, err, e.storedGUID(guids[0]), e.storedGUID(guids[1]))
		}
		e.fake.Advance(settle)
		if rep := e.redeliver(e.svc); rep.Requested != 0 || rep.Refused != 0 {
			t.Fatalf("second pass: %+v", rep)
		}
		// A server error is not a refusal: the delivery is tried again next pass.
		e.fake.SetWebhookOutage(true)
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			t.Fatal(err)
		}
		e.fake.SetWebhookOutage(false)
		e.fake.Advance(settle)
		e.fake.InjectFault(githubfake.ServerError("/app/hook/deliveries/*/attempts", 1, http.StatusBadGateway))
		if rep, err := e.svc.redeliverOnce(e.ctx); err != nil || rep.Refused != 0 || rep.Failed != 1 {
			t.Fatalf("pass with a 502: %+v %v", rep, err)
		}
		if rep := e.redeliver(e.svc); rep.Requested != 1 || !e.storedGUID(e.lastGUID()) {
			t.Fatalf("pass after the 502: %+v", rep)
		}
	})

	t.Run("refusals in a row end the pass", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		e.fake.SetWebhookOutage(true)
		var guids []string
		for range maxRefusedInRow + 1 {
			if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
				t.Fatal(err)
			}
			guids = append(guids, e.lastGUID())
		}
		e.fake.SetWebhookOutage(false)
		e.fake.Advance(settle)
		// An endpoint GitHub considers spammed answers 422 to every redelivery.
		e.fake.InjectFault(githubfake.Fault{Method: http.MethodPost, Path: "/app/hook/deliveries/*/attempts", Status: http.StatusUnprocessableEntity, Times: maxRefusedInRow})
		rep, err := e.svc.redeliverOnce(e.ctx)
		if err == nil || !strings.Contains(err.Error(), "in a row") || rep.Refused != maxRefusedInRow-1 || rep.Requested != 0 {
			t.Fatalf("pass: %+v %v, want an error after %d refusals", rep, err, maxRefusedInRow)
		}
		// The mark stayed before the last refused delivery: the next pass redelivers it and the rest.
		e.fake.Advance(settle)
		if rep := e.redeliver(e.svc); rep.Requested != 2 || !e.storedGUID(guids[maxRefusedInRow-1]) || !e.storedGUID(guids[maxRefusedInRow]) {
			t.Fatalf("next pass: %+v", rep)
		}
		for _, g := range guids[:maxRefusedInRow-1] {
			if e.storedGUID(g) {
				t.Fatalf("%s was redelivered, but it was refused and passed over", g)
			}
		}
	})

	t.Run("a delivery log whose pagination loops ends the pass", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		var lists atomic.Int32
		loop := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err == nil && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/app/hook/deliveries") {
				lists.Add(1)
				// Every page points at the same next cursor, which answers the whole log again.
				resp.Header.Set("Link", fmt.Sprintf(`<%sapp/hook/deliveries?per_page=100&cursor=v1_%d>; rel="next"`, e.fake.URL(), int64(math.MaxInt64)))
			}
			return resp, err
		})
		svc := e.serviceOver(loop)
		e.fake.Advance(settle)
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		defer cancel()
		if _, err := svc.redeliverOnce(ctx); err == nil || ctx.Err() != nil || lists.Load() != 2 {
			t.Fatalf("pass: %v after %d listings, want an error after 2", err, lists.Load())
		}
	})

	t.Run("a redelivery that failed again is retried when hookd's clock runs ahead of GitHub's", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		// hookd's clock runs ahead: a redelivery's log entry (dated by GitHub) settles before
		// the request that caused it (dated by hookd) is redelivery_min_age old.
		const skew = 30 * time.Second
		svc := e.newService(Config{}, func(o *Options) { o.Now = func() time.Time { return e.fake.Now().Add(skew) } })
		e.mode.Store(modeFail)
		if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
			t.Fatal(err)
		}
		guid := e.lastGUID()
		e.fake.Advance(settle)
		if rep := e.redeliver(svc); rep.Requested != 1 {
			t.Fatalf("first pass: %+v", rep)
		}
		if at := e.attempts(guid); len(at) != 2 || at[1].OK() {
			t.Fatalf("setup: want the redelivery logged as failed: %+v", at)
		}
		// The failed redelivery's entry is settled, its request not yet old enough.
		e.fake.Advance(svc.cfg.RedeliveryMinAge - skew/2)
		if rep := e.redeliver(svc); rep.Pending != 1 || rep.Requested != 0 {
			t.Fatalf("pass while the redelivery is pending: %+v", rep)
		}
		e.mode.Store(modeStore)
		e.fake.Advance(settle)
		if rep := e.redeliver(svc); rep.Requested != 1 || !e.storedGUID(guid) {
			t.Fatalf("pass after the redelivery failed: %+v, stored %v; the pending delivery was passed over", rep, e.storedGUID(guid))
		}
	})

	t.Run("a long outage: pages of failed deliveries, some failing again, each stored once", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		const n = 150 // two pages of the delivery log, three passes' worth of redeliveries
		e.mode.Store(modeFail)
		guids := map[string]bool{}
		for range n {
			if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
				t.Fatal(err)
			}
			guids[e.lastGUID()] = true
		}
		// The first two passes' redeliveries fail again; then hookd is back.
		var requested int
		for pass := 0; ; pass++ {
			if pass == 2 {
				e.mode.Store(modeStore)
			}
			if pass > 20 {
				t.Fatalf("still redelivering after %d passes (%d requested)", pass, requested)
			}
			e.fake.Advance(settle)
			rep := e.redeliver(e.svc)
			requested += rep.Requested
			if rep.Exhausted > 0 || rep.Refused > 0 {
				t.Fatalf("pass %d: %+v", pass, rep)
			}
			if pass > 2 && rep.Requested == 0 {
				break
			}
		}
		if want := n + 2*e.svc.cfg.RedeliveriesPerPass; requested != want {
			t.Fatalf("%d redeliveries requested, want %d (each once, and those that failed again twice)", requested, want)
		}
		stored := map[string]bool{}
		for _, m := range e.stored() {
			stored[m.Header.Get("Hookd-Delivery")] = true
		}
		for g := range guids {
			at := e.attempts(g)
			if !stored[g] || !at[len(at)-1].OK() {
				t.Fatalf("%s not stored: %+v", g, at)
			}
			for _, a := range at[:len(at)-1] {
				if a.OK() {
					t.Fatalf("%s redelivered after it was delivered: %+v", g, at)
				}
			}
		}
	})

	t.Run("a delivery log or redelivery failing midway: nothing skipped, nothing requested twice", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		const n = 150 // two pages of the delivery log
		guids := e.lostIssues(n)
		e.fake.Advance(settle)
		// The first pass's second listing page answers 502 (every time it is asked for), the
		// second pass's third redelivery request once.
		var lists, posts atomic.Int32
		hook := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/attempts") && posts.Add(1) == 3 {
				e.fake.InjectFault(githubfake.ServerError("/app/hook/deliveries/*/attempts", 1, http.StatusBadGateway))
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err == nil && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/app/hook/deliveries") && lists.Add(1) == 1 {
				e.fake.InjectFault(githubfake.ServerError("/app/hook/deliveries", listPageTries, http.StatusBadGateway))
			}
			return resp, err
		})
		svc := e.serviceOver(hook)
		svc.cfg.RedeliveriesPerPass = n
		if rep, err := svc.redeliverOnce(e.ctx); err == nil || rep.Requested != 0 {
			t.Fatalf("pass with a 502 on the log's second page: %+v %v", rep, err)
		}
		// The delivery whose redelivery failed is left for the next pass; the others go on.
		if rep, err := svc.redeliverOnce(e.ctx); err != nil || rep.Requested != n-1 || rep.Failed != 1 {
			t.Fatalf("pass with a 502 on the third redelivery: %+v %v", rep, err)
		}
		e.fake.Advance(settle)
		if rep := e.redeliver(svc); rep.Requested != 1 || rep.Failed != 0 {
			t.Fatalf("pass after the 502s: %+v", rep)
		}
		stored := map[string]bool{}
		for _, m := range e.stored() {
			stored[m.Header.Get("Hookd-Delivery")] = true
		}
		for _, g := range guids {
			if at := e.attempts(g); len(at) != 2 || !stored[g] {
				t.Fatalf("%s: %d log entries, stored %v; want the failed one and one redelivery", g, len(at), stored[g])
			}
		}
	})

	t.Run("a backlog over several passes is read from the log once", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{RedeliveriesPerPass: 50})
		const n = 250 // three pages of the delivery log, five passes' worth of redeliveries
		guids := e.lostIssues(n)
		var pages atomic.Int32
		svc := e.serviceOver(roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/app/hook/deliveries") {
				pages.Add(1)
			}
			return http.DefaultTransport.RoundTrip(req)
		}))
		var perPass []int32
		requested := 0
		for pass := 0; ; pass++ {
			if pass > 10 {
				t.Fatalf("still redelivering after %d passes", pass)
			}
			e.fake.Advance(settle)
			pages.Store(0)
			rep := e.redeliver(svc)
			perPass = append(perPass, pages.Load())
			requested += rep.Requested
			if !rep.Capped && rep.Requested == 0 {
				break
			}
		}
		// The first pass reads the three pages of the backlog, and every later one only the page
		// of the log written since (the previous pass's 50 redeliveries). Reading the backlog
		// again each pass would have read 3, 3, 2, 2, 1 pages.
		if perPass[0] != 3 {
			t.Errorf("first pass read %d pages, want 3", perPass[0])
		}
		for i, p := range perPass[1:] {
			if p != 1 {
				t.Errorf("pass %d read %d pages of the log, want 1 (pages per pass: %v)", i+2, p, perPass)
			}
		}
		if requested != n {
			t.Errorf("%d redeliveries requested, want %d", requested, n)
		}
		stored := map[string]bool{}
		for _, m := range e.stored() {
			stored[m.Header.Get("Hookd-Delivery")] = true
		}
		for _, g := range guids {
			if at := e.attempts(g); len(at) != 2 || !stored[g] {
				t.Fatalf("%s: %d log entries, stored %v; want the failed one and one redelivery", g, len(at), stored[g])
			}
		}
		st, err := svc.loadRedeliver(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Top != 0 || len(st.Todo) != 0 {
			t.Errorf("after the backlog: top %d, %d left to do; want none", st.Top, len(st.Todo))
		}
	})

	t.Run("a backlog longer than the state holds is still redelivered whole", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{RedeliveriesPerPass: 2})
		e.svc.maxTodo = 3
		const n = 9
		guids := e.lostIssues(n)
		requested := 0
		for pass := 0; ; pass++ {
			if pass > 10 {
				t.Fatalf("still redelivering after %d passes", pass)
			}
			e.fake.Advance(settle)
			rep := e.redeliver(e.svc)
			requested += rep.Requested
			st, err := e.svc.loadRedeliver(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Todo) > e.svc.maxTodo || (len(st.Todo) > 0 && st.Top != st.Todo[len(st.Todo)-1].ID && len(st.Todo) == e.svc.maxTodo) {
				t.Fatalf("pass %d left top %d and %d to do: %+v", pass, st.Top, len(st.Todo), st.Todo)
			}
			if !rep.Capped && rep.Requested == 0 {
				break
			}
		}
		if requested != n {
			t.Fatalf("%d redeliveries requested, want %d", requested, n)
		}
		for _, g := range guids {
			if at := e.attempts(g); len(at) != 2 || !e.storedGUID(g) {
				t.Fatalf("%s: %d log entries, stored %v; want the failed one and one redelivery", g, len(at), e.storedGUID(g))
			}
		}
	})

	t.Run("a delivery GitHub keeps failing to redeliver does not hold the others", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		guids := e.lostIssues(4)
		poison := e.attempts(guids[1])[0]
		e.fake.InjectFault(githubfake.ServerError(fmt.Sprintf("/app/hook/deliveries/%d/attempts", poison.ID), 2, http.StatusInternalServerError))
		e.fake.Advance(settle)
		rep := e.redeliver(e.svc)
		if rep.Requested != 3 || rep.Failed != 1 {
			t.Fatalf("first pass: %+v; want the 3 others requested and 1 failed", rep)
		}
		for _, g := range []string{guids[0], guids[2], guids[3]} {
			if !e.storedGUID(g) {
				t.Fatalf("%s not stored after the first pass", g)
			}
		}
		// The failed one is tried again next pass (and the pass ends well).
		e.fake.Advance(settle)
		if rep := e.redeliver(e.svc); rep.Failed != 1 || rep.Requested != 0 {
			t.Fatalf("second pass: %+v; want the failing delivery tried again", rep)
		}
		e.fake.Advance(settle) // the fault was for two requests: GitHub redelivers it now
		if rep := e.redeliver(e.svc); rep.Requested != 1 || !e.storedGUID(guids[1]) {
			t.Fatalf("third pass, GitHub redelivers again: %+v, stored %v", rep, e.storedGUID(guids[1]))
		}
	})

	t.Run("server errors in a row end the pass", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		e.lostIssues(5)
		e.fake.InjectFault(githubfake.ServerError("/app/hook/deliveries/*/attempts", 100, http.StatusBadGateway))
		e.fake.Advance(settle)
		rep, err := e.svc.redeliverOnce(e.ctx)
		if err == nil || rep.Failed != maxRefusedInRow-1 || rep.Requested != 0 {
			t.Fatalf("pass while GitHub fails every redelivery: %+v, %v; want it ended after %d", rep, err, maxRefusedInRow)
		}
	})

	t.Run("a page of the delivery log that fails once is asked for again", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		const n = 150 // two pages
		e.lostIssues(n)
		e.fake.Advance(settle)
		var lists atomic.Int32
		svc := e.serviceOver(roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err == nil && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/app/hook/deliveries") && lists.Add(1) == 1 {
				e.fake.InjectFault(githubfake.ServerError("/app/hook/deliveries", listPageTries-1, http.StatusBadGateway))
			}
			return resp, err
		}))
		svc.cfg.RedeliveriesPerPass = n
		waits := e.waits.Load()
		rep, err := svc.redeliverOnce(e.ctx)
		if err != nil || rep.Requested != n || rep.Listed != n+1 {
			t.Fatalf("pass with the log's second page failing %d times: %+v %v", listPageTries-1, rep, err)
		}
		if got := lists.Load(); got != 2+listPageTries-1 {
			t.Errorf("%d listing requests, want %d", got, 2+listPageTries-1)
		}
		// Pauses: one between redelivery requests, and one before each page asked for again.
		if got, want := e.waits.Load()-waits, int32(n-1+listPageTries-1); got != want {
			t.Errorf("%d pauses, want %d", got, want)
		}
	})

	t.Run("one replica reads the log at a time", func(t *testing.T) {
		t.Parallel()
		e := setup(t, Config{})
		other := e.newService(Config{}, func(o *Options) { o.Replica = "b" })
		release, ok, err := other.lease(e.ctx, keyLeaseRedeliver, time.Minute)
		if err != nil || !ok {
			t.Fatalf("lease: %v %v", ok, err)
		}
		if rep := e.redeliver(e.svc); rep.Outcome != "leased" {
			t.Fatalf("pass while b holds the lease: %+v", rep)
		}
		release()
		if rep := e.redeliver(e.svc); rep.Outcome != "ok" {
			t.Fatalf("pass after release: %+v", rep)
		}
	})
}
