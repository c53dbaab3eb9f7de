package deploy

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/hookd/hookd/internal/broker"
)

// repoRoot is the repository root as seen from this package's directory, where tests run.
const repoRoot = ".."

// documentedEnv is hookd's fixed environment interface: the only HOOKD_* variables deployment
// files may set and docs/DEPLOY.md may mention, each with what it is.
func documentedEnv() map[string]string {
	return map[string]string{
		"HOOKD_CONFIG":                  "configuration file (YAML), like --config",
		"HOOKD_ROLES":                   "roles, comma-separated: ingest, process, sweep; default all",
		"HOOKD_GITHUB_APP_ID":           "the GitHub App's ID",
		"HOOKD_GITHUB_PRIVATE_KEY_FILE": "path of the App's private key (PEM)",
		"HOOKD_GITHUB_WEBHOOK_SECRET":   "webhook secret(s), comma-separated for rotation",
		"HOOKD_GITHUB_API_URL":          "GitHub API base URL; default https://api.github.com/",
		"HOOKD_HTTP_ADDR":               "HTTP listen address; default :8080",
		"HOOKD_NATS_URL":                "NATS URL(s), comma-separated; empty: embedded JetStream",
		"HOOKD_NATS_REPLICAS":           "replicas of streams and buckets; 1, or 3 on a 3-node cluster",
		"HOOKD_DATA_DIR":                "data directory; default ./data",
		"HOOKD_LOG_LEVEL":               "log level",
		"HOOKD_LOG_FORMAT":              "json or console",
		"HOOKD_SWEEP_INTERVAL":          "sweep interval; default 5m",
	}
}

// roles are the values HOOKD_ROLES accepts.
func roles() []string { return []string{"ingest", "process", "sweep"} }

// notEnv are HOOKD_-prefixed names that are not environment variables: JetStream stream names.
func notEnv() []string { return []string{broker.StreamEvents, broker.StreamDLQ} }

var envRef = regexp.MustCompile(`\bHOOKD_[A-Z0-9_]*[A-Z0-9]\b`)

// TestEnvVarsAreDocumented holds every deployment file and docs/DEPLOY.md to the documented
// HOOKD_* variables: a typo or an invented variable would be silently ignored by hookd.
func TestEnvVarsAreDocumented(t *testing.T) {
	t.Parallel()
	known := documentedEnv()
	files := deployFiles(t)
	files = append(files, filepath.Join(repoRoot, "docs", "DEPLOY.md"))
	seen := map[string]bool{}
	for _, f := range files {
		sc := bufio.NewScanner(bytes.NewReader(readFile(t, f)))
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			for _, name := range envRef.FindAllString(sc.Text(), -1) {
				seen[name] = true
				if _, ok := known[name]; !ok && !slices.Contains(notEnv(), name) {
					t.Errorf("%s:%d: %s is not an environment variable hookd reads; use one of %s", f, n, name, strings.Join(sortedKeys(known), ", "))
				}
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if len(seen) == 0 {
		t.Fatal("no HOOKD_* variable found in any deployment file: the scan is broken")
	}
}

// TestDeployDocCoversInterface checks that docs/DEPLOY.md explains every variable, every probe
// and every role, and that the deploy/ paths it names exist.
func TestDeployDocCoversInterface(t *testing.T) {
	t.Parallel()
	doc := string(readFile(t, filepath.Join(repoRoot, "docs", "DEPLOY.md")))
	for _, name := range sortedKeys(documentedEnv()) {
		if !strings.Contains(doc, name) {
			t.Errorf("docs/DEPLOY.md does not mention %s (%s)", name, documentedEnv()[name])
		}
	}
	for _, s := range append([]string{"/healthz", "/readyz", "/metrics", "/webhook"}, roles()...) {
		if !strings.Contains(doc, s) {
			t.Errorf("docs/DEPLOY.md does not mention %s", s)
		}
	}
	paths := regexp.MustCompile("deploy/[A-Za-z0-9_./-]*[A-Za-z0-9_]").FindAllString(doc, -1)
	if len(paths) == 0 {
		t.Fatal("docs/DEPLOY.md names no deploy/ path")
	}
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(p))); err != nil {
			t.Errorf("docs/DEPLOY.md names %s, which does not exist: %v", p, err)
		}
	}
}

// deployFiles lists every file under deploy/ except this package's Go files.
func deployFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasSuffix(p, ".go") {
			return nil
		}
		files = append(files, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeYAML decodes a YAML file strictly (unknown fields are errors when v is a struct).
func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, path)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
