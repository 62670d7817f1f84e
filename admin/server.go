// Package admin is the connector's admin HTTP server on admin.listen: health,
// readiness, Prometheus metrics, the JSON REST API under /api/v1/, the live
// event stream, and whatever other packages mount on it with Handle (the CSTA
// WebSocket at /csta).
//
// Access: everything admin itself serves except /healthz needs
// "Authorization: Bearer <token>" with the token given by WithToken (the
// stream also takes ?token=, since browsers cannot set headers on a
// WebSocket). Without a token configured those routes answer 401 to
// everyone: there is no open mode. Handlers added with Handle are served as
// they are and bring their own authentication (CSTA has its own).
//
// Routes (JSON unless said otherwise; errors are {"error", "parameter"}):
//
//	GET  /healthz                      "ok", no token, always
//	GET  /readyz                       "ok" or 503 with the reason (WithReadiness), text
//	GET  /metrics                      Prometheus text (WithMetrics)
//	GET  /api/v1/agents                []Agent
//	GET  /api/v1/agents/{id}           Agent, 404
//	POST /api/v1/agents/{id}/logout    LogoutResult; 404 unknown agent, 409 not logged on,
//	                                   502 BroadWorks refused, 504 timed out; body ≤ 1 KiB
//	GET  /api/v1/devices               []Device
//	GET  /api/v1/devices/{id}          Device, 404
//	GET  /api/v1/phones                []Phone
//	GET  /api/v1/sessions              []Session
//	GET  /api/v1/links                 []Link
//	GET  /api/v1/desks/free            []Device, the hot-desk picker (FreeDesks)
//	GET  /api/v1/journal/desk/{desk}?at=RFC3339              Association; 404 when the desk was free
//	GET  /api/v1/journal/agent/{id}?from=RFC3339&to=RFC3339  []Association
//	                                   (both 501 without WithJournal, 400 naming a bad parameter)
//	GET  /api/v1/cluster               []ClusterInstance: the instances sharing the store, with
//	                                   role, scope, admin URL, health, last heartbeat and the
//	                                   lease of their channel set (501 without WithCluster,
//	                                   503 when the store does not answer)
//	GET  /api/v1/history               HistoryView: the last hour in 10 s buckets (logins, state
//	                                   changes, XSI agent-state event delay), for the charts
//	GET  /api/v1/stream                WebSocket: a Snapshot, then every Event given to Publish
//	GET  /, /dashboard                 the live dashboard page (HTML; token also as ?token=)
//	GET  /debug/pprof/...              the Go runtime's profiles (net/http/pprof; pprof.go), header token only
//
// The /api/v1/ routes that read the Source answer 503 until one is given
// (WithSource). With
// WithTLS everything, Handle's routes included, is served over TLS.
package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/broadworks-connector/connector/internal/netguard"
)

// Limits bound what one HTTP client may hold. A hijacked WebSocket connection
// (the stream, /csta) is free of the timeouts: net/http clears its deadlines
// on Hijack, and the WebSocket handlers set their own.
type Limits struct {
	ReadHeaderTimeout time.Duration // request line and headers
	ReadTimeout       time.Duration // the whole request, body included
	WriteTimeout      time.Duration // from the end of the request headers to the end of the response
	IdleTimeout       time.Duration // keep-alive connection between requests
	MaxHeaderBytes    int
}

// DefaultLimits suit an operator-facing API on a trusted network.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger for HTTP server errors (default slog.Default()).
func WithLogger(logger *slog.Logger) Option {
	return func(s *Server) { s.logger = logger }
}

// WithLimits replaces DefaultLimits.
func WithLimits(limits Limits) Option {
	return func(s *Server) { s.limits = limits }
}

// Server is the admin HTTP server. Handlers may be added before or after
// Start.
type Server struct {
	listen       string
	logger       *slog.Logger
	limits       Limits
	mux          *http.ServeMux
	api          *http.ServeMux // the authenticated routes under /api/v1/
	source       Source
	journal      Journal
	cluster      Cluster
	history      *History // the last hour, for the charts
	token        []byte   // "" refuses everyone
	ready        func() (bool, string)
	metrics      *metrics
	stream       *stream
	origins      []string // extra Origins the stream accepts besides the same host
	tls          *tls.Config
	registry     *prometheus.Registry
	streamLimits StreamLimits
	budget       *netguard.Budget // the process's descriptor budget; nil none

	mu       sync.Mutex
	http     *http.Server
	listener net.Listener
	served   chan struct{} // closed when Serve returned
}

// New returns a server that will listen on listen (host:port) once started.
func New(listen string, opts ...Option) *Server {
	s := &Server{
		listen:       listen,
		logger:       slog.Default(),
		limits:       DefaultLimits(),
		mux:          http.NewServeMux(),
		api:          http.NewServeMux(),
		streamLimits: DefaultStreamLimits(),
	}
	for _, opt := range opts {
		opt(s)
	}
	if s.history == nil {
		s.history = NewHistory(time.Now)
	}
	s.metrics = newMetrics(s.registry, s.logger)
	s.stream = newStream(s)
	s.routes()
	return s
}

// Handle registers h for pattern (http.ServeMux patterns, e.g. "/csta" or
// "GET /agents/{id}"), served as it is: h brings its own authentication.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

// HandleWithToken registers h behind the admin token, taken from the
// Authorization header or, for WebSocket clients in browsers, ?token=.
func (s *Server) HandleWithToken(pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.requireTokenOrQuery(h))
}

// Start binds the listen address and serves in the background. A bind error
// is returned; a server starts at most once.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil {
		return errors.New("admin: already started")
	}
	raw, err := net.Listen("tcp", s.listen)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	// Guarded below TLS, so a connection past the budget is closed before
	// its handshake; at most half the process's descriptor budget, so a
	// flood of the admin port (or of CSTA over WebSocket) leaves the other
	// listeners theirs.
	var listener net.Listener = netguard.NewListener(raw, netguard.Config{Name: "admin", Log: s.logger, Budget: s.budget})
	if s.tls != nil {
		config := s.tls.Clone()
		if len(config.NextProtos) == 0 {
			// HTTP/1.1 only: WebSockets (RFC 6455) need it, and the API needs no more.
			config.NextProtos = []string{"http/1.1"}
		}
		listener = tls.NewListener(listener, config)
	}
	s.listener = listener
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: s.limits.ReadHeaderTimeout,
		ReadTimeout:       s.limits.ReadTimeout,
		WriteTimeout:      s.limits.WriteTimeout,
		IdleTimeout:       s.limits.IdleTimeout,
		MaxHeaderBytes:    s.limits.MaxHeaderBytes,
		ErrorLog:          httpErrorLog(s.logger),
	}
	s.served = make(chan struct{})
	go s.serve(s.http, listener, s.served)
	return nil
}

func (s *Server) serve(server *http.Server, listener net.Listener, served chan<- struct{}) {
	defer close(served)
	if err := server.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
		s.logger.Error("admin: server stopped", "error", err)
	}
}

// Addr is the bound address, nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return nil
	}
	return s.listener.Addr()
}

// Shutdown stops accepting, waits for active requests until ctx ends, then
// closes what remains. Hijacked connections (WebSockets) belong to whoever
// hijacked them and are not touched.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	server, served := s.http, s.served
	s.mu.Unlock()
	s.stream.close() // hijacked, so server.Shutdown does not see them
	if server == nil {
		return nil
	}
	err := server.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, server.Close())
	}
	<-served
	s.stream.wait()
	if err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}
