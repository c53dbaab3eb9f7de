package ghapp_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/hookd/hookd/internal/ghapp"
	"github.com/hookd/hookd/internal/githubfake"
)

func TestConfig(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		var c ghapp.Config
		c.Defaults()
		if c.APIURL != "https://api.github.com/" {
			t.Fatalf("api_url = %q", c.APIURL)
		}
		c = ghapp.Config{APIURL: "https://ghe.example.com/api/v3"}
		c.Defaults()
		if c.APIURL != "https://ghe.example.com/api/v3/" {
			t.Fatalf("api_url = %q, want a trailing slash", c.APIURL)
		}
	})
	t.Run("validate", func(t *testing.T) {
		pem := "-----BEGIN RSA PRIVATE KEY-----\n..."
		for _, tc := range []struct {
			name string
			cfg  ghapp.Config
			want string // substring of the error; "" for valid
		}{
			{"empty is valid", ghapp.Config{}, ""},
			{"complete", ghapp.Config{AppID: 1, PrivateKeyFile: "k.pem", WebhookSecrets: []string{"a", "b"}, PublicURL: "https://h.example/webhook"}, ""},
			{"negative app id", ghapp.Config{AppID: -3}, "github.app_id"},
			{"both keys", ghapp.Config{PrivateKeyFile: "k.pem", PrivateKey: pem}, "github.private_key_file and github.private_key"},
			{"inline key not pem", ghapp.Config{PrivateKey: "/etc/key.pem"}, "github.private_key: not a PEM"},
			{"empty secret", ghapp.Config{WebhookSecrets: []string{"a", ""}}, "github.webhook_secrets[1]"},
			{"bad api url", ghapp.Config{APIURL: "api.github.com"}, "github.api_url"},
			{"bad public url", ghapp.Config{PublicURL: "ftp://x"}, "github.public_url"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.cfg.Defaults()
				err := tc.cfg.Validate()
				if tc.want == "" {
					if err != nil {
						t.Fatalf("Validate: %v", err)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Validate = %v, want it to mention %q", err, tc.want)
				}
			})
		}
	})
	t.Run("missing", func(t *testing.T) {
		c := ghapp.Config{}
		hint := c.MissingHint()
		for _, want := range []string{"github.app_id", "HOOKD_GITHUB_APP_ID", "HOOKD_GITHUB_PRIVATE_KEY_FILE", "HOOKD_GITHUB_WEBHOOK_SECRET"} {
			if !strings.Contains(hint, want) {
				t.Errorf("hint %q lacks %q", hint, want)
			}
		}
		c = ghapp.Config{AppID: 7, PrivateKey: "-----BEGIN", WebhookSecrets: []string{"s"}}
		if m := c.Missing(); len(m) != 0 || c.MissingHint() != "" || !c.CanCallAPI() {
			t.Fatalf("complete config: missing %v", m)
		}
		c.WebhookSecrets = nil
		if m := c.Missing(); len(m) != 1 || !c.CanCallAPI() {
			t.Fatalf("missing = %v", m)
		}
	})
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(dir, "absent.pem")
	for _, tc := range []struct {
		name string
		cfg  ghapp.Config
		is   error
		want []string
	}{
		{"no app id", ghapp.Config{PrivateKeyFile: garbage}, ghapp.ErrNoCredentials, []string{"github.app_id", "HOOKD_GITHUB_APP_ID"}},
		{"no key", ghapp.Config{AppID: 1}, ghapp.ErrNoCredentials, []string{"github.private_key_file", "HOOKD_GITHUB_PRIVATE_KEY_FILE"}},
		{"unreadable key file", ghapp.Config{AppID: 1, PrivateKeyFile: absent}, os.ErrNotExist, []string{"github.private_key_file", absent}},
		{"malformed key", ghapp.Config{AppID: 1, PrivateKeyFile: garbage}, nil, []string{"github.private_key_file", garbage, "not a PEM-encoded RSA private key"}},
		{"malformed inline key", ghapp.Config{AppID: 1, PrivateKey: "-----BEGIN x"}, nil, []string{"github.private_key:"}},
		{"invalid config", ghapp.Config{AppID: -1}, nil, []string{"github.app_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ghapp.New(tc.cfg, ghapp.Options{})
			if err == nil {
				t.Fatal("New succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

type env struct {
	fake *githubfake.Fake
	app  *ghapp.App
	inst githubfake.Installation
	ctx  context.Context

	mu        sync.Mutex
	responses map[int64]int // OnResponse calls per installation id
	appAuth   []string      // Authorization headers of /app calls
}

func setup(t *testing.T, fopts githubfake.Options, cfg ghapp.Config) *env {
	t.Helper()
	fake := githubfake.NewServer(t, fopts)
	inst, err := fake.AddInstallation("acme", "widgets", "gadgets")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(key, fake.App().PrivateKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.AppID, cfg.PrivateKeyFile = fake.App().ID, key
	if cfg.APIURL == "" {
		cfg.APIURL = fake.URL()
	}
	e := &env{fake: fake, inst: inst, ctx: context.Background(), responses: map[int64]int{}}
	rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if strings.Contains(req.URL.Path, "/app") {
			e.mu.Lock()
			e.appAuth = append(e.appAuth, req.Header.Get("Authorization"))
			e.mu.Unlock()
		}
		return http.DefaultTransport.RoundTrip(req)
	})
	e.app, err = ghapp.New(cfg, ghapp.Options{
		Transport: rt,
		Now:       fake.Now,
		OnResponse: func(id int64, resp *http.Response) {
			if resp.Header.Get("X-RateLimit-Remaining") == "" {
				t.Errorf("response without X-RateLimit-Remaining: %s", resp.Request.URL)
			}
			e.mu.Lock()
			e.responses[id]++
			e.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (e *env) get(t *testing.T, repo string) {
	t.Helper()
	c, err := e.app.Installation(e.inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Repositories.Get(e.ctx, "acme", repo); err != nil {
		t.Fatalf("get %s: %v", repo, err)
	}
}

func (e *env) minted() int { return e.fake.Stats(e.inst.ID).TokensMinted }

func TestApp(t *testing.T) {
	t.Parallel()

	t.Run("app client", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, ghapp.Config{})
		for i := 0; i < 2; i++ {
			app, _, err := e.app.Client().Apps.Get(e.ctx, "")
			if err != nil || app.GetID() != e.app.ID() {
				t.Fatalf("Apps.Get: %v %v", app, err)
			}
		}
		if len(e.appAuth) != 2 || e.appAuth[0] != e.appAuth[1] || !strings.HasPrefix(e.appAuth[0], "Bearer ") {
			t.Fatalf("app authorizations %v: want one JWT reused", e.appAuth)
		}
	})
	t.Run("installation clients are shared and reuse their token", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, ghapp.Config{})
		c1, _ := e.app.Installation(e.inst.ID)
		c2, _ := e.app.Installation(e.inst.ID)
		if c1 != c2 {
			t.Fatal("two clients for one installation")
		}
		e.get(t, "widgets")
		e.get(t, "gadgets")
		if n := e.minted(); n != 1 {
			t.Fatalf("minted %d tokens for two calls within the hour", n)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.responses[0] != 1 || e.responses[e.inst.ID] != 2 {
			t.Fatalf("OnResponse calls = %v", e.responses)
		}
	})
	t.Run("refresh before expiry", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, ghapp.Config{})
		e.get(t, "widgets")
		e.fake.Advance(50 * time.Minute)
		e.get(t, "widgets")
		if n := e.minted(); n != 1 {
			t.Fatalf("minted %d after 50m", n)
		}
		e.fake.Advance(6 * time.Minute) // 4 minutes before expiry
		e.get(t, "widgets")
		if n := e.minted(); n != 2 {
			t.Fatalf("minted %d, want a refresh 5m before expiry", n)
		}
		e.fake.Advance(3 * time.Hour)
		e.get(t, "widgets")
		if n := e.minted(); n != 3 {
			t.Fatalf("minted %d after the token expired", n)
		}
	})
	t.Run("revoked token is replaced once", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, ghapp.Config{})
		c, _ := e.app.Installation(e.inst.ID)
		iss, err := e.fake.OpenIssue("acme/widgets", "alice", "x", "")
		if err != nil {
			t.Fatal(err)
		}
		e.get(t, "widgets")
		e.fake.RevokeTokens(e.inst.ID)
		// A request with a body: it must be replayed intact.
		cm, _, err := c.Issues.CreateComment(e.ctx, "acme", "widgets", iss.Number, &github.IssueComment{Body: github.String("hello")})
		if err != nil || cm.GetBody() != "hello" {
			t.Fatalf("CreateComment after revocation: %v %v", cm, err)
		}
		if n := e.minted(); n != 2 {
			t.Fatalf("minted %d", n)
		}
	})
	t.Run("suspended installation", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, ghapp.Config{})
		if err := e.fake.SuspendInstallation(e.inst.ID, true); err != nil {
			t.Fatal(err)
		}
		c, _ := e.app.Installation(e.inst.ID)
		_, _, err := c.Repositories.Get(e.ctx, "acme", "widgets")
		if err == nil || !strings.Contains(err.Error(), "mint token") {
			t.Fatalf("error = %v", err)
		}
		var er *github.ErrorResponse
		if !errors.As(err, &er) || er.Response.StatusCode != http.StatusForbidden {
			t.Fatalf("error %v does not carry the 403", err)
		}
	})
	t.Run("narrowed token", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, ghapp.Config{})
		repo, err := e.fake.Repo("acme/widgets")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := e.app.Token(e.ctx, e.inst.ID, []int64{repo.ID}, &github.InstallationPermissions{Metadata: github.String("read")})
		if err != nil {
			t.Fatal(err)
		}
		if len(tok.Repositories) != 1 || tok.GetPermissions().GetIssues() != "" {
			t.Fatalf("token = %+v", tok)
		}
		c := github.NewClient(nil).WithAuthToken(tok.GetToken())
		c.BaseURL = e.app.Client().BaseURL
		if _, _, err := c.Repositories.Get(e.ctx, "acme", "widgets"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Repositories.Get(e.ctx, "acme", "gadgets"); err == nil {
			t.Fatal("narrowed token reached another repository")
		}
		if _, err := e.app.Token(e.ctx, 987654, nil, nil); err == nil || !strings.Contains(err.Error(), "installation 987654") {
			t.Fatalf("unknown installation: %v", err)
		}
	})
	t.Run("base url verbatim", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{BasePath: "/api/v3/"}, ghapp.Config{})
		if got := e.app.Client().BaseURL.String(); got != e.fake.URL() {
			t.Fatalf("BaseURL = %q, want %q", got, e.fake.URL())
		}
		e.get(t, "widgets")
	})
	t.Run("concurrent first use mints one token", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, ghapp.Config{})
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := e.app.Installation(e.inst.ID)
				if err != nil {
					t.Error(err)
					return
				}
				if _, _, err := c.Repositories.Get(e.ctx, "acme", "widgets"); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := e.minted(); n != 1 {
			t.Fatalf("minted %d", n)
		}
	})
	t.Run("a request waiting for another's token mint gives up with its context", func(t *testing.T) {
		t.Parallel()
		fake := githubfake.NewServer(t, githubfake.Options{})
		inst, err := fake.AddInstallation("acme", "widgets")
		if err != nil {
			t.Fatal(err)
		}
		minting, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if strings.HasSuffix(req.URL.Path, "/access_tokens") {
				once.Do(func() { close(minting); <-release }) // the first mint hangs
			}
			return http.DefaultTransport.RoundTrip(req)
		})
		app, err := ghapp.New(ghapp.Config{AppID: fake.App().ID, PrivateKey: string(fake.App().PrivateKeyPEM), APIURL: fake.URL()},
			ghapp.Options{Transport: rt, Now: fake.Now})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := app.Installation(inst.ID)
		first := make(chan error, 1)
		go func() { _, _, err := c.Repositories.Get(context.Background(), "acme", "widgets"); first <- err }()
		<-minting
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		second := make(chan error, 1)
		go func() { _, _, err := c.Repositories.Get(ctx, "acme", "widgets"); second <- err }()
		select {
		case err := <-second:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("second request: %v, want its deadline", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("the second request outlived its deadline waiting for the first one's token mint")
		}
		close(release)
		if err := <-first; err != nil {
			t.Fatalf("first request: %v", err)
		}
		if n := fake.Stats(inst.ID).TokensMinted; n != 1 {
			t.Fatalf("minted %d", n)
		}
	})
	t.Run("invalid installation id", func(t *testing.T) {
		t.Parallel()
		e := setup(t, githubfake.Options{}, ghapp.Config{})
		if _, err := e.app.Installation(0); err == nil {
			t.Fatal("Installation(0) succeeded")
		}
	})
}
