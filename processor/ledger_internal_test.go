package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
)

func TestLedger(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	ctx := context.Background()
	kv, err := env.JS.KeyValue(ctx, broker.BucketEffects)
	if err != nil {
		t.Fatal(err)
	}
	newLedger := func(delivery string, attempt int, fresh bool) *Ledger {
		return &Ledger{kv: kv, prefix: effectPrefix(delivery, "h"), attempt: attempt, fresh: fresh, log: zerolog.Nop()}
	}
	type run struct {
		calls     int
		uncertain []bool
	}
	fn := func(r *run, res string, err error) func(context.Context) ([]byte, error) {
		return func(ctx context.Context) ([]byte, error) {
			r.calls++
			r.uncertain = append(r.uncertain, EffectUncertain(ctx))
			if err != nil {
				return nil, err
			}
			return []byte(res), nil
		}
	}

	t.Run("once, then the recorded result", func(t *testing.T) {
		t.Parallel()
		var r run
		got, err := newLedger("d1", 1, true).Do(ctx, "post", fn(&r, "42", nil))
		if err != nil || string(got) != "42" {
			t.Fatalf("first: %q, %v", got, err)
		}
		got, err = newLedger("d1", 2, false).Do(ctx, "post", fn(&r, "43", nil))
		if err != nil || string(got) != "42" || r.calls != 1 {
			t.Fatalf("second: %q, %v, calls %d", got, err, r.calls)
		}
		res, ok, err := newLedger("d1", 2, false).Done(ctx, "post")
		if !ok || err != nil || string(res) != "42" {
			t.Fatalf("Done: %q %v %v", res, ok, err)
		}
	})
	t.Run("a failure leaves the effect uncertain for the next attempt", func(t *testing.T) {
		t.Parallel()
		var r run
		if _, err := newLedger("d2", 1, true).Do(ctx, "post", fn(&r, "", errors.New("timeout"))); err == nil {
			t.Fatal("want the function's error")
		}
		if _, err := newLedger("d2", 2, false).Do(ctx, "post", fn(&r, "ok", nil)); err != nil {
			t.Fatal(err)
		}
		if r.calls != 2 || r.uncertain[0] || !r.uncertain[1] {
			t.Fatalf("calls %d uncertain %v", r.calls, r.uncertain)
		}
	})
	t.Run("a crash between claim and record", func(t *testing.T) {
		t.Parallel()
		claim, _ := json.Marshal(effectRecord{State: stateClaimed, Attempt: 1})
		if _, err := kv.Create(ctx, effectPrefix("d3", "h")+"post", claim); err != nil {
			t.Fatal(err)
		}
		var r run
		if _, err := newLedger("d3", 2, true).Do(ctx, "post", fn(&r, "ok", nil)); err != nil {
			t.Fatal(err)
		}
		if r.calls != 1 || !r.uncertain[0] {
			t.Fatalf("calls %d uncertain %v", r.calls, r.uncertain)
		}
	})
	t.Run("an effect done as the context ends is still recorded", func(t *testing.T) {
		t.Parallel()
		// The handler's timeout or shutdown ends ctx just as the effect happened: the record
		// must still be written, or the next attempt does the effect again.
		var r run
		cctx, cancel := context.WithCancel(ctx)
		got, err := newLedger("d5", 1, true).Do(cctx, "post", func(context.Context) ([]byte, error) {
			r.calls++
			cancel()
			return []byte("42"), nil
		})
		if err != nil || string(got) != "42" {
			t.Fatalf("first: %q, %v", got, err)
		}
		got, err = newLedger("d5", 2, false).Do(ctx, "post", fn(&r, "43", nil))
		if err != nil || string(got) != "42" || r.calls != 1 {
			t.Fatalf("second: %q, %v, calls %d (the effect was repeated)", got, err, r.calls)
		}
	})
	t.Run("keys that are not KV tokens are hashed", func(t *testing.T) {
		t.Parallel()
		for _, k := range []string{"a b", "x..y", ".x", "é", "labels.add.1.bug,triage", string(make([]byte, 200))} {
			if lk := ledgerKey(k); lk[0] != '=' {
				t.Errorf("ledgerKey(%q) = %q, want hashed", k, lk)
			}
			var r run
			if _, err := newLedger("d4", 1, true).Do(ctx, k, fn(&r, "", nil)); err != nil {
				t.Errorf("Do(%q): %v", k, err)
			}
		}
		if lk := ledgerKey("comment.welcome-1_x"); lk != "comment.welcome-1_x" {
			t.Errorf("readable key changed: %q", lk)
		}
	})
}

// TestLedgerResultOverMaxPayload: a result larger than the NATS server accepts in one message
// (1 MiB by default on a standalone server) must not leave the effect unrecorded, or every retry
// would do it again.
func TestLedgerResultOverMaxPayload(t *testing.T) {
	t.Parallel()
	ns := brokertest.Plain(t, func(o *server.Options) { o.MaxPayload = 64 << 10 })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "effects"})
	if err != nil {
		t.Fatal(err)
	}
	newLedger := func(attempt int) *Ledger {
		return &Ledger{kv: kv, prefix: effectPrefix("big", "h"), attempt: attempt, fresh: attempt == 1, log: zerolog.Nop()}
	}
	big := bytes.Repeat([]byte("x"), 100<<10)
	calls := 0
	run := func(context.Context) ([]byte, error) { calls++; return big, nil }
	got, err := newLedger(1).Do(ctx, "agent", run)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("first attempt: %d bytes, %v", len(got), err)
	}
	got, err = newLedger(2).Do(ctx, "agent", run)
	if err != nil || calls != 1 || got != nil {
		t.Fatalf("second attempt: %d bytes, %v, calls %d: want the effect not repeated and no result", len(got), err, calls)
	}
}
