// Package brokertest starts real nats-servers for tests: in-process (New, Plain) or as separate
// processes (StartProcess, StartCluster) for crash, restart and cluster tests. Every hookd
// package's tests use it; nothing mocks JetStream.
package brokertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
)

// Env is a running in-process JetStream with hookd's topology in place.
type Env struct {
	Server *server.Server
	URL    string
	NC     *nats.Conn
	JS     jetstream.JetStream
	Config broker.Config
	Dir    string
}

// New starts an in-process nats-server on a free loopback port with its store in t.TempDir(),
// connects, and runs broker.Ensure with defaults (modified by opts). Everything stops at cleanup.
func New(t testing.TB, opts ...func(*broker.Config)) *Env {
	t.Helper()
	cfg := broker.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Sync: broker.SyncInterval, Partitions: 4}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.Defaults()
	return start(t, cfg)
}

// Plain starts an in-process nats-server with JetStream on a free loopback port, its store in
// t.TempDir(), as modify leaves its options (for settings hookd's embedded server does not take,
// such as a small max_payload), without hookd's topology; it stops at cleanup.
func Plain(t testing.TB, modify func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	if modify != nil {
		modify(opts)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready within 30s")
	}
	return ns
}

// Restart shuts the server down (as abruptly as the embedded server allows) and starts a new
// one on the same store directory and port; the returned Env has fresh connections.
func (e *Env) Restart(t testing.TB) *Env {
	t.Helper()
	port := e.Server.Addr().(*net.TCPAddr).Port
	e.NC.Close()
	e.Server.Shutdown()
	e.Server.WaitForShutdown()
	cfg := e.Config
	cfg.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return start(t, cfg)
}

func start(t testing.TB, cfg broker.Config) *Env {
	t.Helper()
	srv, err := broker.StartEmbedded(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := broker.Ensure(ctx, js, cfg); err != nil {
		t.Fatalf("ensure: %v", err)
	}
	return &Env{Server: srv, URL: srv.ClientURL(), NC: nc, JS: js, Config: cfg, Dir: cfg.DataDir}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// ServerBinary returns the path of a nats-server binary of the module's nats-server version. It
// is built once into the user's cache directory (os.UserCacheDir()/hookd-test, one file per
// nats-server and Go version) and reused by later test runs, so that runs leave no copies behind;
// concurrent test binaries may build it at once, each renaming its build into place.
func ServerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { binPath, buildErr = buildServer() })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func buildServer() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "hookd-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "nats-server-v"+server.VERSION+"-"+runtime.Version())
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	out, err := exec.Command("go", "build", "-o", filepath.Join(tmp, "nats-server"), "github.com/nats-io/nats-server/v2").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build nats-server: %v\n%s", err, out)
	}
	return bin, os.Rename(filepath.Join(tmp, "nats-server"), bin)
}

// Process is a nats-server running as its own OS process. Its log goes to Log, a file in the
// test's temp directory that failures quote from.
type Process struct {
	Cmd   *exec.Cmd
	URL   string
	Port  int
	Store string
	Log   string
	t     testing.TB
	extra []string      // more server flags (cluster)
	done  chan struct{} // closed when the process has exited
}

