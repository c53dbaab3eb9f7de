package main

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/hookd/hookd/planner"
)

// The task specs of a hookd process are assembled in app.plan (serve.go): preflights from
// internal/preflight, the processor as a service, the sweeps from package sweep. To add a
// preflight or a worker, append a planner.Spec there; the planner names it
// ({phase}:{resource}:{owner}/{name}) and binds it to tenants by its Scope, and the scheduler runs
// it under the one retry policy.

// retryOnce runs fn under the preflight rules of the retry policy: transient errors are retried
// with backoff (server wait hints win) up to max_attempts; anything else fails at once. It is for
// the one-shot work that must happen before the plan exists (listing the installations).
func retryOnce(ctx context.Context, p planner.RetryPolicy, log zerolog.Logger, fn func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		d := p.Decide(planner.PhasePreflight, err, attempt, time.Now())
		if !d.Retry {
			return err
		}
		log.Warn().Err(err).Int("attempt", attempt).Str("class", d.Class.String()).Dur("delay", d.Delay).Msg("retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d.Delay):
		}
	}
}
