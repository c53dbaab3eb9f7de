package preflight

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/go-github/v60/github"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/planner"
)

// GitHub is what the checks need of the GitHub App; *ghapp.App implements it.
type GitHub interface {
	// ID is the configured app id (github.app_id).
	ID() int64
	// Client is the app-level client (JWT).
	Client() *github.Client
	// Installation is the installation's client (its token minted on first use).
	Installation(id int64) (*github.Client, error)
}

// Needs is what the enabled rules and handlers need of the app: cmd/hookd computes it.
type Needs struct {
	// Events the app must be subscribed to, webhook event names ("issues", "issue_comment").
	// Events GitHub always delivers (installation, installation_repositories, ping, ...) are
	// ignored.
	Events []string
	// Permissions the app must hold, by GitHub's permission name, "read" or "write" (or
	// "admin"), e.g. {"issues": "write", "metadata": "read"}.
	Permissions map[string]string
}

// Checks are the preflights. The zero value is not usable: set GitHub.
type Checks struct {
	// GitHub is the app.
	GitHub GitHub
	// Needs is checked by App. Zero: only the JWT is checked.
	Needs Needs
	// PublicURL is github.public_url; when set, Webhook warns when the app's webhook URL
	// differs. Optional.
	PublicURL string
	// Log receives the warnings. Zero value: none are logged.
	Log zerolog.Logger
}

// Specs returns the preflights as planner specs: preflight:app and preflight:webhook (global)
// and preflight:installation (per installation).
func (c *Checks) Specs() []planner.Spec {
	return []planner.Spec{
		{Phase: planner.PhasePreflight, Resource: "app", Scope: planner.Global, Kind: planner.OneShot, Run: c.App},
		{Phase: planner.PhasePreflight, Resource: "webhook", Scope: planner.Global, Kind: planner.OneShot, Run: c.Webhook},
		{Phase: planner.PhasePreflight, Resource: "installation", Scope: planner.PerInstallation, Kind: planner.OneShot, Run: c.Installation},
	}
}

// alwaysDelivered are events GitHub sends to every app without a subscription.
var alwaysDelivered = map[string]bool{
	"installation": true, "installation_repositories": true, "installation_target": true,
	"github_app_authorization": true, "ping": true, "meta": true,
}

// MissingError is preflight:app's failure: what the app lacks, and where to enable it.
type MissingError struct {
	// Slug is the app's URL name.
	Slug string
	// SettingsURL is the app's "Permissions & events" settings page.
	SettingsURL string
	// Events are the webhook events to subscribe to, sorted.
	Events []string
	// Permissions are the permissions to grant (name to level needed), with what the app has
	// now in Have ("" for none).
	Permissions map[string]string
	Have        map[string]string
}

