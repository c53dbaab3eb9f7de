package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
// start by every replica. It refuses to change the partition count of an events stream that
// holds events (see checkPartitions), and says what to do when an existing stream has settings
// JetStream cannot change.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	events := EventsStreamConfig(cfg)
	if err := checkPartitions(ctx, js, events, cfg.Partitions); err != nil {
		return err
	}
	for _, sc := range []jetstream.StreamConfig{events, DLQStreamConfig(cfg)} {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("create or update stream %s: %w%s", sc.Name, err, immutableHint(err, sc.Name))
		}
	}
	for _, kc := range BucketConfigs(cfg) {
		if _, err := js.CreateOrUpdateKeyValue(ctx, kc); err != nil {
			return fmt.Errorf("create or update KV bucket %s: %w%s", kc.Bucket, err, immutableHint(err, "KV_"+kc.Bucket))
		}
	}
	return nil
}

// errMismatch marks an existing stream that Ensure must not bring to hookd's settings.
var errMismatch = errors.New("the existing stream does not match hookd's configuration")

// checkPartitions refuses to change the partition count (the subject transform) of an events
// stream that holds events: a stored delivery's subject names its partition, so after the change
// GitHub's redelivery of it would be stored a second time (the one-message-per-subject limit no
// longer sees it), and a repository's earlier and later events would sit in two partitions,
// handled concurrently and out of order; with fewer partitions, events in the dropped ones would
// never be handled. An empty stream (a new one, or one purged after the processor handled
// everything) takes the new count.
func checkPartitions(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, partitions int) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	info := s.CachedInfo()
	have := info.Config.SubjectTransform
	if info.State.Msgs == 0 || (have != nil && *have == *want.SubjectTransform) {
		return nil
	}
	was := "another subject transform"
	if n, ok := TransformPartitions(have); ok {
		was = strconv.Itoa(n) + " partitions"
	}
	return fmt.Errorf("nats.partitions: stream %s holds %d events stored with %s, not the %d partitions configured: %w; "+
		"changing the partition count would store GitHub's redeliveries of them a second time and split repositories' events over two partitions, out of order. "+
		"Set nats.partitions (HOOKD_NATS_PARTITIONS) back to what it was, or, to repartition: stop ingest, wait until hookd status shows no pending events, "+
		"run `nats stream purge %s` (redeliveries of the purged deliveries are then stored again), and start hookd with the new count",
		want.Name, info.State.Msgs, was, partitions, errMismatch, want.Name)
}

// TransformPartitions reads the partition count of an events stream's subject transform
// (event.PartitionTransform); false when it has none.
func TransformPartitions(t *jetstream.SubjectTransformConfig) (int, bool) {
	if t == nil {
		return 0, false
	}
	_, rest, ok := strings.Cut(t.Destination, "{{partition(")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(rest, ",", 2)[0]))
	return n, err == nil
}

// immutableHint says what to do when JetStream refused an update of an existing stream (name)
// because it changes a setting that cannot change, such as the storage type or the retention.
func immutableHint(err error, name string) string {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsErrCodeStreamInvalidConfig || !strings.Contains(apiErr.Description, "update can not") {
		return ""
	}
	return fmt.Sprintf(" (the existing stream %s was created with settings that JetStream cannot change to hookd's: compare `nats stream info %s` "+
		"with docs/ARCHITECTURE.md; to let hookd recreate it, back it up (`nats stream backup`) and remove it (`nats stream rm %s`) "+
		"once the processor has handled what it holds)", name, name, name)
}

// jsErrCodeStreamInvalidConfig is JetStream's JSStreamInvalidConfigF (server/errors.json), which
// nats.go does not name.
const jsErrCodeStreamInvalidConfig jetstream.ErrorCode = 10052

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
		if errors.Is(err, errMismatch) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w (with an external NATS: is JetStream enabled, and are there nats.replicas=%d servers?)", err, cfg.Replicas)
	}
	return nc, js, nil
}
