package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/ghapp"
	"github.com/hookd/hookd/internal/githubfake"
	"github.com/hookd/hookd/processor"
)

// Receiver modes: what the test's stand-in for ingest does with a delivery.
const (
	modeStore     = iota // store it in the events stream like ingest, answer 202
	modeDrop             // answer 202 and lose it (hookd crashed after answering, say)
	modeFail             // answer 503
	modeStoreFail        // store it, then answer 503 (GitHub logs a failure hookd does not have)
	modeHold             // signal held, wait for release to be closed, then store it (a slow delivery)
)

// env is one test's world: a fake GitHub with one installation (acme: api, web), a real
// JetStream, a stand-in for ingest that stores deliveries, and a Service.
type env struct {
	t      testing.TB
	ctx    context.Context
	fake   *githubfake.Fake
	broker *brokertest.Env
	app    *ghapp.App
	svc    *Service
	inst   githubfake.Installation
	api    event.Tenant // acme/api
	mode   atomic.Int32
	waits  atomic.Int32

	held, release chan struct{} // modeHold
}

func setup(t testing.TB, cfg Config, mods ...func(*Options)) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), held: make(chan struct{}), release: make(chan struct{})}
	e.broker = brokertest.New(t)
	recv := httptest.NewServer(http.HandlerFunc(e.receive))
	t.Cleanup(recv.Close)
	e.fake = githubfake.NewServer(t, githubfake.Options{WebhookURL: recv.URL, WebhookSecret: "s3cret"})
	inst, err := e.fake.AddInstallation("acme", "api", "web")
	if err != nil {
		t.Fatal(err)
	}
	e.inst = inst
	e.api = tenantOf(inst, "api")
	a := e.fake.App()
	e.app, err = ghapp.New(ghapp.Config{AppID: a.ID, PrivateKey: string(a.PrivateKeyPEM), APIURL: e.fake.URL()}, ghapp.Options{Now: e.fake.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = e.newService(cfg, mods...)
	return e
}

// newService makes another Service (a replica) over the same GitHub and JetStream.
func (e *env) newService(cfg Config, mods ...func(*Options)) *Service {
	e.t.Helper()
	opts := Options{
		GitHub: e.app, JS: e.broker.JS, BotLogin: e.fake.BotLogin(), Now: e.fake.Now,
		Log:  zerolog.New(zerolog.NewTestWriter(e.t)).Level(zerolog.WarnLevel),
		Wait: func(context.Context, time.Duration) error { e.waits.Add(1); return nil },
	}
	for _, m := range mods {
		m(&opts)
	}
	s, err := New(e.ctx, cfg, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// serviceOver makes another Service whose GitHub calls go through rt (to watch or alter them).
func (e *env) serviceOver(rt http.RoundTripper) *Service {
	e.t.Helper()
	a := e.fake.App()
	app, err := ghapp.New(ghapp.Config{AppID: a.ID, PrivateKey: string(a.PrivateKeyPEM), APIURL: e.fake.URL()},
		ghapp.Options{Now: e.fake.Now, Transport: rt})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.newService(Config{}, func(o *Options) { o.GitHub = app })
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func tenantOf(in githubfake.Installation, name string) event.Tenant {
	for _, r := range in.Repos {
		if r.Name == name {
			return event.Tenant{InstallationID: in.ID, RepositoryID: r.ID, Owner: r.Owner, Name: r.Name}
		}
	}
	panic("no repository " + name)
}

// receive stands in for ingest: it stores a delivery the way ingest does (same subject,
// headers and message id), or loses it, or fails, per e.mode.
func (e *env) receive(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	switch e.mode.Load() {
	case modeDrop:
		w.WriteHeader(http.StatusAccepted)
		return
	case modeFail:
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	status := http.StatusAccepted
	switch e.mode.Load() {
	case modeStoreFail:
		status = http.StatusServiceUnavailable
	case modeHold:
		e.held <- struct{}{}
		<-e.release
	}
	m := event.Meta{Event: r.Header.Get("X-GitHub-Event"), Delivery: r.Header.Get("X-GitHub-Delivery"), SecretIndex: 0,
		ReceivedAt: time.Now(), Source: event.SourceWebhook}
	if err := event.ParsePayload(&m, body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ack, err := e.broker.JS.PublishMsg(r.Context(), &nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: body}, jetstream.WithMsgID(m.Delivery))
	if _, err := broker.PublishOutcome(ack, err); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(status)
}

// stored returns the events stream's messages, oldest first.
func (e *env) stored() []*jetstream.RawStreamMsg {
	e.t.Helper()
	s, err := e.broker.JS.Stream(e.ctx, broker.StreamEvents)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(e.ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// reconciles returns the stored reconcile events.
func (e *env) reconciles() []*jetstream.RawStreamMsg {
	var out []*jetstream.RawStreamMsg
	for _, m := range e.stored() {
		if m.Header.Get(event.HeaderSource) == event.SourceReconcile {
			out = append(out, m)
		}
	}
	return out
}

// reconciledIssues is the set of issue numbers the stored reconcile events are about.
func (e *env) reconciledIssues() map[int]bool {
	e.t.Helper()
	got := map[int]bool{}
	for _, m := range e.reconciles() {
		var p struct {
			Issue struct{ Number int } `json:"issue"`
		}
		if err := json.Unmarshal(m.Data, &p); err != nil {
			e.t.Fatal(err)
		}
		got[p.Issue.Number] = true
	}
	return got
}

// markSeen writes the ItemState the processor would after handling the issue's latest change.
func (e *env) markSeen(t event.Tenant, number int) {
	e.t.Helper()
	is, err := e.fake.Issue(t.FullName(), number)
	if err != nil {
		e.t.Fatal(err)
	}
	kv, err := e.broker.JS.KeyValue(e.ctx, broker.BucketState)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := json.Marshal(processor.ItemState{UpdatedAt: is.UpdatedAt.UTC().Truncate(time.Second), Delivery: "d", Event: "issues"})
	if _, err := kv.Put(e.ctx, processor.StateKey(t, number), b); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) sweep(s *Service, t event.Tenant) SweepReport {
	e.t.Helper()
	rep, err := s.sweepOnce(e.ctx, t)
	if err != nil {
		e.t.Fatalf("sweep %s: %v", t, err)
	}
	return rep
}

func (e *env) repoState(t event.Tenant) RepoState {
	e.t.Helper()
	st, err := e.svc.loadRepo(e.ctx, t)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}
