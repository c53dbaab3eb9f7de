// Package githubfake is a stateful, in-process fake of the parts of GitHub that hookd talks to:
// the REST API subset hookd calls (as a GitHub App and as its installations) and the webhook
// sender that POSTs deliveries to hookd.
//
// It owns the fake's state (app, installations, repositories, issues, pull requests, comments,
// labels, tokens, rate-limit budgets, the app's webhook configuration and delivery log) and nothing
// of hookd itself. It serves hookd's tests and the `hookd demo` command.
//
// # Fidelity
//
// JSON shapes, status codes, error bodies and headers follow GitHub's REST API as go-github v60
// decodes them; the package's own tests drive it with go-github v60 and ghinstallation v2 so the
// fake cannot drift from the real clients. What it checks like GitHub:
//
//   - App JWTs (RS256 with the app's key, iss = app id, iat in the past, exp in the future and at
//     most 10 minutes ahead) on /app endpoints; 401 with GitHub's error body otherwise.
//   - Installation tokens (`Authorization: token X` or `Bearer X`): 401 "Bad credentials" when
//     unknown or expired (1 hour after minting), 403 when the installation is suspended, 404 for a
//     repository outside the token's scope, 403 "Resource not accessible by integration" for a
//     missing permission.
//   - Primary rate limits per installation (and one for the app's JWT calls): X-RateLimit-*
//     headers on every authenticated response, 403 (or 429, Options.RateLimitStatus) with
//     X-RateLimit-Remaining: 0 when exhausted (go-github: *github.RateLimitError for the 403). A
//     conditional GET answered 304 costs nothing.
//   - Timestamps: RFC 3339 in UTC with whole seconds ("2024-01-02T03:04:05Z"), and recorded with
//     whole seconds, so that items changed in one second tie when sorted by updated_at (the fake
//     breaks ties by number) and `since` means "updated at or after" that second.
//   - Lists: page/per_page (default 30, at most 100) with a Link header (prev, next, last,
//     first); pull requests appear in the issue list with a `pull_request` key; the delivery log
//     is newest first, with cursor pagination.
//   - Webhooks: X-GitHub-Event, X-GitHub-Delivery (a random UUID), X-GitHub-Hook-ID,
//     X-GitHub-Hook-Installation-Target-ID/-Type, X-Hub-Signature (sha1) and X-Hub-Signature-256
//     (sha256 HMAC of the exact body), User-Agent GitHub-Hookshot/…; JSON or form
//     (`payload=`) bodies; a 10 s timeout; no automatic retry; every attempt is recorded in the
//     delivery log, which /app/hook/deliveries serves with GitHub's cursor pagination, and a
//     redelivery resends the same body with the same GUID.
//
// # Two ways to change state
//
// The API (the app acting through its tokens) and "user" actions called directly on *Fake
// (AddInstallation, OpenIssue, CommentIssue, LabelIssue, OpenPullRequest, …) standing for what
// people do on github.com. Both produce the webhooks GitHub would send; actions through the API
// are sent with the app's bot user (`<slug>[bot]`, type "Bot") as sender.
//
// Webhooks are sent synchronously by default: when a user action or an API call returns, its
// deliveries have been attempted and recorded. Options.AsyncWebhooks sends them from one
// goroutine in order instead; Flush waits for the queue to drain.
//
// # Knobs for tests
//
// Advance moves the fake's clock; SetRateLimit sets an installation's remaining budget and reset;
// InjectFault makes the next N matching requests fail with a secondary rate limit or a 5xx;
// SetWebhookOutage records deliveries as failed without sending them; SetWebhookDelay delays
// each send. Stats reports per-installation accounting (requests, 304s, token mints, …).
//
// IDs (installations, repositories, issues, comments, labels, deliveries) come from one
// monotonic counter, so they are deterministic for a given sequence of actions. The fake is safe
// for concurrent use.
package githubfake
