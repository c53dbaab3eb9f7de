package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/payloads"
)

// TestStateAdvance: updated_at never moves backwards, whether this replica or another writer
// (a second stateStore on the same bucket: the replica that held the partition before) wrote
// last, and the remembered revision of an item someone else advanced does not lose their write.
func TestStateAdvance(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	ctx := context.Background()
	kv, err := env.JS.KeyValue(ctx, broker.BucketState)
	if err != nil {
		t.Fatal(err)
	}
	mine, other := &stateStore{kv: kv}, &stateStore{kv: kv}
	tenant := event.Tenant{InstallationID: 1, RepositoryID: 2, Owner: "acme", Name: "api"}
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	at := func(min int) itemRef { return itemRef{Number: 7, UpdatedAt: t0.Add(time.Duration(min) * time.Minute)} }
	read := func() ItemState {
		t.Helper()
		e, err := kv.Get(ctx, StateKey(tenant, 7))
		if err != nil {
			t.Fatal(err)
		}
		var st ItemState
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	steps := []struct {
		s     *stateStore
		ref   itemRef
		d     string
		want  string // delivery recorded afterwards
		wantT int
	}{
		{mine, at(1), "d1", "d1", 1},     // created
		{mine, at(2), "d2", "d2", 2},     // advanced with the remembered revision
		{mine, at(1), "d1b", "d2", 2},    // older: skipped
		{other, at(5), "o5", "o5", 5},    // another writer advances it
		{mine, at(3), "d3", "o5", 5},     // remembered revision is stale; the read shows newer: skipped
		{mine, at(6), "d6", "d6", 6},     // newer than the other's: written
		{other, at(4), "o4", "d6", 6},    // the other's remembered state is stale and older: skipped
		{other, at(9), "o9", "o9", 9},    // the other's remembered revision is stale: re-read, written
		{mine, at(10), "d10", "d10", 10}, // and mine again
	}
	for i, st := range steps {
		if err := st.s.advance(ctx, tenant, st.ref, event.Meta{Delivery: st.d, Event: "issues"}); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got := read()
		if got.Delivery != st.want || !got.UpdatedAt.Equal(at(st.wantT).UpdatedAt) {
			t.Fatalf("step %d (%s): recorded %s at %s, want %s at +%dm", i, st.d, got.Delivery, got.UpdatedAt, st.want, st.wantT)
		}
	}
}

// itemOfJSON is itemOf as it was, with encoding/json: the oracle for FuzzItemOf.
func itemOfJSON(payload []byte) (itemRef, error) {
	var p struct {
		Issue *struct {
			Number    int       `json:"number"`
			UpdatedAt time.Time `json:"updated_at"`
		} `json:"issue"`
		PullRequest *struct {
			Number    int       `json:"number"`
			UpdatedAt time.Time `json:"updated_at"`
			Head      *struct {
				SHA string `json:"sha"`
			} `json:"head"`
		} `json:"pull_request"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return itemRef{}, err
	}
	switch {
	case p.PullRequest != nil && p.PullRequest.Number != 0:
		r := itemRef{Number: p.PullRequest.Number, UpdatedAt: p.PullRequest.UpdatedAt}
		if p.PullRequest.Head != nil {
			r.HeadSHA = p.PullRequest.Head.SHA
		}
		return r, nil
	case p.Issue != nil && p.Issue.Number != 0:
		return itemRef{Number: p.Issue.Number, UpdatedAt: p.Issue.UpdatedAt}, nil
	}
	return itemRef{}, nil
}

// ambiguous reports inputs where encoding/json and the skim legitimately differ: escapes (keys are
// compared raw), keys that match a field only case-insensitively (encoding/json accepts those),
// and a field key repeated within one object (encoding/json merges, the skim keeps the last).
func ambiguous(b []byte) bool {
	if bytes.IndexByte(b, '\\') >= 0 {
		return true
	}
	fields := []string{"issue", "pull_request", "number", "updated_at", "head", "sha"}
	lower := bytes.ToLower(b)
	for _, f := range fields {
		if bytes.Count(lower, []byte(`"`+f+`"`)) != bytes.Count(b, []byte(`"`+f+`"`)) {
			return true
		}
	}
	var dup func(v []byte, depth int) bool
	dup = func(v []byte, depth int) bool {
		seen := map[string]bool{}
		found := false
		_ = event.Members(v, func(k, val []byte) error {
			if seen[string(k)] {
				found = true
			}
			seen[string(k)] = true
			if depth < 3 && dup(val, depth+1) {
				found = true
			}
			return nil
		})
		return found
	}
	return dup(b, 0)
}

// FuzzItemOf: on valid JSON, the skim finds the same issue or pull request as encoding/json did.
func FuzzItemOf(f *testing.F) {
	for _, name := range []string{"issues.opened", "issue_comment.created", "pull_request.opened", "pull_request.opened-2", "push"} {
		f.Add(payloads.Get(name))
	}
	f.Add([]byte(`{"issue":{"number":3,"updated_at":null},"pull_request":null}`))
	f.Add([]byte(`{"pull_request":{"number":0,"head":{"sha":"x"}},"issue":{"number":4,"updated_at":"2026-01-02T03:04:05.5+02:00"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := itemOf(b) // never panics, valid or not
		if !json.Valid(b) || ambiguous(b) {
			return
		}
		want, err := itemOfJSON(b)
		if err != nil {
			return // a field of the wrong type: encoding/json gives up on the whole payload
		}
		if got.Number != want.Number || !got.UpdatedAt.Equal(want.UpdatedAt) || got.HeadSHA != want.HeadSHA {
			t.Fatalf("itemOf(%q) = %+v, encoding/json %+v", b, got, want)
		}
	})
}

func TestItemOfRealPayloads(t *testing.T) {
	for _, name := range payloads.Names() {
		b := payloads.Get(name)
		want, err := itemOfJSON(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := itemOf(b); got.Number != want.Number || !got.UpdatedAt.Equal(want.UpdatedAt) || got.HeadSHA != want.HeadSHA {
			t.Fatalf("%s: itemOf %+v, encoding/json %+v", name, got, want)
		}
	}
}
