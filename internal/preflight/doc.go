// Package preflight owns hookd's phase-1 checks against GitHub: what must hold before any worker
// starts. Each check is a function usable as a planner.Spec Run; Checks.Specs returns them as
// specs, and cmd/hookd adds them to the plan.
//
//   - preflight:app — the app's JWT works (GET /app), and the app is subscribed to every event
//     and holds every permission the enabled rules and handlers need (Needs). A missing one fails
//     with the exact list of what to enable and where.
//   - preflight:webhook — GET /app/hook/config: a URL is set (a warning when it differs from
//     github.public_url), a secret is set (else a failure), json content type and TLS
//     verification (warnings otherwise).
//   - preflight:installation:<account> — a token can be minted and the installation's
//     repositories listed. A suspended installation is a warning, not a failure: hookd pauses it
//     (the planner leaves suspended installations out) and resumes when it is unsuspended.
//
// Errors are classified for the planner's retry policy: problems an operator must fix are
// planner.Permanent with a message saying what to change; go-github errors pass through wrapped
// with %w so that planner.Classify retries network errors, 5xx and rate limits. Warnings go to
// the logger passed in; nothing here fails for a warning.
package preflight
