package processor_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/processor"
)

// effects counts effects that went through the ledger, per delivery and handler.
type effects struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *effects) do(ctx context.Context, ev *processor.Event) error {
	_, err := ev.Ledger.Do(ctx, "effect", func(context.Context) ([]byte, error) {
		e.mu.Lock()
		e.n[ev.Meta.Delivery+"/"+ev.Handler]++
		e.mu.Unlock()
		return nil, nil
	})
	return err
}

func (e *effects) get(k string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n[k]
}

func TestDurability(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	fx := &effects{n: map[string]int{}}
	rec := newRecorder()
	entered := make(chan struct{})
	var enterOnce sync.Once

	// First processor: on its own connection, and its handler blocks on the first event of
	// tenant A until its context ends.
	nc1, err := nats.Connect(env.URL)
	must(t, err)
	js1, err := jetstream.New(nc1)
	must(t, err)
	var mux1 processor.Mux
	must(t, mux1.HandleFunc("fx", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		if ev.Meta.Delivery == "a-0" {
			enterOnce.Do(func() { close(entered) })
			<-ctx.Done()
			return ctx.Err()
		}
		return fx.do(ctx, ev)
	}))
	cfg := fastConfig()
	cfg.ShutdownTimeout = 100 * time.Millisecond
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	p1, err := processor.New(cfg, processor.Deps{JS: js1, Mux: &mux1, Log: log, Registerer: prometheus.NewRegistry(), Partitions: env.Config.Partitions})
	must(t, err)
	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { done1 <- p1.Run(ctx1) }()

	a, b := repo{1, 21, "acme/a"}, repo{1, 22, "acme/b"}
	var all []string
	for i := range 10 {
		for _, r := range []struct {
			repo
			p string
		}{{a, "a"}, {b, "b"}} {
			d := fmt.Sprintf("%s-%d", r.p, i)
			all = append(all, d)
			publish(t, env.JS, "issues", d, body(t, "issues.opened", r.repo, nil))
		}
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("first handler never ran")
	}
	// Crash: the connection goes away under the processor, then it is stopped.
	nc1.Close()
	cancel1()
	select {
	case <-done1:
	case <-time.After(10 * time.Second):
		t.Fatal("first processor did not stop")
	}

	// A new processor on the same server handles everything, no effect twice.
	var mux2 processor.Mux
	must(t, mux2.HandleFunc("fx", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		err := fx.do(ctx, ev)
		rec.add(call{delivery: ev.Meta.Delivery, tenant: ev.Tenant, seq: ev.Seq})
		return err
	}))
	p2 := newProcessor(t, env, cfg, &mux2, nil)
	started(t, p2)
	deadline := time.Now().Add(60 * time.Second) // failover waits for the dead replica's membership to expire (broker.MemberTTL)
	for _, d := range all {
		for fx.get(d+"/fx") == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s never handled", d)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(2 * cfg.AckWait) // let anything that would be re-delivered come back
	for _, d := range all {
		if n := fx.get(d + "/fx"); n != 1 {
			t.Errorf("%s: effect done %d times", d, n)
		}
	}
	// Tenant A's events after the crash ran in stored order.
	var prev uint64
	for _, c := range rec.snapshot() {
		if c.tenant.RepositoryID == a.id {
			if c.seq <= prev {
				t.Errorf("tenant A out of order: %d after %d", c.seq, prev)
			}
			prev = c.seq
		}
	}
}
