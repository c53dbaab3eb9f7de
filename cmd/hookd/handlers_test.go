package main

import (
	"slices"
	"testing"

	"github.com/hookd/hookd/internal/config"
	"github.com/hookd/hookd/processor/rules"
)

// TestNeedsOf: what preflight:app requires follows from the rules as configured, whether or not
// rules.Load has filled in their defaults yet.
func TestNeedsOf(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Rules: []rules.RuleConfig{
		{Name: "greet", On: []string{"issues.opened"}, Comment: &rules.CommentConfig{Body: "hi"}},
		{Name: "label-prs", On: []string{"pull_request.opened"}, Labels: &rules.LabelsConfig{Add: []string{"x"}}},
		{Name: "agent", On: []string{"issue_comment.created"}, Run: &rules.RunConfig{Command: []string{"agent"}, Token: true}},
	}}
	n := needsOf(cfg)
	if want := []string{"issue_comment", "issues", "pull_request"}; !slices.Equal(n.Events, want) {
		t.Errorf("events %v, want %v", n.Events, want)
	}
	if n.Permissions["issues"] != "write" || n.Permissions["pull_requests"] != "write" || n.Permissions["metadata"] != "read" {
		t.Errorf("permissions %v", n.Permissions)
	}
	for perm := range rules.DefaultPermissions() {
		if n.Permissions[perm] == "" {
			t.Errorf("permissions %v lack %s, which the token: true rule's default token has", n.Permissions, perm)
		}
	}
}
