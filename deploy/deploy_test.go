package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/config"
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
		"HOOKD_NATS_CONNECT_TIMEOUT":    "how long the first connection to NATS may take",
		"HOOKD_DATA_DIR":                "data directory; default ./data",
		"HOOKD_LOG_LEVEL":               "log level",
		"HOOKD_LOG_FORMAT":              "json or console",
		"HOOKD_SWEEP_INTERVAL":          "sweep interval; default 5m",
	}
}

// roles are the values HOOKD_ROLES accepts.
func roles() []string { return []string{"ingest", "process", "sweep"} }

// hookdEnv is every HOOKD_* variable hookd reads, taken from its configuration loader (one per
// key, named after the key's path), mapped to that path; plus HOOKD_CONFIG (the file itself)
// and HOOKD_GITHUB_WEBHOOK_SECRET, the one variable not named after its key, which is checked
// by loading it.
func hookdEnv(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{"HOOKD_CONFIG": ""}
	for _, v := range config.EnvVars(&config.Config{}) {
		out[v.Name] = v.Path
	}
	cfg, err := config.Load("", lookup(map[string]string{"HOOKD_GITHUB_WEBHOOK_SECRET": "new,old"}))
	if err != nil || !slices.Equal(cfg.GitHub.WebhookSecrets, []string{"new", "old"}) {
		t.Fatalf("HOOKD_GITHUB_WEBHOOK_SECRET=new,old does not set github.webhook_secrets (%v, %v)", cfg, err)
	}
	out["HOOKD_GITHUB_WEBHOOK_SECRET"] = "github.webhook_secrets"
	if !strings.Contains(string(readFile(t, filepath.Join(repoRoot, "cmd", "hookd", "root.go"))), `os.Getenv("HOOKD_CONFIG")`) {
		t.Fatal("cmd/hookd/root.go no longer reads HOOKD_CONFIG")
	}
	return out
}

// TestDocumentedEnvIsHookds holds the documented variables to the ones hookd's loader reads, so
// that a renamed key fails here rather than being ignored in a deployment.
func TestDocumentedEnvIsHookds(t *testing.T) {
	t.Parallel()
	known := hookdEnv(t)
	for _, name := range sortedKeys(documentedEnv()) {
		if _, ok := known[name]; !ok {
			t.Errorf("%s is documented but hookd does not read it (hookd config env lists what it reads)", name)
		}
	}
}

// TestDeployDocDefaults compares the defaults column of docs/DEPLOY.md's variable table with
// the defaults hookd's loader fills in.
func TestDeployDocDefaults(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig(t)
	paths := hookdEnv(t)
	row := regexp.MustCompile("(?m)^\\| `(HOOKD_[A-Z0-9_]+)` \\|.*\\| ([^|]+) \\|$")
	rows := row.FindAllStringSubmatch(string(readFile(t, filepath.Join(repoRoot, "docs", "DEPLOY.md"))), -1)
	if len(rows) < len(documentedEnv()) {
		t.Fatalf("docs/DEPLOY.md: found %d rows of the variable table; want one per documented variable (%d)", len(rows), len(documentedEnv()))
	}
	for _, m := range rows {
		name, cell := m[1], strings.TrimSpace(m[2])
		path := paths[name]
		if path == "" {
			continue // HOOKD_CONFIG: not a key
		}
		v, ok := fieldByPath(reflect.ValueOf(*cfg), path)
		if !ok {
			t.Errorf("%s: no configuration key %s", name, path)
			continue
		}
		if err := sameDefault(cell, v); err != nil {
			t.Errorf("docs/DEPLOY.md: %s defaults to %q, but hookd's default for %s is %v: %v", name, cell, path, v.Interface(), err)
		}
	}
}

// defaultConfig is hookd's configuration with nothing set: every default.
func defaultConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("", lookup(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestDeployDocNumbers checks the shutdown figures docs/DEPLOY.md quotes against hookd's
// defaults and the chart's values.
func TestDeployDocNumbers(t *testing.T) {
	t.Parallel()
	doc := string(readFile(t, filepath.Join(repoRoot, "docs", "DEPLOY.md")))
	values := loadValues(t)
	drain := drainTime(defaultConfig(t))
	number := func(re string) int {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(doc)
		if m == nil {
			t.Fatalf("docs/DEPLOY.md no longer says %s", re)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	if n := number(`--stop-timeout (\d+)`); time.Duration(n)*time.Second <= drain {
		t.Errorf("docs/DEPLOY.md: docker run --stop-timeout %d is not over hookd's %s drain", n, drain)
	}
	if n := number("drains for up to (\\d+) s on SIGTERM \\(`shutdown_timeout`\\)"); time.Duration(n)*time.Second != drain {
		t.Errorf("docs/DEPLOY.md: hookd drains for up to %d s; it is %s", n, drain)
	}
	if n := number(`then drain within (\d+) s`); time.Duration(n)*time.Second != drain {
		t.Errorf("docs/DEPLOY.md: pods drain within %d s; hookd's drain is %s", n, drain)
	}
	if n, v := number("`terminationGracePeriodSeconds` is (\\d+)"), dig(t, values, "terminationGracePeriodSeconds"); n != v {
		t.Errorf("docs/DEPLOY.md: terminationGracePeriodSeconds is %d; values.yaml has %v", n, v)
	}
	if n, v := number("`preStopSleepSeconds` \\((\\d+) s"), dig(t, values, "preStopSleepSeconds"); n != v {
		t.Errorf("docs/DEPLOY.md: preStopSleepSeconds is %d s; values.yaml has %v", n, v)
	}
}

// fieldByPath finds the field at a dotted yaml path.
func fieldByPath(v reflect.Value, path string) (reflect.Value, bool) {
	for _, key := range strings.Split(path, ".") {
		found := false
		for i := 0; i < v.NumField(); i++ {
			tag := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" {
				tag = strings.ToLower(v.Type().Field(i).Name)
			}
			if tag == key {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}, false
		}
	}
	return v, true
}

// sameDefault compares a documented default (the first `code` span, or none, empty, all ...)
// with a loaded value.
func sameDefault(cell string, v reflect.Value) error {
	if m := regexp.MustCompile("`([^`]*)`").FindStringSubmatch(cell); m != nil {
		want := m[1]
		switch x := v.Interface().(type) {
		case time.Duration:
			d, err := time.ParseDuration(want)
			if err != nil || d != x {
				return fmt.Errorf("want %s", x)
			}
		case string:
			if x != want {
				return fmt.Errorf("want %q", x)
			}
		case int:
			if strconv.Itoa(x) != want {
				return fmt.Errorf("want %d", x)
			}
		default:
			return fmt.Errorf("cannot compare a %T; extend sameDefault", x)
		}
		return nil
	}
	switch {
	case cell == "none" || cell == "empty":
		if !v.IsZero() && !(v.Kind() == reflect.Slice && v.Len() == 0) {
			return fmt.Errorf("want it documented, it is not empty")
		}
	case strings.HasPrefix(cell, "all"):
		if got, ok := v.Interface().([]string); !ok || !slices.Equal(got, roles()) {
			return fmt.Errorf("want all of %v", roles())
		}
	default:
		return fmt.Errorf("unreadable default %q: write it as `value`, none, empty or all", cell)
	}
	return nil
}

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
