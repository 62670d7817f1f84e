// Package admin is the connector's admin HTTP server on admin.listen. For now
// it only carries what other packages mount on it (the CSTA WebSocket at
// /csta); the admin API, health and metrics come later.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits bound what one HTTP client may hold. There is no write timeout: it
// would cut long-lived responses (event streams); a hijacked WebSocket
// connection is free of all of these, net/http clears its deadlines.
type Limits struct {
	ReadHeaderTimeout time.Duration // request line and headers
	ReadTimeout       time.Duration // the whole request, body included
	IdleTimeout       time.Duration // keep-alive connection between requests
	MaxHeaderBytes    int
}

// DefaultLimits suit an operator-facing API on a trusted network.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
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
	listen string
	logger *slog.Logger
	limits Limits
	mux    *http.ServeMux

	mu       sync.Mutex
	http     *http.Server
	listener net.Listener
	served   chan struct{} // closed when Serve returned
}

// New returns a server that will listen on listen (host:port) once started.
func New(listen string, opts ...Option) *Server {
	s := &Server{
		listen: listen,
		logger: slog.Default(),
		limits: DefaultLimits(),
		mux:    http.NewServeMux(),
	}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Handle registers h for pattern (http.ServeMux patterns, e.g. "/csta" or
// "GET /agents/{id}").
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

// Start binds the listen address and serves in the background. A bind error
// is returned; a server starts at most once.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.http != nil {
		return errors.New("admin: already started")
	}
	listener, err := net.Listen("tcp", s.listen)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	s.listener = listener
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: s.limits.ReadHeaderTimeout,
		ReadTimeout:       s.limits.ReadTimeout,
		IdleTimeout:       s.limits.IdleTimeout,
		MaxHeaderBytes:    s.limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
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
	if server == nil {
		return nil
	}
	err := server.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, server.Close())
	}
	<-served
	if err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}
