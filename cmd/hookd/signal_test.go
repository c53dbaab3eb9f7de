package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
)

// TestServeSIGTERM: the real binary (this test binary re-executed as hookd) drains and exits 0
// on SIGTERM, with deliveries it accepted just before stored.
func TestServeSIGTERM(t *testing.T) {
	t.Parallel()
	fake, inst := newFake(t)
	dataDir := t.TempDir()
	cfg := testConfig(t, dataDir, fake)
	cmd, base, out := hookdProcess(t, cfg, fake, "serve", "HOOKD_SHUTDOWN_TIMEOUT=10s", "HOOKD_LOG_LEVEL=info")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	waitStatus(t, base+"/readyz", http.StatusOK)
	for i := range 5 {
		if got := post(t, base+"/webhook", fake.App().WebhookSecret, "issues", fmt.Sprintf("term-%d", i), withInstallation(t, "issues.opened", inst.ID)); got != http.StatusAccepted {
			t.Fatalf("delivery %d: %d", i, got)
		}
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("hookd exited with %v after SIGTERM\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("hookd still running 30s after SIGTERM\n%s", out.String())
	}
	if !strings.Contains(out.String(), "hookd stopped") {
		t.Fatalf("no clean stop in the logs:\n%s", out.String())
	}
	t.Logf("drained and exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))

	// The embedded JetStream it left behind holds every delivery it accepted.
	srv, err := broker.StartEmbedded(cfg.NATS, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := broker.Connect(context.Background(), srv.ClientURL(), cfg.NATS, "test", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, broker.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(event.EventsPrefix+".>"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		found := false
		for subj := range info.State.Subjects {
			found = found || strings.HasSuffix(subj, fmt.Sprintf(".term-%d", i))
		}
		if !found {
			t.Errorf("delivery term-%d accepted before SIGTERM is not in %s (subjects %v)", i, broker.StreamEvents, info.State.Subjects)
		}
	}
}

// TestServeSecondSignal: a second SIGTERM during a long drain ends the process at once, with a
// non-zero status and a line saying why, instead of waiting out shutdown_timeout.
func TestServeSecondSignal(t *testing.T) {
	t.Parallel()
	fake, inst := newFake(t)
	cfg := testConfig(t, t.TempDir(), fake)
	// A rule whose command outlives the test keeps the processor draining for most of the
	// minute shutdown_timeout allows.
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	rulesFile := filepath.Join(dir, "hookd.yaml")
	if err := os.WriteFile(rulesFile, []byte(fmt.Sprintf(`rules:
  - name: slow
    on: [issues.opened]
    run:
      command: ["/bin/sh", "-c", "echo $$ > %s.tmp && mv %[1]s.tmp %[1]s && exec sleep 60"]
      timeout: 5m
`, started)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, base, out := hookdProcess(t, cfg, fake, "serve", "HOOKD_CONFIG="+rulesFile, "HOOKD_SHUTDOWN_TIMEOUT=60s", "HOOKD_LOG_LEVEL=info")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	waitStatus(t, base+"/readyz", http.StatusOK)
	if got := post(t, base+"/webhook", fake.App().WebhookSecret, "issues", "second-signal", withInstallation(t, "issues.opened", inst.ID)); got != http.StatusAccepted {
		t.Fatalf("delivery: %d", got)
	}
	waitUntil(t, "the slow rule to start", func() bool { _, err := os.Stat(started); return err == nil })
	t.Cleanup(func() { // the command outlives a hookd that exits at once
		if b, err := os.ReadFile(started); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the drain to begin", func() bool { return strings.Contains(out.String(), "draining workers") })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("hookd exited with %v after a second SIGTERM, want exit status 1\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("hookd still running 15s after a second SIGTERM (it waits out the drain)\n%s", out.String())
	}
	if !strings.Contains(out.String(), "second signal") {
		t.Fatalf("no line says why hookd exited:\n%s", out.String())
	}
}

// waitUntil polls cond for up to 30s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
