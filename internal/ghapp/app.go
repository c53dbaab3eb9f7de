package ghapp

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	jwt "github.com/golang-jwt/jwt/v4"
	"github.com/google/go-github/v60/github"
)

// ErrNoCredentials is returned by New when the app id or private key is not configured; the
// error's text is Config.MissingHint.
var ErrNoCredentials = errors.New("GitHub App credentials missing")

// Options are the open-ended parts of an App. The zero value is usable.
type Options struct {
	// Transport sends every request (app and installations). Default http.DefaultTransport.
	Transport http.RoundTripper
	// OnResponse, when set, is called with every response received: installationID is 0 for
	// app-level (JWT) calls, including token mints. It must not read or close the body.
	OnResponse func(installationID int64, resp *http.Response)
	// Now is the clock for JWTs and token expiry. Default time.Now.
	Now func() time.Time
	// RefreshBefore is how long before its expiry an installation token is replaced. Default 5m.
	RefreshBefore time.Duration
	// MutationSpacing is the least time between two mutating requests (POST, PATCH, PUT,
	// DELETE) of one installation in this process. Mutations also run one at a time per
	// installation, and wait out the Retry-After of a secondary rate limit. The app's own
	// mutations (redelivery requests; token mints are exempt) are serialised and wait out
	// Retry-After but are paced by their callers (sweep.redelivery_spacing), not by this.
	// Default DefaultMutationSpacing (1s, what GitHub asks); negative removes the spacing, not
	// the rest.
	MutationSpacing time.Duration
	// Budget, when set, sees every response (like OnResponse) and refuses, without sending
	// them, the requests of an installation whose primary rate limit it knows to be exhausted,
	// with the *github.RateLimitError GitHub would answer (planner.Classify: retry after the
	// reset). NewKVBudget shares one budget among replicas. Default none: each client still
	// remembers its own last response (go-github does).
	Budget Budget
}

// App is hookd's GitHub App: an app-level client and cached per-installation clients. It is
// safe for concurrent use.
type App struct {
	id      int64
	baseURL *url.URL
	opts    Options
	app     *github.Client
	gov     *governor
	signer  *reusedJWT

	mu       sync.Mutex
	installs map[int64]*github.Client
}

// New reads the app's private key and builds its clients. No request is made: tokens are
// minted on first use. It fails with an error wrapping ErrNoCredentials when the app id or the
// key is not configured, and with an error naming the setting or file when they are invalid.
func New(cfg Config, opts Options) (*App, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m := cfg.missingAPI(); len(m) > 0 {
		return nil, fmt.Errorf("%w: set %s", ErrNoCredentials, strings.Join(m, " and "))
	}
	key, err := loadKey(cfg)
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(cfg.APIURL)
	if err != nil {
		return nil, fmt.Errorf("github.api_url: %w", err)
	}
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RefreshBefore <= 0 {
		opts.RefreshBefore = 5 * time.Minute
	}
	switch {
	case opts.MutationSpacing == 0:
		opts.MutationSpacing = DefaultMutationSpacing
	case opts.MutationSpacing < 0:
		opts.MutationSpacing = 0
	}
	a := &App{id: cfg.AppID, baseURL: base, opts: opts, installs: map[int64]*github.Client{}, gov: newGovernor()}
	signer := &reusedJWT{appID: cfg.AppID, key: key, now: opts.Now}
	atr, err := ghinstallation.NewAppsTransportWithOptions(a.gov.transport(0, 0, a.observe(0)), cfg.AppID,
		ghinstallation.WithSigner(signer))
	if err != nil {
		return nil, fmt.Errorf("github app transport: %w", err)
	}
	atr.BaseURL = cfg.APIURL
	a.signer = signer
	a.app = a.client(a.gate(0, skewRetry{signer: signer, next: atr}))
	return a, nil
}

