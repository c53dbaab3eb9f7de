package processor

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookd/hookd/internal/broker"
)

// Read-ahead: a partition consumer receives up to MaxAckPending events before their turn, so
// that a quiet repository's event is received, and overtakes, while a busy repository of the
// same partition still has thousands waiting. Holding all of those payloads would cost
// MaxAckPending × payload size per partition (1.3 GB for a 30,000-event backlog at 8192). So an
// event keeps its payload only while the replica's payload budget (Config.ReadAheadBytes) allows;
// beyond it, only what ordering needs is kept (sequence, tenant, headers decoded into
// event.Meta, the reply subject to acknowledge it), a few hundred bytes, and the payload is read
// back from the stream by sequence (a direct get) when the event's turn comes.

// budget is the replica's payload budget, shared by its partitions.
type budget struct {
	limit int64
	used  atomic.Int64
}

// take reserves n bytes if they fit.
func (b *budget) take(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// force reserves n bytes even beyond the limit: an event about to run needs its payload.
func (b *budget) force(n int64) { b.used.Add(n) }

func (b *budget) give(n int64) { b.used.Add(-n) }

// msgCost is what a held payload counts against the budget: body, headers and a fixed
// allowance for the message's bookkeeping.
func msgCost(h nats.Header, data []byte) int64 {
	n := len(data) + 256
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 32
		}
	}
	return int64(n)
}

// Ack verbs on a delivered message's reply subject, as nats.go's jetstream.Msg sends them; the
// item keeps the reply subject rather than the jetstream.Msg so that dropping the payload frees it.
var (
	verbAck      = []byte("+ACK")
	verbNak      = []byte("-NAK")
	verbProgress = []byte("+WPI")
	verbTerm     = []byte("+TERM")
)

// acker acknowledges one delivery.
type acker struct {
	nc    *nats.Conn
	reply string
}

func (a acker) send(verb []byte) error {
	if a.reply == "" {
		return jetstream.ErrMsgNoReply
	}
	return a.nc.Publish(a.reply, verb)
}

func (a acker) ack() error        { return a.send(verbAck) }
func (a acker) nak() error        { return a.send(verbNak) }
func (a acker) term() error       { return a.send(verbTerm) }
func (a acker) inProgress() error { return a.send(verbProgress) }

func (a acker) nakWithDelay(d time.Duration) error {
	if d <= 0 {
		return a.nak()
	}
	return a.send(fmt.Appendf(nil, "%s {\"delay\": %d}", verbNak, d.Nanoseconds()))
}

// errGone: the event is no longer in the stream (expired by nats.max_age, or removed by hand).
var errGone = errors.New("the event is no longer in the events stream")

// load reads a stubbed event's payload and headers back from the stream, by sequence.
func (p *Processor) load(ctx context.Context, it *item) error {
	s, err := p.eventsStream(ctx)
	if err != nil {
		return err
	}
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := s.GetMsg(gctx, it.seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return errGone
	}
	if err != nil {
		return fmt.Errorf("read event %d back from the stream: %w", it.seq, err)
	}
	it.mu.Lock()
	it.hdr, it.data, it.loaded = m.Header, m.Data, true
	it.cost = msgCost(m.Header, m.Data)
	it.mu.Unlock()
	p.ra.force(it.cost)
	p.m.loads.Inc()
	return nil
}

// eventsStream is the events stream's handle, looked up once.
func (p *Processor) eventsStream(ctx context.Context) (jetstream.Stream, error) {
	p.kvMu.Lock()
	defer p.kvMu.Unlock()
	if p.stream != nil {
		return p.stream, nil
	}
	s, err := p.js.Stream(ctx, broker.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", broker.StreamEvents, err)
	}
	p.stream = s
	return s, nil
}

// drop releases an item's payload and its share of the budget. it.mu held.
func (p *Processor) drop(it *item) {
	if it.cost > 0 {
		p.ra.give(it.cost)
		it.cost = 0
	}
	it.hdr, it.data, it.loaded = nil, nil, false
}

// discard drops an item that will never be settled (a duplicate delivery's handle).
func (p *Processor) discard(it *item) {
	it.mu.Lock()
	defer it.mu.Unlock()
	p.drop(it)
}
