package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/processor"
)

// Pass outcomes (metric label hookd_sweep_passes_total{outcome}, RepoState.LastResult).
const (
	OutcomeUnchanged   = "unchanged"    // the listing answered 304: nothing changed, nothing spent
	OutcomeClean       = "clean"        // listed; every change had been seen by hookd
	OutcomeDrift       = "drift"        // listed; reconcile events stored for unseen changes
	OutcomeNotDue      = "not_due"      // the repository's adaptive interval has not passed
	OutcomeLeased      = "leased"       // another replica is sweeping it
	OutcomeRateLimited = "rate_limited" // the installation's budget is left to event handling
	OutcomeSuspended   = "suspended"    // the installation is suspended: paused until re-listed
	OutcomeError       = "error"
)

// perPage and maxPages bound one pass: at most 1000 issues; the cursor carries on next pass.
const (
	perPage  = 100
	maxPages = 10
)

// RepoState is one repository's sweep state, in hookd_sweep under
// repo.<installation>.<repository>. `hookd status` shows it.
type RepoState struct {
	Tenant event.Tenant `json:"tenant"`
	// Cursor is the since of the listing: issues and pull requests updated at or after it are
	// listed. It moves forward (to the newest change evaluated) only after the pass's reconcile
	// events are stored, and only when it must: the listing filled a page, or the cursor is
	// older than twice the lookback. Keeping it still keeps the request identical, so that an
	// unchanged repository answers 304.
	Cursor time.Time `json:"cursor"`
	// ETag of the last listing at ETagSince (set only when the listing was complete in one
	// page and nothing was deferred), sent as If-None-Match.
	ETag      string    `json:"etag,omitempty"`
	ETagSince time.Time `json:"etag_since,omitzero"`
	// Seen is the newest updated_at evaluated so far: a listing with a newer one is activity.
	Seen time.Time `json:"seen,omitzero"`
	// Interval is the repository's current (adaptive) interval; Quiet counts unchanged passes.
	Interval time.Duration `json:"interval"`
	Quiet    int           `json:"quiet"`
	// NextDue is when the next pass may start.
	NextDue time.Time `json:"next_due"`
	// LastSweep, LastResult (an Outcome), LastError and LastDrift describe the last pass.
	LastSweep  time.Time `json:"last_sweep"`
	LastResult string    `json:"last_result"`
	LastError  string    `json:"last_error,omitempty"`
	LastDrift  int       `json:"last_drift"`
	// RateRemaining and RateLimit are the installation's budget as the last pass saw it.
	RateRemaining int `json:"rate_remaining,omitempty"`
	RateLimit     int `json:"rate_limit,omitempty"`
}

// SweepReport is what one pass over one repository did.
type SweepReport struct {
	Outcome     string
	Listed      int // issues and pull requests evaluated
	Drift       int // reconcile events newly stored
	Duplicates  int // reconcile events already stored (by another pass or replica)
	Deferred    int // changes younger than drift_min_age, left for the next pass
	Calls       int // API calls answered with a body (they cost rate limit)
	NotModified int // API calls answered 304 (free)
}

// SweepRepository is the worker:sweep pass for repository t (a planner.Spec Run): see
// sweepOnce.
func (s *Service) SweepRepository(ctx context.Context, t event.Tenant) error {
	rep, err := s.sweepOnce(ctx, t)
	log := s.log.With().Str("task", "worker:sweep:"+t.FullName()).Str("tenant", t.String()).Logger()
	switch {
	case err != nil:
		log.Warn().Err(err).Msg("sweep failed")
	case rep.Drift > 0:
		log.Info().Int("drift", rep.Drift).Int("listed", rep.Listed).Msg("drift found: reconcile events stored")
	case rep.Outcome == OutcomeRateLimited:
		log.Info().Msg("sweep skipped: the installation's remaining rate limit is left to event handling (sweep.rate_limit_share)")
	default:
		log.Debug().Str("outcome", rep.Outcome).Int("listed", rep.Listed).Msg("sweep pass")
	}
	return err
}

