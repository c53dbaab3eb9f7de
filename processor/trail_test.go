package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/processor"
)

// syncBuffer is a bytes.Buffer safe for the processor's goroutines to log into.
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

func (s *syncBuffer) lines(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestEventHandledTrail: the "event handled" line is logged once per event, at info, after every
// handler is done with it: not while one of them still has to retry.
func TestEventHandledTrail(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	logs := &syncBuffer{}
	rec := newRecorder()
	var mux processor.Mux
	must(t, mux.HandleFunc("first", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		rec.add(call{handler: ev.Handler, delivery: ev.Meta.Delivery, attempt: ev.Attempt})
		return nil
	}))
	must(t, mux.HandleFunc("second", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
		rec.add(call{handler: ev.Handler, delivery: ev.Meta.Delivery, attempt: ev.Attempt})
		if ev.Attempt == 1 {
			return processor.Transient(errors.New("not yet"))
		}
		return nil
	}))
	p, err := processor.New(fastConfig(), processor.Deps{
		JS: env.JS, Mux: &mux, Log: zerolog.New(logs).Level(zerolog.InfoLevel),
		Registerer: prometheus.NewRegistry(), Partitions: env.Config.Partitions,
	})
	if err != nil {
		t.Fatal(err)
	}
	started(t, p)
	publish(t, env.JS, "issues", "trail-1", body(t, "issues.opened", repo{1, 11, "acme/a"}, nil))
	// first, second (fails), then second again: first succeeded and is not run again.
	calls := rec.wait(t, 3, 20*time.Second)
	if calls[0].handler != "first" || calls[1].handler != "second" || calls[2].handler != "second" || calls[2].attempt != 2 {
		t.Fatalf("calls %+v", calls)
	}
	deadline := time.Now().Add(10 * time.Second)
	var handled []map[string]any
	for {
		if handled = logs.lines("event handled"); len(handled) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec.quiet(t, 300*time.Millisecond)
	handled = logs.lines("event handled")
	if len(handled) != 1 {
		t.Fatalf("%d \"event handled\" lines, want 1 (after the retry):\n%s", len(handled), logs)
	}
	h := handled[0]
	if h["level"] != "info" || h["delivery"] != "trail-1" || h["event"] != "issues" || h["action"] != "opened" || h["attempt"] != float64(2) {
		t.Errorf("event handled line %v", h)
	}
	if hs, _ := h["handlers"].([]any); len(hs) != 1 || hs[0] != "second" {
		t.Errorf("handlers %v, want [second] (first succeeded in attempt 1)", h["handlers"])
	}
	if failed := logs.lines("event handling failed"); len(failed) != 1 {
		t.Errorf("%d \"event handling failed\" lines, want 1", len(failed))
	}
}
