package rules_test

import (
	"fmt"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/payloads"
	"github.com/hookd/hookd/processor/rules"
)

// Rules are configuration: parse the `rules:` section, Load it once (every condition and
// template is compiled here), then Match each event and Execute the matching rules with the
// outside world in Deps. Plan shows what would happen, without effects (`hookd rules test`).
func Example() {
	cfg, err := rules.Parse([]byte(`
rules:
  - name: docs-label
    on: [pull_request.opened]
    if: 'title_matches("^Update")'
    labels: {add: [docs]}
  - name: greet
    on: [issues.opened]
    comment: {body: "Thanks @{{ .Sender }}!"}
`))
	if err != nil {
		panic(err)
	}
	engine, err := rules.Load(cfg, rules.Options{BotLogin: "hookd[bot]"})
	if err != nil {
		panic(err)
	}

	body := payloads.Get("pull_request.opened")
	meta := event.Meta{Event: "pull_request", Delivery: "72d3162e"}
	if err := event.ParsePayload(&meta, body); err != nil {
		panic(err)
	}
	in, err := rules.NewInput(meta, body) // decodes the payload once for Match, Plan and Execute
	if err != nil {
		panic(err)
	}
	for _, r := range engine.Match(in) {
		fmt.Println("matched:", r.Name())
		// In hookd the processor now calls r.Execute(ctx, in, rules.Deps{GitHub: ..., Ledger: ...}).
	}
	plan, _ := engine.Plan(in)
	for _, p := range plan {
		if p.Matched {
			for _, s := range p.Steps {
				fmt.Printf("%s would: %s\n", p.Rule, s.Summary)
			}
		} else {
			fmt.Printf("%s skipped: %s\n", p.Rule, p.Reason)
		}
	}
	// Output:
	// matched: docs-label
	// docs-label would: labels on Codertocat/Hello-World#2: add [docs], remove []
	// greet skipped: listens to issues.opened, not pull_request.opened
}
