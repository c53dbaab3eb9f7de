// Command procbench measures the processor end to end — from the moment a delivery is stored as
// ingest stores it to the moment a no-op handler runs — for one and for several processor
// replicas, against the floor: a plain JetStream consumer that acknowledges every message at once.
//
// Targets (-targets):
//
//	floor  one plain durable pull consumer on hookd.events.> (explicit acks, max_ack_pending
//	       8192) whose callback reads Hookd-Received-At and acknowledges: what JetStream costs.
//	p1     one processor.Processor (processor.New + Run, default config: concurrency 64,
//	       max_ack_pending 8192) with one no-op handler on every event.
//	p3     three processor.Processors in this process, each on its own NATS connection; Run
//	       shares the partitions through the hookd_members KV bucket. Measuring starts once every
//	       partition is owned and the assignment has been stable for -settle.
//
// Scenarios (-scenarios):
//
//	burst   -backlog events over -tenants repositories are published as fast as one async
//	        publisher goes (window 4096) while the consumers run. Reported: the time from the
//	        first publish until the last event is handled, events/s over it, and the publisher's
//	        own time (when it is close to the drain time, the publisher is the bound).
//	backlog -backlog events are stored first; then the consumers start (the replicas of p3 all at
//	        once, sharing the partitions as they join). Reported: the time from the start of the
//	        consumers until the last event is handled, events/s over it: a restart with a backlog.
//	steady  events are offered at -rate per second for -duration (paced, one async publisher),
//	        round-robin over the tenants. Reported: p50/p99 of handler time minus
//	        Hookd-Received-At (set just before the publish, as ingest sets it just before storing),
//	        over the events received after the first second.
//
// Each (round, scenario, target) runs on a fresh embedded nats-server (broker.StartEmbedded,
// hookd's topology from broker.Ensure, -sync fsync policy, -partitions) in a new temporary
// directory; the rounds alternate the targets (floor, p1, p3, floor, p1, p3, ...). Publisher,
// nats-server and consumers share this one process and the machine's cores: CPU per event is
// the whole process's utime+stime over the window divided by the events.
//
// Events are stored the way ingest stores them: the real issue_comment.created payload
// (internal/payloads, 14.6 KB) with an installation and repository injected, subject
// hookd.in.<inst>.<repo>.issue_comment.<delivery>, hookd's metadata headers, no Nats-Msg-Id.
//
//	go run ./bench/cmd/procbench                                   # burst and steady, 1 round
//	go run ./bench/cmd/procbench -scenarios burst -rounds 3
//	go run ./bench/cmd/procbench -scenarios steady -rounds 2
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
	targets    []string
	scenarios  []string
	rounds     int
	backlog    int
	tenants    int
	rate       int
	duration   time.Duration
	partitions int
	sync       string
	settle     time.Duration
	maxPending int64
	stall      time.Duration
	readAhead  int64
}

func main() {
	var o options
	targets := flag.String("targets", "floor,p1,p3", "comma-separated targets: floor, p1, p3 (pN: N processor replicas)")
	scenarios := flag.String("scenarios", "burst,steady", "comma-separated scenarios: burst, steady")
	flag.IntVar(&o.rounds, "rounds", 1, "rounds; each runs every scenario on every target")
	flag.IntVar(&o.backlog, "backlog", 20000, "burst: events published")
	flag.IntVar(&o.tenants, "tenants", 200, "repositories the events are spread over (round robin)")
	flag.IntVar(&o.rate, "rate", 2000, "steady: events offered per second")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "steady: how long events are offered")
	flag.IntVar(&o.partitions, "partitions", 16, "nats.partitions")
	flag.StringVar(&o.sync, "sync", broker.SyncInterval, "nats.sync: interval or always")
	flag.DurationVar(&o.settle, "settle", 2*time.Second, "how long the replicas' partition assignment must be stable before measuring")
	flag.Int64Var(&o.maxPending, "max-pending", 0, "raise nats-server's per-client max_pending to this many bytes (0: the embedded server as hookd starts it, 64 MiB)")
	flag.Int64Var(&o.readAhead, "read-ahead", 0, "processor.read_ahead_bytes (0: the default)")
	flag.DurationVar(&o.stall, "stall", 30*time.Second, "a round in which no event is handled for this long is reported as stalled and left out of the medians")
	flag.Parse()
	o.targets = strings.Split(*targets, ",")
	o.scenarios = strings.Split(*scenarios, ",")
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "procbench:", err)
		os.Exit(1)
	}
}

