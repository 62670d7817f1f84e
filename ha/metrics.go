package ha

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	role          *prometheus.GaugeVec
	takeovers     prometheus.Counter
	renewFailures prometheus.Counter
	token         prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		role: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "connector_ha_role",
			Help: "1 for this instance's role in its active/standby pair (standby, active, deposed, stopping), 0 for the others."}, []string{"role"}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "connector_ha_takeovers_total",
			Help: "Times this instance took the lease and became active."}),
		renewFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "connector_ha_lease_renew_failures_total",
			Help: "Lease renewals that failed for a reason other than a lost lease (the store unreachable or slow); retried until the deadline."}),
		token: prometheus.NewGauge(prometheus.GaugeOpts{Name: "connector_ha_lease_token",
			Help: "The fencing token of the lease this instance holds; 0 when it holds none."}),
	}
}

// Collectors are the Elector's metrics, for a Prometheus registry.
func (e *Elector) Collectors() []prometheus.Collector {
	return []prometheus.Collector{e.metrics.role, e.metrics.takeovers, e.metrics.renewFailures, e.metrics.token}
}
