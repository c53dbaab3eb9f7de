package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/event"
)

// EventsStreamConfig is the events stream as cfg shapes it.
//
// Every delivery has its own subject (its id is the last token) and the stream keeps at most one
// message per subject, refusing a second (discard new per subject): a delivery is stored once for
// as long as the stream keeps it (MaxAge), without an in-memory duplicate window. The stream is
// full when MaxBytes is reached; it then refuses new deliveries instead of dropping old ones.
func EventsStreamConfig(cfg Config) jetstream.StreamConfig {
	src, dest := event.PartitionTransform(cfg.Partitions)
	return jetstream.StreamConfig{
		Name:                 StreamEvents,
		Description:          "hookd: every stored webhook delivery and synthetic event, partitioned by tenant",
		Subjects:             []string{event.InPrefix + ".>"},
		SubjectTransform:     &jetstream.SubjectTransformConfig{Source: src, Destination: dest},
		Retention:            jetstream.LimitsPolicy,
		Storage:              jetstream.FileStorage,
		Replicas:             cfg.Replicas,
		MaxAge:               cfg.MaxAge,
		MaxBytes:             cfg.MaxBytes,
		MaxMsgsPerSubject:    1,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		Duplicates:           2 * time.Minute,
		AllowDirect:          true,
	}
}

// DLQStreamConfig is the dead-letter stream as cfg shapes it.
func DLQStreamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamDLQ,
		Description: "hookd: events that failed for good, with the failing handler and last error",
		Subjects:    []string{event.DLQPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.DLQMaxAge,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
	}
}

// BucketConfigs are the KV buckets as cfg shapes them.
func BucketConfigs(cfg Config) []jetstream.KeyValueConfig {
	return []jetstream.KeyValueConfig{
		{Bucket: BucketEffects, Description: "hookd: effect ledger, per event and handler", TTL: cfg.MaxAge, Storage: jetstream.FileStorage, Replicas: cfg.Replicas, LimitMarkerTTL: time.Second},
		{Bucket: BucketState, Description: "hookd: last applied state per issue and pull request", Storage: jetstream.FileStorage, Replicas: cfg.Replicas, History: 1},
		{Bucket: BucketSweep, Description: "hookd: sweep cursors, leases and redelivery bookkeeping", Storage: jetstream.FileStorage, Replicas: cfg.Replicas, History: 1, LimitMarkerTTL: time.Second},
		{Bucket: BucketMembers, Description: "hookd: live processor replicas", TTL: MemberTTL, Storage: jetstream.MemoryStorage, Replicas: cfg.Replicas, History: 1},
	}
}

// Ensure creates or updates every stream and KV bucket hookd uses. It is idempotent: run at every
// start by every replica.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	for _, sc := range []jetstream.StreamConfig{EventsStreamConfig(cfg), DLQStreamConfig(cfg)} {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("create or update stream %s: %w", sc.Name, err)
		}
	}
	for _, kc := range BucketConfigs(cfg) {
		if _, err := js.CreateOrUpdateKeyValue(ctx, kc); err != nil {
			return fmt.Errorf("create or update KV bucket %s: %w", kc.Bucket, err)
		}
	}
	return nil
}

// Open connects to NATS at url, and makes sure every stream and bucket exists (Ensure, within
// 30 s): what each hookd process and tool does first. The caller closes the connection.
func Open(ctx context.Context, url string, cfg Config, name string, log zerolog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := Connect(ctx, url, cfg, name, log)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := Ensure(ectx, js, cfg); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("%w (with an external NATS: is JetStream enabled, and are there nats.replicas=%d servers?)", err, cfg.Replicas)
	}
	return nc, js, nil
}
