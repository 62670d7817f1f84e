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

	"github.com/broadworks-connector/connector/internal/netguard"
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

	// budget is the process's descriptor budget (netguard.ProcessBudget),
	// shared with the other listeners: a TCP connection takes a part of it,
	// and the TCP listener holds at most half of it. nil is no budget.
	budget *netguard.Budget

	mu        sync.Mutex
	ln        net.Listener
	conns     map[*conn]struct{}
	perKind   map[string]int // open connections per transport, for the per-listener limit
	perSource map[string]int // open connections per sourceOf address, both listeners; no zero entries
	status    SystemStatusValue
	shutdown  bool
	stopped   error              // why the accept loop returned without Close, nil while it serves
	guard     *netguard.Listener // under ln (and its TLS): Failing, for Health

	monMu    sync.RWMutex
	monitors map[DeviceID]map[*monitor]struct{}
	// monitorCount is every monitor indexed plus every MonitorStart that
	// reserved a slot and is still being checked, so a burst of concurrent
	// MonitorStarts cannot overshoot csta.limits.max_monitors.
	monitorCount atomic.Int64

	logins loginThrottle

	// now is the clock of the login throttle and the accept-failure
	// health; tests replace it. Socket deadlines use the real clock.
	now func() time.Time

	wg sync.WaitGroup // every goroutine the server starts
}

// NewServer builds a front end. svc may be nil: requests that need it are
// then answered systemResourceAvailibility/resourceOutOfService.
func NewServer(cfg Config, svc Service, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		svc:       svc,
		log:       logger.With("component", "csta"),
		conns:     make(map[*conn]struct{}),
		perKind:   make(map[string]int),
		perSource: make(map[string]int),
		status:    SystemNormal,
		monitors:  make(map[DeviceID]map[*monitor]struct{}),
		metrics:   newMetrics(),
		now:       time.Now,
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

// SetBudget makes TCP connections take a part of the process's descriptor
// budget; call it before Start.
func (s *Server) SetBudget(b *netguard.Budget) { s.budget = b }

// Start binds the TCP listener (with TLS when a certificate is configured)
// and serves it in the background.
func (s *Server) Start() error {
	cfg := s.config()
	var tlsConf *tls.Config
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("csta: tls: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("csta: listen %s: %w", cfg.Listen, err)
	}
	return s.serve(ln, tlsConf)
}

// serve makes raw the TCP listener and accepts on it in the background.
// Its accepts go through netguard, which rides out EMFILE and friends (and
// says how long they have been failing, for Health); the connection limits
// are admit's, shared with the WebSocket listener.
func (s *Server) serve(raw net.Listener, tlsConf *tls.Config) error {
	guard := netguard.NewListener(raw, netguard.Config{Name: "csta/tcp", Log: s.log, Now: s.now})
	var ln net.Listener = guard
	if tlsConf != nil {
		ln = tls.NewListener(guard, tlsConf)
	}
	s.mu.Lock()
	if s.shutdown || s.ln != nil {
		s.mu.Unlock()
		ln.Close()
		return errors.New("csta: server already started or shut down")
	}
	s.ln, s.guard = ln, guard
	s.mu.Unlock()
	s.log.Info("CSTA listener started", "addr", ln.Addr().String(), "tls", tlsConf != nil)
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

// acceptFailingUnhealthy is how long Accept must keep failing (EMFILE and
// friends) before Health reports it: one failure is a blip, a second of them
// means clients are not being served.
const acceptFailingUnhealthy = time.Second

// acceptLoop serves the connections ln accepts. The guarded listener under
// it retries temporary errors itself, so an error here means ln is closed
// or broken for good.
func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.acceptStopped(err)
			return
		}
		s.serveConn(newTCPTransport(nc), "tcp")
	}
}

// acceptStopped records why the accept loop returned: by Close or Shutdown,
// nothing to say; otherwise (the listener closed under it) the front end no
// longer serves TCP, and Health says so.
func (s *Server) acceptStopped(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return
	}
	s.stopped = fmt.Errorf("csta: TCP listener stopped: %w", err)
	s.log.Error("CSTA listener stopped accepting connections", "err", err)
}

// Health is nil while the TCP listener serves; otherwise why not: not
// started, shut down, stopped for another reason, or Accept failing for
// more than a second (descriptors exhausted). /readyz reports it.
func (s *Server) Health() error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped != nil:
		return s.stopped
	case s.shutdown:
		return errors.New("csta: shut down")
	case s.ln == nil:
		return errors.New("csta: TCP listener not started")
	}
	if since, err := s.guard.Failing(); err != nil && now.Sub(since) >= acceptFailingUnhealthy {
		return fmt.Errorf("csta: accepting TCP connections has failed since %s: %w", since.Format(time.RFC3339), err)
	}
	return nil
}

