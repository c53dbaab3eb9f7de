package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/processor/rules"
)

func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Check rules, or try them on a payload without any effect",
	}
	cmd.AddCommand(&cobra.Command{
		Use:     "check",
		Short:   "Compile every rule's condition and templates; exit non-zero with every error",
		Example: "  hookd rules check --config hookd.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd) // Load compiles the rules: errors name the rule and position
			if err != nil {
				return err
			}
			e, err := rules.Load(cfg.Rules, rules.Options{BotLogin: cfg.Processor.BotLogin})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, r := range e.Rules() {
				c := r.Config()
				fmt.Fprintf(out, "ok  %-24s on %s%s\n", c.Name, strings.Join(c.On, ", "), ruleSteps(c))
			}
			fmt.Fprintf(out, "%d rule(s) ok\n", len(e.Rules()))
			return nil
		},
	})
	var eventName, action, payloadFile string
	test := &cobra.Command{
		Use:   "test --event NAME --payload FILE",
		Short: "Show which rules match a payload and what each step would do, without effects",
		Example: `  hookd rules test --config examples/rules.yaml --event issues --action labeled \
    --payload internal/payloads/octokit/issues.labeled.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name, act, ok := strings.Cut(eventName, "."); ok && event.ValidEventName(name) {
				return fmt.Errorf("--event %q: give the event name alone (--event %s); the action comes from the payload, or --action %s", eventName, name, act)
			}
			if !event.ValidEventName(eventName) {
				return fmt.Errorf("--event %q is not an event name (X-GitHub-Event), such as issues or pull_request", eventName)
			}
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			e, err := rules.Load(cfg.Rules, rules.Options{BotLogin: cfg.Processor.BotLogin})
			if err != nil {
				return err
			}
			var body []byte
			if payloadFile == "-" {
				body, err = io.ReadAll(os.Stdin)
			} else {
				body, err = os.ReadFile(payloadFile)
			}
			if err != nil {
				return fmt.Errorf("--payload: %w", err)
			}
			if action != "" {
				if body, err = patchPayload(body, action, 0); err != nil {
					return err
				}
			}
			m := event.Meta{Event: eventName, Delivery: "rules-test", Source: event.SourceWebhook}
			if err := event.ParsePayload(&m, body); err != nil {
				return fmt.Errorf("--payload %s: %w", payloadFile, err)
			}
			in, err := rules.NewInput(m, body)
			if err != nil {
				return err
			}
			plan, err := e.Plan(in)
			if err != nil {
				return err
			}
			printPlan(cmd.OutOrStdout(), m, plan)
			return nil
		},
	}
	test.Flags().StringVar(&eventName, "event", "", "webhook event name (X-GitHub-Event), e.g. issues")
	test.Flags().StringVar(&action, "action", "", "override the payload's action")
	test.Flags().StringVar(&payloadFile, "payload", "", "payload file (JSON); - for standard input")
	_ = test.MarkFlagRequired("event")
	_ = test.MarkFlagRequired("payload")
	cmd.AddCommand(test)
	return cmd
}

func ruleSteps(c rules.RuleConfig) string {
	var s []string
	if c.Run != nil {
		s = append(s, "run")
	}
	if c.HTTP != nil {
		s = append(s, "http")
	}
	if c.Comment != nil {
		s = append(s, "comment")
	}
	if c.Labels != nil {
		s = append(s, "labels")
	}
	return " → " + strings.Join(s, ", ")
}

func printPlan(w io.Writer, m event.Meta, plan []rules.PlannedRule) {
	name := m.Event
	if m.Action != "" {
		name += "." + m.Action
	}
	fmt.Fprintf(w, "event %s in %s from %s\n", name, orDash(m.Repository), orDash(m.Sender))
	matched := 0
	for _, p := range plan {
		if !p.Matched {
			fmt.Fprintf(w, "  -  %s: %s\n", p.Rule, p.Reason)
			continue
		}
		matched++
		dry := ""
		if p.DryRun {
			dry = " (dry_run: would only log)"
		}
		fmt.Fprintf(w, "  ✓  %s matches%s\n", p.Rule, dry)
		for _, st := range p.Steps {
			fmt.Fprintf(w, "       %s: %s\n", st.Step, st.Summary)
			if st.Err != "" {
				fmt.Fprintf(w, "         error: %s\n", st.Err)
			}
			if st.Detail != "" {
				for _, l := range strings.Split(strings.TrimRight(st.Detail, "\n"), "\n") {
					fmt.Fprintf(w, "         | %s\n", l)
				}
			}
		}
	}
	fmt.Fprintf(w, "%d of %d rule(s) match; nothing was done\n", matched, len(plan))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
