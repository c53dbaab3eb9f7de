package ingest_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
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

func TestJetStreamDown(t *testing.T) {
	env := brokertest.New(t)
	disconnected, reconnected := make(chan struct{}, 8), make(chan struct{}, 8)
	// ingest's own connection, which outlives the server like hookd's does (broker.Connect's
	// settings, shorter waits).
	nc, err := nats.Connect(env.URL, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnected <- struct{}{} }),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	f := setup(t, env, func(c *ingest.Config, d *ingest.Deps) {
		d.JetStream, d.Conn = js, nil // Conn from JetStream.Conn()
		c.RetryAfter = 7 * time.Second
	})
	body := payloads.Get("issues.opened")
	post := func(id string) (*http.Response, string, time.Duration) {
		t0 := time.Now()
		resp, answer := send(t, f.hook, delivery{event: "issues", id: id, body: body, secret: secretOld})
		return resp, answer, time.Since(t0)
	}
	if resp, answer, _ := post(newID("before")); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("before the outage: %d %s", resp.StatusCode, answer)
	}

	port := env.Server.Addr().(*net.TCPAddr).Port
	env.Server.Shutdown()
	env.Server.WaitForShutdown()
	<-disconnected

	for i := range 3 {
		resp, answer, took := post(newID("down"))
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "7" {
			t.Fatalf("during the outage #%d: %d %s (Retry-After %q), want 503 with Retry-After 7", i, resp.StatusCode, answer, resp.Header.Get("Retry-After"))
		}
		if took > time.Second {
			t.Fatalf("503 took %s, want an immediate answer", took)
		}
	}
	if code, answer := get(t, f.base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(answer, "NATS connection") {
		t.Fatalf("/readyz during the outage: %d %s", code, answer)
	}
	if code, _ := get(t, f.base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz during the outage: %d", code)
	}

	// Bring the same store back on the same port; ingest reconnects by itself.
	cfg := env.Config
	cfg.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	srv, err := broker.StartEmbedded(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	<-reconnected
	if code, answer := get(t, f.base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after the outage: %d %s", code, answer)
	}
	id := newID("after")
	if resp, answer, _ := post(id); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("after the outage: %d %s", resp.StatusCode, answer)
	}
	if f.stream, err = js.Stream(context.Background(), broker.StreamEvents); err != nil {
		t.Fatal(err)
	}
	if n := len(f.stored(t, id)); n != 1 {
		t.Fatalf("%d stored after the outage", n)
	}
	if got := f.streamMsgs(t); got != 2 {
		t.Fatalf("stream holds %d messages, want 2 (one before, one after the outage)", got)
	}
}

func TestPublishFails(t *testing.T) {
	t.Run("no ack within the publish timeout", func(t *testing.T) {
		env := brokertest.New(t)
		if err := env.JS.DeleteStream(context.Background(), broker.StreamEvents); err != nil {
			t.Fatal(err)
		}
		// Something listens on the subjects but never acks: the publish can only time out.
		got := make(chan *nats.Msg, 1)
		sub, err := env.NC.Subscribe(event.InPrefix+".>", func(m *nats.Msg) { got <- m })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
		f := setup(t, env, func(c *ingest.Config, _ *ingest.Deps) { c.PublishTimeout = 300 * time.Millisecond })
		t0 := time.Now()
		resp, answer := send(t, f.hook, delivery{event: "issues", id: newID("noack"), body: payloads.Get("issues.opened"), secret: secretOld})
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" {
			t.Fatalf("%d %s, want 503 with Retry-After 5", resp.StatusCode, answer)
		}
		if took := time.Since(t0); took < 300*time.Millisecond || took > 2*time.Second {
			t.Fatalf("answered after %s, want just after the 300ms publish timeout", took)
		}
		<-got
		if logs := f.logs.String(); !strings.Contains(logs, "http.publish_timeout") {
			t.Fatalf("log does not name the timeout:\n%s", logs)
		}
	})

	t.Run("stream full", func(t *testing.T) {
		env := brokertest.New(t, func(c *broker.Config) { c.MaxBytes = 64 << 10 })
		f := setup(t, env)
		body := payloads.Get("pull_request.opened")
		var full bool
		for i := 0; i < 8 && !full; i++ {
			resp, answer := send(t, f.hook, delivery{event: "pull_request", id: newID("full"), body: body, secret: secretOld})
			switch resp.StatusCode {
			case http.StatusAccepted:
			case http.StatusServiceUnavailable:
				full = true
				if resp.Header.Get("Retry-After") == "" {
					t.Fatal("503 without Retry-After")
				}
			default:
				t.Fatalf("%d %s", resp.StatusCode, answer)
			}
		}
		if !full {
			t.Fatal("the stream never filled up")
		}
		logs := f.logs.String()
		if !strings.Contains(logs, `"level":"error"`) || !strings.Contains(logs, "events stream is full") || !strings.Contains(logs, "nats.max_bytes") {
			t.Fatalf("no error log saying the stream is full and what to change:\n%s", logs)
		}
	})
}

