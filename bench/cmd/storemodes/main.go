// Command storemodes measures how fast the embedded JetStream stores webhook-sized deliveries
// under three ways of publishing them, with each fsync policy, to show why ingest publishes one
// delivery at a time (docs/PERFORMANCE.md, "Group commit"):
//
//	single   one synchronous publish per delivery to hookd's events stream: what ingest does
//	batch    group commit: a publisher goroutine takes every delivery waiting at that moment (up
//	         to -max-batch) and publishes them as one atomic batch (Nats-Batch-Id, ...,
//	         Nats-Batch-Commit), so that with fsync always the server syncs once per batch
//	streams  the deliveries spread over -streams streams with hookd's de-duplication settings,
//	         so that their fsyncs run in parallel
//
// Every round starts a fresh embedded nats-server (broker.StartEmbedded, file storage, in a new
// directory under -dir) and runs -conc publishers, each waiting for its own delivery's ack before
// sending the next, for -duration after a one-second warm-up. Modes alternate within a round so
// that noise on the machine falls on all of them alike. It reports the median deliveries/s and
// CPU time per delivery (this whole process: publishers, client and server), and each mode's
// throughput as a ratio of single's in the same run.
//
//	go run ./bench/cmd/storemodes                       # about 2 minutes
//	go run ./bench/cmd/storemodes -syncs always -rounds 1 -duration 3s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/bench/internal/procstat"
	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
)

type options struct {
	modes    []string
	syncs    []string
	rounds   int
	duration time.Duration
	conc     int
	size     int
	streams  int
	maxBatch int
	dir      string
}

func main() {
	var o options
	modes := flag.String("modes", "single,batch,streams", "comma-separated modes: single, batch, streams")
	syncs := flag.String("syncs", "always,interval", "comma-separated fsync policies")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of every mode and policy")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per round")
	flag.IntVar(&o.conc, "conc", 32, "concurrent publishers")
	flag.IntVar(&o.size, "size", 15000, "bytes per delivery (webhook bodies are 11–22 KB)")
	flag.IntVar(&o.streams, "streams", 4, "streams of the streams mode")
	flag.IntVar(&o.maxBatch, "max-batch", 256, "largest batch of the batch mode (the server allows 1000)")
	flag.StringVar(&o.dir, "dir", "", "directory for the stores (default: the system's temporary directory)")
	flag.Parse()
	o.modes, o.syncs = strings.Split(*modes, ","), strings.Split(*syncs, ",")
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "storemodes:", err)
		os.Exit(1)
	}
}

type result struct {
	rate     float64 // deliveries/s
	cpu      float64 // µs per delivery
	avgBatch float64
}

