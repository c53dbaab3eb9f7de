package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
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
	httpPort, natsPort := freePort(t), freePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"HOOKD_TEST_MAIN=1", "HOOKD_TEST_ARGS=serve",
		"HOOKD_DATA_DIR="+dataDir,
		"HOOKD_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(httpPort),
		"HOOKD_NATS_LISTEN=127.0.0.1:"+strconv.Itoa(natsPort),
		"HOOKD_GITHUB_APP_ID="+strconv.FormatInt(cfg.GitHub.AppID, 10),
		"HOOKD_GITHUB_PRIVATE_KEY_FILE="+cfg.GitHub.PrivateKeyFile,
		"HOOKD_GITHUB_WEBHOOK_SECRET="+strings.Join(cfg.GitHub.WebhookSecrets, ","),
		"HOOKD_GITHUB_API_URL="+fake.URL(),
		"HOOKD_SHUTDOWN_TIMEOUT=10s",
		"HOOKD_LOG_LEVEL=info",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
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
