package processor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
)

// item is one delivered message held by this replica.
type item struct {
	mu      sync.Mutex // serialises ack verbs (no "in progress" after the final verb) and guards the payload fields
	ack     acker
	settled bool

	seq       uint64 // stream sequence: the order within a tenant
	delivered uint64 // NumDelivered of this delivery
	meta      event.Meta
	subject   event.StoredSubject
	bad       error // undecodable headers or subject: dead-lettered when its turn comes
	tenant    event.Tenant
	key       string // tenant key
	partition int
	raw       string // the stored subject as delivered

	// The payload, while held: see readahead.go. A stub (loaded false) has only the fields above;
	// its payload is read back from the stream when its turn comes.
	hdr    nats.Header
	data   []byte
	loaded bool
	cost   int64 // bytes counted against the read-ahead budget
}

// progress tells the server the item is still being worked on, unless it was settled.
func (it *item) progress() {
	it.mu.Lock()
	defer it.mu.Unlock()
	if !it.settled {
		_ = it.ack.inProgress()
	}
}

// tenantQ is one tenant's events held by this replica, strictly serial.
type tenantQ struct {
	key     string
	queue   []*item              // waiting, sorted by seq
	running *item                // at most one
	out     map[uint64]time.Time // handed back for a retry, awaiting re-delivery → give-up time
	inReady bool
}

func (t *tenantQ) minOut() (uint64, time.Time) {
	var seq uint64
	var until time.Time
	for s, u := range t.out {
		if seq == 0 || s < seq {
			seq, until = s, u
		}
	}
	return seq, until
}

func (t *tenantQ) empty() bool { return t.running == nil && len(t.queue) == 0 && len(t.out) == 0 }

// PartitionConsumer handles one partition of the events stream: it keeps the partition's durable
// pull consumer, receives its events if this replica is the pinned client, queues them per
// tenant and runs the tenants on the processor's shared worker pool. Run it once.
type PartitionConsumer struct {
	p        *Processor
	n        int
	name     string // durable consumer name
	label    string // metrics label
	log      zerolog.Logger
	fences   *fences
	fenceMu  sync.Mutex    // serialises fence writes of this partition
	fenceK   chan struct{} // kicks fenceLoop: see arrive
	wake     chan struct{}
	inflight sync.WaitGroup

	mu       sync.Mutex
	tenants  map[string]*tenantQ
	resync   map[string]bool // tenants whose fence fenceLoop brings up to date
	ready    []*tenantQ      // tenants that may run their head event, FIFO: round robin
	held     int             // items queued or running
	draining bool
	pinID    string    // last Nats-Pin-Id seen: this replica's pin, if it is pinned
	pinnedAt time.Time // when pinID was first seen
	settle   time.Time // no event starts before this: a new pin's re-deliveries are still arriving
	settleT  *time.Timer
	cons     jetstream.Consumer
}

// handoverSettle is how long a replica that just became the partition's pinned client waits
// before it starts handling, and how long it keeps waiting after each re-delivery that arrives
// meanwhile (up to maxHandoverSettle after the pin): the events the previous owner held come
// back first, in a burst, but not necessarily in stream order; waiting for the burst to end
// lets them be sorted into their tenants' queues before any runs.
const (
	handoverSettle    = 200 * time.Millisecond
	maxHandoverSettle = 3 * time.Second
)

// Partition is the partition number.
func (pc *PartitionConsumer) Partition() int { return pc.n }

// Name is the service name, "worker:consume:partition-<p>".
func (pc *PartitionConsumer) Name() string { return "worker:consume:partition-" + strconv.Itoa(pc.n) }

// ConsumerConfig is the durable consumer of partition n under cfg: explicit acks, AckWait,
// MaxAckPending, unlimited deliveries (the processor decides when to give up), and the pinned
// client priority policy so that one replica at a time receives the partition.
func ConsumerConfig(cfg Config, n int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        consumerName(cfg, n),
		Description:    fmt.Sprintf("hookd processor, partition %d: one pinned replica at a time", n),
		FilterSubject:  event.PartitionSubject(n),
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  cfg.MaxAckPending,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PinnedTTL:      cfg.PinnedTTL,
		PriorityGroups: []string{PriorityGroup},
	}
}

