package sweep

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookd/hookd/internal/broker"
)

// StatusReport is the sweep's state for `hookd status`, read from hookd_sweep.
type StatusReport struct {
	// Installations groups the repositories' sweep states by installation, by id.
	Installations []InstallationStatus `json:"installations"`
	// Redeliver is the redelivery worker's progress (zero before its first pass), without its
	// Todo: RedeliverTodo counts it.
	Redeliver RedeliverState `json:"redeliver"`
	// RedeliverTodo is how many log entries the last redelivery pass left for the next.
	RedeliverTodo int `json:"redeliver_todo"`
	// Pending are the redeliveries requested within the redelivery window, oldest first.
	Pending []Redelivery `json:"pending"`
}

// InstallationStatus is one installation's repositories.
type InstallationStatus struct {
	InstallationID int64  `json:"installation_id"`
	Account        string `json:"account"`
	// RateRemaining and RateLimit are the budget the most recent sweep of its repositories saw.
	RateRemaining int `json:"rate_remaining"`
	RateLimit     int `json:"rate_limit"`
	// Repositories are sorted by full name: last sweep, its result, the cursor, the interval.
	Repositories []RepoState `json:"repositories"`
}

// Status reads the sweep state from the hookd_sweep bucket; it needs no running sweep.
func Status(ctx context.Context, js jetstream.JetStream) (StatusReport, error) {
	var rep StatusReport
	kv, err := js.KeyValue(ctx, broker.BucketSweep)
	if err != nil {
		return rep, fmt.Errorf("KV bucket %s: %w", broker.BucketSweep, err)
	}
	keys, err := kv.ListKeysFiltered(ctx, keyRepoPrefix+">", keyRedeliveryGUID+">", keyRedeliverCursor)
	if err != nil {
		return rep, fmt.Errorf("list %s: %w", broker.BucketSweep, err)
	}
	byInst := map[int64]*InstallationStatus{}
	latest := map[int64]RepoState{}
	for key := range keys.Keys() {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired or deleted meanwhile
		}
		if err != nil {
			return rep, fmt.Errorf("read %s: %w", key, err)
		}
		switch {
		case key == keyRedeliverCursor:
			_ = json.Unmarshal(e.Value(), &rep.Redeliver)
			rep.RedeliverTodo, rep.Redeliver.Todo = len(rep.Redeliver.Todo), nil
		case strings.HasPrefix(key, keyRedeliveryGUID):
			var r Redelivery
			if json.Unmarshal(e.Value(), &r) == nil {
				rep.Pending = append(rep.Pending, r)
			}
		case strings.HasPrefix(key, keyRepoPrefix):
			var st RepoState
			if json.Unmarshal(e.Value(), &st) != nil {
				continue
			}
			id := st.Tenant.InstallationID
			in := byInst[id]
			if in == nil {
				in = &InstallationStatus{InstallationID: id, Account: st.Tenant.Owner}
				byInst[id] = in
			}
			in.Repositories = append(in.Repositories, st)
			if st.RateLimit > 0 && st.LastSweep.After(latest[id].LastSweep) {
				latest[id] = st
				in.RateRemaining, in.RateLimit = st.RateRemaining, st.RateLimit
			}
		}
	}
	_ = keys.Stop() // the lister stops itself once it has listed every key
	for _, in := range byInst {
		slices.SortFunc(in.Repositories, func(a, b RepoState) int { return cmp.Compare(a.Tenant.FullName(), b.Tenant.FullName()) })
		rep.Installations = append(rep.Installations, *in)
	}
	slices.SortFunc(rep.Installations, func(a, b InstallationStatus) int { return cmp.Compare(a.InstallationID, b.InstallationID) })
	slices.SortFunc(rep.Pending, func(a, b Redelivery) int { return a.RequestedAt.Compare(b.RequestedAt) })
	return rep, nil
}
