package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cel.dev/cel-go/cel"
)

func TestParse(t *testing.T) {
	t.Parallel()
	t.Run("full format", func(t *testing.T) {
		t.Parallel()
		cfg, err := Parse([]byte(`
nats: {url: nats://x}   # other sections are ignored
rules:
  - name: autosolve
    on: [issues.opened, issues.labeled]
    if: 'payload.issue.labels.exists(l, l.name == "autosolve")'
    reconcile: true
    concurrency: 2
    dry_run: false
    allow_bots: false
    run:
      command: ["examples/agents/triage.sh", "--model", "qwen2.5-coder:7b"]
      timeout: 10m
      token: true
    http:
      method: POST
      url: http://127.0.0.1:11434/api/generate
      headers: {Content-Type: application/json}
      body: '{"model":"qwen2.5-coder:7b","prompt":{{ json .Payload.issue.body }},"stream":false}'
      timeout: 5m
    comment:
      body: "{{ .Run.Stdout }}"
      mode: upsert
    labels:
      add: [triaged]
      remove: [needs-triage]
  - name: single
    on: issues
    labels: {add: [x]}
`))
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg) != 2 {
			t.Fatalf("got %d rules", len(cfg))
		}
		c := cfg[0]
		if c.Name != "autosolve" || !slices.Equal(c.On, []string{"issues.opened", "issues.labeled"}) || !c.Reconcile ||
			c.Concurrency != 2 || c.Run.Timeout.Minutes() != 10 || !c.Run.Token || c.HTTP.Timeout.Minutes() != 5 ||
			c.HTTP.Headers["Content-Type"] != "application/json" || c.Comment.Mode != "upsert" || c.Labels.Remove[0] != "needs-triage" {
			t.Fatalf("decoded %+v", c)
		}
		if !slices.Equal(cfg[1].On, []string{"issues"}) {
			t.Fatalf("single on: %v", cfg[1].On)
		}
		if _, err := Load(cfg, Options{}); err != nil {
			t.Fatal(err)
		}
	})
	for name, tc := range map[string]struct{ yml, want string }{
		"unknown step field": {"rules:\n- name: a\n  on: [issues]\n  run:\n    comand: [x]\n", "field comand not found"},
		"unknown rule field": {"rules:\n- name: a\n  on: [issues]\n  iff: 'true'\n", "field iff not found"},
		"integer duration":   {"rules:\n- name: a\n  on: [issues]\n  run: {command: [x], timeout: 600}\n", "cannot unmarshal"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.yml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		yml  string
		want []string // substrings of the error
	}{
		"CEL syntax error names rule and position": {
			"rules:\n- name: broken\n  on: [issues]\n  if: 'event == \"issues\" &&'\n  labels: {add: [x]}\n",
			[]string{"rules[broken].if: 1:", "Syntax error"},
		},
		"CEL undeclared reference on line 2": {
			"rules:\n- name: typo\n  on: [issues]\n  if: |\n    event == \"issues\" &&\n      paylod.issue.number == 1\n  labels: {add: [x]}\n",
			[]string{"rules[typo].if: 2:3: undeclared reference to 'paylod'"},
		},
		"non-bool condition": {
			"rules:\n- name: str\n  on: [issues]\n  if: 'event + \"x\"'\n  labels: {add: [x]}\n",
			[]string{"rules[str].if: 1:1", "type string, want bool"},
		},
		"invalid regexp literal": {
			"rules:\n- name: re\n  on: [pull_request]\n  if: 'title_matches(\"(\")'\n  labels: {add: [x]}\n",
			[]string{"rules[re].if: 1:15", "invalid regular expression"},
		},
		"template parse error names rule and field": {
			"rules:\n- name: tpl\n  on: [issues]\n  comment: {body: '{{ .Run.Stdout '}\n",
			[]string{"rules[tpl].comment.body: invalid template"},
		},
		"unknown template function": {
			"rules:\n- name: tplf\n  on: [issues]\n  http: {url: 'http://x/{{ exec \"ls\" }}'}\n",
			[]string{"rules[tplf].http.url: invalid template", `function "exec" not defined`},
		},
		"no steps": {
			"rules:\n- name: idle\n  on: [issues]\n",
			[]string{"rules[idle].run: the rule does nothing"},
		},
		"bad values": {
			"rules:\n- name: 'bad name'\n  on: ['Issues.Opened']\n  concurrency: -1\n  comment: {body: x, mode: replace}\n",
			[]string{`rules[bad name].name`, `rules[bad name].on`, "rules[bad name].concurrency", "rules[bad name].comment.mode"},
		},
		"duplicate names and all errors at once": {
			"rules:\n- name: a\n  on: [issues]\n  labels: {add: [x]}\n- name: a\n  on: [issues]\n  if: 'nope'\n  labels: {add: [x]}\n- name: b\n  on: [issues]\n",
			[]string{"rules[a].name: duplicate", "rules[a].if: 1:1: undeclared reference to 'nope'", "rules[b].run: the rule does nothing"},
		},
		"header name that is not a token": {
			"rules:\n- name: hn\n  on: [issues]\n  http: {url: 'http://x', headers: {'X Model': m}}\n",
			[]string{`rules[hn].http.headers: "X Model" is not a header name`},
		},
		"run without command, permissions without token": {
			"rules:\n- name: r\n  on: [issues]\n  run: {command: [], permissions: {issues: write}}\n",
			[]string{"rules[r].run.command", "rules[r].run.permissions"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse([]byte(tc.yml))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			_, err = Load(cfg, Options{})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	e := load(t, `
rules:
  - name: any-issue
    on: [issues]
    labels: {add: [a]}
  - name: opened
    on: [issues.opened]
    labels: {add: [a]}
  - name: both-forms
    on: [issues, issues.opened]
    labels: {add: [a]}
  - name: bug-label
    on: [issues, pull_request]
    if: 'has_label("BUG")'
    labels: {add: [a]}
  - name: explain
    on: [issue_comment.created]
    if: 'command("explain")'
    labels: {add: [a]}
  - name: pr
    on: [pull_request, issue_comment]
    if: 'is_pull_request()'
    labels: {add: [a]}
  - name: docs
    on: [pull_request.opened]
    if: 'title_matches("^(?i)docs")'
    labels: {add: [docs]}
  - name: sweep
    on: [issues]
    reconcile: true
    labels: {add: [a]}
  - name: sweep-labeled
    on: [issues.labeled]
    reconcile: true
    if: 'has_label("bug")'
    labels: {add: [a]}
  - name: bots-too
    on: [issues.opened]
    allow_bots: true
    labels: {add: [a]}
  - name: vars
    on: [issues.opened]
    if: 'event == "issues" && action == "opened" && repository == "Codertocat/Hello-World" && sender == "Codertocat" && sender_type == "User" && !reconcile'
    labels: {add: [a]}
  - name: erroring
    on: [push]
    if: 'payload.issue.number == 1'
    labels: {add: [a]}
`, Options{BotLogin: "hookd[bot]"})

	for name, tc := range map[string]struct {
		in   Input
		want []string
	}{
		"issues.opened": {input(t, "issues.opened", nil),
			[]string{"any-issue", "opened", "both-forms", "bug-label", "sweep", "bots-too", "vars"}},
		"issues.labeled (event-only rules)": {input(t, "issues.labeled", nil),
			[]string{"any-issue", "both-forms", "bug-label", "sweep", "sweep-labeled"}},
		"label removed": {input(t, "issues.opened", func(p map[string]any) { setPath(p, "issue.labels", []any{}) }),
			[]string{"any-issue", "opened", "both-forms", "sweep", "bots-too", "vars"}},
		"command in comment": {input(t, "issue_comment.created", func(p map[string]any) {
			setPath(p, "comment.body", "  /explain please")
		}), []string{"explain"}},
		"command prefix of a longer word": {input(t, "issue_comment.created", func(p map[string]any) {
			setPath(p, "comment.body", "/explainer")
		}), []string{}},
		"no command": {input(t, "issue_comment.created", nil), []string{}},
		"comment on a pull request": {input(t, "issue_comment.created", func(p map[string]any) {
			setPath(p, "issue.pull_request", map[string]any{"url": "x"})
		}), []string{"pr"}},
		"pull request titled docs": {input(t, "pull_request.opened", func(p map[string]any) {
			setPath(p, "pull_request.title", "Docs: fix typo")
		}), []string{"bug-label", "pr", "docs"}},
		"pull request": {input(t, "pull_request.opened", nil), []string{"bug-label", "pr"}},
		"bot sender": {input(t, "issues.opened", func(p map[string]any) {
			setPath(p, "sender.login", "hookd[bot]")
			setPath(p, "sender.type", "Bot")
		}), []string{"bots-too"}},
		"reconcile": {func() Input { in := input(t, "issues.opened", nil); in.Reconcile = true; return in }(),
			[]string{"sweep", "sweep-labeled"}},
		"reconcile reaches rules of any action of its event": {func() Input {
			in := input(t, "issues.opened", func(p map[string]any) {
				setPath(p, "action", "reconcile")
				setPath(p, "issue.labels", []any{map[string]any{"name": "bug"}})
			})
			in.Action, in.Reconcile = "reconcile", true
			return in
		}(), []string{"sweep", "sweep-labeled"}},
		"condition error counts as false": {input(t, "push", nil), []string{}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := names(e.Match(tc.in))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestConditionCost: a condition that would run for long (nested comprehensions) stops at the
// cost limit and counts as false; Plan says why.
func TestConditionCost(t *testing.T) {
	t.Parallel()
	list := "[" + strings.Repeat("1, ", 99) + "1]"
	e := load(t, `
rules:
  - name: cubic
    on: [issues]
    if: '`+list+`.all(a, `+list+`.all(b, `+list+`.all(c, a == b)))'
    labels: {add: [x]}
  - name: cheap
    on: [issues]
    if: 'payload.issue.body.matches("README") && has_label("bug")'
    labels: {add: [x]}
`, Options{})
	in := input(t, "issues.opened", func(p map[string]any) { setPath(p, "issue.body", strings.Repeat("a", 65536)+" README") })
	if got := names(e.Match(in)); !slices.Equal(got, []string{"cheap"}) {
		t.Fatalf("matched %v, want only cheap: the cubic condition must stop at the cost limit", got)
	}
	plan, err := e.Plan(in)
	if err != nil {
		t.Fatal(err)
	}
	if plan[0].Matched || !strings.Contains(plan[0].Reason, "cost limit exceeded") {
		t.Fatalf("cubic: matched %v, reason %q", plan[0].Matched, plan[0].Reason)
	}
	if !plan[1].Matched {
		t.Fatalf("cheap condition over a 64 KiB body: %q", plan[1].Reason)
	}
}

// TestRegexCache: title_matches keeps the patterns written in conditions, not the ones taken
// from events (which would grow the cache with every event).
func TestRegexCache(t *testing.T) {
	t.Parallel()
	rc := &regexCache{}
	env, err := newCELEnv(rc)
	if err != nil {
		t.Fatal(err)
	}
	literal, errs := compileCondition(env, "lit", `title_matches("^Spelling")`)
	dynamic, errs2 := compileCondition(env, "dyn", `title_matches(payload.issue.body)`)
	if len(errs)+len(errs2) != 0 {
		t.Fatal(errs, errs2)
	}
	for i := range 50 {
		in := input(t, "issues.opened", func(p map[string]any) { setPath(p, "issue.body", fmt.Sprintf("^Spelling %d", i)) })
		for _, prg := range []cel.Program{literal, dynamic} {
			if _, _, err := prg.Eval(&activation{in: &in}); err != nil {
				t.Fatal(err)
			}
		}
	}
	n := 0
	rc.m.Range(func(k, _ any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("%d patterns cached after 50 events with their own pattern, want only the literal one", n)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	e := load(t, `
rules:
  - name: triage
    on: [issues.opened]
    run: {command: [agents/triage.sh, --model, "m 1"], token: true}
    http:
      url: 'http://127.0.0.1:1/api?q={{ .Payload.issue.number }}'
      body: '{"prompt":{{ json .Payload.issue.title }},"prev":{{ json .Run.Stdout }}}'
    comment: {body: "Result: {{ .HTTP.Status }} {{ .Run.Stdout }}"}
    labels: {add: [triaged]}
  - name: other
    on: [pull_request]
    labels: {add: [x]}
  - name: falsy
    on: [issues]
    if: 'has_label("nope")'
    labels: {add: [x]}
`, Options{BaseDir: "/srv/hookd"})
	plan, err := e.Plan(input(t, "issues.opened", nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 3 || !plan[0].Matched || plan[1].Listens || plan[2].Matched || plan[2].Reason != "condition is false" {
		t.Fatalf("plan %+v", plan)
	}
	steps := plan[0].Steps
	if len(steps) != 4 {
		t.Fatalf("steps %+v", steps)
	}
	for _, want := range []string{"run agents/triage.sh --model 'm 1'", "with a token for Codertocat/Hello-World"} {
		if !strings.Contains(steps[0].Summary, want) {
			t.Errorf("run summary %q lacks %q", steps[0].Summary, want)
		}
	}
	if steps[1].Summary != "POST http://127.0.0.1:1/api (timeout 30s)" ||
		steps[1].Detail != `{"prompt":"Spelling error in the README file","prev":"(output of agents/triage.sh --model 'm 1')"}` {
		t.Errorf("http step %+v", steps[1])
	}
	if !strings.HasPrefix(steps[2].Detail, "Result: 200 (output of") || steps[2].Summary != "comment (upsert) on Codertocat/Hello-World#1" {
		t.Errorf("comment step %+v", steps[2])
	}
	if !strings.Contains(plan[1].Reason, "listens to pull_request, not issues.opened") {
		t.Errorf("reason %q", plan[1].Reason)
	}
	if got := e.Rule("triage").argv[0]; got != "/srv/hookd/agents/triage.sh" {
		t.Errorf("relative command resolved to %q", got)
	}
}

// TestExamples loads examples/rules.yaml and checks each rule against real payloads.
func TestExamples(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Load(cfg, Options{BaseDir: filepath.Join("..", ".."), BotLogin: "hookd[bot]"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range e.Rules() {
		if r.cfg.Run != nil {
			if _, err := os.Stat(r.argv[0]); err != nil {
				t.Errorf("rule %s: %v", r.Name(), err)
			}
		}
	}
	label := func(names ...string) func(map[string]any) {
		return func(p map[string]any) {
			var ls []any
			for _, n := range names {
				ls = append(ls, map[string]any{"name": n})
			}
			setPath(p, "issue.labels", ls)
		}
	}
	// added sets the label an issues.labeled delivery is about, after labels.
	added := func(name string, labels func(map[string]any)) func(map[string]any) {
		return func(p map[string]any) {
			labels(p)
			setPath(p, "label", map[string]any{"name": name})
		}
	}
	for name, tc := range map[string]struct {
		in   Input
		want []string
	}{
		"first-timer": {input(t, "issues.opened", func(p map[string]any) { setPath(p, "issue.author_association", "NONE") }),
			[]string{"greet-first-timers"}},
		"owner opens an issue": {input(t, "issues.opened", nil), []string{}},
		"needs-triage label":   {input(t, "issues.labeled", added("needs-triage", label("needs-triage"))), []string{"triage"}},
		"already triaged":      {input(t, "issues.labeled", added("needs-triage", label("needs-triage", "triaged"))), []string{}},
		"opened needs-triage":  {input(t, "issues.opened", label("needs-triage")), []string{"triage"}},
		// GitHub sends a delivery per label added: bug's, on an issue labelled needs-triage and
		// bug at once, must not run the triage a second time.
		"bug with needs-triage": {input(t, "issues.labeled", added("bug", label("needs-triage", "bug"))), []string{}},
		"demo label":            {input(t, "issues.labeled", label("hookd-demo")), []string{"echo-demo"}},
		"/explain":              {input(t, "issue_comment.created", func(p map[string]any) { setPath(p, "comment.body", "/explain") }), []string{"explain"}},
		"docs pull request":     {input(t, "pull_request.opened", func(p map[string]any) { setPath(p, "pull_request.title", "docs: typo") }), []string{"label-docs-prs"}},
		"doc(scope) title":      {input(t, "pull_request.opened-2", func(p map[string]any) { setPath(p, "pull_request.title", "Doc(readme) typo") }), []string{"label-docs-prs"}},
		"other pull request":    {input(t, "pull_request.opened", nil), []string{}},
		"documentary is no doc": {input(t, "pull_request.opened", func(p map[string]any) { setPath(p, "pull_request.title", "documentary") }), []string{}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := names(e.Match(tc.in)); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			plan, err := e.Plan(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range plan {
				for _, s := range p.Steps {
					if s.Err != "" {
						t.Errorf("rule %s step %s: %s", p.Rule, s.Step, s.Err)
					}
				}
			}
		})
	}
}
