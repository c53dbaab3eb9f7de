package sweep

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
)

// RedeliverState is the redelivery worker's progress, in hookd_sweep under redeliver.cursor.
type RedeliverState struct {
	// Mark: every delivery with an id up to Mark has been evaluated (delivery ids grow with
	// time). The next pass reads the log, newest first, down to Mark.
	Mark int64 `json:"mark"`
	// Top and Todo spare a pass that stopped short (capped, or holding for a redelivery whose
	// outcome is not known yet) from reading its backlog again: Todo holds, oldest first, the
	// settled log entries above Mark it had read and not passed, and every log entry with an id
	// in (Mark, Top] is either in Todo or was passed. The next pass reads the log only down to
	// Top and takes the rest from Todo. Top is 0 when there is no Todo.
	Top  int64      `json:"top,omitempty"`
	Todo []LogEntry `json:"todo,omitempty"`
	// LastPass, LastResult ("ok" or "error"), LastError and Requested describe the last pass.
	LastPass   time.Time `json:"last_pass"`
	LastResult string    `json:"last_result"`
	LastError  string    `json:"last_error,omitempty"`
	Requested  int       `json:"requested"`
}

// LogEntry is what the redelivery worker keeps of a delivery log entry between passes.
type LogEntry struct {
	ID             int64     `json:"id"`
	GUID           string    `json:"guid"`
	Event          string    `json:"event"`
	Action         string    `json:"action,omitempty"`
	Status         string    `json:"status,omitempty"`
	InstallationID int64     `json:"installation_id,omitempty"`
	RepositoryID   int64     `json:"repository_id,omitempty"`
	DeliveredAt    time.Time `json:"delivered_at"`
}

// defaultMaxTodo caps RedeliverState.Todo, about 250 bytes an entry: the state must fit a NATS
// message on a server with the default 1 MiB max_payload. A longer backlog keeps its oldest
// entries, and the log above them is read again by the next pass.
const defaultMaxTodo = 2000

func logEntryOf(d *github.HookDelivery) LogEntry {
	status := d.GetStatus()
	if len(status) > 100 {
		status = status[:100]
	}
	return LogEntry{
		ID: d.GetID(), GUID: d.GetGUID(), Event: d.GetEvent(), Action: d.GetAction(), Status: status,
		InstallationID: d.GetInstallationID(), RepositoryID: d.GetRepositoryID(), DeliveredAt: d.GetDeliveredAt().Time,
	}
}

func (e LogEntry) delivery() *github.HookDelivery {
	d := &github.HookDelivery{
		ID: github.Int64(e.ID), GUID: github.String(e.GUID), Event: github.String(e.Event),
		DeliveredAt: &github.Timestamp{Time: e.DeliveredAt},
	}
	if e.Action != "" {
		d.Action = github.String(e.Action)
	}
	if e.Status != "" {
		d.Status = github.String(e.Status)
	}
	if e.InstallationID != 0 {
		d.InstallationID = github.Int64(e.InstallationID)
	}
	if e.RepositoryID != 0 {
		d.RepositoryID = github.Int64(e.RepositoryID)
	}
	return d
}

// Redelivery is one redelivery hookd requested, in hookd_sweep under
// redeliver.guid.<guid>.<attempt> for redelivery_window: the bookkeeping behind
// max_redeliveries, and what `hookd status` lists as pending.
type Redelivery struct {
	GUID           string    `json:"guid"`
	Attempt        int       `json:"attempt"`     // 1..max_redeliveries
	DeliveryID     int64     `json:"delivery_id"` // the delivery log entry redelivered
	Event          string    `json:"event"`
	Action         string    `json:"action,omitempty"`
	Status         string    `json:"status"` // what GitHub recorded for that entry
	InstallationID int64     `json:"installation_id,omitempty"`
	RepositoryID   int64     `json:"repository_id,omitempty"`
	RequestedAt    time.Time `json:"requested_at"`
}

