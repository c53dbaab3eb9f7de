package ingest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/hookd/hookd/ingest"
	"github.com/hookd/hookd/internal/broker/brokertest"
)

// endless yields bytes forever and counts them.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	e.n += int64(len(p))
	return len(p), nil
}

func TestBodyLimitReadsNoFurther(t *testing.T) {
	env := brokertest.New(t)
	const limit = 64 << 10
	srv, err := ingest.New(ingest.Config{MaxBodyBytes: limit}, ingest.Deps{JetStream: env.JS, Secrets: []string{secretOld}, Webhook: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		contentLength int64
		maxRead       int64
	}{
		{"chunked", -1, limit + 1},
		{"announced too large", limit + 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &endless{}
			r := httptest.NewRequest(http.MethodPost, "/webhook", body)
			r.ContentLength = tc.contentLength
			r.Header.Set(ingest.HeaderEvent, "issues")
			r.Header.Set(ingest.HeaderDelivery, newID("big"))
			r.Header.Set(ingest.HeaderSignature256, "sha256="+strings.Repeat("a", 64))
			w := httptest.NewRecorder()
			srv.Handler().ServeHTTP(w, r)
			if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "http.max_body_bytes") {
				t.Fatalf("%d %s, want 413", w.Code, w.Body)
			}
			if body.n > tc.maxRead {
				t.Fatalf("read %d bytes of the body, want at most %d", body.n, tc.maxRead)
			}
		})
	}
}

// TestAnnouncedLengthNotAllocated: Content-Length is the client's claim, made before any byte of
// the body arrived or its signature was checked. A client that announces the largest body and
// then sends nothing (or hangs up) must not make the handler allocate that much up front.
func TestAnnouncedLengthNotAllocated(t *testing.T) {
	env := brokertest.New(t)
	srv, err := ingest.New(ingest.Config{}, ingest.Deps{JetStream: env.JS, Secrets: []string{secretOld}, Webhook: true})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/webhook", iotest.ErrReader(io.ErrUnexpectedEOF))
	r.ContentLength = ingest.DefaultMaxBodyBytes
	r.Header.Set(ingest.HeaderEvent, "issues")
	r.Header.Set(ingest.HeaderDelivery, newID("claim"))
	r.Header.Set(ingest.HeaderSignature256, "sha256="+strings.Repeat("a", 64))
	w := httptest.NewRecorder()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	srv.Handler().ServeHTTP(w, r)
	runtime.ReadMemStats(&after)
	if w.Code != http.StatusBadRequest {
		t.Fatalf("%d %s, want 400 for a body cut short", w.Code, w.Body)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > ingest.DefaultMaxBodyBytes/4 {
		t.Fatalf("handling a request that announced %d bytes and sent none allocated %d bytes", r.ContentLength, got)
	}
}
