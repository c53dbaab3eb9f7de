package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/ingest"
	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/payloads"
)

const (
	secretOld = "old-secret"
	secretNew = "new-secret"
)

// fixture is a running ingest.Server (real listener, real http.Server) over a real JetStream.
type fixture struct {
	env    *brokertest.Env
	srv    *ingest.Server
	base   string // http://127.0.0.1:port
	hook   string // webhook URL
	reg    *prometheus.Registry
	logs   *syncBuffer
	stream jetstream.Stream
	cancel context.CancelFunc
	stop   func() error // cancels Serve's context and returns its result (once)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type option func(*ingest.Config, *ingest.Deps)

// setup starts ingest on env (a fresh brokertest.New when nil) with both test secrets.
func setup(t testing.TB, env *brokertest.Env, opts ...option) *fixture {
	t.Helper()
	if env == nil {
		env = brokertest.New(t)
	}
	f := &fixture{env: env, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	cfg := ingest.Config{Addr: "127.0.0.1:0", PublishTimeout: 2 * time.Second}
	deps := ingest.Deps{
		JetStream:  env.JS,
		Secrets:    []string{secretOld, secretNew},
		Log:        zerolog.New(f.logs),
		Registerer: f.reg,
		Webhook:    true,
	}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	srv, err := ingest.New(cfg, deps)
	if err != nil {
		t.Fatalf("ingest.New: %v", err)
	}
	f.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.base = "http://" + ln.Addr().String()
	cfg.Defaults()
	f.hook = f.base + cfg.PathPrefix + cfg.Path
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	f.stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := f.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	f.stream, err = env.JS.Stream(context.Background(), broker.StreamEvents)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatal(err)
	}
	return f
}

// delivery is one webhook request.
type delivery struct {
	method      string // default POST
	event       string
	id          string
	body        []byte
	secret      string // signs the body; "" leaves the signature out
	sig         string // X-Hub-Signature-256 as is, instead of signing
	sha1        string // X-Hub-Signature
	contentType string // default application/json
	header      map[string]string
}

var idSeq atomic.Int64

func newID(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), idSeq.Add(1))
}

func (d delivery) request(t testing.TB, target string) *http.Request {
	t.Helper()
	method := d.method
	if method == "" {
		method = http.MethodPost
	}
	r, err := http.NewRequest(method, target, bytes.NewReader(d.body))
	if err != nil {
		t.Fatal(err)
	}
	if d.event != "" {
		r.Header.Set(ingest.HeaderEvent, d.event)
	}
	if d.id != "" {
		r.Header.Set(ingest.HeaderDelivery, d.id)
	}
	switch {
	case d.sig != "":
		r.Header.Set(ingest.HeaderSignature256, d.sig)
	case d.secret != "":
		r.Header.Set(ingest.HeaderSignature256, ingest.Sign([]byte(d.secret), d.body))
	}
	if d.sha1 != "" {
		r.Header.Set(ingest.HeaderSignatureSHA1, d.sha1)
	}
	ct := d.contentType
	if ct == "" {
		ct = "application/json"
	}
	r.Header.Set("Content-Type", ct)
	for k, v := range d.header {
		r.Header.Set(k, v)
	}
	return r
}

func send(t testing.TB, target string, d delivery) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(d.request(t, target))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return resp, string(b)
}

// withInstallation injects an installation object into a real payload.
func withInstallation(t testing.TB, body []byte, id int64, login string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m["installation"] = json.RawMessage(fmt.Sprintf(`{"id":%d,"account":{"login":%q}}`, id, login))
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stored returns the messages stored in HOOKD_EVENTS for a delivery id (any tenant, any event).
func (f *fixture) stored(t testing.TB, id string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	filter := event.EventsPrefix + ".*.*.*.*." + id
	info, err := f.stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	var out []*jetstream.RawStreamMsg
	for subj, n := range info.State.Subjects {
		if n != 1 {
			t.Fatalf("subject %s holds %d messages", subj, n)
		}
		m, err := f.stream.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			t.Fatalf("get %s: %v", subj, err)
		}
		out = append(out, m)
	}
	return out
}

