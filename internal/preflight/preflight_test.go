package preflight_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/ghapp"
	"github.com/hookd/hookd/internal/githubfake"
	"github.com/hookd/hookd/internal/preflight"
	"github.com/hookd/hookd/planner"
)

type env struct {
	fake   *githubfake.Fake
	app    *ghapp.App
	checks *preflight.Checks
	logs   *bytes.Buffer
}

func setup(t *testing.T, opts githubfake.Options, needs preflight.Needs) *env {
	t.Helper()
	fake := githubfake.NewServer(t, opts)
	a := fake.App()
	app, err := ghapp.New(ghapp.Config{AppID: a.ID, PrivateKey: string(a.PrivateKeyPEM), APIURL: fake.URL()}, ghapp.Options{Now: fake.Now})
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	return &env{fake: fake, app: app, logs: logs, checks: &preflight.Checks{
		GitHub: app, Needs: needs, PublicURL: "https://hookd.example.com/webhook", Log: zerolog.New(logs),
	}}
}

func permanent(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want a permanent one")
	}
	if c, _ := planner.Classify(err, time.Now()); c != planner.PermanentClass {
		t.Fatalf("error class %s, want permanent: %v", c, err)
	}
}

func TestApp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("everything present", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, preflight.Needs{
			Events:      []string{"issues", "issue_comment", "installation"},
			Permissions: map[string]string{"issues": "write", "metadata": "read", "contents": "read"},
		})
		if err := e.checks.App(ctx, event.Tenant{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("missing events and permissions listed exactly", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{
			Events:      []string{"issues"},
			Permissions: map[string]string{"metadata": "read", "issues": "read"},
		}, preflight.Needs{
			Events:      []string{"issues", "issue_comment", "pull_request", "installation_repositories"},
			Permissions: map[string]string{"issues": "write", "metadata": "read", "pull_requests": "write"},
		})
		err := e.checks.App(ctx, event.Tenant{})
		permanent(t, err)
		var miss *preflight.MissingError
		if !errors.As(err, &miss) {
			t.Fatalf("want *MissingError, got %v", err)
		}
		want := []string{
			"Repository permissions → Issues: Read and write (now: Read-only)",
			"Repository permissions → Pull requests: Read and write (now: No access)",
			"Subscribe to events: Issue comment",
			"Subscribe to events: Pull request",
		}
		if got := miss.Lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		msg := err.Error()
		for _, s := range append(want, "Developer settings → GitHub Apps → hookd-test → Permissions & events",
			"https://github.com/organizations/hookd/settings/apps/hookd-test/permissions") {
			if !strings.Contains(msg, s) {
				t.Errorf("message lacks %q:\n%s", s, msg)
			}
		}
	})

	t.Run("401 says the app id or key is wrong", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, preflight.Needs{})
		other := setup(t, githubfake.Options{}, preflight.Needs{}) // a different key
		a := e.fake.App()
		app, err := ghapp.New(ghapp.Config{AppID: a.ID, PrivateKey: string(other.fake.App().PrivateKeyPEM), APIURL: e.fake.URL()}, ghapp.Options{Now: e.fake.Now})
		if err != nil {
			t.Fatal(err)
		}
		c := &preflight.Checks{GitHub: app}
		err = c.App(ctx, event.Tenant{})
		permanent(t, err)
		for _, s := range []string{"401", "app id or key is wrong", "github.app_id", "github.private_key_file"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("message lacks %q: %v", s, err)
			}
		}
	})

	t.Run("404 names github.api_url", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, preflight.Needs{})
		a := e.fake.App()
		app, err := ghapp.New(ghapp.Config{AppID: a.ID, PrivateKey: string(a.PrivateKeyPEM), APIURL: e.fake.URL() + "api/v3/"}, ghapp.Options{Now: e.fake.Now})
		if err != nil {
			t.Fatal(err)
		}
		err = (&preflight.Checks{GitHub: app}).App(ctx, event.Tenant{})
		permanent(t, err)
		if !strings.Contains(err.Error(), "github.api_url") {
			t.Fatalf("message lacks github.api_url: %v", err)
		}
	})

	t.Run("5xx is transient", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, preflight.Needs{})
		e.fake.InjectFault(githubfake.ServerError("/app", 1, 502))
		err := e.checks.App(ctx, event.Tenant{})
		if c, _ := planner.Classify(err, e.fake.Now()); c != planner.TransientClass {
			t.Fatalf("class %s, want transient: %v", c, err)
		}
		if err := e.checks.App(ctx, event.Tenant{}); err != nil {
			t.Fatalf("second attempt: %v", err)
		}
	})
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name     string
		opts     githubfake.Options
		insecure bool
		wantErr  []string
		wantWarn []string
	}{
		{name: "ok", opts: githubfake.Options{WebhookURL: "https://hookd.example.com/webhook", WebhookSecret: "s"}},
		{name: "no secret fails", opts: githubfake.Options{WebhookURL: "https://hookd.example.com/webhook"}, wantErr: []string{"no webhook secret", "github.webhook_secrets"}},
		{name: "no url and no secret", wantErr: []string{"no webhook URL", "no webhook secret"}},
		{name: "other url, form and insecure warn", opts: githubfake.Options{WebhookURL: "https://elsewhere.example.com/hook", WebhookSecret: "s", WebhookContentType: "form"}, insecure: true,
			wantWarn: []string{"differs from github.public_url", "json is recommended", "insecure_ssl=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, tt.opts, preflight.Needs{})
			if tt.insecure {
				in := "1"
				if _, _, err := e.app.Client().Apps.UpdateHookConfig(ctx, &github.HookConfig{InsecureSSL: &in}); err != nil {
					t.Fatal(err)
				}
			}
			err := e.checks.Webhook(ctx, event.Tenant{})
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatal(err)
			}
			if len(tt.wantErr) > 0 {
				permanent(t, err)
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error lacks %q: %v", s, err)
					}
				}
			}
			for _, s := range tt.wantWarn {
				if !strings.Contains(e.logs.String(), s) {
					t.Errorf("logs lack %q:\n%s", s, e.logs)
				}
			}
			if len(tt.wantWarn) == 0 && strings.Contains(e.logs.String(), `"level":"warn"`) {
				t.Errorf("unexpected warning:\n%s", e.logs)
			}
		})
	}
}

