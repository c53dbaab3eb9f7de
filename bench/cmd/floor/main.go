// Command floor is baseline (c) of bench/run.sh, the durable floor: a net/http handler that reads
// the body, checks X-Hub-Signature-256 (HMAC-SHA256) and publishes the body with one synchronous
// JetStream publish, answering 202 after the ack. Nothing else: no payload parsing, no metrics,
// no logging per request.
//
// It starts the same embedded nats-server as hookd (broker.StartEmbedded) and connects to it over
// loopback TCP as hookd does. With -stream hookd (the default) it creates hookd's streams
// (broker.Ensure), so the events stream config — file storage, one subject per delivery, one
// message per subject, discard new per subject — and the fsync policy (-sync) are hookd's, and
// publishes to hookd.in._._.<event>.<delivery> (the tenant is unknown without parsing the
// payload) with the delivery id as Nats-Msg-Id. With -stream plain it creates a plain file stream
// BENCH instead (one subject per event name, de-duplication only by Nats-Msg-Id within the default
// 2-minute window) and publishes to bench.<event>: the same work without a subject per delivery.
// With -conns N it opens N connections to the server and spreads the publishes over them in turn
// (hookd uses one).
//
//	go run ./bench/cmd/floor -addr 127.0.0.1:8082 -secret s -data /tmp/floor -sync always
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "HTTP listen address")
	natsAddr := flag.String("nats", "127.0.0.1:14223", "embedded nats-server listen address")
	secret := flag.String("secret", "", "webhook secret (required)")
	data := flag.String("data", "", "data directory for the file store (required; use a fresh one per run)")
	syncPolicy := flag.String("sync", broker.SyncAlways, "fsync policy: always or interval")
	streamKind := flag.String("stream", "hookd", "stream to publish to: hookd (hookd's events stream) or plain")
	conns := flag.Int("conns", 1, "NATS connections to spread the publishes over")
	flag.Parse()
	if err := run(*addr, *natsAddr, *secret, *data, *syncPolicy, *streamKind, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(addr, natsAddr, secret, data, syncPolicy, streamKind string, conns int) error {
	if secret == "" || data == "" {
		return errors.New("-secret and -data are required")
	}
	if conns < 1 {
		return fmt.Errorf("-conns %d: want at least 1", conns)
	}
	if streamKind != "hookd" && streamKind != "plain" {
		return fmt.Errorf("-stream %q: use hookd or plain", streamKind)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)

	var cfg broker.Config
	cfg.Defaults()
	cfg.DataDir, cfg.Listen, cfg.Sync = data, natsAddr, syncPolicy
	if err := cfg.Validate(); err != nil {
		return err
	}
	ns, err := broker.StartEmbedded(cfg, log)
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	var jss []jetstream.JetStream
	for range conns {
		nc, err := broker.Connect(ctx, ns.ClientURL(), cfg, "floor", log)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		jss = append(jss, js)
	}
	js := jss[0]
	var next atomic.Uint64
	subject := func(ev, id string) string { return event.InSubject(event.Tenant{}, ev, id) }
	if streamKind == "plain" {
		subject = func(ev, _ string) string { return "bench." + ev }
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: "BENCH", Subjects: []string{"bench.>"}, Storage: jetstream.FileStorage,
			MaxAge: cfg.MaxAge, MaxBytes: cfg.MaxBytes, Discard: jetstream.DiscardNew,
		})
	} else {
		err = broker.Ensure(ctx, js, cfg)
	}
	if err != nil {
		return err
	}

	key := []byte(secret)
	srv := &http.Server{
		Addr:              addr,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ev, id := r.Header.Get("X-GitHub-Event"), r.Header.Get("X-GitHub-Delivery")
			if !token(ev) || !token(id) || r.ContentLength < 0 || r.ContentLength > 25<<20 {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			body := make([]byte, r.ContentLength)
			if _, err := io.ReadFull(r.Body, body); err != nil {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			sig, ok := strings.CutPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
			want, err := hex.DecodeString(sig)
			m := hmac.New(sha256.New, key)
			m.Write(body)
			if !ok || err != nil || !hmac.Equal(m.Sum(nil), want) {
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
			pctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
			defer cancel()
			msg := &nats.Msg{Subject: subject(ev, id), Data: body}
			js := jss[next.Add(1)%uint64(len(jss))]
			dup, err := broker.PublishOutcome(js.PublishMsg(pctx, msg, jetstream.WithMsgID(id)))
			switch {
			case err != nil:
				http.Error(w, "not stored", http.StatusServiceUnavailable)
			case dup:
				w.WriteHeader(http.StatusOK)
			default:
				w.WriteHeader(http.StatusAccepted)
			}
		}),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Fprintf(os.Stderr, "floor: listening on %s, embedded JetStream on %s (sync %s, stream %s, %d connections)\n", addr, ns.ClientURL(), syncPolicy, streamKind, conns)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// token reports whether s can be one token of a NATS subject.
func token(s string) bool {
	return s != "" && len(s) <= 128 && !strings.ContainsAny(s, ". *>\t\r\n")
}
