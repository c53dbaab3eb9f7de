package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/planner"
)

// Settlement kinds: what settle does with a message.
type settleKind int

const (
	kindAck     settleKind = iota // handled (or nothing to do): Ack
	kindRetry                     // failed, retry after delay: NakWithDelay
	kindDead                      // failed for good: dead letter, then Term
	kindRelease                   // not handled by this replica (shutdown, pin lost): Nak, no attempt counted
)

// result is the outcome of handling one event.
type result struct {
	kind     settleKind
	delay    time.Duration
	err      error // the failure, for kindRetry and kindDead
	class    planner.Class
	handlers []string // handlers that failed
	failure  failureRecord
}

// issueEvents carry an issue or pull request whose state the staleness guard tracks.
var issueEvents = map[string]bool{
	"issues": true, "issue_comment": true, "pull_request": true, "pull_request_review": true,
	"pull_request_review_comment": true, "pull_request_review_thread": true,
}

// additiveEvents add something to an issue or pull request (a comment, a review) rather than
// change its state: they are recorded in the item's state but never stale, so that a comment
// command delivered late (or redelivered after an outage) still runs.
var additiveEvents = map[string]bool{
	"issue_comment": true, "pull_request_review": true, "pull_request_review_comment": true,
	"pull_request_review_thread": true,
}

// handle runs every matching handler that has not yet succeeded for the event and decides the
// event's fate. It never acks; settle does.
func (p *Processor) handle(ctx context.Context, it *item) result {
	m := it.meta
	log := p.log.With().Str("tenant", it.tenant.String()).Str("delivery", m.Delivery).Str("event", m.Event).Uint64("seq", it.seq).Logger()
	now := time.Now()
	if it.bad != nil {
		log.Error().Err(it.bad).Msg("undecodable event; dead-lettering it")
		return result{kind: kindDead, err: it.bad, class: planner.PermanentClass,
			failure: failureRecord{Attempts: 1, FirstFailed: now, LastFailed: now, LastError: it.bad.Error()}}
	}
	if m.Event == "ping" {
		p.m.pings.Inc()
		log.Info().Msg("ping received")
		return result{kind: kindAck}
	}
	var routes []route
	for _, r := range p.routes {
		if r.filter.match(m) {
			routes = append(routes, r)
		}
	}
	if len(routes) == 0 {
		p.m.unhandled.WithLabelValues(m.Event).Inc()
		log.Debug().Str("action", m.Action).Msg("no handler for the event")
		// Still record what hookd has seen of the issue or pull request: the sweep compares
		// GitHub with this record, and an unrecorded change would look like drift.
		if issueEvents[m.Event] {
			if ref := itemOf(getPayload(it)); ref.Number != 0 {
				if err := p.states.advance(ctx, it.tenant, ref, m); err != nil {
					log.Warn().Err(err).Msg("cannot record the issue's state for the staleness guard")
				}
			}
		}
		return result{kind: kindAck}
	}

	// A first delivery of a stored event cannot have anything in the ledger; a re-delivery or a
	// replay (a replayed reconcile event keeps its source) may.
	check := it.delivered > 1 || m.Source == event.SourceReplay || it.hdr.Get(HeaderReplayOf) != ""
	var prior failureRecord
	if check {
		if e, err := p.effects.Get(ctx, failureKey(m.Delivery)); err == nil {
			_ = json.Unmarshal(e.Value(), &prior)
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return p.failed(ctx, it, log, prior, []failure{{"", Transient(fmt.Errorf("read failure record: %w", err))}})
		}
	}
	attempt := prior.Attempts + 1
	sh := &shared{clients: p.clients, states: p.states, ctx: ctx}
	if issueEvents[m.Event] {
		sh.item = itemOf(getPayload(it))
	}
	// Events sent by this app's own bot reach only handlers that opt in (no feedback loops).
	// Reconcile events carry the bot as sender but report changes made by others: they pass.
	bot := p.cfg.BotLogin != "" && strings.EqualFold(m.Sender, p.cfg.BotLogin) && m.Source != event.SourceReconcile

	var failures []failure
	var succeeded []string
	for _, r := range routes {
		if bot && !r.allowBot {
			p.m.handled.WithLabelValues(m.Event, r.name, outcomeBot).Inc()
			continue
		}
		hlog := log.With().Str("handler", r.name).Logger()
		if check {
			_, err := p.effects.Get(ctx, handlerDoneKey(m.Delivery, r.name))
			if err == nil {
				p.m.handled.WithLabelValues(m.Event, r.name, outcomeSkipped).Inc()
				continue
			}
			if !errors.Is(err, jetstream.ErrKeyNotFound) {
				failures = append(failures, failure{r.name, Transient(fmt.Errorf("read handler record: %w", err))})
				continue
			}
		}
		ev := &Event{
			Meta: m, Tenant: it.tenant, Payload: getPayload(it), Handler: r.name, Attempt: attempt, Seq: it.seq,
			Ledger: &Ledger{kv: p.effects, prefix: effectPrefix(m.Delivery, r.name), attempt: attempt, fresh: !check, log: hlog},
			Log:    hlog, shared: sh,
		}
		err := p.call(ctx, r, ev)
		outcome := outcomeOK
		if errors.Is(err, ErrStale) {
			outcome, err = outcomeStale, nil
		}
		if err != nil {
			failures = append(failures, failure{r.name, err})
			continue
		}
		succeeded = append(succeeded, r.name)
		p.m.handled.WithLabelValues(m.Event, r.name, outcome).Inc()
	}
	// A handler's success is recorded only when the event will be retried (another handler
	// failed), so that the retry runs only the handlers that failed. When all succeed the ack
	// follows at once; if that ack is lost, the handlers run again (at least once), and
	// Ledger.Do keeps their effects single.
	if len(failures) > 0 {
		// Recorded even when shutdown cancelled the failed handlers: the replica that gets the
		// event next must not run the ones that succeeded again.
		rctx, cancel := recordCtx(ctx)
		defer cancel()
		done := []byte(time.Now().UTC().Format(time.RFC3339Nano))
		for _, name := range succeeded {
			if _, err := p.effects.Put(rctx, handlerDoneKey(m.Delivery, name), done); err != nil {
				log.Warn().Err(err).Str("handler", name).Msg("cannot record the handler's success; the retry runs it again")
			}
		}
	}
	if len(failures) == 0 {
		if sh.item.Number != 0 {
			rctx, cancel := recordCtx(ctx)
			defer cancel()
			if err := p.states.advance(rctx, it.tenant, sh.item, m); err != nil {
				log.Warn().Err(err).Msg("cannot record the issue's state for the staleness guard")
			}
		}
		// The trail of what hookd did: one line per event, once every handler is done with it.
		le := log.Info()
		if len(succeeded) == 0 { // each skipped: the app's own event, or done by an earlier attempt
			le = log.Debug()
		}
		le.Str("action", m.Action).Str("sender", m.Sender).Strs("handlers", succeeded).Int("attempt", attempt).
			Dur("took", time.Since(now)).Msg("event handled")
		return result{kind: kindAck}
	}
	if ctx.Err() != nil {
		// Shutdown cancelled the handlers: not the event's fault, do not count the attempt.
		for _, f := range failures {
			p.m.handled.WithLabelValues(m.Event, f.handler, outcomeCancel).Inc()
		}
		return result{kind: kindRelease}
	}
	return p.failed(ctx, it, log, prior, failures)
}

