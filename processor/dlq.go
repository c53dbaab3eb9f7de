package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
)

// DeadLetter is one event that failed for good, as stored in the HOOKD_DLQ stream.
type DeadLetter struct {
	ID          uint64      // sequence in HOOKD_DLQ: the id `hookd dlq` commands take
	Subject     string      // hookd.dlq.<partition>.<installation>.<repository>.<event>.<delivery>
	Time        time.Time   // when it was dead-lettered
	Meta        event.Meta  // the event's metadata (zero fields if its headers were undecodable)
	MetaErr     error       // why Meta could not be decoded, if so
	Handlers    []string    // handlers that failed
	Error       string      // last error
	Class       string      // permanent or unknown
	Attempts    int         // failed attempts
	FirstFailed time.Time   //
	LastFailed  time.Time   //
	StreamSeq   uint64      // sequence of the event in HOOKD_EVENTS
	Header      nats.Header // every header, original and Hookd-DLQ-*
	Body        []byte      // the payload as GitHub sent it
}

// ErrNotFound is returned for a dead-letter id that does not exist (never did, or was replayed
// or purged).
var ErrNotFound = errors.New("no such dead letter")

// DLQ reads and resolves dead letters: the API behind `hookd dlq list|show|replay|purge`.
type DLQ struct{ js jetstream.JetStream }

// NewDLQ returns the dead-letter API over js. The streams must exist (broker.Ensure).
func NewDLQ(js jetstream.JetStream) *DLQ { return &DLQ{js: js} }

func (d *DLQ) stream(ctx context.Context) (jetstream.Stream, error) {
	s, err := d.js.Stream(ctx, broker.StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream %s: %w (has hookd started against this NATS?)", broker.StreamDLQ, err)
	}
	return s, nil
}

// List returns every dead letter, oldest first, without its payload: Body is nil (Get has it).
func (d *DLQ) List(ctx context.Context) ([]DeadLetter, error) {
	s, err := d.stream(ctx)
	if err != nil {
		return nil, err
	}
	// One ordered consumer with headers only: a request per batch rather than per dead letter,
	// and no payloads (up to 25 MiB each) read for a listing.
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{event.DLQPrefix + ".>"}, DeliverPolicy: jetstream.DeliverAllPolicy, HeadersOnly: true,
	})
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	left := info.NumPending // what there is now; later ones are not waited for
	var out []DeadLetter
	for left > 0 {
		batch, err := c.Fetch(int(min(left, 512)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return out, fmt.Errorf("read dead letters: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				return out, fmt.Errorf("read dead letters: %w", err)
			}
			h := msg.Headers()
			h.Del("Nats-Msg-Size") // added by headers-only delivery
			out = append(out, decodeDeadLetter(&jetstream.RawStreamMsg{
				Subject: msg.Subject(), Sequence: meta.Sequence.Stream, Header: h, Time: meta.Timestamp,
			}))
			left = meta.NumPending
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return out, fmt.Errorf("read dead letters: %w", err)
		}
		if n == 0 {
			return out, nil // removed meanwhile (replayed or purged by someone else)
		}
	}
	return out, nil
}

// Get returns one dead letter, or an error wrapping ErrNotFound.
func (d *DLQ) Get(ctx context.Context, id uint64) (DeadLetter, error) {
	s, err := d.stream(ctx)
	if err != nil {
		return DeadLetter{}, err
	}
	raw, err := s.GetMsg(ctx, id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w (list them with `hookd dlq list`)", id, ErrNotFound)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("read dead letter %d: %w", id, err)
	}
	return decodeDeadLetter(raw), nil
}

func decodeDeadLetter(raw *jetstream.RawStreamMsg) DeadLetter {
	h := raw.Header
	dl := DeadLetter{ID: raw.Sequence, Subject: raw.Subject, Time: raw.Time, Header: h, Body: raw.Data,
		Error: h.Get(HeaderDLQError), Class: h.Get(HeaderDLQClass)}
	dl.Meta, dl.MetaErr = event.MetaFromHeader(h)
	if v := h.Get(HeaderDLQHandler); v != "" {
		dl.Handlers = strings.Split(v, ",")
	}
	dl.Attempts, _ = strconv.Atoi(h.Get(HeaderDLQAttempts))
	dl.FirstFailed, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderDLQFirstFailed))
	dl.LastFailed, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderDLQLastFailed))
	dl.StreamSeq, _ = strconv.ParseUint(h.Get(HeaderDLQStreamSeq), 10, 64)
	return dl
}

// ReplayDeliveryToken is the delivery token (last subject token) of a replayed dead letter:
// "<delivery>_r<id>". The events stream stores one message per delivery subject, so a replay
// needs its own subject; the Hookd-Delivery header keeps the original delivery id, and with it
// the effect ledger: handlers that succeeded before are not run again. Replaying one dead letter
// twice is refused by the stream as a duplicate.
func ReplayDeliveryToken(delivery string, id uint64) string {
	return delivery + "_r" + strconv.FormatUint(id, 10)
}