func TestSlowClient(t *testing.T) {
	f := setup(t, nil, func(c *ingest.Config, _ *ingest.Deps) {
		c.ReadHeaderTimeout = 100 * time.Millisecond
		c.ReadTimeout = 300 * time.Millisecond
		c.PublishTimeout = 500 * time.Millisecond
		c.HandlerTimeout = time.Second
	})
	addr := strings.TrimPrefix(f.base, "http://")

	t.Run("stalled body", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		t0 := time.Now()
		_, err = io.WriteString(c, "POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: issues\r\nX-GitHub-Delivery: slow-1\r\n"+
			"X-Hub-Signature-256: sha256="+strings.Repeat("0", 64)+"\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"action\":")
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		resp.Body.Close()
		if took := time.Since(t0); resp.StatusCode != http.StatusRequestTimeout || took > 2*time.Second {
			t.Fatalf("answer %d after %s, want 408 after about the 300ms read timeout", resp.StatusCode, took)
		}
	})

	t.Run("stalled headers", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		t0 := time.Now()
		if _, err := io.WriteString(c, "POST /webhook HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server held the connection")
		}
		if took := time.Since(t0); took > 2*time.Second {
			t.Fatalf("connection closed after %s, want about the 100ms header timeout", took)
		}
	})

	t.Cleanup(func() {
		if v := gauge(t, f.reg, "hookd_ingest_requests_in_flight"); v != 0 {
			t.Errorf("%v requests still in flight", v)
		}
	})
}

