// Package brokertest starts real nats-servers for tests: in-process (New) or as a separate process
// (StartProcess) for crash and restart tests. Every hookd package's tests use it; nothing mocks
// JetStream.
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

// Process is a nats-server running as its own OS process.
type Process struct {
	Cmd   *exec.Cmd
	URL   string
	Port  int
	Store string
	t     testing.TB
	extra []string // more server flags (cluster)
}

func (p *Process) args() []string {
	return append([]string{"-js", "-a", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-sd", p.Store}, p.extra...)
}

// StartProcess runs nats-server with JetStream as a separate process on a free port, with its
// store in a temp dir. Kill it with Kill (SIGKILL) and bring it back with Start.
func StartProcess(t testing.TB) *Process {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &Process{Port: port, Store: t.TempDir(), URL: fmt.Sprintf("nats://127.0.0.1:%d", port), t: t}
	p.Start()
	t.Cleanup(func() { p.Kill() })
	return p
}

// Start (re)starts the process on the same port and store and waits until it accepts clients.
func (p *Process) Start() {
	p.t.Helper()
	p.Cmd = exec.Command(ServerBinary(p.t), p.args()...)
	if err := p.Cmd.Start(); err != nil {
		p.t.Fatalf("start nats-server: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		nc, err := nats.Connect(p.URL, nats.Timeout(time.Second))
		if err == nil {
			js, _ := jetstream.New(nc)
			_, err = js.AccountInfo(context.Background())
			nc.Close()
			if err == nil {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("nats-server process on %s not ready after 30s", p.URL)
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Process) Kill() {
	if p.Cmd != nil && p.Cmd.Process != nil && p.Cmd.ProcessState == nil {
		_ = p.Cmd.Process.Kill()
		_ = p.Cmd.Wait()
	}
}

// Cluster is a JetStream cluster of nats-server processes on loopback.
type Cluster struct {
	Nodes []*Process
	URL   string // every node's client URL, comma-separated
}

// StartCluster runs n clustered nats-server processes with JetStream and waits until the
// cluster has a JetStream meta leader.
func StartCluster(t testing.TB, n int) *Cluster {
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
	c := &Cluster{}
	var urls []string
	for i := range n {
		p := &Process{Port: ports[i], Store: t.TempDir(), URL: fmt.Sprintf("nats://127.0.0.1:%d", ports[i]), t: t,
			extra: []string{"-n", fmt.Sprintf("node%d", i), "--cluster_name", "hookd-test",
				"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", cports[i]), "--routes", strings.Join(routes, ",")}}
		p.Cmd = exec.Command(ServerBinary(t), p.args()...)
		if err := p.Cmd.Start(); err != nil {
			t.Fatalf("start node %d: %v", i, err)
		}
		t.Cleanup(p.Kill)
		c.Nodes = append(c.Nodes, p)
		urls = append(urls, p.URL)
	}
	c.URL = strings.Join(urls, ",")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		nc, err := nats.Connect(c.URL, nats.Timeout(time.Second))
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			nc.Close()
			if err == nil {
				return c
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("JetStream cluster of %d nodes not ready after 60s", n)
	return nil
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