// pullMaxMessages bounds one partition's outstanding pull (the client's read-ahead of it).
const pullMaxMessages = 64

func consumerName(cfg Config, n int) string { return cfg.Consumer + "_" + strconv.Itoa(n) }

// Run consumes the partition until ctx ends, then drains (see docs/ARCHITECTURE.md "Shutdown"): it
// stops receiving, hands back what is buffered but not started, lets running handlers finish
// within ShutdownTimeout (then cancels them and still waits), and unpins the partition so that
// another replica takes it at once. It returns nil after a drain; it retries NATS failures
// itself and returns an error only when the NATS connection is closed for good.
func (pc *PartitionConsumer) Run(ctx context.Context) error {
	if err := pc.p.openKV(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	pc.fences = newFences(pc.p.states.kv, pc.n)
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx)) // handlers outlive ctx: second gear
	defer hcancel()

	var bg sync.WaitGroup
	defer bg.Wait()
	bgCtx, bgCancel := context.WithCancel(ctx)
	defer bgCancel()

	// Fences must be loaded before the first event is dispatched.
	fencesReady := make(chan struct{})
	bg.Go(func() { pc.watchFences(bgCtx, func() { close(fencesReady) }) })
	select {
	case <-fencesReady:
	case <-ctx.Done():
		return nil
	}
	dctx, dcancel := context.WithCancel(ctx)
	defer dcancel()
	dispatchDone := make(chan struct{})
	go func() { defer close(dispatchDone); pc.dispatchLoop(dctx, hctx) }()
	// Keep-alives go on through the drain: a handler still running after ctx ended must not have
	// its event re-delivered (to the replica taking the partition over) after ack_wait.
	kctx, kcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer kcancel()
	bg.Go(func() { pc.keepAliveLoop(kctx) })
	bg.Go(func() { pc.fenceLoop(kctx) })

	err := pc.consumeLoop(ctx)
	dcancel() // stop starting events
	<-dispatchDone
	pc.drain(hcancel)
	kcancel()
	return err
}

// consumeLoop (re)creates the consumer and consumes until ctx ends.
func (pc *PartitionConsumer) consumeLoop(ctx context.Context) error {
	backoff := 250 * time.Millisecond
	sleep := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, 5*time.Second)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for {
		if ctx.Err() != nil {
			return nil
		}
		if pc.p.js.Conn().IsClosed() {
			return fmt.Errorf("partition %d: NATS connection closed", pc.n)
		}
		cons, err := pc.p.js.CreateOrUpdateConsumer(ctx, broker.StreamEvents, ConsumerConfig(pc.p.cfg, pc.n))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			pc.log.Warn().Err(err).Dur("retry_in", backoff).Msg("cannot create or update the partition consumer (is NATS up and broker.Ensure done?)")
			if !sleep() {
				return nil
			}
			continue
		}
		pc.mu.Lock()
		pc.cons = cons
		pc.mu.Unlock()
		cc, err := cons.Consume(pc.arrive,
			// Small pulls: sixteen partitions pulling 500 payloads of 13 KB at once overran the
			// server's 64 MiB per-connection buffer (a slow-consumer disconnect). Not bounded in
			// bytes: a pull smaller than one message (GitHub sends up to 25 MiB) would never
			// return it.
			jetstream.PullMaxMessages(min(pc.p.cfg.MaxAckPending, pullMaxMessages)),
			jetstream.PullExpiry(pc.p.cfg.pullExpiry()),
			jetstream.PullPriorityGroup(PriorityGroup),
			jetstream.ConsumeErrHandler(pc.consumeError),
		)
		if err != nil {
			pc.log.Warn().Err(err).Dur("retry_in", backoff).Msg("cannot consume the partition")
			if !sleep() {
				return nil
			}
			continue
		}
		closed := cc.Closed()
		backoff = 250 * time.Millisecond
		select {
		case <-ctx.Done():
			pc.mu.Lock()
			pc.draining = true
			pc.mu.Unlock()
			cc.Drain()
			t := time.NewTimer(5 * time.Second)
			select {
			case <-closed:
			case <-t.C:
				cc.Stop()
			}
			t.Stop()
			return nil
		case <-closed:
			pc.log.Warn().Msg("partition consumer stopped (deleted, or connection closed); handing back buffered events and starting again")
			pc.release("consume stopped")
			if !sleep() {
				return nil
			}
		}
	}
}