// result is one (round, scenario, target).
type result struct {
	scenario, target string
	events           int
	elapsed          time.Duration // burst: first publish → last handled; steady: first publish → last handled
	publish          time.Duration // the publisher's own time
	p50, p99         time.Duration
	cpu              float64 // process CPU seconds over the window
	settle           time.Duration
	reruns           int64
	stalled          int64 // > 0: the round stalled after this many events; not in the medians
}

func (r result) rate() float64 { return float64(r.events) / r.elapsed.Seconds() }
func (r result) pubRate() float64 {
	return float64(r.events) / r.publish.Seconds()
}
func (r result) cpuPerEvent() float64 { return r.cpu / float64(r.events) * 1e6 }

func run(o options) error {
	body := payloads.Get("issue_comment.created")
	if body == nil {
		return errors.New("payload issue_comment.created missing")
	}
	tenants := make([]tenant, o.tenants)
	for i := range tenants {
		name := fmt.Sprintf("acme/r%04d", i)
		b, err := procstat.Payload(body, 1, int64(1000+i), name)
		if err != nil {
			return err
		}
		m := event.Meta{Event: "issue_comment", Source: event.SourceWebhook}
		if err := event.ParsePayload(&m, b); err != nil {
			return err
		}
		tenants[i] = tenant{meta: m, body: b}
	}
	fmt.Printf("procbench: targets %v, scenarios %v, %d round(s); %d partitions, sync %s; payload %d bytes\n",
		o.targets, o.scenarios, o.rounds, o.partitions, o.sync, len(tenants[0].body))
	var all []result
	for round := range o.rounds {
		for _, sc := range o.scenarios {
			for _, tg := range o.targets {
				r, err := runOne(o, round, sc, tg, tenants)
				if err != nil {
					return fmt.Errorf("round %d %s %s: %w", round+1, sc, tg, err)
				}
				if r.stalled == 0 {
					fmt.Printf("  round %d %-6s %-5s events %6d  %7.0f events/s over %6.2fs (publisher %5.2fs, %7.0f/s)  p50 %7.2f ms  p99 %7.2f ms  CPU %5.0f µs/event  settle %.1fs  re-runs %d\n",
						round+1, sc, tg, r.events, r.rate(), r.elapsed.Seconds(), r.publish.Seconds(), r.pubRate(),
						ms(r.p50), ms(r.p99), r.cpuPerEvent(), r.settle.Seconds(), r.reruns)
				}
				all = append(all, r)
				if r.stalled > 0 {
					fmt.Printf("  round %d %-6s %-5s STALLED after %d of %d events (see stderr)\n", round+1, sc, tg, r.stalled, r.events)
					continue
				}
			}
		}
	}
	report(o, all)
	return nil
}

type tenant struct {
	meta event.Meta
	body []byte
}

