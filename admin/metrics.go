package admin

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are admin's own: what the API and the stream serve. The rest of the
// connector registers its metrics in the same registry (WithMetrics).
type metrics struct {
	registry       *prometheus.Registry
	requests       *prometheus.CounterVec // by route pattern and status code
	streamClients  prometheus.Gauge
	streamDropped  prometheus.Counter // slow clients disconnected
	streamRejected prometheus.Counter // refused at the client limit
	unauthorized   prometheus.Counter // requests refused for a missing or wrong token
}

func newMetrics(registry *prometheus.Registry, logger *slog.Logger) *metrics {
	if registry == nil {
		registry = prometheus.NewRegistry()
	}
	m := &metrics{
		registry: registry,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_admin_requests_total",
			Help: "Admin API requests by route and HTTP status.",
		}, []string{"route", "code"}),
		streamClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "connector_admin_stream_clients",
			Help: "Clients connected to the admin event stream.",
		}),
		streamDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connector_admin_stream_slow_clients_dropped_total",
			Help: "Stream clients disconnected because their queue was full.",
		}),
		streamRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connector_admin_stream_clients_rejected_total",
			Help: "Stream connections refused at the client limit.",
		}),
		unauthorized: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connector_admin_unauthorized_total",
			Help: "Admin requests refused for a missing or wrong token.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.streamClients, m.streamDropped, m.streamRejected, m.unauthorized} {
		if err := registry.Register(c); err != nil {
			// A second Server on the same registry: its numbers go unreported
			// rather than failing the process.
			logger.Warn("admin: metric not registered", "error", err)
		}
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// counted counts requests by route (the pattern, never the raw path, so the
// label set stays bounded) and logs them at debug.
func (s *Server) counted(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		s.logger.Debug("admin: request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "remote", r.RemoteAddr)
	})
}
