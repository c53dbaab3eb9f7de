package githubfake_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v60/github"

	"github.com/hookd/hookd/internal/githubfake"
)

const secret = "s3cret"

// received is one webhook POST as the receiver saw it.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a webhook endpoint recording what it gets; status decides its answer.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	status int
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{status: http.StatusAccepted}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{header: r.Header.Clone(), body: b})
		st := rc.status
		rc.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func (rc *receiver) setStatus(s int) {
	rc.mu.Lock()
	rc.status = s
	rc.mu.Unlock()
}

// env is the bundle every test starts from: a fake with an installation on two repositories,
// a webhook receiver, and go-github clients authenticated through ghinstallation.
type env struct {
	fake *githubfake.Fake
	rc   *receiver
	inst githubfake.Installation
	app  *github.Client // JWT
	cli  *github.Client // installation token
	ctx  context.Context
}

func setup(t *testing.T, opts githubfake.Options) *env {
	t.Helper()
	rc := newReceiver(t)
	if opts.WebhookURL == "" {
		opts.WebhookURL = rc.URL
	}
	if opts.WebhookSecret == "" {
		opts.WebhookSecret = secret
	}
	fake := githubfake.NewServer(t, opts)
	inst, err := fake.AddInstallation("acme", "widgets", "gadgets")
	if err != nil {
		t.Fatal(err)
	}
	atr, err := ghinstallation.NewAppsTransport(http.DefaultTransport, fake.App().ID, fake.App().PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	atr.BaseURL = fake.URL()
	itr := ghinstallation.NewFromAppsTransport(atr, inst.ID)
	return &env{
		fake: fake, rc: rc, inst: inst, ctx: context.Background(),
		app: client(t, fake, atr), cli: client(t, fake, itr),
	}
}

func client(t *testing.T, fake *githubfake.Fake, rt http.RoundTripper) *github.Client {
	t.Helper()
	c := github.NewClient(&http.Client{Transport: rt})
	u, err := url.Parse(fake.URL())
	if err != nil {
		t.Fatal(err)
	}
	c.BaseURL = u
	return c
}

// tokenClient is a client using a raw installation token.
func tokenClient(t *testing.T, fake *githubfake.Fake, tok string) *github.Client {
	return client(t, fake, http.DefaultTransport).WithAuthToken(tok)
}

// verify checks a delivery's signature independently of the fake.
func verify(t *testing.T, r received) {
	t.Helper()
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(r.body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if got := r.header.Get("X-Hub-Signature-256"); !hmac.Equal([]byte(got), []byte(want)) {
		t.Fatalf("X-Hub-Signature-256 = %q, want %q", got, want)
	}
}

func TestApp(t *testing.T) {
	t.Parallel()
	e := setup(t, githubfake.Options{Slug: "hookd-ci"})

	t.Run("get app", func(t *testing.T) {
		app, _, err := e.app.Apps.Get(e.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if app.GetID() != e.fake.App().ID || app.GetSlug() != "hookd-ci" {
			t.Fatalf("app = %d %q", app.GetID(), app.GetSlug())
		}
		if app.GetPermissions().GetIssues() != "write" {
			t.Fatalf("permissions = %+v", app.GetPermissions())
		}
	})
	t.Run("installations", func(t *testing.T) {
		list, _, err := e.app.Apps.ListInstallations(e.ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].GetID() != e.inst.ID || list[0].GetAccount().GetLogin() != "acme" {
			t.Fatalf("installations = %v", list)
		}
		in, _, err := e.app.Apps.GetInstallation(e.ctx, e.inst.ID)
		if err != nil || in.GetAppID() != e.fake.App().ID || in.GetTargetType() != "Organization" {
			t.Fatalf("GetInstallation = %v, %v", in, err)
		}
		_, _, err = e.app.Apps.GetInstallation(e.ctx, 999999)
		wantStatus(t, err, http.StatusNotFound)
	})
	t.Run("token", func(t *testing.T) {
		tok, resp, err := e.app.Apps.CreateInstallationToken(e.ctx, e.inst.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusCreated || tok.GetToken() == "" {
			t.Fatalf("token: %d %v", resp.StatusCode, tok)
		}
		if d := time.Until(tok.GetExpiresAt().Time); d < 59*time.Minute || d > time.Hour {
			t.Fatalf("expires in %v, want 1h", d)
		}
		if tok.GetPermissions().GetIssues() != "write" {
			t.Fatalf("permissions = %+v", tok.GetPermissions())
		}
	})
	t.Run("narrowed token", func(t *testing.T) {
		tok, _, err := e.app.Apps.CreateInstallationToken(e.ctx, e.inst.ID, &github.InstallationTokenOptions{
			Repositories: []string{"widgets"},
			Permissions:  &github.InstallationPermissions{Issues: github.String("read"), Metadata: github.String("read")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(tok.Repositories) != 1 || tok.Repositories[0].GetFullName() != "acme/widgets" {
			t.Fatalf("repositories = %v", tok.Repositories)
		}
		c := tokenClient(t, e.fake, tok.GetToken())
		if _, _, err := c.Repositories.Get(e.ctx, "acme", "widgets"); err != nil {
			t.Fatal(err)
		}
		_, _, err = c.Repositories.Get(e.ctx, "acme", "gadgets")
		wantStatus(t, err, http.StatusNotFound)
		iss, err := e.fake.OpenIssue("acme/widgets", "alice", "t", "b")
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = c.Issues.CreateComment(e.ctx, "acme", "widgets", iss.Number, &github.IssueComment{Body: github.String("x")})
		wantStatus(t, err, http.StatusForbidden)
	})
	t.Run("narrowing beyond the installation", func(t *testing.T) {
		_, _, err := e.app.Apps.CreateInstallationToken(e.ctx, e.inst.ID, &github.InstallationTokenOptions{RepositoryIDs: []int64{424242}})
		wantStatus(t, err, http.StatusUnprocessableEntity)
		_, _, err = e.app.Apps.CreateInstallationToken(e.ctx, e.inst.ID, &github.InstallationTokenOptions{
			Permissions: &github.InstallationPermissions{Administration: github.String("write")},
		})
		wantStatus(t, err, http.StatusUnprocessableEntity)
	})
	t.Run("bad jwt", func(t *testing.T) {
		other := githubfake.NewServer(t, githubfake.Options{AppID: e.fake.App().ID})
		atr, err := ghinstallation.NewAppsTransport(http.DefaultTransport, other.App().ID, other.App().PrivateKeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = client(t, e.fake, atr).Apps.Get(e.ctx, "") // signed by another key
		wantStatus(t, err, http.StatusUnauthorized)
		var er *github.ErrorResponse
		if !errors.As(err, &er) || er.Message != "A JSON web token could not be decoded" || er.DocumentationURL == "" {
			t.Fatalf("error = %#v", err)
		}
		_, _, err = tokenClient(t, e.fake, "ghs_nope").Apps.Get(e.ctx, "")
		wantStatus(t, err, http.StatusUnauthorized)
	})
	t.Run("jwt too far in the future", func(t *testing.T) {
		now := time.Now()
		tok := signJWT(t, e.fake.App(), map[string]any{"iat": now.Unix() - 30, "exp": now.Add(time.Hour).Unix(), "iss": strconv.FormatInt(e.fake.App().ID, 10)})
		_, _, err := tokenClient(t, e.fake, tok).Apps.Get(e.ctx, "")
		wantStatus(t, err, http.StatusUnauthorized)
		tok = signJWT(t, e.fake.App(), map[string]any{"iat": now.Unix() - 30, "exp": now.Add(5 * time.Minute).Unix(), "iss": e.fake.App().ID})
		if _, _, err := tokenClient(t, e.fake, tok).Apps.Get(e.ctx, ""); err != nil {
			t.Fatalf("numeric iss: %v", err)
		}
	})
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var er *github.ErrorResponse
	if !errors.As(err, &er) || er.Response.StatusCode != status {
		t.Fatalf("error = %v, want an ErrorResponse with status %d", err, status)
	}
}

func TestInstallationAPI(t *testing.T) {
	t.Parallel()
	e := setup(t, githubfake.Options{})
	if err := e.fake.AddRepositories(e.inst.ID, "r1", "r2", "r3"); err != nil {
		t.Fatal(err)
	}

	t.Run("list repositories paginated", func(t *testing.T) {
		var names []string
		opts := &github.ListOptions{PerPage: 2}
		for pages := 0; ; pages++ {
			list, resp, err := e.cli.Apps.ListRepos(e.ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if list.GetTotalCount() != 5 {
				t.Fatalf("total_count = %d", list.GetTotalCount())
			}
			for _, r := range list.Repositories {
				names = append(names, r.GetFullName())
			}
			if resp.NextPage == 0 {
				if pages != 2 || resp.LastPage != 0 {
					t.Fatalf("pages = %d", pages)
				}
				break
			}
			opts.Page = resp.NextPage
		}
		want := []string{"acme/widgets", "acme/gadgets", "acme/r1", "acme/r2", "acme/r3"}
		if !equal(names, want) {
			t.Fatalf("repos = %v, want %v", names, want)
		}
	})
	t.Run("comments", func(t *testing.T) {
		iss, err := e.fake.OpenIssue("acme/widgets", "alice", "Broken", "it is")
		if err != nil {
			t.Fatal(err)
		}
		c, resp, err := e.cli.Issues.CreateComment(e.ctx, "acme", "widgets", iss.Number, &github.IssueComment{Body: github.String("hello")})
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("CreateComment: %v", err)
		}
		if c.GetUser().GetLogin() != e.fake.BotLogin() || c.GetUser().GetType() != "Bot" {
			t.Fatalf("comment user = %v", c.GetUser())
		}
		c, _, err = e.cli.Issues.EditComment(e.ctx, "acme", "widgets", c.GetID(), &github.IssueComment{Body: github.String("edited")})
		if err != nil || c.GetBody() != "edited" {
			t.Fatalf("EditComment: %v %v", c, err)
		}
		got, _, err := e.cli.Issues.GetComment(e.ctx, "acme", "widgets", c.GetID())
		if err != nil || got.GetBody() != "edited" {
			t.Fatalf("GetComment: %v %v", got, err)
		}
		list, _, err := e.cli.Issues.ListComments(e.ctx, "acme", "widgets", iss.Number, nil)
		if err != nil || len(list) != 1 {
			t.Fatalf("ListComments: %v %v", list, err)
		}
		if _, err := e.cli.Issues.DeleteComment(e.ctx, "acme", "widgets", c.GetID()); err != nil {
			t.Fatal(err)
		}
		_, _, err = e.cli.Issues.GetComment(e.ctx, "acme", "widgets", c.GetID())
		wantStatus(t, err, http.StatusNotFound)

		var events []string
		for _, d := range e.fake.Deliveries() {
			if d.Event == "issue_comment" {
				var p github.IssueCommentEvent
				if err := json.Unmarshal(d.Payload, &p); err != nil {
					t.Fatal(err)
				}
				if p.GetSender().GetLogin() != e.fake.BotLogin() || p.GetInstallation().GetID() != e.inst.ID {
					t.Fatalf("sender %v installation %v", p.GetSender(), p.GetInstallation())
				}
				events = append(events, d.Action)
			}
		}
		if !equal(events, []string{"created", "edited", "deleted"}) {
			t.Fatalf("issue_comment actions = %v", events)
		}
	})
	t.Run("labels", func(t *testing.T) {
		iss, err := e.fake.OpenIssue("acme/gadgets", "alice", "Label me", "")
		if err != nil {
			t.Fatal(err)
		}
		ls, _, err := e.cli.Issues.AddLabelsToIssue(e.ctx, "acme", "gadgets", iss.Number, []string{"bug", "triage"})
		if err != nil || len(ls) != 2 {
			t.Fatalf("AddLabelsToIssue: %v %v", ls, err)
		}
		if _, err := e.cli.Issues.RemoveLabelForIssue(e.ctx, "acme", "gadgets", iss.Number, "triage"); err != nil {
			t.Fatal(err)
		}
		_, err = e.cli.Issues.RemoveLabelForIssue(e.ctx, "acme", "gadgets", iss.Number, "triage")
		wantStatus(t, err, http.StatusNotFound)
		ls, _, err = e.cli.Issues.ReplaceLabelsForIssue(e.ctx, "acme", "gadgets", iss.Number, []string{"done", "bug"})
		if err != nil || len(ls) != 2 || ls[0].GetName() != "bug" || ls[1].GetName() != "done" {
			t.Fatalf("ReplaceLabelsForIssue: %v %v", ls, err)
		}
		got, _ := e.fake.Issue("acme/gadgets", iss.Number)
		if !equal(got.Labels, []string{"bug", "done"}) {
			t.Fatalf("labels = %v", got.Labels)
		}
	})
	t.Run("issues with etag", func(t *testing.T) {
		if _, err := e.fake.OpenIssue("acme/r1", "bob", "one", ""); err != nil {
			t.Fatal(err)
		}
		opts := &github.IssueListByRepoOptions{State: "all", Sort: "updated", Direction: "asc"}
		list, resp, err := e.cli.Issues.ListByRepo(e.ctx, "acme", "r1", opts)
		if err != nil || len(list) != 1 || list[0].GetTitle() != "one" {
			t.Fatalf("ListByRepo: %v %v", list, err)
		}
		etag := resp.Header.Get("ETag")
		before := e.fake.Stats(e.inst.ID)
		remaining := resp.Rate.Remaining

		req, err := e.cli.NewRequest(http.MethodGet, "repos/acme/r1/issues?state=all&sort=updated&direction=asc", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("If-None-Match", etag)
		resp, err = e.cli.Do(e.ctx, req, nil)
		if resp == nil || resp.StatusCode != http.StatusNotModified {
			t.Fatalf("conditional GET: %v %v", resp, err)
		}
		after := e.fake.Stats(e.inst.ID)
		if after.NotModified != before.NotModified+1 || after.Requests != before.Requests {
			t.Fatalf("stats %+v -> %+v", before, after)
		}
		if resp.Rate.Remaining != remaining {
			t.Fatalf("remaining %d -> %d: a 304 must be free", remaining, resp.Rate.Remaining)
		}

		if _, err := e.fake.CommentIssue("acme/r1", 1, "bob", "changes the list"); err != nil {
			t.Fatal(err)
		}
		resp, err = e.cli.Do(e.ctx, req, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("after a change: %v %v", resp, err)
		}
		since := &github.IssueListByRepoOptions{Since: e.fake.Now().Add(time.Minute)}
		list, _, err = e.cli.Issues.ListByRepo(e.ctx, "acme", "r1", since)
		if err != nil || len(list) != 0 {
			t.Fatalf("since the future: %v %v", list, err)
		}
	})
	t.Run("pull request", func(t *testing.T) {
		pr, err := e.fake.OpenPullRequest("acme/widgets", "carol", githubfake.PullRequest{
			Title: "Add thing", Files: []githubfake.PullFile{{Filename: "a.go", Additions: 3}, {Filename: "b.go", Status: "removed", Deletions: 9}},
		})
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := e.cli.PullRequests.Get(e.ctx, "acme", "widgets", pr.Number)
		if err != nil || p.GetTitle() != "Add thing" || p.GetHead().GetRef() != "feature" || p.GetAdditions() != 3 {
			t.Fatalf("PullRequests.Get: %v %v", p, err)
		}
		files, _, err := e.cli.PullRequests.ListFiles(e.ctx, "acme", "widgets", pr.Number, nil)
		if err != nil || len(files) != 2 || files[1].GetStatus() != "removed" {
			t.Fatalf("ListFiles: %v %v", files, err)
		}
		iss, _, err := e.cli.Issues.Get(e.ctx, "acme", "widgets", pr.Number)
		if err != nil || !iss.IsPullRequest() {
			t.Fatalf("issue of a PR: %v %v", iss, err)
		}
		_, _, err = e.cli.PullRequests.Get(e.ctx, "acme", "widgets", 1)
		wantStatus(t, err, http.StatusNotFound)
	})
	t.Run("edit issue", func(t *testing.T) {
		iss, _ := e.fake.OpenIssue("acme/r2", "dave", "typo", "")
		got, _, err := e.cli.Issues.Edit(e.ctx, "acme", "r2", iss.Number, &github.IssueRequest{
			Title: github.String("fixed"), State: github.String("closed"),
		})
		if err != nil || got.GetState() != "closed" || got.GetTitle() != "fixed" || got.ClosedAt == nil {
			t.Fatalf("Edit: %v %v", got, err)
		}
		created, _, err := e.cli.Issues.Create(e.ctx, "acme", "r2", &github.IssueRequest{Title: github.String("new"), Labels: &[]string{"x"}})
		if err != nil || created.GetUser().GetLogin() != e.fake.BotLogin() || len(created.Labels) != 1 {
			t.Fatalf("Create: %v %v", created, err)
		}
	})
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