// logger writes warnings and errors (of nats-server, the connections and the processors) to
// stderr, so that a round that goes wrong says why.
// logger logs warnings and errors, or the level in PROCBENCH_LOG (e.g. info: partition
// assignments and pins, to line them up with slowReport's clusters).
func logger() zerolog.Logger {
	level := zerolog.WarnLevel
	if l, err := zerolog.ParseLevel(os.Getenv("PROCBENCH_LOG")); err == nil && l != zerolog.NoLevel {
		level = l
	}
	return zerolog.New(os.Stderr).Level(level).With().Timestamp().Logger()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// recorder collects handler latencies without locks. It counts distinct deliveries (by the
// index in the delivery id): a handler that runs again for the same event (a re-delivery) is
// counted in reruns, not twice.
type recorder struct {
	lats    []time.Duration
	seen    []atomic.Bool
	n       atomic.Int64 // distinct events handled
	reruns  atomic.Int64
	want    int64
	done    chan struct{}
	last    atomic.Int64 // unix nanos of the last first-time handling
	skipPre time.Time    // latencies of events received before this are not kept
}

func newRecorder(want int) *recorder {
	return &recorder{lats: make([]time.Duration, want), seen: make([]atomic.Bool, want), want: int64(want), done: make(chan struct{})}
}

func (r *recorder) add(delivery string, receivedAt time.Time) {
	now := time.Now()
	k := strings.LastIndexByte(delivery, '-')
	idx, err := strconv.Atoi(delivery[k+1:])
	if err != nil || idx < 0 || idx >= len(r.seen) || r.seen[idx].Swap(true) {
		r.reruns.Add(1)
		return
	}
	lat := now.Sub(receivedAt)
	if receivedAt.Before(r.skipPre) {
		lat = -1
	}
	r.lats[idx] = lat
	r.last.Store(now.UnixNano())
	if r.n.Add(1) == r.want {
		close(r.done)
	}
}

// missing lists up to max indexes not handled yet.
func (r *recorder) missing(max int) []int {
	var out []int
	for i := range r.seen {
		if !r.seen[i].Load() {
			out = append(out, i)
			if len(out) == max {
				break
			}
		}
	}
	return out
}

func (r *recorder) percentiles() (p50, p99 time.Duration) {
	var ls []time.Duration
	for _, l := range r.lats {
		if l >= 0 {
			ls = append(ls, l)
		}
	}
	if len(ls) == 0 {
		return 0, 0
	}
	slices.Sort(ls)
	return ls[len(ls)/2], ls[(len(ls)*99)/100]
}

// world is one fresh nats-server with hookd's topology and a publisher connection.
type world struct {
	srv *server.Server
	dir string
	cfg broker.Config
	pub *nats.Conn
	js  jetstream.JetStream
}

func newWorld(o options) (*world, error) {
	dir, err := os.MkdirTemp("", "procbench-")
	if err != nil {
		return nil, err
	}
	cfg := broker.Config{DataDir: dir, Listen: "127.0.0.1:0", Sync: o.sync, Partitions: o.partitions}
	cfg.Defaults()
	srv, err := startServer(cfg, o.maxPending)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	w := &world{srv: srv, dir: dir, cfg: cfg}
	if w.pub, w.js, err = w.connect(); err != nil {
		w.close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := broker.Ensure(ctx, w.js, cfg); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// slowConsumers passes nats-server's slow-consumer notices (which broker's logger adapter logs
// at debug) and drops its other debug output.
type slowConsumers struct{}

func (slowConsumers) Run(e *zerolog.Event, level zerolog.Level, msg string) {
	if level == zerolog.DebugLevel && !strings.Contains(msg, "Slow Consumer") {
		e.Discard()
	}
}

// startServer is broker.StartEmbedded, or — with maxPending > 0 — the same server options
// with the per-client outbound limit (max_pending, nats-server's default 64 MiB) raised: to
// show what the slow-consumer disconnects a large backlog causes cost (see -max-pending).
// nats-server's notices (slow consumers among them) are logged as warnings.
func startServer(cfg broker.Config, maxPending int64) (*server.Server, error) {
	if maxPending == 0 {
		return broker.StartEmbedded(cfg, logger().Level(zerolog.DebugLevel).Hook(slowConsumers{}))
	}
	opts := &server.Options{
		ServerName: "hookd-embedded", Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: filepath.Join(cfg.DataDir, "jetstream"), SyncAlways: cfg.Sync == broker.SyncAlways,
		SyncInterval: cfg.SyncEvery, NoSigs: true, MaxPayload: 32 << 20, JetStreamMaxMemory: 256 << 20,
		MaxPending: maxPending,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats-server not ready within 30s")
	}
	return srv, nil
}

func (w *world) connect() (*nats.Conn, jetstream.JetStream, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := broker.Connect(ctx, w.srv.ClientURL(), w.cfg, "procbench", logger())
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func (w *world) close() {
	if w.pub != nil {
		w.pub.Close()
	}
	w.srv.Shutdown()
	w.srv.WaitForShutdown()
	os.RemoveAll(w.dir)
}

// consumers is a running target.
type consumers struct {
	stop   func() error
	settle time.Duration
}

func startTarget(w *world, o options, target string, rec *recorder, settle bool) (*consumers, error) {
	if target == "floor" {
		return startFloor(w, rec)
	}
	var n int
	if _, err := fmt.Sscanf(target, "p%d", &n); err != nil || n < 1 {
		return nil, fmt.Errorf("unknown target %q (want floor or pN)", target)
	}
	return startReplicas(w, o, n, rec, settle)
}

func startFloor(w *world, rec *recorder) (*consumers, error) {
	nc, js, err := w.connect()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, broker.StreamEvents, jetstream.ConsumerConfig{
		Durable: "floor", FilterSubject: event.EventsPrefix + ".>", DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 8192, AckWait: 30 * time.Second,
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		at, err := time.Parse(time.RFC3339Nano, m.Headers().Get(event.HeaderReceivedAt))
		if err != nil {
			at = time.Time{}
		}
		_ = m.Ack()
		rec.add(m.Headers().Get(event.HeaderDelivery), at)
	}, jetstream.PullMaxMessages(500))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &consumers{stop: func() error { cc.Stop(); nc.Close(); return nil }}, nil
}

func startReplicas(w *world, o options, n int, rec *recorder, settle bool) (*consumers, error) {
	var mux processor.Mux
	if err := mux.HandleFunc("noop", processor.On("*"), func(_ context.Context, ev *processor.Event) error {
		rec.add(ev.Meta.Delivery, ev.Meta.ReceivedAt)
		return nil
	}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		errs  []error
		conns []*nats.Conn
		regs  []*prometheus.Registry
	)
	stop := func() error {
		cancel()
		wg.Wait()
		for _, nc := range conns {
			nc.Close()
		}
		errMu.Lock()
		defer errMu.Unlock()
		return errors.Join(errs...)
	}
	for range n {
		nc, js, err := w.connect()
		if err != nil {
			_ = stop()
			return nil, err
		}
		conns = append(conns, nc)
		reg := prometheus.NewRegistry()
		regs = append(regs, reg)
		p, err := processor.New(processor.Config{ReadAheadBytes: o.readAhead}, processor.Deps{
			JS: js, Mux: &mux, Log: logger(),
			Registerer: reg, Partitions: o.partitions,
		})
		if err != nil {
			_ = stop()
			return nil, err
		}
		wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
			}
		})
	}
	if !settle {
		return &consumers{stop: stop}, nil
	}
	t0 := time.Now()
	if err := waitSettled(regs, o.partitions, o.settle, 60*time.Second); err != nil {
		_ = stop()
		return nil, err
	}
	return &consumers{stop: stop, settle: time.Since(t0)}, nil
}

