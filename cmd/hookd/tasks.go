package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/ghapp"
	"github.com/hookd/hookd/planner"
)

// preflightSpecs are phase 1: what must hold before any worker starts. Add a preflight here: a
// planner.Spec with Phase PhasePreflight and Kind OneShot; the planner names it and binds it to
// tenants by its Scope.
func preflightSpecs(gh *ghapp.App) []planner.Spec {
	return []planner.Spec{
		{
			Phase: planner.PhasePreflight, Resource: "app", Scope: planner.Global, Kind: planner.OneShot,
			Run: func(ctx context.Context, _ event.Tenant) error { return checkApp(ctx, gh) },
		},
		{
			Phase: planner.PhasePreflight, Resource: "installation", Scope: planner.PerInstallation, Kind: planner.OneShot,
			Run: func(ctx context.Context, t event.Tenant) error { return checkInstallation(ctx, gh, t) },
		},
	}
}

// checkApp: the app JWT works.
func checkApp(ctx context.Context, gh *ghapp.App) error {
	app, _, err := gh.Client().Apps.Get(ctx, "")
	if err != nil {
		return explainAppError(err, gh.ID())
	}
	if app.GetID() != 0 && app.GetID() != gh.ID() {
		return planner.Permanent(fmt.Errorf("GET /app answered app %d, but github.app_id is %d", app.GetID(), gh.ID()))
	}
	return nil
}

// checkInstallation: a token can be minted for the installation.
func checkInstallation(ctx context.Context, gh *ghapp.App, t event.Tenant) error {
	if _, err := gh.Token(ctx, t.InstallationID, nil, nil); err != nil {
		return fmt.Errorf("installation %d (%s): cannot mint a token: %w", t.InstallationID, t.Owner, err)
	}
	return nil
}

func explainAppError(err error, appID int64) error {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		switch er.Response.StatusCode {
		case http.StatusUnauthorized:
			return planner.Permanent(fmt.Errorf("GET /app: 401: GitHub does not accept the app's JWT: check github.app_id (%d) and that github.private_key_file is this app's current private key: %w", appID, err))
		case http.StatusNotFound:
			return planner.Permanent(fmt.Errorf("GET /app: 404: check github.api_url (for GitHub Enterprise Server: https://HOST/api/v3/) and github.app_id (%d): %w", appID, err))
		}
	}
	return fmt.Errorf("GET /app: %w", err)
}

// discoverInstallations lists the app's installations and their repositories: the input of the
// planner. Suspended installations are listed (the planner excludes them with a reason) without
// their repositories: GitHub gives no access to them.
func discoverInstallations(ctx context.Context, gh *ghapp.App) ([]planner.Installation, error) {
	var out []planner.Installation
	opts := &github.ListOptions{PerPage: 100}
	for {
		page, resp, err := gh.Client().Apps.ListInstallations(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list the app's installations: %w", explainAppError(err, gh.ID()))
		}
		for _, in := range page {
			pi := planner.Installation{ID: in.GetID(), Account: in.GetAccount().GetLogin(), Suspended: in.SuspendedAt != nil}
			if !pi.Suspended {
				repos, err := installationRepos(ctx, gh, in.GetID())
				if err != nil {
					return nil, err
				}
				pi.Repositories = repos
			}
			out = append(out, pi)
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func installationRepos(ctx context.Context, gh *ghapp.App, id int64) ([]planner.Repository, error) {
	c, err := gh.Installation(id)
	if err != nil {
		return nil, err
	}
	var out []planner.Repository
	opts := &github.ListOptions{PerPage: 100}
	for {
		page, resp, err := c.Apps.ListRepos(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("installation %d: list repositories: %w", id, err)
		}
		for _, r := range page.Repositories {
			out = append(out, planner.Repository{ID: r.GetID(), Owner: r.GetOwner().GetLogin(), Name: r.GetName()})
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

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
