package rules

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// PlannedRule is what one rule would do with an event (Engine.Plan).
type PlannedRule struct {
	Rule    string
	Listens bool   // the event is in the rule's `on`
	Matched bool   // the rule would run
	Reason  string // why it would not run; empty when Matched
	DryRun  bool   // the rule is configured dry_run: it would only log its steps
	Steps   []PlannedStep
}

// PlannedStep describes one step without doing it.
type PlannedStep struct {
	Step    string // run, http, comment or labels
	Summary string // one line, e.g. "comment (upsert) on octo/repo#1"
	Detail  string // the rendered request body or comment body, when there is one
	Err     string // a template that failed to render with this event
}

// Plan describes, without any effect, what every rule would do with in: whether it matches
// and why not, and each step with its templates rendered (a run step's output and an http
// step's response are placeholders). It is `hookd rules test`.
func (e *Engine) Plan(in Input) ([]PlannedRule, error) {
	if err := in.Decode(); err != nil {
		return nil, err
	}
	act := &activation{in: &in}
	out := make([]PlannedRule, 0, len(e.rules))
	for _, r := range e.rules {
		p := PlannedRule{Rule: r.cfg.Name, Listens: r.listens(&in), DryRun: r.cfg.DryRun}
		if !p.Listens {
			p.Reason = fmt.Sprintf("listens to %s, not %s", strings.Join(r.cfg.On, ", "), eventName(&in))
		} else {
			p.Matched, p.Reason, _ = r.match(&in, act)
		}
		if p.Matched {
			p.Steps = r.planSteps(&in)
		}
		out = append(out, p)
	}
	return out, nil
}

func eventName(in *Input) string {
	if in.Action == "" {
		return in.Event
	}
	return in.Event + "." + in.Action
}

// planSteps renders the rule's steps for in with placeholder step outputs.
func (r *Rule) planSteps(in *Input) []PlannedStep {
	c := r.cfg
	data := r.data(in)
	var steps []PlannedStep
	if run := c.Run; run != nil {
		s := PlannedStep{Step: LedgerRun, Summary: fmt.Sprintf("run %s (timeout %s)", shellQuote(run.Command), run.Timeout)}
		if run.Token {
			s.Summary += ", with a token for " + in.Repository + " (" + permString(run.Permissions) + ")"
		}
		if c.Concurrency > 0 {
			s.Summary += fmt.Sprintf(", at most %d at once", c.Concurrency)
		}
		steps = append(steps, s)
		data.Run = RunOutput{Stdout: fmt.Sprintf("(output of %s)", shellQuote(run.Command))}
	}
	if h := c.HTTP; h != nil {
		s := PlannedStep{Step: LedgerHTTP}
		// The summary is logged by dry runs: the URL as safeURL shows it, never the template's text.
		_, where, err := r.buildRequest(data)
		if err != nil {
			where = h.Method + " (http.url)"
			s.Summary, s.Err = where, err.Error()
		} else {
			s.Summary = where + fmt.Sprintf(" (timeout %s)", h.Timeout)
			s.Detail, _ = render(r.httpBody, data)
		}
		steps = append(steps, s)
		data.HTTP = HTTPOutput{Status: 200, Body: "(response of " + where + ")", JSON: map[string]any{}}
	}
	if cm := c.Comment; cm != nil {
		s := PlannedStep{Step: LedgerComment, Summary: fmt.Sprintf("comment (%s) on %s#%d", cm.Mode, in.Repository, in.IssueNumber)}
		if _, _, _, err := r.target(in, "comment"); err != nil {
			s.Err = err.Error()
		}
		body, err := render(r.commentBody, data)
		if err != nil {
			s.Err = err.Error()
		} else if strings.TrimSpace(body) == "" {
			s.Summary += ": the body renders blank, so nothing would be posted"
		}
		s.Detail = body
		steps = append(steps, s)
	}
	if l := c.Labels; l != nil {
		s := PlannedStep{Step: LedgerLabels, Summary: fmt.Sprintf("labels on %s#%d: add %v, remove %v", in.Repository, in.IssueNumber, l.Add, l.Remove)}
		if _, _, _, err := r.target(in, "labels"); err != nil {
			s.Err = err.Error()
		}
		steps = append(steps, s)
	}
	return steps
}

func permString(p map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, k+"="+p[k])
	}
	return strings.Join(parts, ", ")
}

// shellQuote prints an argv readably (for descriptions only; argv is never given to a shell).
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
