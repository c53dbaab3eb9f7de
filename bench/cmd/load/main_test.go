package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/event"
)

func TestTemplates(t *testing.T) {
	tmpls, err := templates(defaultPayloads, []byte("s"), 4242)
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range tmpls {
		t.Run(tm.name, func(t *testing.T) {
			if n := len(tm.body); n < 11<<10 || n > 23<<10 {
				t.Errorf("body is %d bytes, want 11–23 KiB", n)
			}
			var m event.Meta
			if err := event.ParsePayload(&m, tm.body); err != nil {
				t.Fatal(err)
			}
			// 4242 unless GitHub's example carries an installation of its own.
			if m.InstallationID == 0 || m.RepositoryID == 0 || m.Action == "" {
				t.Errorf("parsed %+v, want an installation, a repository and an action", m)
			}
			if !strings.HasPrefix(tm.sig, "sha256=") || len(tm.sig) != 7+64 {
				t.Errorf("signature %q", tm.sig)
			}
		})
	}
	if _, err := templates("no.such", []byte("s"), 1); err == nil {
		t.Error("unknown payload name accepted")
	}
}

func TestUUID4(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	r := newRand()
	seen := map[string]bool{}
	for range 1000 {
		id := uuid4(r)
		if !re.MatchString(id) || !event.ValidDeliveryID(id) {
			t.Fatalf("%q is not a UUID v4 delivery id", id)
		}
		if seen[id] {
			t.Fatalf("%q repeated", id)
		}
		seen[id] = true
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100, 0: 1} {
		if got := quantile(d, q); got != want {
			t.Errorf("quantile(%v) = %v, want %v", q, got, want)
		}
	}
}

func TestProc(t *testing.T) {
	cpu, err := cpuSeconds(os.Getpid())
	if err != nil || cpu < 0 {
		t.Fatalf("cpuSeconds = %v, %v", cpu, err)
	}
	rss, hwm, err := memory(os.Getpid())
	if err != nil || rss <= 0 || hwm < rss {
		t.Fatalf("memory = %d, %d, %v", rss, hwm, err)
	}
}
