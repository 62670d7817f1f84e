// Package cticlient is a small CSTA (ECMA-323) client speaking the
// connector's TCP framing: one connection, at most one ECMA-354 application
// session kept alive in the background, pipelined requests paired with their
// answers by invoke ID, and unsolicited messages (invoke ID 9999) delivered
// on a bounded channel. It is what `connector csta` uses, and it is meant to
// be reusable by tests and tools.
//
// Every request runs with a deadline: the context's, or the client's default
// timeout when the context has none. A CSTAErrorCode answer is returned as
// *Error ("class/value"); an ECMA-354 negative response as *SessionError.
package cticlient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"

	"github.com/broadworks-connector/connector/csta"
)

// Defaults.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultEventBuffer = 256
	maxInvokeID        = csta.EventInvokeID - 1 // 9998: request IDs run 1..9998
)

// ErrClosed is returned by calls on a closed client or after the connection ended.
var ErrClosed = errors.New("cticlient: connection closed")

// Error is a CSTAErrorCode answer. It prints "class/value" (e.g.
// "operation/invalidDeviceID"); errors.Is matches a *csta.Error or an *Error
// of the same class and value, so errors.Is(err, csta.ErrInvalidDeviceID) works.
type Error struct {
	Class string
	Value string // empty for "unspecified"
}

func (e *Error) Error() string {
	if e.Value == "" {
		return e.Class
	}
	return e.Class + "/" + e.Value
}

func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *Error:
		return t.Class == e.Class && t.Value == e.Value
	case *csta.Error:
		return string(t.Class) == e.Class && t.Value == e.Value
	}
	return false
}

// SessionError is an ECMA-354 negative response (Start/Stop/Reset).
type SessionError struct {
	Operation    string // StartApplicationSession, StopApplicationSession, ResetApplicationSessionTimer
	DefinedError string
	ApplError    string
}

func (e *SessionError) Error() string {
	reason := e.DefinedError
	if reason == "" {
		reason = e.ApplError
	}
	return e.Operation + " refused: " + reason
}

// UnexpectedAnswerError is an answer of the wrong kind.
type UnexpectedAnswerError struct {
	Want, Got string
}

func (e *UnexpectedAnswerError) Error() string {
	return fmt.Sprintf("cticlient: expected %s, got %s", e.Want, e.Got)
}

// Option configures a client.
type Option func(*Client)

// WithTimeout sets the deadline of calls whose context has none (default 10 s).
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithEventBuffer sets the capacity of the events channel (default 256).
// When it is full, further events are dropped and counted (DroppedEvents).
func WithEventBuffer(n int) Option {
	return func(c *Client) {
		if n > 0 {
			c.eventBuf = n
		}
	}
}

// WithSessionDuration sets the requestedSessionDuration of StartSession
// (0, the default, lets the server choose).
func WithSessionDuration(d time.Duration) Option {
	return func(c *Client) { c.sessionDuration = d }
}

// WithoutKeepAlive disables the automatic ResetApplicationSessionTimer.
func WithoutKeepAlive() Option {
	return func(c *Client) { c.noKeepAlive = true }
}

// Client is one CSTA connection. Its methods are safe for concurrent use.
type Client struct {
	nc              net.Conn
	fr              *csta.FrameReader
	timeout         time.Duration
	eventBuf        int
	sessionDuration time.Duration
	noKeepAlive     bool

	events  chan Event
	dropped atomic.Uint64
	resets  atomic.Uint64

	wmu sync.Mutex // serialises frame writes

	mu         sync.Mutex
	nextID     int
	pending    map[int]chan *etree.Element
	edition    csta.Edition
	sessionID  string
	keepStop   chan struct{} // closed to stop the keep-alive goroutine
	readErr    error
	closed     bool
	closeCalls sync.Once

	done chan struct{} // closed when the reader has stopped
	wg   sync.WaitGroup
}

// Dial connects to addr over TCP and starts the reader.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	probe := &Client{timeout: DefaultTimeout}
	for _, o := range opts {
		o(probe)
	}
	ctx, cancel := withDeadline(ctx, probe.timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cticlient: dial %s: %w", addr, err)
	}
	return New(nc, opts...), nil
}