// sweepOnce sweeps repository t once, unless it is not due, another replica holds its lease, or
// the installation's rate limit is low: it lists the issues and pull requests updated since the
// cursor (conditionally: 304 when unchanged), compares each with hookd's ItemState, and stores a
// reconcile event for each change hookd has not seen; then it advances the cursor and the
// adaptive interval.
func (s *Service) sweepOnce(ctx context.Context, t event.Tenant) (SweepReport, error) {
	var rep SweepReport
	done := func(outcome string, err error) (SweepReport, error) {
		rep.Outcome = outcome
		s.m.passes.WithLabelValues(outcome).Inc()
		return rep, err
	}
	if !t.IsRepository() {
		return done(OutcomeError, fmt.Errorf("sweep: tenant %s is not a repository", t))
	}
	now := s.now()
	st, err := s.loadRepo(ctx, t)
	if err != nil {
		return done(OutcomeError, err)
	}
	if st.NextDue.After(now) {
		return done(OutcomeNotDue, nil)
	}
	// Below the share, only a conditional pass goes ahead: an unchanged repository answers 304,
	// which costs nothing, and a changed one costs what its drift needs anyway.
	if r, low := s.rateLow(t.InstallationID); low && (st.ETag == "" || r.Remaining == 0) {
		return done(OutcomeRateLimited, nil)
	}
	release, ok, err := s.lease(ctx, keyLeaseSweep+strconv.FormatInt(t.RepositoryID, 10), s.cfg.Interval)
	if err != nil {
		return done(OutcomeError, err)
	}
	if !ok {
		return done(OutcomeLeased, nil)
	}
	defer release()
	if st, err = s.loadRepo(ctx, t); err != nil { // authoritative, under the lease
		return done(OutcomeError, err)
	}
	if st.NextDue.After(now) {
		return done(OutcomeNotDue, nil)
	}
	outcome, perr := s.pass(ctx, t, &st, &rep, now)
	if perr != nil && isSuspended(perr) {
		// Suspended since the tenant set was listed: pause quietly, and have every replica
		// re-list so that the planner stops this installation's units.
		outcome, perr = OutcomeSuspended, nil
		if _, err := s.sweep.Put(ctx, keySignalInstalls, []byte("suspended:"+strconv.FormatInt(t.InstallationID, 10))); err != nil {
			s.log.Warn().Err(err).Msg("cannot signal the installations worker")
		}
	}
	st.LastSweep, st.LastResult, st.LastError, st.LastDrift = now, outcome, "", rep.Drift
	if perr != nil {
		st.LastResult, st.LastError = OutcomeError, perr.Error()
		outcome = OutcomeError
	}
	if r, ok := s.rateOf(t.InstallationID); ok {
		st.RateRemaining, st.RateLimit = r.Remaining, r.Limit
	}
	if err := s.saveRepo(ctx, st); err != nil {
		return done(OutcomeError, errors.Join(perr, err))
	}
	return done(outcome, perr)
}

// listItem is the part of a listed issue the sweep reads.
type listItem struct {
	Number      int             `json:"number"`
	UpdatedAt   time.Time       `json:"updated_at"`
	PullRequest json.RawMessage `json:"pull_request"`
}

