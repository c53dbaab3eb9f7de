package rules

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/hookd/hookd/processor"
)

// HandlerDeps are what rules need from the running hookd besides each event's own GitHub client
// and effect ledger.
type HandlerDeps struct {
	Tokens     TokenSource  // for run.token; nil: rules with token: true fail permanently
	Semaphore  Semaphore    // for concurrency; nil: rules with concurrency > 0 fail permanently
	HTTPClient *http.Client // for http steps; nil: a default client
	Log        zerolog.Logger
}

// HandlerName is the processor handler name of rule name: "rule-<name>". It prefixes the rule's
// effect-ledger keys and labels its metrics.
func HandlerName(name string) string { return "rule-" + name }

// Register registers every rule of e on mux as its own processor handler, so that each rule is
// retried, dead-lettered and ledgered on its own: a rule that failed runs again without the
// rules that succeeded. Rules listen by event name at the processor (a reconcile event, with
// action "reconcile", must reach rules of any action); the rule itself checks the action.
func Register(mux *processor.Mux, e *Engine, d HandlerDeps) error {
	for _, r := range e.rules {
		var names []string
		for _, on := range r.cfg.On {
			name, _, _ := strings.Cut(on, ".")
			names = append(names, name)
		}
		var opts []processor.HandleOption
		if r.cfg.AllowBots {
			opts = append(opts, processor.AllowBotEvents())
		}
		if timeout := r.timeout(); timeout > 0 {
			opts = append(opts, processor.WithTimeout(timeout))
		}
		if err := mux.Handle(HandlerName(r.cfg.Name), processor.On(dedupe(names)...), &handler{r: r, d: d}, opts...); err != nil {
			return err
		}
	}
	return nil
}

// timeout is the handler timeout a rule needs: its steps' timeouts plus a margin for GitHub calls
// (and for waiting for a concurrency slot).
func (r *Rule) timeout() time.Duration {
	t := r.stepTimeouts()
	if t == 0 {
		return 0
	}
	return t + 2*time.Minute
}

// stepTimeouts is the sum of the rule's run and http step timeouts.
func (r *Rule) stepTimeouts() time.Duration {
	var t time.Duration
	if r.cfg.Run != nil {
		t += r.cfg.Run.Timeout
	}
	if r.cfg.HTTP != nil {
		t += r.cfg.HTTP.Timeout
	}
	return t
}

type inputKey struct{}

type handler struct {
	r *Rule
	d HandlerDeps
}

// Handle runs the rule on one event when it matches. Stale events (a newer state of the issue or
// pull request was already handled) are skipped, except reconcile events, which carry the
// current state.
func (h *handler) Handle(ctx context.Context, ev *processor.Event) error {
	in := Input{Event: ev.Meta.Event, Action: ev.Meta.Action, Reconcile: ev.Meta.Source == "reconcile"}
	if !h.r.listens(&in) {
		return nil
	}
	// Every rule listening to the event shares one decoded input.
	shared, err := ev.Shared(inputKey{}, func() (any, error) {
		in, err := NewInput(ev.Meta, ev.Payload)
		return &in, err
	})
	if err != nil {
		return processor.Permanent(err)
	}
	in = *shared.(*Input)
	ok, reason, err := h.r.match(&in, &activation{in: &in})
	if err != nil {
		ev.Log.Debug().Err(err).Str("rule", h.r.cfg.Name).Msg("rule condition failed; counted as false")
	}
	if !ok {
		ev.Log.Debug().Str("rule", h.r.cfg.Name).Str("reason", reason).Msg("rule does not match")
		return nil
	}
	if !in.Reconcile && ev.Stale() {
		ev.Log.Info().Str("rule", h.r.cfg.Name).Msg("stale event: a newer state of this issue was already handled; rule skipped")
		return nil
	}
	deps := Deps{
		Ledger:     ledger{ev.Ledger},
		Tokens:     h.d.Tokens,
		Semaphore:  h.d.Semaphore,
		HTTPClient: h.d.HTTPClient,
		Log:        ev.Log,
	}
	if h.r.needsGitHub() {
		gh, err := ev.GitHub()
		if err != nil {
			return err
		}
		deps.GitHub = GitHubClient{Client: gh}
	}
	res, err := h.r.Execute(ctx, in, deps)
	if err != nil {
		return err
	}
	ev.Log.Info().Str("rule", h.r.cfg.Name).Bool("dry_run", res.DryRun).Strs("reused", res.Reused).
		Int64("comment_id", res.CommentID).Msg("rule done")
	return nil
}

func (r *Rule) needsGitHub() bool { return r.cfg.Comment != nil || r.cfg.Labels != nil }

// ledger adapts the processor's effect ledger to the rules' narrow Ledger.
type ledger struct{ l *processor.Ledger }

func (l ledger) Get(ctx context.Context, key string) ([]byte, bool, error) { return l.l.Done(ctx, key) }

func (l ledger) Put(ctx context.Context, key string, val []byte) error {
	_, err := l.l.Do(ctx, key, func(context.Context) ([]byte, error) { return val, nil })
	return err
}
