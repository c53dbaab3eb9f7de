package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A fence says "tenant T has an event with stream sequence Seq out of any replica's hands (handed
// back for a retry, or running on a replica that is giving the partition up); do not run T's
// later events before it".
// In memory, a replica knows this about its own tenants; the fence, kept in hookd_state under
// fence.<partition>.<tenant>, carries it across a failover or a rolling restart to whichever
// replica the partition moves to. Fences are written only on the failure and handover paths;
// every replica watches its partitions' fences, so the hot path reads them from memory.
type fence struct {
	Seq   uint64    `json:"seq"`
	Until time.Time `json:"until"` // after this, the fence is ignored (its event vanished)
	Owner string    `json:"owner"` // replica that wrote it
}

func fenceKey(partition int, tenantKey string) string {
	return "fence." + strconv.Itoa(partition) + "." + tenantKey
}

// fences is one partition's view of its fences.
type fences struct {
	kv        jetstream.KeyValue
	partition int
	prefix    string

	mu sync.Mutex
	m  map[string]fence // tenant key → fence
}

func newFences(kv jetstream.KeyValue, partition int) *fences {
	return &fences{kv: kv, partition: partition, prefix: fenceKey(partition, ""), m: map[string]fence{}}
}

func (f *fences) get(tenant string) (fence, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[tenant]
	return v, ok
}

// watch mirrors the partition's fences into memory until ctx ends or the watcher fails. loaded is
// called once the initial values are in. changed is called for every tenant whose fence changed
// after that.
func (f *fences) watch(ctx context.Context, loaded func(), changed func(tenant string)) error {
	w, err := f.kv.Watch(ctx, f.prefix+">")
	if err != nil {
		return fmt.Errorf("watch fences %s>: %w", f.prefix, err)
	}
	defer w.Stop() //nolint:errcheck // best effort
	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("fence watcher closed")
			}
			if e == nil {
				if initial {
					initial = false
					loaded()
				}
				continue
			}
			tenant := e.Key()[len(f.prefix):]
			f.mu.Lock()
			if e.Operation() != jetstream.KeyValuePut {
				delete(f.m, tenant)
			} else {
				var v fence
				if json.Unmarshal(e.Value(), &v) == nil {
					f.m[tenant] = v
				}
			}
			f.mu.Unlock()
			if !initial && changed != nil {
				changed(tenant)
			}
		}
	}
}

// set writes (seq > 0) or removes (seq == 0) tenant's fence, skipping the write when the mirror
// already says so. A fence at the same event is rewritten when another replica wrote it or it
// ends sooner: the event failed again here, and the fence must last as long as this retry.
func (f *fences) set(ctx context.Context, tenant string, v fence) error {
	f.mu.Lock()
	cur, ok := f.m[tenant]
	if v.Seq == 0 && !ok || v.Seq != 0 && ok && cur.Seq == v.Seq && cur.Owner == v.Owner && !v.Until.After(cur.Until) {
		f.mu.Unlock()
		return nil
	}
	if v.Seq == 0 {
		delete(f.m, tenant)
	} else {
		f.m[tenant] = v
	}
	f.mu.Unlock()
	key := fenceKey(f.partition, tenant)
	if v.Seq == 0 {
		if err := f.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("remove fence %s: %w", key, err)
		}
		return nil
	}
	b, _ := json.Marshal(v)
	if _, err := f.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("write fence %s: %w", key, err)
	}
	return nil
}

// expired lists the tenants whose fence's Until has passed.
func (f *fences) expired(now time.Time) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k, v := range f.m {
		if now.After(v.Until) {
			out = append(out, k)
		}
	}
	return out
}