// RedeliverReport is what one redelivery pass did.
type RedeliverReport struct {
	Outcome      string // "ok", "leased" (another replica reads the log), or OutcomeError
	Listed       int    // delivery log entries read (newer than the mark, within the window)
	Young        int    // entries younger than redelivery_min_age, left for later
	Stored       int    // deliveries (GUIDs) found in the events stream
	Unsubscribed int    // deliveries of events no rule or handler subscribes to
	Requested    int    // redeliveries requested
	Refused      int    // redeliveries GitHub refused for the delivery itself (gone, not redeliverable): passed over
	Failed       int    // redelivery requests GitHub answered with a server error: tried again next pass
	Pending      int    // a redelivery was requested less than redelivery_min_age ago; the mark stays before it
	Exhausted    int    // max_redeliveries reached
	Capped       bool   // redeliveries_per_pass reached; the rest waits for the next pass
}

// redeliverOnce reads the app's delivery log from the newest entry down to the mark (or the
// redelivery window) and asks GitHub to redeliver every delivery, whatever status GitHub
// recorded, that is old enough, of a subscribed event, and not in the events stream — at most
// max_redeliveries times per GUID and redeliveries_per_pass per pass, spaced by
// redelivery_spacing. One replica at a time (a lease).
func (s *Service) redeliverOnce(ctx context.Context) (RedeliverReport, error) {
	rep := RedeliverReport{Outcome: "ok"}
	release, ok, err := s.lease(ctx, keyLeaseRedeliver, s.cfg.RedeliverInterval)
	if err != nil {
		rep.Outcome = OutcomeError
		return rep, err
	}
	if !ok {
		rep.Outcome = "leased"
		return rep, nil
	}
	defer release()
	st, err := s.loadRedeliver(ctx)
	if err != nil {
		rep.Outcome = OutcomeError
		return rep, err
	}
	now := s.now()
	err = s.redeliverPass(ctx, &st, &rep, now)
	st.LastPass, st.LastResult, st.LastError, st.Requested = now, "ok", "", rep.Requested
	if err != nil {
		st.LastResult, st.LastError, rep.Outcome = OutcomeError, err.Error(), OutcomeError
	}
	if serr := s.saveJSON(ctx, keyRedeliverCursor, st); serr != nil {
		err = errors.Join(err, serr)
	}
	log := s.log.With().Str("task", "worker:redeliver").Logger()
	switch {
	case err != nil:
		log.Warn().Err(err).Int("requested", rep.Requested).Msg("redelivery pass failed")
	case rep.Requested > 0 || rep.Exhausted > 0:
		log.Info().Int("requested", rep.Requested).Int("exhausted", rep.Exhausted).Int("listed", rep.Listed).
			Bool("capped", rep.Capped).Msg("deliveries missing from the events stream: redelivery requested")
	}
	return rep, err
}

