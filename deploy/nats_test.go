package deploy

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/config"
	"github.com/hookd/hookd/internal/event"
)

// The NATS servers the deployments run are configured in files hookd does not load itself:
// compose's command lines and nats.conf, and the NATS chart's values. These tests start
// nats-server (the module's version, in process) the way those files configure it and check
// that hookd's topology can be created on it and that a delivery as large as hookd accepts can
// be stored.

// TestComposeNATSCluster runs the compose cluster profile's three nats-server nodes from their
// command lines and nats.conf (host names and ports moved to loopback), waits for the
// monitoring /healthz the hookd services wait for, and creates hookd's streams and buckets
// with the replicas and URLs of compose's hookd-1.
func TestComposeNATSCluster(t *testing.T) {
	// Not parallel: its nodes listen on ports picked in advance, and a server of a parallel test
	// listening on a random port could take one of them meanwhile.
	c := loadCompose(t)
	var nodes []string
	for name, s := range c.Services {
		if strings.Contains(s.Image, "nats") {
			nodes = append(nodes, name)
		}
	}
	sort.Strings(nodes)
	if len(nodes) == 0 {
		t.Fatal("no nats services")
	}
	type addrs struct{ client, cluster, monitor int }
	ports := map[string]addrs{}
	for _, n := range nodes {
		ports[n] = addrs{brokertest.FreePort(t), brokertest.FreePort(t), brokertest.FreePort(t)}
	}
	// local maps a container address host:port of the compose network to loopback.
	local := func(hostport string) string {
		host, port, _ := strings.Cut(hostport, ":")
		p, ok := ports[host]
		switch {
		case !ok:
			t.Fatalf("%s is not a nats service of compose.yaml", hostport)
		case port == "6222":
			return fmt.Sprintf("127.0.0.1:%d", p.cluster)
		case port == "4222":
			return fmt.Sprintf("127.0.0.1:%d", p.client)
		}
		t.Fatalf("%s: unexpected port", hostport)
		return ""
	}
	localURLs := func(urls string) string {
		var out []string
		for _, u := range strings.Split(urls, ",") {
			rest, ok := strings.CutPrefix(u, "nats://")
			if !ok {
				t.Fatalf("%s is not a nats:// URL", u)
			}
			out = append(out, "nats://"+local(rest))
		}
		return strings.Join(out, ",")
	}

	for _, n := range nodes {
		s := c.Services[n]
		p := ports[n]
		args := []string{"--addr=127.0.0.1", "--port=" + strconv.Itoa(p.client)}
		for _, a := range s.Command {
			name, val, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			switch name {
			case "config":
				src, ok := s.mounts()[val]
				if !ok {
					t.Fatalf("%s: --config=%s is not mounted", n, val)
				}
				a = "--config=" + filepath.Join(composeDir, src)
			case "store_dir":
				if _, ok := s.mounts()[val]; !ok {
					t.Errorf("%s: --store_dir=%s is not a mounted volume", n, val)
				}
				a = "--store_dir=" + t.TempDir()
			case "cluster":
				if !strings.HasSuffix(val, ":6222") {
					t.Errorf("%s: --cluster=%s; the routes use port 6222", n, val)
				}
				a = fmt.Sprintf("--cluster=nats://127.0.0.1:%d", p.cluster)
			case "routes":
				a = "--routes=" + localURLs(val)
			case "http_port":
				if s.Healthcheck == nil {
					t.Fatalf("%s: no healthcheck; the hookd services wait for it", n)
				}
				if !strings.Contains(strings.Join(s.Healthcheck.Test, " "), ":"+val+"/healthz") {
					t.Errorf("%s: the healthcheck does not probe --http_port=%s", n, val)
				}
				a = "--http_port=" + strconv.Itoa(p.monitor)
			}
			args = append(args, a)
		}
		fs := flag.NewFlagSet(n, flag.ContinueOnError)
		noop := func() {}
		opts, err := server.ConfigureOptions(fs, args, noop, noop, noop)
		if err != nil {
			t.Fatalf("%s: nats-server refuses its command line %v: %v", n, s.Command, err)
		}
		opts.NoSigs, opts.NoLog = true, true
		startNATS(t, n, opts)
	}
	for _, n := range nodes {
		waitHealthz(t, n, ports[n].monitor)
	}

	svc := c.Services["hookd-1"]
	env := map[string]string{}
	for k, v := range svc.Environment {
		env[k] = interpolate(t, v, dotenv(t))
	}
	env["HOOKD_CONFIG"] = filepath.Join(composeDir, svc.mounts()[env["HOOKD_CONFIG"]])
	env["HOOKD_NATS_URL"] = localURLs(env["HOOKD_NATS_URL"])
	env["HOOKD_GITHUB_PRIVATE_KEY_FILE"] = "/run/secrets/key.pem"
	cfg, err := config.Load(env["HOOKD_CONFIG"], lookup(env))
	if err != nil {
		t.Fatal(err)
	}
	checkHookdTopology(t, cfg)
}

