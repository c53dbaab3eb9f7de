package processor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/processor"
)

// pinnedClient returns the client pinned to partition 0's consumer ("" when none).
func pinnedClient(t *testing.T, env *brokertest.Env, cfg processor.Config) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cfg.Defaults()
	cons, err := env.JS.Consumer(ctx, broker.StreamEvents, processor.ConsumerConfig(cfg, 0).Durable)
	if err != nil {
		return ""
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return ""
	}
	for _, g := range info.PriorityGroups {
		if g.Group == processor.PriorityGroup {
			return g.PinnedClientID
		}
	}
	return ""
}

// TestDrainKeepsRunningEventsAlive: a replica that shuts down while a handler runs longer than
// processor.ack_wait (within processor.shutdown_timeout) keeps that event alive while it drains.
// Otherwise the server re-delivers it once the survivor is pinned, and the survivor runs it a
// second time while the first run is still going.
func TestDrainKeepsRunningEventsAlive(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t, func(c *broker.Config) { c.Partitions = 1 })
	cfg := fastConfig()
	cfg.ShutdownTimeout = 30 * time.Second // the drain waits for the slow handler

	entered := make(chan struct{})
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	var muxA processor.Mux
	must(t, muxA.HandleFunc("h", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		if ev.Meta.Delivery == "d-1" {
			close(entered)
			<-release // runs on through the drain, past ack_wait
		}
		return nil
	}))
	stopA := started(t, newProcessor(t, env, cfg, &muxA, nil))
	t.Cleanup(free) // before stopping A (cleanups run last first)
	r := repo{1, 71, "acme/drain"}
	publish(t, env.JS, "issues", "d-1", body(t, "issues.opened", r, nil))
	publish(t, env.JS, "issues", "d-2", body(t, "issues.labeled", r, nil))
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the slow handler never ran")
	}
	pinA := pinnedClient(t, env, cfg)
	if pinA == "" {
		t.Fatal("no client pinned while A handles the partition")
	}

	rec := newRecorder()
	var muxB processor.Mux
	must(t, muxB.HandleFunc("h", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		rec.add(call{delivery: ev.Meta.Delivery, seq: ev.Seq})
		return nil
	}))
	started(t, newProcessor(t, env, cfg, &muxB, nil))
	stopped := make(chan error, 1)
	go func() { stopped <- stopA() }()

	// B becomes pinned once A's pin lapses (A no longer pulls while it drains); an event whose
	// ack_wait lapsed meanwhile would then be re-delivered to B at once.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if pin := pinnedClient(t, env, cfg); pin != "" && pin != pinA {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B was never pinned while A drained")
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case c := <-rec.ch:
		t.Fatalf("B ran %s while A's handler still ran it (or before it)", c.delivery)
	case <-time.After(2*cfg.AckWait + time.Second):
	}

	free()
	must(t, <-stopped)
	calls := rec.wait(t, 1, 20*time.Second)
	if calls[0].delivery != "d-2" {
		t.Fatalf("B ran %s, want d-2 (d-1 was A's)", calls[0].delivery)
	}
	rec.quiet(t, 2*cfg.AckWait)
}

// readFence reads tenant's fence in partition 0 (ok false: none).
func readFence(t *testing.T, env *brokertest.Env, tenant string) (f struct {
	Seq   uint64    `json:"seq"`
	Until time.Time `json:"until"`
	Owner string    `json:"owner"`
}, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := env.JS.KeyValue(ctx, broker.BucketState)
	must(t, err)
	e, err := kv.Get(ctx, "fence.0."+tenant)
	if err != nil {
		return f, false
	}
	must(t, json.Unmarshal(e.Value(), &f))
	return f, true
}