func (s *Service) redeliverPass(ctx context.Context, st *RedeliverState, rep *RedeliverReport, now time.Time) error {
	cl := s.gh.Client()
	oldest, settled := now.Add(-s.cfg.RedeliveryWindow), now.Add(-s.cfg.RedeliveryMinAge)
	var cands []*github.HookDelivery
	var young int64 // the lowest id of a young delivery
	// The log is read newest first down to Mark, or down to Top when the last pass left a Todo.
	floor := max(st.Mark, st.Top)
	top := floor // the highest id read
	opts := &github.ListCursorOptions{PerPage: 100}
	cursors := map[string]bool{}
list:
	for {
		page, resp, err := s.listDeliveries(ctx, cl, opts)
		if err != nil {
			return fmt.Errorf("list the app's webhook deliveries: %w", err)
		}
		for _, d := range page {
			at := d.GetDeliveredAt().Time
			if d.GetID() <= floor || at.Before(oldest) {
				break list
			}
			rep.Listed++
			top = max(top, d.GetID())
			if at.After(settled) {
				rep.Young++
				if young == 0 || d.GetID() < young {
					young = d.GetID()
				}
				continue
			}
			cands = append(cands, d)
		}
		if resp.Cursor == "" || len(page) == 0 {
			break
		}
		if cursors[resp.Cursor] {
			return fmt.Errorf("list the app's webhook deliveries: the delivery log's pagination came back to cursor %q; ending the pass rather than reading the same pages for ever (the next pass reads the log again)", resp.Cursor)
		}
		cursors[resp.Cursor] = true
		opts.Cursor = resp.Cursor
	}
	// The last pass's Todo: settled entries below Top, all below what was read now.
	for _, e := range st.Todo {
		if e.ID > st.Mark && !e.DeliveredAt.Before(oldest) {
			cands = append(cands, e.delivery())
		}
	}
	// Oldest first, so that the mark only passes deliveries that were dealt with.
	slices.SortFunc(cands, func(a, b *github.HookDelivery) int { return cmp.Compare(a.GetID(), b.GetID()) })
	// A delivery's id is given when its attempt ends and its delivered_at when it starts (up to the
	// webhook timeout earlier), so a young delivery can have a lower id than a settled one. The
	// mark must stay below it, or it would never be read again: later ones wait for a next pass.
	if young != 0 {
		cands = slices.DeleteFunc(cands, func(d *github.HookDelivery) bool { return d.GetID() > young })
		top = young - 1 // read again from the young one up
	}
	// Whichever way the pass ends from here, what it read and did not pass is kept for the next.
	defer func() { st.Top, st.Todo = todo(cands, st.Mark, top, s.maxTodo) }()
	stream, err := s.js.Stream(ctx, broker.StreamEvents)
	if err != nil {
		return fmt.Errorf("events stream: %w", err)
	}
	done := map[string]bool{}
	refusedInRow, failedInRow := 0, 0
	// A pending delivery holds the mark before it: a later pass must look at it again.
	held := false
	markPast := func(d *github.HookDelivery) {
		if !held {
			st.Mark = d.GetID()
		}
	}
	for _, d := range cands {
		guid := d.GetGUID()
		if done[guid] || !event.ValidDeliveryID(guid) {
			markPast(d)
			continue
		}
		if !s.subscribed(d.GetEvent()) {
			done[guid] = true
			rep.Unsubscribed++
			s.m.redeliveries.WithLabelValues("unsubscribed").Inc()
			markPast(d)
			continue
		}
		stored, err := isStored(ctx, stream, d)
		if err != nil {
			return err
		}
		if stored {
			done[guid] = true
			rep.Stored++
			markPast(d)
			continue
		}
		n, last, err := s.redeliveries(ctx, guid)
		if err != nil {
			return err
		}
		switch {
		case n > 0 && now.Sub(last) < s.cfg.RedeliveryMinAge:
			// Its redelivery's outcome is not known yet. This entry may be the log entry of that
			// redelivery (settled by GitHub's clock before redelivery_min_age passed by hookd's),
			// the last one of its GUID: passing it would never look at the GUID again.
			rep.Pending++
			held = true
		case n >= s.cfg.MaxRedeliveries:
			rep.Exhausted++
			s.m.redeliveries.WithLabelValues("exhausted").Inc()
			s.log.Warn().Str("task", "worker:redeliver").Str("delivery", guid).Str("event", d.GetEvent()).
				Int("redeliveries", n).Msg("delivery still missing after sweep.max_redeliveries redeliveries; giving up on it (check ingest's logs and GitHub's delivery log)")
		default:
			if rep.Requested+rep.Refused+rep.Failed >= s.cfg.RedeliveriesPerPass {
				rep.Capped = true
				return nil // the mark stays before this delivery
			}
			if rep.Requested+rep.Refused+rep.Failed > 0 {
				if err := s.opts.Wait(ctx, s.cfg.RedeliverySpacing); err != nil {
					return err
				}
			}
			switch err := s.requestRedelivery(ctx, cl, d, n+1, now); {
			case refused(err) && refusedInRow+1 >= maxRefusedInRow:
				// GitHub answers 422 both for a delivery it will not redeliver and for an endpoint
				// it considers spammed. Refusing every one in a row is the latter: stop, and leave
				// the mark before this delivery for a later pass.
				return fmt.Errorf("GitHub refused %d redeliveries in a row, the last with: %w; it may be throttling this app's redeliveries, so the pass ends here and the next one tries again", maxRefusedInRow, err)
			case refused(err):
				// About this delivery only: holding the mark before it would hold every later
				// redelivery until it leaves the window.
				refusedInRow++
				rep.Refused++
				s.log.Warn().Err(err).Str("task", "worker:redeliver").Str("delivery", guid).Str("event", d.GetEvent()).
					Msg("GitHub refused to redeliver the delivery; passing over it")
			case serverError(err) && failedInRow+1 < maxRefusedInRow:
				// Maybe about this delivery only: one that GitHub keeps failing to redeliver must
				// not hold every later one until it leaves the window. It holds the mark, to be
				// tried again next pass; the pass goes on. Several in a row: GitHub is failing.
				failedInRow++
				held = true
				rep.Failed++
				s.log.Warn().Err(err).Str("task", "worker:redeliver").Str("delivery", guid).Str("event", d.GetEvent()).
					Msg("GitHub failed to redeliver the delivery; trying the next ones, and this one again next pass")
				continue
			case err != nil:
				return err
			default:
				refusedInRow, failedInRow = 0, 0
				rep.Requested++
			}
		}
		done[guid] = true
		markPast(d)
	}
	return nil
}