func run(o options) error {
	for _, m := range o.modes {
		if m != "single" && m != "batch" && m != "streams" {
			return fmt.Errorf("-modes: unknown mode %q (single, batch, streams)", m)
		}
	}
	if o.rounds < 1 || o.conc < 1 || o.size < 1 || o.streams < 1 || o.maxBatch < 2 || o.maxBatch > 1000 {
		return errors.New("-rounds, -conc, -size and -streams must be positive, -max-batch within 2..1000")
	}
	res := map[string][]result{}
	for r := 1; r <= o.rounds; r++ {
		for _, sync := range o.syncs {
			for _, mode := range o.modes {
				res[sync+"/"+mode] = append(res[sync+"/"+mode], result{})
				got, err := round(o, sync, mode)
				if err != nil {
					return fmt.Errorf("round %d, %s, sync %s: %w", r, mode, sync, err)
				}
				res[sync+"/"+mode][r-1] = got
				fmt.Fprintf(os.Stderr, "round %d  sync=%-8s %-7s %8.0f /s  %5.0f µs CPU each\n", r, sync, mode, got.rate, got.cpu)
			}
		}
	}
	fmt.Printf("\n%d publishers, %d-byte deliveries, %d round(s) of %s, medians; CPU is this whole process\n\n", o.conc, o.size, o.rounds, o.duration)
	fmt.Println("| fsync | mode | deliveries/s | ÷ single | CPU µs/delivery | mean batch |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	for _, sync := range o.syncs {
		base := median(res[sync+"/single"], func(r result) float64 { return r.rate })
		for _, mode := range o.modes {
			rs := res[sync+"/"+mode]
			rate := median(rs, func(r result) float64 { return r.rate })
			ratio := "—"
			if base > 0 {
				ratio = fmt.Sprintf("%.2f", rate/base)
			}
			batch := "—"
			if mode == "batch" {
				batch = fmt.Sprintf("%.1f", median(rs, func(r result) float64 { return r.avgBatch }))
			}
			fmt.Printf("| %s | %s | %.0f | %s | %.0f | %s |\n", sync, mode, rate, ratio, median(rs, func(r result) float64 { return r.cpu }), batch)
		}
	}
	return nil
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// round measures one mode with one fsync policy on a fresh server.
func round(o options, syncPolicy, mode string) (result, error) {
	dir, err := os.MkdirTemp(o.dir, "storemodes-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	var cfg broker.Config
	cfg.Defaults()
	cfg.DataDir, cfg.Listen, cfg.Sync = dir, "127.0.0.1:0", syncPolicy
	if err := cfg.Validate(); err != nil {
		return result{}, err
	}
	log := zerolog.Nop()
	ns, err := broker.StartEmbedded(cfg, log)
	if err != nil {
		return result{}, err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc, err := broker.Connect(ctx, ns.ClientURL(), cfg, "storemodes", log)
	if err != nil {
		return result{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return result{}, err
	}

	var publish func(ctx context.Context, i int64, body []byte) error
	var batches, batched atomic.Int64
	switch mode {
	case "single", "batch":
		sc := broker.EventsStreamConfig(cfg)
		sc.AllowAtomicPublish = mode == "batch"
		if _, err := js.CreateStream(ctx, sc); err != nil {
			return result{}, err
		}
		publish = func(ctx context.Context, i int64, body []byte) error {
			_, err := js.PublishMsg(ctx, &nats.Msg{Subject: deliverySubject(i), Data: body})
			return err
		}
		if mode == "batch" {
			b := &batcher{nc: nc, q: make(chan pending, o.conc), max: o.maxBatch, batches: &batches, batched: &batched}
			go b.run(ctx)
			publish = b.publish
		}
	case "streams":
		for s := range o.streams {
			sc := broker.EventsStreamConfig(cfg)
			sc.Name, sc.Subjects, sc.SubjectTransform = "S"+strconv.Itoa(s), []string{"s" + strconv.Itoa(s) + ".>"}, nil
			if _, err := js.CreateStream(ctx, sc); err != nil {
				return result{}, err
			}
		}
		n := int64(o.streams)
		publish = func(ctx context.Context, i int64, body []byte) error {
			_, err := js.PublishMsg(ctx, &nats.Msg{Subject: "s" + strconv.FormatInt(i%n, 10) + "." + deliverySubject(i), Data: body})
			return err
		}
	}

	body := make([]byte, o.size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	var seq, done atomic.Int64
	var measuring atomic.Bool
	errc := make(chan error, o.conc)
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range o.conc {
		wg.Go(func() {
			for pctx.Err() == nil {
				if err := publish(pctx, seq.Add(1), body); err != nil {
					if pctx.Err() == nil {
						errc <- err
						stop()
					}
					return
				}
				if measuring.Load() {
					done.Add(1)
				}
			}
		})
	}
	time.Sleep(time.Second) // warm-up
	cpu0, err := procstat.CPUSeconds(0)
	if err != nil {
		stop()
		return result{}, err
	}
	b0, n0 := batches.Load(), batched.Load()
	measuring.Store(true)
	start := time.Now()
	time.Sleep(o.duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	n := done.Load()
	cpu1, err := procstat.CPUSeconds(0)
	b1, n1 := batches.Load(), batched.Load()
	stop()
	wg.Wait()
	select {
	case err := <-errc:
		return result{}, err
	default:
	}
	if err != nil {
		return result{}, err
	}
	if n == 0 {
		return result{}, errors.New("no delivery stored in the measured window")
	}
	r := result{rate: float64(n) / elapsed.Seconds(), cpu: (cpu1 - cpu0) * 1e6 / float64(n)}
	if b1 > b0 {
		r.avgBatch = float64(n1-n0) / float64(b1-b0)
	}
	return r, nil
}

// deliverySubject is ingest's subject for delivery i of one tenant.
func deliverySubject(i int64) string {
	return event.InSubject(event.Tenant{InstallationID: 1, RepositoryID: 2}, "issues", "d"+strconv.FormatInt(i, 10))
}

// pending is one delivery waiting for the batcher.
type pending struct {
	msg  *nats.Msg
	done chan error
}

// batcher is the group-commit publisher: it publishes every delivery waiting at the moment as one
// atomic batch and answers each with the batch's outcome.
type batcher struct {
	nc               *nats.Conn
	q                chan pending
	max              int
	id               int64
	batches, batched *atomic.Int64
}

func (b *batcher) publish(ctx context.Context, i int64, body []byte) error {
	p := pending{msg: &nats.Msg{Subject: deliverySubject(i), Data: body}, done: make(chan error, 1)}
	select {
	case b.q <- p:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *batcher) run(ctx context.Context) {
	var group []pending
	for {
		select {
		case p := <-b.q:
			group = append(group[:0], p)
		case <-ctx.Done():
			return
		}
	more:
		for len(group) < b.max {
			select {
			case p := <-b.q:
				group = append(group, p)
			default:
				break more
			}
		}
		err := b.send(ctx, group)
		b.batches.Add(1)
		b.batched.Add(int64(len(group)))
		for _, p := range group {
			p.done <- err
		}
	}
}

// send publishes group as one atomic batch: every message but the last without a reply, the last
// with the commit header as a request whose answer is the batch's ack.
func (b *batcher) send(ctx context.Context, group []pending) error {
	b.id++
	id := "b" + strconv.FormatInt(b.id, 36)
	for i, p := range group {
		p.msg.Header = nats.Header{"Nats-Batch-Id": {id}, "Nats-Batch-Sequence": {strconv.Itoa(i + 1)}}
		if i < len(group)-1 {
			if err := b.nc.PublishMsg(p.msg); err != nil {
				return err
			}
			continue
		}
		p.msg.Header["Nats-Batch-Commit"] = []string{"1"}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := b.nc.RequestMsgWithContext(rctx, p.msg)
		cancel()
		if err != nil {
			return err
		}
		var ack struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return fmt.Errorf("batch ack %q: %w", resp.Data, err)
		}
		if ack.Error != nil {
			return fmt.Errorf("batch refused: %s", ack.Error.Description)
		}
	}
	return nil
}