// ServeConn serves one already-accepted connection speaking the TCP framing
// (tests, or a listener owned elsewhere). It returns at once.
func (s *Server) ServeConn(nc net.Conn) { s.serveConn(newTCPTransport(nc), "tcp") }

// Reasons a connection is closed by a limit, as in the
// connector_cti_connections_dropped_total metric.
const (
	dropMaxConnections      = "max_connections"
	dropMaxPerSource        = "max_connections_per_source"
	dropSessionStartTimeout = "session_start_timeout"
	dropBudget              = "budget" // the process's descriptor budget spent (netguard.Budget)
)

// admit registers a connection from source unless the server is shutting
// down or the transport's or the source's limit is reached. reason is a
// dropped-metric reason, "" when shutting down.
func (s *Server) admit(kind, source string) (ok bool, reason string, limit int) {
	cfg := s.config()
	maxConns := cfg.MaxConnections
	budgeted := kind != "websocket" // WebSockets hold the admin listener's descriptors, counted there
	if budgeted && s.budget != nil {
		// One flooded listener holds at most half the process's descriptor
		// budget, so the others keep theirs (netguard.Gate does the same).
		maxConns = min(maxConns, max(s.budget.Cap()/2, 1))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.shutdown:
		return false, "", 0
	case s.perKind[kind] >= maxConns:
		return false, dropMaxConnections, maxConns
	case s.perSource[source] >= cfg.MaxConnectionsPerSource:
		return false, dropMaxPerSource, cfg.MaxConnectionsPerSource
	case budgeted && !s.budget.Acquire():
		return false, dropBudget, s.budget.Cap()
	}
	s.perKind[kind]++
	s.perSource[source]++
	return true, "", 0
}

// refused counts and logs a connection closed at once by admit. The line
// names the source, so logguard keeps one flooding address to a few lines.
func (s *Server) refused(kind, remote, source, reason string, limit int) {
	if reason == "" {
		return // shutting down
	}
	s.log.Warn("CSTA connection refused", "source", source, "remote", remote, "transport", kind, "reason", reason, "limit", limit)
	s.metrics.dropped.WithLabelValues(kind, reason).Inc()
}

func (s *Server) serveConn(t transport, kind string) {
	remote := t.remoteAddr()
	source := sourceOf(remote)
	if ok, reason, limit := s.admit(kind, source); !ok {
		t.close()
		s.refused(kind, remote, source, reason, limit)
		return
	}
	s.startConn(t, kind, source)
}

// release undoes admit for a connection that never started.
func (s *Server) release(kind, source string) {
	s.mu.Lock()
	s.releaseLocked(kind, source)
	s.mu.Unlock()
}

func (s *Server) releaseLocked(kind, source string) {
	if kind != "websocket" {
		s.budget.Release()
	}
	s.perKind[kind]--
	if s.perSource[source]--; s.perSource[source] <= 0 {
		delete(s.perSource, source)
	}
}

// startConn runs a connection admitted for source.
func (s *Server) startConn(t transport, kind, source string) {
	c := newConn(s, t, kind, source)
	s.mu.Lock()
	if s.shutdown {
		s.releaseLocked(kind, source)
		s.mu.Unlock()
		t.closing(closeGoingAway, "server shutting down")
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
	s.releaseLocked(c.transportKind, c.source)
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

// Monitored says whether any monitor watches dev (the gateway keeps the
// BroadWorks users of monitored devices loaded).
func (s *Server) Monitored(dev DeviceID) bool {
	s.monMu.RLock()
	defer s.monMu.RUnlock()
	return len(s.monitors[dev]) > 0
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
	// Encoded once per edition, framed once per crossRefID and edition.
	frames := newEventFrames(&ev, len(targets))
	for _, m := range targets {
		m.conn.sendEvent(frames, m.crossRefID)
	}
}

// reserveMonitor takes one of the csta.limits.max_monitors slots for a
// MonitorStart about to be checked; false when none is left. The slot is
// given back by unreserveMonitor if the monitor is not created, else by
// removeMonitor when it ends.
func (s *Server) reserveMonitor(limit int) bool {
	if s.monitorCount.Add(1) > int64(limit) {
		s.monitorCount.Add(-1)
		return false
	}
	return true
}

func (s *Server) unreserveMonitor() { s.monitorCount.Add(-1) }

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
		if _, ok := set[m]; ok {
			delete(set, m)
			s.monitorCount.Add(-1) // its slot, taken by reserveMonitor
		}
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
		c.closeHard(closeGoingAway, "server closed")
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
		c.terminateSession(ApplicationSessionTerminated{ServerTermReason: sessionServerTermReasonShutdown}, closeGoingAway, "server shutdown")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.closeHard(closeGoingAway, "shutdown deadline")
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