// listPageTries is how many times one page of the delivery log is asked for when GitHub answers
// it with a server error: a first pass, or one after a long stop, may read hundreds of pages,
// and one failed page ends the pass and throws away what the others read.
const listPageTries = 3

// listDeliveries reads one page of the delivery log, asking again after a server error.
func (s *Service) listDeliveries(ctx context.Context, cl *github.Client, opts *github.ListCursorOptions) ([]*github.HookDelivery, *github.Response, error) {
	for try := 1; ; try++ {
		page, resp, err := cl.Apps.ListHookDeliveries(ctx, opts)
		if err == nil || !serverError(err) || try == listPageTries {
			return page, resp, err
		}
		if werr := s.opts.Wait(ctx, time.Duration(try)*time.Second); werr != nil {
			return nil, nil, err
		}
	}
}

// todo is the Top and Todo a pass leaves: the candidates above mark (sorted by id), at most
// maxTodo of them, with top lowered to the last one kept when some are left out.
func todo(cands []*github.HookDelivery, mark, top int64, maxTodo int) (int64, []LogEntry) {
	i, _ := slices.BinarySearchFunc(cands, mark, func(d *github.HookDelivery, m int64) int { return cmp.Compare(d.GetID(), m+1) })
	left := cands[i:]
	if len(left) == 0 {
		return 0, nil // nothing read above the mark is left: reading down to it reads nothing twice
	}
	if len(left) > maxTodo {
		left = left[:maxTodo]
		top = left[len(left)-1].GetID()
	}
	out := make([]LogEntry, len(left))
	for i, d := range left {
		out[i] = logEntryOf(d)
	}
	return top, out
}

