// Command procmem measures the memory of one processor replica handling events of many
// repositories: -repos distinct repositories (default 10,000, over 10 installations) with
// -events events each (default 3), a no-op handler.
//
// Each case runs in its own process (the command re-executes itself), which holds what a
// `hookd serve --roles processor` process holds: the embedded nats-server (broker.StartEmbedded,
// hookd's topology, fsync interval) and the consumer, connected over loopback TCP as hookd
// connects (broker.Connect). The events are published by a second child process, so neither
// the publisher's memory nor its CPU counts. Reported per case: the process's peak RSS (VmHWM
// from /proc at the end), its RSS and live Go heap (HeapAlloc after two GCs) once every event
// is handled and -settle has passed (then GC and memory returned to the OS: what stays), and the
// time to handle them.
//
// Cases (each a fresh process and a fresh store):
//
//	live/processor    the processor (processor.New + Run, default config) runs; events are
//	                  offered at -rate per second, round-robin over the repositories
//	live/floor        the same with the floor consumer instead: one plain pull consumer that
//	                  acknowledges every event at once (the server's and client's share)
//	backlog/processor every event is stored first; then the processor starts (a restart after
//	                  an outage: it reads ahead up to max_ack_pending events per partition)
//	backlog/floor     the same with the floor consumer
//
// With -server out, the nats-server runs in a third process (this command, -role server) and the
// measured process holds only the consumer, connected over loopback TCP: what a
// `hookd serve --roles process` replica against an external NATS (a cluster) holds.
//
//	go run ./bench/cmd/procmem                      # every case, 10,000 repositories × 3 events
//	go run ./bench/cmd/procmem -server out          # the replica without the server
//	go run ./bench/cmd/procmem -cases live/processor -repos 1000
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/bench/internal/procstat"
	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/payloads"
	"github.com/hookd/hookd/processor"
)

type options struct {
	repos, events, installations, rate int
	partitions                         int
	settle                             time.Duration
	server                             string // in: embedded in the measured process; out: its own process
}

// Result is one case, as the measuring child prints it (one JSON line).
type Result struct {
	Case      string  `json:"case"`
	Events    int     `json:"events"`
	Seconds   float64 `json:"seconds"`
	PeakRSS   int64   `json:"peak_rss"`
	RSS       int64   `json:"rss"`
	Heap      uint64  `json:"heap"`
	HeapSys   uint64  `json:"heap_sys"`
	RSSMaxRun int64   `json:"rss_max_sampled"`
	Reruns    int64   `json:"reruns"`
	Error     string  `json:"error,omitempty"`
}

func main() {
	var o options
	role := flag.String("role", "", "internal: measure (one case) or publish")
	cases := flag.String("cases", "live/floor,live/processor,backlog/floor,backlog/processor", "comma-separated cases, each run in its own process")
	oneCase := flag.String("case", "", "internal: the case a measure child runs")
	url := flag.String("url", "", "internal: the NATS URL a publish child publishes to")
	dir := flag.String("dir", "", "internal: the store directory of a server child")
	flag.IntVar(&o.repos, "repos", 10000, "distinct repositories")
	flag.IntVar(&o.events, "events", 3, "events per repository")
	flag.IntVar(&o.installations, "installations", 10, "installations the repositories belong to")
	flag.IntVar(&o.rate, "rate", 2000, "live cases: events offered per second")
	flag.IntVar(&o.partitions, "partitions", 16, "nats.partitions")
	flag.StringVar(&o.server, "server", "in", "where the nats-server runs: in (embedded in the measured process, as `hookd serve`) or out (its own process)")
	flag.DurationVar(&o.settle, "settle", 12*time.Second, "wait after the last event is handled before measuring what stays (the file store drops block caches after 10s)")
	flag.Parse()
	var err error
	switch *role {
	case "":
		err = orchestrate(o, strings.Split(*cases, ","))
	case "measure":
		err = measure(o, *oneCase)
	case "publish":
		err = publish(o, *url, *oneCase)
	case "server":
		err = serve(o, *dir)
	default:
		err = fmt.Errorf("unknown -role %q", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "procmem:", err)
		os.Exit(1)
	}
}

func childArgs(o options, extra ...string) []string {
	return append([]string{
		"-repos", strconv.Itoa(o.repos), "-events", strconv.Itoa(o.events),
		"-installations", strconv.Itoa(o.installations), "-rate", strconv.Itoa(o.rate),
		"-partitions", strconv.Itoa(o.partitions), "-settle", o.settle.String(), "-server", o.server,
	}, extra...)
}