// consumeError handles the consumer's asynchronous errors. Losing the pin while alive (NATS
// restarted, or this replica stalled longer than PinnedTTL) means another replica may now get
// the partition: hand back everything not started, with fences for the running tenants.
func (pc *PartitionConsumer) consumeError(_ jetstream.ConsumeContext, err error) {
	if errors.Is(err, jetstream.ErrPinIDMismatch) {
		pc.p.m.pinLost.WithLabelValues(pc.label).Inc()
		pc.log.Warn().Msg("lost the partition's pin (NATS restart or a stall longer than processor.pinned_ttl); handing back buffered events")
		pc.release("pin lost")
		return
	}
	pc.log.Debug().Err(err).Msg("pull consumer")
}

// arrive is the Consume callback: it files a message under its tenant. It never blocks on
// handlers; back-pressure is MaxAckPending on the server.
func (pc *PartitionConsumer) arrive(msg jetstream.Msg) {
	it := pc.decode(msg)
	if it == nil {
		return
	}
	pc.mu.Lock()
	now := time.Now()
	if pid := msg.Headers().Get("Nats-Pin-Id"); pid != "" && pid != pc.pinID {
		pc.pinID, pc.pinnedAt = pid, now
		pc.extendSettle(now)
		pc.log.Info().Msg("pinned: this replica now receives the partition")
	} else if it.delivered > 1 && now.Before(pc.settle) {
		pc.extendSettle(now) // the previous owner's events are still coming back
	}
	if pc.draining {
		pc.mu.Unlock()
		pc.p.settle(context.Background(), pc, it, result{kind: kindRelease})
		return
	}
	t := pc.tenants[it.key]
	if t == nil {
		t = &tenantQ{key: it.key, out: map[uint64]time.Time{}}
		pc.tenants[it.key] = t
	}
	returned := false
	switch i, found := slices.BinarySearchFunc(t.queue, it.seq, func(x *item, s uint64) int { return cmpSeq(x.seq, s) }); {
	case t.running != nil && t.running.seq == it.seq:
		// A re-delivery of the running event (its AckWait lapsed): the running attempt settles it.
		pc.mu.Unlock()
		pc.p.discard(it)
		return
	case found:
		pc.p.discard(t.queue[i])
		t.queue[i] = it // a newer delivery of a waiting event: keep the newer handle
	default:
		if _, ok := t.out[it.seq]; ok {
			delete(t.out, it.seq)
			returned = true
		}
		t.queue = slices.Insert(t.queue, i, it)
		pc.held++
	}
	if returned {
		// Its fence can go, but not from here: a KV write (slow, or failing for seconds while
		// hookd_state is unavailable) would stall receiving the whole partition, and with it the
		// pull requests that keep this replica's pin.
		pc.resync[it.key] = true
		select {
		case pc.fenceK <- struct{}{}:
		default:
		}
	}
	pc.markReady(t, now)
	pc.mu.Unlock()
}

// fenceLoop brings the fences of the tenants arrive marked up to date, off the receiving path,
// until ctx ends (after the drain), then once more.
func (pc *PartitionConsumer) fenceLoop(ctx context.Context) {
	for {
		stop := false
		select {
		case <-ctx.Done():
			stop = true
		case <-pc.fenceK:
		}
		pc.mu.Lock()
		keys := slices.Collect(maps.Keys(pc.resync))
		clear(pc.resync)
		pc.mu.Unlock()
		for _, key := range keys {
			pc.syncFence(key, 0)
		}
		if stop {
			return
		}
	}
}

