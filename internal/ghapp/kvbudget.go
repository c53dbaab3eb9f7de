package ghapp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
)

// BudgetKeyPrefix is the prefix of the shared budget's keys in the KV bucket hookd_sweep:
// ratelimit.<installation id> holds that installation's latest Rate as JSON (0: the app).
const BudgetKeyPrefix = "ratelimit."

// Write throttling of KVBudget: a replica writes an installation's rate when it learns
// something the others must know at once (a new window, a threshold crossed, exhaustion), and
// otherwise at most every budgetRefresh while the remaining count changes.
const budgetRefresh = 30 * time.Second

// KVBudget is the Budget shared by every replica through the KV bucket hookd_sweep: each
// replica records the X-RateLimit-* headers it sees and writes them (throttled) under
// ratelimit.<installation>, and watches those keys, so that an installation exhausted on one
// replica is refused on all of them until its reset, without spending a request.
//
// Observe and Check never wait for NATS: writes go out from a background goroutine and the
// watch updates an in-memory table. While NATS is unreachable the budget keeps working with
// what this replica sees. Safe for concurrent use.
type KVBudget struct {
	log zerolog.Logger
	now func() time.Time

	mu     sync.Mutex
	rates  map[int64]Rate // latest known rate per installation: observed here or read from the KV
	shared map[int64]Rate // what the KV holds (written by this replica, or read from it)
	queue  map[int64]Rate // to write
	wake   chan struct{}
}

// NewKVBudget returns a budget shared through js's KV bucket hookd_sweep (broker.Ensure
// creates it). Its background work (writing observations, watching the other replicas')
// starts at once and ends with ctx; failures are logged and retried, never returned.
func NewKVBudget(ctx context.Context, js jetstream.JetStream, log zerolog.Logger) *KVBudget {
	b := &KVBudget{
		log:    log.With().Str("component", "ratelimit").Logger(),
		now:    time.Now,
		rates:  map[int64]Rate{},
		shared: map[int64]Rate{},
		queue:  map[int64]Rate{},
		wake:   make(chan struct{}, 1),
	}
	go b.run(ctx, js)
	return b
}

// Observe implements Budget: it records resp's rate as installationID's latest and queues a
// write when the other replicas should learn it.
func (b *KVBudget) Observe(installationID int64, resp *http.Response) {
	if resp == nil {
		return
	}
	r, ok := ParseRate(resp.Header, b.now())
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rates[installationID] = r // a response just received is the newest word
	if s, ok := b.shared[installationID]; ok && !worthSharing(s, r) {
		return
	}
	b.shared[installationID] = r
	b.queue[installationID] = r
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Check implements Budget.
func (b *KVBudget) Check(installationID int64) (time.Duration, bool) {
	b.mu.Lock()
	r, ok := b.rates[installationID]
	b.mu.Unlock()
	if !ok {
		return 0, false
	}
	return r.exhausted(b.now())
}

// Rate returns the latest rate known for installationID, seen by this replica or another.
func (b *KVBudget) Rate(installationID int64) (Rate, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.rates[installationID]
	return r, ok
}

// worthSharing reports whether r, observed after the shared s, must be written now.
func worthSharing(s, r Rate) bool {
	if d := r.Reset.Sub(s.Reset); d > time.Second || d < -time.Second {
		return true // another window (or a reset moved by GitHub)
	}
	if level(r) > level(s) {
		return true
	}
	return r.Remaining != s.Remaining && r.Seen.Sub(s.Seen) >= budgetRefresh
}

// level is how low r is: a replica writes at once when it sees the remaining fraction of the
// limit fall below 50%, 25%, 10%, 5% or 1% (sweeps yield well before exhaustion, by
// sweep.rate_limit_share), and when it sees exhaustion.
func level(r Rate) int {
	switch frac := float64(r.Remaining) / float64(max(r.Limit, 1)); {
	case r.Remaining <= 0:
		return 6
	case r.Limit <= 0:
		return 0
	case frac < 0.01:
		return 5
	case frac < 0.05:
		return 4
	case frac < 0.1:
		return 3
	case frac < 0.25:
		return 2
	case frac < 0.5:
		return 1
	}
	return 0
}

func (b *KVBudget) run(ctx context.Context, js jetstream.JetStream) {
	var kv jetstream.KeyValue
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		var err error
		if kv, err = js.KeyValue(ctx, broker.BucketSweep); err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		b.log.Warn().Err(err).Dur("retry_in", backoff).Msg("shared rate-limit budget: cannot open KV bucket " + broker.BucketSweep + "; replicas do not share rate limits until it opens")
		if !sleep(ctx, backoff) {
			return
		}
	}
	go b.watch(ctx, kv)
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		}
		b.flush(ctx, kv)
	}
}

// flush writes the queued rates.
func (b *KVBudget) flush(ctx context.Context, kv jetstream.KeyValue) {
	b.mu.Lock()
	queue := b.queue
	b.queue = map[int64]Rate{}
	b.mu.Unlock()
	for id, r := range queue {
		val, err := json.Marshal(r)
		if err == nil {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = kv.Put(wctx, BudgetKeyPrefix+strconv.FormatInt(id, 10), val)
			cancel()
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			b.log.Warn().Err(err).Str("tenant", event.Tenant{InstallationID: id}.Key()).Msg("shared rate-limit budget: write failed; the next response of the installation tries again")
			b.mu.Lock()
			if b.shared[id] == r {
				delete(b.shared, id)
			}
			b.mu.Unlock()
		}
	}
}

// watch applies the other replicas' writes until ctx ends, watching again after a failure.
func (b *KVBudget) watch(ctx context.Context, kv jetstream.KeyValue) {
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		w, err := kv.Watch(ctx, BudgetKeyPrefix+">", jetstream.IgnoreDeletes())
		if err == nil {
			for e := range w.Updates() {
				if e != nil {
					b.apply(e)
					backoff = time.Second
				}
			}
			_ = w.Stop()
			err = errors.New("watch ended")
		}
		if ctx.Err() != nil {
			return
		}
		b.log.Warn().Err(err).Dur("retry_in", backoff).Msg("shared rate-limit budget: watching " + BudgetKeyPrefix + "> failed; watching again")
		if !sleep(ctx, backoff) {
			return
		}
	}
}

// apply takes a rate from the KV when it is newer than what this replica knows.
func (b *KVBudget) apply(e jetstream.KeyValueEntry) {
	id, err := strconv.ParseInt(strings.TrimPrefix(e.Key(), BudgetKeyPrefix), 10, 64)
	if err != nil {
		return
	}
	var r Rate
	if err := json.Unmarshal(e.Value(), &r); err != nil || r.Reset.IsZero() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.shared[id]; !ok || r.Seen.After(cur.Seen) {
		b.shared[id] = r
	}
	cur, ok := b.rates[id]
	if ok && !r.Seen.After(cur.Seen) {
		return
	}
	b.rates[id] = r
	if wait, exhausted := r.exhausted(b.now()); exhausted && (!ok || cur.Remaining > 0) {
		b.log.Info().Str("tenant", event.Tenant{InstallationID: id}.Key()).Dur("reset_in", wait).Msg("rate limit exhausted on another replica; holding this installation's requests until the reset")
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
