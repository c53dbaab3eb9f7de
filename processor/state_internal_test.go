package processor

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/event"
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
