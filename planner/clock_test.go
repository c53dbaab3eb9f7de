package planner

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock for tests. Every After call is reported on waits. In auto mode After
// advances the clock by d and fires at once (retries run instantly, their times recorded); in
// manual mode the test calls Advance.
type fakeClock struct {
	waits chan time.Duration

	mu      sync.Mutex
	auto    bool
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(auto bool) *fakeClock {
	return &fakeClock{auto: auto, waits: make(chan time.Duration, 1000), now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	if c.auto {
		c.now = c.now.Add(d)
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	}
	c.mu.Unlock()
	select {
	case c.waits <- d:
	default:
	}
	return ch
}

// manual turns auto mode off: from now on waits last until Advance.
func (c *fakeClock) manual() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.auto = false
}

// Advance moves the clock on by d and fires the waits that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// nextWait returns the next wait the scheduler started, failing the test after 5s.
func (c *fakeClock) nextWait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("the scheduler started no wait")
		return 0
	}
}
