package csta

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Lock order (NATS' locksordering.txt habit): Server.mu → conn.mu →
// Server.monMu. No lock is held while calling the Service or writing to a
// socket; enqueueing a frame never blocks.

// Server is the CSTA front end: the TCP listener, the WebSocket handler, the
// connections, their sessions and monitors.
type Server struct {
	cfg     atomic.Pointer[Config]
	svc     Service
	log     *slog.Logger
	metrics *metrics

	nextConnID atomic.Uint64

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	perKind  map[string]int // open connections per transport, for the per-listener limit
	status   SystemStatusValue
	shutdown bool

	monMu    sync.RWMutex
	monitors map[DeviceID]map[*monitor]struct{}

	wg sync.WaitGroup // every goroutine the server starts
}

// NewServer builds a front end. svc may be nil: requests that need it are
// then answered systemResourceAvailibility/resourceOutOfService.
func NewServer(cfg Config, svc Service, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		svc:      svc,
		log:      logger.With("component", "csta"),
		conns:    make(map[*conn]struct{}),
		perKind:  make(map[string]int),
		status:   SystemNormal,
		monitors: make(map[DeviceID]map[*monitor]struct{}),
		metrics:  newMetrics(),
	}
	s.store(cfg)
	return s
}

func (s *Server) config() *Config { return s.cfg.Load() }

// store makes cfg the configuration in force, with its device limits as sets.
func (s *Server) store(cfg Config) {
	c := cfg
	c.deviceSets = make(map[string]map[DeviceID]struct{}, len(cfg.DeviceLimits))
	for user, devices := range cfg.DeviceLimits {
		set := make(map[DeviceID]struct{}, len(devices))
		for _, d := range devices {
			set[d] = struct{}{}
		}
		c.deviceSets[user] = set
	}
	s.cfg.Store(&c)
}

// Start binds the TCP listener (with TLS when a certificate is configured)
// and serves it in the background.
func (s *Server) Start() error {
	cfg := s.config()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("csta: listen %s: %w", cfg.Listen, err)
	}
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("csta: tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	s.mu.Lock()
	if s.shutdown || s.ln != nil {
		s.mu.Unlock()
		ln.Close()
		return errors.New("csta: server already started or shut down")
	}
	s.ln = ln
	s.mu.Unlock()
	s.log.Info("CSTA listener started", "addr", ln.Addr().String(), "tls", cfg.TLSCertFile != "")
	s.wg.Add(1)
	go s.acceptLoop(ln)
	return nil
}

// Addr is the bound TCP address, nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	var backoff int
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failures (EMFILE and friends): back off, keep serving.
			backoff = min(max(backoff*2, 5), 1000)
			s.log.Warn("CSTA accept failed", "err", err, "retry_ms", backoff)
			sleepMillis(backoff)
			continue
		}
		backoff = 0
		s.serveConn(newTCPTransport(nc), "tcp")
	}
}

// ServeConn serves one already-accepted connection speaking the TCP framing
// (tests, or a listener owned elsewhere). It returns at once.
func (s *Server) ServeConn(nc net.Conn) { s.serveConn(newTCPTransport(nc), "tcp") }

// admit registers a connection unless the server is shutting down or the
// transport's limit is reached.
func (s *Server) admit(kind string) (ok bool, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false, "server shutting down"
	}
	if limit := s.config().MaxConnections; s.perKind[kind] >= limit {
		return false, fmt.Sprintf("connection limit %d reached", limit)
	}
	s.perKind[kind]++
	return true, ""
}

func (s *Server) serveConn(t transport, kind string) {
	if ok, reason := s.admit(kind); !ok {
		s.log.Warn("CSTA connection refused", "remote", t.remoteAddr(), "transport", kind, "reason", reason)
		t.close()
		return
	}
	s.startConn(t, kind)
}

func (s *Server) release(kind string) {
	s.mu.Lock()
	s.perKind[kind]--
	s.mu.Unlock()
}