// New runs a client over an established connection (for example one side of
// net.Pipe whose other side is given to csta.Server.ServeConn). The client
// owns nc from now on.
func New(nc net.Conn, opts ...Option) *Client {
	c := &Client{
		nc:       nc,
		fr:       csta.NewFrameReader(nc, csta.MaxFrameSize),
		timeout:  DefaultTimeout,
		eventBuf: DefaultEventBuffer,
		pending:  make(map[int]chan *etree.Element),
		edition:  csta.Edition3,
		done:     make(chan struct{}),
	}
	for _, o := range opts {
		o(c)
	}
	c.events = make(chan Event, c.eventBuf)
	c.wg.Add(1)
	go c.readLoop()
	return c
}

// Events delivers unsolicited messages (monitor events, ApplicationSessionTerminated,
// SystemStatus). It is closed when the connection ends.
func (c *Client) Events() <-chan Event { return c.events }

// DroppedEvents counts events dropped because the channel was full.
func (c *Client) DroppedEvents() uint64 { return c.dropped.Load() }

// KeepAlives counts successful ResetApplicationSessionTimer answers.
func (c *Client) KeepAlives() uint64 { return c.resets.Load() }

// Done is closed when the connection has ended (Close, or the server closed it).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended: nil while it is up, ErrClosed after Close.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// SessionID is the current application session, "" when there is none.
func (c *Client) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

// Close stops the keep-alive, closes the connection and waits for the
// client's goroutines. It does not stop the session politely; call
// StopSession first for that.
func (c *Client) Close() error {
	var err error
	c.closeCalls.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.stopKeepAliveLocked()
		c.mu.Unlock()
		err = c.nc.Close()
	})
	c.wg.Wait()
	return err
}

// ---- reader ----

func (c *Client) readLoop() {
	defer c.wg.Done()
	var err error
	for {
		var f csta.Frame
		f, err = c.fr.ReadFrame()
		if err != nil {
			var tooLarge *csta.FrameTooLargeError
			if errors.As(err, &tooLarge) {
				continue
			}
			break
		}
		root, perr := parseXML(f.XML)
		if perr != nil {
			continue // nothing sensible to pair or deliver
		}
		if f.InvokeID == csta.EventInvokeID {
			c.unsolicited(root, f.XML)
			continue
		}
		c.mu.Lock()
		ch, ok := c.pending[f.InvokeID]
		delete(c.pending, f.InvokeID)
		c.mu.Unlock()
		if ok {
			ch <- root // buffered, capacity 1
		}
	}
	c.mu.Lock()
	if c.closed {
		c.readErr = ErrClosed
	} else {
		c.readErr = fmt.Errorf("cticlient: connection lost: %w", err)
	}
	c.sessionID = ""
	c.stopKeepAliveLocked()
	c.mu.Unlock()
	close(c.done)
	close(c.events)
}

func (c *Client) unsolicited(root *etree.Element, raw []byte) {
	ev := parseEvent(root, raw)
	switch ev.Name {
	case "SystemStatus":
		// The connector's SystemStatus is a request: acknowledge it.
		c.writeFrame(csta.EventInvokeID, c.cstaDoc("SystemStatusResponse", nil), time.Now().Add(c.timeout))
	case "ApplicationSessionTerminated":
		c.mu.Lock()
		if c.sessionID == ev.SessionID || ev.SessionID == "" {
			c.sessionID = ""
			c.stopKeepAliveLocked()
		}
		c.mu.Unlock()
	}
	select {
	case c.events <- ev:
	default:
		c.dropped.Add(1)
	}
}

// ---- requests ----

func withDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// allocID reserves the next free invoke ID in 1..9998.
func (c *Client) allocID() (int, chan *etree.Element, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.readErr != nil {
		return 0, nil, ErrClosed
	}
	for range maxInvokeID {
		c.nextID++
		if c.nextID > maxInvokeID {
			c.nextID = 1
		}
		if _, busy := c.pending[c.nextID]; !busy {
			ch := make(chan *etree.Element, 1)
			c.pending[c.nextID] = ch
			return c.nextID, ch, nil
		}
	}
	return 0, nil, errors.New("cticlient: all 9998 invoke IDs are outstanding")
}

func (c *Client) forget(id int) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *Client) writeFrame(id int, doc []byte, deadline time.Time) error {
	frame, err := csta.AppendFrame(make([]byte, 0, csta.HeaderSize+len(doc)), id, doc)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(deadline)
	_, err = c.nc.Write(frame)
	return err
}

