// Package netguard keeps a network listener serving while peers try to
// exhaust it (issue 13, attack 1: 20,000 idle TCP connections took the
// process to its descriptor limit, and the SIP/TCP accept loop returned on
// EMFILE and never served again).
//
// A Listener wraps a net.Listener so that:
//
//   - Accept never returns a temporary error (EMFILE, ENFILE, ECONNABORTED,
//     ENOBUFS, ENOMEM, a timeout): it backs off, 5 ms doubling to 1 s, and
//     tries again, logging each failure (logguard rate limits the lines). It
//     returns net.ErrClosed after Close; any other error stops it, is kept
//     (Err) and returned, so a server can report a dead listener instead of
//     going silent.
//   - A connection over a limit of its Gate is closed as soon as it is
//     accepted: MaxConns open at once, MaxConnsPerSource open from one remote
//     IP, or the process-wide descriptor Budget spent. The OnRefuse hook
//     counts it (metrics); a rate-limited line names the source.
//   - A connection from which no byte has been read for IdleTimeout is
//     closed; its Read returns ErrIdle, which matches net.ErrClosed, so a
//     read loop ends as for a connection closed locally.
//
// A Gate holds the limits and counts; listeners that share one (SIP over TCP
// and over TLS) share its caps. Its limits can change while it serves.
//
// A Budget is a cap on connections open across all guarded listeners of the
// process, below the descriptor limit (ProcessBudget), so files, outbound
// connections and the other listeners keep descriptors however hard one
// listener is flooded; a Gate also holds at most half of it.
//
// PacketConn wraps a UDP socket so that a read error other than a closed
// socket is retried with the same backoff instead of ending the read loop.
package netguard

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Backoff after a temporary error: doubling from minBackoff up to maxBackoff
// (net/http's Server.Serve does the same).
var (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Reasons given to OnRefuse for a connection closed at once.
const (
	RefuseMaxConns  = "max_connections" // the Gate's MaxConns (or half the Budget) open
	RefusePerSource = "per_source"      // MaxConnsPerSource open from the remote IP
	RefuseBudget    = "budget"          // the process-wide Budget spent
)

// ErrIdle is what Read returns on a connection closed because nothing was
// read from it for the IdleTimeout. It matches net.ErrClosed.
var ErrIdle = fmt.Errorf("netguard: connection closed after its idle timeout: %w", net.ErrClosed)

// Limits of a Gate. Zero means no limit.
type Limits struct {
	MaxConns          int           // connections open at once on the Gate's listeners
	MaxConnsPerSource int           // of those, from one remote IP
	IdleTimeout       time.Duration // no byte read for this long closes a connection
}

// Gate counts the connections open on one or more listeners and refuses
// those over its Limits or its Budget. Safe for concurrent use.
type Gate struct {
	budget    *Budget
	maxConns  atomic.Int64
	perSource atomic.Int64
	idle      atomic.Int64 // time.Duration

	mu       sync.Mutex
	open     int
	bySource map[netip.Addr]int // entries only for sources with open connections: bounded by open
}

// NewGate makes a Gate; b may be nil (no process-wide budget).
func NewGate(l Limits, b *Budget) *Gate {
	g := &Gate{budget: b, bySource: make(map[netip.Addr]int)}
	g.SetLimits(l)
	return g
}

// SetLimits changes the limits while the Gate serves. Connections already
// open stay, even above a lowered cap; a new idle timeout applies from each
// connection's next read.
func (g *Gate) SetLimits(l Limits) {
	g.maxConns.Store(int64(max(l.MaxConns, 0)))
	g.perSource.Store(int64(max(l.MaxConnsPerSource, 0)))
	g.idle.Store(int64(max(l.IdleTimeout, 0)))
}

// Limits are the limits as set.
func (g *Gate) Limits() Limits {
	return Limits{
		MaxConns:          int(g.maxConns.Load()),
		MaxConnsPerSource: int(g.perSource.Load()),
		IdleTimeout:       time.Duration(g.idle.Load()),
	}
}

// MaxConns is the cap in force: MaxConns, clamped to half the Budget so that
// one flooded listener cannot take all of it; 0 when there is none.
func (g *Gate) MaxConns() int {
	n := int(g.maxConns.Load())
	if g.budget != nil {
		half := max(g.budget.Cap()/2, 1)
		if n == 0 || n > half {
			n = half
		}
	}
	return n
}

// Open is the number of connections open through the Gate.
func (g *Gate) Open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

// admit takes a slot for a connection from src, or says why not.
func (g *Gate) admit(src netip.Addr) string {
	maxConns, perSource := g.MaxConns(), int(g.perSource.Load())
	g.mu.Lock()
	defer g.mu.Unlock()
	if maxConns > 0 && g.open >= maxConns {
		return RefuseMaxConns
	}
	if perSource > 0 && g.bySource[src] >= perSource {
		return RefusePerSource
	}
	if !g.budget.Acquire() {
		return RefuseBudget
	}
	g.open++
	g.bySource[src]++
	return ""
}

func (g *Gate) release(src netip.Addr) {
	g.mu.Lock()
	g.open--
	if n := g.bySource[src] - 1; n > 0 {
		g.bySource[src] = n
	} else {
		delete(g.bySource, src)
	}
	g.mu.Unlock()
	g.budget.Release()
}

// Config configures a Listener.
type Config struct {
	// Name says which listener a log line or error is about ("sip/tcp").
	Name string
	// Log receives accept failures and refusals; nil discards them.
	Log *slog.Logger
	// Gate is shared with other listeners; when nil the Listener gets a Gate
	// of its own made from Limits and Budget.
	Gate   *Gate
	Limits Limits
	Budget *Budget
	// OnRefuse, when set, is called with a Refuse* reason for each
	// connection closed at once (for metrics). It must not block.
	OnRefuse func(reason string)
	// Now is the clock Failing reports in; nil is time.Now.
	Now func() time.Time
}

// Listener is a guarded net.Listener; see the package doc.
type Listener struct {
	inner    net.Listener
	name     string
	log      *slog.Logger
	gate     *Gate
	onRefuse func(string)

	done      chan struct{}
	closeOnce sync.Once
	closed    atomic.Bool

	now func() time.Time

	errMu        sync.Mutex
	err          error
	failingSince time.Time // start of the current run of temporary Accept errors
	failing      error     // the last of them; nil once an Accept succeeds
}

// NewListener guards ln.
func NewListener(ln net.Listener, c Config) *Listener {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Gate == nil {
		c.Gate = NewGate(c.Limits, c.Budget)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Listener{
		inner: ln, name: c.Name, log: c.Log, gate: c.Gate, onRefuse: c.OnRefuse,
		now: c.Now, done: make(chan struct{}),
	}
}

// Failing reports a run of temporary Accept errors still going on (the
// descriptors exhausted, say): since when, and the last error; err is nil
// while accepting works. A server's readiness may turn red when it lasts.
func (l *Listener) Failing() (since time.Time, err error) {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.failingSince, l.failing
}

// noteAccept records the outcome of one Accept for Failing.
func (l *Listener) noteAccept(err error) {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	switch {
	case err == nil:
		if l.failing != nil {
			l.log.Info("accepting again", "listener", l.name)
		}
		l.failing, l.failingSince = nil, time.Time{}
	case l.failing == nil:
		l.failing, l.failingSince = err, l.now()
	default:
		l.failing = err
	}
}

// Gate is the listener's Gate (to change its limits or read its count).
func (l *Listener) Gate() *Gate { return l.gate }

// Addr implements net.Listener.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Close implements net.Listener; connections already accepted stay open.
func (l *Listener) Close() error {
	l.closed.Store(true)
	l.closeOnce.Do(func() { close(l.done) })
	return l.inner.Close()
}

// Err is why the listener stopped accepting: nil while it serves and after
// Close.
func (l *Listener) Err() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.err
}

// Accept implements net.Listener; see the package doc.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if l.closed.Load() {
				return nil, net.ErrClosed
			}
			if !Temporary(err) {
				err = fmt.Errorf("%s: accept: %w", l.name, err)
				l.errMu.Lock()
				l.err = err
				l.errMu.Unlock()
				l.log.Error("listener stopped", "listener", l.name, "err", err)
				return nil, err
			}
			l.noteAccept(err)
			delay = nextBackoff(delay)
			l.log.Warn("accept failed; retrying", "listener", l.name, "errno", errnoName(err), "err", err, "retry_in", delay)
			if !l.sleep(delay) {
				return nil, net.ErrClosed
			}
			continue
		}
		if delay != 0 {
			l.noteAccept(nil)
		}
		delay = 0
		src := remoteIP(c)
		if reason := l.gate.admit(src); reason != "" {
			// Counted before the close, so a peer that sees it closed
			// finds it counted.
			if l.onRefuse != nil {
				l.onRefuse(reason)
			}
			l.log.Warn("connection refused", "listener", l.name, "source", src.String(), "reason", reason)
			c.Close()
			continue
		}
		return &Conn{Conn: c, gate: l.gate, src: src}, nil
	}
}

