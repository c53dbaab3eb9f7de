package rules

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// SemaphoreConfig configures a KVSemaphore.
type SemaphoreConfig struct {
	// Bucket is the KV bucket holding the slots, created (or updated) by NewKVSemaphore.
	// Default hookd_rules.
	Bucket string `yaml:"bucket"`
	// Lease is how long a slot outlives its holder: holders renew every Lease/3, and the server
	// expires a slot that was not renewed for Lease (a crashed replica's slots come back after
	// at most Lease). Default 30s; at least 1s.
	Lease time.Duration `yaml:"lease"`
	// Replicas of the bucket. Default 1.
	Replicas int `yaml:"replicas"`
	// Holder identifies this process in slot values, for operators reading the bucket. Default
	// hostname/pid/random.
	Holder string `yaml:"-"`
}

// DefaultSemaphoreBucket is the default KV bucket of rule concurrency slots.
const DefaultSemaphoreBucket = "hookd_rules"

// Defaults fills unset fields.
func (c *SemaphoreConfig) Defaults() {
	if c.Bucket == "" {
		c.Bucket = DefaultSemaphoreBucket
	}
	if c.Lease == 0 {
		c.Lease = 30 * time.Second
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Holder == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.Holder = host + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(b[:])
	}
}

// Validate reports settings that cannot work.
func (c SemaphoreConfig) Validate() error {
	var errs []error
	if c.Lease < time.Second {
		errs = append(errs, fmt.Errorf("rules_semaphore.lease: want at least 1s (the server expires keys in whole seconds), got %s", c.Lease))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("rules_semaphore.replicas: want 1 to 5, got %d", c.Replicas))
	}
	return errors.Join(errs...)
}

// ErrSlotsBusy: Semaphore.Acquire's wait ended (waitUntil) with every slot still taken.
var ErrSlotsBusy = errors.New("rules: every concurrency slot is taken")

// ErrLeaseLost is the cause of a held context's cancellation when its slot could not be renewed
// (another holder took it after it expired, or the broker was unreachable for a whole lease).
var ErrLeaseLost = errors.New("rules: concurrency slot lost: its lease expired before it could be renewed")

// KVSemaphore is a Semaphore across a deployment on a JetStream KV bucket. Name n with limit N
// has slots n.0 … n.N-1; a holder creates one (compare-and-set: only if absent) with a per-key
// TTL of Lease and renews it with a revision-checked write, so at most N holders exist at once
// and a dead holder's slot expires on the server, independent of clocks. Waiters watch the
// slots and try again when one changes (and every Lease/2 regardless).
type KVSemaphore struct {
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	cfg SemaphoreConfig
	log zerolog.Logger
}

var _ Semaphore = (*KVSemaphore)(nil)

// NewKVSemaphore creates or updates the bucket (idempotent, per-key TTLs enabled) and returns
// the semaphore.
func NewKVSemaphore(ctx context.Context, js jetstream.JetStream, cfg SemaphoreConfig, log zerolog.Logger) (*KVSemaphore, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         cfg.Bucket,
		Description:    "hookd: rule concurrency slots (leases with per-key TTL)",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       cfg.Replicas,
		LimitMarkerTTL: time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("create or update KV bucket %s: %w", cfg.Bucket, err)
	}
	return &KVSemaphore{js: js, kv: kv, cfg: cfg, log: log}, nil
}

type slotValue struct {
	Holder   string    `json:"holder"`
	Acquired time.Time `json:"acquired"`
}

// Acquire waits for one of name's limit slots. See Semaphore. limit <= 0 means unlimited.
func (s *KVSemaphore) Acquire(ctx context.Context, name string, limit int, waitUntil time.Time) (context.Context, func(), error) {
	if limit <= 0 {
		return ctx, func() {}, nil
	}
	var until <-chan time.Time
	if !waitUntil.IsZero() {
		t := time.NewTimer(time.Until(waitUntil))
		defer t.Stop()
		until = t.C
	}
	val, _ := json.Marshal(slotValue{Holder: s.cfg.Holder, Acquired: time.Now().UTC()})
	// Watch before trying, so a slot freed between a failed try and the wait is not missed.
	w, err := s.kv.Watch(ctx, name+".*", jetstream.UpdatesOnly(), jetstream.MetaOnly())
	if err != nil {
		return nil, nil, fmt.Errorf("watch concurrency slots of %s: %w", name, err)
	}
	defer func() { _ = w.Stop() }()
	updates := w.Updates()
	for {
		for i := range limit {
			key := name + "." + strconv.Itoa(i)
			rev, err := s.kv.Create(ctx, key, val, jetstream.KeyTTL(s.cfg.Lease))
			if err == nil {
				held, release := s.hold(ctx, key, val, rev)
				return held, release, nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return nil, nil, fmt.Errorf("take concurrency slot %s: %w", key, err)
			}
		}
		t := time.NewTimer(s.cfg.Lease / 2)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, fmt.Errorf("wait for a concurrency slot of %s (all %d taken): %w", name, limit, context.Cause(ctx))
		case <-until:
			t.Stop()
			return nil, nil, fmt.Errorf("all %d concurrency slots of %s taken: %w", limit, name, ErrSlotsBusy)
		case _, ok := <-updates:
			if !ok {
				updates = nil
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// hold renews the slot until release (or until it is lost, which cancels the held context).
func (s *KVSemaphore) hold(ctx context.Context, key string, val []byte, rev uint64) (context.Context, func()) {
	held, cancel := context.WithCancelCause(ctx)
	stop, done := make(chan struct{}), make(chan struct{})
	subject := "$KV." + s.cfg.Bucket + "." + key
	go func() {
		defer close(done)
		tick := time.NewTicker(s.cfg.Lease / 3)
		defer tick.Stop()
		renewed := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-held.Done():
				return
			case <-tick.C:
			}
			rctx, rcancel := context.WithTimeout(held, s.cfg.Lease/3)
			ack, err := s.js.PublishMsg(rctx, &nats.Msg{Subject: subject, Data: val},
				jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(s.cfg.Lease))
			rcancel()
			switch {
			case err == nil:
				rev, renewed = ack.Sequence, time.Now()
			case isWrongLastSequence(err) || time.Since(renewed) >= s.cfg.Lease:
				s.log.Warn().Err(err).Str("slot", key).Msg("concurrency slot lost; cancelling its holder")
				cancel(ErrLeaseLost)
				return
			default:
				s.log.Debug().Err(err).Str("slot", key).Msg("renewing concurrency slot failed; trying again")
			}
		}
	}()
	var once sync.Once
	release := func() {
		once.Do(func() {
			close(stop)
			<-done
			dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer dcancel()
			if err := s.kv.Delete(dctx, key, jetstream.LastRevision(rev)); err != nil && !isWrongLastSequence(err) {
				s.log.Warn().Err(err).Str("slot", key).Msg("releasing concurrency slot failed; it frees itself when its lease expires")
			}
			cancel(context.Canceled)
		})
	}
	return held, release
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
