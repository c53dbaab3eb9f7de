package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/hookd/hookd/planner"
)

// GitHub is what the comment and labels steps need from GitHub. GitHubClient implements it over
// go-github; tests use a fake.
type GitHub interface {
	// ListComments returns every comment on the issue or pull request, oldest first.
	ListComments(ctx context.Context, owner, repo string, number int) ([]Comment, error)
	// CreateComment posts a comment and returns it.
	CreateComment(ctx context.Context, owner, repo string, number int, body string) (Comment, error)
	// EditComment replaces a comment's body.
	EditComment(ctx context.Context, owner, repo string, id int64, body string) error
	// AddLabels adds labels; labels already present are kept.
	AddLabels(ctx context.Context, owner, repo string, number int, labels []string) error
	// RemoveLabel removes a label; a label that is not there is not an error.
	RemoveLabel(ctx context.Context, owner, repo string, number int, label string) error
}

// Comment is an issue or pull request comment.
type Comment struct {
	ID   int64
	Body string
	User string // author login
}

// Ledger records step results so a retry of the same event does not repeat effects. The caller
// scopes it to one event (delivery) and one rule; keys are the step names (LedgerRun,
// LedgerHTTP, LedgerComment, LedgerLabels). Get reports found=false for a missing key. Nil
// Deps.Ledger means no ledger: a retry runs every step again (comments are still found by
// their marker).
type Ledger interface {
	Get(ctx context.Context, key string) (val []byte, found bool, err error)
	Put(ctx context.Context, key string, val []byte) error
}

// Ledger keys, one per step.
const (
	LedgerRun     = "run"
	LedgerHTTP    = "http"
	LedgerComment = "comment"
	LedgerLabels  = "labels"
)

// TokenSource mints GitHub installation tokens narrowed to repositories and permissions.
type TokenSource interface {
	Token(ctx context.Context, installationID int64, repoIDs []int64, perms map[string]string) (token string, expires time.Time, err error)
}

// Semaphore bounds how many holders of name run at once (KVSemaphore across a deployment).
// Acquire blocks until a slot is free, ctx ends, or waitUntil passes (zero: no bound), when it
// returns an error wrapping ErrSlotsBusy; the returned context is ctx, cancelled as well if the
// slot is lost (its lease could not be renewed); release frees the slot and may be called more
// than once.
type Semaphore interface {
	Acquire(ctx context.Context, name string, limit int, waitUntil time.Time) (held context.Context, release func(), err error)
}

// Deps are the outside world a rule acts on.
type Deps struct {
	GitHub    GitHub      // required by comment and labels steps
	Ledger    Ledger      // optional; see Ledger
	Tokens    TokenSource // required by run steps with token: true
	Semaphore Semaphore   // required by rules with concurrency > 0
	// HTTPClient sends http steps. Default: a client without its own timeout (each step has one).
	HTTPClient *http.Client
	Log        zerolog.Logger
}

// Result is what Execute did.
type Result struct {
	Rule   string
	DryRun bool          // nothing was done; Plan says what would have been
	Plan   []PlannedStep // dry runs only
	Run    *RunOutput    // the run step's output (fresh or reused)
	HTTP   *HTTPOutput   // the http step's response (fresh or reused)
	// CommentID is the comment posted or edited; 0 when the rule has no comment step or its
	// body rendered blank.
	CommentID int64
	// Reused lists the steps whose recorded result was taken from the ledger instead of being
	// done again.
	Reused []string
}

// ErrNoIssue is returned (permanent) when a comment or labels step runs on an event without an
// issue or pull request.
var ErrNoIssue = errors.New("the event has no issue or pull request")