// pass lists and reconciles; it updates st's cursor, ETag and interval, and returns the outcome.
func (s *Service) pass(ctx context.Context, t event.Tenant, st *RepoState, rep *SweepReport, now time.Time) (string, error) {
	cl, err := s.gh.Installation(t.InstallationID)
	if err != nil {
		return OutcomeError, err
	}
	since := st.Cursor
	if since.IsZero() {
		since = now.Add(-s.cfg.Lookback).Truncate(time.Second)
	}
	etag := ""
	if st.ETag != "" && st.ETagSince.Equal(since) {
		etag = st.ETag
	}
	// Pages are read by keyset: each next page is the listing since the last item read, not the
	// listing's next page number. An item updated while the listing is read moves to its end, and
	// with page numbers the item after it would slide onto a page already read, and be missed.
	// Only while more than a page of items share one second does it fall back to page numbers.
	listURL := func(since time.Time, page int) string {
		u := fmt.Sprintf("repos/%s/%s/issues?state=all&sort=updated&direction=asc&per_page=%d&since=%s",
			url.PathEscape(t.Owner), url.PathEscape(t.Name), perPage, url.QueryEscape(since.Format(time.RFC3339)))
		if page > 1 {
			u += "&page=" + strconv.Itoa(page)
		}
		return u
	}
	newest, active, deferred, full := since, false, false, false
	var newETag string
	settled := now.Add(-s.cfg.DriftMinAge)
	pageSince, page := since, 1
	read := map[int]time.Time{} // number → updated_at of the items handled in this pass
pages:
	for call := 1; ; call++ {
		if call > maxPages {
			full = true
			break
		}
		req, err := cl.NewRequest(http.MethodGet, listURL(pageSince, page), nil)
		if err != nil {
			return OutcomeError, err
		}
		if call == 1 && etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		var items []json.RawMessage
		resp, err := cl.Do(ctx, req, &items)
		if resp != nil {
			s.ObserveResponse(t.InstallationID, resp.Response)
		}
		if resp != nil && resp.StatusCode == http.StatusNotModified {
			rep.NotModified++
			s.m.apiCalls.WithLabelValues("not_modified").Inc()
			s.adapt(st, false, now)
			return OutcomeUnchanged, nil
		}
		if err != nil {
			s.m.apiCalls.WithLabelValues("error").Inc()
			// The pages read are dealt with: the next pass starts after them (when they were full).
			s.moveCursor(st, since, newest, full, now)
			return OutcomeError, fmt.Errorf("list issues of %s: %w", t.FullName(), err)
		}
		rep.Calls++
		s.m.apiCalls.WithLabelValues("ok").Inc()
		if call == 1 && resp.NextPage == 0 {
			newETag = resp.Header.Get("ETag")
		}
		if len(items) >= perPage {
			full = true
		}
		last := pageSince
		for _, raw := range items {
			var it listItem
			if err := json.Unmarshal(raw, &it); err != nil || it.Number == 0 {
				return OutcomeError, fmt.Errorf("list issues of %s: undecodable item: %v", t.FullName(), err)
			}
			it.UpdatedAt = it.UpdatedAt.UTC()
			last = it.UpdatedAt
			if at, ok := read[it.Number]; ok && !it.UpdatedAt.After(at) {
				continue // listed again: the next page starts at the second of the last one's end
			}
			if it.UpdatedAt.After(settled) {
				deferred = true
				rep.Deferred++
				break pages
			}
			if it.UpdatedAt.After(st.Seen) {
				active = true
				st.Seen = it.UpdatedAt
			}
			rep.Listed++
			stored, dup, err := s.reconcileItem(ctx, cl, t, raw, it, rep, now)
			if err != nil {
				s.moveCursor(st, since, newest, full, now)
				return OutcomeError, err
			}
			if stored {
				rep.Drift++
			} else if dup {
				rep.Duplicates++
			}
			read[it.Number] = it.UpdatedAt
			if it.UpdatedAt.After(newest) {
				newest = it.UpdatedAt
			}
		}
		if resp.NextPage == 0 {
			break
		}
		if next := last.Truncate(time.Second); next.After(pageSince) {
			pageSince, page = next, 1
		} else {
			page++ // a whole page within one second: only the page number moves on
		}
	}
	moved := s.moveCursor(st, since, newest, full, now)
	st.ETag, st.ETagSince = "", time.Time{}
	if newETag != "" && !deferred && !moved {
		st.ETag, st.ETagSince = newETag, since
	}
	s.adapt(st, active || deferred || rep.Drift > 0, now)
	if rep.Drift > 0 {
		return OutcomeDrift, nil
	}
	return OutcomeClean, nil
}

// moveCursor sets st.Cursor after the events up to newest are stored: to newest when the
// listing was full (to make progress) or the cursor fell twice the lookback behind; else it stays at
// since, keeping the request identical for the next conditional request. It reports whether
// the cursor moved.
func (s *Service) moveCursor(st *RepoState, since, newest time.Time, full bool, now time.Time) bool {
	st.Cursor = since
	if newest.After(since) && (full || since.Before(now.Add(-2*s.cfg.Lookback))) {
		st.Cursor = newest.Truncate(time.Second)
	}
	return !st.Cursor.Equal(since)
}

// adapt sets the next due time: active repositories drop to MinInterval, quiet ones double
// their interval every QuietPasses passes up to MaxInterval.
func (s *Service) adapt(st *RepoState, active bool, now time.Time) {
	if st.Interval <= 0 {
		st.Interval = s.cfg.Interval
	}
	if active {
		st.Interval, st.Quiet = s.cfg.MinInterval, 0
	} else if st.Quiet++; st.Quiet >= s.cfg.QuietPasses {
		st.Interval, st.Quiet = min(st.Interval*2, s.cfg.MaxInterval), 0
	}
	st.Interval = min(max(st.Interval, s.cfg.MinInterval), s.cfg.MaxInterval)
	// Half a MinInterval of slack: the worker wakes every MinInterval, and a repository due a
	// moment after a wake-up should not wait a whole extra one.
	st.NextDue = now.Add(st.Interval - s.cfg.MinInterval/2)
}

