package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/event"
)

// publish publishes a delivery as ingest does: without a Nats-Msg-Id, so that only the
// one-message-per-subject limit can refuse a second copy.
func publish(t *testing.T, js jetstream.JetStream, m event.Meta, body string) (*jetstream.PubAck, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: []byte(body)}
	return js.PublishMsg(ctx, msg)
}

func TestEnsure(t *testing.T) {
	env := brokertest.New(t)
	ctx := context.Background()

	t.Run("idempotent", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if err := broker.Ensure(ctx, env.JS, env.Config); err != nil {
				t.Fatalf("ensure #%d: %v", i+2, err)
			}
		}
		s, err := env.JS.Stream(ctx, broker.StreamEvents)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.MaxMsgsPerSubject; got != 1 {
			t.Fatalf("MaxMsgsPerSubject = %d, want 1", got)
		}
		for _, b := range []string{broker.BucketEffects, broker.BucketState, broker.BucketSweep, broker.BucketMembers} {
			if _, err := env.JS.KeyValue(ctx, b); err != nil {
				t.Errorf("bucket %s: %v", b, err)
			}
		}
	})

	t.Run("partitioned subject and per-delivery dedup beyond the duplicate window", func(t *testing.T) {
		m := event.Meta{Event: "issues", Action: "opened", Delivery: "d-1", InstallationID: 7, RepositoryID: 42, Repository: "acme/api", SecretIndex: 0}
		ack, err := publish(t, env.JS, m, `{"a":1}`)
		if err != nil || ack.Duplicate {
			t.Fatalf("first publish: ack=%+v err=%v", ack, err)
		}
		// A different Nats-Msg-Id simulates a redelivery after JetStream's short duplicate window.
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err = env.JS.PublishMsg(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: []byte(`{"a":1}`)}, jetstream.WithMsgID("other"))
		if !broker.IsDuplicateSubject(err) {
			t.Fatalf("second publish of the same delivery: err=%v, want a per-subject duplicate", err)
		}
		raw, err := mustStream(t, env).GetLastMsgForSubject(ctx, "hookd.events.*.7.42.issues.d-1")
		if err != nil {
			t.Fatalf("stored subject lookup: %v", err)
		}
		ss, err := event.ParseStoredSubject(raw.Subject)
		if err != nil {
			t.Fatal(err)
		}
		if ss.InstallationID != 7 || ss.RepositoryID != 42 || ss.Event != "issues" || ss.Delivery != "d-1" || ss.Partition >= env.Config.Partitions {
			t.Fatalf("stored subject parsed to %+v", ss)
		}
		got, err := event.MetaFromHeader(raw.Header)
		if err != nil || got.Repository != "acme/api" || got.Action != "opened" {
			t.Fatalf("headers round trip: %+v, %v", got, err)
		}
	})

	t.Run("restart keeps stored events", func(t *testing.T) {
		m := event.Meta{Event: "push", Delivery: "d-restart", InstallationID: 1, RepositoryID: 2}
		if _, err := publish(t, env.JS, m, `{}`); err != nil {
			t.Fatal(err)
		}
		env2 := env.Restart(t)
		_, err := mustStream(t, env2).GetLastMsgForSubject(ctx, "hookd.events.*.1.2.push.d-restart")
		if err != nil {
			t.Fatalf("after restart: %v", err)
		}
		if dup, err := broker.PublishOutcome(publish(t, env2.JS, m, `{}`)); !dup || err != nil {
			t.Fatalf("dedup after restart: duplicate=%v err=%v", dup, err)
		}
	})
}

