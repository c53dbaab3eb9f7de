package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/examples"
	"github.com/hookd/hookd/processor/rules"
	"github.com/hookd/hookd/sweep"
)

// TestWebhookOutage: GitHub's deliveries fail while an issue is opened, labelled and commented.
// Afterwards hookd still acts on every change, once: through redelivery of the failed
// deliveries, through the drift sweep alone (the labelled issue's rule, which opts in with
// reconcile: true), or both.
func TestWebhookOutage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		redeliver bool
		sweep     bool
	}{
		{"redelivery only", true, false},
		{"drift sweep only", false, true},
		{"redelivery and drift sweep", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake, _ := newFake(t)
			cfg := testConfig(t, t.TempDir(), fake)
			var err error
			if cfg.RulesDir, err = examples.WriteAgents(t.TempDir()); err != nil {
				t.Fatal(err)
			}
			if cfg.Rules, err = rules.Parse(examples.DemoRules()); err != nil {
				t.Fatal(err)
			}
			sw := &cfg.Sweep
			sw.Redeliver = &tc.redeliver
			sw.RedeliverInterval, sw.RedeliveryMinAge, sw.RedeliverySpacing = 300*time.Millisecond, 50*time.Millisecond, 10*time.Millisecond
			sw.DriftMinAge = 50 * time.Millisecond
			if tc.sweep {
				sw.Interval, sw.MinInterval, sw.MaxInterval = time.Second, time.Second, 2*time.Second
			} else { // the first pass runs at start, before the outage; the next in an hour
				sw.Interval, sw.MinInterval, sw.MaxInterval = time.Hour, time.Hour, time.Hour
			}
			cfg.Scheduler.StartJitter = -1
			cfg.Defaults()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			ta := startTestAppWith(t, cfg, fake, nil)
			fake.SetWebhookURL(ta.url + "/webhook")
			bot := fake.App().BotLogin
			const repo = "octo-org/hello-world"

			fake.SetWebhookOutage(true)
			if _, err := fake.OpenIssue(repo, "alice", "Crash on start", "It crashes."); err != nil {
				t.Fatal(err)
			}
			if err := fake.LabelIssue(repo, 1, "alice", "bug"); err != nil {
				t.Fatal(err)
			}
			if _, err := fake.CommentIssue(repo, 1, "bob", "/explain"); err != nil {
				t.Fatal(err)
			}
			failed := 0
			for _, d := range fake.Deliveries() {
				if d.Status != "OK" {
					failed++
				}
			}
			if failed < 3 {
				t.Fatalf("the outage recorded %d failed deliveries, want 3", failed)
			}
			fake.SetWebhookOutage(false)

			count := func(marker string) int {
				cs, _ := fake.Comments(repo, 1)
				n := 0
				for _, c := range cs {
					if c.User == bot && strings.Contains(c.Body, marker) {
						n++
					}
				}
				return n
			}
			want := map[string]int{"echo agent": 1} // autosolve: reconcile: true
			if tc.redeliver {
				want["Thanks for the report"] = 1 // greet
				want["is \"Crash on start\""] = 1 // explain
			}
			deadline := time.Now().Add(60 * time.Second)
			for {
				done := true
				for m, n := range want {
					if count(m) < n {
						done = false
					}
				}
				if done {
					break
				}
				if time.Now().After(deadline) {
					cs, _ := fake.Comments(repo, 1)
					t.Fatalf("after 60s: comments %+v, want %v", cs, want)
				}
				time.Sleep(50 * time.Millisecond)
			}
			// Let more sweeps and redelivery passes run: nothing may happen twice.
			time.Sleep(3 * time.Second)
			for m, n := range want {
				if got := count(m); got != n {
					t.Errorf("comments containing %q: %d, want %d", m, got, n)
				}
			}
			if !tc.redeliver && count("Thanks for the report") != 0 {
				t.Errorf("greet ran without its webhook: it does not opt in to reconcile")
			}
			is, _ := fake.Issue(repo, 1)
			if !hasLabel(is, "triaged") {
				t.Errorf("issue labels %v, want triaged", is.Labels)
			}
			if tc.sweep { // hookd status shows the sweeps
				cfgFile := filepath.Join(t.TempDir(), "cli.yaml")
				if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("nats:\n  url: %s\n  partitions: %d\n", ta.app.nc.ConnectedUrl(), cfg.NATS.Partitions)), 0o600); err != nil {
					t.Fatal(err)
				}
				out, err := runCLI(t, "status", "--json", "--config", cfgFile)
				if err != nil {
					t.Fatalf("status: %v\n%s", err, out)
				}
				var st struct {
					Sweep sweep.StatusReport `json:"sweep"`
				}
				if err := json.Unmarshal([]byte(out), &st); err != nil {
					t.Fatalf("status --json: %v\n%s", err, out)
				}
				if k := regexp.MustCompile(`"[A-Z]\w*":`).FindString(out); k != "" {
					t.Errorf("status --json has the key %s; want snake_case keys throughout:\n%s", k, out)
				}
				found := false
				for _, in := range st.Sweep.Installations {
					for _, r := range in.Repositories {
						if r.Tenant.FullName() == repo && !r.LastSweep.IsZero() && r.LastResult != "" {
							found = true
						}
					}
				}
				if !found {
					t.Errorf("hookd status does not show the sweep of %s:\n%s", repo, out)
				}
			}
			if tc.redeliver {
				redelivered := 0
				for _, d := range fake.Deliveries() {
					if d.Redelivery && d.Status == "OK" {
						redelivered++
					}
				}
				if redelivered < 3 {
					t.Errorf("%d successful redeliveries, want at least 3", redelivered)
				}
			}
		})
	}
}