func TestInstallation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("token and repositories", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, preflight.Needs{Permissions: map[string]string{"issues": "write"}})
		in, err := e.fake.AddInstallation("acme", "api", "web")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.checks.Installation(ctx, event.Tenant{InstallationID: in.ID, Owner: "acme"}); err != nil {
			t.Fatal(err)
		}
		if got := e.fake.Stats(in.ID).TokensMinted; got != 1 {
			t.Fatalf("tokens minted %d, want 1", got)
		}
	})

	t.Run("suspended is a warning", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, preflight.Needs{})
		in, err := e.fake.AddInstallation("acme", "api")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.fake.SuspendInstallation(in.ID, true); err != nil {
			t.Fatal(err)
		}
		if err := e.checks.Installation(ctx, event.Tenant{InstallationID: in.ID, Owner: "acme"}); err != nil {
			t.Fatalf("suspended installation failed the preflight: %v", err)
		}
		if !strings.Contains(e.logs.String(), "suspended") {
			t.Fatalf("no warning logged:\n%s", e.logs)
		}
	})

	t.Run("uninstalled is permanent", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, preflight.Needs{})
		err := e.checks.Installation(ctx, event.Tenant{InstallationID: 999, Owner: "gone"})
		permanent(t, err)
	})

	t.Run("unaccepted permission warns", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{Permissions: map[string]string{"metadata": "read", "issues": "read"}}, preflight.Needs{Permissions: map[string]string{"issues": "write"}})
		in, err := e.fake.AddInstallation("acme", "api")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.checks.Installation(ctx, event.Tenant{InstallationID: in.ID, Owner: "acme"}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(e.logs.String(), "issues:write") {
			t.Fatalf("no warning about issues:write:\n%s", e.logs)
		}
	})
}

// TestWrongKey: every check that calls GitHub with the app's JWT says what to change when
// GitHub refuses it; any of them may be the failure the scheduler reports first.
func TestWrongKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, githubfake.Options{WebhookURL: "https://hookd.example.com/webhook", WebhookSecret: "s"}, preflight.Needs{})
	in, err := e.fake.AddInstallation("acme", "api")
	if err != nil {
		t.Fatal(err)
	}
	other := setup(t, githubfake.Options{}, preflight.Needs{})
	app, err := ghapp.New(ghapp.Config{AppID: e.fake.App().ID, PrivateKey: string(other.fake.App().PrivateKeyPEM), APIURL: e.fake.URL()}, ghapp.Options{Now: e.fake.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := &preflight.Checks{GitHub: app}
	for _, spec := range c.Specs() {
		t.Run(spec.Resource, func(t *testing.T) {
			t.Parallel()
			err := spec.Run(ctx, event.Tenant{InstallationID: in.ID, Owner: "acme"})
			permanent(t, err)
			for _, s := range []string{"401", "github.app_id", "github.private_key_file"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message lacks %q: %v", s, err)
				}
			}
		})
	}
}

func TestSpecs(t *testing.T) {
	t.Parallel()
	c := &preflight.Checks{}
	names := map[string]planner.Scope{}
	for _, s := range c.Specs() {
		if s.Phase != planner.PhasePreflight || s.Kind != planner.OneShot || s.Run == nil {
			t.Errorf("spec %s: phase %s kind %s", s.Resource, s.Phase, s.Kind)
		}
		names[s.Resource] = s.Scope
	}
	want := map[string]planner.Scope{"app": planner.Global, "webhook": planner.Global, "installation": planner.PerInstallation}
	for k, v := range want {
		if got, ok := names[k]; !ok || got != v {
			t.Errorf("spec %s: present %v, scope %s, want %s", k, ok, got, v)
		}
	}
	if len(names) != len(want) {
		t.Errorf("specs %v, want %v", names, want)
	}
}