func orchestrate(o options, cases []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("procmem: %d repositories × %d events over %d installations, %d partitions; live rate %d/s; nats-server %s the measured process\n",
		o.repos, o.events, o.installations, o.partitions, o.rate, map[string]string{"in": "in", "out": "outside"}[o.server])
	var results []Result
	for _, c := range cases {
		cmd := exec.Command(self, childArgs(o, "-role", "measure", "-case", c)...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("case %s: %w", c, err)
		}
		var r Result
		if err := json.Unmarshal(lastLine(out), &r); err != nil {
			return fmt.Errorf("case %s: %w (%q)", c, err, out)
		}
		fmt.Printf("  %-18s %6d events in %6.2fs  peak RSS %6s MiB  RSS settled %6s MiB  heap settled %6s MiB  re-runs %d %s\n",
			r.Case, r.Events, r.Seconds, procstat.MiB(r.PeakRSS), procstat.MiB(r.RSS), procstat.MiB(int64(r.Heap)), r.Reruns, r.Error)
		results = append(results, r)
	}
	fmt.Println("\n| case | events | seconds | peak RSS MiB | RSS settled MiB | Go heap settled MiB |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Printf("| %s | %d | %.1f | %s | %s | %s |\n", r.Case, r.Events, r.Seconds, procstat.MiB(r.PeakRSS), procstat.MiB(r.RSS), procstat.MiB(int64(r.Heap)))
	}
	return nil
}

func lastLine(b []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return []byte(lines[len(lines)-1])
}

// measure runs one case in this process and prints its Result as JSON.
func measure(o options, c string) error {
	mode, consumer, ok := strings.Cut(c, "/")
	if !ok || (mode != "live" && mode != "backlog") || (consumer != "processor" && consumer != "floor") {
		return fmt.Errorf("case %q: want live|backlog / processor|floor", c)
	}
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	cfg, url, stop, err := startServer(o, log)
	if err != nil {
		return err
	}
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc, js, err := broker.Open(ctx, url, cfg, "procmem", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	total := o.repos * o.events
	seen := make([]atomic.Bool, total)
	var n, reruns atomic.Int64
	done := make(chan struct{})
	record := func(delivery string) {
		k := strings.LastIndexByte(delivery, '-')
		i, err := strconv.Atoi(delivery[k+1:])
		if err != nil || i < 0 || i >= total || seen[i].Swap(true) {
			reruns.Add(1)
			return
		}
		if n.Add(1) == int64(total) {
			close(done)
		}
	}
	runPublisher := func() error {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		cmd := exec.Command(self, childArgs(o, "-role", "publish", "-url", url, "-case", c)...)
		cmd.Stderr, cmd.Stdout = os.Stderr, os.Stderr
		return cmd.Run()
	}

	var t0 time.Time
	pubErr := make(chan error, 1)
	if mode == "backlog" {
		if err := runPublisher(); err != nil {
			return fmt.Errorf("publisher: %w", err)
		}
	}
	t0 = time.Now()
	if consumer == "floor" {
		cons, err := js.CreateOrUpdateConsumer(ctx, broker.StreamEvents, jetstream.ConsumerConfig{
			Durable: "floor", FilterSubject: event.EventsPrefix + ".>", AckPolicy: jetstream.AckExplicitPolicy,
			MaxAckPending: 8192, AckWait: 30 * time.Second,
		})
		if err != nil {
			return err
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			_ = m.Ack()
			record(m.Headers().Get(event.HeaderDelivery))
		}, jetstream.PullMaxMessages(500))
		if err != nil {
			return err
		}
		defer cc.Stop()
	} else {
		var mux processor.Mux
		if err := mux.HandleFunc("noop", processor.On("*"), func(_ context.Context, ev *processor.Event) error {
			record(ev.Meta.Delivery)
			return nil
		}); err != nil {
			return err
		}
		p, err := processor.New(processor.Config{}, processor.Deps{JS: js, Mux: &mux, Log: log, Registerer: prometheus.NewRegistry(), Partitions: o.partitions})
		if err != nil {
			return err
		}
		runDone := make(chan error, 1)
		go func() { runDone <- p.Run(ctx) }()
		defer func() { cancel(); <-runDone }()
	}
	if mode == "live" {
		go func() { pubErr <- runPublisher() }()
	}
	// Sample RSS every 100 ms while waiting (VmHWM is the authoritative peak).
	var sampled int64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	progress, lastN := time.Now(), int64(-1)
	res := Result{Case: c, Events: total}
wait:
	for {
		select {
		case <-done:
			break wait
		case err := <-pubErr:
			if err != nil {
				return fmt.Errorf("publisher: %w", err)
			}
			pubErr = nil
		case <-tick.C:
			if m, err := procstat.ReadMemory(0); err == nil && m.RSS > sampled {
				sampled = m.RSS
			}
			if cur := n.Load(); cur != lastN {
				progress, lastN = time.Now(), cur
			} else if time.Since(progress) > 60*time.Second {
				res.Error = fmt.Sprintf("stalled: %d of %d events handled, none for 60s", cur, total)
				break wait
			}
		}
	}
	res.Seconds = time.Since(t0).Seconds()
	res.Reruns = reruns.Load()
	res.RSSMaxRun = sampled
	mem, err := procstat.ReadMemory(0)
	if err != nil {
		return err
	}
	res.PeakRSS = mem.Peak
	// What stays: wait for the file store's block caches to expire (10 s), then collect and
	// return freed memory to the OS.
	time.Sleep(o.settle)
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.Heap, res.HeapSys = ms.HeapAlloc, ms.HeapSys
	if mem, err = procstat.ReadMemory(0); err != nil {
		return err
	}
	res.RSS = mem.RSS
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	return nil
}

