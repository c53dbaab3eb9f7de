package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// composeFile is the part of the Compose specification compose.yaml uses; decoding is strict,
// so a key outside it fails the test (add it here when you use it).
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
	// Extension fields (x-*) hold YAML anchors.
	XHookdBuild any `yaml:"x-hookd-build"`
	XHookdEnv   any `yaml:"x-hookd-env"`
	XNatsNode   any `yaml:"x-nats-node"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string            `yaml:"context"`
		Dockerfile string            `yaml:"dockerfile"`
		Args       map[string]string `yaml:"args"`
	} `yaml:"build"`
	Profiles        []string          `yaml:"profiles"`
	Restart         string            `yaml:"restart"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Hostname        string            `yaml:"hostname"`
	Command         []string          `yaml:"command"`
	Environment     map[string]string `yaml:"environment"`
	Ports           []string          `yaml:"ports"`
	Volumes         []string          `yaml:"volumes"`
	Secrets         []string          `yaml:"secrets"`
	ReadOnly        bool              `yaml:"read_only"`
	Tmpfs           []string          `yaml:"tmpfs"`
	DependsOn       any               `yaml:"depends_on"`
	Healthcheck     *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		StartPeriod string   `yaml:"start_period"`
		Retries     int      `yaml:"retries"`
	} `yaml:"healthcheck"`
}

// mounts maps a service's container paths to their sources (volume names or host paths).
func (s composeService) mounts() map[string]string {
	m := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			m[parts[1]] = parts[0]
		}
	}
	return m
}

