package processor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/processor"
)

// TestShared: what the handlers of one event share is built once per event.
func TestShared(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	type key struct{}
	var builds atomic.Int32
	seen := make(chan int, 8)
	h := func(ctx context.Context, ev *processor.Event) error {
		v, err := ev.Shared(key{}, func() (any, error) { return int(builds.Add(1)), nil })
		if err != nil {
			return err
		}
		seen <- v.(int)
		return nil
	}
	mux := &processor.Mux{}
	for _, name := range []string{"one", "two", "three"} {
		if err := mux.HandleFunc(name, processor.On("issues"), h); err != nil {
			t.Fatal(err)
		}
	}
	started(t, newProcessor(t, env, fastConfig(), mux, nil))
	publish(t, env.JS, "issues", "shared-1", body(t, "issues.opened", repo{1, 2, "acme/api"}, nil))
	for range 3 {
		select {
		case v := <-seen:
			if v != 1 {
				t.Fatalf("handler got build #%d, want the one shared build", v)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("handlers not called")
		}
	}
	publish(t, env.JS, "issues", "shared-2", body(t, "issues.opened", repo{1, 2, "acme/api"}, nil))
	if v := <-seen; v != 2 {
		t.Fatalf("a second event reused the first one's value (build #%d)", v)
	}
}
