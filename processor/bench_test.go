package processor_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/processor"
)

// publishAsync stores deliveries d-<prefix>-<i> for tenant r without waiting for each ack.
func publishAsync(tb testing.TB, js jetstream.JetStream, prefix string, n int, r repo, b []byte) {
	tb.Helper()
	for i := range n {
		d := fmt.Sprintf("%s-%06d", prefix, i)
		m := metaFor(r, d)
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: b}); err != nil {
			tb.Fatal(err)
		}
		if i%500 == 499 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(60 * time.Second):
				tb.Fatal("async publishes not acknowledged")
			}
		}
	}
}

// BenchmarkEndToEnd: one replica, a no-op handler, events of 50 tenants stored while the
// processor runs. Reports events/s and the latency from ingest's receipt to handled.
func BenchmarkEndToEnd(b *testing.B) {
	env := brokertest.New(b, func(c *broker.Config) { c.Partitions = 4 })
	var (
		mu   sync.Mutex
		lats []time.Duration
		got  = make(chan struct{}, 1<<20)
	)
	var mux processor.Mux
	must(b, mux.HandleFunc("noop", processor.On("*"), func(ctx context.Context, ev *processor.Event) error {
		mu.Lock()
		lats = append(lats, time.Since(ev.Meta.ReceivedAt))
		mu.Unlock()
		got <- struct{}{}
		return nil
	}))
	p := newProcessor(b, env, processor.Config{}, &mux, nil)
	started(b, p)
	body := body(b, "issue_comment.created", repo{1, 1, "acme/x"}, nil)
	const tenants = 50
	b.ResetTimer()
	start := time.Now()
	go func() {
		for i := range b.N {
			r := repo{inst: 1, id: int64(10 + i%tenants), name: fmt.Sprintf("acme/t%d", i%tenants)}
			d := fmt.Sprintf("b-%d-%07d", b.N, i)
			m := metaFor(r, d)
			_, _ = env.JS.PublishMsgAsync(&nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: body})
			if i%500 == 499 {
				<-env.JS.PublishAsyncComplete()
			}
		}
	}()
	for range b.N {
		select {
		case <-got:
		case <-time.After(60 * time.Second):
			b.Fatal("events not handled")
		}
	}
	el := time.Since(start)
	b.StopTimer()
	mu.Lock()
	slices.Sort(lats)
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
	mu.Unlock()
}

// BenchmarkFairness: one repository has a backlog of 5000 events; while it drains, 10 quiet
// repositories of the same partition send 100 events, one every 10 ms, starting once the
// processor has been pinned (300 ms). Reports the quiet events' delay (stored → handled), p50,
// p99 and max, and how much of the backlog was still unhandled when the last quiet event was
// stored (backlog-left: the quiet events did overlap the backlog). Variants, in the same run:
//   - baseline: the quiet events alone, no backlog: what the delay is without a noisy neighbour;
//   - default: the default configuration (max_ack_pending 8192, larger than the backlog, and the
//     read-ahead budget): the quiet events overtake the backlog;
//   - max_ack_pending=1000: a window smaller than the backlog: the quiet events wait for it.
//
// The handler takes 0.2 ms per event.
func BenchmarkFairness(b *testing.B) {
	for _, v := range []struct {
		name   string
		window int
		noisy  int
	}{{"baseline", 0, 0}, {"default", 0, 5000}, {"max_ack_pending=1000", 1000, 5000}} {
		b.Run(v.name, func(b *testing.B) {
			var delays []time.Duration
			left := 0
			for i := range b.N {
				d, l := fairnessRound(b, i, v.window, v.noisy)
				delays, left = append(delays, d...), left+l
			}
			b.ReportMetric(float64(left)/float64(b.N), "backlog-left")
			slices.Sort(delays)
			b.ReportMetric(float64(delays[len(delays)/2].Microseconds())/1000, "quiet-p50-ms")
			b.ReportMetric(float64(delays[len(delays)*99/100].Microseconds())/1000, "quiet-p99-ms")
			b.ReportMetric(float64(delays[len(delays)-1].Microseconds())/1000, "quiet-max-ms")
		})
	}
}

