package githubfake

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a Fake. The zero value is usable: every field documents its default.
type Options struct {
	// AppID is the GitHub App's id. Default 1.
	AppID int64
	// Slug is the app's URL name; its bot user is "<slug>[bot]". Default "hookd-test".
	Slug string
	// Name is the app's display name. Default "hookd test".
	Name string
	// PrivateKey is the app's RSA key. Default: a fresh 2048-bit key.
	PrivateKey *rsa.PrivateKey
	// Permissions the app requests, granted to every installation, e.g. {"issues": "write"}.
	// Default: metadata read, contents read, issues write, pull_requests write.
	Permissions map[string]string
	// Events the app subscribes to. Installation events (installation,
	// installation_repositories) are always delivered, like GitHub. Default: issues,
	// issue_comment, label, pull_request, push.
	Events []string

	// WebhookURL is where webhooks are POSTed (the app's hook config "url"). Empty: the hook is
	// inactive and nothing is sent or recorded, until PATCH /app/hook/config or SetWebhookURL
	// sets one. Default empty.
	WebhookURL string
	// WebhookSecret signs deliveries. Empty: no signature headers are sent, like GitHub.
	// Default empty.
	WebhookSecret string
	// WebhookContentType is "json" or "form". Default "json".
	WebhookContentType string
	// WebhookTimeout bounds one delivery attempt. Default 10s, like GitHub.
	WebhookTimeout time.Duration
	// WebhookClient sends deliveries. Default: an http.Client with WebhookTimeout.
	WebhookClient *http.Client
	// AsyncWebhooks sends deliveries from one background goroutine, in order, instead of
	// before the triggering call returns. Default false (synchronous, deterministic).
	AsyncWebhooks bool
	// HookID is the app webhook's id (X-GitHub-Hook-ID). Default 1.
	HookID int64

	// RateLimit is the primary rate limit per hour of each installation and of the app's JWT
	// calls. Default 5000.
	RateLimit int
	// RateLimitStatus is the status of a request refused because the primary rate limit is
	// exhausted: 403 or 429, both of which GitHub answers, with X-RateLimit-Remaining: 0
	// (go-github v60 decodes only the 403 as *github.RateLimitError). Default 403.
	RateLimitStatus int
	// Now is the fake's clock before Advance. Default time.Now.
	Now func() time.Time
	// BasePath is the path prefix of the API, e.g. "/api/v3/". Default "/".
	BasePath string
}

func (o *Options) defaults() error {
	if o.AppID == 0 {
		o.AppID = 1
	}
	if o.Slug == "" {
		o.Slug = "hookd-test"
	}
	if o.Name == "" {
		o.Name = "hookd test"
	}
	if o.PrivateKey == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return fmt.Errorf("githubfake: generate app key: %w", err)
		}
		o.PrivateKey = k
	}
	if o.Permissions == nil {
		o.Permissions = map[string]string{
			"metadata": "read", "contents": "read", "issues": "write", "pull_requests": "write",
		}
	}
	if o.Events == nil {
		o.Events = []string{"issues", "issue_comment", "label", "pull_request", "push"}
	}
	if o.WebhookContentType == "" {
		o.WebhookContentType = "json"
	}
	if o.WebhookContentType != "json" && o.WebhookContentType != "form" {
		return fmt.Errorf("githubfake: WebhookContentType %q: use \"json\" or \"form\"", o.WebhookContentType)
	}
	if o.WebhookTimeout == 0 {
		o.WebhookTimeout = 10 * time.Second
	}
	if o.WebhookClient == nil {
		o.WebhookClient = &http.Client{Timeout: o.WebhookTimeout}
	}
	if o.HookID == 0 {
		o.HookID = 1
	}
	if o.RateLimit == 0 {
		o.RateLimit = 5000
	}
	if o.RateLimitStatus == 0 {
		o.RateLimitStatus = http.StatusForbidden
	}
	if o.RateLimitStatus != http.StatusForbidden && o.RateLimitStatus != http.StatusTooManyRequests {
		return fmt.Errorf("githubfake: RateLimitStatus %d: use 403 or 429", o.RateLimitStatus)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BasePath == "" {
		o.BasePath = "/"
	}
	if !strings.HasPrefix(o.BasePath, "/") {
		o.BasePath = "/" + o.BasePath
	}
	if !strings.HasSuffix(o.BasePath, "/") {
		o.BasePath += "/"
	}
	return nil
}

// Fake is a fake GitHub. It is an http.Handler serving the REST API under Options.BasePath.
type Fake struct {
	opts    Options
	handler http.Handler
	bot     *user

	mu         sync.Mutex
	baseURL    string // API base URL with trailing slash; set by Start or SetBaseURL
	offset     time.Duration
	lastID     int64
	users      map[string]*user // by lower-case login
	installs   map[int64]*installation
	repos      map[string]*repo // by lower-case full name
	reposByID  map[int64]*repo
	comments   map[int64]*comment
	tokens     map[string]*token
	hook       hookConfig
	deliveries []*delivery // oldest first
	stats      map[int64]*Stats
	buckets    map[int64]*bucket
	faults     []*Fault
	outage     bool
	delay      time.Duration
	requestSeq int64
	tokenSeq   int64

	server *httptest.Server
	async  chan outgoing
	wg     sync.WaitGroup // pending async deliveries
	done   chan struct{}
}

