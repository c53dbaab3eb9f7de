package sweep

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookd/hookd/internal/prom"
)

type metrics struct {
	passes        *prometheus.CounterVec // outcome
	apiCalls      *prometheus.CounterVec // result: ok, not_modified, error
	drift         prometheus.Counter
	redeliveries  *prometheus.CounterVec // result
	rateRemaining *prometheus.GaugeVec   // installation
	refreshes     *prometheus.CounterVec // outcome
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_sweep_passes_total",
			Help: "Repository sweep passes by outcome: unchanged (304), clean, drift, not_due, leased (another replica), rate_limited, suspended, error.",
		}, []string{"outcome"}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_sweep_api_calls_total",
			Help: "GitHub API calls made by sweeps, by result: ok, not_modified (304, free), error.",
		}, []string{"result"}),
		drift: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookd_sweep_drift_total",
			Help: "Reconcile events stored for issues and pull requests changed without hookd seeing the change.",
		}),
		redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_sweep_redeliveries_total",
			Help: "Deliveries missing from the events stream, by result: requested, failed (the request), exhausted (max_redeliveries reached), unsubscribed (skipped).",
		}, []string{"result"}),
		rateRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hookd_github_rate_limit_remaining",
			Help: "Remaining primary rate limit per installation, as last seen in a response.",
		}, []string{"installation"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_sweep_installation_refreshes_total",
			Help: "Installation re-lists by outcome: unchanged, applied, error.",
		}, []string{"outcome"}),
	}
	if err := prom.Register(reg, "sweep.Service", m.passes, m.apiCalls, m.drift, m.redeliveries, m.rateRemaining, m.refreshes); err != nil {
		return nil, err
	}
	return m, nil
}
