package planner

import "time"

// Clock is the scheduler's source of time: every wait (start jitter, backoff, interval,
// shutdown deadline) goes through After, every timestamp through Now. Tests inject a fake.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
