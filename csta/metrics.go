package csta

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the front end's own Prometheus collectors (CoreDNS keeps each
// plugin's metrics beside it); Collectors hands them to whoever serves
// /metrics.
type metrics struct {
	requests *prometheus.CounterVec   // by request and result
	latency  *prometheus.HistogramVec // request received → answer queued
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_cti_requests_total",
			Help: "CTI requests answered, by request and result (ok, or the CSTAErrorCode value).",
		}, []string{"request", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connector_cti_request_seconds",
			Help:    "Time from a CTI request to its answer being queued.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"request"}),
	}
}

// Collectors are the front end's metrics, for a Prometheus registry.
func (s *Server) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.requests, s.metrics.latency}
}

// observe counts one answered request.
func (m *metrics) observe(request string, answer Message, since time.Time) {
	result := "ok"
	if e, ok := answer.(*Error); ok {
		result = e.Value
		if result == "" {
			result = string(e.Class)
		}
	}
	m.requests.WithLabelValues(request, result).Inc()
	m.latency.WithLabelValues(request).Observe(time.Since(since).Seconds())
}