// extendSettle holds handling until handoverSettle from now, at most maxHandoverSettle after the
// pin, and rescans the tenants when the wait ends. Lock held.
func (pc *PartitionConsumer) extendSettle(now time.Time) {
	until := now.Add(handoverSettle)
	if limit := pc.pinnedAt.Add(maxHandoverSettle); until.After(limit) {
		until = limit
	}
	if !until.After(pc.settle) {
		return
	}
	pc.settle = until
	if pc.settleT == nil {
		pc.settleT = time.AfterFunc(until.Sub(now), pc.rescan)
	} else {
		pc.settleT.Reset(until.Sub(now))
	}
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// grace is how long past its delay a handed-back event may take to come back before the tenant
// stops waiting for it (it was dead-lettered or deleted elsewhere, or the partition moved).
func (pc *PartitionConsumer) grace() time.Duration { return 2*pc.p.cfg.AckWait + pc.p.cfg.PinnedTTL }

// decode reads a message's metadata, subject and headers. Undecodable headers are kept as an item
// that will be dead-lettered in its turn.
func (pc *PartitionConsumer) decode(msg jetstream.Msg) *item {
	md, err := msg.Metadata()
	if err != nil {
		pc.log.Error().Err(err).Str("subject", msg.Subject()).Msg("message without JetStream metadata; handing it back")
		_ = msg.Nak()
		return nil
	}
	it := &item{
		ack: acker{nc: pc.p.js.Conn(), reply: msg.Reply()},
		seq: md.Sequence.Stream, delivered: md.NumDelivered, partition: pc.n, raw: msg.Subject(),
	}
	hdr, data := msg.Headers(), msg.Data()
	if cost := msgCost(hdr, data); pc.p.ra.take(cost) {
		it.hdr, it.data, it.loaded, it.cost = hdr, data, true, cost
	} else {
		pc.p.m.stubbed.Inc() // beyond the read-ahead budget: read back in its turn
	}
	ss, serr := event.ParseStoredSubject(it.raw)
	meta, merr := event.MetaFromHeader(hdr)
	it.subject = ss
	switch {
	case merr == nil:
		it.meta = meta
		it.tenant = meta.Tenant()
	case serr == nil:
		it.bad = Permanent(fmt.Errorf("undecodable headers: %w", merr))
		it.meta = event.Meta{Event: ss.Event, Delivery: ss.Delivery, InstallationID: ss.InstallationID, RepositoryID: ss.RepositoryID}
		it.tenant = it.meta.Tenant()
	default:
		it.bad = Permanent(fmt.Errorf("undecodable message: %w", errors.Join(merr, serr)))
	}
	if serr == nil {
		// The subject's ids are what the stream partitioned by.
		it.key = event.Tenant{InstallationID: ss.InstallationID, RepositoryID: ss.RepositoryID}.Key()
	} else {
		it.key = it.tenant.Key()
	}
	return it
}

// eligible reports whether t may start its head event now. Lock held.
func (pc *PartitionConsumer) eligible(t *tenantQ, now time.Time) bool {
	if t.running != nil || len(t.queue) == 0 || pc.draining || now.Before(pc.settle) {
		return false
	}
	head := t.queue[0].seq
	for s := range t.out {
		if s < head {
			return false // an earlier event is out for a retry: wait for it
		}
	}
	if f, ok := pc.fences.get(t.key); ok && f.Seq < head && now.Before(f.Until) {
		return false // an earlier event is out, handed back by another replica or an earlier run
	}
	return true
}

// markReady queues t for a worker if it may run. Lock held.
func (pc *PartitionConsumer) markReady(t *tenantQ, now time.Time) {
	if t.inReady || !pc.eligible(t, now) {
		if t.empty() && !t.inReady {
			delete(pc.tenants, t.key)
		}
		return
	}
	t.inReady = true
	pc.ready = append(pc.ready, t)
	select {
	case pc.wake <- struct{}{}:
	default:
	}
}

// rescan re-evaluates every tenant.
func (pc *PartitionConsumer) rescan() {
	now := time.Now()
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, t := range pc.tenants {
		pc.markReady(t, now)
	}
}

// next pops the next tenant that may run and marks its head running. Lock held.
func (pc *PartitionConsumer) next(now time.Time) (*tenantQ, *item) {
	for len(pc.ready) > 0 {
		t := pc.ready[0]
		pc.ready[0] = nil
		pc.ready = pc.ready[1:]
		t.inReady = false
		if pc.tenants[t.key] != t || !pc.eligible(t, now) {
			continue
		}
		it := t.queue[0]
		t.queue = t.queue[1:]
		t.running = it
		return t, it
	}
	return nil, nil
}

// dispatchLoop starts tenants' head events on the shared worker pool until ctx ends.
func (pc *PartitionConsumer) dispatchLoop(ctx, hctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-pc.wake:
		}
		for {
			select {
			case pc.p.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			pc.mu.Lock()
			t, it := pc.next(time.Now())
			pc.mu.Unlock()
			if it == nil {
				<-pc.p.slots
				break
			}
			pc.inflight.Add(1)
			go pc.work(hctx, t, it)
		}
	}
}

