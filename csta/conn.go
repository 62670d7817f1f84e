package csta

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one CTI client connection: one read loop, one write loop with a
// bounded queue (NATS server's client.go habit), at most one ECMA-354
// session, and the monitors the client started.
type conn struct {
	srv           *Server
	id            uint64
	t             transport
	transportKind string
	remote        string
	source        string // sourceOf(remote): what per-source limits count
	connected     time.Time
	log           *slog.Logger

	out       writeQueue    // framed messages; bounded
	done      chan struct{} // closed when the connection is ending
	graceful  atomic.Bool   // writer flushes the queue before closing the socket
	closeOnce sync.Once
	ctx       context.Context // cancelled when the connection ends
	cancel    context.CancelFunc

	outstanding atomic.Int32 // Service requests not yet answered

	mu           sync.Mutex
	session      *session
	edition      Edition // for events and for requests without a known namespace
	negotiated   bool    // edition came from StartApplicationSession
	monitors     map[string]*monitor
	nextCrossRef uint64
	registerID   string // sysStatRegisterID after SystemRegister
	// sessionless is when the connection last had no session: accepted,
	// or its session stopped. csta.limits.session_start_timeout runs from it.
	sessionless time.Time
	// startingMonitors are MonitorStarts being checked by the Service, so
	// a pipelined burst cannot overshoot max_monitors_per_connection.
	startingMonitors int
}

type session struct {
	id            string
	applicationID string
	userName      string // as the client sent it, authenticated or not
	duration      time.Duration
	timer         *time.Timer

	// authUser is the listener's user the credentials matched; "" when the
	// listener's mode was none at StartApplicationSession.
	authUser string
}

type monitor struct {
	conn       *conn
	crossRefID string
	device     DeviceID
	filter     MonitorFilter
}