// publish stores every event as ingest stores them (subject per delivery, metadata headers, no
// Nats-Msg-Id), round-robin over the repositories: paced at -rate for live cases, as fast as
// the async window allows for backlog cases.
func publish(o options, url, c string) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2048))
	if err != nil {
		return err
	}
	base := payloads.Get("issue_comment.created")
	type repo struct {
		meta event.Meta
		body []byte
	}
	repos := make([]repo, o.repos)
	perInst := (o.repos + o.installations - 1) / o.installations
	for i := range repos {
		inst := int64(1 + i/perInst)
		name := fmt.Sprintf("org%d/r%05d", inst, i)
		b, err := procstat.Payload(base, inst, int64(100000+i), name)
		if err != nil {
			return err
		}
		m := event.Meta{Event: "issue_comment", Source: event.SourceWebhook}
		if err := event.ParsePayload(&m, b); err != nil {
			return err
		}
		repos[i] = repo{m, b}
	}
	live := strings.HasPrefix(c, "live/")
	total := o.repos * o.events
	w := bufio.NewWriter(os.Stderr)
	defer w.Flush()
	start := time.Now()
	for i := range total {
		if live {
			due := start.Add(time.Duration(int64(i) * int64(time.Second) / int64(o.rate)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		r := repos[i%len(repos)]
		m := r.meta
		m.Delivery = fmt.Sprintf("m-%08d", i)
		m.ReceivedAt = time.Now().UTC()
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: r.body}, jetstream.WithStallWait(30*time.Second)); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		return errors.New("async publishes not acknowledged within 60s")
	}
	fmt.Fprintf(w, "procmem: published %d events in %.1fs\n", total, time.Since(start).Seconds())
	return nil
}

// startServer starts the nats-server: embedded here (-server in), or as a child process running
// this command with -role server (-server out). stop shuts it down and removes its store.
func startServer(o options, log zerolog.Logger) (broker.Config, string, func(), error) {
	dir, err := os.MkdirTemp("", "procmem-")
	if err != nil {
		return broker.Config{}, "", nil, err
	}
	cfg := broker.Config{DataDir: dir, Listen: "127.0.0.1:0", Sync: broker.SyncInterval, Partitions: o.partitions}
	cfg.Defaults()
	if o.server != "out" {
		srv, err := broker.StartEmbedded(cfg, log)
		if err != nil {
			os.RemoveAll(dir)
			return cfg, "", nil, err
		}
		return cfg, srv.ClientURL(), func() { srv.Shutdown(); srv.WaitForShutdown(); os.RemoveAll(dir) }, nil
	}
	self, err := os.Executable()
	if err != nil {
		return cfg, "", nil, err
	}
	cmd := exec.Command(self, childArgs(o, "-role", "server", "-dir", dir)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return cfg, "", nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return cfg, "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return cfg, "", nil, err
	}
	stop := func() { in.Close(); _ = cmd.Wait(); os.RemoveAll(dir) }
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return cfg, "", nil, fmt.Errorf("nats-server child: %w", err)
	}
	return cfg, strings.TrimSpace(line), stop, nil
}

// serve is the -role server child: the embedded nats-server on a store in dir, its client URL
// printed on stdout, until stdin closes.
func serve(o options, dir string) error {
	cfg := broker.Config{DataDir: dir, Listen: "127.0.0.1:0", Sync: broker.SyncInterval, Partitions: o.partitions}
	cfg.Defaults()
	srv, err := broker.StartEmbedded(cfg, zerolog.New(os.Stderr).Level(zerolog.WarnLevel))
	if err != nil {
		return err
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	fmt.Println(srv.ClientURL())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the measuring process closes stdin or exits
	return nil
}
