package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/config"
	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/githubfake"
	"github.com/hookd/hookd/internal/payloads"
	"github.com/hookd/hookd/processor"
)

// recorder is a Go handler that remembers every event it saw.
type recorder struct {
	mu     sync.Mutex
	seen   []*processor.Event
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) register(m *processor.Mux) error {
	return m.HandleFunc("test-recorder", processor.On("*"), func(_ context.Context, ev *processor.Event) error {
		r.mu.Lock()
		r.seen = append(r.seen, ev)
		r.mu.Unlock()
		select {
		case r.notify <- struct{}{}:
		default:
		}
		return nil
	})
}

func (r *recorder) events() []*processor.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*processor.Event(nil), r.seen...)
}

// waitFor waits until cond holds over the recorded events.
func (r *recorder) waitFor(t *testing.T, what string, cond func([]*processor.Event) bool) []*processor.Event {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		evs := r.events()
		if cond(evs) {
			return evs
		}
		select {
		case <-r.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; saw %d events", what, len(evs))
		}
	}
}

// testApp is an in-process hookd wired to a fake GitHub.
type testApp struct {
	fake   *githubfake.Fake
	url    string
	app    *app
	cancel context.CancelFunc
	done   chan error
}

func startTestApp(t *testing.T, dataDir string, fake *githubfake.Fake, rec *recorder) *testApp {
	t.Helper()
	return startTestAppWith(t, testConfig(t, dataDir, fake), fake, rec.register)
}

func startTestAppWith(t *testing.T, cfg *config.Config, fake *githubfake.Fake, handlers func(*processor.Mux) error) *testApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, newLogger(config.Log{Level: "warn"}, testWriter{t}), appOptions{Listener: ln, Handlers: handlers})
	if err != nil {
		cancel()
		t.Fatalf("newApp: %v", err)
	}
	ta := &testApp{fake: fake, url: "http://" + ln.Addr().String(), app: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- a.Run(ctx) }()
	t.Cleanup(func() { ta.stop(t) })
	select {
	case <-a.ready():
	case err := <-ta.done:
		ta.cancel = nil // already stopped
		t.Fatalf("hookd stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("hookd not ready after 30s")
	}
	return ta
}

func (ta *testApp) stop(t *testing.T) {
	if ta.cancel == nil {
		return
	}
	ta.cancel()
	ta.cancel = nil
	if err := <-ta.done; err != nil {
		t.Errorf("hookd Run: %v", err)
	}
}