// sleep waits d or until Close; false after Close.
func (l *Listener) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return minBackoff
	}
	return min(2*d, maxBackoff)
}

func remoteIP(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{} // not IP: all such connections count as one source
}

// temporaryErrnos are accept and read failures that pass: descriptors or
// memory short for now, or a peer gone before its connection was taken.
var temporaryErrnos = []syscall.Errno{
	syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.ECONNRESET,
	syscall.ENOBUFS, syscall.ENOMEM, syscall.EAGAIN, syscall.EINTR, syscall.EPROTO,
}

// Temporary says whether err is one that goes away by itself (a full
// descriptor table, a timeout); a listener retries these.
func Temporary(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		for _, t := range temporaryErrnos {
			if errno == t {
				return true
			}
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func errnoName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name := errnoNames[errno]; name != "" {
			return name
		}
		return fmt.Sprintf("errno %d", uintptr(errno))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return ""
}

var errnoNames = map[syscall.Errno]string{
	syscall.EMFILE: "EMFILE", syscall.ENFILE: "ENFILE", syscall.ECONNABORTED: "ECONNABORTED",
	syscall.ECONNRESET: "ECONNRESET", syscall.ENOBUFS: "ENOBUFS", syscall.ENOMEM: "ENOMEM",
	syscall.EAGAIN: "EAGAIN", syscall.EINTR: "EINTR", syscall.EPROTO: "EPROTO",
}

// Conn is a connection accepted by a Listener: it holds a slot of its Gate
// (and Budget) until closed, and enforces the Gate's idle timeout on reads.
type Conn struct {
	net.Conn
	gate   *Gate
	src    netip.Addr
	closed atomic.Bool

	dlMu   sync.Mutex
	userDL time.Time // read deadline set by the user of the connection
	idleAt time.Time // the idle deadline of the Read in progress, zero if none
}

// Close releases the connection's slot (once) and closes it. Closing again
// returns nil: the idle timeout may have closed it already.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.gate.release(c.src)
	return c.Conn.Close()
}

