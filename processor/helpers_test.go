package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/payloads"
	"github.com/hookd/hookd/planner"
	"github.com/hookd/hookd/processor"
)

// fastConfig is a processor configuration for tests: short waits, small retry policy.
func fastConfig() processor.Config {
	return processor.Config{
		AckWait:         time.Second,
		PinnedTTL:       3 * time.Second, // ack_wait + pull expiry (2s) plus a margin for timers on a loaded machine
		ShutdownTimeout: 5 * time.Second,
		HandlerTimeout:  10 * time.Second,
		Concurrency:     16,
		BotLogin:        "hookd-test[bot]",
		Retry: planner.RetryPolicy{
			Initial: 50 * time.Millisecond, Max: 400 * time.Millisecond, Multiplier: 2,
			UnknownInitial: 50 * time.Millisecond, UnknownMax: 200 * time.Millisecond,
			MaxAttempts: 3, Jitter: 0.01,
		},
	}
}

// repo is a test tenant.
type repo struct {
	inst int64
	id   int64
	name string // owner/name
}

func (r repo) tenant() event.Tenant {
	return event.Meta{InstallationID: r.inst, RepositoryID: r.id, Repository: r.name}.Tenant()
}

// body returns the named real payload rewritten to belong to r, optionally with more changes.
func body(t testing.TB, name string, r repo, mod func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(payloads.Get(name), &m); err != nil {
		t.Fatal(err)
	}
	owner, _, _ := cutSlash(r.name)
	m["installation"] = map[string]any{"id": r.inst, "account": map[string]any{"login": owner}}
	if r.id != 0 {
		rp, _ := m["repository"].(map[string]any)
		if rp == nil {
			rp = map[string]any{}
		}
		rp["id"] = r.id
		rp["full_name"] = r.name
		rp["owner"] = map[string]any{"login": owner}
		m["repository"] = rp
	} else {
		delete(m, "repository")
	}
	if mod != nil {
		mod(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cutSlash(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// publish stores a delivery the way ingest does and returns its metadata.
func publish(t testing.TB, js jetstream.JetStream, eventName, delivery string, b []byte) event.Meta {
	t.Helper()
	m := event.Meta{Event: eventName, Delivery: delivery, ReceivedAt: time.Now().UTC(), SecretIndex: 0, Source: event.SourceWebhook}
	if err := event.ParsePayload(&m, b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// As ingest stores it: no Nats-Msg-Id; the per-delivery subject keeps a redelivery once.
	if _, err := broker.PublishOutcome(js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: b})); err != nil {
		t.Fatalf("publish %s: %v", delivery, err)
	}
	return m
}

// started runs p until the test ends (or stop is called) and returns stop, which cancels and
// waits for Run to return.
func started(t testing.TB, p *processor.Processor) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("processor did not stop within 30s")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return stop
}

func newProcessor(t testing.TB, env *brokertest.Env, cfg processor.Config, mux *processor.Mux, clients processor.Clients) *processor.Processor {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	p, err := processor.New(cfg, processor.Deps{
		JS: env.JS, Mux: mux, Clients: clients, Log: log, Registerer: prometheus.NewRegistry(), Partitions: env.Config.Partitions,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// recorder collects handler calls.
type recorder struct {
	mu    sync.Mutex
	calls []call
	ch    chan call
}

type call struct {
	handler  string
	delivery string
	tenant   event.Tenant
	seq      uint64
	attempt  int
	at       time.Time
	end      time.Time
}

func newRecorder() *recorder { return &recorder{ch: make(chan call, 100000)} }

func (r *recorder) add(c call) {
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	r.ch <- c
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// wait receives n calls or fails after d.
func (r *recorder) wait(t testing.TB, n int, d time.Duration) []call {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var got []call
	for len(got) < n {
		select {
		case c := <-r.ch:
			got = append(got, c)
		case <-timer.C:
			t.Fatalf("got %d handler calls within %s, want %d", len(got), d, n)
		}
	}
	return got
}

// quiet asserts that no further call arrives within d.
func (r *recorder) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case c := <-r.ch:
		t.Fatalf("unexpected handler call %+v", c)
	case <-time.After(d):
	}
}

// metaFor is the metadata ingest would store for an issue_comment delivery in r.
func metaFor(r repo, delivery string) event.Meta {
	owner, _, _ := cutSlash(r.name)
	return event.Meta{
		Event: "issue_comment", Action: "created", Delivery: delivery, InstallationID: r.inst, RepositoryID: r.id,
		Repository: r.name, Owner: owner, Sender: "octocat", SenderType: "User", ReceivedAt: time.Now().UTC(),
		Source: event.SourceWebhook,
	}
}