// Execute runs the rule's steps for in, in order: run, http, comment, labels. A step whose
// result the ledger holds is not done again (its recorded output feeds the templates). Errors
// carry retry classes for the processor's policy (planner.Classify): configuration and template
// errors and 4xx responses are permanent, timeouts, 5xx, 429 and 408 transient, a command's non-zero
// exit unclassified (exit 75 transient). A dry-run rule only logs its plan. Execute does not
// check that the rule matches in: call it with what Match returned.
func (r *Rule) Execute(ctx context.Context, in Input, deps Deps) (Result, error) {
	res := Result{Rule: r.cfg.Name}
	if err := in.Decode(); err != nil {
		return res, planner.Permanent(err)
	}
	log := deps.Log.With().Str("rule", r.cfg.Name).Str("delivery", in.Delivery).Logger()
	if r.cfg.DryRun {
		res.DryRun = true
		res.Plan = r.planSteps(&in)
		for _, s := range res.Plan {
			log.Info().Str("step", s.Step).Str("detail", s.Detail).Msgf("dry run: would %s", s.Summary)
		}
		return res, nil
	}
	x := &execution{r: r, in: &in, deps: deps, log: log, ctx: ctx, res: &res, data: r.data(&in)}
	defer x.releaseSlot()
	err := x.steps()
	return res, err
}

// execution is the state of one Execute call.
type execution struct {
	r       *Rule
	in      *Input
	deps    Deps
	log     zerolog.Logger
	ctx     context.Context
	res     *Result
	data    *TemplateData
	release func()
}

func (x *execution) steps() error {
	c := x.r.cfg
	if c.Run != nil {
		err := x.step(LedgerRun, &x.data.Run, func() (any, error) {
			out, err := x.r.runCommand(x.ctx, x.in, x.deps, x.log)
			x.data.Run = out
			return out, err
		})
		x.res.Run = &x.data.Run
		if err != nil {
			return err
		}
	}
	if c.HTTP != nil {
		err := x.step(LedgerHTTP, &x.data.HTTP, func() (any, error) {
			out, err := x.r.httpRequest(x.ctx, x.data, x.deps)
			x.data.HTTP = out
			return out, err
		})
		x.res.HTTP = &x.data.HTTP
		if err != nil {
			return err
		}
	}
	if c.Comment != nil {
		var rec commentRecord
		err := x.step(LedgerComment, &rec, func() (any, error) {
			id, err := x.r.postComment(x.ctx, x.in, x.data, x.deps)
			if err == nil && id == 0 {
				x.log.Info().Str("step", LedgerComment).Msg("the comment body rendered blank; nothing posted")
			}
			return commentRecord{ID: id}, err
		})
		x.res.CommentID = rec.ID
		if err != nil {
			return err
		}
	}
	if c.Labels != nil {
		var done struct{}
		if err := x.step(LedgerLabels, &done, func() (any, error) {
			return struct{}{}, x.r.applyLabels(x.ctx, x.in, x.deps)
		}); err != nil {
			return err
		}
	}
	return nil
}

type commentRecord struct {
	ID int64 `json:"id"`
}