func newConn(s *Server, t transport, kind, source string) *conn {
	cfg := s.config()
	now := time.Now()
	c := &conn{
		srv:           s,
		id:            s.nextConnID.Add(1),
		t:             t,
		transportKind: kind,
		remote:        t.remoteAddr(),
		source:        source,
		connected:     now,
		sessionless:   now,
		out:           newWriteQueue(),
		done:          make(chan struct{}),
		edition:       cfg.DefaultEdition,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	// "source" first: logguard rate limits a line per (message, first
	// source attribute), and the address without the port is what one peer
	// keeps across its connections.
	c.log = s.log.With("conn", c.id, "source", source, "remote", c.remote, "transport", kind)
	return c
}

func (c *conn) auth() Auth { return *c.srv.config().auth(c.transportKind) }

// ---- closing ----

// closeCode is the status a WebSocket connection is closed with (RFC 6455
// §7.4.1); a TCP connection has no such thing and ignores it.
type closeCode int

const (
	closeNormal          closeCode = 1000
	closeGoingAway       closeCode = 1001 // server shutdown
	closeProtocolError   closeCode = 1002 // framing that cannot be trusted
	closeInvalidPayload  closeCode = 1007 // a text message that is not UTF-8 (§8.1)
	closePolicyViolation closeCode = 1008 // a limit or the authentication
	closeMessageTooBig   closeCode = 1009 // over csta.limits.max_frame_bytes
)

// closeGraceful ends the connection after the queued frames are written.
func (c *conn) closeGraceful(code closeCode, reason string) {
	c.graceful.Store(true)
	c.end(code, reason, false)
}

// closeHard ends the connection at once, dropping queued frames.
func (c *conn) closeHard(code closeCode, reason string) { c.end(code, reason, true) }

func (c *conn) end(code closeCode, reason string, hard bool) {
	c.closeOnce.Do(func() {
		c.log.Info("CSTA connection closing", "reason", reason)
		c.t.closing(code, reason)
		close(c.done)
		c.cancel()
		if hard {
			c.t.close()
		}
		if obs, ok := c.srv.svc.(ConnectionObserver); ok {
			// Off this goroutine: end may run with c.mu held (a slow
			// consumer found while sending), and requester takes it.
			c.srv.wg.Add(1)
			go func() {
				defer c.srv.wg.Done()
				c.srv.mu.Lock()
				shutdown := c.srv.shutdown
				c.srv.mu.Unlock()
				obs.ConnectionClosed(c.requester(), shutdown)
			}()
		}
	})
}

func (c *conn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// cleanup runs once the read loop has stopped.
func (c *conn) cleanup() {
	c.mu.Lock()
	if c.session != nil {
		c.session.timer.Stop()
		c.session = nil
	}
	c.mu.Unlock()
	c.dropMonitors()
	c.srv.forget(c)
}

// ---- writing ----

// enqueue queues one framed message. A full queue means the client stopped
// reading: it is disconnected rather than allowed to stall anyone else.
func (c *conn) enqueue(frame []byte) {
	if c.closed() {
		return
	}
	if limit := c.srv.config().WriteQueueLength; !c.out.push(frame, limit) {
		c.log.Warn("CSTA client not reading: write queue full, disconnecting", "queue", limit)
		c.closeHard(closePolicyViolation, "slow consumer")
	}
}

// send encodes and queues msg with the invoke ID.
func (c *conn) send(invokeID int, msg Message, ed Edition) {
	buf, err := AppendEncode(make([]byte, HeaderSize, 512), msg, ed)
	if err == nil {
		buf, err = finishFrame(buf, invokeID)
	}
	if err != nil {
		// Every request gets an answer: fall back to a plain error, once.
		c.log.Error("CSTA answer cannot be sent", "msg", msg.Name(), "invoke", invokeID, "err", err)
		fallback := ErrGeneric
		var tooLarge *FrameTooLargeError
		if errors.As(err, &tooLarge) {
			fallback = ErrResourceLimitExceeded
		}
		if msg != Message(fallback) {
			c.send(invokeID, fallback, ed)
		}
		return
	}
	c.enqueue(buf)
}

// finishFrame fills in the header reserved at the start of buf, which holds
// HeaderSize placeholder bytes followed by the XML document.
func finishFrame(buf []byte, invokeID int) ([]byte, error) {
	if len(buf) > MaxFrameSize {
		return nil, &FrameTooLargeError{InvokeID: invokeID, Length: len(buf), Limit: MaxFrameSize}
	}
	hdr, _ := AppendFrame(buf[:0], invokeID, nil)
	total := len(buf)
	hdr[2], hdr[3] = byte(total>>8), byte(total)
	return buf, nil
}

func (c *conn) writeLoop() {
	defer c.srv.wg.Done()
	defer c.t.close()
	for {
		select {
		case <-c.out.ready:
			// What is queued leaves maxBatch frames a flush: pipelined
			// answers together. Written from here, not through helpers:
			// the deepest write then fits the 2 KiB a goroutine starts
			// with, which an idle writer keeps (a stack grown to 4 KiB
			// never shrinks back, its select alone using too much of it).
			for {
				batch := c.out.take()
				if len(batch) == 0 {
					break
				}
				err := c.t.writeFrames(batch, time.Now().Add(c.srv.config().WriteTimeout))
				c.out.done(batch)
				if err != nil {
					c.writeFailed(err)
					return
				}
			}
		case <-c.done:
			c.drain()
			return
		}
	}
}

// drain writes what is still queued when the connection closes gracefully.
func (c *conn) drain() {
	if !c.graceful.Load() {
		return
	}
	for {
		batch := c.out.take()
		if len(batch) == 0 {
			return
		}
		err := c.t.writeFrames(batch, time.Now().Add(c.srv.config().WriteTimeout))
		c.out.done(batch)
		if err != nil {
			c.writeFailed(err)
			return
		}
	}
}

func (c *conn) writeFailed(err error) {
	c.log.Warn("CSTA write failed", "err", err)
	c.closeHard(closeNormal, "write failed")
}

// ---- reading ----

// errEOF is a clean end of stream on a transport that has no io.EOF of its own.
var errEOF = errors.New("csta: connection closed by the client")

func (c *conn) readLoop() {
	defer c.srv.wg.Done()
	defer c.cleanup()
	defer c.end(closeNormal, "read loop ended", true)
	if tt, ok := c.t.(*tcpTransport); ok {
		if err := tt.handshake(c.srv.config().HandshakeTimeout); err != nil {
			c.log.Warn("CSTA TLS handshake failed", "err", err)
			return
		}
	}
	c.log.Debug("CSTA connection open")
	for {
		cfg := c.srv.config()
		deadline, preSession := c.readDeadline(cfg)
		c.t.setReadDeadline(deadline)

		f, err := c.t.readFrame(cfg.MaxFrameBytes)
		if err != nil {
			if c.readFailed(err, cfg, preSession) {
				continue
			}
			return
		}
		c.handleFrame(f)
	}
}

// readFailed handles what readFrame returned instead of a frame: true when
// the connection goes on (a frame over the limit, answered), false when it
// is closing. Not in readLoop itself: an idle reader waits under readLoop's
// frame, kept small so that its stack shrinks back to 4 KiB (BENCHMARKS.md,
// issue 17).
func (c *conn) readFailed(err error, cfg *Config, preSession bool) bool {
	var tooLarge *FrameTooLargeError
	var ne net.Error
	switch {
	case errors.As(err, &tooLarge):
		c.log.Warn("CSTA frame too large, answered", "invoke", tooLarge.InvokeID, "bytes", tooLarge.Length, "limit", tooLarge.Limit)
		c.send(tooLarge.InvokeID, ErrResourceLimitExceeded, c.replyEdition(Decoded{}))
		return true
	case errors.Is(err, ErrBadHeader):
		c.log.Warn("CSTA framing error, closing", "err", err) // FrameReader's errors quote no more than the 8-byte header
		code := closeProtocolError
		var wce *wsCloseError
		if errors.As(err, &wce) {
			code = wce.code
		}
		// The reason is also a WebSocket Close frame's: no prefix to spend its 123 bytes on.
		c.closeGraceful(code, "framing error: "+strings.TrimPrefix(err.Error(), ErrBadHeader.Error()+": "))
	case c.closed():
	case errors.Is(err, io.EOF), errors.Is(err, errEOF):
		c.closeGraceful(closeNormal, "client closed the connection")
	case errors.As(err, &ne) && ne.Timeout() && preSession:
		c.srv.metrics.dropped.WithLabelValues(c.transportKind, dropSessionStartTimeout).Inc()
		c.log.Info("CSTA connection closed: no session started in time", "timeout", cfg.SessionStartTimeout)
		c.closeGraceful(closePolicyViolation, "session start timeout")
	case errors.As(err, &ne) && ne.Timeout():
		c.closeGraceful(closePolicyViolation, "idle timeout")
	default:
		c.closeGraceful(closeNormal, "read failed: "+err.Error())
	}
	return false
}

// readDeadline is the deadline of the next frame. With a session there is
// none (the session timer keeps the client in check). Without one, a silent
// client is closed after csta.limits.idle_timeout; and when the listener
// requires sessions, csta.limits.session_start_timeout after the connection
// was accepted or its session stopped (preSession) — a fixed point in time,
// so neither whole frames nor a byte at a time push it back.
func (c *conn) readDeadline(cfg *Config) (deadline time.Time, preSession bool) {
	c.mu.Lock()
	noSession, since := c.session == nil, c.sessionless
	c.mu.Unlock()
	if !noSession {
		return time.Time{}, false
	}
	deadline = time.Now().Add(cfg.IdleTimeout)
	if cfg.sessionsRequired(c.transportKind) {
		if start := since.Add(cfg.SessionStartTimeout); start.Before(deadline) {
			return start, true
		}
	}
	return deadline, false
}

// replyEdition picks the edition to answer in: the negotiated one, else the
// request's own namespace, else the connection's (research/csta.md §0.4).
func (c *conn) replyEdition(d Decoded) Edition {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.negotiated {
		return c.edition
	}
	if d.EditionKnown {
		c.edition = d.Edition // events follow the client's latest edition
		return d.Edition
	}
	return c.edition
}

func (c *conn) handleFrame(f Frame) {
	cfg := c.srv.config()
	d, err := Decode(f.XML, cfg.MaxXMLDepth)
	if err != nil {
		var de *DecodeError
		if !errors.As(err, &de) {
			de = &DecodeError{Answer: ErrGeneric, Reason: err.Error()}
		}
		c.log.Info("CSTA request refused", "invoke", f.InvokeID, "root", wire(de.Root), "reason", wire(de.Reason))
		c.send(f.InvokeID, de.Answer, c.replyEdition(Decoded{Edition: de.Edition, EditionKnown: de.EditionKnown}))
		return
	}
	ed := c.replyEdition(d)
	switch m := d.Message.(type) {
	case StartApplicationSession:
		c.startSession(f.InvokeID, m)
		return
	case StopApplicationSession:
		c.stopSession(f.InvokeID, m)
		return
	case ResetApplicationSessionTimer:
		c.resetSession(f.InvokeID, m)
		return
	case clientResponse:
		c.log.Debug("CSTA client response ignored", "invoke", f.InvokeID, "root", wire(m.root))
		return
	case SystemStatus:
		c.send(f.InvokeID, SystemStatusResponse{}, ed)
		return
	}
	if c.sessionRequired(cfg) {
		c.log.Info("CSTA request before a session, refused", "invoke", f.InvokeID, "root", d.Message.Name())
		c.send(f.InvokeID, ErrSessionRequired, ed)
		return
	}
	switch m := d.Message.(type) {
	case SystemRegister:
		c.send(f.InvokeID, SystemRegisterResponse{SysStatRegisterID: c.register()}, ed)
	case RequestSystemStatus:
		c.send(f.InvokeID, RequestSystemStatusResponse{SystemStatus: c.srv.systemStatus()}, ed)
	case MonitorStop:
		c.send(f.InvokeID, c.stopMonitor(m.MonitorCrossRefID), ed)
	default:
		c.dispatch(f.InvokeID, d.Message, ed)
	}
}

func (c *conn) sessionRequired(cfg *Config) bool {
	if !cfg.sessionsRequired(c.transportKind) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session == nil
}

func (c *conn) register() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.registerID == "" {
		c.registerID = strconv.FormatUint(c.id, 10)
	}
	return c.registerID
}

// ---- Service requests: asynchronous, answered exactly once ----

// pendingRequest guarantees one answer per invoke ID: whichever of the
// Service and the deadline finishes first answers; the other is dropped
// (sipgo's "the framework finishes every transaction"). The deadline asks
// the Service's OnTimeout vote first, holding mu: the Service's own answer
// waits for the vote, and a vote for "busy" is final.
type pendingRequest struct {
	c        *conn
	invokeID int
	ed       Edition
	request  string    // the request's root element, for the metrics
	received time.Time // when it was dispatched
	mu       sync.Mutex
	answered bool // under mu
	// queued runs the Service's AfterAnswer functions (answer.go): after
	// the answer is queued, or instead of it once the connection is gone.
	queued func()
}

// answer sends msg unless the request is answered already.
func (p *pendingRequest) answer(msg Message) bool {
	return p.answerIf(msg, nil)
}

// answerIf sends msg unless the request is answered already or vote (when
// given) says no.
func (p *pendingRequest) answerIf(msg Message, vote func() bool) bool {
	p.mu.Lock()
	if p.answered || (vote != nil && !vote()) {
		p.mu.Unlock()
		return false
	}
	p.answered = true
	p.mu.Unlock()
	p.c.srv.metrics.observe(p.request, msg, p.received)
	p.c.outstanding.Add(-1)
	p.c.send(p.invokeID, msg, p.ed) // queued, or dropped on a closed connection
	if p.queued != nil {
		p.queued()
	}
	return true
}

func (c *conn) dispatch(invokeID int, msg Message, ed Edition) {
	cfg := c.srv.config()
	if int(c.outstanding.Add(1)) > cfg.MaxOutstandingRequests {
		c.outstanding.Add(-1)
		c.log.Warn("CSTA outstanding request limit reached", "invoke", invokeID, "limit", cfg.MaxOutstandingRequests)
		c.send(invokeID, ErrOutstandingReqLimitExceeded, ed)
		return
	}
	p := &pendingRequest{c: c, invokeID: invokeID, ed: ed, request: msg.Name(), received: time.Now()}
	if dr, ok := msg.(deviceRequest); ok && !c.deviceAllowed(cfg, dr.subjectDevice()) {
		// Debug, not warn: a CTI application probing its devices would
		// flood the log; the refusals are counted in the request metrics.
		c.log.Debug("CSTA request refused: device not allowed for the user", "invoke", invokeID, "root", msg.Name(), "device", wire(string(dr.subjectDevice())), "user", c.authUser())
		p.answer(ErrPrivilegeViolationSpecifiedDevice)
		return
	}
	if c.srv.svc == nil {
		p.answer(ErrResourceOutOfService)
		return
	}
	ctx, queued := WithAnswer(c.ctx)
	p.queued = queued
	ctx, vote := withTimeoutVote(ctx)
	ctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(cfg.RequestTimeout, func() {
		cancel()
		// Unless answered, or the Service has settled on its own answer.
		if p.answerIf(ErrResourceBusy, vote) {
			c.log.Warn("CSTA request timed out", "invoke", invokeID, "root", msg.Name(), "timeout", cfg.RequestTimeout)
		}
	})
	who := c.requester()
	who.Devices = cfg.deviceLimit(cfg.auth(c.transportKind), c.authUser())
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		// queued runs on every path: whichever answer goes (this one or the
		// deadline's), and when the connection is gone and none can.
		defer queued()
		reply := c.call(ctx, who, msg)
		timer.Stop()
		cancel()
		p.answer(reply)
	}()
}