// Lines lists what to enable, one line each in GitHub's wording, sorted: permissions first
// ("Repository permissions → Issues: Read and write (now: Read-only)"), then events
// ("Subscribe to events: Issue comment").
func (e *MissingError) Lines() []string {
	var out []string
	names := make([]string, 0, len(e.Permissions))
	for p := range e.Permissions {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, p := range names {
		now := "No access"
		if h := e.Have[p]; h != "" {
			now = levelName(h)
		}
		out = append(out, fmt.Sprintf("%s → %s: %s (now: %s)", permissionSection(p), displayName(p), levelName(e.Permissions[p]), now))
	}
	for _, ev := range e.Events {
		out = append(out, "Subscribe to events: "+displayName(ev))
	}
	return out
}

// Error says what to enable and where.
func (e *MissingError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the GitHub App %q lacks what the enabled rules and handlers need; enable it at GitHub → Settings → Developer settings → GitHub Apps → %s → Permissions & events", e.Slug, e.Slug)
	if e.SettingsURL != "" {
		fmt.Fprintf(&b, " (%s)", e.SettingsURL)
	}
	b.WriteString(", save, and have every installation accept the new permissions:")
	for _, l := range e.Lines() {
		b.WriteString("\n  - ")
		b.WriteString(l)
	}
	return b.String()
}

// appInfo is the part of GET /app the checks read (permissions as a map, like the API sends).
type appInfo struct {
	ID          int64             `json:"id"`
	Slug        string            `json:"slug"`
	HTMLURL     string            `json:"html_url"`
	Permissions map[string]string `json:"permissions"`
	Events      []string          `json:"events"`
	Owner       *struct {
		Login string `json:"login"`
		Type  string `json:"type"`
	} `json:"owner"`
}

// App is preflight:app: GET /app with the app's JWT, then the app's events and permissions
// against Needs. It fails (permanent) with a *MissingError listing what to enable, or with a
// message naming github.app_id / github.private_key_file on 401 and github.api_url on 404.
func (c *Checks) App(ctx context.Context, _ event.Tenant) error {
	cl := c.GitHub.Client()
	req, err := cl.NewRequest(http.MethodGet, "app", nil)
	if err != nil {
		return planner.Permanent(fmt.Errorf("GET /app: %w; check github.api_url", err))
	}
	var app appInfo
	if _, err := cl.Do(ctx, req, &app); err != nil {
		return fmt.Errorf("GET /app: %w", ExplainAppError(err, c.GitHub.ID()))
	}
	if app.ID != 0 && app.ID != c.GitHub.ID() {
		return planner.Permanent(fmt.Errorf("GET /app answered app %d (%s), but github.app_id is %d; set github.app_id to the App ID of the app whose key github.private_key_file holds", app.ID, app.Slug, c.GitHub.ID()))
	}
	miss := &MissingError{Slug: app.Slug, SettingsURL: settingsURL(app), Permissions: map[string]string{}, Have: map[string]string{}}
	for _, ev := range c.Needs.Events {
		if alwaysDelivered[ev] || slices.Contains(app.Events, ev) || slices.Contains(miss.Events, ev) {
			continue
		}
		miss.Events = append(miss.Events, ev)
	}
	slices.Sort(miss.Events)
	for p, lvl := range c.Needs.Permissions {
		if rank(app.Permissions[p]) < rank(lvl) {
			miss.Permissions[p] = lvl
			miss.Have[p] = app.Permissions[p]
		}
	}
	if len(miss.Events) > 0 || len(miss.Permissions) > 0 {
		return planner.Permanent(miss)
	}
	c.Log.Debug().Str("app", app.Slug).Strs("events", app.Events).Msg("app credentials, events and permissions ok")
	return nil
}

// ExplainAppError turns an error of an app-level (JWT) call into one that says what to change:
// 401 names github.app_id and github.private_key_file, 404 github.api_url (both permanent).
// Other errors are returned as they are and keep their class (network errors, 5xx and rate
// limits are retried). The caller names the call.
func ExplainAppError(err error, appID int64) error {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		switch er.Response.StatusCode {
		case http.StatusUnauthorized:
			return planner.Permanent(fmt.Errorf("401: GitHub does not accept the app's JWT: the app id or key is wrong: check github.app_id (%d) and that github.private_key_file (or github.private_key) is this app's current private key: %w", appID, err))
		case http.StatusNotFound:
			return planner.Permanent(fmt.Errorf("404: check github.api_url (https://api.github.com/, or https://HOST/api/v3/ for GitHub Enterprise Server) and github.app_id (%d): %w", appID, err))
		}
	}
	return err
}

// settingsURL is the app's "Permissions & events" page, on the host of its html_url.
func settingsURL(app appInfo) string {
	if app.Slug == "" {
		return ""
	}
	host := "https://github.com"
	if u, err := url.Parse(app.HTMLURL); err == nil && u.Host != "" {
		host = u.Scheme + "://" + u.Host
	}
	if app.Owner != nil && app.Owner.Type == "Organization" && app.Owner.Login != "" {
		return fmt.Sprintf("%s/organizations/%s/settings/apps/%s/permissions", host, app.Owner.Login, app.Slug)
	}
	return fmt.Sprintf("%s/settings/apps/%s/permissions", host, app.Slug)
}

func rank(level string) int {
	switch level {
	case "read":
		return 1
	case "write":
		return 2
	case "admin":
		return 3
	}
	return 0
}

func levelName(level string) string {
	switch level {
	case "read":
		return "Read-only"
	case "write":
		return "Read and write"
	case "admin":
		return "Admin"
	case "":
		return "No access"
	}
	return level
}

// permissionSection is where GitHub's settings page lists a permission.
func permissionSection(p string) string {
	switch {
	case strings.HasPrefix(p, "organization_"), p == "members", p == "team_discussions":
		return "Organization permissions"
	case p == "email_addresses", p == "followers", p == "gpg_keys", p == "git_ssh_keys", p == "profile", p == "starring", p == "plan":
		return "Account permissions"
	}
	return "Repository permissions"
}

// displayName is GitHub's label for a permission or event name: "pull_requests" → "Pull
// requests", "issue_comment" → "Issue comment".
func displayName(name string) string {
	switch name {
	case "statuses":
		return "Commit statuses"
	case "organization_hooks":
		return "Webhooks"
	}
	s := strings.ReplaceAll(name, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