// Read reads with a deadline of the idle timeout (or the user's read
// deadline, if earlier); when the idle timeout passes it closes the
// connection and returns ErrIdle.
func (c *Conn) Read(b []byte) (int, error) {
	idle := time.Duration(c.gate.idle.Load())
	c.dlMu.Lock()
	if idle == 0 && c.idleAt.IsZero() {
		// No idle timeout, none left armed: the caller's own deadline is
		// already on the connection.
		c.dlMu.Unlock()
		return c.Conn.Read(b)
	}
	armed := false
	var idleAt time.Time
	if idle > 0 {
		idleAt = time.Now().Add(idle)
		armed = c.userDL.IsZero() || c.userDL.After(idleAt)
	}
	dl := c.userDL
	if armed {
		dl = idleAt
		c.idleAt = idleAt
	} else {
		c.idleAt = time.Time{}
	}
	err := c.Conn.SetReadDeadline(dl) // also clears an idle deadline left by the last Read
	c.dlMu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if err != nil && armed && isTimeout(err) && !time.Now().Before(idleAt) {
		c.Close()
		return n, ErrIdle
	}
	return n, err
}

// SetReadDeadline implements net.Conn. A Read in progress keeps its idle
// deadline when that comes first.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.userDL = t
	if !c.idleAt.IsZero() && (t.IsZero() || t.After(c.idleAt)) {
		t = c.idleAt
	}
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// NetConn is the connection underneath (as tls.Conn's).
func (c *Conn) NetConn() net.Conn { return c.Conn }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