// Call sends one request document and returns the answer's root element,
// which may be a CSTAErrorCode (not turned into an error here).
func (c *Client) Call(ctx context.Context, doc []byte) (*etree.Element, error) {
	ctx, cancel := withDeadline(ctx, c.timeout)
	defer cancel()
	id, ch, err := c.allocID()
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	if err := c.writeFrame(id, doc, deadline); err != nil {
		c.forget(id)
		if c.Err() != nil {
			return nil, c.Err()
		}
		return nil, fmt.Errorf("cticlient: send: %w", err)
	}
	select {
	case root := <-ch:
		return root, nil
	case <-ctx.Done():
		c.forget(id)
		return nil, fmt.Errorf("cticlient: no answer to invoke ID %04d: %w", id, ctx.Err())
	case <-c.done:
		// The answer may have arrived just before the reader stopped.
		select {
		case root := <-ch:
			return root, nil
		default:
		}
		c.forget(id)
		return nil, c.Err()
	}
}

// expect runs Call and checks the answer's root name, turning CSTAErrorCode
// and ECMA-354 negative responses into errors.
func (c *Client) expect(ctx context.Context, doc []byte, want string) (*etree.Element, error) {
	root, err := c.Call(ctx, doc)
	if err != nil {
		return nil, err
	}
	switch {
	case root.Tag == want:
		return root, nil
	case root.Tag == "CSTAErrorCode":
		return nil, parseCSTAError(root)
	case len(root.Tag) > len("NegResponse") && root.Tag[len(root.Tag)-len("NegResponse"):] == "NegResponse":
		return nil, parseSessionError(root)
	}
	return nil, &UnexpectedAnswerError{Want: want, Got: root.Tag}
}

// ---- application session ----

// SessionInfo is the positive answer to StartApplicationSession.
type SessionInfo struct {
	SessionID       string
	ProtocolVersion string
	Duration        time.Duration // actualSessionDuration
}

// StartSession opens the ECMA-354 application session. user and password
// are sent in applicationSpecificInfo when user is not empty; edition
// selects the requested protocol version and the namespace of later
// requests (csta.EditionNone requests none). Unless WithoutKeepAlive was
// given, the session timer is reset every half of the granted duration.
func (c *Client) StartSession(ctx context.Context, applicationID, user, password string, edition csta.Edition) (SessionInfo, error) {
	if !edition.Valid() {
		return SessionInfo{}, fmt.Errorf("cticlient: edition %d is not supported", int(edition))
	}
	c.mu.Lock()
	c.edition = edition
	c.mu.Unlock()
	var b xmlBuilder
	b.root("StartApplicationSession", csta.NSAppSession)
	b.open("applicationInfo")
	b.leaf("applicationID", applicationID)
	if user != "" || password != "" {
		b.open("applicationSpecificInfo")
		b.leaf("user", user)
		b.leaf("password", password)
		b.close("applicationSpecificInfo")
	}
	b.close("applicationInfo")
	if edition != csta.EditionNone {
		b.open("requestedProtocolVersions")
		b.leaf("protocolVersion", edition.Namespace())
		b.close("requestedProtocolVersions")
	}
	if s := int(c.sessionDuration / time.Second); s > 0 {
		b.leaf("requestedSessionDuration", fmt.Sprint(s))
	}
	b.close("StartApplicationSession")
	root, err := c.expect(ctx, b.bytes(), "StartApplicationSessionPosResponse")
	if err != nil {
		return SessionInfo{}, err
	}
	info := SessionInfo{
		SessionID:       childText(root, "sessionID"),
		ProtocolVersion: childText(root, "actualProtocolVersion"),
		Duration:        time.Duration(atoi(childText(root, "actualSessionDuration"))) * time.Second,
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.readErr != nil {
		return info, ErrClosed
	}
	c.sessionID = info.SessionID
	c.stopKeepAliveLocked()
	if !c.noKeepAlive && info.Duration > 0 {
		stop := make(chan struct{})
		c.keepStop = stop
		c.wg.Add(1)
		go c.keepAlive(info.SessionID, info.Duration, stop)
	}
	return info, nil
}

func (c *Client) stopKeepAliveLocked() {
	if c.keepStop != nil {
		close(c.keepStop)
		c.keepStop = nil
	}
}

// keepAlive resets the session timer at half the granted duration.
func (c *Client) keepAlive(sessionID string, d time.Duration, stop chan struct{}) {
	defer c.wg.Done()
	// An outstanding reset ends with its answer, its deadline, or the
	// connection (Close closes it first).
	ctx := context.Background()
	period := d / 2
	t := time.NewTimer(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-c.done:
			return
		case <-t.C:
		}
		rctx, rcancel := context.WithTimeout(ctx, min(period, c.timeout))
		granted, err := c.ResetSessionTimer(rctx, sessionID, d)
		rcancel()
		if err == nil {
			c.resets.Add(1)
			if granted > 0 {
				d, period = granted, granted/2
			}
		}
		// On failure, try again at the next period; the server tells us
		// with ApplicationSessionTerminated if the session is gone.
		t.Reset(period)
	}
}

