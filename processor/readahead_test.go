package processor_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/processor"
)

// readAheadCase is a processor with the smallest read-ahead budget (1 MiB) whose handler waits
// at a gate, so that events pile up in the tenant queues beyond the budget.
type readAheadCase struct {
	env  *brokertest.Env
	reg  *prometheus.Registry
	p    *processor.Processor
	gate chan struct{}
	rec  *recorder

	mu       sync.Mutex
	payloads map[string][32]byte // delivery → sha256 of the payload the handler saw
}

func newReadAheadCase(t *testing.T, fail func(*processor.Event) error) *readAheadCase {
	t.Helper()
	c := &readAheadCase{
		env:      brokertest.New(t, func(c *broker.Config) { c.Partitions = 1 }),
		reg:      prometheus.NewRegistry(),
		gate:     make(chan struct{}),
		rec:      newRecorder(),
		payloads: map[string][32]byte{},
	}
	var mux processor.Mux
	must(t, mux.HandleFunc("gated", processor.On("*"), func(ctx context.Context, ev *processor.Event) error {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
		c.payloads[ev.Meta.Delivery] = sha256.Sum256(ev.Payload)
		c.mu.Unlock()
		if fail != nil {
			if err := fail(ev); err != nil {
				return err
			}
		}
		c.rec.add(call{handler: ev.Handler, delivery: ev.Meta.Delivery, tenant: ev.Tenant, seq: ev.Seq})
		return nil
	}))
	cfg := fastConfig()
	cfg.ReadAheadBytes = 1 << 20
	cfg.AckWait = 5 * time.Second
	cfg.PinnedTTL = 10 * time.Second
	p, err := processor.New(cfg, processor.Deps{
		JS: c.env.JS, Mux: &mux, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		Registerer: c.reg, Partitions: 1,
	})
	must(t, err)
	c.p = p
	return c
}

// counter reads a processor counter from the registry.
func (c *readAheadCase) counter(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := c.reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// waitBuffered waits until the replica holds n events.
func (c *readAheadCase) waitBuffered(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		mfs, err := c.reg.Gather()
		must(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "hookd_processor_read_ahead_stubbed_total" {
				if got := mf.GetMetric()[0].GetCounter().GetValue(); got > 0 {
					// Some arrived beyond the budget; wait for the rest through the consumer.
					info, err := c.env.JS.Consumer(context.Background(), broker.StreamEvents, c.p.Config().Consumer+"_0")
					if err == nil {
						if ci, err := info.Info(context.Background()); err == nil && ci.NumPending == 0 && ci.NumAckPending == n {
							return
						}
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the replica did not receive %d events beyond its read-ahead budget within 20s", n)
}

// TestReadAheadBudget: events received beyond processor.read_ahead_bytes are held without their
// payload and read back in their turn; handlers see every payload exactly as stored, in order.
func TestReadAheadBudget(t *testing.T) {
	t.Parallel()
	c := newReadAheadCase(t, nil)
	repos := []repo{{3, 31, "acme/a"}, {3, 32, "acme/b"}, {3, 33, "acme/c"}}
	want := map[string][32]byte{}
	const per = 100 // 300 payloads of about 13 KB: about 4 MB against a 1 MiB budget
	for i := range per {
		for j, r := range repos {
			d := fmt.Sprintf("ra-%d-%03d", j, i)
			b := body(t, "issue_comment.created", r, func(m map[string]any) { m["hookd_test_nonce"] = d })
			publish(t, c.env.JS, "issue_comment", d, b)
			want[d] = sha256.Sum256(b)
		}
	}
	started(t, c.p)
	c.waitBuffered(t, len(want))
	stubbed := c.counter(t, "hookd_processor_read_ahead_stubbed_total")
	if stubbed < 100 {
		t.Fatalf("stubbed %v events, want most of 300 with a 1 MiB budget", stubbed)
	}
	close(c.gate)
	got := c.rec.wait(t, len(want), 30*time.Second)
	last := map[int64]uint64{}
	for _, cl := range got {
		if cl.seq <= last[cl.tenant.RepositoryID] {
			t.Fatalf("tenant %d: seq %d after %d", cl.tenant.RepositoryID, cl.seq, last[cl.tenant.RepositoryID])
		}
		last[cl.tenant.RepositoryID] = cl.seq
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for d, sum := range want {
		if c.payloads[d] != sum {
			t.Fatalf("%s: the handler saw a different payload than was stored", d)
		}
	}
	if loads := c.counter(t, "hookd_processor_payload_loads_total"); loads < stubbed {
		t.Fatalf("payload loads %v < stubbed %v", loads, stubbed)
	}
}

// TestReadAheadGoneAndDeadLetter: a held event removed from the stream before its turn is
// acknowledged without a handler call; a held event dead-lettered in its turn keeps its payload
// in the dead letter.
func TestReadAheadGoneAndDeadLetter(t *testing.T) {
	t.Parallel()
	c := newReadAheadCase(t, func(ev *processor.Event) error {
		if ev.Meta.Delivery == "rg-149" {
			return processor.Permanent(fmt.Errorf("rejected"))
		}
		return nil
	})
	r := repo{4, 41, "acme/gone"}
	bodies := map[string][]byte{}
	seqs := map[string]uint64{}
	const n = 150
	for i := range n {
		d := fmt.Sprintf("rg-%03d", i)
		b := body(t, "issue_comment.created", r, func(m map[string]any) { m["hookd_test_nonce"] = d })
		publish(t, c.env.JS, "issue_comment", d, b)
		bodies[d] = b
	}
	ctx := context.Background()
	s, err := c.env.JS.Stream(ctx, broker.StreamEvents)
	must(t, err)
	for i := range n {
		seqs[fmt.Sprintf("rg-%03d", i)] = uint64(i + 1)
	}
	started(t, c.p)
	c.waitBuffered(t, n)
	// rg-148 is far beyond the budget: held without its payload. Remove it from the stream.
	if m, err := s.GetMsg(ctx, seqs["rg-148"]); err != nil || m.Header.Get("Hookd-Delivery") != "rg-148" {
		t.Fatalf("stream sequence %d is not rg-148: %v", seqs["rg-148"], err)
	}
	must(t, s.DeleteMsg(ctx, seqs["rg-148"]))
	close(c.gate)
	got := c.rec.wait(t, n-2, 30*time.Second) // all but the deleted and the dead-lettered one
	for _, cl := range got {
		if cl.delivery == "rg-148" || cl.delivery == "rg-149" {
			t.Fatalf("unexpected successful call for %s", cl.delivery)
		}
	}
	dl, err := processor.NewDLQ(c.env.JS).Get(ctx, waitDeadLetter(t, c.env, "rg-149").ID)
	must(t, err)
	if !bytes.Equal(dl.Body, bodies["rg-149"]) {
		t.Fatalf("dead letter body: %d bytes, want the stored %d", len(dl.Body), len(bodies["rg-149"]))
	}
	if dl.Header.Get("Hookd-Delivery") != "rg-149" {
		t.Fatalf("dead letter headers %v", dl.Header)
	}
	c.rec.quiet(t, 300*time.Millisecond)
	// Everything settled: nothing pending on the consumer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		cons, err := c.env.JS.Consumer(ctx, broker.StreamEvents, c.p.Config().Consumer+"_0")
		must(t, err)
		ci, err := cons.Info(ctx)
		must(t, err)
		if ci.NumAckPending == 0 && ci.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer still has %d unacknowledged, %d pending", ci.NumAckPending, ci.NumPending)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
