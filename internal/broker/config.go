package broker

import (
	"errors"
	"fmt"
	"time"
)

// Names of the streams and KV buckets hookd uses.
const (
	StreamEvents  = "HOOKD_EVENTS"  // every stored delivery; subjects hookd.in.> stored as hookd.events.>
	StreamDLQ     = "HOOKD_DLQ"     // dead letters; subjects hookd.dlq.>
	BucketEffects = "hookd_effects" // the processor's per-event, per-handler effect ledger
	BucketState   = "hookd_state"   // last applied state per issue/pull request (staleness guard, sweeps)
	BucketSweep   = "hookd_sweep"   // sweep cursors, ETags, leases, redelivery bookkeeping
	BucketMembers = "hookd_members" // live processor replicas (heartbeats expire after MemberTTL)
)

// MemberTTL is how long a processor replica stays a member after its last heartbeat: the time
// the others take to notice that it died and share out its partitions.
const MemberTTL = 10 * time.Second

// Sync policies for the embedded server's file store.
const (
	SyncInterval = "interval" // fsync every SyncEvery; a power loss can lose what was acknowledged since
	SyncAlways   = "always"   // fsync every write before acknowledging it
)

// Config describes where JetStream is and how hookd's streams are shaped. The zero value, after
// Defaults, is an embedded single-node server under ./data.
type Config struct {
	// URL of an external NATS (comma-separated for a cluster). Empty (default): start an embedded
	// nats-server with JetStream.
	URL string `yaml:"url"`
	// DataDir is where the embedded server keeps its file store (DataDir/jetstream). Default "./data".
	DataDir string `yaml:"data_dir"`
	// Listen is the embedded server's client address, on loopback so that hookd subcommands and
	// the nats CLI can reach it. Default "127.0.0.1:4222"; port 0 or -1 picks a free port.
	Listen string `yaml:"listen"`
	// Sync is the embedded server's fsync policy: "interval" or "always". Default "always":
	// see docs/ARCHITECTURE.md "Durability" for what each promises.
	Sync string `yaml:"sync"`
	// SyncEvery is the fsync interval when Sync is "interval". Default 2m (nats-server's default).
	SyncEvery time.Duration `yaml:"sync_every"`
	// Replicas of every stream and bucket; 1 on a single server, 3 on a 3-node cluster. Default 1.
	Replicas int `yaml:"replicas"`
	// Partitions of the events stream: tenants hash to partitions, each partition has one active
	// processor at a time. Default 16. Ensure refuses to change it while the events stream holds
	// events (see Ensure); purge the stream first.
	Partitions int `yaml:"partitions"`
	// MaxAge is how long stored events are kept, and so the de-duplication window. Default and
	// minimum 4 days (GitHub.com redelivers for 3); with GitHub Enterprise Server, which
	// redelivers for 7, set 8 days (192h). The server keeps about 240 bytes of index in memory
	// per stored delivery (docs/PERFORMANCE.md), so this also sizes memory.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes caps the events stream. When it is full, new deliveries are refused (503) rather
	// than older ones dropped. Default 8 GiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// DLQMaxAge is how long dead letters are kept. Default 30 days.
	DLQMaxAge time.Duration `yaml:"dlq_max_age"`
	// ConnectTimeout bounds the first connection to NATS. Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// MinDedupWindow is the shortest MaxAge accepted: GitHub allows redelivery for 3 days.
const MinDedupWindow = 4 * 24 * time.Hour

// Defaults fills unset fields with their documented defaults.
func (c *Config) Defaults() {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:4222"
	}
	if c.Sync == "" {
		c.Sync = SyncAlways
	}
	if c.SyncEvery == 0 {
		c.SyncEvery = 2 * time.Minute
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Partitions == 0 {
		c.Partitions = 16
	}
	if c.MaxAge == 0 {
		c.MaxAge = MinDedupWindow
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 8 << 30
	}
	if c.DLQMaxAge == 0 {
		c.DLQMaxAge = 30 * 24 * time.Hour
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
}

// Validate reports every problem at once, each naming the setting to change.
func (c Config) Validate() error {
	var errs []error
	if c.Sync != SyncAlways && c.Sync != SyncInterval {
		errs = append(errs, fmt.Errorf("nats.sync: %q is not a sync policy; use %q or %q", c.Sync, SyncAlways, SyncInterval))
	}
	if c.SyncEvery < 0 {
		errs = append(errs, fmt.Errorf("nats.sync_every: must be positive, got %s", c.SyncEvery))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("nats.replicas: %d is out of range; use 1 (single server) to 5, usually 3 on a cluster", c.Replicas))
	}
	if c.URL == "" && c.Replicas > 1 {
		errs = append(errs, fmt.Errorf("nats.replicas: %d needs a cluster; the embedded server is a single node: set nats.replicas to 1 or HOOKD_NATS_URL to a cluster", c.Replicas))
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("nats.partitions: %d is out of range 1..1024", c.Partitions))
	}
	if c.MaxAge < MinDedupWindow {
		errs = append(errs, fmt.Errorf("nats.max_age: %s is shorter than the %s de-duplication window GitHub redeliveries need", c.MaxAge, MinDedupWindow))
	}
	if c.MaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("nats.max_bytes: %d is below 1 MiB", c.MaxBytes))
	}
	if c.DLQMaxAge <= 0 {
		errs = append(errs, errors.New("nats.dlq_max_age: must be positive"))
	}
	if c.ConnectTimeout < 0 {
		errs = append(errs, fmt.Errorf("nats.connect_timeout: must be positive, got %s", c.ConnectTimeout))
	}
	return errors.Join(errs...)
}
