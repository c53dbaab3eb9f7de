package githubfake_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jwt "github.com/golang-jwt/jwt/v4"
	"github.com/google/go-github/v60/github"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/githubfake"
)

func signJWT(t *testing.T, app githubfake.App, claims map[string]any) string {
	t.Helper()
	key, err := jwt.ParseRSAPrivateKeyFromPEM(app.PrivateKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(claims)).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWebhooks(t *testing.T) {
	t.Parallel()

	t.Run("user action is delivered signed", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{})
		iss, err := e.fake.OpenIssue("acme/widgets", "alice", "Hello", "body text")
		if err != nil {
			t.Fatal(err)
		}
		got := e.rc.all()
		if len(got) != 2 { // installation.created, issues.opened
			t.Fatalf("received %d deliveries", len(got))
		}
		r := got[1]
		verify(t, r)
		for k, want := range map[string]string{
			"X-GitHub-Event": "issues", "X-GitHub-Hook-ID": "1",
			"X-GitHub-Hook-Installation-Target-ID":   "1",
			"X-GitHub-Hook-Installation-Target-Type": "integration",
			"Content-Type":                           "application/json",
		} {
			if v := r.header.Get(k); v != want {
				t.Errorf("%s = %q, want %q", k, v, want)
			}
		}
		if !strings.HasPrefix(r.header.Get("User-Agent"), "GitHub-Hookshot/") || len(r.header.Get("X-GitHub-Delivery")) != 36 || r.header.Get("X-Hub-Signature") == "" {
			t.Errorf("headers = %v", r.header)
		}
		var ev github.IssuesEvent
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.GetAction() != "opened" || ev.GetIssue().GetNumber() != iss.Number || ev.GetIssue().GetBody() != "body text" ||
			ev.GetInstallation().GetID() != e.inst.ID || ev.GetRepo().GetFullName() != "acme/widgets" ||
			ev.GetRepo().GetOwner().GetLogin() != "acme" || ev.GetSender().GetLogin() != "alice" || ev.GetSender().GetType() != "User" {
			t.Fatalf("event = %+v", ev)
		}
		var inst github.InstallationEvent
		if err := json.Unmarshal(got[0].body, &inst); err != nil || inst.GetAction() != "created" || len(inst.Repositories) != 2 {
			t.Fatalf("installation.created = %+v %v", inst, err)
		}
		ds := e.fake.Deliveries()
		if len(ds) != 2 || !ds[1].OK() || ds[1].StatusCode != http.StatusAccepted || ds[1].GUID != r.header.Get("X-GitHub-Delivery") || ds[1].RepositoryID == 0 {
			t.Fatalf("deliveries = %+v", ds)
		}
	})
	t.Run("labels and comments", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{})
		iss, _ := e.fake.OpenIssue("acme/widgets", "alice", "x", "")
		if err := e.fake.LabelIssue("acme/widgets", iss.Number, "bob", "bug", "p1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.fake.CommentIssue("acme/widgets", iss.Number, "bob", "/retry"); err != nil {
			t.Fatal(err)
		}
		got := e.rc.all()
		var kinds []string
		for _, r := range got[1:] {
			verify(t, r)
			var env struct{ Action string }
			_ = json.Unmarshal(r.body, &env)
			kinds = append(kinds, r.header.Get("X-GitHub-Event")+"."+env.Action)
		}
		want := []string{"issues.opened", "issues.labeled", "issues.labeled", "issue_comment.created"}
		if !equal(kinds, want) {
			t.Fatalf("events = %v, want %v", kinds, want)
		}
		var lab github.IssuesEvent
		_ = json.Unmarshal(got[3].body, &lab)
		if lab.GetLabel().GetName() != "p1" || len(lab.GetIssue().Labels) != 2 {
			t.Fatalf("labeled = %+v", lab)
		}
	})
	t.Run("form content type", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{WebhookContentType: "form"})
		if _, err := e.fake.OpenIssue("acme/widgets", "alice", "x", ""); err != nil {
			t.Fatal(err)
		}
		r := e.rc.all()[1]
		verify(t, r)
		if r.header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Fatalf("Content-Type = %q", r.header.Get("Content-Type"))
		}
		form, err := url.ParseQuery(string(r.body))
		if err != nil || !json.Valid([]byte(form.Get("payload"))) {
			t.Fatalf("form body %q: %v", r.body, err)
		}
	})
	t.Run("unsubscribed events and suspended installations are not sent", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{Events: []string{"issue_comment"}})
		iss, _ := e.fake.OpenIssue("acme/widgets", "alice", "x", "")
		if err := e.fake.SuspendInstallation(e.inst.ID, true); err != nil {
			t.Fatal(err)
		}
		if _, err := e.fake.CommentIssue("acme/widgets", iss.Number, "bob", "hi"); err != nil {
			t.Fatal(err)
		}
		var events []string
		for _, d := range e.fake.Deliveries() {
			events = append(events, d.Event+"."+d.Action)
		}
		if !equal(events, []string{"installation.created", "installation.suspend"}) {
			t.Fatalf("delivered %v", events)
		}
	})
	t.Run("async sends in order", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{AsyncWebhooks: true})
		for i := 0; i < 5; i++ {
			if _, err := e.fake.OpenIssue("acme/widgets", "alice", "x", ""); err != nil {
				t.Fatal(err)
			}
		}
		e.fake.Flush()
		got := e.rc.all()
		if len(got) != 6 {
			t.Fatalf("received %d", len(got))
		}
		for i, r := range got[1:] {
			var ev github.IssuesEvent
			_ = json.Unmarshal(r.body, &ev)
			if ev.GetIssue().GetNumber() != i+1 {
				t.Fatalf("delivery %d is issue %d", i, ev.GetIssue().GetNumber())
			}
		}
	})
}