// TestEnsureExisting: Ensure against streams that already exist with other settings.
func TestEnsureExisting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("partition count of a stream holding events", func(t *testing.T) {
		t.Parallel()
		env := brokertest.New(t) // 4 partitions
		m := event.Meta{Event: "push", Delivery: "d-part", InstallationID: 1, RepositoryID: 5}
		if _, err := publish(t, env.JS, m, `{}`); err != nil {
			t.Fatal(err)
		}
		cfg := env.Config
		cfg.Partitions = 7
		err := broker.Ensure(ctx, env.JS, cfg)
		for _, want := range []string{"nats.partitions", "4 partitions", "nats stream purge HOOKD_EVENTS"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Ensure with 7 partitions over a stream of 4 holding an event: err = %v, want mention of %q", err, want)
			}
		}
		// Open (what hookd runs at start) says the same, without its hint about external servers.
		if _, _, err := broker.Open(ctx, env.URL, cfg, "test", zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "nats.partitions") || strings.Contains(err.Error(), "external NATS") {
			t.Fatalf("Open with 7 partitions: err = %v", err)
		}
		// Nothing changed: a redelivery of the stored delivery is still a duplicate.
		if dup, err := broker.PublishOutcome(publish(t, env.JS, m, `{}`)); !dup || err != nil {
			t.Fatalf("redelivery after the refused change: duplicate=%v err=%v", dup, err)
		}
		// Once the stream is purged, the new count applies.
		if err := mustStream(t, env).Purge(ctx); err != nil {
			t.Fatal(err)
		}
		if err := broker.Ensure(ctx, env.JS, cfg); err != nil {
			t.Fatalf("Ensure with 7 partitions over an empty stream: %v", err)
		}
		if got := mustStream(t, env).CachedInfo().Config.SubjectTransform; got == nil || !strings.Contains(got.Destination, "partition(7,") {
			t.Fatalf("subject transform after repartitioning: %+v", got)
		}
	})

	t.Run("setting JetStream cannot change", func(t *testing.T) {
		t.Parallel()
		env := brokertest.New(t)
		if err := env.JS.DeleteStream(ctx, broker.StreamDLQ); err != nil {
			t.Fatal(err)
		}
		sc := broker.DLQStreamConfig(env.Config)
		sc.Storage = jetstream.MemoryStorage
		if _, err := env.JS.CreateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
		err := broker.Ensure(ctx, env.JS, env.Config)
		for _, want := range []string{"HOOKD_DLQ", "storage type", "nats stream rm HOOKD_DLQ"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Ensure over a memory-stored DLQ: err = %v, want mention of %q", err, want)
			}
		}
	})

	t.Run("replicas starting at once", func(t *testing.T) {
		t.Parallel()
		cfg := broker.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Sync: broker.SyncInterval, Partitions: 4}
		cfg.Defaults()
		srv, err := broker.StartEmbedded(cfg, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		errs := make(chan error, 4)
		for range cap(errs) {
			go func() {
				nc, err := nats.Connect(srv.ClientURL())
				if err != nil {
					errs <- err
					return
				}
				defer nc.Close()
				js, err := jetstream.New(nc)
				if err == nil {
					ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					err = broker.Ensure(ectx, js, cfg)
				}
				errs <- err
			}()
		}
		for range cap(errs) {
			if err := <-errs; err != nil {
				t.Errorf("concurrent Ensure: %v", err)
			}
		}
	})
}