// TestChartNATSConfig starts a nats-server with the configuration the NATS chart (1.x)
// renders from this chart's nats.config values, as its files/config templates do: the
// top-level merge, and the jetstream block from fileStore, memoryStore and merge. One server
// stands for each of the cluster's nodes; TestHelmChart checks the cluster size.
func TestChartNATSConfig(t *testing.T) {
	t.Parallel()
	values := loadValues(t)
	nc, _ := dig(t, values, "nats.config").(map[string]any)
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:-1\n")
	writeNATSConf(t, &b, nc["merge"])
	js, _ := nc["jetstream"].(map[string]any)
	if js["enabled"] != true {
		t.Fatal("values.yaml: nats.config.jetstream.enabled must be true")
	}
	b.WriteString("jetstream {\n")
	if fsv, _ := js["fileStore"].(map[string]any); fsv["enabled"] == true {
		fmt.Fprintf(&b, "store_dir: %q\n", t.TempDir())
		if pvc, _ := fsv["pvc"].(map[string]any); fsv["maxSize"] != nil {
			fmt.Fprintf(&b, "max_file_store: %v\n", fsv["maxSize"])
		} else if pvc["enabled"] == true {
			fmt.Fprintf(&b, "max_file_store: %v\n", pvc["size"])
		}
	} else {
		b.WriteString("max_file_store: 0\n")
	}
	// The NATS chart's default memoryStore is {enabled: false}, which it renders as
	// max_memory_store: 0.
	if ms, _ := js["memoryStore"].(map[string]any); ms["enabled"] == true {
		if ms["maxSize"] != nil {
			fmt.Fprintf(&b, "max_memory_store: %v\n", ms["maxSize"])
		}
	} else {
		b.WriteString("max_memory_store: 0\n")
	}
	writeNATSConf(t, &b, js["merge"])
	b.WriteString("}\n")

	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server refuses the configuration the chart's values give:\n%s\n%v", b.String(), err)
	}
	opts.NoSigs, opts.NoLog = true, true
	if !opts.SyncAlways {
		t.Error("values.yaml: the NATS servers do not fsync every write (nats.config.jetstream.merge.sync_interval: always)")
	}
	srv := startNATS(t, "chart", opts)

	env := map[string]string{"HOOKD_NATS_URL": srv.ClientURL(), "HOOKD_NATS_REPLICAS": "1"}
	cfgFile := filepath.Join(t.TempDir(), "hookd.yaml")
	if err := os.WriteFile(cfgFile, []byte(yamlScalar(t, dig(t, values, "config"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile, lookup(env))
	if err != nil {
		t.Fatal(err)
	}
	checkHookdTopology(t, cfg)
}

// writeNATSConf writes a values map as NATS configuration entries (scalars only).
func writeNATSConf(t *testing.T, b *strings.Builder, v any) {
	t.Helper()
	m, _ := v.(map[string]any)
	for _, k := range sortedKeys(m) {
		switch x := m[k].(type) {
		case string:
			fmt.Fprintf(b, "%s: %q\n", k, x)
		case int, int64, float64, bool:
			fmt.Fprintf(b, "%s: %v\n", k, x)
		default:
			t.Fatalf("values.yaml: NATS setting %s is a %T; extend writeNATSConf", k, x)
		}
	}
}

// checkHookdTopology connects as hookd does, creates its streams and buckets (broker.Ensure)
// and stores a delivery of the largest size hookd's ingest accepts.
func checkHookdTopology(t *testing.T, cfg *config.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, js, err := broker.Open(ctx, cfg.NATS.URL, cfg.NATS, "deploy-test", zerolog.Nop())
	if err != nil {
		t.Fatalf("hookd cannot create its streams and buckets here: %v", err)
	}
	defer nc.Close()
	// Headers ride along with the body: leave them 64 KiB.
	if need := cfg.HTTP.MaxBodyBytes + 64<<10; nc.MaxPayload() < need {
		t.Errorf("the NATS server's max_payload is %d bytes; hookd accepts deliveries of %d (http.max_body_bytes, GitHub's cap) and would answer 503 to every larger one: set max_payload to at least %d", nc.MaxPayload(), cfg.HTTP.MaxBodyBytes, need)
		return
	}
	msg := nats.NewMsg(event.InSubject(event.Tenant{}, "push", "deploy-test-delivery"))
	msg.Data = make([]byte, cfg.HTTP.MaxBodyBytes)
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithExpectStream(broker.StreamEvents)); err != nil {
		t.Errorf("storing a %d-byte delivery: %v", len(msg.Data), err)
	}
}

// startNATS starts an in-process nats-server and stops it at cleanup.
func startNATS(t *testing.T, name string, opts *server.Options) *server.Server {
	t.Helper()
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatalf("%s: nats-server not ready within 30s", name)
	}
	return srv
}

// waitHealthz polls a node's monitoring /healthz, as compose's healthcheck does, until it
// answers 200: JetStream up and the cluster's meta group healthy.
func waitHealthz(t *testing.T, name string, port int) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
	deadline := time.Now().Add(45 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %s did not answer 200 within 45s (last: %s)", name, url, last)
}
