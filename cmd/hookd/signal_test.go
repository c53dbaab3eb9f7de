package main

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
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
}
