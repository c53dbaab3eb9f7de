// Command dedupmem measures what de-duplicating deliveries costs in nats-server memory, for the
// mechanism hookd uses and for the obvious alternative:
//
//	none       one subject per tenant, no Nats-Msg-Id: storing without de-duplication (baseline)
//	subject    hookd's events stream (broker.EventsStreamConfig): one subject per delivery, at most
//	           one message per subject, discard new per subject; published without Nats-Msg-Id
//	hookd      the same stream published to as ingest does: with the delivery id as Nats-Msg-Id,
//	           so the stream's 2-minute duplicate window holds the ids of a burst on top
//	msgid4d    one subject per tenant, de-duplication by Nats-Msg-Id with a 4-day window
//
// Each variant runs in its own process (the command re-executes itself) with an embedded
// nats-server (broker.StartEmbedded, file storage, fsync on an interval) in the same process.
// It stores -counts deliveries with tiny bodies and UUID ids, and after each count measures the
// Go heap of the process (HeapAlloc after two GCs) and its RSS, twice: live, once the
// file store's block caches have expired (-settle), and after restarting the server on the same
// store (what a long-running or restarted server keeps). Bytes per delivery are the growth
// over the empty stream, divided by the count; the report also gives each variant's cost above
// the baseline.
//
//	go run ./bench/cmd/dedupmem                     # all variants, 100k and 300k
//	go run ./bench/cmd/dedupmem -counts 10000 -settle 11s   # quick
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
)

var variants = []string{"none", "subject", "hookd", "msgid4d"}

// Point is one measurement of one variant.
type Point struct {
	Variant   string `json:"variant"`
	Stored    int    `json:"stored"`
	When      string `json:"when"` // "live" or "restarted"
	HeapBytes uint64 `json:"heap_bytes"`
	RSSBytes  int64  `json:"rss_bytes"`
}

func main() {
	variant := flag.String("variant", "", "run one variant in this process (none, subject, hookd, msgid4d); default: all, each in its own process")
	counts := flag.String("counts", "100000,300000", "comma-separated numbers of stored deliveries to measure at, ascending")
	settle := flag.Duration("settle", 12*time.Second, "wait after publishing before a live measurement (the file store drops block caches after 10s)")
	flag.Parse()
	var ns []int
	for _, s := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 || (len(ns) > 0 && n <= ns[len(ns)-1]) {
			fmt.Fprintln(os.Stderr, "dedupmem: -counts must be ascending positive integers")
			os.Exit(2)
		}
		ns = append(ns, n)
	}
	var err error
	if *variant != "" {
		err = runVariant(*variant, ns, *settle)
	} else {
		err = runAll(ns, *settle)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dedupmem:", err)
		os.Exit(1)
	}
}

// runAll runs every variant in a child process and prints a Markdown table.
func runAll(counts []int, settle time.Duration) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	strs := make([]string, len(counts))
	for i, n := range counts {
		strs[i] = strconv.Itoa(n)
	}
	res := map[string]map[string]Point{} // variant → "when/stored" → point
	base := map[string]Point{}           // variant → empty stream
	for _, v := range variants {
		fmt.Fprintf(os.Stderr, "dedupmem: variant %s\n", v)
		cmd := exec.Command(self, "-variant", v, "-counts", strings.Join(strs, ","), "-settle", settle.String())
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("variant %s: %w", v, err)
		}
		res[v] = map[string]Point{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var p Point
			if err := json.Unmarshal([]byte(line), &p); err != nil {
				return fmt.Errorf("variant %s: %q: %w", v, line, err)
			}
			if p.Stored == 0 {
				base[v] = p
			}
			res[v][p.When+"/"+strconv.Itoa(p.Stored)] = p
		}
	}
	fmt.Println("| variant | measured | stored | heap MiB | heap growth B/delivery | above `none` B/delivery | RSS MiB |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|")
	for _, v := range variants {
		for _, when := range []string{"live", "restarted"} {
			for _, n := range counts {
				p := res[v][when+"/"+strconv.Itoa(n)]
				growth := (float64(p.HeapBytes) - float64(base[v].HeapBytes)) / float64(n)
				nb := res["none"][when+"/"+strconv.Itoa(n)]
				above := (float64(p.HeapBytes) - float64(base[v].HeapBytes) - (float64(nb.HeapBytes) - float64(base["none"].HeapBytes))) / float64(n)
				fmt.Printf("| %s | %s | %d | %.1f | %.0f | %.0f | %.1f |\n", v, when, n, float64(p.HeapBytes)/(1<<20), growth, above, float64(p.RSSBytes)/(1<<20))
			}
		}
	}
	if len(counts) > 1 {
		lo, hi := counts[0], counts[len(counts)-1]
		fmt.Printf("\nMarginal heap per delivery between %d and %d stored (restarted / live):\n\n", lo, hi)
		for _, v := range variants {
			var parts []string
			for _, when := range []string{"restarted", "live"} {
				a, b := res[v][when+"/"+strconv.Itoa(lo)], res[v][when+"/"+strconv.Itoa(hi)]
				parts = append(parts, fmt.Sprintf("%.0f B", (float64(b.HeapBytes)-float64(a.HeapBytes))/float64(hi-lo)))
			}
			fmt.Printf("- %s: %s\n", v, strings.Join(parts, " / "))
		}
	}
	return nil
}

