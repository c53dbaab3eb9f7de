package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hookd/hookd/internal/payloads"
)

// benchEngine builds 100 rules over a realistic mix of events and conditions; 40 of them listen
// to issues.opened.
func benchEngine(b *testing.B) *Engine {
	var sb strings.Builder
	sb.WriteString("rules:\n")
	conds := []string{
		`has_label("bug") && !has_label("triaged")`,
		`payload.issue.labels.exists(l, l.name == "autosolve")`,
		`payload.issue.author_association in ["FIRST_TIME_CONTRIBUTOR", "NONE"]`,
		`title_matches("(?i)^(docs|fix)")`,
		`sender_type != "Bot" && repository.startsWith("Codertocat/")`,
		`command("explain")`,
		`is_pull_request() && has_label("ready")`,
		`size(payload.issue.body) > 10 && payload.issue.state == "open"`,
	}
	events := []string{"issues.opened", "issues", "issue_comment.created", "pull_request.opened", "push"}
	for i := range 100 {
		fmt.Fprintf(&sb, "- name: r%d\n  on: [%s]\n  if: '%s'\n  labels: {add: [l%d]}\n",
			i, events[i%len(events)], conds[i%len(conds)], i)
	}
	cfg, err := Parse([]byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	e, err := Load(cfg, Options{BotLogin: "hookd[bot]"})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkMatch100Rules matches one real issues.opened event against 100 compiled rules.
// "decoded": the processor decoded the payload once (Input.Decode) and shares it; "raw": Match
// decodes the 12 KB payload itself.
func BenchmarkMatch100Rules(b *testing.B) {
	e := benchEngine(b)
	body := payloads.Get("issues.opened")
	base := Input{Event: "issues", Action: "opened", Delivery: "d", Payload: body,
		Repository: "Codertocat/Hello-World", Sender: "Codertocat", SenderType: "User"}
	b.Run("decoded", func(b *testing.B) {
		in := base
		if err := in.Decode(); err != nil {
			b.Fatal(err)
		}
		if n := len(e.Match(in)); n == 0 {
			b.Fatal("nothing matched")
		}
		b.ReportAllocs()
		for b.Loop() {
			e.Match(in)
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.Match(base)
		}
	})
}
