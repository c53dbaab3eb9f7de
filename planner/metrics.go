package planner

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookd/hookd/internal/prom"
)

// metrics are labelled by phase and resource, never by task name or tenant, so that their
// cardinality does not grow with installations.
type metrics struct {
	runs      *prometheus.CounterVec // phase, resource, outcome (ok or the error class)
	retries   *prometheus.CounterVec // phase, resource, class
	preflight *prometheus.GaugeVec   // resource
	ready     prometheus.Gauge
	units     *prometheus.GaugeVec // resource
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_task_runs_total",
			Help: "Runs of preflights, interval passes and service starts, by phase, resource and outcome (ok, transient, permanent, unknown).",
		}, []string{"phase", "resource", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_task_retries_total",
			Help: "Retries scheduled after a failed run, by phase, resource and error class.",
		}, []string{"phase", "resource", "class"}),
		preflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookd_preflight_ok",
			Help: "1 when every preflight of the resource passed in its last run, 0 when one failed.",
		}, []string{"resource"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookd_scheduler_ready",
			Help: "1 once the preflights passed and the workers started.",
		}),
		units: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookd_worker_units",
			Help: "Worker units running, by resource.",
		}, []string{"resource"}),
	}
	if err := prom.Register(reg, "planner.Scheduler", m.runs, m.retries, m.preflight, m.ready, m.units); err != nil {
		return nil, err
	}
	return m, nil
}
