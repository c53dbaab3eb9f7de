package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookd/hookd/internal/prom"
)

// metrics are ingest's Prometheus collectors.
type metrics struct {
	deliveries      *prometheus.CounterVec // event, outcome
	requestDuration *prometheus.HistogramVec
	publishDuration prometheus.Histogram
	bodyBytes       prometheus.Histogram
	inFlight        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookd_ingest_deliveries_total",
			Help: "Webhook requests answered, by event (known GitHub event names, else \"other\") and outcome.",
		}, []string{"event", "outcome"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookd_ingest_request_duration_seconds",
			Help:    "Time from a webhook request's arrival to its answer, by outcome.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		publishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookd_ingest_publish_duration_seconds",
			Help:    "Time from publishing a delivery to JetStream until its ack (or failure).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		bodyBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hookd_ingest_body_bytes",
			Help:    "Size of webhook request bodies read, in bytes.",
			Buckets: prometheus.ExponentialBuckets(1<<10, 4, 9), // 1 KiB .. 64 MiB
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hookd_ingest_requests_in_flight",
			Help: "Webhook requests being handled.",
		}),
	}
	if err := prom.Register(reg, "ingest.Server", m.deliveries, m.requestDuration, m.publishDuration, m.bodyBytes, m.inFlight); err != nil {
		return nil, err
	}
	return m, nil
}

// eventLabel keeps the event label bounded: one of GitHub's webhook event names (docs "Webhook
// events and payloads"), else "other".
func eventLabel(name string) string {
	switch name {
	case "branch_protection_configuration", "branch_protection_rule", "check_run", "check_suite",
		"code_scanning_alert", "commit_comment", "create", "custom_property", "custom_property_values",
		"delete", "dependabot_alert", "deploy_key", "deployment", "deployment_protection_rule",
		"deployment_review", "deployment_status", "discussion", "discussion_comment", "fork",
		"github_app_authorization", "gollum", "installation", "installation_repositories",
		"installation_target", "issue_comment", "issue_dependencies", "issues", "label",
		"marketplace_purchase", "member", "membership", "merge_group", "meta", "milestone", "org_block",
		"organization", "package", "page_build", "personal_access_token_request", "ping", "project",
		"project_card", "project_column", "projects_v2", "projects_v2_item", "projects_v2_status_update",
		"public", "pull_request", "pull_request_review", "pull_request_review_comment",
		"pull_request_review_thread", "push", "registry_package", "release", "repository",
		"repository_advisory", "repository_dispatch", "repository_import", "repository_ruleset",
		"repository_vulnerability_alert", "secret_scanning_alert", "secret_scanning_alert_location",
		"secret_scanning_scan", "security_advisory", "security_and_analysis", "sponsorship", "star",
		"status", "sub_issues", "team", "team_add", "watch", "workflow_dispatch", "workflow_job",
		"workflow_run":
		return name
	}
	return "other"
}