func (p *Process) args() []string {
	return append([]string{"-js", "-a", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-sd", p.Store}, p.extra...)
}

// StartProcess runs nats-server with JetStream as a separate process on a free port, with its
// store in a temp dir. Kill it with Kill (SIGKILL) and bring it back with Start.
func StartProcess(t testing.TB) *Process {
	t.Helper()
	port := FreePort(t)
	p := &Process{Port: port, Store: t.TempDir(), URL: fmt.Sprintf("nats://127.0.0.1:%d", port), t: t}
	p.Log = filepath.Join(t.TempDir(), "nats-server.log")
	p.Start()
	t.Cleanup(func() { p.Kill() })
	return p
}

// Start (re)starts the process on the same port and store and waits until it accepts clients.
// It fails the test at once, quoting the server's log, if the process exits meanwhile.
func (p *Process) Start() {
	p.t.Helper()
	if err := p.spawn(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p.exited() {
			p.t.Fatalf("nats-server process on %s exited before it was ready (%v); its log:\n%s", p.URL, p.Cmd.ProcessState, p.logTail())
		}
		if p.ready(time.Second) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("nats-server process on %s not ready after 30s; its log:\n%s", p.URL, p.logTail())
}

// spawn starts the process, its output appended to p.Log, and reaps it when it exits.
func (p *Process) spawn() error {
	if p.Log == "" {
		p.Log = filepath.Join(p.t.TempDir(), "nats-server.log")
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "--- %s: nats-server %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.args(), " "))
	p.Cmd = exec.Command(ServerBinary(p.t), p.args()...)
	p.Cmd.Stdout, p.Cmd.Stderr = f, f
	if err := p.Cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start nats-server: %w", err)
	}
	done := make(chan struct{})
	p.done = done
	go func(cmd *exec.Cmd) {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}(p.Cmd)
	return nil
}

func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ready reports whether the server accepts a client and answers a JetStream request.
func (p *Process) ready(timeout time.Duration) bool {
	return jetStreamReady(p.URL, timeout)
}

func jetStreamReady(url string, timeout time.Duration) bool {
	nc, err := nats.Connect(url, nats.Timeout(timeout))
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err == nil
}

// logTail is the end of the process's log, for failure messages.
func (p *Process) logTail() string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const max = 4 << 10
	if len(b) > max {
		b = append([]byte("..."), b[len(b)-max:]...)
	}
	return string(b)
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Process) Kill() {
	if p.Cmd == nil || p.Cmd.Process == nil || p.done == nil {
		return
	}
	if !p.exited() {
		_ = p.Cmd.Process.Kill()
	}
	<-p.done
}

// Cluster is a JetStream cluster of nats-server processes on loopback.
type Cluster struct {
	Nodes []*Process
	URL   string // every node's client URL, comma-separated
}

// StartCluster runs n clustered nats-server processes with JetStream and waits until the
// cluster has a JetStream meta leader. Its ports are picked in advance, so another process may
// take one meanwhile; a node that exits before the cluster is ready (or a cluster that is not
// ready within a minute) is started again on fresh ports, up to three times in all. Each
// cluster gets a name of its own, so that clusters of tests running at once cannot join.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	var report []string
	for attempt := 1; attempt <= 3; attempt++ {
		c, why := startCluster(t, n, attempt)
		if why == "" {
			return c
		}
		report = append(report, fmt.Sprintf("attempt %d: %s", attempt, why))
		for _, p := range c.Nodes {
			p.Kill()
			report = append(report, fmt.Sprintf("node %s log:\n%s", p.URL, p.logTail()))
		}
	}
	t.Fatalf("JetStream cluster of %d nodes did not start:\n%s", n, strings.Join(report, "\n"))
	return nil
}

// startCluster makes one attempt; why says what went wrong, empty if the cluster is ready.
func startCluster(t testing.TB, n, attempt int) (c *Cluster, why string) {
	t.Helper()
	ports := make([]int, n)
	cports := make([]int, n)
	for i := range n {
		ports[i], cports[i] = FreePort(t), FreePort(t)
	}
	var routes []string
	for _, cp := range cports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", cp))
	}
	name := fmt.Sprintf("hookd-test-%d-%d", os.Getpid(), ports[0])
	c = &Cluster{}
	var urls []string
	logs := t.TempDir()
	for i := range n {
		p := &Process{Port: ports[i], Store: t.TempDir(), URL: fmt.Sprintf("nats://127.0.0.1:%d", ports[i]), t: t,
			Log: filepath.Join(logs, fmt.Sprintf("node%d-attempt%d.log", i, attempt)),
			extra: []string{"-n", fmt.Sprintf("node%d", i), "--cluster_name", name,
				"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", cports[i]), "--routes", strings.Join(routes, ",")}}
		if err := p.spawn(); err != nil {
			t.Fatalf("start node %d: %v", i, err)
		}
		t.Cleanup(p.Kill)
		c.Nodes = append(c.Nodes, p)
		urls = append(urls, p.URL)
	}
	c.URL = strings.Join(urls, ",")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range c.Nodes {
			if p.exited() {
				return c, fmt.Sprintf("node %s exited before the cluster was ready (%v)", p.URL, p.Cmd.ProcessState)
			}
		}
		if jetStreamReady(c.URL, time.Second) {
			return c, ""
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c, "no JetStream meta leader after 60s"
}

// FreePort returns a loopback TCP port that was free a moment ago: another process may take it
// before the caller listens on it, so use it only where a fixed port is needed.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