// TestRetryFenceAcrossTwoHandovers: a tenant's head event fails on replica A and is handed
// back for a retry; A leaves; B receives it, and it fails again with a longer delay. B's fence
// must then cover B's retry, not A's shorter one: otherwise it expires while the event is still
// out, and when B leaves in turn, C runs the tenant's later event first.
func TestRetryFenceAcrossTwoHandovers(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t, func(c *broker.Config) { c.Partitions = 1 })
	cfg := fastConfig()
	rec := newRecorder()
	var attempts atomic.Int32
	failed := make(chan string, 4)
	mk := func(name string) *processor.Mux {
		var mux processor.Mux
		must(t, mux.HandleFunc("h", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
			rec.add(call{handler: name, delivery: ev.Meta.Delivery, seq: ev.Seq})
			if ev.Meta.Delivery != "f-1" {
				return nil
			}
			switch attempts.Add(1) {
			case 1:
				failed <- name
				return processor.RetryAfter(errors.New("busy"), 2*time.Second)
			case 2:
				failed <- name
				return processor.RetryAfter(errors.New("still busy"), 8*time.Second)
			}
			return nil
		}))
		return &mux
	}
	r := repo{1, 81, "acme/fence"}
	stopA := started(t, newProcessor(t, env, cfg, mk("A"), nil))
	publish(t, env.JS, "issues", "f-1", body(t, "issues.opened", r, nil))
	publish(t, env.JS, "issues", "f-2", body(t, "issues.labeled", r, nil))
	waitFailed := func(want string) {
		t.Helper()
		select {
		case got := <-failed:
			if got != want {
				t.Fatalf("f-1 failed on %s, want %s", got, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("f-1 never failed on %s", want)
		}
	}
	waitFailed("A")
	first, ok := readFence(t, env, r.tenant().Key())
	for deadline := time.Now().Add(10 * time.Second); !ok; first, ok = readFence(t, env, r.tenant().Key()) {
		if time.Now().After(deadline) {
			t.Fatal("no fence for the event out for a retry")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopB := started(t, newProcessor(t, env, cfg, mk("B"), nil))
	must(t, stopA())
	waitFailed("B")

	// Past the end of A's fence B's retry is still out, so the fence must still hold then.
	for time.Now().Before(first.Until.Add(time.Second)) {
		time.Sleep(50 * time.Millisecond)
	}
	started(t, newProcessor(t, env, cfg, mk("C"), nil))
	must(t, stopB())

	var order []string
	for _, c := range rec.wait(t, 4, 30*time.Second) { // A f-1, B f-1, then f-1 and f-2 in order
		if c.handler == "C" || c.delivery == "f-2" {
			order = append(order, c.delivery)
		}
	}
	if len(order) < 2 || order[0] != "f-1" || order[1] != "f-2" {
		t.Fatalf("after two handovers: %v, want f-1 before f-2", order)
	}
}

// TestKVOutage: while the KV buckets (effect ledger, state) are gone and the events stream is
// fine, events that need the ledger are retried, holding their tenants; once the buckets are
// back every event is handled, each effect once, each tenant in order.
func TestKVOutage(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t, func(c *broker.Config) { c.Partitions = 2 })
	fx := &effects{n: map[string]int{}}
	rec := newRecorder()
	failures := make(chan string, 1000)
	var mux processor.Mux
	must(t, mux.HandleFunc("fx", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		if err := fx.do(ctx, ev); err != nil {
			failures <- ev.Meta.Delivery
			return err
		}
		rec.add(call{delivery: ev.Meta.Delivery, tenant: ev.Tenant, seq: ev.Seq})
		return nil
	}))
	reg := prometheus.NewRegistry()
	p, err := processor.New(fastConfig(), processor.Deps{
		JS: env.JS, Mux: &mux, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		Registerer: reg, Partitions: env.Config.Partitions,
	})
	must(t, err)
	started(t, p)
	ctx := context.Background()
	tenants := []repo{{1, 91, "acme/k1"}, {1, 92, "acme/k2"}, {1, 93, "acme/k3"}, {1, 94, "acme/k4"}, {1, 95, "acme/k5"}, {1, 96, "acme/k6"}}
	var all []string
	pub := func(from, to int) {
		for i := from; i < to; i++ {
			for j, r := range tenants {
				d := fmt.Sprintf("kv-%d-%d", j, i)
				all = append(all, d)
				publish(t, env.JS, "issues", d, body(t, "issues.opened", r, nil))
			}
		}
	}
	pub(0, 2)
	rec.wait(t, 2*len(tenants), 20*time.Second)
	must(t, env.JS.DeleteKeyValue(ctx, broker.BucketEffects))
	must(t, env.JS.DeleteKeyValue(ctx, broker.BucketState))
	pub(2, 5)
	// Every tenant's head fails while the buckets are gone.
	failing := map[string]int{}
	for timeout := time.After(20 * time.Second); len(failing) < len(tenants); {
		select {
		case d := <-failures:
			failing[d[:len("kv-0")]]++
		case <-timeout:
			t.Fatalf("failures while the buckets were gone: %v", failing)
		}
	}
	// ... and is retried a few times (each retry fails reading the failure record).
	for deadline := time.Now().Add(20 * time.Second); counter(t, reg, "hookd_processor_retries_total") < 4*float64(len(tenants)); {
		if time.Now().After(deadline) {
			t.Fatalf("%v retries while the buckets were gone", counter(t, reg, "hookd_processor_retries_total"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	must(t, broker.Ensure(ctx, env.JS, env.Config))
	calls := rec.wait(t, 3*len(tenants), 30*time.Second)
	rec.quiet(t, 2*time.Second)
	last := map[int64]uint64{}
	for _, c := range calls {
		if c.seq <= last[c.tenant.RepositoryID] {
			t.Errorf("tenant %s: %s (seq %d) after seq %d", c.tenant, c.delivery, c.seq, last[c.tenant.RepositoryID])
		}
		last[c.tenant.RepositoryID] = c.seq
	}
	for _, d := range all {
		if n := fx.get(d + "/fx"); n != 1 {
			t.Errorf("%s: effect done %d times, want once", d, n)
		}
	}
	if n := counter(t, reg, "hookd_processor_pin_lost_total"); n != 0 {
		t.Errorf("the only replica lost a pin %v times during the KV outage", n)
	}
}

// counter sums a processor counter's series in reg (0 when it has none yet).
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestHandlerPastAckWait: a handler that runs several times processor.ack_wait keeps its event
// (kept alive while it runs) and its tenant's later events (kept alive while they wait): each
// runs once, in order, and another tenant is not held up meanwhile.
func TestHandlerPastAckWait(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t, func(c *broker.Config) { c.Partitions = 1 })
	cfg := fastConfig()
	rec := newRecorder()
	other := make(chan struct{})
	var mux processor.Mux
	must(t, mux.HandleFunc("h", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		rec.add(call{delivery: ev.Meta.Delivery, seq: ev.Seq})
		switch ev.Meta.Delivery {
		case "long-1":
			select { // the other tenant's event runs meanwhile; then run on past ack_wait
			case <-other:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case <-time.After(3 * cfg.AckWait):
			case <-ctx.Done():
				return ctx.Err()
			}
		case "other-1":
			close(other)
		}
		return nil
	}))
	started(t, newProcessor(t, env, cfg, &mux, nil))
	r, o := repo{1, 101, "acme/long"}, repo{1, 102, "acme/other"}
	publish(t, env.JS, "issues", "long-1", body(t, "issues.opened", r, nil))
	publish(t, env.JS, "issues", "long-2", body(t, "issues.labeled", r, nil))
	publish(t, env.JS, "issues", "other-1", body(t, "issues.opened", o, nil))
	calls := rec.wait(t, 3, 20*time.Second)
	var got []string
	for _, c := range calls {
		got = append(got, c.delivery)
	}
	if got[2] != "long-2" {
		t.Fatalf("calls %v, want long-1 and other-1, then long-2 after long-1 finished", got)
	}
	rec.quiet(t, 2*cfg.AckWait)
}
