package ghapp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/ghapp"
	"github.com/hookd/hookd/internal/githubfake"
	"github.com/hookd/hookd/planner"
)

// sent is one request as it left the App (below the governor and the budget).
type sent struct {
	method, path string
	start, end   time.Time
	status       int
}

// wire records the requests an App sends.
type wire struct {
	mu   sync.Mutex
	reqs []sent
}

func (w *wire) RoundTrip(req *http.Request) (*http.Response, error) {
	s := sent{method: req.Method, path: req.URL.Path, start: time.Now()}
	resp, err := http.DefaultTransport.RoundTrip(req)
	s.end = time.Now()
	if resp != nil {
		s.status = resp.StatusCode
	}
	w.mu.Lock()
	w.reqs = append(w.reqs, s)
	w.mu.Unlock()
	return resp, err
}

// matching returns the requests with method whose path ends with suffix, in start order.
func (w *wire) matching(method, suffix string) []sent {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []sent
	for _, s := range w.reqs {
		if s.method == method && strings.HasSuffix(s.path, suffix) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b sent) int { return a.start.Compare(b.start) })
	return out
}

// replica is one hookd process's App over the fake.
type replica struct {
	app  *ghapp.App
	wire *wire
	gh   *github.Client // the installation's client
}

func newReplica(t *testing.T, fake *githubfake.Fake, inst int64, opts ghapp.Options) *replica {
	t.Helper()
	r := &replica{wire: &wire{}}
	opts.Transport = r.wire
	var err error
	r.app, err = ghapp.New(ghapp.Config{AppID: fake.App().ID, PrivateKey: string(fake.App().PrivateKeyPEM), APIURL: fake.URL()}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.gh, err = r.app.Installation(inst); err != nil {
		t.Fatal(err)
	}
	return r
}

// rawComment posts a comment through the installation's HTTP client, below go-github's own
// memory of secondary limits (it refuses every call of a client for the Retry-After).
func (r *replica) rawComment(ctx context.Context, number int) error {
	req, err := r.gh.NewRequest(http.MethodPost, "repos/acme/widgets/issues/"+strconv.Itoa(number)+"/comments", &github.IssueComment{Body: github.String("raw")})
	if err != nil {
		return err
	}
	resp, err := r.gh.Client().Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return errors.New(resp.Status)
	}
	return nil
}

func rateFake(t *testing.T) (*githubfake.Fake, int64, int) {
	t.Helper()
	fake := githubfake.NewServer(t, githubfake.Options{})
	inst, err := fake.AddInstallation("acme", "widgets")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := fake.OpenIssue("acme/widgets", "alice", "x", "")
	if err != nil {
		t.Fatal(err)
	}
	return fake, inst.ID, iss.Number
}