func (s composeService) flag(name string) (string, bool) {
	for _, c := range s.Command {
		if c == "--"+name {
			return "", true
		}
		if v, ok := strings.CutPrefix(c, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func (s composeService) dependsOnHealthy() map[string]bool {
	out := map[string]bool{}
	switch d := s.DependsOn.(type) {
	case []any:
		for _, n := range d {
			out[fmt.Sprint(n)] = false
		}
	case map[string]any:
		for n, v := range d {
			c, _ := v.(map[string]any)
			out[n] = c["condition"] == "service_healthy"
		}
	}
	return out
}

const composeDir = "compose"

// interpolate expands ${VAR}, ${VAR:-default} and ${VAR:?message} as Docker Compose does, from
// env; it fails the test on a required variable env lacks.
func interpolate(t *testing.T, s string, env map[string]string) string {
	t.Helper()
	return regexp.MustCompile(`\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}`).ReplaceAllStringFunc(s, func(m string) string {
		sub := regexp.MustCompile(`\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}`).FindStringSubmatch(m)
		v, ok := env[sub[1]]
		switch {
		case ok && v != "":
			return v
		case strings.HasSuffix(sub[2], "-"):
			return sub[3]
		case strings.HasSuffix(sub[2], "?"):
			t.Errorf("${%s} is required (%s) and .env.example does not set it", sub[1], sub[3])
		}
		return v
	})
}

// dotenv parses .env.example: KEY=value lines.
func dotenv(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for n, line := range strings.Split(string(readFile(t, filepath.Join(composeDir, ".env.example"))), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf(".env.example:%d: not KEY=value", n+1)
			continue
		}
		env[k] = v
	}
	return env
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	decodeYAML(t, filepath.Join(composeDir, "compose.yaml"), &c)
	if len(c.Services) == 0 {
		t.Fatal("compose.yaml has no services")
	}
	return c
}

func TestCompose(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	env := dotenv(t)

	var hookds, natsNodes []string
	for name, s := range c.Services {
		if s.Build != nil && s.Build.Dockerfile == "deploy/Dockerfile" {
			hookds = append(hookds, name)
		}
		if strings.Contains(s.Image, "nats") {
			natsNodes = append(natsNodes, name)
		}
	}
	slices.Sort(hookds)
	slices.Sort(natsNodes)
	if len(hookds) != 3 {
		t.Fatalf("want 3 hookd services (single + 2 cluster replicas), got %v", hookds)
	}

	t.Run("env file", func(t *testing.T) {
		t.Parallel()
		raw := string(readFile(t, filepath.Join(composeDir, "compose.yaml")))
		used := map[string]bool{}
		for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)`).FindAllStringSubmatch(raw, -1) {
			used[m[1]] = true
			if _, ok := env[m[1]]; !ok {
				t.Errorf("compose.yaml reads ${%s}, which .env.example does not show", m[1])
			}
		}
		for k := range env {
			if !used[k] {
				t.Errorf(".env.example sets %s, which compose.yaml does not use", k)
			}
		}
		interpolate(t, raw, env)
	})

	for _, name := range hookds {
		s := c.Services[name]
		t.Run("hookd service "+name, func(t *testing.T) {
			t.Parallel()
			ctx := filepath.Join(composeDir, filepath.FromSlash(s.Build.Context))
			if _, err := os.Stat(filepath.Join(ctx, "go.mod")); err != nil {
				t.Errorf("build.context %s is not the repository root: %v", s.Build.Context, err)
			}
			if _, err := os.Stat(filepath.Join(ctx, filepath.FromSlash(s.Build.Dockerfile))); err != nil {
				t.Errorf("build.dockerfile: %v", err)
			}
			grace, err := time.ParseDuration(s.StopGracePeriod)
			if drain := drainTime(defaultConfig(t)); err != nil || grace <= drain {
				t.Errorf("stop_grace_period %q must be over hookd's %s drain (shutdown_timeout; Docker's default is 10s)", s.StopGracePeriod, drain)
			}
			e := s.Environment
			for _, r := range strings.Split(e["HOOKD_ROLES"], ",") {
				if !slices.Contains(roles(), r) {
					t.Errorf("HOOKD_ROLES: %q is not a role", r)
				}
			}
			keyFile := e["HOOKD_GITHUB_PRIVATE_KEY_FILE"]
			secret, ok := strings.CutPrefix(keyFile, "/run/secrets/")
			if !ok || !slices.Contains(s.Secrets, secret) {
				t.Errorf("HOOKD_GITHUB_PRIVATE_KEY_FILE=%s is not a secret mounted in the service (secrets %v)", keyFile, s.Secrets)
			}
			for _, sec := range s.Secrets {
				if _, ok := c.Secrets[sec]; !ok {
					t.Errorf("secret %s is not declared at the top level", sec)
				}
			}
			mounts := s.mounts()
			cfg := e["HOOKD_CONFIG"]
			if src, ok := mounts[cfg]; !ok {
				t.Errorf("HOOKD_CONFIG=%s is not mounted", cfg)
			} else if _, err := os.Stat(filepath.Join(composeDir, src)); err != nil {
				t.Errorf("HOOKD_CONFIG is mounted from %s: %v", src, err)
			}
			if e["HOOKD_GITHUB_WEBHOOK_SECRET"] == "" || e["HOOKD_GITHUB_APP_ID"] == "" {
				t.Error("HOOKD_GITHUB_APP_ID and HOOKD_GITHUB_WEBHOOK_SECRET must be set")
			}
			dataVol, ok := mounts[e["HOOKD_DATA_DIR"]]
			if !ok {
				t.Errorf("HOOKD_DATA_DIR=%s is not a mounted volume", e["HOOKD_DATA_DIR"])
			} else if _, ok := c.Volumes[dataVol]; !ok {
				t.Errorf("volume %s is not declared at the top level", dataVol)
			}
		})
	}

	t.Run("single", func(t *testing.T) {
		t.Parallel()
		s, ok := c.Services["hookd"]
		if !ok {
			t.Fatal("no service hookd")
		}
		if len(s.Profiles) != 0 {
			t.Errorf("the single hookd has profiles %v; it must start with a plain `docker compose up`", s.Profiles)
		}
		if u := s.Environment["HOOKD_NATS_URL"]; u != "" {
			t.Errorf("the single hookd sets HOOKD_NATS_URL=%s; it runs the embedded JetStream", u)
		}
		if r := s.Environment["HOOKD_NATS_REPLICAS"]; r != "" && r != "1" {
			t.Errorf("the single hookd sets HOOKD_NATS_REPLICAS=%s; the embedded server is one node", r)
		}
		if !slices.ContainsFunc(s.Ports, func(p string) bool { return strings.HasSuffix(p, ":8080") }) {
			t.Errorf("the single hookd publishes no port to 8080: %v", s.Ports)
		}
	})

	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		if len(natsNodes) != 3 {
			t.Fatalf("want 3 nats services, got %v", natsNodes)
		}
		var routes, urls []string
		for _, n := range natsNodes {
			routes = append(routes, "nats://"+n+":6222")
			urls = append(urls, "nats://"+n+":4222")
		}
		clusterName := ""
		for _, n := range natsNodes {
			s := c.Services[n]
			if !slices.Contains(s.Profiles, "cluster") {
				t.Errorf("%s: not in profile cluster", n)
			}
			if v, _ := s.flag("name"); v != n {
				t.Errorf("%s: --name=%s; each JetStream node needs its own name, use the service name", n, v)
			}
			if _, ok := s.flag("jetstream"); !ok {
				t.Errorf("%s: no --jetstream", n)
			}
			dir, _ := s.flag("store_dir")
			if vol, ok := s.mounts()[dir]; !ok || c.Volumes[vol] != nil || !hasKey(c.Volumes, vol) {
				t.Errorf("%s: --store_dir=%s is not on a named volume", n, dir)
			}
			if conf, ok := s.flag("config"); !ok {
				t.Errorf("%s: no --config with the shared JetStream settings", n)
			} else if src, ok := s.mounts()[conf]; !ok {
				t.Errorf("%s: --config=%s is not mounted", n, conf)
			} else if !regexp.MustCompile(`(?m)^\s*sync_interval: always$`).Match(readFile(t, filepath.Join(composeDir, src))) {
				t.Errorf("%s: %s does not set sync_interval: always; acknowledged deliveries would wait for the 2m fsync", n, src)
			}
			cn, _ := s.flag("cluster_name")
			if clusterName == "" {
				clusterName = cn
			} else if cn != clusterName {
				t.Errorf("%s: --cluster_name=%s, others %s", n, cn, clusterName)
			}
			got, _ := s.flag("routes")
			if r := strings.Split(got, ","); !sameSet(r, routes) {
				t.Errorf("%s: --routes=%s; want every node: %s", n, got, strings.Join(routes, ","))
			}
			if s.Healthcheck == nil || !strings.Contains(strings.Join(s.Healthcheck.Test, " "), "/healthz") {
				t.Errorf("%s: no healthcheck on the monitoring /healthz; hookd waits for it", n)
			}
			if port, _ := s.flag("http_port"); s.Healthcheck != nil && !strings.Contains(strings.Join(s.Healthcheck.Test, " "), ":"+port+"/") {
				t.Errorf("%s: the healthcheck does not use --http_port=%s", n, port)
			}
		}
		var replicas []string
		for _, n := range hookdsIn(c, "cluster") {
			replicas = append(replicas, n)
			s := c.Services[n]
			if got := strings.Split(s.Environment["HOOKD_NATS_URL"], ","); !sameSet(got, urls) {
				t.Errorf("%s: HOOKD_NATS_URL=%s; want the three nodes %s", n, s.Environment["HOOKD_NATS_URL"], strings.Join(urls, ","))
			}
			if r, err := strconv.Atoi(s.Environment["HOOKD_NATS_REPLICAS"]); err != nil || r != len(natsNodes) {
				t.Errorf("%s: HOOKD_NATS_REPLICAS=%q; want %d, one per node", n, s.Environment["HOOKD_NATS_REPLICAS"], len(natsNodes))
			}
			deps := s.dependsOnHealthy()
			for _, node := range natsNodes {
				if !deps[node] {
					t.Errorf("%s: does not wait for %s to be healthy (depends_on condition service_healthy)", n, node)
				}
			}
		}
		if len(replicas) != 2 {
			t.Errorf("want 2 hookd replicas in profile cluster, got %v", replicas)
		}

		ing, ok := c.Services["ingress"]
		if !ok {
			t.Fatal("no service ingress")
		}
		if !slices.Contains(ing.Profiles, "cluster") {
			t.Error("ingress: not in profile cluster")
		}
		caddyfile, ok := ing.mounts()["/etc/caddy/Caddyfile"]
		if !ok {
			t.Fatal("ingress: no Caddyfile mounted at /etc/caddy/Caddyfile")
		}
		checkCaddyfile(t, filepath.Join(composeDir, caddyfile), replicas)
		for _, r := range replicas {
			if _, ok := ing.dependsOnHealthy()[r]; !ok {
				t.Errorf("ingress: does not depend on %s, so `up ingress` would not start it", r)
			}
		}
	})
}

// checkCaddyfile checks that the Caddyfile proxies /webhook to exactly the replicas, with an
// active health check on /readyz, and exposes nothing else.
func checkCaddyfile(t *testing.T, file string, replicas []string) {
	t.Helper()
	src := string(readFile(t, file))
	if !regexp.MustCompile(`(?m)^\s*handle /webhook \{`).MatchString(src) {
		t.Errorf("%s: no `handle /webhook` block", file)
	}
	m := regexp.MustCompile(`(?m)^\s*reverse_proxy ([^{]+)\{`).FindStringSubmatch(src)
	if m == nil {
		t.Fatalf("%s: no reverse_proxy", file)
	}
	var want []string
	for _, r := range replicas {
		want = append(want, r+":8080")
	}
	if got := strings.Fields(m[1]); !sameSet(got, want) {
		t.Errorf("%s: reverse_proxy upstreams %v; want the cluster replicas %v", file, got, want)
	}
	if !regexp.MustCompile(`(?m)^\s*health_uri /readyz$`).MatchString(src) {
		t.Errorf("%s: no `health_uri /readyz`: deliveries would go to replicas that cannot store them", file)
	}
	if strings.Contains(src, "/metrics") && !strings.Contains(src, "respond 404") {
		t.Errorf("%s: /metrics must not be exposed", file)
	}
}

func hookdsIn(c composeFile, profile string) []string {
	var out []string
	for n, s := range c.Services {
		if s.Build != nil && s.Build.Dockerfile == "deploy/Dockerfile" && slices.Contains(s.Profiles, profile) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