// waitSettled waits until every partition is owned by exactly the replicas' shares (each owns
// floor or ceil of partitions/replicas) and that has not changed for stable.
func waitSettled(regs []*prometheus.Registry, partitions int, stable, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var since time.Time
	var last []int
	for time.Now().Before(deadline) {
		owned := make([]int, len(regs))
		sum := 0
		fair := true
		for i, reg := range regs {
			owned[i] = ownedPartitions(reg)
			sum += owned[i]
			if owned[i] < partitions/len(regs) || owned[i] > (partitions+len(regs)-1)/len(regs) {
				fair = false
			}
		}
		switch {
		case sum != partitions || !fair:
			since, last = time.Time{}, nil
		case !slices.Equal(owned, last):
			since, last = time.Now(), owned
		case time.Since(since) >= stable:
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("replicas did not settle within %s (partitions owned: %v)", timeout, last)
}

func ownedPartitions(reg *prometheus.Registry) int {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() == "hookd_processor_partitions_owned" {
			for _, m := range mf.GetMetric() {
				return int(m.GetGauge().GetValue())
			}
		}
	}
	return 0
}

func runOne(o options, round int, scenario, target string, tenants []tenant) (result, error) {
	w, err := newWorld(o)
	if err != nil {
		return result{}, err
	}
	defer w.close()
	var want int
	switch scenario {
	case "burst", "backlog":
		want = o.backlog
	case "steady":
		want = int(o.duration.Seconds() * float64(o.rate))
	default:
		return result{}, fmt.Errorf("unknown scenario %q", scenario)
	}
	rec := newRecorder(want)
	prefix := fmt.Sprintf("r%d-%s-%s", round, scenario, target)
	pubErr := make(chan error, 1)
	var pubDone time.Duration
	if scenario == "backlog" {
		// Store everything first; the clock starts when the consumers start.
		p0 := time.Now()
		if err := publish(w.js, prefix, tenants, want, 0, p0); err != nil {
			return result{}, err
		}
		pubDone = time.Since(p0)
	}
	cpu0, _ := procstat.CPUSeconds(0)
	t0 := time.Now()
	c, err := startTarget(w, o, target, rec, scenario != "backlog")
	if err != nil {
		return result{}, err
	}
	defer func() { _ = c.stop() }()
	if scenario != "backlog" {
		cpu0, _ = procstat.CPUSeconds(0)
		t0 = time.Now()
		if scenario == "steady" {
			rec.skipPre = t0.Add(time.Second)
		}
		go func() {
			if scenario == "burst" {
				pubErr <- publish(w.js, prefix, tenants, want, 0, t0)
			} else {
				pubErr <- publish(w.js, prefix, tenants, want, o.rate, t0)
			}
		}()
	}
	timeout := time.After(o.duration + 120*time.Second)
	for pubDone == 0 && scenario != "backlog" {
		select {
		case err := <-pubErr:
			if err != nil {
				return result{}, err
			}
			pubDone = time.Since(t0)
		case <-timeout:
			return result{}, fmt.Errorf("publisher did not finish")
		}
	}
	// Wait for every event; a round where nothing new is handled for -stall is reported as
	// stalled (with the consumers' and fences' state) and left out of the medians.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	progress, lastN := time.Now(), int64(-1)
wait:
	for {
		select {
		case <-rec.done:
			break wait
		case <-tick.C:
			if n := rec.n.Load(); n != lastN {
				progress, lastN = time.Now(), n
			} else if time.Since(progress) > o.stall {
				fmt.Fprintf(os.Stderr, "STALLED: %s %s round %d: %d of %d events handled, none for %s (%d handler re-runs); first missing %v; consumers:\n%s",
					scenario, target, round+1, n, want, o.stall, rec.reruns.Load(), rec.missing(10), consumerStates(w)+fenceStates(w, rec))
				return result{scenario: scenario, target: target, events: want, stalled: n}, nil
			}
		}
	}
	elapsed := time.Unix(0, rec.last.Load()).Sub(t0)
	cpu1, _ := procstat.CPUSeconds(0)
	p50, p99 := rec.percentiles()
	if scenario == "steady" {
		slowReport(rec, o, len(tenants), t0)
	}
	if err := c.stop(); err != nil {
		return result{}, err
	}
	return result{scenario: scenario, target: target, events: want, elapsed: elapsed, publish: pubDone,
		p50: p50, p99: p99, cpu: cpu1 - cpu0, settle: c.settle, reruns: rec.reruns.Load()}, nil
}

// slowReport prints, for a steady round, when the events slower than 100 ms were offered
// (second of the run) and how many tenants they belong to: a burst of them in one second points
// at a pause, spread-out ones at queueing.
func slowReport(rec *recorder, o options, tenants int, t0 time.Time) {
	bySecond := map[int]int{}
	ts := map[int]bool{}
	n := 0
	for i, l := range rec.lats {
		if l > 100*time.Millisecond {
			n++
			bySecond[i/o.rate]++
			ts[i%tenants] = true
		}
	}
	if n == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "slow events (>100ms): %d over %d tenants; by second offered (from %s): %v\n", n, len(ts), t0.UTC().Format("15:04:05.000"), bySecond)
}