func testConfig(t *testing.T, dataDir string, fake *githubfake.Fake) *config.Config {
	t.Helper()
	app := fake.App()
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(keyFile, app.PrivateKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{DataDir: dataDir}
	cfg.GitHub.AppID = app.ID
	cfg.GitHub.PrivateKeyFile = keyFile
	cfg.GitHub.WebhookSecrets = []string{"old-secret", app.WebhookSecret}
	cfg.GitHub.APIURL = fake.URL()
	cfg.NATS.Listen = "127.0.0.1:0"
	cfg.NATS.Sync = "interval"
	cfg.NATS.Partitions = 4
	cfg.Processor.BotLogin = app.BotLogin
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// post sends body signed with secret as a GitHub delivery.
func post(t *testing.T, url, secret, eventName, delivery string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", eventName)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+githubfake.Sign(sha256.New, secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post %s: %v", delivery, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// withInstallation returns the example payload with installation.id set (most examples lack one).
func withInstallation(t *testing.T, name string, installation int64) []byte {
	t.Helper()
	b, err := patchPayload(payloads.Get(name), "", installation)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newFake(t *testing.T) (*githubfake.Fake, githubfake.Installation) {
	t.Helper()
	// The hook URL is set (preflight:webhook requires one); tests post deliveries themselves.
	fake := githubfake.NewServer(t, githubfake.Options{WebhookSecret: "current-secret", WebhookURL: "http://127.0.0.1:9/unused"})
	inst, err := fake.AddInstallation("octo-org", "octo-org/hello-world")
	if err != nil {
		t.Fatal(err)
	}
	return fake, inst
}

func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	fake, inst := newFake(t)
	rec := newRecorder()
	ta := startTestApp(t, t.TempDir(), fake, rec)
	secret := fake.App().WebhookSecret

	names := []string{"issues.opened", "issues.labeled", "issue_comment.created", "pull_request.opened", "push", "installation.created"}
	want := map[string]event.Tenant{}
	for i, name := range names {
		body := withInstallation(t, name, inst.ID)
		var m event.Meta
		if err := event.ParsePayload(&m, body); err != nil {
			t.Fatal(err)
		}
		m.Event = payloads.Event(name)
		d := fmt.Sprintf("e2e-%d", i)
		want[d] = m.Tenant()
		if got := post(t, ta.url+"/webhook", secret, m.Event, d, body); got != http.StatusAccepted {
			t.Fatalf("%s: status %d, want 202", name, got)
		}
	}
	// A redelivery of the first (same delivery id) is answered 200 and handled once.
	if got := post(t, ta.url+"/webhook", secret, "issues", "e2e-0", withInstallation(t, "issues.opened", inst.ID)); got != http.StatusOK {
		t.Fatalf("duplicate: status %d, want 200", got)
	}
	// A bad signature is refused and handled nowhere.
	if got := post(t, ta.url+"/webhook", "wrong", "issues", "e2e-bad", withInstallation(t, "issues.opened", inst.ID)); got != http.StatusUnauthorized {
		t.Fatalf("bad signature: status %d, want 401", got)
	}
	// A ping is stored but not dispatched.
	if got := post(t, ta.url+"/webhook", secret, "ping", "e2e-ping", payloads.Get("ping")); got != http.StatusOK {
		t.Fatalf("ping: status %d, want 200", got)
	}

	evs := rec.waitFor(t, "every delivery handled", func(evs []*processor.Event) bool {
		n := 0
		for _, ev := range evs {
			if strings.HasPrefix(ev.Meta.Delivery, "e2e-") {
				n++
			}
		}
		return n >= len(names)
	})
	// Give a wrongly duplicated or dispatched delivery the chance to show up before counting.
	time.Sleep(300 * time.Millisecond)
	evs = rec.events()
	count := map[string]int{}
	for _, ev := range evs {
		count[ev.Meta.Delivery]++
		if w, ok := want[ev.Meta.Delivery]; ok && ev.Tenant.Key() != w.Key() {
			t.Errorf("delivery %s: tenant %s, want %s", ev.Meta.Delivery, ev.Tenant.Key(), w.Key())
		}
	}
	for d := range want {
		if count[d] != 1 {
			t.Errorf("delivery %s handled %d times, want 1", d, count[d])
		}
	}
	if count["e2e-bad"] != 0 || count["e2e-ping"] != 0 {
		t.Errorf("bad signature handled %d times, ping dispatched %d times; want 0 and 0", count["e2e-bad"], count["e2e-ping"])
	}
	if inst := want["e2e-5"]; inst.RepositoryID != 0 {
		t.Errorf("installation event tenant has a repository: %+v", inst)
	}

	// Metrics are served in Prometheus text format.
	resp, err := http.Get(ta.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte("hookd_ingest_deliveries_total")) {
		t.Errorf("/metrics lacks hookd_ingest_deliveries_total")
	}
}

// TestServeWithoutCredentials: serve starts, says what is missing, /healthz 200, /readyz 503.
func TestServeWithoutCredentials(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{DataDir: t.TempDir()}
	cfg.NATS.Listen = "127.0.0.1:0"
	cfg.NATS.Sync = "interval"
	cfg.Defaults()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, newLogger(config.Log{Level: "info"}, lockedWriter{&mu, &logs}), appOptions{Listener: ln})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	base := "http://" + ln.Addr().String()
	waitStatus(t, base+"/healthz", http.StatusOK)
	waitStatus(t, base+"/readyz", http.StatusServiceUnavailable)
	if got := post(t, base+"/webhook", "x", "issues", "d1", payloads.Get("issues.opened")); got != http.StatusServiceUnavailable {
		t.Errorf("webhook without secret: %d, want 503", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "HOOKD_GITHUB_APP_ID") {
		t.Errorf("logs do not say how to provide credentials:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	// Generous: a re-executed hookd under -race on a loaded machine takes a while to be ready.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: want %d (last err %v)", url, want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeDurability: a hookd process stores deliveries and is killed (SIGKILL) before any is
// handled; a new hookd on the same data directory handles every one of them, once.
func TestServeDurability(t *testing.T) {
	t.Parallel()
	fake, inst := newFake(t)
	dataDir := t.TempDir()
	cfg := testConfig(t, dataDir, fake)

	// Run 1: the real binary (this test binary re-executed as hookd), ingest role only, so what it
	// stores stays unhandled; then kill -9.
	cmd, base, out := hookdProcess(t, cfg, fake, "serve --roles ingest", "HOOKD_NATS_PARTITIONS=4", "HOOKD_LOG_LEVEL=warn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	waitStatus(t, base+"/healthz", http.StatusOK)
	const n = 40
	secret := fake.App().WebhookSecret
	body := withInstallation(t, "issues.opened", inst.ID)
	for i := range n {
		if got := post(t, base+"/webhook", secret, "issues", fmt.Sprintf("durable-%d", i), body); got != http.StatusAccepted {
			t.Fatalf("delivery %d: status %d\n%s", i, got, out.String())
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true

	// Run 2: in-process, all roles, same data directory.
	rec := newRecorder()
	startTestApp(t, dataDir, fake, rec)
	rec.waitFor(t, "all stored deliveries handled", func(evs []*processor.Event) bool { return len(evs) >= n })
	time.Sleep(300 * time.Millisecond)
	count := map[string]int{}
	for _, ev := range rec.events() {
		count[ev.Meta.Delivery]++
	}
	for i := range n {
		if c := count[fmt.Sprintf("durable-%d", i)]; c != 1 {
			t.Errorf("durable-%d handled %d times, want 1", i, c)
		}
	}
}

// hookdProcess prepares the real binary (this test binary re-executed as hookd) running args
// with cfg's data directory and GitHub settings in its environment, on free ports. It returns
// the command (not started), the base URL of its HTTP server and its combined output.
func hookdProcess(t *testing.T, cfg *config.Config, fake *githubfake.Fake, args string, env ...string) (*exec.Cmd, string, *lockedBuffer) {
	t.Helper()
	httpPort, natsPort := brokertest.FreePort(t), brokertest.FreePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"HOOKD_TEST_MAIN=1", "HOOKD_TEST_ARGS="+args,
		"HOOKD_DATA_DIR="+cfg.DataDir,
		"HOOKD_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(httpPort),
		"HOOKD_NATS_LISTEN=127.0.0.1:"+strconv.Itoa(natsPort),
		"HOOKD_GITHUB_APP_ID="+strconv.FormatInt(cfg.GitHub.AppID, 10),
		"HOOKD_GITHUB_PRIVATE_KEY_FILE="+cfg.GitHub.PrivateKeyFile,
		"HOOKD_GITHUB_WEBHOOK_SECRET="+strings.Join(cfg.GitHub.WebhookSecrets, ","),
		"HOOKD_GITHUB_API_URL="+fake.URL(),
	)
	cmd.Env = append(cmd.Env, env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, fmt.Sprintf("http://127.0.0.1:%d", httpPort), out
}

// lockedBuffer is a bytes.Buffer that a process's stdout and stderr may write concurrently.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

// TestDemo runs `hookd demo` as a user would and requires it to succeed.
func TestDemo(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := runDemo(ctx, &out, io.Discard); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "demo complete") {
		t.Fatalf("demo output lacks its conclusion:\n%s", out.String())
	}
}

// TestServeHealthyWhileGitHubIsSlow: /healthz answers while hookd is still checking the GitHub
// App and listing its installations (here GitHub answers 503 twice first), so that an
// orchestrator's startup probe does not restart a process that is only waiting for GitHub;
// /readyz says it is starting, and becomes ready once the preflights passed.
func TestServeHealthyWhileGitHubIsSlow(t *testing.T) {
	t.Parallel()
	fake, _ := newFake(t)
	fake.InjectFault(githubfake.ServerError("/app/installations", 2, http.StatusServiceUnavailable))
	cfg := testConfig(t, t.TempDir(), fake)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := newApp(ctx, cfg, newLogger(config.Log{Level: "error"}, testWriter{t}), appOptions{Listener: ln})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	base := "http://" + ln.Addr().String()
	waitStatus(t, base+"/healthz", http.StatusOK)
	select {
	case <-a.planned:
		t.Fatal("planned already: the test needs GitHub to be slow at start")
	default:
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "starting") {
		t.Fatalf("/readyz while starting: %d %s", resp.StatusCode, body)
	}
	select {
	case <-a.ready():
	case err := <-done:
		t.Fatalf("hookd stopped before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("hookd not ready after 60s")
	}
	waitStatus(t, base+"/readyz", http.StatusOK)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestServeWarnsSmallMaxPayload: joining a NATS whose max_payload cannot hold GitHub's largest
// deliveries, ingest says so at start instead of answering each of them 503.
func TestServeWarnsSmallMaxPayload(t *testing.T) {
	t.Parallel()
	ns := brokertest.Plain(t, func(o *server.Options) { o.MaxPayload = 1 << 20 })
	for _, tc := range []struct {
		roles []string
		warn  bool
	}{{[]string{"ingest"}, true}, {[]string{"process"}, false}} {
		cfg := &config.Config{DataDir: t.TempDir(), Roles: tc.roles}
		cfg.NATS.URL = ns.ClientURL()
		cfg.Defaults()
		var logs bytes.Buffer
		var mu sync.Mutex
		a, err := newApp(context.Background(), cfg, newLogger(config.Log{Level: "warn"}, lockedWriter{&mu, &logs}), appOptions{})
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
		mu.Lock()
		if got := strings.Contains(logs.String(), "max_payload is below http.max_body_bytes"); got != tc.warn {
			t.Errorf("roles %v: warned %v, want %v:\n%s", tc.roles, got, tc.warn, logs.String())
		}
		mu.Unlock()
	}
}

// TestServeGoHandlerEvents: the events a Go handler selects count as the rules' do (for the
// sweeps too, which read the same list): preflight:app requires the app's subscription to them,
// here "release", which the fake app does not have.
func TestServeGoHandlerEvents(t *testing.T) {
	t.Parallel()
	fake, _ := newFake(t)
	cfg := testConfig(t, t.TempDir(), fake)
	cfg.HTTP.Addr = "127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nop := func(context.Context, *processor.Event) error { return nil }
	a, err := newApp(ctx, cfg, newLogger(config.Log{Level: "error"}, testWriter{t}), appOptions{
		Handlers: func(m *processor.Mux) error { return m.HandleFunc("releases", processor.On("release.published"), nop) },
	})
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "preflight:app") || !strings.Contains(err.Error(), "Subscribe to events: Release") {
		t.Fatalf("Run: %v, want preflight:app to ask for the release event", err)
	}
}

// TestCloseQuiet: an app closed while its context still runs (startup failed, or Run returned)
// logs no warning: the shared rate-limit budget's watch stops with it instead of taking the
// closed connection for a failure.
func TestCloseQuiet(t *testing.T) {
	t.Parallel()
	fake, _ := newFake(t)
	cfg := testConfig(t, t.TempDir(), fake)
	var logs bytes.Buffer
	var mu sync.Mutex
	a, err := newApp(context.Background(), cfg, newLogger(config.Log{Level: "warn"}, lockedWriter{&mu, &logs}), appOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.budget == nil {
		t.Fatal("no shared rate-limit budget: the test needs an app that can call GitHub")
	}
	time.Sleep(200 * time.Millisecond) // let the budget's watch start
	a.Close()
	time.Sleep(500 * time.Millisecond) // what the watch would log, it logs at once
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logs.String(), "watching") || strings.Contains(logs.String(), `"level":"warn"`) {
		t.Errorf("warnings on close:\n%s", logs.String())
	}
}