// authUser is the session's authenticated user, "" without one.
func (c *conn) authUser() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session == nil {
		return ""
	}
	return c.session.authUser
}

// deviceAllowed checks a device a request names against the configuration
// in force, so a reload applies from the session's next request on.
func (c *conn) deviceAllowed(cfg *Config, device DeviceID) bool {
	return cfg.deviceAllowed(cfg.auth(c.transportKind), c.authUser(), device)
}

// reauthorize applies a reloaded configuration to the open session: a user
// the listener no longer has loses the session, and monitors on devices the
// user may no longer name are stopped (the client is not told: ECMA-269's
// MonitorEnded is not among the events this front end sends).
func (c *conn) reauthorize(cfg *Config) {
	auth := cfg.auth(c.transportKind)
	c.mu.Lock()
	s := c.session
	if s == nil {
		c.mu.Unlock()
		return
	}
	user := s.authUser
	if auth.Mode == "password" && !auth.hasUser(user) {
		c.mu.Unlock()
		c.log.Info("CSTA session ended: its user is no longer accepted by the listener", "session", s.id, "user", s.userName)
		c.terminateSession(ApplicationSessionTerminated{ServerTermReason: sessionServerTermReasonUserRevoked}, closePolicyViolation, "user no longer accepted")
		return
	}
	var stopped []*monitor
	for id, m := range c.monitors {
		if !cfg.deviceAllowed(auth, user, m.device) {
			delete(c.monitors, id)
			stopped = append(stopped, m)
		}
	}
	c.mu.Unlock()
	for _, m := range stopped {
		c.srv.removeMonitor(m)
		c.log.Info("CSTA monitor stopped: device no longer allowed for the user", "device", wire(string(m.device)), "crossRefID", m.crossRefID, "user", user)
	}
}