// requestRedelivery claims attempt n for d's GUID and asks GitHub to redeliver d. A claim taken
// by another replica counts as done.
func (s *Service) requestRedelivery(ctx context.Context, cl *github.Client, d *github.HookDelivery, n int, now time.Time) error {
	rec := Redelivery{
		GUID: d.GetGUID(), Attempt: n, DeliveryID: d.GetID(), Event: d.GetEvent(), Action: d.GetAction(),
		Status: d.GetStatus(), InstallationID: d.GetInstallationID(), RepositoryID: d.GetRepositoryID(), RequestedAt: now,
	}
	b, _ := json.Marshal(rec)
	key := redeliveryKey(rec.GUID, n)
	rev, err := s.sweep.Create(ctx, key, b, jetstream.KeyTTL(s.cfg.RedeliveryWindow))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("record redelivery %s: %w", key, err)
	}
	_, _, err = cl.Apps.RedeliverHookDelivery(ctx, d.GetID())
	var accepted *github.AcceptedError
	if err != nil && !errors.As(err, &accepted) {
		s.m.redeliveries.WithLabelValues("failed").Inc()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.sweep.Delete(dctx, key, jetstream.LastRevision(rev)) // the attempt did not happen
		return fmt.Errorf("redeliver delivery %d (%s): %w", d.GetID(), rec.GUID, err)
	}
	s.m.redeliveries.WithLabelValues("requested").Inc()
	s.log.Info().Str("task", "worker:redeliver").Str("delivery", rec.GUID).Str("event", rec.Event).
		Str("github_status", rec.Status).Int("attempt", n).Msg("redelivery requested")
	return nil
}

// maxRefusedInRow refusals, or server errors, in a row end a redelivery pass: see refused.
const maxRefusedInRow = 3

// refused reports whether GitHub answered a redelivery request with a refusal about the delivery
// itself (400, 404, 410, 422: gone from the log, or not redeliverable), as opposed to a rate
// limit, a network error or a credentials problem, which end the pass, or a server error, which
// leaves the delivery for the next pass.
func refused(err error) bool {
	var er *github.ErrorResponse
	if !errors.As(err, &er) || er.Response == nil {
		return false
	}
	switch er.Response.StatusCode {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusGone, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// serverError reports whether GitHub answered a request with a 5xx status.
func serverError(err error) bool {
	var er *github.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode >= 500
}

// redeliveries counts the redeliveries recorded for guid and returns when the last was requested.
func (s *Service) redeliveries(ctx context.Context, guid string) (int, time.Time, error) {
	var last time.Time
	for n := 1; ; n++ {
		e, err := s.sweep.Get(ctx, redeliveryKey(guid, n))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return n - 1, last, nil
		}
		if err != nil {
			return 0, last, fmt.Errorf("read %s: %w", redeliveryKey(guid, n), err)
		}
		var r Redelivery
		if json.Unmarshal(e.Value(), &r) == nil && r.RequestedAt.After(last) {
			last = r.RequestedAt
		}
	}
}

func redeliveryKey(guid string, n int) string {
	return keyRedeliveryGUID + guid + "." + strconv.Itoa(n)
}

// isStored reports whether the events stream holds delivery d: a subject-filtered stream info,
// which returns subject counts and no message bodies. It first looks where ingest put it (by
// installation, repository and event, any partition), then anywhere.
func isStored(ctx context.Context, stream jetstream.Stream, d *github.HookDelivery) (bool, error) {
	guid := d.GetGUID()
	filters := []string{event.EventsPrefix + ".*.*.*.*." + guid}
	if ev := d.GetEvent(); event.ValidEventName(ev) {
		t := event.Tenant{InstallationID: d.GetInstallationID(), RepositoryID: d.GetRepositoryID()}
		filters = append([]string{event.EventsPrefix + ".*." + t.Key() + "." + ev + "." + guid}, filters...)
	}
	for _, f := range filters {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(f))
		if err != nil {
			return false, fmt.Errorf("look up delivery %s in %s: %w", guid, broker.StreamEvents, err)
		}
		if len(info.State.Subjects) > 0 {
			return true, nil
		}
	}
	return false, nil
}

func (s *Service) loadRedeliver(ctx context.Context) (RedeliverState, error) {
	var st RedeliverState
	e, err := s.sweep.Get(ctx, keyRedeliverCursor)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read %s: %w", keyRedeliverCursor, err)
	}
	_ = json.Unmarshal(e.Value(), &st) // unreadable: start over within the window
	return st, nil
}

func (s *Service) saveJSON(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.sweep.Put(ctx, key, b); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}
