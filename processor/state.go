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

	"github.com/hookd/hookd/internal/event"
)

// ItemState is what hookd last applied for one issue or pull request, stored in the KV bucket
// hookd_state under StateKey. The processor writes it after every successful handling of an event
// that carries the issue or pull request, never moving updated_at backwards.
type ItemState struct {
	UpdatedAt time.Time `json:"updated_at"`
	HeadSHA   string    `json:"head_sha,omitempty"` // pull requests only
	Delivery  string    `json:"delivery"`           // the event that wrote this state
	Event     string    `json:"event"`
}

// StateKey is the hookd_state key of issue or pull request number in tenant t:
// "item.<installation>.<repository>.<number>".
func StateKey(t event.Tenant, number int) string {
	return "item." + t.Key() + "." + strconv.Itoa(number)
}

// itemRef is the issue or pull request an event is about, read from its payload.
type itemRef struct {
	Number    int
	UpdatedAt time.Time
	HeadSHA   string
}

// itemOf extracts the issue or pull request of a payload (issues, issue_comment, pull_request,
// pull_request_review, ... events). Zero when there is none. It skims the payload (event.Members)
// instead of decoding it: this runs for every such event, and encoding/json's validate-then-decode
// of a 13 KB payload was the processor's largest cost per event.
func itemOf(payload []byte) itemRef {
	var issue, pr []byte
	_ = event.Members(payload, func(k, v []byte) error {
		switch string(k) {
		case "issue":
			issue = v
		case "pull_request":
			pr = v
		}
		return nil
	})
	if r := refOf(pr, true); r.Number != 0 {
		return r
	}
	if r := refOf(issue, false); r.Number != 0 {
		return r
	}
	return itemRef{}
}

// refOf reads number, updated_at and (pull requests) head.sha out of an issue or pull request
// object; absent, null or malformed fields stay zero.
func refOf(raw []byte, pull bool) itemRef {
	var r itemRef
	if raw == nil {
		return r
	}
	_ = event.Members(raw, func(k, v []byte) error {
		switch string(k) {
		case "number":
			if n, err := event.Int(v); err == nil {
				r.Number = int(n)
			}
		case "updated_at":
			if s, err := event.String(v); err == nil && s != "" {
				if t, err := time.Parse(time.RFC3339, s); err == nil {
					r.UpdatedAt = t
				}
			}
		case "head":
			if pull {
				_ = event.Members(v, func(k, v []byte) error {
					if string(k) == "sha" {
						r.HeadSHA, _ = event.String(v)
					}
					return nil
				})
			}
		}
		return nil
	})
	return r
}

// stateStore reads and advances ItemStates. It remembers, for a minute, the revision and
// updated_at it last wrote or read per key, so that advancing an item this replica has just
// advanced takes one compare-and-set instead of a read and a write. Another writer (a replica
// that held the partition before, a replay) makes the compare-and-set fail, and the state is read
// again.
type stateStore struct {
	kv jetstream.KeyValue

	mu    sync.Mutex
	cache map[string]cachedState
}

type cachedState struct {
	updatedAt time.Time
	rev       uint64
	at        time.Time
}

const (
	stateCacheTTL = time.Minute
	stateCacheMax = 1 << 16 // entries; the cache is emptied when full
)

func (s *stateStore) cached(key string, now time.Time) (cachedState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cache[key]
	if !ok || now.Sub(c.at) > stateCacheTTL {
		return cachedState{}, false
	}
	return c, true
}

func (s *stateStore) remember(key string, updatedAt time.Time, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil || len(s.cache) >= stateCacheMax {
		s.cache = make(map[string]cachedState)
	}
	s.cache[key] = cachedState{updatedAt: updatedAt, rev: rev, at: time.Now()}
}

func (s *stateStore) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cache, key)
}

func (s *stateStore) get(ctx context.Context, t event.Tenant, number int) (ItemState, bool, error) {
	e, err := s.kv.Get(ctx, StateKey(t, number))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ItemState{}, false, nil
	}
	if err != nil {
		return ItemState{}, false, fmt.Errorf("read %s: %w", StateKey(t, number), err)
	}
	var st ItemState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return ItemState{}, false, fmt.Errorf("decode %s: %w", StateKey(t, number), err)
	}
	return st, true, nil
}

// advance records ref as applied unless a newer state is already recorded. Concurrent writers
// are resolved by revision: the newest updated_at wins.
func (s *stateStore) advance(ctx context.Context, t event.Tenant, ref itemRef, m event.Meta) error {
	if ref.Number == 0 || ref.UpdatedAt.IsZero() {
		return nil
	}
	key := StateKey(t, ref.Number)
	val, _ := json.Marshal(ItemState{UpdatedAt: ref.UpdatedAt.UTC(), HeadSHA: ref.HeadSHA, Delivery: m.Delivery, Event: m.Event})
	if c, ok := s.cached(key, time.Now()); ok {
		if !ref.UpdatedAt.After(c.updatedAt) {
			return nil // recorded as new or newer, by this replica a moment ago
		}
		rev, err := s.kv.Update(ctx, key, val, c.rev)
		if err == nil {
			s.remember(key, ref.UpdatedAt, rev)
			return nil
		}
		s.forget(key)
		if !isWrongSequence(err) {
			return fmt.Errorf("write %s: %w", key, err)
		}
		// Written by someone else since: read it.
	}
	for range 5 {
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			rev, err := s.kv.Create(ctx, key, val)
			if err == nil {
				s.remember(key, ref.UpdatedAt, rev)
				return nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("read %s: %w", key, err)
		}
		var cur ItemState
		if json.Unmarshal(e.Value(), &cur) == nil && !ref.UpdatedAt.After(cur.UpdatedAt) {
			s.remember(key, cur.UpdatedAt, e.Revision())
			return nil // the recorded state is as new or newer
		}
		if rev, err := s.kv.Update(ctx, key, val, e.Revision()); err == nil {
			s.remember(key, ref.UpdatedAt, rev)
			return nil
		} else if !isWrongSequence(err) {
			return fmt.Errorf("write %s: %w", key, err)
		}
	}
	return fmt.Errorf("write %s: lost the race 5 times", key)
}

// isWrongSequence reports a failed compare-and-set (KV Update with a stale revision, or Create
// of a key that exists).
func isWrongSequence(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}
