package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/event"
)

// Options configure an Engine. Zero values take the documented defaults.
type Options struct {
	// BotLogin is this app's bot login, e.g. "hookd[bot]". Events it sends trigger no rule that
	// lacks allow_bots: true, and only comments it wrote are edited in upsert mode. Empty turns
	// both protections off (Load logs a warning).
	BotLogin string
	// BaseDir resolves run.command programs given as relative paths. Default: the working
	// directory at Load.
	BaseDir string
	// MaxStdout caps a command's captured standard output. Default 256 KiB: the recorded result must fit a NATS message (1 MiB by default on an external server) after JSON escaping.
	MaxStdout int
	// MaxStderr caps a command's captured standard error. Default 256 KiB.
	MaxStderr int
	// MaxHTTPBody caps a captured HTTP response body. Default 256 KiB (recorded like stdout).
	MaxHTTPBody int
	// Log receives warnings from Load and condition errors (debug) from Match. Default: nothing.
	Log zerolog.Logger
}

// Default caps.
const (
	DefaultMaxStdout   = 256 << 10
	DefaultMaxStderr   = 256 << 10
	DefaultMaxHTTPBody = 256 << 10
)

func (o *Options) defaults() error {
	if o.MaxStdout <= 0 {
		o.MaxStdout = DefaultMaxStdout
	}
	if o.MaxStderr <= 0 {
		o.MaxStderr = DefaultMaxStderr
	}
	if o.MaxHTTPBody <= 0 {
		o.MaxHTTPBody = DefaultMaxHTTPBody
	}
	if o.BaseDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("rules: working directory for relative run.command paths: %w", err)
		}
		o.BaseDir = wd
	}
	return nil
}

// Input is one event as rules see it.
type Input struct {
	Event          string // webhook event name, e.g. "issues"
	Action         string // payload action; empty when the event has none
	Delivery       string // delivery id (synthetic events have their own)
	Payload        []byte // the event JSON
	Repository     string // full name owner/name; empty for events without a repository
	Sender         string // sender login
	SenderType     string // "User", "Bot", "Organization"
	InstallationID int64
	RepositoryID   int64
	IssueNumber    int  // issue or pull request number; 0: taken from the payload when present
	Reconcile      bool // a synthetic event emitted by the sweep for drift
	// Decoded is Payload decoded. Nil: Match, Plan and Execute decode Payload themselves on first
	// use (each call on its own copy of Input); call Decode once to share the work.
	Decoded map[string]any
}

// ErrPayload wraps errors decoding an event payload.
var ErrPayload = errors.New("rules: event payload is not a JSON object")

// Decode decodes Payload into Decoded (once) and fills IssueNumber from it when unset.
func (in *Input) Decode() error {
	if in.Decoded == nil {
		var m map[string]any
		if err := json.Unmarshal(in.Payload, &m); err != nil || m == nil {
			return fmt.Errorf("%w: %v", ErrPayload, err)
		}
		in.Decoded = m
	}
	if in.IssueNumber == 0 {
		in.IssueNumber = issueNumber(in.Decoded)
	}
	return nil
}

// NewInput builds the Input of a stored event from its metadata and body.
func NewInput(m event.Meta, body []byte) (Input, error) {
	in := Input{
		Event: m.Event, Action: m.Action, Delivery: m.Delivery, Payload: body,
		Repository: m.Repository, Sender: m.Sender, SenderType: m.SenderType,
		InstallationID: m.InstallationID, RepositoryID: m.RepositoryID,
		Reconcile: m.Source == event.SourceReconcile,
	}
	return in, in.Decode()
}

func issueNumber(p map[string]any) int {
	for _, k := range []string{"issue", "pull_request"} {
		if m, ok := p[k].(map[string]any); ok {
			if n, ok := m["number"].(float64); ok {
				return int(n)
			}
		}
	}
	if n, ok := p["number"].(float64); ok {
		return int(n)
	}
	return 0
}