func TestDeliveries(t *testing.T) {
	t.Parallel()
	e := setup(t, githubfake.Options{})
	for i := 0; i < 4; i++ {
		if _, err := e.fake.OpenIssue("acme/widgets", "alice", "x", ""); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("cursor pagination newest first", func(t *testing.T) {
		var ids []int64
		opts := &github.ListCursorOptions{PerPage: 2}
		for {
			ds, resp, err := e.app.Apps.ListHookDeliveries(e.ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				ids = append(ids, d.GetID())
			}
			if resp.Cursor == "" {
				break
			}
			opts.Cursor = resp.Cursor
		}
		if len(ids) != 5 {
			t.Fatalf("ids = %v", ids)
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] >= ids[i-1] {
				t.Fatalf("not newest first: %v", ids)
			}
		}
	})
	t.Run("get and redeliver keeps the guid", func(t *testing.T) {
		ds, _, err := e.app.Apps.ListHookDeliveries(e.ctx, &github.ListCursorOptions{PerPage: 1})
		if err != nil {
			t.Fatal(err)
		}
		d := ds[0]
		if d.GetEvent() != "issues" || d.GetAction() != "opened" || d.GetStatus() != "OK" || d.GetStatusCode() != 202 ||
			d.GetInstallationID() != e.inst.ID || d.GetRedelivery() || d.DeliveredAt == nil {
			t.Fatalf("delivery = %v", d)
		}
		full, _, err := e.app.Apps.GetHookDelivery(e.ctx, d.GetID())
		if err != nil || full.Request == nil || full.Request.Headers["X-GitHub-Event"] != "issues" {
			t.Fatalf("GetHookDelivery: %v %v", full, err)
		}
		var ev github.IssuesEvent
		if err := json.Unmarshal(*full.Request.RawPayload, &ev); err != nil || ev.GetAction() != "opened" {
			t.Fatalf("request payload: %v", err)
		}

		_, _, err = e.app.Apps.RedeliverHookDelivery(e.ctx, d.GetID())
		var acc *github.AcceptedError
		if !errors.As(err, &acc) {
			t.Fatalf("RedeliverHookDelivery: %v, want AcceptedError (202)", err)
		}
		got := e.rc.all()
		last := got[len(got)-1]
		verify(t, last)
		if last.header.Get("X-GitHub-Delivery") != d.GetGUID() {
			t.Fatalf("redelivered guid %q, want %q", last.header.Get("X-GitHub-Delivery"), d.GetGUID())
		}
		ds, _, _ = e.app.Apps.ListHookDeliveries(e.ctx, &github.ListCursorOptions{PerPage: 1})
		if !ds[0].GetRedelivery() || ds[0].GetGUID() != d.GetGUID() || ds[0].GetID() <= d.GetID() {
			t.Fatalf("redelivery record = %v", ds[0])
		}
	})
	t.Run("retention", func(t *testing.T) {
		f := githubfake.NewServer(t, githubfake.Options{WebhookURL: e.rc.URL})
		if _, err := f.AddInstallation("x", "y"); err != nil {
			t.Fatal(err)
		}
		f.Advance(githubfake.DeliveryRetention + time.Hour)
		if f.Redeliver(f.Deliveries()[0].ID) {
			t.Fatal("redelivered a delivery older than the retention")
		}
	})
}

