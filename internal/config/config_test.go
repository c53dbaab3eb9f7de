package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hookd.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	t.Parallel()
	t.Run("defaults without file", func(t *testing.T) {
		c, err := Load("", envMap(nil))
		if err != nil {
			t.Fatal(err)
		}
		if c.DataDir != "./data" || c.NATS.DataDir != "./data" || len(c.Roles) != 3 || c.Log.Format != "json" {
			t.Fatalf("defaults: %+v", c)
		}
	})
	t.Run("env overrides file", func(t *testing.T) {
		p := writeFile(t, "data_dir: /from/file\nnats:\n  partitions: 8\n  max_age: 120h\nlog:\n  level: debug\n")
		c, err := Load(p, envMap(map[string]string{
			"HOOKD_DATA_DIR":      "/from/env",
			"HOOKD_NATS_URL":      "nats://a:4222,nats://b:4222",
			"HOOKD_NATS_REPLICAS": "3",
			"HOOKD_RETRY_MAX":     "10m",
			"HOOKD_ROLES":         "ingest, process",
		}))
		if err != nil {
			t.Fatal(err)
		}
		if c.DataDir != "/from/env" || c.NATS.URL != "nats://a:4222,nats://b:4222" || c.NATS.Replicas != 3 ||
			c.NATS.Partitions != 8 || c.NATS.MaxAge != 120*time.Hour || c.Log.Level != "debug" || c.Retry.Max != 10*time.Minute ||
			strings.Join(c.Roles, ",") != "ingest,process" {
			t.Fatalf("merged config: %+v", c)
		}
	})
	t.Run("env sets an optional setting", func(t *testing.T) {
		// sweep.redeliver is a *bool (unset means true): its variable must not be ignored.
		p := writeFile(t, "sweep:\n  redeliver: true\n")
		c, err := Load(p, envMap(map[string]string{"HOOKD_SWEEP_REDELIVER": "false"}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Sweep.Redeliver == nil || *c.Sweep.Redeliver {
			t.Fatal("sweep.redeliver is not false: HOOKD_SWEEP_REDELIVER=false was ignored")
		}
		_, err = Load("", envMap(map[string]string{"HOOKD_SWEEP_REDELIVER": "maybe"}))
		if err == nil || !strings.Contains(err.Error(), "HOOKD_SWEEP_REDELIVER") {
			t.Fatalf("bad HOOKD_SWEEP_REDELIVER: err = %v", err)
		}
	})
	t.Run("each problem once", func(t *testing.T) {
		_, err := Load("", envMap(map[string]string{"HOOKD_RETRY_JITTER": "2", "HOOKD_PROCESSOR_CONCURRENCY": "-1"}))
		if err == nil {
			t.Fatal("want an error")
		}
		for _, key := range []string{"retry.jitter", "processor.concurrency"} {
			if n := strings.Count(err.Error(), key); n != 1 {
				t.Errorf("%s reported %d times in %q, want once", key, n, err)
			}
		}
	})
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       []string
	}{
		{"unknown key", "nats:\n  partitons: 3\n", nil, []string{"partitons"}},
		{"second document", "nats:\n  partitions: 8\n---\nnats:\n  partitons: 3\n", nil, []string{"line 4", "second YAML document"}},
		{"bad yaml", "nats: [\n", nil, []string{"config file"}},
		{"bad env duration", "", map[string]string{"HOOKD_RETRY_MAX": "soon"}, []string{"HOOKD_RETRY_MAX", "duration"}},
		{"bad env int", "", map[string]string{"HOOKD_NATS_REPLICAS": "three"}, []string{"HOOKD_NATS_REPLICAS", "integer"}},
		{"env list of no item", "", map[string]string{"HOOKD_ROLES": " , "}, []string{"HOOKD_ROLES", "no item"}},
		{"redelivery window beyond the dedup window", "sweep:\n  redelivery_window: 168h\n", nil, []string{"sweep.redelivery_window", "nats.max_age"}},
		{"several problems at once", "roles: [web]\nlog:\n  format: xml\n", nil, []string{"roles", "log.format"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ""
			if tc.file != "" {
				p = writeFile(t, tc.file)
			}
			_, err := Load(p, envMap(tc.env))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("one document", func(t *testing.T) {
		for _, file := range []string{"---\nnats:\n  partitions: 8\n", "nats:\n  partitions: 8\n---\n# nothing more\n"} {
			c, err := Load(writeFile(t, file), envMap(nil))
			if err != nil {
				t.Errorf("%q: %v", file, err)
			} else if c.NATS.Partitions != 8 {
				t.Errorf("%q: nats.partitions = %d, want 8", file, c.NATS.Partitions)
			}
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), envMap(nil))
		if err == nil || !strings.Contains(err.Error(), "HOOKD_CONFIG") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestEnvVars(t *testing.T) {
	t.Parallel()
	var c Config
	names := map[string]string{}
	for _, v := range EnvVars(&c) {
		names[v.Name] = v.Path
	}
	for name, path := range map[string]string{
		"HOOKD_NATS_URL": "nats.url", "HOOKD_DATA_DIR": "data_dir", "HOOKD_LOG_LEVEL": "log.level", "HOOKD_LOG_FORMAT": "log.format",
		"HOOKD_SWEEP_REDELIVER": "sweep.redeliver",
	} {
		if names[name] != path {
			t.Errorf("%s maps to %q, want %q", name, names[name], path)
		}
	}
}

// TestShutdownBudget: with the defaults, no part drains past shutdown_timeout, the scheduler's
// extra tenth for cancelled passes included (deploy files size their grace periods on it).
func TestShutdownBudget(t *testing.T) {
	for _, total := range []time.Duration{25 * time.Second, 11 * time.Second, time.Minute} {
		c := Config{ShutdownTimeout: total}
		c.Defaults()
		if got := c.Scheduler.ShutdownTimeout + c.Scheduler.ShutdownTimeout/10; got > total {
			t.Errorf("shutdown_timeout %s: the scheduler may drain for %s", total, got)
		}
		if c.HTTP.ShutdownTimeout > total || c.Processor.ShutdownTimeout > total {
			t.Errorf("shutdown_timeout %s: http %s, processor %s", total, c.HTTP.ShutdownTimeout, c.Processor.ShutdownTimeout)
		}
	}
}

// TestUnknownKeys: a key that is no setting is named by its path, with its line and the keys its
// section has, wherever it is: top level, a section, a nested section, a list of rules.
func TestUnknownKeys(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `datadir: ./x
http:
  adr: ":8080"
retry:
  max_atempts: 3
rules:
  - name: greet
    on: [issues.opened]
    comment: {body: hi}
  - name: label
    on: issues.opened
    lable: {add: [x]}
`)
	_, err := Load(p, envMap(nil))
	if err == nil {
		t.Fatal("Load accepted unknown keys")
	}
	for _, want := range []string{
		"line 1: datadir is not a setting; the top level has ", "data_dir",
		"line 3: http.adr is not a setting; http has addr, ",
		"line 5: retry.max_atempts is not a setting; retry has ", "max_attempts",
		"line 12: rules[1].lable is not a setting; rules[1] has ", "label",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "not found in type") || strings.Contains(err.Error(), "rules[0]") {
		t.Errorf("error names Go types or a rule that is fine:\n%v", err)
	}
}

// TestWebhookSecretsTrimmed: a secret written as a YAML block scalar (or with stray spaces) keeps
// no trailing newline, as its environment variable keeps none: GitHub's secret has none, and
// every signature check would fail.
func TestWebhookSecretsTrimmed(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "github:\n  webhook_secrets:\n    - |\n      block-secret\n    - \"  spaced  \"\n")
	c, err := Load(p, envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.GitHub.WebhookSecrets; len(got) != 2 || got[0] != "block-secret" || got[1] != "spaced" {
		t.Fatalf("webhook secrets %q", got)
	}
	c, err = Load("", envMap(map[string]string{"HOOKD_GITHUB_WEBHOOK_SECRET": " one , two\n"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.GitHub.WebhookSecrets; len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Fatalf("webhook secrets from env %q", got)
	}
}
