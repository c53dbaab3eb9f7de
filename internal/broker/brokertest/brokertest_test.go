package brokertest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestServerBinary: the binary is the module's nats-server version, kept in the user's cache
// directory for the next run, and nothing is left in the temp directory.
func TestServerBinary(t *testing.T) {
	// Keep Go's own build cache where it is: it too defaults to the user's cache directory.
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOCACHE", strings.TrimSpace(string(out)))
	tmp, cache := t.TempDir(), t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv("XDG_CACHE_HOME", cache)

	fresh := func() { buildOnce, binPath, buildErr = sync.Once{}, "", nil } // as in a new test binary
	fresh()
	t.Cleanup(fresh)

	bin := ServerBinary(t)
	if !strings.HasPrefix(bin, filepath.Join(cache, "hookd-test")+string(filepath.Separator)) {
		t.Errorf("binary at %s, want it under %s", bin, cache)
	}
	version, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.Contains(string(version), server.VERSION) {
		t.Errorf("%s --version: %q, %v; want %s", bin, version, err, server.VERSION)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left behind in the temp directory: %s", e.Name())
	}
	build, _ := filepath.Glob(filepath.Join(cache, "hookd-test", "build-*"))
	if len(build) > 0 {
		t.Errorf("build directories left behind: %v", build)
	}

	// The next run reuses the binary instead of building another.
	before, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	fresh()
	if again := ServerBinary(t); again != bin {
		t.Errorf("next run: binary at %s, want %s again", again, bin)
	}
	if after, err := os.Stat(bin); err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("next run rebuilt the binary (%v)", err)
	}
}

// TestProcessExitSeen: a nats-server process that cannot listen exits, the helper sees it at
// once instead of polling for 30 s, and its log says why.
func TestProcessExitSeen(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	p := &Process{Port: port, Store: t.TempDir(), URL: fmt.Sprintf("nats://127.0.0.1:%d", port), t: t}
	if err := p.spawn(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("nats-server on a taken port still running after 20s")
	}
	if !p.exited() || p.Cmd.ProcessState.Success() {
		t.Fatalf("exited=%v state=%v; want a failed exit", p.exited(), p.Cmd.ProcessState)
	}
	if tail := p.logTail(); !strings.Contains(tail, "address already in use") {
		t.Errorf("log does not say why it exited:\n%s", tail)
	}
	p.Kill() // idempotent after exit
}

// TestStartCluster: the cluster answers JetStream requests, and its nodes are named for it alone.
func TestStartCluster(t *testing.T) {
	c := StartCluster(t, 3)
	if !jetStreamReady(c.URL, time.Second) {
		t.Fatal("cluster not ready after StartCluster")
	}
	nc, err := nats.Connect(c.Nodes[1].URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if name := nc.ConnectedClusterName(); !strings.HasPrefix(name, "hookd-test-") || name == "hookd-test" {
		t.Errorf("cluster name %q, want one of its own", name)
	}
}
