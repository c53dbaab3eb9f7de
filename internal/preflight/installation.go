package preflight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-github/v60/github"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/planner"
)

// Installation is preflight:installation:<account>: the installation exists and is not
// suspended (GET /app/installations/{id}), a token can be minted and its repositories listed
// (GET /installation/repositories, through the installation's client, whose token is then
// cached for the workers). A suspended installation — also one suspended since the tenant set
// was listed — passes with a warning: the planner leaves it out at the next re-list, and hookd
// serves it again once it is unsuspended. Permissions the installation has not accepted yet
// (the app asked for more after it was installed) are a warning naming the account.
func (c *Checks) Installation(ctx context.Context, t event.Tenant) error {
	log := c.Log.With().Str("tenant", t.String()).Int64("installation", t.InstallationID).Logger()
	in, _, err := c.GitHub.Client().Apps.GetInstallation(ctx, t.InstallationID)
	if err != nil {
		if status(err) == http.StatusNotFound {
			return planner.Permanent(fmt.Errorf("installation %d (%s) does not exist: the app was uninstalled; it is dropped at the next installation re-list: %w", t.InstallationID, t.Owner, err))
		}
		return fmt.Errorf("installation %d (%s): GET /app/installations/%d: %w", t.InstallationID, t.Owner, t.InstallationID, ExplainAppError(err, c.GitHub.ID()))
	}
	if in.SuspendedAt != nil {
		log.Warn().Time("suspended_at", in.SuspendedAt.Time).Str("suspended_by", in.GetSuspendedBy().GetLogin()).
			Msg("installation is suspended: hookd pauses it and serves it again once it is unsuspended")
		return nil
	}
	if missing := unaccepted(in.Permissions, c.Needs.Permissions); len(missing) > 0 {
		log.Warn().Strs("permissions", missing).Str("settings", in.GetHTMLURL()).
			Msg("the installation has not accepted permissions hookd needs; until the account owner accepts them (GitHub → the account's Settings → GitHub Apps → the app → Review request), some handlers fail for it")
	}
	cl, err := c.GitHub.Installation(t.InstallationID)
	if err != nil {
		return planner.Permanent(err)
	}
	n, err := countRepos(ctx, cl)
	if err != nil {
		if isSuspended(err) {
			log.Warn().Err(err).Msg("installation was suspended during the preflight: hookd pauses it")
			return nil
		}
		return fmt.Errorf("installation %d (%s): mint a token and list its repositories: %w", t.InstallationID, t.Owner, err)
	}
	log.Debug().Int("repositories", n).Msg("installation token and repositories ok")
	return nil
}

func countRepos(ctx context.Context, cl *github.Client) (int, error) {
	n := 0
	opts := &github.ListOptions{PerPage: 100}
	for {
		page, resp, err := cl.Apps.ListRepos(ctx, opts)
		if err != nil {
			return n, err
		}
		n += len(page.Repositories)
		if resp.NextPage == 0 {
			return n, nil
		}
		opts.Page = resp.NextPage
	}
}

// unaccepted lists "name:level" for each needed permission the installation does not grant.
func unaccepted(granted *github.InstallationPermissions, needs map[string]string) []string {
	have := map[string]string{}
	if granted != nil {
		b, _ := json.Marshal(granted)
		_ = json.Unmarshal(b, &have)
	}
	var out []string
	for p, lvl := range needs {
		if rank(have[p]) < rank(lvl) {
			out = append(out, p+":"+lvl)
		}
	}
	slices.Sort(out)
	return out
}

func status(err error) int {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return er.Response.StatusCode
	}
	return 0
}

// isSuspended reports GitHub's 403 for a suspended installation.
func isSuspended(err error) bool {
	var er *github.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusForbidden &&
		strings.Contains(strings.ToLower(er.Message), "suspended")
}
