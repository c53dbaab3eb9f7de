package procstat

import (
	"encoding/json"
	"testing"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/payloads"
)

func TestSelf(t *testing.T) {
	t.Parallel()
	m, err := ReadMemory(0)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Peak < m.RSS {
		t.Fatalf("memory %+v: want 0 < RSS <= peak", m)
	}
	if _, err := CPUSeconds(0); err != nil {
		t.Fatal(err)
	}
}

func TestPayloadBelongsToTheRepository(t *testing.T) {
	t.Parallel()
	b, err := Payload(payloads.Get("issue_comment.created"), 7, 42, "acme/widgets")
	if err != nil {
		t.Fatal(err)
	}
	m := event.Meta{Event: "issue_comment"}
	if err := event.ParsePayload(&m, b); err != nil {
		t.Fatal(err)
	}
	if m.InstallationID != 7 || m.RepositoryID != 42 || m.Repository != "acme/widgets" || m.Owner != "acme" {
		t.Fatalf("meta %+v", m)
	}
	if !json.Valid(b) {
		t.Fatal("invalid JSON")
	}
}
