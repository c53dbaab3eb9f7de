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
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: b}, jetstream.WithMsgID(d)); err != nil {
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
			_, _ = env.JS.PublishMsgAsync(&nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: body}, jetstream.WithMsgID(d))
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

// BenchmarkFairness: a backlog of 5000 events of one repository, then one event of a quiet
// repository in the same partition; reports how long the quiet event waited. With the default
// window (max_ack_pending 1000) it waits for the window to reach it; with a window larger than
// the burst it overtakes the burst.
func BenchmarkFairness(b *testing.B) {
	for _, window := range []int{1000, 8192} {
		b.Run(fmt.Sprintf("max_ack_pending=%d", window), func(b *testing.B) {
			for i := range b.N {
				env := brokertest.New(b, func(c *broker.Config) { c.Partitions = 1 })
				quiet := make(chan time.Time, 1)
				var mux processor.Mux
				must(b, mux.HandleFunc("work", processor.On("*"), func(ctx context.Context, ev *processor.Event) error {
					if ev.Tenant.RepositoryID == 2 {
						quiet <- time.Now()
					}
					time.Sleep(200 * time.Microsecond) // a handler that does a little work
					return nil
				}))
				body := body(b, "issue_comment.created", repo{1, 1, "acme/x"}, nil)
				publishAsync(b, env.JS, fmt.Sprintf("busy%d", i), 5000, repo{1, 1, "acme/busy"}, body)
				p := newProcessor(b, env, processor.Config{MaxAckPending: window}, &mux, nil)
				stop := started(b, p)
				time.Sleep(50 * time.Millisecond) // the burst is being handled
				sent := time.Now()
				publish(b, env.JS, "issue_comment", fmt.Sprintf("quiet%d", i), body2(b, body))
				select {
				case at := <-quiet:
					b.ReportMetric(float64(at.Sub(sent).Microseconds())/1000, "quiet-delay-ms")
				case <-time.After(60 * time.Second):
					b.Fatal("quiet event not handled")
				}
				must(b, stop())
			}
		})
	}
}

func body2(tb testing.TB, _ []byte) []byte {
	return body(tb, "issue_comment.created", repo{1, 2, "acme/quiet"}, nil)
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
		if _, err := env.JS.PublishMsg(context.Background(), &nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: body}, jetstream.WithMsgID(d)); err != nil {
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