func (f *fixture) streamMsgs(t testing.TB) uint64 {
	t.Helper()
	info, err := f.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestContract(t *testing.T) {
	f := setup(t, nil)
	issues := withInstallation(t, payloads.Get("issues.opened"), 4242, "acme-inst")
	ping := payloads.Get("ping")
	form := []byte("payload=" + url.QueryEscape(string(issues)))

	type row struct {
		name       string
		d          delivery
		pre        func(t *testing.T, d delivery) // before the request
		wantStatus int
		wantBody   string // exact answer for 2xx, substring of the error for others
		wantStored bool
		check      func(t *testing.T, resp *http.Response, msg *jetstream.RawStreamMsg)
	}
	rows := []row{
		{
			name:       "new delivery is stored and gets 202",
			d:          delivery{event: "issues", body: issues, secret: secretOld, header: map[string]string{ingest.HeaderHookID: "123", ingest.HeaderTargetID: "79929171", ingest.HeaderTargetType: "integration"}},
			wantStatus: http.StatusAccepted, wantBody: `{"delivery":"%s","stored":true}`, wantStored: true,
			check: func(t *testing.T, _ *http.Response, msg *jetstream.RawStreamMsg) {
				m, err := event.MetaFromHeader(msg.Header)
				if err != nil {
					t.Fatal(err)
				}
				if m.Event != "issues" || m.Action != "opened" || m.HookID != 123 || m.TargetID != 79929171 || m.TargetType != "integration" ||
					m.InstallationID != 4242 || m.Owner != "acme-inst" || m.RepositoryID == 0 || m.Repository == "" ||
					m.Sender == "" || m.SenderType == "" || m.SecretIndex != 0 || m.Source != event.SourceWebhook ||
					time.Since(m.ReceivedAt) > time.Minute {
					t.Fatalf("stored meta = %+v", m)
				}
				if !bytes.Equal(msg.Data, issues) {
					t.Fatal("stored body differs from the body sent")
				}
				ss, err := event.ParseStoredSubject(msg.Subject)
				if err != nil || ss.InstallationID != 4242 || ss.RepositoryID != m.RepositoryID || ss.Event != "issues" {
					t.Fatalf("stored subject %s: %+v %v", msg.Subject, ss, err)
				}
			},
		},
		{
			name:       "second secret verifies too and its index is stored",
			d:          delivery{event: "issues", body: issues, secret: secretNew},
			wantStatus: http.StatusAccepted, wantBody: `{"delivery":"%s","stored":true}`, wantStored: true,
			check: func(t *testing.T, _ *http.Response, msg *jetstream.RawStreamMsg) {
				if got := msg.Header.Get(event.HeaderSecretIndex); got != "1" {
					t.Fatalf("secret index = %q, want 1", got)
				}
			},
		},
		{
			name: "already stored delivery gets 200 duplicate",
			d:    delivery{event: "issues", body: issues, secret: secretOld},
			pre: func(t *testing.T, d delivery) {
				if resp, body := send(t, f.hook, d); resp.StatusCode != http.StatusAccepted {
					t.Fatalf("first send: %d %s", resp.StatusCode, body)
				}
			},
			wantStatus: http.StatusOK, wantBody: `{"delivery":"%s","stored":true,"duplicate":true}`, wantStored: true,
		},
		{
			name:       "ping is stored as a ping and gets 200",
			d:          delivery{event: "ping", body: ping, secret: secretOld},
			wantStatus: http.StatusOK, wantBody: `{"delivery":"%s","stored":true,"ping":true}`, wantStored: true,
			check: func(t *testing.T, _ *http.Response, msg *jetstream.RawStreamMsg) {
				if got := msg.Header.Get(event.HeaderEvent); got != "ping" {
					t.Fatalf("event header = %q", got)
				}
			},
		},
		{
			name:       "form-encoded delivery stores the decoded payload",
			d:          delivery{event: "issues", body: form, secret: secretOld, contentType: "application/x-www-form-urlencoded"},
			wantStatus: http.StatusAccepted, wantBody: `{"delivery":"%s","stored":true}`, wantStored: true,
			check: func(t *testing.T, _ *http.Response, msg *jetstream.RawStreamMsg) {
				if !bytes.Equal(msg.Data, issues) {
					t.Fatalf("stored body is not the decoded payload: %.80s", msg.Data)
				}
			},
		},
		{
			name:       "form with a charset and other fields stores the payload field",
			d:          delivery{event: "issues", body: []byte("ref=x&" + string(form) + "&zen=a+b"), secret: secretOld, contentType: "application/x-www-form-urlencoded; charset=utf-8"},
			wantStatus: http.StatusAccepted, wantBody: `{"delivery":"%s","stored":true}`, wantStored: true,
			check: func(t *testing.T, _ *http.Response, msg *jetstream.RawStreamMsg) {
				if !bytes.Equal(msg.Data, issues) {
					t.Fatalf("stored body is not the decoded payload: %.80s", msg.Data)
				}
			},
		},
		{
			name:       "JSON with a charset parameter",
			d:          delivery{event: "issues", body: issues, secret: secretOld, contentType: "application/json; charset=utf-8"},
			wantStatus: http.StatusAccepted, wantBody: `{"delivery":"%s","stored":true}`, wantStored: true,
		},
		{name: "missing signature", d: delivery{event: "issues", body: issues}, wantStatus: 401, wantBody: "missing X-Hub-Signature-256"},
		{name: "only the sha1 signature", d: delivery{event: "issues", body: issues, sha1: "sha1=0123456789abcdef0123456789abcdef01234567"}, wantStatus: 401, wantBody: "legacy X-Hub-Signature"},
		{name: "wrong secret", d: delivery{event: "issues", body: issues, secret: "not-configured"}, wantStatus: 401, wantBody: "does not match"},
		{name: "signature over another body", d: delivery{event: "issues", body: issues, sig: ingest.Sign([]byte(secretOld), ping)}, wantStatus: 401, wantBody: "does not match"},
		{name: "malformed signature", d: delivery{event: "issues", body: issues, sig: "sha256=xyz"}, wantStatus: 401, wantBody: "not sha256="},
		{name: "form signature over the decoded payload", d: delivery{event: "issues", body: form, sig: ingest.Sign([]byte(secretOld), issues), contentType: "application/x-www-form-urlencoded"}, wantStatus: 401, wantBody: "does not match"},
		{name: "missing event header", d: delivery{body: issues, secret: secretOld}, wantStatus: 400, wantBody: "missing X-GitHub-Event"},
		{name: "invalid event header", d: delivery{event: "Issues.x", body: issues, secret: secretOld}, wantStatus: 400, wantBody: "X-GitHub-Event header"},
		{name: "missing delivery header", d: delivery{event: "issues", id: "-", body: issues, secret: secretOld}, wantStatus: 400, wantBody: "missing X-GitHub-Delivery"},
		{name: "invalid delivery header", d: delivery{event: "issues", id: "a.b", body: issues, secret: secretOld}, wantStatus: 400, wantBody: "X-GitHub-Delivery header"},
		{name: "negative installation id in the payload", d: delivery{event: "issues", body: withInstallation(t, payloads.Get("issues.opened"), -5, "acme-inst"), secret: secretOld}, wantStatus: 400, wantBody: "installation: id -5 is negative"},
		{name: "non-numeric hook id", d: delivery{event: "issues", body: issues, secret: secretOld, header: map[string]string{ingest.HeaderHookID: "12x"}}, wantStatus: 400, wantBody: "X-GitHub-Hook-ID"},
		{name: "non-JSON body", d: delivery{event: "issues", body: []byte("hello"), secret: secretOld}, wantStatus: 400, wantBody: "not a JSON object"},
		{name: "JSON null body", d: delivery{event: "issues", body: []byte("null"), secret: secretOld}, wantStatus: 400, wantBody: "not a JSON object"},
		{name: "truncated JSON body", d: delivery{event: "issues", body: issues[:len(issues)/2], secret: secretOld}, wantStatus: 400, wantBody: "not a JSON object"},
		{name: "form without payload field", d: delivery{event: "issues", body: []byte("data=%7B%7D"), secret: secretOld, contentType: "application/x-www-form-urlencoded"}, wantStatus: 400, wantBody: `no "payload" field`},
		{name: "form that does not decode", d: delivery{event: "issues", body: []byte("payload=%zz"), secret: secretOld, contentType: "application/x-www-form-urlencoded; charset=utf-8"}, wantStatus: 400, wantBody: "does not decode"},
		{name: "form payload not JSON", d: delivery{event: "issues", body: []byte("payload=hello"), secret: secretOld, contentType: "application/x-www-form-urlencoded"}, wantStatus: 400, wantBody: "not a JSON object"},
		{
			name: "body over the limit", d: delivery{event: "issues", body: bytes.Repeat([]byte(" "), ingest.DefaultMaxBodyBytes+1), secret: secretOld},
			wantStatus: 413, wantBody: "http.max_body_bytes",
		},
		{
			name: "GET", d: delivery{method: http.MethodGet, event: "issues", secret: secretOld},
			wantStatus: 405, wantBody: "method not allowed",
			check: func(t *testing.T, resp *http.Response, _ *jetstream.RawStreamMsg) {
				if got := resp.Header.Get("Allow"); got != http.MethodPost {
					t.Fatalf("Allow = %q", got)
				}
			},
		},
		{name: "PUT", d: delivery{method: http.MethodPut, event: "issues", body: issues, secret: secretOld}, wantStatus: 405, wantBody: "method not allowed"},
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := tc.d
			switch d.id {
			case "":
				d.id = newID("c")
			case "-":
				d.id = ""
			}
			if tc.pre != nil {
				tc.pre(t, d)
			}
			resp, body := send(t, f.hook, d)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.wantStatus, body)
			}
			if resp.Header.Get(ingest.HeaderRequestID) == "" {
				t.Error("no X-Request-Id in the answer")
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.wantStatus < 300 {
				if want := fmt.Sprintf(tc.wantBody, d.id) + "\n"; body != want {
					t.Fatalf("body %q, want %q", body, want)
				}
			} else {
				var e struct{ Error string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, tc.wantBody) {
					t.Fatalf("error body %q (%v), want an error mentioning %q", body, err, tc.wantBody)
				}
			}
			var msgs []*jetstream.RawStreamMsg
			if d.id != "" && event.ValidDeliveryID(d.id) {
				msgs = f.stored(t, d.id)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.wantStored]; len(msgs) != want {
				t.Fatalf("%d messages stored for the delivery, want %d", len(msgs), want)
			}
			if tc.check != nil {
				var m *jetstream.RawStreamMsg
				if len(msgs) == 1 {
					m = msgs[0]
				}
				tc.check(t, resp, m)
			}
		})
	}
}

