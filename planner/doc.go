// Package planner owns hookd's two-phase model of background work: the plan, the scheduler
// that runs it, and the one retry policy every part of hookd applies to errors.
//
// # The plan
//
// A Spec is a task template: a phase (PhasePreflight or PhaseWorker), a resource, a scope
// (Global, PerInstallation, PerRepository), a kind (OneShot, Interval, Service) and a Run
// function that receives the tenant. The Planner binds every spec to the tenants of its scope,
// giving Units whose closures capture the tenant, and returns them as a Plan: typed data,
// preflights and workers in separate slices. The Planner is a pure function; it alone maps
// installations and the `tenants:` configuration (Selection: allow/deny patterns) to the tenant
// set (SelectTenants), and reports what it left out and why (suspended installations, denied or
// not allowed accounts and repositories).
//
// Unit names follow one convention and are unique in a plan (duplicates are errors):
//
//	{phase}:{resource}:{owner}/{name}   per repository     preflight:repository:acme/api, worker:sweep:acme/api
//	{phase}:{resource}:{account}        per installation   preflight:installation:acme
//	{phase}:{resource}                  global             preflight:app, worker:redeliver
//
// The name is for logs (field task) and identity; nothing parses it. Metrics are labelled by
// phase and resource, never by name, so their cardinality does not grow with tenants.
//
// # The scheduler
//
// Scheduler.Run runs phase 1, every preflight concurrently; all must pass or no worker starts,
// and Run returns the *PreflightError of the failure. Then phase 2: interval workers (the
// scheduler owns the loop around one pass, with a random jitter before the first) and services
// (Run blocks until its context ends) until Run's context ends. Ready is closed between the two
// phases. Scheduler.Apply changes the running workers when the tenant set changes, running the
// new tenants' preflights first. Shutdown has two gears and a deadline: on cancel, interval
// units start no new pass and services' contexts end; in-flight passes keep a context that
// ends only at SchedulerConfig.ShutdownTimeout; what has not returned shortly after is named in
// a *ShutdownError. See Scheduler for what happens to each error class in each kind of unit.
//
// # The retry policy
//
// Work returns errors marked Permanent, Transient or RetryAfter, or plain errors that Classify
// recognises (go-github rate limits, HTTP statuses, network errors); anything else is Unknown.
// RetryPolicy.Decide turns a class, a phase and an attempt count into a Decision. Preflights
// treat Unknown as fatal; workers and event handling retry it on the long backoff. A server's
// wait hint wins over a shorter backoff.
package planner