// step reuses the ledger's record of key into rec, or acquires the rule's slot, does the step,
// and records its result. do's result is stored only when it succeeds; rec is filled either way.
func (x *execution) step(key string, rec any, do func() (any, error)) error {
	name := x.r.cfg.Name
	if l := x.deps.Ledger; l != nil {
		b, found, err := l.Get(x.ctx, key)
		if err != nil {
			return fmt.Errorf("rules[%s].%s: read effect ledger: %w", name, key, err)
		}
		if found && len(b) == 0 {
			// Recorded as done without its result (larger than the NATS server's max_payload):
			// the step is not done again, and what follows sees its result empty.
			x.res.Reused = append(x.res.Reused, key)
			x.log.Warn().Str("step", key).Msg("step already done for this event, but its result was not kept (over the NATS server's max_payload); later steps see it empty")
			return nil
		}
		if found {
			if err := json.Unmarshal(b, rec); err != nil {
				return planner.Permanent(fmt.Errorf("rules[%s].%s: effect ledger record is corrupt: %w", name, key, err))
			}
			x.res.Reused = append(x.res.Reused, key)
			x.log.Debug().Str("step", key).Msg("step already done for this event; reusing its recorded result")
			return nil
		}
	}
	if err := x.acquire(); err != nil {
		return err
	}
	start := time.Now()
	v, err := do()
	if b, merr := json.Marshal(v); merr == nil {
		_ = json.Unmarshal(b, rec)
	}
	if err != nil && errors.Is(context.Cause(x.ctx), ErrLeaseLost) {
		// Cut short because another runner may now hold the rule's slot: try again later.
		err = planner.Transient(fmt.Errorf("%w (the step ended with: %v)", ErrLeaseLost, err))
	}
	if err != nil {
		x.log.Warn().Err(err).Str("step", key).Dur("took", time.Since(start)).Msg("rule step failed")
		return fmt.Errorf("rules[%s].%s: %w", name, key, err)
	}
	x.log.Info().Str("step", key).Dur("took", time.Since(start)).Msg("rule step done")
	if l := x.deps.Ledger; l != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return planner.Permanent(fmt.Errorf("rules[%s].%s: encode ledger record: %w", name, key, err))
		}
		// The effect happened: record it even if the event's context was just cancelled.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(x.ctx), 10*time.Second)
		defer cancel()
		if err := l.Put(pctx, key, b); err != nil {
			return fmt.Errorf("rules[%s].%s: record in effect ledger: %w", name, key, err)
		}
	}
	return nil
}

// acquire takes the rule's concurrency slot before its first step that does something.
func (x *execution) acquire() error {
	if x.r.cfg.Concurrency == 0 || x.release != nil {
		return nil
	}
	if x.deps.Semaphore == nil {
		return planner.Permanent(fmt.Errorf("rules[%s].concurrency: no semaphore configured; this is a wiring bug in hookd", x.r.cfg.Name))
	}
	start := time.Now()
	// Wait no longer than leaves the steps their whole timeouts before the handler's own runs
	// out: a run that got its slot late would be cut short and done again from the start.
	var waitUntil time.Time
	if dl, ok := x.ctx.Deadline(); ok {
		waitUntil = dl.Add(-x.r.stepTimeouts())
	}
	held, release, err := x.deps.Semaphore.Acquire(x.ctx, x.r.cfg.Name, x.r.cfg.Concurrency, waitUntil)
	if errors.Is(err, ErrSlotsBusy) {
		// Handed back rather than holding a processor worker: the event tries again later, in
		// its tenant's order.
		return planner.RetryAfter(fmt.Errorf("rules[%s].concurrency: %w; the event is tried again in %s", x.r.cfg.Name, err, SlotRetry), SlotRetry)
	}
	if err != nil {
		return fmt.Errorf("rules[%s].concurrency: acquire a slot: %w", x.r.cfg.Name, err)
	}
	x.log.Debug().Dur("waited", time.Since(start)).Int("limit", x.r.cfg.Concurrency).Msg("rule slot acquired")
	x.ctx, x.release = held, release
	return nil
}

// SlotRetry is how long an event whose rule found every concurrency slot taken waits before it
// tries again.
const SlotRetry = 30 * time.Second

func (x *execution) releaseSlot() {
	if x.release != nil {
		x.release()
	}
}

// data is the template data of in before any step ran.
func (r *Rule) data(in *Input) *TemplateData {
	return &TemplateData{
		Event: in.Event, Action: in.Action, Delivery: in.Delivery, Repository: in.Repository,
		Sender: in.Sender, Rule: r.cfg.Name, IssueNumber: in.IssueNumber, Payload: templatePayload(in.Decoded),
	}
}

// templatePayload is the decoded payload as templates see it (templateValue).
func templatePayload(p map[string]any) map[string]any {
	m, _ := templateValue(p).(map[string]any)
	return m
}