func TestGovernor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("mutations of an installation are serialised and spaced", func(t *testing.T) {
		t.Parallel()
		const spacing = 100 * time.Millisecond
		fake, inst, number := rateFake(t)
		r := newReplica(t, fake, inst, ghapp.Options{MutationSpacing: spacing})
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := r.gh.Issues.CreateComment(ctx, "acme", "widgets", number, &github.IssueComment{Body: github.String(strconv.Itoa(i))}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		posts := r.wire.matching(http.MethodPost, "/comments")
		if len(posts) != 4 {
			t.Fatalf("%d comments posted, want 4", len(posts))
		}
		for i := 1; i < len(posts); i++ {
			if gap := posts[i].start.Sub(posts[i-1].end); gap < spacing {
				t.Errorf("mutation %d started %s after the previous one ended, want >= %s", i, gap, spacing)
			}
		}
		// The token mint (a POST on the app) is not held by the spacing.
		if mints := r.wire.matching(http.MethodPost, "/access_tokens"); len(mints) != 1 {
			t.Fatalf("%d token mints", len(mints))
		}
	})

	t.Run("reads are not spaced", func(t *testing.T) {
		t.Parallel()
		const spacing = 500 * time.Millisecond
		fake, inst, number := rateFake(t)
		r := newReplica(t, fake, inst, ghapp.Options{MutationSpacing: spacing})
		if _, _, err := r.gh.Issues.CreateComment(ctx, "acme", "widgets", number, &github.IssueComment{Body: github.String("a")}); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, _, err := r.gh.Issues.Get(ctx, "acme", "widgets", number); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := r.gh.Issues.CreateComment(ctx, "acme", "widgets", number, &github.IssueComment{Body: github.String("b")}); err != nil {
			t.Fatal(err)
		}
		posts, gets := r.wire.matching(http.MethodPost, "/comments"), r.wire.matching(http.MethodGet, "/issues/1")
		if len(posts) != 2 || len(gets) != 3 {
			t.Fatalf("%d posts, %d gets", len(posts), len(gets))
		}
		if d := gets[2].end.Sub(posts[0].end); d >= spacing {
			t.Errorf("three reads after a mutation took %s: they were held by the spacing", d)
		}
		if gap := posts[1].start.Sub(posts[0].end); gap < spacing {
			t.Errorf("the second mutation started %s after the first, want >= %s", gap, spacing)
		}
	})

	t.Run("installations are spaced apart from each other", func(t *testing.T) {
		t.Parallel()
		const spacing = time.Second
		fake, instA, numberA := rateFake(t)
		instB, err := fake.AddInstallation("other", "thing")
		if err != nil {
			t.Fatal(err)
		}
		issB, err := fake.OpenIssue("other/thing", "alice", "y", "")
		if err != nil {
			t.Fatal(err)
		}
		r := newReplica(t, fake, instA, ghapp.Options{MutationSpacing: spacing})
		ghB, err := r.app.Installation(instB.ID)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, _, err := r.gh.Issues.CreateComment(ctx, "acme", "widgets", numberA, &github.IssueComment{Body: github.String("a")}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ghB.Issues.CreateComment(ctx, "other", "thing", issB.Number, &github.IssueComment{Body: github.String("b")}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d >= spacing {
			t.Errorf("mutations of two installations took %s: one waited for the other's spacing", d)
		}
	})

	t.Run("Retry-After holds the next mutation", func(t *testing.T) {
		t.Parallel()
		fake, inst, number := rateFake(t)
		r := newReplica(t, fake, inst, ghapp.Options{MutationSpacing: 10 * time.Millisecond})
		fake.InjectFault(githubfake.SecondaryRateLimit("/repos/*/*/issues/*/comments", 1, time.Second))
		_, _, err := r.gh.Issues.CreateComment(ctx, "acme", "widgets", number, &github.IssueComment{Body: github.String("a")})
		var abuse *github.AbuseRateLimitError
		if !errors.As(err, &abuse) {
			t.Fatalf("first comment: %v, want the secondary rate limit", err)
		}
		limited := r.wire.matching(http.MethodPost, "/comments")[0]

		// A caller whose deadline comes before the Retry-After is told at once, without a request.
		before := fake.Stats(inst)
		tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err = r.rawComment(tctx, number)
		cancel()
		if !errors.As(err, &abuse) || abuse.RetryAfter == nil || *abuse.RetryAfter <= 0 || *abuse.RetryAfter > time.Second {
			t.Fatalf("mutation with a short deadline: %v, want a secondary rate limit error with RetryAfter", err)
		}
		if class, wait := planner.Classify(err, time.Now()); class != planner.TransientClass || wait <= 0 {
			t.Fatalf("Classify = %v, %s", class, wait)
		}
		// A waiting caller that gives up is released.
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(50*time.Millisecond, cancel)
		if err := r.rawComment(cctx, number); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled mutation: %v", err)
		}
		if after := fake.Stats(inst); after != before {
			t.Fatalf("refused mutations reached GitHub: stats %+v, then %+v", before, after)
		}
		// A caller that can wait is sent after the Retry-After.
		if err := r.rawComment(ctx, number); err != nil {
			t.Fatal(err)
		}
		posts := r.wire.matching(http.MethodPost, "/comments")
		if len(posts) != 2 || posts[0] != limited {
			t.Fatalf("posts %+v", posts)
		}
		if gap := posts[1].start.Sub(limited.end); gap < time.Second {
			t.Errorf("mutation sent %s after a Retry-After of 1s", gap)
		}
		// Reads were never held.
		start := time.Now()
		if _, _, err := r.gh.Repositories.Get(ctx, "acme", "widgets"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("read took %s", d)
		}
	})
}

func TestKVBudget(t *testing.T) {
	t.Parallel()

	t.Run("an exhausted installation is refused on every replica without a request", func(t *testing.T) {
		t.Parallel()
		env := brokertest.New(t)
		ctx := budgetCtx(t)
		fake, inst, _ := rateFake(t)
		other, err := fake.AddInstallation("other", "thing")
		if err != nil {
			t.Fatal(err)
		}
		// Two replicas, each with its own NATS connection.
		b1 := ghapp.NewKVBudget(ctx, env.JS, zerolog.Nop())
		b2 := ghapp.NewKVBudget(ctx, secondJS(t, env), zerolog.Nop())
		r1 := newReplica(t, fake, inst, ghapp.Options{Budget: b1})
		r2 := newReplica(t, fake, inst, ghapp.Options{Budget: b2})

		reset := time.Now().Add(time.Hour).Truncate(time.Second)
		fake.SetRateLimit(inst, 0, reset)
		_, _, err = r1.gh.Repositories.Get(ctx, "acme", "widgets")
		var rl *github.RateLimitError
		if !errors.As(err, &rl) {
			t.Fatalf("replica 1: %v, want GitHub's rate limit error", err)
		}
		if st := fake.Stats(inst); st.RateLimited != 1 {
			t.Fatalf("stats %+v", st)
		}
		waitFor(t, "replica 2 to learn the exhaustion", func() bool { _, ex := b2.Check(inst); return ex })
		if wait, _ := b2.Check(inst); wait <= 59*time.Minute || wait > time.Hour {
			t.Fatalf("wait %s, want until the reset", wait)
		}
		before := fake.Stats(inst)
		_, _, err = r2.gh.Repositories.Get(ctx, "acme", "widgets")
		if !errors.As(err, &rl) || rl.Rate.Reset.Sub(reset).Abs() > time.Second {
			t.Fatalf("replica 2: %v, want a rate limit error until %s", err, reset)
		}
		class, wait := planner.Classify(err, time.Now())
		if class != planner.TransientClass || wait < 59*time.Minute {
			t.Fatalf("Classify = %v, %s; want transient until the reset", class, wait)
		}
		if after := fake.Stats(inst); after != before {
			t.Fatalf("replica 2 reached GitHub: stats %+v, then %+v", before, after)
		}
		if n := len(r2.wire.matching(http.MethodGet, "")); n != 0 {
			t.Fatalf("replica 2 sent %d requests", n)
		}
		if mints := r2.wire.matching(http.MethodPost, "/access_tokens"); len(mints) != 0 {
			t.Fatal("replica 2 minted a token for a refused request")
		}
		// Other installations are not held.
		gh, err := r2.app.Installation(other.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := gh.Repositories.Get(ctx, "other", "thing"); err != nil {
			t.Fatalf("another installation: %v", err)
		}
		// A replica started later reads it from the KV.
		b3 := ghapp.NewKVBudget(ctx, env.JS, zerolog.Nop())
		waitFor(t, "a new replica to read the exhaustion", func() bool { _, ex := b3.Check(inst); return ex })
	})

	t.Run("writes are throttled", func(t *testing.T) {
		t.Parallel()
		env := brokertest.New(t)
		ctx := budgetCtx(t)
		fake, inst, _ := rateFake(t)
		b := ghapp.NewKVBudget(ctx, env.JS, zerolog.Nop())
		r := newReplica(t, fake, inst, ghapp.Options{Budget: b})
		kv, err := env.JS.KeyValue(ctx, broker.BucketSweep)
		if err != nil {
			t.Fatal(err)
		}
		w, err := kv.Watch(ctx, ghapp.BudgetKeyPrefix+strconv.FormatInt(inst, 10), jetstream.UpdatesOnly())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		for range 20 {
			if _, _, err := r.gh.Repositories.Get(ctx, "acme", "widgets"); err != nil {
				t.Fatal(err)
			}
		}
		first := nextRate(t, w)
		if first.Remaining != 4999 || first.Limit != 5000 {
			t.Fatalf("first write %+v", first)
		}
		// Exhaustion is written at once; the 19 reads between were not.
		fake.SetRateLimit(inst, 0, time.Now().Add(time.Hour))
		if _, _, err := r.gh.Repositories.Get(ctx, "acme", "widgets"); err == nil {
			t.Fatal("no rate limit error")
		}
		if next := nextRate(t, w); next.Remaining != 0 {
			t.Fatalf("second write %+v, want the exhaustion", next)
		}
		if r, ok := b.Rate(inst); !ok || r.Remaining != 0 {
			t.Fatalf("Rate = %+v %v", r, ok)
		}
	})
}

// budgetCtx is the budgets' lifetime: it ends before the NATS server of the test stops.
func budgetCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

func nextRate(t *testing.T, w jetstream.KeyWatcher) ghapp.Rate {
	t.Helper()
	select {
	case e := <-w.Updates():
		var r ghapp.Rate
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			t.Fatal(err)
		}
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no write within 5s")
	}
	return ghapp.Rate{}
}

func secondJS(t *testing.T, env *brokertest.Env) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(env.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// waitFor polls cond (it has no signal to wait on: another replica's write arrives through a
// KV watch) for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