func TestDuplicates(t *testing.T) {
	f := setup(t, nil)
	body := withInstallation(t, payloads.Get("pull_request.opened"), 7, "acme")

	t.Run("after the Nats-Msg-Id window", func(t *testing.T) {
		t.Parallel()
		d := delivery{event: "pull_request", id: newID("w"), body: body, secret: secretOld}
		// Store the delivery under another Nats-Msg-Id: what the stream holds once the two-minute
		// window has passed. The per-delivery subject still refuses the redelivery.
		m := event.Meta{Event: d.event, Delivery: d.id, SecretIndex: 0}
		if err := event.ParsePayload(&m, body); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := f.env.JS.PublishMsg(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: body}, jetstream.WithMsgID("earlier-"+d.id)); err != nil {
			t.Fatal(err)
		}
		resp, answer := send(t, f.hook, d)
		if resp.StatusCode != http.StatusOK || !strings.Contains(answer, `"duplicate":true`) {
			t.Fatalf("redelivery: %d %s, want 200 duplicate", resp.StatusCode, answer)
		}
		if n := len(f.stored(t, d.id)); n != 1 {
			t.Fatalf("%d stored, want 1", n)
		}
	})

	t.Run("concurrent senders of one delivery", func(t *testing.T) {
		t.Parallel()
		d := delivery{event: "pull_request", id: newID("conc"), body: body, secret: secretNew}
		const senders = 24
		var wg sync.WaitGroup
		statuses := make(chan int, senders)
		start := make(chan struct{})
		for range senders {
			wg.Go(func() {
				<-start
				resp, answer := send(t, f.hook, d)
				if resp.StatusCode == http.StatusOK && !strings.Contains(answer, `"duplicate":true`) {
					t.Errorf("200 without duplicate: %s", answer)
				}
				statuses <- resp.StatusCode
			})
		}
		close(start)
		wg.Wait()
		close(statuses)
		count := map[int]int{}
		for s := range statuses {
			count[s]++
		}
		if count[http.StatusAccepted] != 1 || count[http.StatusOK] != senders-1 {
			t.Fatalf("answers by status %v, want exactly one 202 and %d 200", count, senders-1)
		}
		if n := len(f.stored(t, d.id)); n != 1 {
			t.Fatalf("%d stored, want 1", n)
		}
	})
}