func (c *conn) requester() Requester {
	r := Requester{ConnID: c.id, RemoteAddr: c.remote, Transport: c.transportKind}
	c.mu.Lock()
	if c.session != nil {
		r.ApplicationID, r.UserName = c.session.applicationID, c.session.userName
	}
	c.mu.Unlock()
	return r
}

// call runs one Service request and returns the answer to send.
func (c *conn) call(ctx context.Context, who Requester, msg Message) Message {
	svc := c.srv.svc
	var resp Message
	var err error
	switch m := msg.(type) {
	case MonitorStart:
		return c.startMonitor(ctx, who, m)
	case SetAgentState:
		var r *SetAgentStateResponse
		if r, err = svc.SetAgentState(ctx, who, &m); r != nil {
			resp = *r
		} else {
			resp = SetAgentStateResponse{}
		}
	case GetAgentState:
		var r *GetAgentStateResponse
		if r, err = svc.GetAgentState(ctx, who, &m); r != nil {
			resp = *r
		}
	case SetForwarding:
		err, resp = svc.SetForwarding(ctx, who, &m), SetForwardingResponse{}
	case GetForwarding:
		var r *GetForwardingResponse
		if r, err = svc.GetForwarding(ctx, who, &m); r != nil {
			resp = *r
		}
	case SetDoNotDisturb:
		err, resp = svc.SetDoNotDisturb(ctx, who, &m), SetDoNotDisturbResponse{}
	case GetDoNotDisturb:
		var r *GetDoNotDisturbResponse
		if r, err = svc.GetDoNotDisturb(ctx, who, &m); r != nil {
			resp = *r
		}
	default:
		return ErrServiceNotSupported
	}
	if err != nil {
		ce := asCSTAError(err)
		level := slog.LevelInfo
		if ce.Is(ErrPrivilegeViolationSpecifiedDevice) {
			// As for the front end's own device check: a prober must not
			// flood the log; the refusals are counted in the request metrics.
			level = slog.LevelDebug
		}
		c.log.Log(c.ctx, level, "CSTA request failed", "root", msg.Name(), "err", err, "answer", ce.Error())
		return ce
	}
	if resp == nil {
		c.log.Error("CSTA service returned neither answer nor error", "root", msg.Name())
		return ErrGeneric
	}
	return resp
}

