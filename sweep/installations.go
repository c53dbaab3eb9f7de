package sweep

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/hookd/hookd/internal/preflight"
	"github.com/hookd/hookd/planner"
	"github.com/hookd/hookd/processor"
)

// ListInstallations lists the app's installations and their repositories: the planner's input.
// Suspended installations are listed (the planner leaves them out with a reason) without their
// repositories, which GitHub does not let the app read. An installation suspended between the
// two calls is listed as suspended; one removed between them (404) is left out, rather than
// failing the listing of every other installation. Errors keep their class (wrapped with %w);
// a 401 or 404 on the app's own calls says which setting to check.
func ListInstallations(ctx context.Context, gh GitHub) ([]planner.Installation, error) {
	var out []planner.Installation
	opts := &github.ListOptions{PerPage: 100}
	for {
		page, resp, err := gh.Client().Apps.ListInstallations(ctx, opts)
		if err != nil {
			var id int64
			if a, ok := gh.(interface{ ID() int64 }); ok {
				id = a.ID()
			}
			return nil, fmt.Errorf("list the app's installations: %w", preflight.ExplainAppError(err, id))
		}
		for _, in := range page {
			pi := planner.Installation{ID: in.GetID(), Account: in.GetAccount().GetLogin(), Suspended: in.SuspendedAt != nil}
			if !pi.Suspended {
				repos, err := installationRepos(ctx, gh, in.GetID())
				switch {
				case err != nil && isSuspended(err):
					pi.Suspended = true
				case err != nil && isNotFound(err):
					continue // uninstalled since GitHub listed it
				case err != nil:
					return nil, err
				default:
					pi.Repositories = repos
				}
			}
			out = append(out, pi)
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func installationRepos(ctx context.Context, gh GitHub, id int64) ([]planner.Repository, error) {
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
			slices.SortFunc(out, func(a, b planner.Repository) int { return int(a.ID - b.ID) })
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func isNotFound(err error) bool {
	var er *github.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound
}

func isSuspended(err error) bool {
	var er *github.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusForbidden &&
		strings.Contains(strings.ToLower(er.Message), "suspended")
}

// InstallationsReport is what one re-list did.
type InstallationsReport struct {
	Installations int
	Repositories  int
	Changed       bool // differs from the last listing this process applied
	Applied       bool // Apply was called (and returned nil)
}

// installationsOnce lists installations and repositories and, when they differ from the last
// listing applied by this process (or on the first call), passes them to Options.Apply.
func (s *Service) installationsOnce(ctx context.Context) (InstallationsReport, error) {
	var rep InstallationsReport
	list, err := ListInstallations(ctx, s.gh)
	if err != nil {
		s.m.refreshes.WithLabelValues("error").Inc()
		return rep, err
	}
	rep.Installations = len(list)
	for _, in := range list {
		rep.Repositories += len(in.Repositories)
	}
	s.instMu.Lock()
	rep.Changed = !s.listed || !reflect.DeepEqual(s.lastList, list)
	s.instMu.Unlock()
	if !rep.Changed {
		s.m.refreshes.WithLabelValues("unchanged").Inc()
		return rep, nil
	}
	if s.opts.Apply != nil {
		if err := s.opts.Apply(ctx, list); err != nil {
			s.m.refreshes.WithLabelValues("error").Inc()
			return rep, fmt.Errorf("apply the installations: %w", err)
		}
		rep.Applied = true
	}
	s.instMu.Lock()
	s.lastList, s.listed = list, true
	s.instMu.Unlock()
	s.m.refreshes.WithLabelValues("applied").Inc()
	s.log.Info().Str("task", "worker:installations").Int("installations", rep.Installations).
		Int("repositories", rep.Repositories).Msg("installations changed; plan applied")
	return rep, nil
}

// SetInstallations tells the installations worker what cmd/hookd planned with at start, so
// that its first re-list applies only a change. Optional.
func (s *Service) SetInstallations(list []planner.Installation) {
	s.instMu.Lock()
	defer s.instMu.Unlock()
	s.lastList, s.listed = slices.Clone(list), true
}

// RunInstallations is the worker:installations service: it re-lists installations whenever an
// installation or installation_repositories event was handled (InstallationsHandler, on any
// replica: the signal goes through hookd_sweep) and every InstallationsInterval, until ctx
// ends. A failed re-list is logged and tried again at the next signal or tick.
func (s *Service) RunInstallations(ctx context.Context) error {
	// Without UpdatesOnly: a signal left from before this process started triggers one re-list.
	w, err := s.sweep.Watch(ctx, keySignalInstalls)
	if err != nil {
		return fmt.Errorf("watch %s: %w", keySignalInstalls, err)
	}
	defer func() { _ = w.Stop() }()
	tick := time.NewTicker(s.cfg.InstallationsInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil { // the watch closes with the context: shutting down
					return nil
				}
				return fmt.Errorf("watch %s ended", keySignalInstalls)
			}
			if e == nil {
				continue // the end of the initial values
			}
		}
		if _, err := s.installationsOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Str("task", "worker:installations").Msg("re-listing installations failed; trying again at the next change or interval")
		}
	}
}

// InstallationsHandler is the processor handler for installation and installation_repositories
// events: it signals every replica's installations worker to re-list at once, so that
// installations and repositories added or removed start or stop their units without a
// restart. Register it with processor.On("installation", "installation_repositories").
func (s *Service) InstallationsHandler() processor.Handler {
	return processor.HandlerFunc(func(ctx context.Context, ev *processor.Event) error {
		if _, err := s.sweep.Put(ctx, keySignalInstalls, []byte(ev.Meta.Delivery)); err != nil {
			return processor.Transient(fmt.Errorf("signal the installations worker: %w", err))
		}
		return nil
	})
}