// consumerStates describes every consumer of the events stream, for a round that stalls.
func consumerStates(w *world) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := w.js.Stream(ctx, broker.StreamEvents)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	l := st.ListConsumers(ctx)
	for ci := range l.Info() {
		fmt.Fprintf(&b, "  %s: pending %d, ack pending %d, redelivered %d, waiting %d, delivered %d, ack floor %d, pinned %v\n",
			ci.Name, ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting, ci.Delivered.Stream, ci.AckFloor.Stream, ci.PriorityGroups)
	}
	return b.String()
}

// fenceStates lists the ordering fences in hookd_state (processor/fence.go) and whether the event
// each one waits for was handled already (event i of a round is stream sequence i+1).
func fenceStates(w *world, rec *recorder) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := w.js.KeyValue(ctx, broker.BucketState)
	if err != nil {
		return err.Error()
	}
	l, err := kv.ListKeysFiltered(ctx, "fence.>")
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	n, stale := 0, 0
	for k := range l.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var f struct {
			Seq   uint64    `json:"seq"`
			Until time.Time `json:"until"`
			Owner string    `json:"owner"`
		}
		_ = json.Unmarshal(e.Value(), &f)
		handled := f.Seq >= 1 && int(f.Seq-1) < len(rec.seen) && rec.seen[f.Seq-1].Load()
		n++
		if handled {
			stale++
		}
		if n <= 10 {
			fmt.Fprintf(&b, "  %s: seq %d (handled already: %v), until %s, owner %s\n", k, f.Seq, handled, f.Until.Format(time.TimeOnly), f.Owner)
		}
	}
	fmt.Fprintf(&b, "  %d fences, %d of them on an event already handled\n", n, stale)
	return b.String()
}