// ---- monitors ----

// startMonitor reserves a slot under both caps before asking the Service,
// so concurrent MonitorStarts (pipelined on one connection, or from many)
// can never hold more than max_monitors_per_connection on a connection nor
// max_monitors in all. A connection is one session here (ECMA-354 allows
// one per connection), so the per-connection cap is the per-session cap.
func (c *conn) startMonitor(ctx context.Context, who Requester, m MonitorStart) Message {
	cfg := c.srv.config()
	c.mu.Lock()
	if len(c.monitors)+c.startingMonitors >= cfg.MaxMonitorsPerConn {
		c.mu.Unlock()
		c.log.Info("CSTA MonitorStart refused: connection's monitor limit reached", "limit", cfg.MaxMonitorsPerConn)
		return ErrObjectMonitorLimitExceeded
	}
	c.startingMonitors++
	c.mu.Unlock()
	created := false
	defer func() {
		if !created {
			c.mu.Lock()
			c.startingMonitors--
			c.mu.Unlock()
		}
	}()
	if !c.srv.reserveMonitor(cfg.MaxMonitors) {
		c.log.Warn("CSTA MonitorStart refused: global monitor limit reached", "limit", cfg.MaxMonitors)
		return ErrObjectMonitorLimitExceeded
	}
	if err := c.srv.svc.MonitorStart(ctx, who, &m); err != nil {
		c.srv.unreserveMonitor()
		ce := asCSTAError(err)
		c.log.Info("CSTA MonitorStart refused", "device", wire(string(m.Device)), "err", err)
		return ce
	}
	c.mu.Lock()
	if c.closed() {
		c.mu.Unlock()
		c.srv.unreserveMonitor()
		return ErrResourceOutOfService
	}
	created = true
	c.startingMonitors--
	c.nextCrossRef++
	mon := &monitor{conn: c, crossRefID: strconv.FormatUint(c.nextCrossRef, 10), device: m.Device, filter: m.Filter}
	if c.monitors == nil {
		c.monitors = make(map[string]*monitor)
	}
	c.monitors[mon.crossRefID] = mon
	// Indexed while c.mu is held, so cleanup cannot miss it (lock order conn.mu → monMu).
	c.srv.addMonitor(mon)
	c.mu.Unlock()
	c.log.Debug("CSTA monitor started", "device", wire(string(m.Device)), "crossRefID", mon.crossRefID)
	return MonitorStartResponse{MonitorCrossRefID: mon.crossRefID, ActualFilter: m.Filter, HasFilter: m.HasFilter, FilterInverted: m.FilterInverted}
}