// ResetSessionTimer sends ResetApplicationSessionTimer and returns the
// granted duration. The keep-alive calls it; callers rarely need to.
func (c *Client) ResetSessionTimer(ctx context.Context, sessionID string, requested time.Duration) (time.Duration, error) {
	var b xmlBuilder
	b.root("ResetApplicationSessionTimer", csta.NSAppSession)
	b.leaf("sessionID", sessionID)
	if s := int(requested / time.Second); s > 0 {
		b.leaf("requestedSessionDuration", fmt.Sprint(s))
	}
	b.close("ResetApplicationSessionTimer")
	root, err := c.expect(ctx, b.bytes(), "ResetApplicationSessionTimerPosResponse")
	if err != nil {
		return 0, err
	}
	return time.Duration(atoi(childText(root, "actualSessionDuration"))) * time.Second, nil
}

// StopSession ends the application session (and with it, server side, its
// monitors). The keep-alive stops whatever the answer.
func (c *Client) StopSession(ctx context.Context) error {
	c.mu.Lock()
	id := c.sessionID
	c.sessionID = ""
	c.stopKeepAliveLocked()
	c.mu.Unlock()
	if id == "" {
		return errors.New("cticlient: no application session")
	}
	var b xmlBuilder
	b.root("StopApplicationSession", csta.NSAppSession)
	b.leaf("sessionID", id)
	b.open("sessionEndReason")
	b.leaf("definedEndReason", "normal")
	b.close("sessionEndReason")
	b.close("StopApplicationSession")
	_, err := c.expect(ctx, b.bytes(), "StopApplicationSessionPosResponse")
	return err
}

// ---- CSTA services ----

// cstaDoc builds a request in the session's edition namespace; body writes
// the children.
func (c *Client) cstaDoc(name string, body func(b *xmlBuilder)) []byte {
	c.mu.Lock()
	ed := c.edition
	c.mu.Unlock()
	var b xmlBuilder
	b.root(name, ed.Namespace())
	if body != nil {
		body(&b)
	}
	b.close(name)
	return b.bytes()
}

// MonitorStart starts a device monitor and returns its monitorCrossRefID.
func (c *Client) MonitorStart(ctx context.Context, device string) (string, error) {
	doc := c.cstaDoc("MonitorStart", func(b *xmlBuilder) {
		b.open("monitorObject")
		b.leaf("deviceObject", device)
		b.close("monitorObject")
		b.leaf("monitorType", "device")
	})
	root, err := c.expect(ctx, doc, "MonitorStartResponse")
	if err != nil {
		return "", err
	}
	return childText(root, "monitorCrossRefID"), nil
}

// MonitorStop ends a monitor.
func (c *Client) MonitorStop(ctx context.Context, crossRefID string) error {
	doc := c.cstaDoc("MonitorStop", func(b *xmlBuilder) { b.leaf("monitorCrossRefID", crossRefID) })
	_, err := c.expect(ctx, doc, "MonitorStopResponse")
	return err
}

// SetAgentState asks for an agent state change. reason, when not empty, is
// sent as BroadWorks' AgentNotReadyReasonValue private data. The result is
// the pendingAgentState, "" when the change took effect at once.
func (c *Client) SetAgentState(ctx context.Context, device string, state csta.ReqAgentState, agentID, reason string) (string, error) {
	doc := c.cstaDoc("SetAgentState", func(b *xmlBuilder) {
		b.leaf("device", device)
		b.leaf("requestedAgentState", string(state))
		b.opt("agentID", agentID)
		if reason != "" {
			b.raw(`<extensions><privateData><private><AgentNotReadyReasonValue xmlns="` + csta.NSBroadSoftPrivate + `">`)
			b.text(reason)
			b.raw(`</AgentNotReadyReasonValue></private></privateData></extensions>`)
		}
	})
	root, err := c.expect(ctx, doc, "SetAgentStateResponse")
	if err != nil {
		return "", err
	}
	return childText(root, "pendingAgentState"), nil
}