// recordCtx is ctx for writing down what already happened (a handler's success, the item's
// state): shutdown cancelling ctx must not lose the record, or the work is done again.
func recordCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

type failure struct {
	handler string
	err     error
}

// failed records a failed attempt and applies the retry policy to it.
func (p *Processor) failed(ctx context.Context, it *item, log zerolog.Logger, prior failureRecord, failures []failure) result {
	now := time.Now()
	rec := prior
	rec.Attempts++
	for _, f := range failures {
		if c, _ := planner.Classify(f.err, now); c == planner.Unknown {
			rec.Unclassified++
			break
		}
	}
	if rec.FirstFailed.IsZero() {
		rec.FirstFailed = now
	}
	rec.LastFailed = now
	rec.Handlers = rec.Handlers[:0]
	var msgs []string
	for _, f := range failures {
		if f.handler != "" {
			rec.Handlers = append(rec.Handlers, f.handler)
			msgs = append(msgs, f.handler+": "+f.err.Error())
		} else {
			msgs = append(msgs, f.err.Error())
		}
	}
	rec.LastError = strings.Join(msgs, "; ")
	if b, err := json.Marshal(rec); err == nil {
		if _, err := p.effects.Put(ctx, failureKey(it.meta.Delivery), b); err != nil {
			log.Warn().Err(err).Msg("cannot record the failed attempt; the attempt count may restart")
		}
	}
	res := result{kind: kindRetry, handlers: rec.Handlers, failure: rec}
	for _, f := range failures {
		// An unclassified error is retried retry.max_attempts times, however many transient
		// failures came before it; transient errors are retried without limit.
		attempt := rec.Attempts
		if c, _ := planner.Classify(f.err, now); c == planner.Unknown {
			attempt = rec.Unclassified
		}
		d := p.cfg.Retry.Decide(planner.PhaseWorker, f.err, attempt, now)
		if !d.Retry {
			res.kind, res.err, res.class = kindDead, f.err, d.Class
			break
		}
		if d.Delay >= res.delay {
			res.delay, res.err, res.class = d.Delay, f.err, d.Class
		}
	}
	outcome := outcomeRetry
	if res.kind == kindDead {
		outcome = outcomeDead
	}
	for _, f := range failures {
		if f.handler != "" {
			p.m.handled.WithLabelValues(it.meta.Event, f.handler, outcome).Inc()
		}
	}
	ev := log.Warn()
	if res.class == planner.Unknown {
		ev = log.Error() // unclassified errors are logged loudly
	}
	ev.Err(res.err).Strs("handlers", rec.Handlers).Int("attempt", rec.Attempts).Str("class", res.class.String()).
		Dur("retry_in", res.delay).Bool("dead_letter", res.kind == kindDead).Msg("event handling failed")
	return res
}

// call runs one handler with its timeout, turning a panic into an error.
func (p *Processor) call(ctx context.Context, r route, ev *Event) (err error) {
	timeout := p.cfg.HandlerTimeout
	if r.timeout > 0 {
		timeout = r.timeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	defer func() {
		p.m.run.WithLabelValues(r.name).Observe(time.Since(start).Seconds())
		if v := recover(); v != nil {
			p.m.panics.WithLabelValues(r.name).Inc()
			ev.Log.Error().Str("panic", fmt.Sprint(v)).Bytes("stack", debug.Stack()).Msg("handler panicked")
			// Unknown class: a panic may come from a transient condition (an unexpected nil in
			// a response), so it is retried on the long backoff and dead-lettered after
			// retry.max_attempts attempts, like any unclassified error.
			err = fmt.Errorf("handler %s panicked: %v", r.name, v)
		}
	}()
	return r.h.Handle(cctx, ev)
}

func getPayload(it *item) []byte { return it.data }