// TestReadTimeoutFromFirstByte: http.read_timeout bounds the whole request from its first byte,
// so the time a client spends on its headers counts against it too.
func TestReadTimeoutFromFirstByte(t *testing.T) {
	// Margins of a second on either side of the answer's time, for a loaded machine: with the
	// headers' time counted again the 408 would come 1.5 s later.
	const readTimeout = 2 * time.Second
	f := setup(t, nil, func(c *ingest.Config, _ *ingest.Deps) {
		c.ReadHeaderTimeout = 2 * time.Second
		c.ReadTimeout = readTimeout
		c.PublishTimeout = 500 * time.Millisecond
		c.HandlerTimeout = 4 * time.Second
	})
	c, err := net.Dial("tcp", strings.TrimPrefix(f.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t0 := time.Now()
	if _, err := io.WriteString(c, "POST /webhook HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the slow client: headers take most of read_header_timeout
	_, err = io.WriteString(c, "X-GitHub-Event: issues\r\nX-GitHub-Delivery: slow-headers\r\n"+
		"X-Hub-Signature-256: sha256="+strings.Repeat("0", 64)+"\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"action\":")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	resp.Body.Close()
	if took := time.Since(t0); resp.StatusCode != http.StatusRequestTimeout || took > readTimeout+time.Second {
		t.Fatalf("answer %d %s after the first byte, want 408 at about the %s read timeout", resp.StatusCode, took, readTimeout)
	}
}

func gauge(t testing.TB, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestGracefulShutdown(t *testing.T) {
	f := setup(t, nil)
	started := make(chan struct{}, 1)
	ingest.SetStartedHook(f.srv, func() { started <- struct{}{} })

	id := newID("inflight")
	body := payloads.Get("issues.opened")
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, f.hook, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(ingest.HeaderEvent, "issues")
	req.Header.Set(ingest.HeaderDelivery, id)
	req.Header.Set(ingest.HeaderSignature256, ingest.Sign([]byte(secretOld), body))
	type result struct {
		status int
		err    error
	}
	answered := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- result{err: err}
			return
		}
		resp.Body.Close()
		answered <- result{status: resp.StatusCode}
	}()
	if _, err := pw.Write(body[:100]); err != nil {
		t.Fatal(err)
	}
	<-started

	stopped := make(chan error, 1)
	go func() { stopped <- f.stop() }()
	// Wait until the server stopped accepting: the listener is closed first.
	addr := strings.TrimPrefix(f.base, "http://")
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned %v with a request in flight", err)
	default:
	}
	// The rest of the body arrives after shutdown began: the delivery is still stored and acked.
	if _, err := pw.Write(body[100:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if r := <-answered; r.err != nil || r.status != http.StatusAccepted {
		t.Fatalf("in-flight request: status %d, err %v; want 202", r.status, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if n := len(f.stored(t, id)); n != 1 {
		t.Fatalf("%d stored", n)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("new connection accepted after shutdown")
	}
}

// TestClientGoneAfterBody: a client (or the proxy in front of hookd) that closes its side of
// the connection once the body is sent cancels the request's context; the verified delivery
// is stored all the same, and a client still reading (a half-close) gets its 202.
func TestClientGoneAfterBody(t *testing.T) {
	f := setup(t, nil)
	gone := make(chan struct{}, 1)
	ingest.SetPublishingHook(f.srv, func(reqCtx context.Context) {
		select {
		case <-reqCtx.Done():
			gone <- struct{}{}
		case <-time.After(5 * time.Second):
			t.Error("the request's context was not cancelled after the client closed its side")
		}
	})
	addr := strings.TrimPrefix(f.base, "http://")
	for _, tc := range []struct {
		name      string
		halfClose bool
	}{
		{"closed", false},
		{"half-closed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := newID("gone")
			body := payloads.Get("issues.opened")
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = io.WriteString(c, "POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: issues\r\nX-GitHub-Delivery: "+id+"\r\n"+
				"X-Hub-Signature-256: "+ingest.Sign([]byte(secretOld), body)+"\r\nContent-Type: application/json\r\n"+
				"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+string(body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.halfClose {
				if err := c.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					t.Fatalf("answer %d, want 202", resp.StatusCode)
				}
			} else {
				c.Close()
			}
			<-gone
			// The handler logs its line once it has answered.
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(f.logs.String(), `"delivery":"`+id+`"`) {
				if time.Now().After(deadline) {
					t.Fatal("the handler did not finish")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if n := len(f.stored(t, id)); n != 1 {
				t.Fatalf("%d stored, want the verified delivery stored once; log:\n%s", n, f.logs.String())
			}
		})
	}
}

// TestH2C: an ingress that speaks HTTP/2 without TLS to its backends (prior knowledge) gets its
// deliveries stored and answered like HTTP/1.1 ones.
func TestH2C(t *testing.T) {
	f := setup(t, nil)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	id := newID("h2c")
	resp, err := client.Do(delivery{event: "issues", id: id, body: payloads.Get("issues.opened"), secret: secretNew}.request(t, f.hook))
	if err != nil {
		t.Fatalf("POST over h2c: %v", err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("answer %s %d, want HTTP/2 202", resp.Proto, resp.StatusCode)
	}
	if n := len(f.stored(t, id)); n != 1 {
		t.Fatalf("%d stored", n)
	}
}
