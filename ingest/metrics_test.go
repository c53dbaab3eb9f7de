package ingest

import "testing"

// TestEventLabel: the event label takes GitHub's event names and nothing else, so that a sender
// cannot create label values without bound (any valid X-GitHub-Event is stored).
func TestEventLabel(t *testing.T) {
	for name, want := range map[string]string{
		"issues":              "issues",
		"ping":                "ping",
		"workflow_run":        "workflow_run",
		"hookd_unknown_event": "other",
		"issues2":             "other",
		"":                    "other",
	} {
		if got := eventLabel(name); got != want {
			t.Errorf("eventLabel(%q) = %q, want %q", name, got, want)
		}
	}
}
