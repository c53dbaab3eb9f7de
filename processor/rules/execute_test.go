package rules

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestExecute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// counting agent: appends a line to $COUNT per run and prints the run number.
	agent := func(t *testing.T) (path, countFile string) {
		countFile = filepath.Join(t.TempDir(), "count")
		return script(t, `echo run >> "$COUNT"; printf 'analysis #%s of %s' "$(wc -l < "$COUNT" | tr -d ' ')" "$HOOKD_ISSUE_NUMBER"`), countFile
	}
	runs := func(t *testing.T, countFile string) int {
		b, _ := os.ReadFile(countFile)
		return strings.Count(string(b), "run")
	}
	rule := func(t *testing.T, agentPath, countFile, mode, extra string) *Rule {
		return load(t, fmt.Sprintf(`
rules:
  - name: triage
    on: [issues.opened]
    run:
      command: [%q]
      env: {COUNT: %q}
    comment:
      body: "Agent says: {{ .Run.Stdout }} (exit {{ .Run.ExitCode }})"
      mode: %s
    labels: {add: [triaged], remove: [needs-triage]}
%s`, agentPath, countFile, mode, extra), Options{BotLogin: "hookd[bot]"}).Rule("triage")
	}

	t.Run("upsert edits its comment instead of posting twice", func(t *testing.T) {
		t.Parallel()
		p, cf := agent(t)
		r := rule(t, p, cf, "upsert", "")
		gh := newFakeGitHub()
		gh.comments = []Comment{
			{ID: 1, Body: "unrelated", User: "someone"},
			{ID: 2, Body: "forged <!-- hookd:rule=triage -->", User: "someone"}, // not by the bot: ignored
		}
		in := input(t, "issues.opened", nil)
		// Two deliveries (separate ledgers): one comment, edited by the second.
		for i := 1; i <= 2; i++ {
			in.Delivery = fmt.Sprintf("delivery-%d", i)
			res, err := r.Execute(ctx, in, Deps{GitHub: gh, Ledger: newLedger()})
			if err != nil {
				t.Fatal(err)
			}
			if res.CommentID != 101 {
				t.Fatalf("comment id %d", res.CommentID)
			}
		}
		comments, creates, edits := gh.snapshot()
		if creates != 1 || edits != 1 || len(comments) != 3 {
			t.Fatalf("creates %d edits %d comments %+v", creates, edits, comments)
		}
		want := "Agent says: analysis #2 of 1 (exit 0)\n\n<!-- hookd:rule=triage -->"
		if comments[2].Body != want {
			t.Errorf("body %q, want %q", comments[2].Body, want)
		}
		if !gh.labels["triaged"] || gh.labels["needs-triage"] {
			t.Errorf("labels %v", gh.labels)
		}
	})

	t.Run("a step recorded without its result is not done again", func(t *testing.T) {
		t.Parallel()
		p, cf := agent(t)
		r := rule(t, p, cf, "append", "")
		gh := newFakeGitHub()
		ledger := newLedger()
		ledger.m[LedgerRun] = nil // what the processor's ledger keeps for a result over max_payload
		res, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{GitHub: gh, Ledger: ledger})
		if err != nil || runs(t, cf) != 0 || !slices.Contains(res.Reused, LedgerRun) {
			t.Fatalf("err %v, agent ran %d times, reused %v: want the run step reused", err, runs(t, cf), res.Reused)
		}
	})

	t.Run("append after a crash between posting and recording posts once", func(t *testing.T) {
		t.Parallel()
		p, cf := agent(t)
		r := rule(t, p, cf, "append", "")
		gh := newFakeGitHub()
		gh.failAfterCreate = true
		ledger := newLedger()
		in := input(t, "issues.opened", nil)
		if _, err := r.Execute(ctx, in, Deps{GitHub: gh, Ledger: ledger}); err == nil {
			t.Fatal("first attempt succeeded")
		}
		// The retry of the same delivery finds its comment by the delivery marker.
		res, err := r.Execute(ctx, in, Deps{GitHub: gh, Ledger: ledger})
		if err != nil {
			t.Fatal(err)
		}
		comments, creates, _ := gh.snapshot()
		if creates != 1 || len(comments) != 1 || res.CommentID != comments[0].ID {
			t.Fatalf("creates %d comments %+v res %+v", creates, comments, res)
		}
		if !strings.HasSuffix(comments[0].Body, "<!-- hookd:rule=triage delivery=d-issues.opened -->") {
			t.Errorf("body %q", comments[0].Body)
		}
		if runs(t, cf) != 1 || !slices.Equal(res.Reused, []string{LedgerRun}) {
			t.Errorf("agent ran %d times; reused %v", runs(t, cf), res.Reused)
		}
		// A third attempt (e.g. a redelivery) reuses every step.
		res, err = r.Execute(ctx, in, Deps{GitHub: gh, Ledger: ledger})
		if err != nil || !slices.Equal(res.Reused, []string{LedgerRun, LedgerComment, LedgerLabels}) {
			t.Fatalf("err %v reused %v", err, res.Reused)
		}
		// A new delivery appends a new comment.
		in.Delivery = "another"
		if _, err := r.Execute(ctx, in, Deps{GitHub: gh, Ledger: newLedger()}); err != nil {
			t.Fatal(err)
		}
		if _, creates, _ := gh.snapshot(); creates != 2 {
			t.Errorf("creates %d", creates)
		}
	})

	t.Run("ledger skips a second agent run", func(t *testing.T) {
		t.Parallel()
		p, cf := agent(t)
		r := rule(t, p, cf, "upsert", "")
		gh := newFakeGitHub()
		ledger := newLedger()
		ledger.failPut = true // the agent ran, then recording failed: the retry runs it again
		in := input(t, "issues.opened", nil)
		if _, err := r.Execute(ctx, in, Deps{GitHub: gh, Ledger: ledger}); err == nil {
			t.Fatal("want the ledger error")
		}
		if _, err := r.Execute(ctx, in, Deps{GitHub: gh, Ledger: ledger}); err != nil {
			t.Fatal(err)
		}
		// Recorded now: further attempts reuse the output, and the comment shows the recorded run.
		res, err := r.Execute(ctx, in, Deps{GitHub: gh, Ledger: ledger})
		if err != nil {
			t.Fatal(err)
		}
		if runs(t, cf) != 2 || res.Run.Stdout != "analysis #2 of 1" || !slices.Contains(res.Reused, LedgerRun) {
			t.Fatalf("runs %d result %+v", runs(t, cf), res)
		}
		comments, creates, _ := gh.snapshot()
		if creates != 1 || !strings.HasPrefix(comments[0].Body, "Agent says: analysis #2 of 1") {
			t.Errorf("creates %d comments %+v", creates, comments)
		}
	})

	t.Run("a failed agent is not recorded and posts nothing", func(t *testing.T) {
		t.Parallel()
		r := load(t, "rules:\n- name: f\n  on: [issues]\n  run: {command: ["+fmt.Sprintf("%q", script(t, "exit 2"))+"]}\n  comment: {body: x}\n", Options{}).Rule("f")
		gh, ledger := newFakeGitHub(), newLedger()
		if _, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{GitHub: gh, Ledger: ledger}); err == nil {
			t.Fatal("no error")
		}
		if _, creates, _ := gh.snapshot(); creates != 0 || len(ledger.m) != 0 {
			t.Fatalf("creates %d ledger %v", creates, ledger.m)
		}
	})

	t.Run("an agent that prints nothing posts no blank comment", func(t *testing.T) {
		t.Parallel()
		// Only the hidden marker would show: an empty comment by the bot on the issue.
		r := load(t, "rules:\n- name: quiet\n  on: [issues]\n  run: {command: ["+fmt.Sprintf("%q", script(t, "echo"))+"]}\n"+
			"  comment: {body: \"{{ .Run.Stdout }}\\n\"}\n  labels: {add: [seen]}\n", Options{}).Rule("quiet")
		gh, ledger := newFakeGitHub(), newLedger()
		res, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{GitHub: gh, Ledger: ledger})
		if err != nil {
			t.Fatal(err)
		}
		if _, creates, edits := gh.snapshot(); creates != 0 || edits != 0 || res.CommentID != 0 || !gh.labels["seen"] {
			t.Fatalf("creates %d edits %d result %+v labels %v", creates, edits, res, gh.labels)
		}
		plan, err := load(t, "rules:\n- name: quiet\n  on: [issues]\n  comment: {body: '{{ .Payload.issue.nosuch | default \"\" }}'}\n", Options{}).Plan(input(t, "issues.opened", nil))
		if err != nil || !strings.Contains(plan[0].Steps[0].Summary, "nothing would be posted") {
			t.Fatalf("plan %+v %v", plan, err)
		}
	})

	t.Run("dry run has no effects", func(t *testing.T) {
		t.Parallel()
		p, cf := agent(t)
		r := rule(t, p, cf, "upsert", "    dry_run: true\n")
		gh, ledger := newFakeGitHub(), newLedger()
		res, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{GitHub: gh, Ledger: ledger})
		if err != nil {
			t.Fatal(err)
		}
		if !res.DryRun || len(res.Plan) != 3 || runs(t, cf) != 0 || len(ledger.m) != 0 || gh.lists != 0 || len(gh.labels) != 0 {
			t.Fatalf("res %+v runs %d", res, runs(t, cf))
		}
		if !strings.HasPrefix(res.Plan[1].Detail, "Agent says: (output of") {
			t.Errorf("plan %+v", res.Plan)
		}
	})

	t.Run("comment on an event without an issue is permanent", func(t *testing.T) {
		t.Parallel()
		r := load(t, "rules:\n- name: c\n  on: [push]\n  comment: {body: x}\n", Options{}).Rule("c")
		_, err := r.Execute(ctx, input(t, "push", nil), Deps{GitHub: newFakeGitHub()})
		if err == nil || !strings.Contains(err.Error(), "has no issue or pull request") {
			t.Fatalf("err %v", err)
		}
	})

	t.Run("comment cut to GitHub's limit", func(t *testing.T) {
		t.Parallel()
		r := load(t, "rules:\n- name: big\n  on: [issues]\n  comment: {body: '{{ .Payload.issue.body }}'}\n", Options{}).Rule("big")
		gh := newFakeGitHub()
		in := input(t, "issues.opened", func(p map[string]any) { setPath(p, "issue.body", strings.Repeat("😀", 40000)) })
		if _, err := r.Execute(ctx, in, Deps{GitHub: gh}); err != nil {
			t.Fatal(err)
		}
		body := gh.comments[0].Body
		if utf16Len(body) > MaxCommentLength || !utf8.ValidString(body) || !strings.HasSuffix(body, "limit)*\n\n<!-- hookd:rule=big -->") {
			t.Fatalf("len %d, tail %q", utf16Len(body), body[len(body)-120:])
		}
	})
}