// work handles one event and settles it.
func (pc *PartitionConsumer) work(ctx context.Context, t *tenantQ, it *item) {
	defer pc.inflight.Done()
	res, ok := pc.ensureLoaded(ctx, it)
	if ok {
		res = pc.p.handle(ctx, it)
	}
	// An event handed back (a retry, or interrupted by shutdown) leaves the tenant fenced at it,
	// so that whoever receives it next runs it before the tenant's later events. The fence is
	// written before the event is handed back: a crash in between must not leave it unfenced.
	handBack := func(res result, now time.Time) {
		switch res.kind {
		case kindRetry:
			t.out[it.seq] = now.Add(res.delay + pc.grace())
		case kindRelease:
			t.out[it.seq] = now.Add(pc.grace())
		}
	}
	if res.kind == kindRetry || res.kind == kindRelease {
		pc.mu.Lock()
		handBack(res, time.Now())
		pc.mu.Unlock()
		pc.syncFence(it.key, 0)
	}
	planned := res.kind
	res = pc.p.settle(ctx, pc, it, res)
	<-pc.p.slots

	now := time.Now()
	pc.mu.Lock()
	t.running = nil
	pc.held--
	if res.kind != planned { // settle did otherwise: it keeps a dead letter it could not store
		delete(t.out, it.seq)
		handBack(res, now)
	}
	pc.markReady(t, now)
	pc.mu.Unlock()
	var settled uint64
	if res.kind == kindAck || res.kind == kindDead {
		settled = it.seq
	}
	pc.syncFence(it.key, settled)
}

// ensureLoaded reads a stubbed event's payload back before its turn. An event no longer in the
// stream is acknowledged (there is nothing left to handle); another failure hands it back for a
// retry, which keeps the tenant's later events waiting for it.
func (pc *PartitionConsumer) ensureLoaded(ctx context.Context, it *item) (result, bool) {
	it.mu.Lock()
	loaded := it.loaded
	it.mu.Unlock()
	if loaded {
		return result{}, true
	}
	err := pc.p.load(ctx, it)
	switch {
	case err == nil:
		return result{}, true
	case ctx.Err() != nil:
		return result{kind: kindRelease}, false // shutdown: not the event's fault
	case errors.Is(err, errGone):
		pc.log.Warn().Str("tenant", it.tenant.String()).Str("delivery", it.meta.Delivery).Uint64("seq", it.seq).
			Msg("event removed from the stream before its turn (nats.max_age, or deleted by hand); acknowledging it")
		return result{kind: kindAck}, false
	default:
		pc.log.Warn().Err(err).Str("tenant", it.tenant.String()).Str("delivery", it.meta.Delivery).Uint64("seq", it.seq).
			Msg("cannot read the event's payload back; retrying it")
		return result{kind: kindRetry, delay: pc.p.cfg.Retry.Initial, err: err}, false
	}
}