// runVariant stores deliveries the variant's way and prints one JSON Point per line.
func runVariant(v string, counts []int, settle time.Duration) error {
	var sc jetstream.StreamConfig
	var subject func(id string) string
	msgID := false
	var cfg broker.Config
	cfg.Defaults()
	cfg.Listen, cfg.Sync = "127.0.0.1:-1", broker.SyncInterval
	tenantSubject := func(string) string { return "bench.events.12345678.123456789.issues" }
	deliverySubject := func(id string) string {
		return event.InSubject(event.Tenant{InstallationID: 12345678, RepositoryID: 123456789}, "issues", id)
	}
	switch v {
	case "none":
		sc = jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.events.>"}, Storage: jetstream.FileStorage, MaxAge: cfg.MaxAge}
		subject = tenantSubject
	case "msgid4d":
		sc = jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.events.>"}, Storage: jetstream.FileStorage, MaxAge: cfg.MaxAge, Duplicates: 4 * 24 * time.Hour}
		subject, msgID = tenantSubject, true
	case "subject":
		sc, subject = broker.EventsStreamConfig(cfg), deliverySubject
	case "hookd":
		sc, subject, msgID = broker.EventsStreamConfig(cfg), deliverySubject, true
	default:
		return fmt.Errorf("unknown variant %q; use one of %s", v, strings.Join(variants, ", "))
	}
	dir, err := os.MkdirTemp("", "dedupmem-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg.DataDir = dir
	log := zerolog.New(os.Stderr).Level(zerolog.ErrorLevel)
	ctx := context.Background()

	var ns *server.Server
	var nc *nats.Conn
	var js jetstream.JetStream
	var pubErrs atomic.Int64
	connect := func() error {
		var err error
		if ns, err = broker.StartEmbedded(cfg, log); err != nil {
			return err
		}
		if nc, err = nats.Connect(ns.ClientURL()); err != nil {
			return err
		}
		js, err = jetstream.New(nc,
			jetstream.WithPublishAsyncMaxPending(4096),
			jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
				if pubErrs.Add(1) == 1 {
					fmt.Fprintln(os.Stderr, "dedupmem: publish:", err)
				}
			}))
		return err
	}
	shutdown := func() {
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	if err := connect(); err != nil {
		return err
	}
	stream, err := js.CreateStream(ctx, sc)
	if err != nil {
		return err
	}
	emit := func(stored int, when string) error {
		heap, rss := measure()
		b, err := json.Marshal(Point{Variant: v, Stored: stored, When: when, HeapBytes: heap, RSSBytes: rss})
		if err != nil {
			return err
		}
		fmt.Println(string(b))
		return nil
	}
	if err := emit(0, "live"); err != nil {
		return err
	}
	stored := 0
	body := []byte(`{}`)
	for _, n := range counts {
		t0 := time.Now()
		for ; stored < n; stored++ {
			id := uuid4()
			m := &nats.Msg{Subject: subject(id), Data: body}
			opts := []jetstream.PublishOpt{jetstream.WithStallWait(30 * time.Second)}
			if msgID {
				opts = append(opts, jetstream.WithMsgID(id))
			}
			if _, err := js.PublishMsgAsync(m, opts...); err != nil {
				return err
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(2 * time.Minute):
			return errors.New("publishes not acknowledged within 2m")
		}
		if pubErrs.Load() > 0 {
			return fmt.Errorf("%d publishes failed", pubErrs.Load())
		}
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != uint64(n) {
			return fmt.Errorf("stream holds %d messages, want %d", info.State.Msgs, n)
		}
		fmt.Fprintf(os.Stderr, "dedupmem: %s: %d stored in %s\n", v, n, time.Since(t0).Round(time.Millisecond))
		time.Sleep(settle)
		if err := emit(n, "live"); err != nil {
			return err
		}
		shutdown()
		if err := connect(); err != nil {
			return err
		}
		if stream, err = js.Stream(ctx, sc.Name); err != nil {
			return err
		}
		if info, err := stream.Info(ctx); err != nil || info.State.Msgs != uint64(n) {
			return fmt.Errorf("after restart: stream info %v, %v", info, err)
		}
		if err := emit(n, "restarted"); err != nil {
			return err
		}
	}
	shutdown()
	return nil
}

// measure returns the live Go heap after garbage collection and the process's RSS.
func measure() (heap uint64, rss int64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				rss = kb << 10
			}
		}
	}
	return ms.HeapAlloc, rss
}

func uuid4() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