func TestDeliveryFailures(t *testing.T) {
	t.Parallel()

	t.Run("outage", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{})
		e.fake.SetWebhookOutage(true)
		if _, err := e.fake.OpenIssue("acme/widgets", "alice", "x", ""); err != nil {
			t.Fatal(err)
		}
		if n := len(e.rc.all()); n != 1 {
			t.Fatalf("receiver got %d deliveries during the outage", n)
		}
		ds := e.fake.Deliveries()
		last := ds[len(ds)-1]
		if last.OK() || last.Status != githubfake.StatusFailedConnect || last.StatusCode != 0 {
			t.Fatalf("delivery = %+v", last)
		}
		e.fake.SetWebhookOutage(false)
		if !e.fake.Redeliver(last.ID) {
			t.Fatal("Redeliver")
		}
		got := e.rc.all()
		if len(got) != 2 || got[1].header.Get("X-GitHub-Delivery") != last.GUID {
			t.Fatalf("after the outage: %d deliveries", len(got))
		}
	})
	t.Run("error status", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{})
		e.rc.setStatus(http.StatusServiceUnavailable)
		if _, err := e.fake.OpenIssue("acme/widgets", "alice", "x", ""); err != nil {
			t.Fatal(err)
		}
		ds, _, err := e.app.Apps.ListHookDeliveries(e.ctx, &github.ListCursorOptions{PerPage: 1})
		if err != nil {
			t.Fatal(err)
		}
		if ds[0].GetStatus() != "Invalid HTTP Response: 503" || ds[0].GetStatusCode() != 503 {
			t.Fatalf("delivery = %v", ds[0])
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(slow.Close)
		t.Cleanup(func() { close(release) })
		f := githubfake.NewServer(t, githubfake.Options{WebhookURL: slow.URL, WebhookTimeout: 50 * time.Millisecond})
		if _, err := f.AddInstallation("acme", "w"); err != nil {
			t.Fatal(err)
		}
		if d := f.Deliveries()[0]; d.Status != githubfake.StatusTimedOut {
			t.Fatalf("delivery = %+v", d)
		}
	})
}

