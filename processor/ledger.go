package processor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Ledger is the effect ledger of one event and one handler, kept in the KV bucket hookd_effects
// for as long as the events stream keeps the event. It answers "did I already do X for this
// event?" and records that X was done, so that a handler that runs again (after a failure, a
// crash, a failover or a replay) does not repeat an effect that already happened.
//
// Keys: fx.<delivery>.<handler>.<key>. A replayed dead letter keeps its delivery id and so its
// ledger: effects done before it was dead-lettered are not repeated.
type Ledger struct {
	kv      jetstream.KeyValue
	prefix  string // "fx.<delivery>.<handler>."
	attempt int
	fresh   bool // first delivery: nothing can be recorded yet, skip the read
	log     zerolog.Logger
}

// effectRecord is the value of a ledger key.
type effectRecord struct {
	State   string    `json:"state"` // stateClaimed or stateDone
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Result  []byte    `json:"result,omitempty"`
	// Dropped: the result was larger than the NATS server accepts in one message, and the effect
	// was recorded as done without it.
	Dropped bool `json:"result_dropped,omitempty"`
}

const (
	stateClaimed = "claimed"
	stateDone    = "done"
)

type uncertainKey struct{}

// EffectUncertain reports, inside a Ledger.Do function, whether an earlier attempt claimed this
// effect and never recorded its outcome: it crashed, or its function failed, possibly after the
// side effect happened (a timeout after GitHub applied a request, for example). The function
// should then check the outside world before acting again, as CreateComment does by looking for
// its marker.
func EffectUncertain(ctx context.Context) bool {
	v, _ := ctx.Value(uncertainKey{}).(bool)
	return v
}

// Do runs fn once for key over all attempts of this event and handler, and returns its result.
//
//   - The first time, Do claims key (KV create), runs fn and records its result (KV update at
//     the claim's revision).
//   - When key is already recorded as done, Do returns the recorded result without calling fn.
//   - When fn fails, its error is returned and the claim stays: the next attempt calls fn again
//     with EffectUncertain(ctx) true.
//   - When an earlier attempt crashed between claim and record, the next attempt also sees
//     EffectUncertain(ctx) true. This is the window where an effect can happen twice; close it by
//     making fn check first (see CreateComment) or by making the effect idempotent (AddLabels).
//
// Errors of the ledger itself are transient (the event is retried). If fn succeeded but its
// result could not be recorded, Do returns the result and a transient error.
func (l *Ledger) Do(ctx context.Context, key string, fn func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	if l == nil || l.kv == nil {
		return nil, Permanent(errors.New("no effect ledger: Event was not built by the processor"))
	}
	k := l.prefix + ledgerKey(key)
	claim, _ := json.Marshal(effectRecord{State: stateClaimed, Attempt: l.attempt, At: time.Now().UTC()})
	var (
		rev       uint64
		uncertain bool
		claimed   bool
	)
	if l.fresh {
		if r, err := l.kv.Create(ctx, k, claim); err == nil {
			rev, claimed = r, true
		}
	}
	for try := 0; !claimed; try++ {
		if try == 5 {
			return nil, Transient(fmt.Errorf("effect ledger %s: contended by another runner; will retry", k))
		}
		e, err := l.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			r, err := l.kv.Create(ctx, k, claim)
			if err == nil {
				rev, claimed = r, true
			} else if !isWrongSequence(err) {
				return nil, Transient(fmt.Errorf("effect ledger: claim %s: %w", k, err))
			}
			continue
		}
		if err != nil {
			return nil, Transient(fmt.Errorf("effect ledger: read %s: %w", k, err))
		}
		var rec effectRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return nil, Permanent(fmt.Errorf("effect ledger: %s holds %q: %w", k, e.Value(), err))
		}
		if rec.State == stateDone {
			return rec.Result, nil
		}
		r, err := l.kv.Update(ctx, k, claim, e.Revision())
		if err == nil {
			rev, claimed, uncertain = r, true, true
		} else if !isWrongSequence(err) {
			return nil, Transient(fmt.Errorf("effect ledger: claim %s: %w", k, err))
		}
	}
	if uncertain {
		l.log.Info().Str("effect", key).Msg("effect was claimed by an earlier attempt that did not record its outcome; checking before acting again")
	}
	res, err := fn(context.WithValue(ctx, uncertainKey{}, uncertain))
	if err != nil {
		return nil, err
	}
	done, _ := json.Marshal(effectRecord{State: stateDone, Attempt: l.attempt, At: time.Now().UTC(), Result: res})
	// The effect happened: record it even if ctx ended meanwhile (the handler's timeout, or
	// shutdown cancelling it), or the next attempt would do it again.
	rctx, cancel := recordCtx(ctx)
	defer cancel()
	_, err = l.kv.Update(rctx, k, done, rev)
	if errors.Is(err, nats.ErrMaxPayload) {
		// Failing here would do the effect again on every retry (an agent run, say): record it
		// as done without its result, which this attempt still has.
		small, _ := json.Marshal(effectRecord{State: stateDone, Attempt: l.attempt, At: time.Now().UTC(), Dropped: true})
		if _, err = l.kv.Update(rctx, k, small, rev); err == nil {
			l.log.Warn().Str("effect", key).Int("bytes", len(res)).
				Msg("the effect's result is larger than the NATS server's max_payload: recorded as done without it, so a later attempt of this event sees no result (raise max_payload on the NATS server, or lower the step's output caps)")
		}
	}
	if err != nil {
		if isWrongSequence(err) {
			l.log.Warn().Str("effect", key).Msg("effect was claimed concurrently by another runner (a failover with the old owner still alive); it may have happened twice")
		}
		return res, Transient(fmt.Errorf("effect ledger: record %s: %w", k, err))
	}
	return res, nil
}

// Done reports whether key is recorded as done, and its result.
func (l *Ledger) Done(ctx context.Context, key string) ([]byte, bool, error) {
	e, err := l.kv.Get(ctx, l.prefix+ledgerKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, Transient(err)
	}
	var rec effectRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.State != stateDone {
		return nil, false, nil
	}
	return rec.Result, true, nil
}

// ledgerKey keeps readable keys readable and hashes the rest into a valid KV key token.
func ledgerKey(key string) string {
	ok := key != "" && len(key) <= 128 && !strings.HasPrefix(key, ".") && !strings.HasSuffix(key, ".") && !strings.Contains(key, "..")
	for i := 0; ok && i < len(key); i++ {
		c := key[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if ok {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "=" + hex.EncodeToString(sum[:16])
}

// Keys of the processor's own records in hookd_effects.
func effectPrefix(delivery, handler string) string   { return "fx." + delivery + "." + handler + "." }
func handlerDoneKey(delivery, handler string) string { return "h." + delivery + "." + handler }
func failureKey(delivery string) string              { return "fail." + delivery }

// failureRecord counts the failed attempts of one event across deliveries, replicas and restarts.
type failureRecord struct {
	Attempts int `json:"attempts"`
	// Unclassified counts the attempts that failed with an unclassified error: those, not
	// transient failures before them, are what retry.max_attempts limits.
	Unclassified int       `json:"unclassified,omitempty"`
	FirstFailed  time.Time `json:"first_failed"`
	LastFailed   time.Time `json:"last_failed"`
	LastError    string    `json:"last_error"`
	Handlers     []string  `json:"handlers"` // handlers that failed in the last attempt
}