// New returns a Fake with opts applied. It fails only when a key cannot be generated or an
// option is invalid.
func New(opts Options) (*Fake, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	f := &Fake{
		opts:      opts,
		users:     map[string]*user{},
		installs:  map[int64]*installation{},
		repos:     map[string]*repo{},
		reposByID: map[int64]*repo{},
		comments:  map[int64]*comment{},
		tokens:    map[string]*token{},
		stats:     map[int64]*Stats{},
		buckets:   map[int64]*bucket{},
		hook: hookConfig{
			URL: opts.WebhookURL, Secret: opts.WebhookSecret,
			ContentType: opts.WebhookContentType, InsecureSSL: "0",
		},
		baseURL: "http://github.invalid" + opts.BasePath,
	}
	f.bot = f.userLocked(opts.Slug+"[bot]", "Bot")
	f.userLocked("hookd", "Organization") // the app's owner
	f.handler = http.StripPrefix(strings.TrimSuffix(opts.BasePath, "/"), f.routes())
	if opts.AsyncWebhooks {
		f.async = make(chan outgoing, 1024)
		f.done = make(chan struct{})
		go f.sendLoop()
	}
	return f, nil
}

// NewServer starts a Fake (New, then Start) on an httptest server for the duration of t; it is
// closed by t.Cleanup. It fails t on error.
func NewServer(t testing.TB, opts Options) *Fake {
	t.Helper()
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.Start()
	t.Cleanup(f.Close)
	return f
}

// ServeHTTP serves the API.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.handler.ServeHTTP(w, r) }

// Start serves the fake on a new local httptest server; URL then returns its API base URL.
// Calling Start twice panics.
func (f *Fake) Start() {
	if f.server != nil {
		panic("githubfake: Start called twice")
	}
	f.server = httptest.NewServer(f)
	f.SetBaseURL(f.server.URL + f.opts.BasePath)
}

// SetBaseURL tells the fake the API base URL it is reachable at (used in "url" fields and Link
// headers), for callers serving the handler themselves (hookd demo). Start sets it.
func (f *Fake) SetBaseURL(u string) {
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	f.mu.Lock()
	f.baseURL = u
	f.mu.Unlock()
}

// Close stops the server started by Start (if any) and the async sender after it drained.
// Calling Close twice is safe.
func (f *Fake) Close() {
	if f.server != nil {
		f.server.Close()
	}
	if f.async != nil {
		f.mu.Lock()
		done := f.done
		f.done = nil
		f.mu.Unlock()
		if done != nil {
			f.wg.Wait()
			close(f.async)
			<-done
		}
	}
}

// URL is the API base URL with a trailing slash, e.g. "http://127.0.0.1:1234/". Clients must
// use it verbatim as their base URL, like a GitHub Enterprise Server URL.
func (f *Fake) URL() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.baseURL
}

// Now is the fake's current time: Options.Now plus every Advance.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nowLocked()
}

// Advance moves the fake's clock forward by d: tokens expire, rate-limit windows reset.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.offset += d
	f.mu.Unlock()
}

func (f *Fake) nowLocked() time.Time { return f.opts.Now().Add(f.offset) }

// stampLocked is the fake's clock at GitHub's precision, whole seconds: the time recorded as a
// resource's created_at, updated_at or closed_at. Items changed within one second then tie in
// sort=updated and compare alike with since, as on GitHub, whose timestamps have no fraction.
func (f *Fake) stampLocked() time.Time { return f.nowLocked().Truncate(time.Second) }

func (f *Fake) newIDLocked() int64 {
	f.lastID++
	return f.lastID
}

func (f *Fake) htmlURL(path string) string { return "https://github.com/" + path }

// user is a GitHub account: a person, an organization or a bot.
type user struct {
	ID    int64
	Login string
	Type  string // "User", "Organization" or "Bot"
}

// userLocked returns the account named login, creating it with type typ ("" infers "Bot" for
// "[bot]" logins, else "User").
func (f *Fake) userLocked(login, typ string) *user {
	key := strings.ToLower(login)
	if u, ok := f.users[key]; ok {
		return u
	}
	if typ == "" {
		typ = "User"
		if strings.HasSuffix(login, "[bot]") {
			typ = "Bot"
		}
	}
	u := &user{ID: f.newIDLocked(), Login: login, Type: typ}
	f.users[key] = u
	return u
}

// BotLogin is the app's bot user login, "<slug>[bot]": the sender of webhooks caused by the
// app's own API calls.
func (f *Fake) BotLogin() string { return f.bot.Login }