// publish stores n events round-robin over the tenants as ingest stores them (no Nats-Msg-Id):
// as fast as the async window allows when rate is 0, else paced at rate per second from start.
func publish(js jetstream.JetStream, prefix string, tenants []tenant, n, rate int, start time.Time) error {
	for i := range n {
		if rate > 0 {
			due := start.Add(time.Duration(int64(i) * int64(time.Second) / int64(rate)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		t := tenants[i%len(tenants)]
		m := t.meta
		m.Delivery = fmt.Sprintf("%s-%08d", prefix, i)
		m.ReceivedAt = time.Now().UTC()
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: t.body}, jetstream.WithStallWait(30*time.Second)); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-time.After(60 * time.Second):
		return errors.New("async publishes not acknowledged within 60s")
	}
}

// report prints the medians per scenario and target, with ratios against the floor.
func report(o options, all []result) {
	med := func(xs []float64) float64 {
		sort.Float64s(xs)
		if len(xs) == 0 {
			return 0
		}
		if len(xs)%2 == 1 {
			return xs[len(xs)/2]
		}
		return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	type row struct{ rate, pub, p50, p99, cpu, elapsed float64 }
	for _, sc := range o.scenarios {
		rows := map[string]row{}
		fmt.Printf("\n### %s (median of %d round(s))\n\n", sc, o.rounds)
		fmt.Println("| target | rounds (ok/all) | events | events/s | drain s | publisher s | p50 ms | p99 ms | process CPU µs/event |")
		fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, tg := range o.targets {
			var rate, pub, p50, p99, cpu, el []float64
			events, stalled := 0, 0
			for _, r := range all {
				if r.scenario != sc || r.target != tg {
					continue
				}
				if r.stalled > 0 {
					stalled++
					continue
				}
				events = r.events
				rate = append(rate, r.rate())
				pub = append(pub, r.publish.Seconds())
				p50 = append(p50, ms(r.p50))
				p99 = append(p99, ms(r.p99))
				cpu = append(cpu, r.cpuPerEvent())
				el = append(el, r.elapsed.Seconds())
			}
			rw := row{med(rate), med(pub), med(p50), med(p99), med(cpu), med(el)}
			rows[tg] = rw
			fmt.Printf("| %s | %d/%d | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %.0f |\n", tg, len(rate), len(rate)+stalled, events, rw.rate, rw.elapsed, rw.pub, rw.p50, rw.p99, rw.cpu)
		}
		base, ok := rows["floor"]
		if !ok {
			continue
		}
		fmt.Println("\n| ratio | events/s | p50 | p99 | CPU/event |")
		fmt.Println("|---|---:|---:|---:|---:|")
		for _, tg := range o.targets {
			if tg == "floor" {
				continue
			}
			r := rows[tg]
			fmt.Printf("| %s/floor | %.2f | %.2f | %.2f | %.2f |\n", tg, r.rate/base.rate, r.p50/base.p50, r.p99/base.p99, r.cpu/base.cpu)
		}
	}
}
