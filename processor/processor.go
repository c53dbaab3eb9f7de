package processor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/hookd/hookd/internal/broker"
)

// Deps are what a Processor works with.
type Deps struct {
	// JS is the JetStream context; the topology (broker.Ensure) must exist. Required.
	JS jetstream.JetStream
	// Mux holds the handlers. Required; New takes a snapshot of it.
	Mux *Mux
	// Clients hands out installation-scoped GitHub clients for Event.GitHub. Optional: without
	// it, Event.GitHub returns ErrNoClients.
	Clients Clients
	// Log is the processor's logger. The zero Logger logs nothing.
	Log zerolog.Logger
	// Registerer receives the processor's metrics. Optional: nil registers nowhere.
	Registerer prometheus.Registerer
	// Partitions is the events stream's partition count, broker.Config.Partitions. Required.
	Partitions int
}

// Processor handles stored events: one PartitionConsumer per partition, sharing one worker pool
// of Config.Concurrency tenants. Build it with New; run it with Run, or run its Services
// separately (one per partition).
type Processor struct {
	cfg     Config
	js      jetstream.JetStream
	routes  []route
	clients Clients
	log     zerolog.Logger
	m       *metrics
	id      string        // this replica, for fences and logs
	slots   chan struct{} // the worker pool: Concurrency tenants at once
	parts   []*PartitionConsumer

	ra budget // payloads held before their turn: see readahead.go

	kvMu    sync.Mutex
	effects jetstream.KeyValue
	states  *stateStore
	stream  jetstream.Stream // the events stream, for reading stubbed payloads back
}

// New checks cfg (after Defaults) and deps and builds a Processor. It does no I/O: consumers are
// created by the partitions' Run.
func New(cfg Config, deps Deps) (*Processor, error) {
	cfg.Defaults()
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if deps.JS == nil {
		errs = append(errs, errors.New("processor: Deps.JS is required"))
	}
	if deps.Mux == nil {
		errs = append(errs, errors.New("processor: Deps.Mux is required (an empty Mux is fine)"))
	}
	if deps.Partitions < 1 {
		errs = append(errs, fmt.Errorf("processor: Deps.Partitions %d: pass nats.partitions (broker.Config.Partitions)", deps.Partitions))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	log := deps.Log
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	p := &Processor{
		cfg:     cfg,
		js:      deps.JS,
		routes:  deps.Mux.snapshot(),
		clients: deps.Clients,
		log:     log.With().Str("component", "processor").Logger(),
		m:       m,
		id:      replicaID(),
		slots:   make(chan struct{}, cfg.Concurrency),
	}
	p.ra.limit = cfg.ReadAheadBytes
	for n := range deps.Partitions {
		p.parts = append(p.parts, p.newPartition(n))
	}
	return p, nil
}

// newPartition builds a fresh consumer of partition n (one per run: the balancer starts a new
// one each time the partition is assigned to this replica).
func (p *Processor) newPartition(n int) *PartitionConsumer {
	return &PartitionConsumer{
		p:       p,
		n:       n,
		name:    consumerName(p.cfg, n),
		label:   strconv.Itoa(n),
		log:     p.log.With().Int("partition", n).Logger(),
		wake:    make(chan struct{}, 1),
		fenceK:  make(chan struct{}, 1),
		tenants: map[string]*tenantQ{},
		resync:  map[string]bool{},
	}
}

// Config returns the configuration in effect (defaults applied).
func (p *Processor) Config() Config { return p.cfg }

// Service is one long-running part, for a supervisor that runs named services.
type Service struct {
	Name string
	Run  func(ctx context.Context) error
}

// Partitions returns one PartitionConsumer per partition.
func (p *Processor) Partitions() []*PartitionConsumer { return p.parts }

// Services returns the partition consumers as named services, "worker:consume:partition-<p>".
// Run every one of them (or call Run, which does).
func (p *Processor) Services() []Service {
	out := make([]Service, len(p.parts))
	for i, pc := range p.parts {
		out[i] = Service{Name: pc.Name(), Run: pc.Run}
	}
	return out
}

// Run consumes the partitions assigned to this replica until ctx ends, then drains them (see
// PartitionConsumer.Run). Replicas share the partitions through NATS (see balance.go): each
// registers in the hookd_members bucket, and partition p belongs to the (p mod N)-th live
// replica; when a replica joins, leaves or dies the partitions move with a graceful handover.
// It returns an error only when the NATS connection is closed for good.
func (p *Processor) Run(ctx context.Context) error { return p.balance(ctx) }

// RunAll consumes every partition, without sharing: for a single replica, or when something
// else assigns partitions (Services). Every replica still pulls, and the pinned priority group
// lets one receive each partition.
func (p *Processor) RunAll(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, pc := range p.parts {
		g.Go(func() error { return pc.Run(gctx) })
	}
	return g.Wait()
}

func replicaID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// openKV looks up the buckets once, retrying until they exist or ctx ends.
func (p *Processor) openKV(ctx context.Context) error {
	p.kvMu.Lock()
	defer p.kvMu.Unlock()
	backoff := 250 * time.Millisecond
	for p.effects == nil || p.states == nil {
		eff, err := p.js.KeyValue(ctx, broker.BucketEffects)
		var st jetstream.KeyValue
		if err == nil {
			st, err = p.js.KeyValue(ctx, broker.BucketState)
		}
		if err == nil {
			p.effects, p.states = eff, &stateStore{kv: st}
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if p.js.Conn().IsClosed() {
			return fmt.Errorf("processor: NATS connection closed")
		}
		p.log.Warn().Err(err).Msg("KV buckets not reachable (run broker.Ensure; is NATS up?); retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}