// syncFence makes tenant's fence match what this replica knows: the lowest event it handed back,
// or nothing. A fence at or below settled (an event this replica just finished) is removed.
func (pc *PartitionConsumer) syncFence(tenant string, settled uint64) {
	pc.fenceMu.Lock()
	defer pc.fenceMu.Unlock()
	pc.mu.Lock()
	var seq uint64
	var until time.Time
	if t := pc.tenants[tenant]; t != nil {
		seq, until = t.minOut()
	}
	pc.mu.Unlock()
	cur, has := pc.fences.get(tenant)
	var want fence
	switch {
	case seq != 0:
		want = fence{Seq: seq, Until: until, Owner: pc.p.id}
	case has && (settled != 0 && cur.Seq <= settled || cur.Owner == pc.p.id):
		// remove
	default:
		return
	}
	pc.writeFence(tenant, want)
}

// setFence writes tenant's fence (f.Seq 0: removes it).
func (pc *PartitionConsumer) setFence(tenant string, f fence) {
	pc.fenceMu.Lock()
	defer pc.fenceMu.Unlock()
	pc.writeFence(tenant, f)
}

// writeFence writes a fence; fenceMu held.
func (pc *PartitionConsumer) writeFence(tenant string, f fence) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pc.fences.set(ctx, tenant, f); err != nil {
		pc.log.Warn().Err(err).Str("tenant", tenant).Msg("cannot update the tenant's ordering fence; order across a failover may not hold for it")
	}
}

// release hands back every event held but not started, in stream order, so that the next
// pinned replica receives them first. Tenants with a running event get a fence at that event
// so that whoever receives their later events waits for it to settle.
func (pc *PartitionConsumer) release(reason string) {
	now := time.Now()
	// fenceMu before mu, held until the fences are written (the order syncFence takes them): a
	// handler that finishes meanwhile then removes its fence after it is written, instead of
	// finding none and leaving one behind for an event already settled.
	pc.fenceMu.Lock()
	pc.mu.Lock()
	var back []*item
	fenced := map[string]fence{}
	for key, t := range pc.tenants {
		back = append(back, t.queue...)
		pc.held -= len(t.queue)
		t.queue = nil
		if t.running != nil {
			f := fence{Seq: t.running.seq, Until: now.Add(pc.p.cfg.HandlerTimeout + pc.grace()), Owner: pc.p.id}
			if s, u := t.minOut(); s != 0 && s < f.Seq {
				f.Seq, f.Until = s, u
			}
			fenced[key] = f
		}
	}
	for _, t := range pc.ready {
		t.inReady = false
	}
	pc.ready = nil
	pc.mu.Unlock()
	for key, f := range fenced {
		pc.writeFence(key, f)
	}
	pc.fenceMu.Unlock()
	slices.SortFunc(back, func(a, b *item) int { return cmpSeq(a.seq, b.seq) })
	if len(back) > 0 {
		pc.log.Info().Int("events", len(back)).Str("reason", reason).Msg("handing back buffered events")
	}
	for _, it := range back {
		pc.p.settle(context.Background(), pc, it, result{kind: kindRelease})
	}
}

// drain is the second half of shutdown: hand back, wait, cancel, wait, unpin.
func (pc *PartitionConsumer) drain(hcancel context.CancelFunc) {
	pc.mu.Lock()
	pc.draining = true
	pc.mu.Unlock()
	pc.release("shutdown")
	done := make(chan struct{})
	go func() { pc.inflight.Wait(); close(done) }()
	t := time.NewTimer(pc.p.cfg.ShutdownTimeout)
	select {
	case <-done:
	case <-t.C:
		pc.log.Warn().Dur("shutdown_timeout", pc.p.cfg.ShutdownTimeout).Msg("handlers still running at processor.shutdown_timeout; cancelling them")
		hcancel()
		<-done
	}
	t.Stop()
	pc.unpin()
}