func fairnessRound(b *testing.B, round, window, noisy int) (_ []time.Duration, backlogLeft int) {
	const quietEvents, quietRepos = 100, 10
	env := brokertest.New(b, func(c *broker.Config) { c.Partitions = 1 })
	var mu sync.Mutex
	handled := map[string]time.Time{}
	busy := 0
	done := make(chan struct{})
	var mux processor.Mux
	must(b, mux.HandleFunc("work", processor.On("*"), func(ctx context.Context, ev *processor.Event) error {
		if ev.Tenant.RepositoryID >= 100 {
			mu.Lock()
			handled[ev.Meta.Delivery] = time.Now()
			if len(handled) == quietEvents {
				close(done)
			}
			mu.Unlock()
		} else if ev.Tenant.RepositoryID == 1 {
			mu.Lock()
			busy++
			mu.Unlock()
		}
		time.Sleep(200 * time.Microsecond) // a handler that does a little work
		return nil
	}))
	// One event before the start, so that the processor is pinned (and past its handover settle)
	// before the quiet events, in the baseline too.
	publish(b, env.JS, "issue_comment", fmt.Sprintf("warm%d", round), body(b, "issue_comment.created", repo{1, 2, "acme/warm"}, nil))
	if noisy > 0 {
		publishAsync(b, env.JS, fmt.Sprintf("busy%d", round), noisy, repo{1, 1, "acme/busy"}, body(b, "issue_comment.created", repo{1, 1, "acme/busy"}, nil))
	}
	p := newProcessor(b, env, processor.Config{MaxAckPending: window}, &mux, nil)
	stop := started(b, p)
	time.Sleep(300 * time.Millisecond) // pinned, settled, the backlog is being handled
	sent := map[string]time.Time{}
	for q := range quietEvents {
		r := repo{1, int64(100 + q%quietRepos), fmt.Sprintf("acme/quiet%d", q%quietRepos)}
		d := fmt.Sprintf("quiet%d-%d", round, q)
		qb := body(b, "issue_comment.created", r, nil)
		sent[d] = time.Now()
		publish(b, env.JS, "issue_comment", d, qb)
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	backlogLeft = noisy - busy
	mu.Unlock()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatal("quiet events not handled")
	}
	must(b, stop())
	mu.Lock()
	defer mu.Unlock()
	out := make([]time.Duration, 0, quietEvents)
	for d, at := range sent {
		out = append(out, handled[d].Sub(at))
	}
	return out, backlogLeft
}

// BenchmarkLatency: one event at a time (no backlog): store, then wait until handled.
func BenchmarkLatency(b *testing.B) {
	env := brokertest.New(b, func(c *broker.Config) { c.Partitions = 4 })
	got := make(chan time.Duration, 1)
	var mux processor.Mux
	must(b, mux.HandleFunc("noop", processor.On("*"), func(ctx context.Context, ev *processor.Event) error {
		got <- time.Since(ev.Meta.ReceivedAt)
		return nil
	}))
	p := newProcessor(b, env, processor.Config{}, &mux, nil)
	started(b, p)
	body := body(b, "issue_comment.created", repo{1, 1, "acme/x"}, nil)
	r := repo{1, 7, "acme/lat"}
	lats := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		d := fmt.Sprintf("lat-%d-%07d", b.N, i)
		m := metaFor(r, d)
		if _, err := env.JS.PublishMsg(context.Background(), &nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: body}); err != nil {
			b.Fatal(err)
		}
		select {
		case l := <-got:
			lats = append(lats, l)
		case <-time.After(10 * time.Second):
			b.Fatal("event not handled")
		}
	}
	b.StopTimer()
	slices.Sort(lats)
	b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
}