// startConn runs an admitted connection.
func (s *Server) startConn(t transport, kind string) {
	c := newConn(s, t, kind)
	s.mu.Lock()
	if s.shutdown {
		s.perKind[kind]--
		s.mu.Unlock()
		t.close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()
	go c.writeLoop()
	go c.readLoop()
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.perKind[c.transportKind]--
	s.mu.Unlock()
}

// Reload applies a new configuration. Limits, authentication, device limits
// and session bounds change live: new values apply to new sessions and to
// the next request of every session. A session whose user the listener no
// longer has (removed, or the listener switched to mode password) is ended
// with ApplicationSessionTerminated; a user whose password changed keeps its
// sessions. Monitors on devices a user may no longer name are stopped. The
// listen address and TLS files cannot change, and are refused by key name.
func (s *Server) Reload(cfg Config) error {
	old := s.config()
	var refused []string
	if cfg.Listen != old.Listen {
		refused = append(refused, "csta.listen")
	}
	if cfg.TLSCertFile != old.TLSCertFile {
		refused = append(refused, "csta.tls.cert_file")
	}
	if cfg.TLSKeyFile != old.TLSKeyFile {
		refused = append(refused, "csta.tls.key_file")
	}
	if len(refused) > 0 {
		return fmt.Errorf("csta: cannot change while running: %v (restart to apply)", refused)
	}
	s.store(cfg)
	s.mu.Lock()
	conns := s.snapshotConns()
	s.mu.Unlock()
	next := s.config()
	for _, c := range conns {
		c.reauthorize(next)
	}
	return nil
}

// SetSystemStatus records the link status and, when it changed, tells every
// client that may hear it with a SystemStatus request (research/csta.md §1.7).
func (s *Server) SetSystemStatus(v SystemStatusValue) {
	s.mu.Lock()
	if s.status == v {
		s.mu.Unlock()
		return
	}
	s.status = v
	conns := s.snapshotConns()
	s.mu.Unlock()
	s.log.Info("CSTA system status changed", "status", v)
	for _, c := range conns {
		c.sendSystemStatus(v)
	}
}

func (s *Server) systemStatus() SystemStatusValue {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// snapshotConns is called with s.mu held.
func (s *Server) snapshotConns() []*conn {
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Publish delivers ev to every monitor on ev.Device whose filter lets it
// through. It never blocks: a connection whose queue is full is dropped.
func (s *Server) Publish(ev Event) {
	if !ev.Kind.valid() {
		s.log.Error("CSTA event of unknown kind dropped", "kind", int(ev.Kind))
		return
	}
	s.monMu.RLock()
	targets := make([]*monitor, 0, len(s.monitors[ev.Device]))
	for m := range s.monitors[ev.Device] {
		if !m.filter.Suppresses(ev.Kind) {
			targets = append(targets, m)
		}
	}
	s.monMu.RUnlock()
	for _, m := range targets {
		m.conn.sendEvent(&ev, m.crossRefID)
	}
}

func (s *Server) addMonitor(m *monitor) {
	s.monMu.Lock()
	set := s.monitors[m.device]
	if set == nil {
		set = make(map[*monitor]struct{})
		s.monitors[m.device] = set
	}
	set[m] = struct{}{}
	s.monMu.Unlock()
}

func (s *Server) removeMonitor(m *monitor) {
	s.monMu.Lock()
	if set := s.monitors[m.device]; set != nil {
		delete(set, m)
		if len(set) == 0 {
			delete(s.monitors, m.device)
		}
	}
	s.monMu.Unlock()
}

// Close stops at once, the way a crash looks to clients: the listener and
// every connection are closed without a word (no ApplicationSessionTerminated;
// answers still being worked on go nowhere). It does not wait for the
// requests in progress; Shutdown after it does.
func (s *Server) Close() error {
	conns, err := s.stopAccepting()
	for _, c := range conns {
		c.closeHard("server closed")
	}
	return err
}

// stopAccepting marks the server shut down, closes the listener and
// returns the connections open then.
func (s *Server) stopAccepting() ([]*conn, error) {
	s.mu.Lock()
	s.shutdown = true
	ln := s.ln
	conns := s.snapshotConns()
	s.mu.Unlock()
	if ln == nil {
		return conns, nil
	}
	return conns, ln.Close()
}

// Shutdown stops accepting, tells every session it is terminated
// (ApplicationSessionTerminated, serverTermReason "serverShutdown"), lets the
// writers flush, and closes everything. When ctx ends first, connections are
// closed hard.
func (s *Server) Shutdown(ctx context.Context) error {
	conns, _ := s.stopAccepting()
	for _, c := range conns {
		c.terminateSession(ApplicationSessionTerminated{ServerTermReason: sessionServerTermReasonShutdown}, "server shutdown")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.closeHard("shutdown deadline")
		}
		return fmt.Errorf("csta: shutdown: %w", ctx.Err())
	}
}

// ConnInfo describes one CTI connection for the admin API.
type ConnInfo struct {
	ConnID        uint64
	Remote        string
	Transport     string // tcp, tls or websocket
	Connected     time.Time
	SessionID     string // "" without an application session
	ApplicationID string
	User          string
	Monitors      int
}

// Connections lists the CTI connections, oldest first.
func (s *Server) Connections() []ConnInfo {
	s.mu.Lock()
	conns := s.snapshotConns()
	s.mu.Unlock()
	out := make([]ConnInfo, 0, len(conns))
	for _, c := range conns {
		ci := ConnInfo{ConnID: c.id, Remote: c.remote, Transport: c.transportKind, Connected: c.connected}
		c.mu.Lock()
		if c.session != nil {
			ci.SessionID, ci.ApplicationID, ci.User = c.session.id, c.session.applicationID, c.session.userName
		}
		ci.Monitors = len(c.monitors)
		c.mu.Unlock()
		out = append(out, ci)
	}
	slices.SortFunc(out, func(a, b ConnInfo) int { return cmp.Compare(a.ConnID, b.ConnID) })
	return out
}

// Stats is a point-in-time view for tests and the admin API.
type Stats struct {
	Connections int
	Monitors    int
}

func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	s.monMu.RLock()
	m := 0
	for _, set := range s.monitors {
		m += len(set)
	}
	s.monMu.RUnlock()
	return Stats{Connections: n, Monitors: m}
}

func sleepMillis(ms int) { time.Sleep(time.Duration(ms) * time.Millisecond) }
