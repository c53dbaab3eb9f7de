// Package sweep owns what makes hookd act on every change even when GitHub's webhooks are
// lost: GitHub does not retry a failed delivery, and deliveries get lost after GitHub logged
// them as delivered. Three workers (Service.Specs), each a loop around one pass that tests call
// directly:
//
//   - worker:installations keeps the tenant set current. InstallationsHandler (registered on
//     the processor for installation and installation_repositories events) signals every
//     replica through the hookd_sweep bucket; RunInstallations then re-lists installations and
//     repositories (ListInstallations) and hands them to Options.Apply, which re-plans and calls
//     planner.Scheduler.Apply. A re-list every installations_interval is the safety net.
//   - worker:redeliver reads the app's delivery log (GET /app/hook/deliveries) down to the
//     last mark and asks GitHub to redeliver (POST .../attempts) every delivery of a
//     subscribed event that is older than redelivery_min_age, within redelivery_window, and
//     not in the events stream — whatever status GitHub recorded. A redelivery carries the same
//     X-GitHub-Delivery, so ingest stores it once. At most max_redeliveries per delivery
//     (bookkeeping keys with a TTL), redeliveries_per_pass per pass, one replica at a time. A
//     delivery GitHub refuses to redeliver (400, 404, 410, 422: gone from its log) is passed
//     over. A page of the log that fails with a server error is asked for up to three times.
//     A server error for one delivery leaves it for the next pass and the pass goes on;
//     three in a row, or a rate limit, end the pass, to be tried again. A pass that stops
//     short (capped, or waiting on a redelivery's outcome) keeps the log entries it read and
//     did not pass (up to 2000) in redeliver.cursor, so that the next pass reads only the log
//     written since: a backlog of failed deliveries is read from GitHub once, not once a pass.
//   - worker:sweep:<owner>/<name> lists a repository's issues and pull requests updated since
//     its cursor with a conditional request (an unchanged repository answers 304, which costs
//     no rate limit), compares each with the processor's ItemState in hookd_state, and stores a
//     reconcile event for each change hookd has not seen (see docs/ARCHITECTURE.md ("Reconcile events") for its shape).
//     Rules with `reconcile: true` run on it.
//
// # Sweep passes
//
// A pass is skipped when the repository is not due (its adaptive interval: min_interval after
// a change, doubling every quiet_passes unchanged passes up to max_interval), when the
// installation has less than (1 - rate_limit_share) of its rate limit left (sweeps yield to
// event handling; Service.ObserveResponse sees every response of this process when wired into
// ghapp, and Options.SharedRate what the other replicas saw, through ghapp.KVBudget), or when
// another replica holds the repository's lease (KV key lease.sweep.<repo> with a TTL; the
// holder deletes it when done, and the due time it wrote makes the other replicas skip). The
// planner's start jitter spreads the repositories' first passes.
//
// Changes younger than drift_min_age are left for the next pass (their webhook may be on its
// way). The cursor moves only after the pass's reconcile events are stored, and only when the
// listing filled a page or fell far behind: a still cursor keeps the request identical, which
// is what lets the next pass be answered 304. The first pass of a repository looks back
// `lookback` (default the redelivery window), not to the beginning of time. The reconcile
// event's delivery id is deterministic (reconcile-<repo>-<number>-<updated_at unix>), so two
// passes or two replicas finding the same drift store one event.
//
// Drift is judged by updated_at at GitHub's one-second precision: a change in the same second
// as the last one hookd saw is not detected by the sweep.
//
// # State
//
// Everything lives in the hookd_sweep bucket (keys repo.<inst>.<repo>, lease.*,
// redeliver.cursor, redeliver.guid.<guid>.<n>, signal.installations); Status reads it for
// `hookd status` without a running sweep. Nothing is kept in memory across passes but the
// last rate-limit headers and the last applied installation list.
package sweep