func TestNoSecret(t *testing.T) {
	f := setup(t, nil, func(_ *ingest.Config, d *ingest.Deps) { d.Secrets = nil })
	id := newID("nosecret")
	resp, body := send(t, f.hook, delivery{event: "issues", id: id, body: payloads.Get("issues.opened"), secret: "whatever"})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "webhook secret not configured") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("answer %d %s (Retry-After %q), want 503 webhook secret not configured", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if n := len(f.stored(t, id)); n != 0 {
		t.Fatalf("%d stored", n)
	}
	if code, _ := get(t, f.base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d", code)
	}
	if code, body := get(t, f.base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "webhook secret not configured") {
		t.Fatalf("/readyz %d %s", code, body)
	}
}

func get(t testing.TB, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRoutes(t *testing.T) {
	ready := errors.New("preflights not passed")
	var failing atomic.Bool
	f := setup(t, nil, func(c *ingest.Config, d *ingest.Deps) {
		c.PathPrefix = "/hookd"
		d.Ready = []func(context.Context) error{func(context.Context) error {
			if failing.Load() {
				return ready
			}
			return nil
		}}
	})
	if !strings.HasSuffix(f.hook, "/hookd/webhook") {
		t.Fatalf("webhook URL %s", f.hook)
	}
	id := newID("prefix")
	if resp, body := send(t, f.hook, delivery{event: "issues", id: id, body: payloads.Get("issues.opened"), secret: secretOld, header: map[string]string{ingest.HeaderRequestID: "req-abc"}}); resp.StatusCode != http.StatusAccepted || resp.Header.Get(ingest.HeaderRequestID) != "req-abc" {
		t.Fatalf("prefixed webhook: %d %s", resp.StatusCode, body)
	}
	if code, _ := get(t, f.base+"/webhook"); code != http.StatusNotFound {
		t.Fatalf("unprefixed webhook path: %d, want 404", code)
	}
	if code, body := get(t, f.base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d %s", code, body)
	}
	failing.Store(true)
	if code, body := get(t, f.base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, ready.Error()) {
		t.Fatalf("/readyz with a failing check: %d %s", code, body)
	}
	code, body := get(t, f.base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics %d", code)
	}
	for _, want := range []string{
		`hookd_ingest_deliveries_total{event="issues",outcome="stored"} 1`,
		"hookd_ingest_request_duration_seconds_bucket", "hookd_ingest_publish_duration_seconds_bucket",
		"hookd_ingest_body_bytes_bucket", "hookd_ingest_requests_in_flight 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	logs := f.logs.String()
	for _, want := range []string{`"delivery":"` + id + `"`, `"request_id":"req-abc"`, `"event":"issues"`, `"action":"opened"`, `"tenant":`, `"status":202`, `"duration":`, `"secret_index":0`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	for _, s := range []string{secretOld, secretNew} {
		if strings.Contains(logs, s) {
			t.Errorf("log contains a secret")
		}
	}
}

// TestReadyzJetStream: /readyz fails when NATS is connected but JetStream cannot store (here the
// events stream is gone), and answers within its budget even when a check hangs.
func TestReadyzJetStream(t *testing.T) {
	var hang atomic.Bool
	f := setup(t, nil, func(_ *ingest.Config, d *ingest.Deps) {
		d.Ready = []func(context.Context) error{func(context.Context) error {
			if hang.Load() {
				time.Sleep(5 * time.Second) // ignores its context
			}
			return nil
		}}
	})
	if code, body := get(t, f.base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d %s", code, body)
	}
	hang.Store(true)
	start := time.Now()
	if code, body := get(t, f.base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "did not answer") || time.Since(start) > 4*time.Second {
		t.Fatalf("/readyz with a hanging check: %d %s after %s", code, body, time.Since(start))
	}
	hang.Store(false)
	if err := f.env.JS.DeleteStream(context.Background(), broker.StreamEvents); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, f.base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "JetStream: stream "+broker.StreamEvents) {
		t.Fatalf("/readyz without the events stream: %d %s", code, body)
	}
}

// TestWrongStream: a delivery acknowledged by a stream other than HOOKD_EVENTS (only possible
// once HOOKD_EVENTS is gone and another stream took its subjects) is not answered as stored.
func TestWrongStream(t *testing.T) {
	f := setup(t, nil)
	ctx := context.Background()
	if err := f.env.JS.DeleteStream(ctx, broker.StreamEvents); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{event.InPrefix + ".>"}}); err != nil {
		t.Fatal(err)
	}
	resp, body := send(t, f.hook, delivery{event: "issues", id: newID("wrong"), body: payloads.Get("issues.opened"), secret: secretOld})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d %s, want 503", resp.StatusCode, body)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "stored in stream OTHER, not "+broker.StreamEvents) {
		t.Fatalf("the log does not say where the delivery went:\n%s", logs)
	}
}

