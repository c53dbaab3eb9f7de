package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookd/hookd/internal/broker"
)

// PartitionStatus is one partition consumer as the server sees it.
type PartitionStatus struct {
	Partition    int       `json:"partition"`
	Consumer     string    `json:"consumer"`
	Exists       bool      `json:"exists"`                  // false until a processor has run against this NATS
	Pending      uint64    `json:"pending"`                 // stored, not yet delivered: the lag
	AckPending   int       `json:"ack_pending"`             // delivered, not yet acknowledged (buffered, running, waiting for a retry)
	Redelivered  int       `json:"redelivered"`             // delivered more than once and not yet acknowledged
	Waiting      int       `json:"waiting"`                 // pull requests waiting: roughly, replicas ready to take over
	PinnedClient string    `json:"pinned_client,omitempty"` // the pin id of the replica receiving the partition; "" if none
	PinnedSince  time.Time `json:"pinned_since,omitzero"`   //
	DeadLetters  uint64    `json:"dead_letters"`            // dead letters from this partition
}

// Status is the processor's state for `hookd status`.
type Status struct {
	Partitions  []PartitionStatus `json:"partitions"`
	DeadLetters uint64            `json:"dead_letters"` // in HOOKD_DLQ
}

// ReadStatus reads the partition consumers' state from the server. It needs no running
// processor: the CLI calls it with cfg (for the consumer names) and nats.partitions.
func ReadStatus(ctx context.Context, js jetstream.JetStream, cfg Config, partitions int) (Status, error) {
	cfg.Defaults()
	var st Status
	s, err := js.Stream(ctx, broker.StreamEvents)
	if err != nil {
		return st, fmt.Errorf("events stream %s: %w", broker.StreamEvents, err)
	}
	total, per, err := NewDLQ(js).Count(ctx)
	if err != nil {
		return st, err
	}
	st.DeadLetters = total
	for n := range partitions {
		ps := PartitionStatus{Partition: n, Consumer: consumerName(cfg, n), DeadLetters: per[n]}
		c, err := s.Consumer(ctx, ps.Consumer)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			st.Partitions = append(st.Partitions, ps)
			continue
		}
		if err != nil {
			return st, fmt.Errorf("consumer %s: %w", ps.Consumer, err)
		}
		info := c.CachedInfo()
		ps.Exists = true
		ps.Pending, ps.AckPending, ps.Redelivered, ps.Waiting = info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting
		for _, g := range info.PriorityGroups {
			if g.Group == PriorityGroup {
				ps.PinnedClient, ps.PinnedSince = g.PinnedClientID, g.PinnedTS
			}
		}
		st.Partitions = append(st.Partitions, ps)
	}
	return st, nil
}

// Status reads the status of this processor's partitions.
func (p *Processor) Status(ctx context.Context) (Status, error) {
	return ReadStatus(ctx, p.js, p.cfg, len(p.parts))
}
