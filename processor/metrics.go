package processor

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookd/hookd/internal/prom"
)

// Outcomes counted in hookd_processor_handled_total.
const (
	outcomeOK      = "ok"       // the handler succeeded
	outcomeSkipped = "skipped"  // already done in an earlier attempt (ledger)
	outcomeStale   = "stale"    // the handler returned ErrStale
	outcomeRetry   = "retry"    // failed, will be retried
	outcomeDead    = "dead"     // failed, dead-lettered
	outcomeBot     = "bot"      // filtered: sent by this app's bot
	outcomeCancel  = "shutdown" // interrupted by shutdown, handed back without counting
)

type metrics struct {
	handled     *prometheus.CounterVec   // event, handler, outcome
	latency     *prometheus.HistogramVec // event: Hookd-Received-At to settled
	run         *prometheus.HistogramVec // handler: one handler call
	retries     *prometheus.CounterVec   // event
	dead        *prometheus.CounterVec   // event
	panics      *prometheus.CounterVec   // handler
	pings       prometheus.Counter
	unhandled   *prometheus.CounterVec // event: no handler matched
	pending     *prometheus.GaugeVec   // partition: consumer num_pending
	ackPending  *prometheus.GaugeVec   // partition: consumer num_ack_pending
	buffered    *prometheus.GaugeVec   // partition: held in this replica's tenant queues
	pinLost     *prometheus.CounterVec // partition
	ackFailures prometheus.Counter
	owned       prometheus.Gauge // partitions assigned to this replica
	stubbed     prometheus.Counter
	loads       prometheus.Counter
	readAhead   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_processor_handled_total", Help: "Handler outcomes per event: ok, skipped (done before), stale, retry, dead, bot (filtered), shutdown.",
		}, []string{"event", "handler", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hookd_processor_event_latency_seconds", Help: "From receipt by ingest (Hookd-Received-At) to the event's final acknowledgement or dead letter.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 16),
		}, []string{"event"}),
		run: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hookd_processor_handler_seconds", Help: "Duration of one handler call.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 3, 14),
		}, []string{"handler"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_processor_retries_total", Help: "Events handed back for a retry after a failed attempt.",
		}, []string{"event"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_processor_dead_letters_total", Help: "Events moved to the dead letters.",
		}, []string{"event"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_processor_handler_panics_total", Help: "Handler panics recovered into errors.",
		}, []string{"handler"}),
		pings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookd_processor_pings_total", Help: "ping events received (recorded, never dispatched).",
		}),
		unhandled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_processor_unhandled_total", Help: "Events no handler is registered for (acknowledged).",
		}, []string{"event"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookd_processor_consumer_pending", Help: "Events stored in the partition and not yet delivered (consumer lag).",
		}, []string{"partition"}),
		ackPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookd_processor_consumer_ack_pending", Help: "Events of the partition delivered and not yet acknowledged.",
		}, []string{"partition"}),
		buffered: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookd_processor_buffered", Help: "Events held in this replica's tenant queues (waiting or running).",
		}, []string{"partition"}),
		pinLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_processor_pin_lost_total", Help: "Times this replica lost a partition's pin while running (NATS restart or a stall longer than pinned_ttl).",
		}, []string{"partition"}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookd_processor_partitions_owned", Help: "Partitions assigned to this replica by the balancer.",
		}),
		stubbed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookd_processor_read_ahead_stubbed_total", Help: "Events received while the read-ahead budget (processor.read_ahead_bytes) was full: held without their payload, which is read back from the stream in their turn.",
		}),
		loads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookd_processor_payload_loads_total", Help: "Payloads read back from the events stream for events held without them.",
		}),
		readAhead: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookd_processor_read_ahead_bytes", Help: "Payload bytes this replica holds for received events (limit: processor.read_ahead_bytes; events about to run may exceed it).",
		}),
		ackFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookd_processor_ack_failures_total", Help: "Acknowledgements that could not be sent (the event will be re-delivered).",
		}),
	}
	if err := prom.Register(reg, "processor.Processor", m.handled, m.latency, m.run, m.retries, m.dead, m.panics, m.pings, m.unhandled, m.pending, m.ackPending, m.buffered, m.pinLost, m.ackFailures, m.owned, m.stubbed, m.loads, m.readAhead); err != nil {
		return nil, err
	}
	return m, nil
}