func TestHealthOnly(t *testing.T) {
	env := brokertest.New(t)
	f := setup(t, env, func(_ *ingest.Config, d *ingest.Deps) { d.Webhook = false; d.Secrets = nil })
	if code, _ := get(t, f.base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d", code)
	}
	if code, body := get(t, f.base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d %s", code, body)
	}
	if resp, _ := send(t, f.hook, delivery{event: "issues", id: newID("x"), body: []byte("{}"), secret: secretOld}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("webhook on a role without ingest: %d, want 404", resp.StatusCode)
	}
}

func TestNew(t *testing.T) {
	env := brokertest.New(t)
	for _, tc := range []struct {
		name string
		cfg  ingest.Config
		deps ingest.Deps
		want string
	}{
		{"no JetStream", ingest.Config{}, ingest.Deps{Webhook: true}, "Deps.JetStream"},
		{"empty secret", ingest.Config{}, ingest.Deps{Webhook: true, JetStream: env.JS, Secrets: []string{"a", ""}}, "secret #1 is empty"},
		{"bad config", ingest.Config{HandlerTimeout: 10 * time.Second}, ingest.Deps{Webhook: true, JetStream: env.JS}, "http.handler_timeout"},
		{"twice on one registry", ingest.Config{}, ingest.Deps{Webhook: true, JetStream: env.JS, Registerer: dupRegistry(t, env)}, "one ingest.Server per registry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ingest.New(tc.cfg, tc.deps)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

func dupRegistry(t *testing.T, env *brokertest.Env) prometheus.Registerer {
	reg := prometheus.NewRegistry()
	if _, err := ingest.New(ingest.Config{}, ingest.Deps{Webhook: true, JetStream: env.JS, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	return reg
}
