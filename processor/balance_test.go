package processor_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/processor"
)

// TestBalance: replicas share the partitions. Two replicas both handle events; a third that
// joins later gets its share; when one stops, the others take its partitions; no event is lost
// or handled twice.
func TestBalance(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t, func(c *broker.Config) { c.Partitions = 6 })
	var mu sync.Mutex
	byReplica := map[string]map[string]int{} // replica → delivery → times
	newReplica := func(name string) *processor.Processor {
		mux := &processor.Mux{}
		if err := mux.HandleFunc("count", processor.On("*"), func(_ context.Context, ev *processor.Event) error {
			mu.Lock()
			defer mu.Unlock()
			if byReplica[name] == nil {
				byReplica[name] = map[string]int{}
			}
			byReplica[name][ev.Meta.Delivery]++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return newProcessor(t, env, fastConfig(), mux, nil)
	}
	repos := make([]repo, 24)
	for i := range repos {
		repos[i] = repo{inst: 1, id: int64(100 + i), name: fmt.Sprintf("acme/r%d", i)}
	}
	sent := 0
	send := func(round string) {
		for i, r := range repos {
			publish(t, env.JS, "issues", fmt.Sprintf("%s-%d", round, i), body(t, "issues.opened", r, nil))
			sent++
		}
	}
	handledBy := func(name, round string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for d := range byReplica[name] {
			if len(d) > len(round) && d[:len(round)+1] == round+"-" {
				n++
			}
		}
		return n
	}
	total := func() (distinct, dup int) {
		mu.Lock()
		defer mu.Unlock()
		seen := map[string]int{}
		for _, ds := range byReplica {
			for d, n := range ds {
				seen[d] += n
			}
		}
		for _, n := range seen {
			if n > 1 {
				dup++
			}
		}
		return len(seen), dup
	}
	waitAll := func(what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if d, _ := total(); d == sent {
				return
			}
			if time.Now().After(deadline) {
				d, _ := total()
				t.Fatalf("%s: %d of %d events handled after 30s", what, d, sent)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	settle := func(n int) { time.Sleep(time.Duration(n) * 1500 * time.Millisecond) } // a few balance rounds

	started(t, newReplica("a"))
	started(t, newReplica("b"))
	settle(2)
	send("one")
	waitAll("two replicas")
	if handledBy("a", "one") == 0 || handledBy("b", "one") == 0 {
		t.Fatalf("two replicas did not share the work: a=%d b=%d", handledBy("a", "one"), handledBy("b", "one"))
	}

	stopC := started(t, newReplica("c"))
	settle(3)
	send("two")
	waitAll("a third replica joined")
	for _, name := range []string{"a", "b", "c"} {
		if handledBy(name, "two") == 0 {
			t.Fatalf("replica %s handled nothing of round two: a=%d b=%d c=%d", name, handledBy("a", "two"), handledBy("b", "two"), handledBy("c", "two"))
		}
	}

	if err := stopC(); err != nil {
		t.Fatal(err)
	}
	settle(2)
	send("three")
	waitAll("a replica left")
	if handledBy("c", "three") != 0 {
		t.Fatalf("a stopped replica handled %d events", handledBy("c", "three"))
	}
	if _, dup := total(); dup != 0 {
		t.Fatalf("%d events handled more than once", dup)
	}
}
