package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/processor"
)

// TestServeSameDataDir: a second `hookd serve` on the data_dir of a running one (its own HTTP
// and NATS ports) stops at once with exit status 1 and a message saying why, instead of running
// a second embedded JetStream on the same store; the first one keeps storing deliveries.
func TestServeSameDataDir(t *testing.T) {
	t.Parallel()
	fake, inst := newFake(t)
	rec := newRecorder()
	dataDir := t.TempDir()
	first := startTestApp(t, dataDir, fake, rec)

	cmd, _, out := hookdProcess(t, testConfig(t, dataDir, fake), fake, "serve")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("second hookd on the same data_dir exited with %v, want exit status 1\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("second hookd on the same data_dir still running after 30s\n%s", out.String())
	}
	for _, w := range []string{dataDir, "in use by another hookd", "HOOKD_DATA_DIR"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("second hookd's message does not mention %q:\n%s", w, out.String())
		}
	}

	if got := post(t, first.url+"/webhook", fake.App().WebhookSecret, "issues", "same-dir-1", withInstallation(t, "issues.opened", inst.ID)); got != http.StatusAccepted {
		t.Fatalf("first hookd after the second one's attempt: %d", got)
	}
	rec.waitFor(t, "the delivery to be handled", func(evs []*processor.Event) bool {
		for _, ev := range evs {
			if ev.Meta.Delivery == "same-dir-1" {
				return true
			}
		}
		return false
	})
}

// TestOpsCommandsNATSDown: with no hookd serve (nothing listens on nats.listen) every operator
// command fails within seconds, with exit status 1 and a message saying what to check, even
// with the long nats.connect_timeout a deployment gives serve (the Helm chart sets 2m).
func TestOpsCommandsNATSDown(t *testing.T) {
	t.Parallel()
	cfgFile := filepath.Join(t.TempDir(), "hookd.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("nats:\n  listen: 127.0.0.1:%d\n  connect_timeout: 2m\n", brokertest.FreePort(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"status"}, {"status", "--json"}, {"dlq", "list"}, {"dlq", "show", "1"},
		{"dlq", "replay", "1"}, {"dlq", "replay", "--all"}, {"dlq", "purge", "--yes"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			out, err := runCLI(t, append(args, "--config", cfgFile)...)
			took := time.Since(start)
			if err == nil {
				t.Fatalf("succeeded without a NATS:\n%s", out)
			}
			if !strings.Contains(err.Error(), "hookd serve") || !strings.Contains(err.Error(), "connect to NATS") {
				t.Errorf("error %q does not say it cannot reach NATS nor what to check", err)
			}
			if took > 15*time.Second {
				t.Errorf("took %s to report that NATS is down, want a few seconds", took.Round(time.Millisecond))
			}
		})
	}
}

// TestDLQBadIDs: an ID that cannot be a dead letter's is refused before anything is asked of
// NATS, with a message saying what an ID is (0 used to reach JetStream, which answered "nats:
// Empty Request").
func TestDLQBadIDs(t *testing.T) {
	t.Parallel()
	cfgFile := filepath.Join(t.TempDir(), "hookd.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("nats:\n  listen: 127.0.0.1:%d\n", brokertest.FreePort(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"show", "0"}, {"show", "abc"}, {"replay", "0"}, {"replay", "3", "0"}, {"replay", "1.5"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			out, err := runCLI(t, append([]string{"dlq"}, append(args, "--config", cfgFile)...)...)
			if err == nil || !strings.Contains(err.Error(), "want the number `hookd dlq list` shows") {
				t.Fatalf("got %v, want a refusal saying what an ID is\n%s", err, out)
			}
		})
	}
}

// TestConfigCheckMisspeltEnv: `hookd config check` names a HOOKD_* variable hookd does not read
// (here one letter short of nats.replicas), which would otherwise be ignored while the check
// says the configuration is ok. Not parallel: it sets the process environment.
func TestConfigCheckMisspeltEnv(t *testing.T) {
	t.Setenv("HOOKD_NATS_REPLICA", "3")
	t.Setenv("HOOKD_LOG_LEVEL", "warn")
	t.Setenv("HOOKD_GITHUB_WEBHOOK_SECRET", "s") // the alias is read
	out, err := runCLI(t, "config", "check")
	if err != nil {
		t.Fatalf("config check: %v\n%s", err, out)
	}
	if !strings.Contains(out, "configuration ok") || !strings.Contains(out, "warning: hookd reads none of HOOKD_NATS_REPLICA:") {
		t.Fatalf("config check does not point out HOOKD_NATS_REPLICA:\n%s", out)
	}
	for _, known := range []string{"HOOKD_LOG_LEVEL", "HOOKD_GITHUB_WEBHOOK_SECRET,", "HOOKD_GITHUB_WEBHOOK_SECRET:"} {
		if strings.Contains(out, known) {
			t.Errorf("config check calls %s unknown:\n%s", known, out)
		}
	}
}