// Rule is one compiled rule.
type Rule struct {
	cfg   RuleConfig
	index int
	cond  cel.Program // nil: no condition
	argv  []string    // run.command with the program resolved
	opts  *Options

	httpURL     *template.Template
	httpBody    *template.Template
	httpHeaders map[string]*template.Template
	commentBody *template.Template
}

// Name is the rule's name.
func (r *Rule) Name() string { return r.cfg.Name }

// Config is the rule's configuration with defaults applied.
func (r *Rule) Config() RuleConfig { return r.cfg }

// Engine holds compiled rules, indexed by event name. It is safe for concurrent use.
type Engine struct {
	rules   []*Rule
	byEvent map[string][]*Rule // "event" and "event.action" → rules in configuration order
	byName  map[string][]*Rule // "event" → reconcile: true rules listening to it with any action
	opts    Options
	log     zerolog.Logger
}

// Load validates and compiles rules: every CEL condition is compiled and type-checked, every
// template parsed. It reports all problems at once, each naming its rule
// (rules[<name>].<key>) and, for conditions, the line:column in the expression.
//
// Conditions are CEL over these variables: event, action, delivery, repository, sender,
// sender_type (strings), reconcile (bool) and payload (the event JSON as a map), with helpers
// has_label(name) (the issue or pull request carries the label, case-insensitively),
// command(name) (the comment starts with /name), is_pull_request() (the event concerns a pull
// request, including comments on one) and title_matches(regexp) (the issue or pull request
// title matches). A condition whose evaluation fails (e.g. a missing payload key; guard with
// has(payload.x)) counts as false; Plan shows the error. So does one that exceeds CEL's runtime
// cost limit of 1,000,000 (nested comprehensions over a large payload list).
func Load(cfg []RuleConfig, opts Options) (*Engine, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	e := &Engine{byEvent: map[string][]*Rule{}, byName: map[string][]*Rule{}, opts: opts, log: opts.Log}
	rc := &regexCache{}
	env, err := newCELEnv(rc)
	if err != nil {
		return nil, fmt.Errorf("rules: CEL environment: %w", err)
	}
	var errs []error
	seen := map[string]bool{}
	for i, c := range cfg {
		c.Defaults()
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
		}
		if c.Name != "" && seen[c.Name] {
			errs = append(errs, fmt.Errorf("%s.name: duplicate rule name; names must be unique", c.prefix()))
		}
		seen[c.Name] = true
		r := &Rule{cfg: c, index: i, opts: &e.opts}
		p := c.prefix()
		if strings.TrimSpace(c.If) != "" {
			prg, cerrs := compileCondition(env, c.Name, c.If)
			errs = append(errs, cerrs...)
			r.cond = prg
		}
		tpl := func(field, text string) *template.Template {
			if text == "" {
				return nil
			}
			t, err := parseTemplate(p+"."+field, text)
			if err != nil {
				errs = append(errs, err)
			}
			return t
		}
		if h := c.HTTP; h != nil {
			r.httpURL = tpl("http.url", h.URL)
			r.httpBody = tpl("http.body", h.Body)
			r.httpHeaders = map[string]*template.Template{}
			for k, v := range h.Headers {
				r.httpHeaders[k] = tpl("http.headers."+k, v)
			}
		}
		if cm := c.Comment; cm != nil {
			r.commentBody = tpl("comment.body", cm.Body)
		}
		if run := c.Run; run != nil && len(run.Command) > 0 {
			r.argv = slices.Clone(run.Command)
			if strings.ContainsRune(r.argv[0], '/') && !filepath.IsAbs(r.argv[0]) {
				r.argv[0] = filepath.Join(opts.BaseDir, r.argv[0])
			}
		}
		e.rules = append(e.rules, r)
		for _, ev := range dedupe(c.On) {
			e.byEvent[ev] = append(e.byEvent[ev], r)
		}
		if c.Reconcile {
			var names []string
			for _, ev := range c.On {
				name, _, _ := strings.Cut(ev, ".")
				names = append(names, name)
			}
			for _, name := range dedupe(names) {
				e.byName[name] = append(e.byName[name], r)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.BotLogin == "" && len(cfg) > 0 {
		e.log.Warn().Msg("rules: no bot login configured: events sent by hookd itself can trigger rules, and upsert comments are found by marker alone")
	}
	return e, nil
}

func dedupe(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// Rules returns the rules in configuration order.
func (e *Engine) Rules() []*Rule { return slices.Clone(e.rules) }

// Rule returns the rule named name, or nil.
func (e *Engine) Rule(name string) *Rule {
	for _, r := range e.rules {
		if r.cfg.Name == name {
			return r
		}
	}
	return nil
}

// candidates returns the rules listening to in's event or event.action, in configuration order.
//
// A reconcile event (from the sweep) carries the item's current state rather than one change,
// so it goes to every reconcile: true rule listening to its event with any action; the rule's
// condition decides.
func (e *Engine) candidates(in *Input) []*Rule {
	if in.Reconcile {
		return e.byName[in.Event]
	}
	a := e.byEvent[in.Event]
	if in.Action == "" {
		return a
	}
	b := e.byEvent[in.Event+"."+in.Action]
	switch {
	case len(b) == 0:
		return a
	case len(a) == 0:
		return b
	}
	out := make([]*Rule, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0].index < b[0].index):
			out, a = append(out, a[0]), a[1:]
		case len(a) == 0 || b[0].index < a[0].index:
			out, b = append(out, b[0]), b[1:]
		default: // the same rule listens to both
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return out
}

// Match returns the rules in's event triggers, in configuration order: those listening to the
// event or event.action, whose condition is true, minus the rules not allowed to run on this
// event (a sweep event and reconcile: false; the app's own bot as sender and allow_bots:
// false). Conditions that fail to evaluate count as false (logged at debug).
func (e *Engine) Match(in Input) []*Rule {
	var out []*Rule
	act := &activation{in: &in}
	for _, r := range e.candidates(&in) {
		ok, _, err := r.match(&in, act)
		if err != nil {
			e.log.Debug().Err(err).Str("rule", r.cfg.Name).Str("delivery", in.Delivery).Msg("rule condition failed; counted as false")
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

// match decides one candidate; reason says why not when it does not match.
func (r *Rule) match(in *Input, act *activation) (bool, string, error) {
	if in.Reconcile && !r.cfg.Reconcile {
		return false, "sweep (reconcile) events need reconcile: true", nil
	}
	// Reconcile events are sent in the bot's name but report others' changes: the guard skips them.
	if !in.Reconcile && !r.cfg.AllowBots && r.opts.BotLogin != "" && strings.EqualFold(in.Sender, r.opts.BotLogin) {
		return false, "sent by this app's bot (" + in.Sender + "); set allow_bots: true to run anyway", nil
	}
	if r.cond == nil {
		return true, "", nil
	}
	v, _, err := r.cond.Eval(act)
	if err != nil {
		if act.err != nil {
			err = act.err
		}
		return false, "condition error: " + err.Error(), fmt.Errorf("rules[%s].if: %w", r.cfg.Name, err)
	}
	b, ok := v.(types.Bool)
	if !ok {
		err := fmt.Errorf("rules[%s].if: the condition gave %s, want bool", r.cfg.Name, v.Type())
		return false, "condition error: " + err.Error(), err
	}
	if !b {
		return false, "condition is false", nil
	}
	return true, "", nil
}

// listens reports whether the rule listens to in's event (for a reconcile event: with any action).
func (r *Rule) listens(in *Input) bool {
	for _, ev := range r.cfg.On {
		if name, _, _ := strings.Cut(ev, "."); in.Reconcile && name == in.Event {
			return true
		}
		if ev == in.Event || (in.Action != "" && ev == in.Event+"."+in.Action) {
			return true
		}
	}
	return false
}
