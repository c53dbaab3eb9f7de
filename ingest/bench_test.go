package ingest_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/ingest"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/payloads"
)

// BenchmarkIngest measures the webhook endpoint over real HTTP on an embedded JetStream (file
// store, fsync on an interval as brokertest configures it), with real 12–24 KB payloads and a
// unique delivery id per request, against a bare handler that reads the body and answers 202.
// Compare ns/op of the sub-benchmarks, and cpu-ns/op (CPU time of the whole process per request:
// client, server and the in-process nats-server), which is steadier on a busy machine:
//
//	go test -run '^$' -bench BenchmarkIngest -benchtime 3s ./ingest/
func BenchmarkIngest(b *testing.B) {
	type sample struct {
		event string
		body  []byte
		sig   string
	}
	var samples []sample
	var total int
	for _, name := range []string{"issues.opened", "issues.assigned", "issue_comment.created", "pull_request.opened-2", "pull_request.opened"} {
		body := withInstallation(b, payloads.Get(name), 4242, "acme")
		samples = append(samples, sample{payloads.Event(name), body, ingest.Sign([]byte(secretOld), body)})
		total += len(body)
	}
	run := func(b *testing.B, h http.Handler) {
		ts := httptest.NewServer(h)
		defer ts.Close()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}, Timeout: 10 * time.Second}
		defer client.CloseIdleConnections()
		var seq atomic.Int64
		prefix := fmt.Sprintf("bench-%d-", time.Now().UnixNano())
		b.SetBytes(int64(total / len(samples)))
		b.SetParallelism(8)
		b.ReportAllocs()
		cpu0 := cpuTime()
		b.ResetTimer()
		defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op") }()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n := seq.Add(1)
				s := samples[int(n)%len(samples)]
				req, _ := http.NewRequest(http.MethodPost, ts.URL, bytes.NewReader(s.body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(ingest.HeaderEvent, s.event)
				req.Header.Set(ingest.HeaderDelivery, prefix+fmt.Sprint(n))
				req.Header.Set(ingest.HeaderSignature256, s.sig)
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}

	b.Run("bare", func(b *testing.B) {
		run(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusAccepted)
		}))
	})
	for _, async := range []bool{false, true} {
		name := map[bool]string{false: "ingest/sync", true: "ingest/async"}[async]
		b.Run(name, func(b *testing.B) {
			env := brokertest.New(b)
			srv, err := ingest.New(ingest.Config{}, ingest.Deps{
				JetStream: env.JS, Secrets: []string{secretOld}, Log: zerolog.Nop(),
				Registerer: prometheus.NewRegistry(), Webhook: true,
			})
			if err != nil {
				b.Fatal(err)
			}
			ingest.SetAsyncPublish(srv, async)
			run(b, srv.Handler())
		})
	}
}

// cpuTime is the user+system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
