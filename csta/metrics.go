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
	// dropped counts connections closed by a limit, by transport and
	// reason (max_connections, max_connections_per_source,
	// session_start_timeout).
	dropped *prometheus.CounterVec
	// loginFailures counts refused StartApplicationSession credentials, by
	// transport and reason (bad_credentials, no_credentials, throttled,
	// locked_out).
	loginFailures *prometheus.CounterVec
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
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_cti_connections_dropped_total",
			Help: "CTI connections closed by a limit: max_connections, max_connections_per_source (at accept), session_start_timeout.",
		}, []string{"transport", "reason"}),
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_cti_login_failures_total",
			Help: "StartApplicationSession attempts refused: bad_credentials, no_credentials, or throttled / locked_out without a password check.",
		}, []string{"transport", "reason"}),
	}
}

// Collectors are the front end's metrics, for a Prometheus registry.
func (s *Server) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.requests, s.metrics.latency, s.metrics.dropped, s.metrics.loginFailures, writeQueues{s}}
}

var (
	descQueued = prometheus.NewDesc("connector_cti_write_queue_frames",
		"CSTA frames queued for writing, summed over all CTI connections.", nil, nil)
	descQueuedMax = prometheus.NewDesc("connector_cti_write_queue_max_frames",
		"Frames queued on the fullest CTI connection; one that reaches csta.limits.write_queue_length is disconnected as not reading.", nil, nil)
)

// writeQueues reads the connections' write queues when scraped.
type writeQueues struct{ s *Server }

func (w writeQueues) Describe(ch chan<- *prometheus.Desc) {
	ch <- descQueued
	ch <- descQueuedMax
}

func (w writeQueues) Collect(ch chan<- prometheus.Metric) {
	w.s.mu.Lock()
	conns := w.s.snapshotConns()
	w.s.mu.Unlock()
	total, most := 0, 0
	for _, c := range conns {
		n := c.out.len()
		total += n
		most = max(most, n)
	}
	ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(total))
	ch <- prometheus.MustNewConstMetric(descQueuedMax, prometheus.GaugeValue, float64(most))
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
