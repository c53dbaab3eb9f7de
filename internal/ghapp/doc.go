// Package ghapp is hookd's GitHub client factory: it turns the `github` configuration section
// (app id, private key, API URL) into go-github v60 clients authenticated as the GitHub App
// (JWT) and as each of its installations (installation tokens).
//
// It owns credentials handling (reading and parsing the key, saying clearly what is missing),
// the app JWT (one signed JWT reused until shortly before it expires, not one per request; when
// GitHub rejects one and its Date header shows this machine's clock more than 10s off, the JWT
// is signed again on GitHub's time and the request retried once, and token expiry is read on
// that time too),
// and the installation-token cache: one client per installation, created on first use and
// shared by handlers and sweeps; its token is minted on the first request (one mint at a time;
// a request waiting for another's mint gives up with its context), reused, refreshed
// RefreshBefore ahead of its expiry, and re-minted once when GitHub answers 401 (revoked
// token). Narrowed tokens for external commands come from App.Token and are never cached.
//
// The API base URL is used verbatim for every call (like a GitHub Enterprise Server URL, or the
// fake in internal/githubfake); it is not rewritten with /api/v3.
//
// Options.OnResponse sees every HTTP response (app-level ones under installation id 0); the
// sweep service keeps its rate-limit share from the X-RateLimit-* headers there.
//
// # Rate limits
//
// GitHub has two kinds of limits, and ghapp layers one guard for each into every client (the
// app's under installation id 0):
//
//   - Primary limits (X-RateLimit-*: 5000 requests an hour or more per installation). The
//     Budget (Options.Budget) sees every response and refuses, before anything is sent (no
//     token mint either), the requests of an installation whose remaining count is 0 until its
//     reset, with the *github.RateLimitError GitHub would answer: planner.Classify makes that a
//     transient error waiting until the reset, so the processor delays that tenant's event
//     (NakWithDelay) while other installations keep flowing. NewKVBudget shares the budget
//     among replicas through the KV bucket hookd_sweep (keys ratelimit.<installation>): each
//     replica writes what it sees when the installation enters a new window, falls below 50%,
//     25%, 10%, 5% or 1% of its limit, or is exhausted, and otherwise at most every 30s, and
//     watches the others' writes; the newest observation wins (replica clocks are assumed to be
//     roughly in sync). go-github's own per-client check refuses requests of a client that saw
//     the exhaustion itself; the shared budget is what stops the other replicas.
//   - Secondary limits (403 or 429 with Retry-After; GitHub asks for at least one second between
//     mutating requests). The governor serialises each installation's POST, PATCH, PUT and
//     DELETE requests in this process, starts each one at least Options.MutationSpacing after
//     the previous one ended, and holds them until the Retry-After of a secondary limit seen on
//     any response of the installation has passed. The app's own mutations (redelivery
//     requests) are serialised and held the same way but paced by sweep.redelivery_spacing;
//     token mints are exempt.
//     Waiting requests give up with their context; a request whose deadline comes before the
//     Retry-After is refused at once with a *github.AbuseRateLimitError carrying the remaining
//     wait. Reads are neither spaced nor held by the governor (go-github's client refuses every
//     call of a client that received a Retry-After itself, until it passes).
//
// Event handling has priority over sweeps: both share one budget per installation, and the
// sweep service (sweep.rate_limit_share) skips its passes for an installation whose remaining
// budget falls below (1 - share) of its limit, leaving the rest to event handling; the budget
// then stops everyone, handlers included, only when nothing remains.
package ghapp