func mustStream(t *testing.T, env *brokertest.Env) jetstream.Stream {
	t.Helper()
	s, err := env.JS.Stream(context.Background(), broker.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*broker.Config)
		want string
	}{
		{"defaults", func(*broker.Config) {}, ""},
		{"bad sync", func(c *broker.Config) { c.Sync = "sometimes" }, "nats.sync"},
		{"replicas on embedded", func(c *broker.Config) { c.Replicas = 3 }, "needs a cluster"},
		{"short max age", func(c *broker.Config) { c.MaxAge = time.Hour }, "nats.max_age"},
		{"partitions", func(c *broker.Config) { c.Partitions = 5000 }, "nats.partitions"},
		{"negative connect timeout", func(c *broker.Config) { c.ConnectTimeout = -time.Second }, "nats.connect_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c broker.Config
			c.Defaults()
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

// TestEnsureCluster: the topology works on a 3-node cluster with 3 replicas, and keeps storing
// and de-duplicating with one node down.
func TestEnsureCluster(t *testing.T) {
	t.Parallel()
	c := brokertest.StartCluster(t, 3)
	nc, err := nats.Connect(c.URL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := broker.Config{URL: c.URL, Replicas: 3, Partitions: 4}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ { // idempotent
		if err := broker.Ensure(ctx, js, cfg); err != nil {
			t.Fatalf("ensure #%d: %v", i+1, err)
		}
	}
	s, err := js.Stream(ctx, broker.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Replicas; got != 3 {
		t.Fatalf("events stream replicas = %d, want 3", got)
	}
	kv, err := js.KeyValue(ctx, broker.BucketEffects)
	if err != nil {
		t.Fatal(err)
	}
	pub := func(d string) (bool, error) {
		m := event.Meta{Event: "issues", Delivery: d, InstallationID: 1, RepositoryID: 2}
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		defer pcancel()
		return broker.PublishOutcome(js.PublishMsg(pctx, &nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: []byte(`{}`)}))
	}
	if dup, err := pub("c-1"); dup || err != nil {
		t.Fatalf("first publish: dup=%v err=%v", dup, err)
	}
	c.Nodes[0].Kill() // quorum of two remains
	var dup bool
	deadline := time.Now().Add(30 * time.Second)
	for {
		dup, err = pub("c-1")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !dup || err != nil {
		t.Fatalf("with a node down, a redelivery: dup=%v err=%v; want duplicate", dup, err)
	}
	if dup, err := pub("c-2"); dup || err != nil {
		t.Fatalf("with a node down, a new delivery: dup=%v err=%v", dup, err)
	}
	// The bucket's own stream may have had its leader on the killed node:
	// writes resume once the survivors elect a new one.
	deadline = time.Now().Add(30 * time.Second)
	for {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = kv.Put(pctx, "k", []byte("v"))
		pcancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("KV put with a node down: %v", err)
	}
	if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
		t.Fatalf("KV get with a node down: %v", err)
	}
}

// TestPublishOutcome classifies the server's real answers: stored, stored already (per-subject
// refusal or Nats-Msg-Id window), and stream full, which is not a duplicate.
func TestPublishOutcome(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t, func(c *broker.Config) { c.MaxBytes = 64 << 10 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := event.Meta{Event: "issues", Delivery: "o-1", InstallationID: 1, RepositoryID: 2}
	if dup, err := broker.PublishOutcome(publish(t, env.JS, m, `{}`)); dup || err != nil {
		t.Fatalf("new delivery: duplicate=%v err=%v", dup, err)
	}
	if dup, err := broker.PublishOutcome(publish(t, env.JS, m, `{}`)); !dup || err != nil {
		t.Fatalf("same delivery again: duplicate=%v err=%v", dup, err)
	}
	msg := func(d string) *nats.Msg {
		m := event.Meta{Event: "issues", Delivery: d, InstallationID: 1, RepositoryID: 2}
		return &nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: make([]byte, 16<<10)}
	}
	if _, err := env.JS.PublishMsg(ctx, msg("o-2"), jetstream.WithMsgID("id-2")); err != nil {
		t.Fatal(err)
	}
	// Same Nats-Msg-Id on another subject: the server answers with a duplicate ack, no error.
	if dup, err := broker.PublishOutcome(env.JS.PublishMsg(ctx, msg("o-3"), jetstream.WithMsgID("id-2"))); !dup || err != nil {
		t.Fatalf("duplicate Nats-Msg-Id: duplicate=%v err=%v", dup, err)
	}
	var err error
	for i := 0; i < 16 && err == nil; i++ {
		_, err = broker.PublishOutcome(env.JS.PublishMsg(ctx, msg(fmt.Sprintf("fill-%d", i))))
	}
	if !broker.IsStreamFull(err) || broker.IsDuplicateSubject(err) {
		t.Fatalf("publishing past nats.max_bytes: err=%v, want a stream-full error that is no duplicate", err)
	}
}
