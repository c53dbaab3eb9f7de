package processor_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/processor"
)

func TestMux(t *testing.T) {
	t.Parallel()
	nop := func(context.Context, *processor.Event) error { return nil }
	for _, tc := range []struct {
		name    string
		handler string
		filter  processor.Filter
		opts    []processor.HandleOption
		want    string
	}{
		{"ok", "b", processor.On("issues.opened", "push"), nil, ""},
		{"all", "c", processor.On("*"), []processor.HandleOption{processor.AllowBotEvents(), processor.WithTimeout(time.Second)}, ""},
		{"duplicate", "dup", processor.On("push"), nil, "already registered"},
		{"bad name", "a.b", processor.On("push"), nil, "handler name"},
		{"empty filter", "e", processor.On(), nil, "empty filter"},
		{"bad pattern", "f", processor.On("issues.opened.x"), nil, "filter pattern"},
		{"bad event", "g", processor.On("Issues"), nil, "filter pattern"},
		{"negative timeout", "h", processor.On("push"), []processor.HandleOption{processor.WithTimeout(-1)}, "negative timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mux processor.Mux
			must(t, mux.HandleFunc("dup", processor.On("push"), nop))
			err := mux.HandleFunc(tc.handler, tc.filter, nop, tc.opts...)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if names := mux.Names(); len(names) != 2 || names[1] != tc.handler {
					t.Fatalf("names %v", names)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(*processor.Config)
		want string
	}{
		{"defaults", func(*processor.Config) {}, ""},
		{"pinned ttl too short", func(c *processor.Config) { c.AckWait = 30 * time.Second }, "processor.pinned_ttl"},
		{"ack wait", func(c *processor.Config) { c.AckWait = time.Millisecond; c.PinnedTTL = time.Minute }, "processor.ack_wait"},
		{"concurrency", func(c *processor.Config) { c.Concurrency = -1 }, "processor.concurrency"},
		{"read-ahead budget", func(c *processor.Config) { c.ReadAheadBytes = 1000 }, "processor.read_ahead_bytes"},
		{"max ack pending", func(c *processor.Config) { c.MaxAckPending = -1 }, "processor.max_ack_pending"},
		{"consumer", func(c *processor.Config) { c.Consumer = "a.b" }, "processor.consumer"},
		{"retry", func(c *processor.Config) { c.Retry.Jitter = 2 }, "retry.jitter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var c processor.Config
			tc.mod(&c)
			c.Defaults()
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Concurrency != 64 || c.MaxAckPending != 8192 || c.ReadAheadBytes != 16<<20 || c.AckWait != 10*time.Second || c.PinnedTTL != 15*time.Second {
					t.Fatalf("defaults %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestMuxEvents(t *testing.T) {
	t.Parallel()
	nop := func(context.Context, *processor.Event) error { return nil }
	var mux processor.Mux
	must(t, mux.HandleFunc("a", processor.On("issues.opened", "push"), nop))
	must(t, mux.HandleFunc("b", processor.On("issues.closed", "pull_request"), nop))
	must(t, mux.HandleFunc("c", processor.On("*"), nop))
	if got, want := mux.Events(), []string{"issues", "pull_request", "push"}; !slices.Equal(got, want) {
		t.Fatalf("Events() = %v, want %v", got, want)
	}
}