// Replay puts dead letters back into processing, then removes them from the dead letters. The
// replayed event goes to the end of its tenant's queue (it is handled after events stored since;
// handlers that care use Event.Stale), with Hookd-Source "replay" (a reconcile event keeps
// "reconcile") and Hookd-Replay-Of. Handlers that failed run again with a fresh attempt count.
// It stops at the first failure, returning how many were replayed.
func (d *DLQ) Replay(ctx context.Context, ids ...uint64) (int, error) {
	s, err := d.stream(ctx)
	if err != nil {
		return 0, err
	}
	for i, id := range ids {
		dl, err := d.Get(ctx, id)
		if err != nil {
			return i, err
		}
		if err := d.replay(ctx, dl); err != nil {
			return i, err
		}
		if err := s.DeleteMsg(ctx, id); err != nil && !msgGone(err) {
			return i, fmt.Errorf("dead letter %d replayed but not removed (replaying it again is harmless): %w", id, err)
		}
	}
	return len(ids), nil
}

// ReplayAll replays every dead letter.
func (d *DLQ) ReplayAll(ctx context.Context) (int, error) {
	all, err := d.List(ctx)
	if err != nil {
		return 0, err
	}
	ids := make([]uint64, len(all))
	for i, dl := range all {
		ids[i] = dl.ID
	}
	return d.Replay(ctx, ids...)
}

func (d *DLQ) replay(ctx context.Context, dl DeadLetter) error {
	if dl.MetaErr != nil {
		return fmt.Errorf("dead letter %d cannot be replayed: its headers are undecodable (%v); inspect it with `hookd dlq show %d` and remove it with `hookd dlq delete %d`", dl.ID, dl.MetaErr, dl.ID, dl.ID)
	}
	m := dl.Meta
	token := ReplayDeliveryToken(m.Delivery, dl.ID)
	if !event.ValidDeliveryID(token) {
		return fmt.Errorf("dead letter %d: replay token %q is not a valid subject token", dl.ID, token)
	}
	h := nats.Header{}
	for k, v := range dl.Header {
		if !strings.HasPrefix(k, "Hookd-DLQ-") && !strings.HasPrefix(k, "Nats-") {
			h[k] = v
		}
	}
	// A replay is marked by HeaderReplayOf, and by its source, except a reconcile event's: it
	// stays a reconcile event, which handlers and rules recognise by its source (and let
	// through the bot filter, its sender being the app's bot).
	if h.Get(event.HeaderSource) != event.SourceReconcile {
		h.Set(event.HeaderSource, event.SourceReplay)
	}
	h.Set(HeaderReplayOf, strconv.FormatUint(dl.ID, 10))
	subj := event.InPrefix + "." + m.Tenant().Key() + "." + m.Event + "." + token
	_, err := broker.PublishOutcome(d.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Header: h, Data: dl.Body}, jetstream.WithMsgID(token)))
	if err != nil {
		return fmt.Errorf("replay dead letter %d to %s: %w", dl.ID, subj, err)
	}
	return nil
}

// Delete removes dead letters without replaying them.
func (d *DLQ) Delete(ctx context.Context, ids ...uint64) error {
	s, err := d.stream(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.DeleteMsg(ctx, id); err != nil {
			if msgGone(err) {
				return fmt.Errorf("dead letter %d: %w", id, ErrNotFound)
			}
			return fmt.Errorf("delete dead letter %d: %w", id, err)
		}
	}
	return nil
}

// msgGone reports whether err says the message is not in the stream. DeleteMsg reports a missing
// message as jetstream.ErrMsgDeleteUnsuccessful with the server's "no message found" in its text,
// not as jetstream.ErrMsgNotFound.
func msgGone(err error) bool {
	return errors.Is(err, jetstream.ErrMsgNotFound) ||
		errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) && strings.Contains(err.Error(), "no message found")
}

// Purge removes every dead letter.
func (d *DLQ) Purge(ctx context.Context) error {
	s, err := d.stream(ctx)
	if err != nil {
		return err
	}
	if err := s.Purge(ctx); err != nil {
		return fmt.Errorf("purge %s: %w", broker.StreamDLQ, err)
	}
	return nil
}

// Count returns how many dead letters there are, per partition (from their subjects) and in all.
func (d *DLQ) Count(ctx context.Context) (total uint64, perPartition map[int]uint64, _ error) {
	s, err := d.stream(ctx)
	if err != nil {
		return 0, nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(event.DLQPrefix+".>"))
	if err != nil {
		return 0, nil, fmt.Errorf("dead-letter stream info: %w", err)
	}
	perPartition = map[int]uint64{}
	for subj, n := range info.State.Subjects {
		rest, _ := strings.CutPrefix(subj, event.DLQPrefix+".")
		tok, _, _ := strings.Cut(rest, ".")
		if p, err := strconv.Atoi(tok); err == nil {
			perPartition[p] += n
		}
	}
	return info.State.Msgs, perPartition, nil
}