func loadKey(cfg Config) (*rsa.PrivateKey, error) {
	data, where := []byte(cfg.PrivateKey), "github.private_key"
	if cfg.PrivateKeyFile != "" {
		where = "github.private_key_file " + cfg.PrivateKeyFile
		b, err := os.ReadFile(cfg.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read the GitHub App private key: %w; check the path and that hookd may read it", where, err)
		}
		data = b
	}
	// A PEM kept on one line with its newlines escaped as \n (an env file, a single-line secret
	// store field) is the same key.
	if !bytes.ContainsRune(data, '\n') && bytes.Contains(data, []byte(`\n`)) {
		data = bytes.ReplaceAll(bytes.ReplaceAll(data, []byte(`\r\n`), []byte("\n")), []byte(`\n`), []byte("\n"))
	}
	if b, _ := pem.Decode(data); b != nil && (b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] == "4,ENCRYPTED") {
		return nil, fmt.Errorf("%s: the private key is encrypted with a passphrase, which hookd cannot use; give it the key as GitHub generated it, or decrypt it (openssl pkey -in KEY.pem -out PLAIN.pem)", where)
	}
	key, err := jwt.ParseRSAPrivateKeyFromPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not a PEM-encoded RSA private key (%v); use the .pem file from the GitHub App's settings (\"Generate a private key\")", where, err)
	}
	return key, nil
}

// client is a go-github client over rt with the API base URL verbatim.
func (a *App) client(rt http.RoundTripper) *github.Client {
	c := github.NewClient(&http.Client{Transport: rt})
	c.BaseURL = a.baseURL
	c.UploadURL = a.baseURL
	return c
}

// ID is the app's id.
func (a *App) ID() int64 { return a.id }

// Budget is Options.Budget: the rate-limit budget the App's clients share (nil without one).
func (a *App) Budget() Budget { return a.opts.Budget }

// Client is the app-level client, authenticated with the app's JWT: /app endpoints (the app,
// its installations, its hook config and deliveries).
func (a *App) Client() *github.Client { return a.app }

// Installation returns the client of installation id, created on first call and shared
// afterwards. Its token is minted on its first request and refreshed before it expires.
func (a *App) Installation(id int64) (*github.Client, error) {
	if id <= 0 {
		return nil, fmt.Errorf("ghapp: installation id %d: the event carries no installation (is the app installed?)", id)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.installs[id]
	if c == nil {
		c = a.client(a.gate(id, &installationTransport{src: newTokenSource(a, id), next: a.gov.transport(id, a.opts.MutationSpacing, a.observe(id))}))
		a.installs[id] = c
	}
	return c, nil
}

// Token mints a new installation token narrowed to repoIDs (nil: every repository of the
// installation) and perms (nil: every permission of the installation), e.g. a repo-scoped
// GITHUB_TOKEN for an external command. Tokens from Token are not cached; they expire after an
// hour.
func (a *App) Token(ctx context.Context, installationID int64, repoIDs []int64, perms *github.InstallationPermissions) (*github.InstallationToken, error) {
	var opts *github.InstallationTokenOptions
	if repoIDs != nil || perms != nil {
		opts = &github.InstallationTokenOptions{RepositoryIDs: repoIDs, Permissions: perms}
	}
	tok, _, err := a.app.Apps.CreateInstallationToken(ctx, installationID, opts)
	if err != nil {
		return nil, fmt.Errorf("create token for installation %d: %w", installationID, err)
	}
	return tok, nil
}

// The transport of installation id (0: the app) is, from the client down: the budget gate
// (refuses requests while the budget is exhausted), the installation token (app: skewRetry and
// the JWT), the governor (mutations one at a time, spaced, after any Retry-After), the observer
// (OnResponse and Budget.Observe), Options.Transport.

// gate refuses the requests of installation id while Options.Budget says it is exhausted.
func (a *App) gate(id int64, next http.RoundTripper) http.RoundTripper {
	if a.opts.Budget == nil {
		return next
	}
	return budgetGate{budget: a.opts.Budget, id: id, next: next}
}

// observe is the base transport reporting responses to Options.OnResponse and Options.Budget
// under id.
func (a *App) observe(id int64) http.RoundTripper {
	if a.opts.OnResponse == nil && a.opts.Budget == nil {
		return a.opts.Transport
	}
	return observer{next: a.opts.Transport, id: id, fn: a.opts.OnResponse, budget: a.opts.Budget}
}

type observer struct {
	next   http.RoundTripper
	id     int64
	fn     func(int64, *http.Response)
	budget Budget
}

func (o observer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.next.RoundTrip(req)
	if resp != nil {
		// A 401's X-RateLimit-* headers are the unauthenticated (per IP) budget, not the
		// installation's.
		if o.budget != nil && resp.StatusCode != http.StatusUnauthorized {
			o.budget.Observe(o.id, resp)
		}
		if o.fn != nil {
			o.fn(o.id, resp)
		}
	}
	return resp, err
}
