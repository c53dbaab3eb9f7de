package processor

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookd/hookd/internal/event"
)

// settle is the one place where an event's outcome becomes a JetStream ack verb:
//
//	handled, or nothing to do              → Ack
//	failed, the policy says retry          → NakWithDelay(delay); delay honours RetryAfter hints
//	failed for good (permanent, undecodable,
//	  or unclassified past max_attempts)   → publish a dead letter; after its ack, Term
//	not handled here (shutdown, pin lost)  → Nak, no attempt counted
//
// If the dead letter cannot be published, the event is kept (NakWithDelay) and tried again:
// nothing is terminated before its dead letter is stored. settle returns what it actually did.
func (p *Processor) settle(ctx context.Context, pc *PartitionConsumer, it *item, res result) result {
	if res.kind == kindDead {
		if err := p.deadLetter(ctx, it, res); err != nil {
			pc.log.Error().Err(err).Str("delivery", it.meta.Delivery).Msg("cannot publish the dead letter; keeping the event and trying again")
			res.kind, res.delay = kindRetry, p.cfg.Retry.Initial
		}
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.settled {
		return res
	}
	it.settled = true
	var err error
	switch res.kind {
	case kindAck:
		err = it.ack.ack()
	case kindRetry:
		p.m.retries.WithLabelValues(it.meta.Event).Inc()
		err = it.ack.nakWithDelay(res.delay)
	case kindDead:
		p.m.dead.WithLabelValues(it.meta.Event).Inc()
		err = it.ack.term()
		if err == nil {
			// A replay starts counting attempts afresh.
			if derr := p.effects.Delete(context.WithoutCancel(ctx), failureKey(it.meta.Delivery)); derr != nil {
				pc.log.Debug().Err(derr).Msg("cannot remove the failure record")
			}
		}
	case kindRelease:
		err = it.ack.nakWithDelay(res.delay)
	}
	p.drop(it)
	if err != nil {
		p.m.ackFailures.Inc()
		pc.log.Warn().Err(err).Str("delivery", it.meta.Delivery).Uint64("seq", it.seq).Msg("cannot acknowledge; the event will be re-delivered after processor.ack_wait")
	}
	if (res.kind == kindAck || res.kind == kindDead) && !it.meta.ReceivedAt.IsZero() {
		p.m.latency.WithLabelValues(it.meta.Event).Observe(time.Since(it.meta.ReceivedAt).Seconds())
	}
	return res
}

// Dead-letter headers, added to the original headers of the event.
const (
	HeaderDLQHandler     = "Hookd-DLQ-Handler"      // failing handlers, comma-separated
	HeaderDLQError       = "Hookd-DLQ-Error"        // last error, one line, at most 1000 bytes
	HeaderDLQClass       = "Hookd-DLQ-Class"        // permanent or unknown
	HeaderDLQAttempts    = "Hookd-DLQ-Attempts"     // failed attempts
	HeaderDLQFirstFailed = "Hookd-DLQ-First-Failed" // RFC 3339
	HeaderDLQLastFailed  = "Hookd-DLQ-Last-Failed"  // RFC 3339
	HeaderDLQStreamSeq   = "Hookd-DLQ-Stream-Seq"   // sequence in the events stream
	HeaderDLQSubject     = "Hookd-DLQ-Subject"      // subject in the events stream
	HeaderReplayOf       = "Hookd-Replay-Of"        // on a replayed event: the dead letter's id
)

// DLQSubject is the subject of a dead letter: hookd.dlq.<partition>.<installation>.<repository>.
// <event>.<delivery token>, the stored subject's tokens under the DLQ prefix.
func DLQSubject(s event.StoredSubject) string {
	return fmt.Sprintf("%s.%d.%s.%s.%s", event.DLQPrefix, s.Partition,
		event.Tenant{InstallationID: s.InstallationID, RepositoryID: s.RepositoryID}.Key(), s.Event, s.Delivery)
}

// deadLetter publishes the event to the dead letters and waits for the stream's ack. It is
// idempotent for one stored event (message id dlq-<stream seq>) within the DLQ stream's duplicate
// window.
func (p *Processor) deadLetter(ctx context.Context, it *item, res result) error {
	subj := it.subject
	if subj.Event == "" { // the subject itself was unparsable
		subj = event.StoredSubject{Partition: it.partition, Event: "_", Delivery: "seq" + strconv.FormatUint(it.seq, 10)}
	}
	h := nats.Header{}
	for k, v := range it.hdr {
		if !strings.HasPrefix(k, "Nats-") {
			h[k] = v
		}
	}
	errText := "unknown"
	if res.err != nil {
		errText = res.err.Error()
	}
	if res.failure.LastError != "" {
		errText = res.failure.LastError
	}
	h.Set(HeaderDLQHandler, strings.Join(res.handlers, ","))
	h.Set(HeaderDLQError, oneLine(errText, 1000))
	h.Set(HeaderDLQClass, res.class.String())
	h.Set(HeaderDLQAttempts, strconv.Itoa(res.failure.Attempts))
	h.Set(HeaderDLQFirstFailed, res.failure.FirstFailed.UTC().Format(time.RFC3339Nano))
	h.Set(HeaderDLQLastFailed, res.failure.LastFailed.UTC().Format(time.RFC3339Nano))
	h.Set(HeaderDLQStreamSeq, strconv.FormatUint(it.seq, 10))
	h.Set(HeaderDLQSubject, it.raw)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := p.js.PublishMsg(pctx, &nats.Msg{Subject: DLQSubject(subj), Header: h, Data: it.data},
		jetstream.WithMsgID("dlq-"+strconv.FormatUint(it.seq, 10)))
	if err != nil {
		return fmt.Errorf("publish dead letter to %s: %w", DLQSubject(subj), err)
	}
	return nil
}

// oneLine makes s a valid header value: no line breaks, at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n]
	}
	return s
}
