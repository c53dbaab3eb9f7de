package deploy

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/hookd/hookd/internal/config"
)

// TestConfigFilesLoad loads the configuration files shipped with compose and the chart through
// hookd's own loader, with the environment each deployment sets, so that a key hookd does not
// know (the loader rejects unknown keys) or a value it refuses fails here, not at startup.
func TestConfigFilesLoad(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	dotenv := dotenv(t)
	keyFile := privateKeyFile(t)

	t.Run("compose", func(t *testing.T) {
		for _, name := range []string{"hookd", "hookd-1"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				s := c.Services[name]
				env := map[string]string{}
				for k, v := range s.Environment {
					env[k] = interpolate(t, v, dotenv)
				}
				env["HOOKD_GITHUB_PRIVATE_KEY_FILE"] = keyFile // the container's secret
				path := filepath.Join(composeDir, s.mounts()[env["HOOKD_CONFIG"]])
				if _, err := config.Load(path, lookup(env)); err != nil {
					t.Errorf("%s with the environment of compose service %s: %v", path, name, err)
				}
			})
		}
	})

	t.Run("helm", func(t *testing.T) {
		t.Parallel()
		values := loadValues(t)
		b, err := yaml.Marshal(dig(t, values, "config"))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "hookd.yaml")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{
			"HOOKD_ROLES":                   "process",
			"HOOKD_NATS_URL":                "nats://hookd-nats.default.svc:4222",
			"HOOKD_NATS_REPLICAS":           yamlScalar(t, dig(t, values, "nats.streamReplicas")),
			"HOOKD_LOG_LEVEL":               yamlScalar(t, dig(t, values, "log.level")),
			"HOOKD_LOG_FORMAT":              yamlScalar(t, dig(t, values, "log.format")),
			"HOOKD_DATA_DIR":                "/data",
			"HOOKD_CONFIG":                  path,
			"HOOKD_GITHUB_APP_ID":           "123456",
			"HOOKD_GITHUB_PRIVATE_KEY_FILE": keyFile,
			"HOOKD_GITHUB_WEBHOOK_SECRET":   "s3cret",
		}
		if _, err := config.Load(path, lookup(env)); err != nil {
			t.Errorf("the chart's default config with the chart's environment: %v", err)
		}
	})
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok && v != ""
	}
}

func yamlScalar(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:len(b)-1])
}

// privateKeyFile writes a fresh RSA key in PEM, as GitHub issues App keys, and returns its path.
func privateKeyFile(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "github-app.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