// reconcileItem stores a reconcile event for it unless hookd has seen its latest change.
func (s *Service) reconcileItem(ctx context.Context, cl *github.Client, t event.Tenant, raw json.RawMessage, it listItem, rep *SweepReport, now time.Time) (stored, duplicate bool, err error) {
	seen, err := s.seen(ctx, t, it)
	if err != nil || seen {
		return false, false, err
	}
	isPR := len(it.PullRequest) > 0 && string(it.PullRequest) != "null"
	name := "issues"
	if isPR {
		name = "pull_request"
	}
	if !s.subscribed(name) {
		return false, false, nil
	}
	bot, err := s.botLogin(ctx)
	if err != nil {
		return false, false, err
	}
	p := ReconcilePayload{
		Action:       ActionReconcile,
		Repository:   RepositoryRef{ID: t.RepositoryID, Name: t.Name, FullName: t.FullName(), Owner: Login{Login: t.Owner}},
		Installation: InstallationRef{ID: t.InstallationID},
		Sender:       Sender{Login: bot, Type: "Bot"},
	}
	id := ReconcileDeliveryID(t.RepositoryID, it.Number, it.UpdatedAt)
	if isPR {
		// Fetching the pull request costs a call. Skip it when an earlier pass stored this event
		// and the processor has not recorded it yet (it is behind, or the handling failed):
		// every pass that lists the item again would pay it.
		if stored, err := s.reconcileStored(ctx, t, name, id); err != nil || stored {
			return false, stored, err
		}
		pr, err := s.getPull(ctx, cl, t, it.Number, rep)
		if err != nil {
			return false, false, err
		}
		p.Number, p.PullRequest = it.Number, pr
	} else {
		p.Issue = raw
	}
	body, err := json.Marshal(p)
	if err != nil {
		return false, false, err
	}
	m := event.Meta{
		Event: name, Action: ActionReconcile, Delivery: id,
		InstallationID: t.InstallationID, RepositoryID: t.RepositoryID, Repository: t.FullName(), Owner: t.Owner,
		Sender: bot, SenderType: "Bot", ReceivedAt: now, SecretIndex: -1, Source: event.SourceReconcile,
	}
	ack, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: event.InSubject(t, name, m.Delivery), Header: m.Header(), Data: body},
		jetstream.WithMsgID(m.Delivery))
	dup, err := broker.PublishOutcome(ack, err)
	if err != nil {
		return false, false, fmt.Errorf("store reconcile event %s: %w", m.Delivery, err)
	}
	if !dup {
		s.m.drift.Inc()
	}
	return !dup, dup, nil
}

// reconcileStored reports whether the events stream holds the reconcile event name/id of t (a
// subject-filtered stream info: subject counts, no message bodies).
func (s *Service) reconcileStored(ctx context.Context, t event.Tenant, name, id string) (bool, error) {
	stream, err := s.js.Stream(ctx, broker.StreamEvents)
	if err != nil {
		return false, fmt.Errorf("events stream: %w", err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(event.EventsPrefix+".*."+t.Key()+"."+name+"."+id))
	if err != nil {
		return false, fmt.Errorf("look up reconcile event %s in %s: %w", id, broker.StreamEvents, err)
	}
	return len(info.State.Subjects) > 0, nil
}

// seen reports whether hookd has handled it at its latest updated_at (the processor's ItemState).
func (s *Service) seen(ctx context.Context, t event.Tenant, it listItem) (bool, error) {
	key := processor.StateKey(t, it.Number)
	e, err := s.state.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", key, err)
	}
	var st processor.ItemState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return false, nil // unreadable: treat as unseen; the reconcile event rewrites it
	}
	return !st.UpdatedAt.Before(it.UpdatedAt), nil
}

func (s *Service) getPull(ctx context.Context, cl *github.Client, t event.Tenant, n int, rep *SweepReport) (json.RawMessage, error) {
	req, err := cl.NewRequest(http.MethodGet, fmt.Sprintf("repos/%s/%s/pulls/%d", url.PathEscape(t.Owner), url.PathEscape(t.Name), n), nil)
	if err != nil {
		return nil, err
	}
	var pr json.RawMessage
	resp, err := cl.Do(ctx, req, &pr)
	if resp != nil {
		s.ObserveResponse(t.InstallationID, resp.Response)
	}
	if err != nil {
		s.m.apiCalls.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("get pull request %s#%d: %w", t.FullName(), n, err)
	}
	rep.Calls++
	s.m.apiCalls.WithLabelValues("ok").Inc()
	return pr, nil
}

func (s *Service) rateOf(id int64) (rate, bool) {
	s.rateMu.Lock()
	defer s.rateMu.Unlock()
	r, ok := s.rates[id]
	return r, ok
}

func (s *Service) loadRepo(ctx context.Context, t event.Tenant) (RepoState, error) {
	e, err := s.sweep.Get(ctx, repoKey(t))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return RepoState{Tenant: t}, nil
	}
	if err != nil {
		return RepoState{}, fmt.Errorf("read %s: %w", repoKey(t), err)
	}
	var st RepoState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return RepoState{Tenant: t}, nil // unreadable: start over (the lookback bounds the cost)
	}
	st.Tenant = t // names may have changed
	return st, nil
}

func (s *Service) saveRepo(ctx context.Context, st RepoState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.sweep.Put(ctx, repoKey(st.Tenant), b); err != nil {
		return fmt.Errorf("write %s: %w", repoKey(st.Tenant), err)
	}
	return nil
}
