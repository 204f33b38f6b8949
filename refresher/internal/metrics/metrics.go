// Package metrics defines the refresher's Prometheus metrics: seconds until
// each registry's token expires, and counts of refreshes and failures.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the refresher's collectors, registered on one registry.
type Metrics struct {
	// RefreshFailures counts failed token fetches by registry and reason
	// (access_denied, timeout, error).
	RefreshFailures *prometheus.CounterVec
	// Refreshes counts successful token fetches by registry.
	Refreshes *prometheus.CounterVec
	// SyncFailures counts failed reconciles of a namespace's Secret and
	// ServiceAccounts (not labelled by namespace: clusters have thousands).
	SyncFailures prometheus.Counter
	// Leader is 1 while this replica holds the lease.
	Leader prometheus.Gauge
}

// New registers the metrics on reg. expiries reports when each held token
// expires; it is read at scrape time, so the gauge counts down between
// refreshes rather than showing the value of the last refresh.
func New(reg prometheus.Registerer, expiries func() map[string]time.Time, now func() time.Time) *Metrics {
	m := &Metrics{
		RefreshFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecr_pull_secrets_refresh_failures_total",
			Help: "Failed ECR token fetches, by registry and reason.",
		}, []string{"registry", "reason"}),
		Refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecr_pull_secrets_refreshes_total",
			Help: "Successful ECR token fetches, by registry.",
		}, []string{"registry"}),
		SyncFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ecr_pull_secrets_sync_failures_total",
			Help: "Failed reconciles of a namespace's pull Secret and ServiceAccounts.",
		}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ecr_pull_secrets_leader",
			Help: "1 while this replica holds the leader lease and writes Secrets.",
		}),
	}
	reg.MustRegister(m.RefreshFailures, m.Refreshes, m.SyncFailures, m.Leader, expiryCollector{expiries, now})
	return m
}

var expiryDesc = prometheus.NewDesc(
	"ecr_pull_secrets_token_expiry_seconds",
	"Seconds until the token held for the registry expires (negative once expired).",
	[]string{"registry"}, nil)

type expiryCollector struct {
	expiries func() map[string]time.Time
	now      func() time.Time
}

func (c expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c expiryCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for host, at := range c.expiries() {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, at.Sub(now).Seconds(), host)
	}
}