// unpin releases the partition's pin if this replica holds it, so that a survivor takes over at
// once instead of after PinnedTTL.
func (pc *PartitionConsumer) unpin() {
	pc.mu.Lock()
	pin, cons := pc.pinID, pc.cons
	pc.mu.Unlock()
	if pin == "" || cons == nil || pc.p.js.Conn().IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil {
		return
	}
	for _, g := range info.PriorityGroups {
		if g.Group == PriorityGroup && g.PinnedClientID == pin {
			s, err := pc.p.js.Stream(ctx, broker.StreamEvents)
			if err == nil {
				err = s.UnpinConsumer(ctx, pc.name, PriorityGroup)
			}
			if err != nil {
				pc.log.Warn().Err(err).Msg("cannot unpin the partition; another replica takes it after processor.pinned_ttl")
			}
			return
		}
	}
}

// keepAliveLoop keeps held events alive, gives up on events that never came back, lets expired
// fences go, and updates the gauges.
func (pc *PartitionConsumer) keepAliveLoop(ctx context.Context) {
	tick := time.NewTicker(pc.p.cfg.keepAlive())
	defer tick.Stop()
	lastInfo := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pc.keepAliveOnce(time.Now())
		if time.Since(lastInfo) >= 5*time.Second {
			lastInfo = time.Now()
			pc.updateLag(ctx)
		}
	}
}

func (pc *PartitionConsumer) keepAliveOnce(now time.Time) {
	pc.mu.Lock()
	var touch []*item
	for _, t := range pc.tenants {
		if t.running != nil {
			touch = append(touch, t.running)
		}
		touch = append(touch, t.queue...)
		for s, until := range t.out {
			if now.After(until) {
				pc.log.Warn().Str("tenant", t.key).Uint64("seq", s).Msg("a handed-back event did not come back; no longer holding the tenant's later events for it")
				delete(t.out, s)
			}
		}
		pc.markReady(t, now)
	}
	pc.p.m.buffered.WithLabelValues(pc.label).Set(float64(pc.held))
	pc.p.m.readAhead.Set(float64(pc.p.ra.used.Load()))
	draining := pc.draining
	pc.mu.Unlock()
	slices.SortFunc(touch, func(a, b *item) int { return cmpSeq(a.seq, b.seq) }) // re-deliveries come back in order
	for _, it := range touch {
		it.progress()
	}
	if draining {
		return // the fence mirror is no longer watched: another replica may own the fences now
	}
	for _, key := range pc.fences.expired(now) {
		pc.log.Warn().Str("tenant", key).Msg("ordering fence expired; its event did not come back")
		pc.setFence(key, fence{})
	}
}

func (pc *PartitionConsumer) updateLag(ctx context.Context) {
	pc.mu.Lock()
	cons := pc.cons
	pc.mu.Unlock()
	if cons == nil {
		return
	}
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := cons.Info(ictx)
	if err != nil {
		return
	}
	pc.p.m.pending.WithLabelValues(pc.label).Set(float64(info.NumPending))
	pc.p.m.ackPending.WithLabelValues(pc.label).Set(float64(info.NumAckPending))
}

// watchFences keeps the fence mirror current, restarting the watcher when it fails. loaded is
// called once, when the first watcher has loaded the initial values.
func (pc *PartitionConsumer) watchFences(ctx context.Context, loaded func()) {
	loaded = sync.OnceFunc(loaded)
	for ctx.Err() == nil {
		err := pc.fences.watch(ctx, loaded, func(tenant string) {
			now := time.Now()
			pc.mu.Lock()
			if t := pc.tenants[tenant]; t != nil {
				pc.markReady(t, now)
			}
			pc.mu.Unlock()
		})
		if ctx.Err() != nil {
			return
		}
		pc.log.Warn().Err(err).Msg("fence watcher stopped; restarting")
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
