package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookd/hookd/internal/broker"
)

// How the replicas share the partitions.
//
// Every replica heartbeats a key "processor.<id>" in the KV bucket hookd_members, whose entries
// expire broker.MemberTTL after their last write. Each replica lists the live members every
// balanceEvery, sorts them, and consumes partition p when it is the (p mod N)-th. Assignments
// change only when membership does:
//
//   - a replica joins: it takes its share; the replicas losing a partition stop it gracefully
//     (finish what runs, hand back what is buffered, unpin), so the newcomer is pinned at once;
//   - a replica stops: it deletes its key first, so the others take its partitions as it
//     drains and unpins them;
//   - a replica dies: its key expires after MemberTTL and its partitions' pins after PinnedTTL;
//     the survivors pull them meanwhile and are pinned as soon as the pin expires.
//
// Exclusivity never depends on the membership view: each partition's consumer is a pinned
// priority group, so however briefly two replicas disagree, only one receives a partition.
const (
	membersPrefix  = "processor."
	heartbeatEvery = 2 * time.Second
	balanceEvery   = time.Second
)

type member struct {
	ID      string    `json:"id"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

// running is one partition consumer this replica runs.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

// balance runs the partitions assigned to this replica and re-balances when membership changes.
func (p *Processor) balance(ctx context.Context) error {
	kv, err := p.membersKV(ctx)
	if err != nil || kv == nil {
		return err
	}
	host, _ := os.Hostname()
	me := member{ID: p.id, Host: host, PID: os.Getpid(), Started: time.Now().UTC()}
	meJSON, _ := json.Marshal(me)
	key := membersPrefix + p.id
	beat := func() error {
		_, err := kv.Put(ctx, key, meJSON)
		return err
	}
	if err := beat(); err != nil && ctx.Err() == nil {
		p.log.Warn().Err(err).Msg("cannot register in hookd_members; retrying")
	}

	runs := map[int]*running{}
	stopping := map[int]chan error{} // partitions draining; not restarted before they are done
	var fatal error
	stop := func(n int) {
		r := runs[n]
		delete(runs, n)
		r.cancel()
		stopping[n] = r.done
	}
	reap := func() {
		for n, done := range stopping {
			select {
			case err := <-done:
				delete(stopping, n)
				if err != nil && fatal == nil {
					fatal = err
				}
			default:
			}
		}
		for n, r := range runs {
			select {
			case err := <-r.done:
				delete(runs, n)
				if err != nil && fatal == nil {
					fatal = err
				}
			default:
			}
		}
	}
	var last []int
	var members []string // the live members as last read, sorted
	heartbeat := time.NewTicker(heartbeatEvery)
	defer heartbeat.Stop()
	tick := time.NewTicker(balanceEvery)
	defer tick.Stop()
	for {
		reap()
		if fatal != nil {
			break
		}
		if want, ids, ok := p.assigned(ctx, kv, members); ok {
			members = ids
			for n := range runs {
				if !slices.Contains(want, n) {
					p.log.Info().Int("partition", n).Msg("partition assigned to another replica; handing it over")
					stop(n)
				}
			}
			for _, n := range want {
				if _, ok := runs[n]; ok {
					continue
				}
				if _, ok := stopping[n]; ok {
					continue // still draining from an earlier assignment
				}
				rctx, cancel := context.WithCancel(ctx)
				r := &running{cancel: cancel, done: make(chan error, 1)}
				pc := p.newPartition(n)
				go func() { r.done <- pc.Run(rctx) }()
				runs[n] = r
			}
			if !slices.Equal(want, last) {
				p.log.Info().Ints("partitions", want).Msg("partitions assigned to this replica")
				p.m.owned.Set(float64(len(want)))
				last = want
			}
		}
		select {
		case <-ctx.Done():
		case <-heartbeat.C:
			if err := beat(); err != nil && ctx.Err() == nil {
				p.log.Warn().Err(err).Msg("heartbeat to hookd_members failed")
			}
			continue
		case <-tick.C:
			continue
		}
		break
	}
	// Leave first, so that the others start pulling while this replica drains and unpins.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	_ = kv.Delete(dctx, key)
	cancel()
	for n := range runs {
		stop(n)
	}
	for _, done := range stopping {
		if err := <-done; err != nil && fatal == nil {
			fatal = err
		}
	}
	p.m.owned.Set(0)
	return fatal
}

// assigned lists the partitions this replica should consume: p where p mod N is this replica's
// index among the N live members sorted by id, and the members. ok is false when membership could
// not be read or does not include this replica yet (keep the current assignment).
//
// A member of prev (the last view) missing from the listing is looked up by key before it is
// dropped: a key listing taken while members heartbeat can miss a key (seen under load), and
// acting on it would move partitions back and forth within a second.
func (p *Processor) assigned(ctx context.Context, kv jetstream.KeyValue, prev []string) (_ []int, _ []string, ok bool) {
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	lister, err := kv.ListKeysFiltered(lctx, membersPrefix+"*")
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn().Err(err).Msg("cannot list hookd_members; keeping the current partitions")
		}
		return nil, nil, false
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, strings.TrimPrefix(k, membersPrefix))
	}
	if lctx.Err() != nil {
		return nil, nil, false
	}
	for _, id := range prev {
		if slices.Contains(ids, id) {
			continue
		}
		_, err := kv.Get(lctx, membersPrefix+id)
		switch {
		case err == nil:
			ids = append(ids, id) // still there: the listing missed it
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			// gone: it left or its heartbeat expired
		default:
			return nil, nil, false // cannot tell: keep the current assignment
		}
	}
	slices.Sort(ids)
	i := slices.Index(ids, p.id)
	if i < 0 {
		return nil, nil, false
	}
	var want []int
	for n := range len(p.parts) {
		if n%len(ids) == i {
			want = append(want, n)
		}
	}
	return want, ids, true
}

// membersKV opens hookd_members, retrying until it exists or ctx ends.
func (p *Processor) membersKV(ctx context.Context) (jetstream.KeyValue, error) {
	backoff := 250 * time.Millisecond
	for {
		kv, err := p.js.KeyValue(ctx, broker.BucketMembers)
		if err == nil {
			return kv, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if p.js.Conn().IsClosed() {
			return nil, errors.New("processor: NATS connection closed")
		}
		p.log.Warn().Err(err).Msg(fmt.Sprintf("KV bucket %s not reachable (run broker.Ensure; is NATS up?); retrying", broker.BucketMembers))
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Replica is one live processor replica as `hookd status` shows it.
type Replica struct {
	ID         string    `json:"id"`
	Host       string    `json:"host"`
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	Partitions []int     `json:"partitions"` // assigned to it by the balancer
}

// Replicas lists the live processor replicas and the partitions the balancer assigns each, read
// from hookd_members; it needs no running processor.
func Replicas(ctx context.Context, js jetstream.JetStream, partitions int) ([]Replica, error) {
	kv, err := js.KeyValue(ctx, broker.BucketMembers)
	if err != nil {
		return nil, fmt.Errorf("KV bucket %s: %w", broker.BucketMembers, err)
	}
	lister, err := kv.ListKeysFiltered(ctx, membersPrefix+"*")
	if err != nil {
		return nil, err
	}
	var out []Replica
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue // expired meanwhile
		}
		var m member
		_ = json.Unmarshal(e.Value(), &m)
		out = append(out, Replica{ID: strings.TrimPrefix(k, membersPrefix), Host: m.Host, PID: m.PID, Started: m.Started})
	}
	slices.SortFunc(out, func(a, b Replica) int { return strings.Compare(a.ID, b.ID) })
	for p := range partitions {
		if len(out) > 0 {
			out[p%len(out)].Partitions = append(out[p%len(out)].Partitions, p)
		}
	}
	return out, nil
}