func TestRateLimits(t *testing.T) {
	t.Parallel()

	t.Run("headers", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{RateLimit: 100})
		_, resp, err := e.cli.Repositories.Get(e.ctx, "acme", "widgets")
		if err != nil {
			t.Fatal(err)
		}
		if resp.Rate.Limit != 100 || resp.Rate.Remaining != 99 || resp.Header.Get("X-RateLimit-Used") != "1" || resp.Header.Get("X-RateLimit-Resource") != "core" {
			t.Fatalf("rate = %+v headers %v", resp.Rate, resp.Header)
		}
		if s := e.fake.Stats(e.inst.ID); s.Requests != 1 || s.TokensMinted != 1 {
			t.Fatalf("stats = %+v", s)
		}
	})
	t.Run("primary exhausted", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{})
		reset := e.fake.Now().Add(10 * time.Minute).Truncate(time.Second)
		if _, _, err := e.cli.Repositories.Get(e.ctx, "acme", "widgets"); err != nil { // mints the token
			t.Fatal(err)
		}
		e.fake.SetRateLimit(e.inst.ID, 1, reset)
		if _, _, err := e.cli.Repositories.Get(e.ctx, "acme", "widgets"); err != nil {
			t.Fatal(err)
		}
		// A fresh client: go-github remembers the limit and would not even ask.
		fresh := client(t, e.fake, e.cli.Client().Transport)
		_, _, err := fresh.Repositories.Get(e.ctx, "acme", "widgets")
		var rl *github.RateLimitError
		if !errors.As(err, &rl) {
			t.Fatalf("error = %v, want RateLimitError", err)
		}
		if !rl.Rate.Reset.Time.Equal(reset) || rl.Rate.Remaining != 0 || !strings.Contains(rl.Message, "API rate limit exceeded") {
			t.Fatalf("rate limit error = %+v", rl)
		}
		if s := e.fake.Stats(e.inst.ID); s.RateLimited != 1 {
			t.Fatalf("stats = %+v", s)
		}
		e.fake.Advance(11 * time.Minute)
		if _, _, err := client(t, e.fake, e.cli.Client().Transport).Repositories.Get(e.ctx, "acme", "widgets"); err != nil {
			t.Fatalf("after the reset: %v", err)
		}
	})
	t.Run("secondary", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{})
		iss, _ := e.fake.OpenIssue("acme/widgets", "alice", "x", "")
		e.fake.InjectFault(githubfake.SecondaryRateLimit("/repos/*/*/issues/*/comments", 1, 30*time.Second))
		_, _, err := e.cli.Issues.CreateComment(e.ctx, "acme", "widgets", iss.Number, &github.IssueComment{Body: github.String("x")})
		var ab *github.AbuseRateLimitError
		if !errors.As(err, &ab) || ab.GetRetryAfter() != 30*time.Second {
			t.Fatalf("error = %v, want AbuseRateLimitError with Retry-After 30s", err)
		}
		if s := e.fake.Stats(e.inst.ID); s.Faults != 1 {
			t.Fatalf("stats = %+v", s)
		}
	})
	t.Run("server errors", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{})
		e.fake.InjectFault(githubfake.ServerError("/repos/acme/widgets", 2, http.StatusBadGateway))
		for i := 0; i < 2; i++ {
			_, _, err := e.cli.Repositories.Get(e.ctx, "acme", "widgets")
			wantStatus(t, err, http.StatusBadGateway)
		}
		if _, _, err := e.cli.Repositories.Get(e.ctx, "acme", "widgets"); err != nil {
			t.Fatalf("third call: %v", err)
		}
	})
}

func TestTokens(t *testing.T) {
	t.Parallel()

	mint := func(t *testing.T, e *env) string {
		t.Helper()
		tok, _, err := e.app.Apps.CreateInstallationToken(e.ctx, e.inst.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok.GetToken()
	}
	t.Run("both authorization schemes", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{})
		tok := mint(t, e)
		for _, scheme := range []string{"token ", "Bearer "} {
			req, _ := http.NewRequest(http.MethodGet, e.fake.URL()+"repos/acme/widgets", nil)
			req.Header.Set("Authorization", scheme+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d", scheme, resp.StatusCode)
			}
		}
	})
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{})
		c := tokenClient(t, e.fake, mint(t, e))
		e.fake.Advance(githubfake.TokenLifetime + time.Second)
		_, _, err := c.Repositories.Get(e.ctx, "acme", "widgets")
		wantStatus(t, err, http.StatusUnauthorized)
	})
	t.Run("suspended", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{})
		c := tokenClient(t, e.fake, mint(t, e))
		if err := e.fake.SuspendInstallation(e.inst.ID, true); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.Repositories.Get(e.ctx, "acme", "widgets")
		wantStatus(t, err, http.StatusForbidden)
		_, _, err = e.app.Apps.CreateInstallationToken(e.ctx, e.inst.ID, nil)
		wantStatus(t, err, http.StatusForbidden)
		if err := e.fake.SuspendInstallation(e.inst.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Repositories.Get(e.ctx, "acme", "widgets"); err != nil {
			t.Fatalf("after unsuspend: %v", err)
		}
	})
	t.Run("uninstalled", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{})
		c := tokenClient(t, e.fake, mint(t, e))
		if err := e.fake.RemoveInstallation(e.inst.ID); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.Repositories.Get(e.ctx, "acme", "widgets")
		wantStatus(t, err, http.StatusUnauthorized)
		ds := e.fake.Deliveries()
		if last := ds[len(ds)-1]; last.Event != "installation" || last.Action != "deleted" {
			t.Fatalf("last delivery = %+v", last)
		}
	})
	t.Run("repositories removed", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{})
		c := tokenClient(t, e.fake, mint(t, e))
		if err := e.fake.RemoveRepositories(e.inst.ID, "gadgets"); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.Repositories.Get(e.ctx, "acme", "gadgets")
		wantStatus(t, err, http.StatusNotFound)
		var ev github.InstallationRepositoriesEvent
		ds := e.fake.Deliveries()
		if err := json.Unmarshal(ds[len(ds)-1].Payload, &ev); err != nil || ev.GetAction() != "removed" || len(ev.RepositoriesRemoved) != 1 {
			t.Fatalf("installation_repositories = %+v %v", ev, err)
		}
	})
	t.Run("no auth", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{})
		_, _, err := client(t, e.fake, http.DefaultTransport).Repositories.Get(e.ctx, "acme", "widgets")
		wantStatus(t, err, http.StatusUnauthorized)
	})
}