func TestUnknownEnv(t *testing.T) {
	t.Parallel()
	got := unknownEnv([]string{
		"PATH=/bin", "HOOKD_CONFIG=x.yaml", "HOOKD_NATS_URL=nats://n:4222", "HOOKD_GITHUB_WEBHOOK_SECRET=s",
		"HOOKD_GITHUB_WEBHOOK_SECRETS=s", "HOOKD_SWEEP_REDELIVER=false", "HOOKD_WEBHOOK_SECRET=s", "HOOKD_NATS_URLS=x", "HOOKD_=",
		// Kubernetes' links to Services named hookd and hookd-metrics:
		"HOOKD_SERVICE_HOST=10.0.0.1", "HOOKD_SERVICE_PORT=8080", "HOOKD_SERVICE_PORT_HTTP=8080", "HOOKD_PORT=tcp://10.0.0.1:8080",
		"HOOKD_PORT_8080_TCP=tcp://10.0.0.1:8080", "HOOKD_PORT_8080_TCP_ADDR=10.0.0.1", "HOOKD_PORT_8080_TCP_PORT=8080",
		"HOOKD_PORT_8080_TCP_PROTO=tcp", "HOOKD_METRICS_SERVICE_HOST=10.0.0.2", "HOOKD_METRICS_PORT_9090_TCP=tcp://10.0.0.2:9090",
	})
	if want := []string{"HOOKD_", "HOOKD_NATS_URLS", "HOOKD_WEBHOOK_SECRET"}; !slices.Equal(got, want) {
		t.Fatalf("unknownEnv = %v, want %v", got, want)
	}
}

// TestStatusNotHookdsNATS: `hookd status` pointed at a NATS that is not a hookd deployment's
// (no JetStream; JetStream without hookd's streams) says so and what to check, at once.
func TestStatusNotHookdsNATS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		jetStream bool
		want      string
	}{
		{"no JetStream", false, "this NATS has no JetStream"},
		{"no hookd streams", true, "has hookd started against this NATS?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: tc.jetStream, StoreDir: t.TempDir(), NoSigs: true})
			if err != nil {
				t.Fatal(err)
			}
			go srv.Start()
			t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
			if !srv.ReadyForConnections(10 * time.Second) {
				t.Fatal("nats-server not ready")
			}
			cfgFile := filepath.Join(t.TempDir(), "hookd.yaml")
			if err := os.WriteFile(cfgFile, []byte("nats:\n  url: "+srv.ClientURL()+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := runCLI(t, "status", "--config", cfgFile)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "HOOKD_NATS_URL") {
				t.Fatalf("status: %v, want an error saying %q and what to check\n%s", err, tc.want, out)
			}
		})
	}
}

// TestStatusPartitionMismatch: `hookd status` with another partition count than the deployment's
// (the default 16, run without the deployment's configuration) would show consumers and
// replicas' partitions that do not exist; it says which count to give instead.
func TestStatusPartitionMismatch(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t) // 4 partitions
	dir := t.TempDir()
	for _, tc := range []struct {
		partitions int
		want       string // in the error; "" for success
	}{
		{16, "has 4 partitions, this configuration 16"},
		{4, ""},
	} {
		cfgFile := filepath.Join(dir, fmt.Sprintf("p%d.yaml", tc.partitions))
		if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("nats:\n  url: %s\n  partitions: %d\n", env.URL, tc.partitions)), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runCLI(t, "status", "--config", cfgFile)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("partitions %d: %v\n%s", tc.partitions, err, out)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "HOOKD_NATS_PARTITIONS=4")):
			t.Errorf("partitions %d: got %v, want an error saying %q and HOOKD_NATS_PARTITIONS=4\n%s", tc.partitions, err, tc.want, out)
		}
	}
}
