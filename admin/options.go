package admin

import (
	"crypto/tls"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/broadworks-connector/connector/internal/netguard"
)

// WithSource gives the API and the stream what they show. Without one the
// /api/v1/ routes answer 503.
func WithSource(source Source) Option {
	return func(s *Server) { s.source = source }
}

// WithJournal answers the /api/v1/journal/ routes; without one they answer
// 501.
func WithJournal(journal Journal) Option {
	return func(s *Server) { s.journal = journal }
}

// WithHistory serves h on /api/v1/history (tests give one on their own
// clock); without it the server keeps its own on time.Now.
func WithHistory(h *History) Option {
	return func(s *Server) { s.history = h }
}

// WithToken sets the bearer token for everything admin serves except
// /healthz. An empty token (the default) means nobody is let in.
func WithToken(token string) Option {
	return func(s *Server) { s.token = []byte(token) }
}

// WithReadiness sets the /readyz check: ok, and when not ok why (e.g. "no XSI
// channel up"). It is called per request and must be quick. Without one,
// /readyz answers 200 once the server serves.
func WithReadiness(check func() (ok bool, reason string)) Option {
	return func(s *Server) { s.ready = check }
}

// WithMetrics serves registry on /metrics and registers admin's own metrics
// in it. Without one, /metrics serves a private registry holding only
// admin's metrics.
func WithMetrics(registry *prometheus.Registry) Option {
	return func(s *Server) { s.registry = registry }
}

// WithStreamLimits replaces DefaultStreamLimits.
func WithStreamLimits(limits StreamLimits) Option {
	return func(s *Server) { s.streamLimits = limits }
}

// WithAllowedOrigins lets browsers on these origins (e.g.
// "https://ops.example.com", compared exactly, case-insensitively) open the
// stream. Without it only pages served from the same host may.
func WithAllowedOrigins(origins ...string) Option {
	return func(s *Server) { s.origins = append(s.origins, origins...) }
}

// WithTLS serves HTTPS (and wss:// for the stream and /csta) with config,
// which must hold a certificate or a GetCertificate. Without it the server
// speaks plain HTTP.
func WithTLS(config *tls.Config) Option {
	return func(s *Server) { s.tls = config }
}

// WithBudget makes the admin listener's connections (the API, the stream
// and CSTA over WebSocket) take parts of the process's descriptor budget;
// the listener holds at most half of it (netguard).
func WithBudget(b *netguard.Budget) Option {
	return func(s *Server) { s.budget = b }
}