func TestHookConfig(t *testing.T) {
	t.Parallel()
	e := setup(t, githubfake.Options{})
	cfg, _, err := e.app.Apps.GetHookConfig(e.ctx)
	if err != nil || cfg.GetURL() != e.rc.URL || cfg.GetContentType() != "json" || cfg.GetSecret() != "********" {
		t.Fatalf("GetHookConfig: %v %v", cfg, err)
	}
	other := newReceiver(t)
	cfg, _, err = e.app.Apps.UpdateHookConfig(e.ctx, &github.HookConfig{URL: github.String(other.URL)})
	if err != nil || cfg.GetURL() != other.URL {
		t.Fatalf("UpdateHookConfig: %v %v", cfg, err)
	}
	if _, err := e.fake.OpenIssue("acme/widgets", "alice", "x", ""); err != nil {
		t.Fatal(err)
	}
	if len(other.all()) != 1 {
		t.Fatalf("the new URL got %d deliveries", len(other.all()))
	}
}

func TestBasePath(t *testing.T) {
	t.Parallel()
	f := githubfake.NewServer(t, githubfake.Options{BasePath: "/api/v3"})
	if !strings.HasSuffix(f.URL(), "/api/v3/") {
		t.Fatalf("URL = %q", f.URL())
	}
	resp, err := http.Get(f.URL() + "app")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET app without JWT: %d", resp.StatusCode)
	}
}

// The fake's payloads route like GitHub's: hookd's envelope parser finds the tenant and sender.
func TestPayloadsRoute(t *testing.T) {
	t.Parallel()
	e := setup(t, githubfake.Options{})
	iss, _ := e.fake.OpenIssue("acme/widgets", "alice", "x", "")
	if _, _, err := e.cli.Issues.CreateComment(e.ctx, "acme", "widgets", iss.Number, &github.IssueComment{Body: github.String("hi")}); err != nil {
		t.Fatal(err)
	}
	repo, _ := e.fake.Repo("acme/widgets")
	ds := e.fake.Deliveries()
	for _, tc := range []struct {
		d          githubfake.Delivery
		sender     string
		senderType string
		repoID     int64
	}{
		{ds[0], githubfake.Admin, "User", 0},
		{ds[1], "alice", "User", repo.ID},
		{ds[2], e.fake.BotLogin(), "Bot", repo.ID},
	} {
		m := event.Meta{Event: tc.d.Event}
		if err := event.ParsePayload(&m, tc.d.Payload); err != nil {
			t.Fatal(err)
		}
		if m.InstallationID != e.inst.ID || m.RepositoryID != tc.repoID || m.Owner != "acme" || m.Sender != tc.sender || m.SenderType != tc.senderType {
			t.Errorf("%s.%s: meta = %+v", tc.d.Event, tc.d.Action, m)
		}
	}
}