func (c *conn) stopMonitor(id string) Message {
	c.mu.Lock()
	mon, ok := c.monitors[id]
	delete(c.monitors, id)
	c.mu.Unlock()
	if !ok {
		return ErrInvalidMonitorCrossRefID
	}
	c.srv.removeMonitor(mon)
	return MonitorStopResponse{}
}

func (c *conn) dropMonitors() {
	c.mu.Lock()
	mons := c.monitors
	c.monitors = nil
	c.mu.Unlock()
	for _, m := range mons {
		c.srv.removeMonitor(m)
	}
}

// ---- unsolicited messages ----

func (c *conn) eventEdition() Edition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.edition
}

// sendEvent queues the event for the monitor crossRefID, framed from the
// encodings the Publish shares among its monitors.
func (c *conn) sendEvent(f *eventFrames, crossRefID string) {
	frame, err := f.frame(c.eventEdition(), crossRefID)
	if err != nil {
		c.log.Error("CSTA event cannot be sent", "event", f.ev.Kind.String(), "err", err)
		return
	}
	c.enqueue(frame)
}

// sendSystemStatus tells the client about a link change, unless it has not
// yet opened a session that the configuration requires.
func (c *conn) sendSystemStatus(v SystemStatusValue) {
	if c.sessionRequired(c.srv.config()) {
		return
	}
	c.mu.Lock()
	reg := c.registerID
	c.mu.Unlock()
	c.send(EventInvokeID, SystemStatus{SysStatRegisterID: reg, SystemStatus: v}, c.eventEdition())
}
