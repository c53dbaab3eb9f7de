// Package ghapp is hookd's GitHub client factory: it turns the `github` configuration section
// (app id, private key, API URL) into go-github v60 clients authenticated as the GitHub App
// (JWT) and as each of its installations (installation tokens).
//
// It owns credentials handling (reading and parsing the key, saying clearly what is missing),
// the app JWT (one signed JWT reused until shortly before it expires, not one per request),
// and the installation-token cache: one client per installation, created on first use and
// shared by handlers and sweeps; its token is minted on the first request, reused, refreshed
// RefreshBefore ahead of its expiry, and re-minted once when GitHub answers 401 (revoked
// token). Narrowed tokens for external commands come from App.Token and are never cached.
//
// The API base URL is used verbatim for every call (like a GitHub Enterprise Server URL, or the
// fake in internal/githubfake); it is not rewritten with /api/v3.
//
// Options.OnResponse sees every HTTP response (app-level ones under installation id 0): the
// processor feeds its rate-limit budget from the X-RateLimit-* headers there.
package ghapp