// GetAgentState asks for the agent state of a device.
func (c *Client) GetAgentState(ctx context.Context, device string) (*csta.GetAgentStateResponse, error) {
	doc := c.cstaDoc("GetAgentState", func(b *xmlBuilder) { b.leaf("device", device) })
	root, err := c.expect(ctx, doc, "GetAgentStateResponse")
	if err != nil {
		return nil, err
	}
	out := &csta.GetAgentStateResponse{ReasonCode: reasonOf(root)}
	if list := root.SelectElement("agentStateList"); list != nil {
		for _, e := range list.SelectElements("agentStateEntry") {
			entry := csta.AgentStateEntry{
				AgentID:       childText(e, "agentID"),
				LoggedOnState: childText(e, "loggedOnState") == "true" || childText(e, "loggedOnState") == "1",
			}
			if info := e.SelectElement("agentInfo"); info != nil {
				for _, it := range info.SelectElements("agentInfoItem") {
					entry.AgentInfo = append(entry.AgentInfo, csta.AgentInfoItem{
						ACDGroup:          csta.DeviceID(childText(it, "acdGroup")),
						AgentState:        csta.AgentState(childText(it, "agentState")),
						PendingAgentState: csta.AgentState(childText(it, "pendingAgentState")),
					})
				}
			}
			out.AgentStateList = append(out.AgentStateList, entry)
		}
	}
	return out, nil
}

// SetForwarding switches one forwarding type on or off. dn and rings are
// sent when set (rings > 0).
func (c *Client) SetForwarding(ctx context.Context, device string, typ csta.ForwardingType, on bool, dn string, rings int) error {
	doc := c.cstaDoc("SetForwarding", func(b *xmlBuilder) {
		b.leaf("device", device)
		b.leaf("forwardingType", string(typ))
		b.leaf("activateForward", fmt.Sprint(on))
		b.opt("forwardDN", dn)
		if rings > 0 {
			b.leaf("ringCount", fmt.Sprint(rings))
		}
	})
	_, err := c.expect(ctx, doc, "SetForwardingResponse")
	return err
}

// GetForwarding asks for the forwarding settings of a device.
func (c *Client) GetForwarding(ctx context.Context, device string) (*csta.GetForwardingResponse, error) {
	doc := c.cstaDoc("GetForwarding", func(b *xmlBuilder) { b.leaf("device", device) })
	root, err := c.expect(ctx, doc, "GetForwardingResponse")
	if err != nil {
		return nil, err
	}
	out := &csta.GetForwardingResponse{}
	if list := root.SelectElement("forwardingList"); list != nil {
		for _, it := range list.SelectElements("forwardListItem") {
			out.ForwardingList = append(out.ForwardingList, csta.ForwardListItem{
				ForwardingType: csta.ForwardingType(childText(it, "forwardingType")),
				ForwardStatus:  isTrue(childText(it, "forwardStatus")),
				ForwardDN:      csta.DeviceID(childText(it, "forwardDN")),
				RingCount:      atoi(childText(it, "ringCount")),
			})
		}
	}
	return out, nil
}

// SetDoNotDisturb switches Do Not Disturb on or off.
func (c *Client) SetDoNotDisturb(ctx context.Context, device string, on bool) error {
	doc := c.cstaDoc("SetDoNotDisturb", func(b *xmlBuilder) {
		b.leaf("device", device)
		b.leaf("doNotDisturbOn", fmt.Sprint(on))
	})
	_, err := c.expect(ctx, doc, "SetDoNotDisturbResponse")
	return err
}

// GetDoNotDisturb asks whether Do Not Disturb is on.
func (c *Client) GetDoNotDisturb(ctx context.Context, device string) (bool, error) {
	doc := c.cstaDoc("GetDoNotDisturb", func(b *xmlBuilder) { b.leaf("device", device) })
	root, err := c.expect(ctx, doc, "GetDoNotDisturbResponse")
	if err != nil {
		return false, err
	}
	return isTrue(childText(root, "doNotDisturbOn")), nil
}
