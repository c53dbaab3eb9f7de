package preflight

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/planner"
)

// Webhook is preflight:webhook: GET /app/hook/config. It fails (permanent) when no webhook URL
// or no secret is set, naming both when both are missing; it warns (logs) when the URL differs
// from PublicURL, the content type is not json, or TLS verification is off. GitHub returns the
// secret masked ("********"), so the check sees that one is set, not that it is one of
// github.webhook_secrets: a mismatch shows only as deliveries that ingest refuses. A 401 or 404
// says what to change, as in App.
func (c *Checks) Webhook(ctx context.Context, _ event.Tenant) error {
	cfg, _, err := c.GitHub.Client().Apps.GetHookConfig(ctx)
	if err != nil {
		return fmt.Errorf("GET /app/hook/config: %w", ExplainAppError(err, c.GitHub.ID()))
	}
	const where = "GitHub → Settings → Developer settings → GitHub Apps → (the app) → General → Webhook"
	var errs []error
	u := strings.TrimSpace(cfg.GetURL())
	switch {
	case u == "":
		errs = append(errs, fmt.Errorf("the app has no webhook URL, so GitHub sends hookd nothing: check Active and set the Webhook URL at %s to hookd's public URL (github.public_url)", where))
	case c.PublicURL != "" && strings.TrimRight(u, "/") != strings.TrimRight(c.PublicURL, "/"):
		c.Log.Warn().Str("webhook_url", u).Str("public_url", c.PublicURL).
			Msgf("the app's webhook URL differs from github.public_url; if deliveries should reach this hookd, set the Webhook URL at %s", where)
	}
	if cfg.GetSecret() == "" {
		errs = append(errs, fmt.Errorf("the app has no webhook secret, so deliveries are unsigned and hookd refuses them: set Webhook secret at %s to one of github.webhook_secrets", where))
	}
	switch ct := cfg.GetContentType(); ct {
	case "json":
	case "form", "":
		c.Log.Warn().Str("content_type", ct).Msg("the app's webhook content type is form; hookd accepts it, but json is recommended (smaller, no decoding): set Content type to application/json in the app's webhook settings")
	default:
		c.Log.Warn().Str("content_type", ct).Msg("unexpected webhook content type; set application/json in the app's webhook settings")
	}
	if cfg.GetInsecureSSL() == "1" {
		c.Log.Warn().Msg("the app's webhook has SSL verification disabled (insecure_ssl=1): deliveries can be intercepted; enable SSL verification in the app's webhook settings")
	}
	if len(errs) > 0 {
		return planner.Permanent(fmt.Errorf("preflight webhook: %w", errors.Join(errs...)))
	}
	return nil
}
