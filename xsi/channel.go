package xsi

import (
	"bytes"
	"container/list"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Xsi-Events paths (research/xsi.md §3.2). Only the streaming channel add
// uses the async prefix.
const (
	evAsyncChannelPath = "/com.broadsoft.async/com.broadsoft.xsi-events/v2.0/channel"
	evPath             = "/com.broadsoft.xsi-events/v2.0"
)

// Tunables of the channel manager.
const (
	// EventBuffer is the capacity of the Events() channel.
	EventBuffer = 256
	evDedupSize = 8192 // eventIDs remembered to drop redeliveries
	evAckQueue  = 256  // acknowledgements waiting per channel
	// evAckWorkers send acknowledgements concurrently: one sender queued
	// every event's ack behind the round trip of the one before (a tenth
	// of the connector's CPU in a login storm was spent waiting in it).
	evAckWorkers  = 4
	evMaxCtlBody  = 1 << 20
	evDialTimeout = 10 * time.Second
	evHdrTimeout  = 30 * time.Second
	evNeverExpire = 2147483647 // seconds; "never expires"
)

// LinkState is the health of one XSP's event channel.
type LinkState int

const (
	// LinkDown: no channel open on this XSP (connecting or backing off).
	LinkDown LinkState = iota
	// LinkDegraded: a channel is open but its last heartbeat,
	// acknowledgement or refresh failed transiently.
	LinkDegraded
	// LinkUp: a channel is open and healthy.
	LinkUp
)

func (s LinkState) String() string {
	switch s {
	case LinkUp:
		return "up"
	case LinkDegraded:
		return "degraded"
	}
	return "down"
}

// LinkStatus is the state of the event channel to one XSP.
type LinkStatus struct {
	Server    string // XSP base URL from Config.Servers
	State     LinkState
	Since     time.Time // when State last changed
	LastError error     // the last failure seen on this link, nil if none
	ChannelID string    // current channel, empty when down
}

// Errors that end a channel; the link then opens a new one.
var (
	ErrChannelTerminated = errors.New("xsi: channel terminated by the XSP")
	ErrWatchdog          = errors.New("xsi: no document on the event channel for 3 heartbeat intervals")
	errEvStopping        = errors.New("xsi: events stopping")
)

// ChannelTerminatedError carries the reason of a ChannelTerminatedEvent; it
// matches ErrChannelTerminated with errors.Is.
type ChannelTerminatedError struct{ Reason string }

func (e *ChannelTerminatedError) Error() string {
	return "xsi: channel terminated by the XSP: " + e.Reason
}
func (e *ChannelTerminatedError) Is(t error) bool { return t == ErrChannelTerminated }

// Events is the Xsi-Events channel set: one streaming channel per
// configured XSP, all in cfg.ChannelSetID with cfg.ApplicationID, plus the
// subscriptions for cfg.Targets × cfg.EventPackages.
//
// Delivery: every SubscriptionEvent read from any channel is delivered once
// on Events() (duplicates by eventID, e.g. redeliveries after a failover,
// are acknowledged again but dropped) and is acknowledged to the XSP only
// after it has been handed to that channel. When the consumer is slow and
// the buffer is full, the stream reader blocks: nothing is dropped, the
// TCP window closes and the XSP holds further events (heartbeats continue
// and the read watchdog is suspended meanwhile). A consumer stalled for
// long enough makes the XSP terminate the channel (NonResponsiveChannel);
// unacknowledged events are then redelivered on the next channel.
type Events struct {
	cfg     Config
	log     *slog.Logger
	out     chan Event
	changes chan struct{}

	// dial opens every connection (tests substitute an in-memory network).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// tlsConfig for https servers; nil means defaults.
	tlsConfig *tls.Config

	dedup   *evLRU
	subs    *evSubs
	links   []*evLink
	metrics *eventsMetrics

	mu       sync.Mutex
	started  bool
	stopped  bool
	stopping atomic.Bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// NewEvents checks cfg and builds the channel manager; nothing is sent
// before Start.
func NewEvents(cfg Config, logger *slog.Logger) (*Events, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("xsi: events: no servers configured")
	}
	if cfg.ChannelSetID == "" || cfg.ApplicationID == "" {
		return nil, errors.New("xsi: events: ChannelSetID and ApplicationID are required")
	}
	if cfg.HeartbeatInterval <= 0 || cfg.ReconnectMin <= 0 || cfg.ReconnectMax < cfg.ReconnectMin {
		return nil, errors.New("xsi: events: HeartbeatInterval, ReconnectMin must be positive and ReconnectMax >= ReconnectMin")
	}
	if cfg.ChannelExpires <= 0 || cfg.SubscriptionExpires <= 0 {
		return nil, errors.New("xsi: events: ChannelExpires and SubscriptionExpires must be positive")
	}
	check := func(what string, t Target) error {
		switch t.Kind {
		case KindUser, KindEnterprise, KindServiceProvider:
		case KindGroup:
			if t.ParentID == "" {
				return fmt.Errorf("xsi: events: group %s %q needs ParentID", what, t.ID)
			}
		default:
			return fmt.Errorf("xsi: events: %s %q: unknown kind %q", what, t.ID, t.Kind)
		}
		if t.ID == "" {
			return fmt.Errorf("xsi: events: %s with empty ID", what)
		}
		return nil
	}
	for _, t := range cfg.Targets {
		if err := check("target", t); err != nil {
			return nil, err
		}
	}
	for i, t := range cfg.Scopes {
		if err := check("scope", t); err != nil {
			return nil, err
		}
		if !t.isScope() {
			return nil, fmt.Errorf("xsi: events: scope %s: must be a group, enterprise or service provider", t)
		}
		for _, o := range cfg.Scopes[:i] {
			if sameScope(o, t) {
				return nil, fmt.Errorf("xsi: events: scope %s is listed twice", t)
			}
		}
	}
	if len(cfg.Scopes) > 0 && len(cfg.EventPackages) == 0 {
		return nil, errors.New("xsi: events: scopes need at least one event package")
	}
	if cfg.MaxWatchedUsers < 0 {
		return nil, errors.New("xsi: events: MaxWatchedUsers must not be negative")
	}
	cfg.Scopes = append([]Target(nil), cfg.Scopes...)
	cfg.EventPackages = append([]string(nil), cfg.EventPackages...)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.Servers = append([]string(nil), cfg.Servers...)
	e := &Events{
		cfg:     cfg,
		log:     logger.With("component", "xsi-events"),
		out:     make(chan Event, EventBuffer),
		changes: make(chan struct{}, 1),
		dedup:   newEvLRU(evDedupSize),
		metrics: newEventsMetrics(),
	}
	d := &net.Dialer{Timeout: evDialTimeout, KeepAlive: 30 * time.Second}
	e.dial = d.DialContext
	for _, s := range cfg.Servers {
		s = strings.TrimRight(s, "/")
		e.links = append(e.links, &evLink{e: e, server: s, status: LinkStatus{Server: s, State: LinkDown, Since: time.Now()}, count: e.metrics.forLink(s)})
	}
	e.subs = newEvSubs(e)
	return e, nil
}

// Start opens the channels and the subscriptions in the background and
// returns at once; ctx only bounds Start itself (the manager lives until
// Stop). Watch LinkState/LinkChanges for progress.
func (e *Events) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("xsi: events: already started")
	}
	e.started = true
	rctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	for _, l := range e.links {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			l.run(rctx)
		}()
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.subs.run(rctx)
	}()
	return nil
}

// Events is the stream of *SubscriptionEvent values and, for scopes,
// *ScopeResync markers (capacity EventBuffer). It is closed when Stop has
// finished.
func (e *Events) Events() <-chan Event { return e.out }

// emit hands a marker to the consumer, waiting for room like the events
// do; false when ctx ended first.
func (e *Events) emit(ctx context.Context, ev Event) bool {
	select {
	case e.out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// LinkChanges receives a value (coalesced) whenever a LinkStatus changes.
func (e *Events) LinkChanges() <-chan struct{} { return e.changes }

// LinkState reports every XSP's channel, in Config.Servers order.
func (e *Events) LinkState() []LinkStatus {
	out := make([]LinkStatus, len(e.links))
	for i, l := range e.links {
		l.mu.Lock()
		out[i] = l.status
		l.mu.Unlock()
	}
	return out
}

// Stop deletes the open channels (the XSP ends each stream with
// ChannelTerminatedEvent ExplicitDelete), stops every goroutine and closes
// Events(). Subscriptions are kept: they survive in the channel set and are
// adopted by the next Start. It returns ctx's error if ctx ends first (the
// goroutines then still finish on their own).
func (e *Events) Stop(ctx context.Context) error {
	e.mu.Lock()
	if !e.started || e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
	e.mu.Unlock()
	e.stopping.Store(true)

	var dw sync.WaitGroup
	for _, l := range e.links {
		ch := l.current()
		if ch == nil || ch.channelID() == "" {
			continue
		}
		dw.Add(1)
		go func() {
			defer dw.Done()
			if err := ch.deleteChannel(ctx); err != nil {
				e.log.Warn("xsi: delete channel on stop", "server", l.server, "err", err)
			}
		}()
	}
	dw.Wait()
	e.cancel()
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(e.out)
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("xsi: events stop: %w", ctx.Err())
	}
}

func (e *Events) notify() {
	select {
	case e.changes <- struct{}{}:
	default:
	}
}

// callTimeout is the deadline of one control request.
func (e *Events) callTimeout() time.Duration {
	if e.cfg.RequestTimeout > 0 {
		return e.cfg.RequestTimeout
	}
	return 10 * time.Second
}

// anyClient returns the control client of a channel that is open, for
// subscription requests (any XSP of the cluster will do for those).
func (e *Events) anyClient() *evClient {
	for _, l := range e.links {
		if ch := l.current(); ch != nil && ch.channelID() != "" {
			return ch.ctl
		}
	}
	return nil
}

// evBackoff is "full jitter" exponential backoff in [lo, min(hi, lo·2^(n+1))).
func evBackoff(lo, hi time.Duration, attempt int) time.Duration {
	upper := hi
	if attempt < 30 {
		if u := lo << (attempt + 1); u > 0 && u < hi {
			upper = u
		}
	}
	if upper <= lo {
		return lo
	}
	return lo + rand.N(upper-lo)
}

// evLink is one XSP's channel, re-created until Stop.
type evLink struct {
	e      *Events
	server string
	count  linkCounters

	mu     sync.Mutex
	status LinkStatus
	cur    *evChannel
}

func (l *evLink) current() *evChannel {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

func (l *evLink) setState(s LinkState, err error) {
	l.mu.Lock()
	changed := l.status.State != s
	if changed {
		l.status.State = s
		l.status.Since = time.Now()
	}
	if err != nil {
		changed = changed || l.status.LastError != err
		l.status.LastError = err
	}
	id := ""
	if l.cur != nil {
		id = l.cur.channelID()
	}
	if s == LinkDown {
		id = ""
	}
	changed = changed || l.status.ChannelID != id
	l.status.ChannelID = id
	l.mu.Unlock()
	if changed {
		l.e.notify()
		if s == LinkUp {
			l.e.subs.kickNow()
		}
	}
}

func (l *evLink) run(ctx context.Context) {
	e := l.e
	// Initial jitter: many connectors restarting together do not storm.
	if !evSleep(ctx, rand.N(e.cfg.ReconnectMin)) {
		return
	}
	attempt := 0
	for {
		began := time.Now()
		wasUp, err := l.session(ctx)
		if ctx.Err() != nil || e.stopping.Load() {
			l.setState(LinkDown, nil)
			return
		}
		l.setState(LinkDown, err)
		if wasUp && !errors.Is(err, ErrChannelTerminated) {
			// The stream broke (not a ChannelTerminatedEvent, after which
			// nothing was pending): events the XSP wrote on it that we
			// never read are gone and, if nothing follows on their
			// subscription, no sequence gap will ever reveal it. Refresh
			// every subscription for a fresh state snapshot
			// (research/xsi.md §3.2.6). A scope's refresh resends
			// nothing: its consumer is told to read the state again.
			e.subs.resync()
			for _, t := range e.subs.scopeTargets() {
				if !e.emit(ctx, &ScopeResync{Scope: t, Reason: "channel lost"}) {
					l.setState(LinkDown, nil)
					return
				}
			}
		}
		if wasUp && time.Since(began) >= e.cfg.ReconnectMax {
			attempt = 0
		}
		d := evBackoff(e.cfg.ReconnectMin, e.cfg.ReconnectMax, attempt)
		attempt++
		e.log.Warn("xsi: event channel lost, reconnecting", "server", l.server, "err", err, "backoff", d)
		if !evSleep(ctx, d) {
			l.setState(LinkDown, nil)
			return
		}
	}
}

func evSleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// session opens one channel and runs it until it dies. wasUp reports
// whether the channel got as far as its Channel document.
func (l *evLink) session(ctx context.Context) (wasUp bool, _ error) {
	e := l.e
	ch := newEvChannel(l)
	defer ch.close()
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	req, err := http.NewRequestWithContext(sctx, http.MethodPost, l.server+evAsyncChannelPath, bytes.NewReader(evChannelAddBody(&e.cfg)))
	if err != nil {
		return false, fmt.Errorf("xsi: channel add: %w", err)
	}
	ch.ctl.setHeaders(req, true)
	resp, err := ch.stream.Do(req)
	if err != nil {
		return false, fmt.Errorf("xsi: channel add %s: %w", l.server, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := errorFromResponse(resp)
		resp.Body.Close()
		return false, err
	}
	l.mu.Lock()
	l.cur = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.cur = nil
		l.mu.Unlock()
	}()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cancel(ch.read(sctx, resp.Body))
	}()
	for range evAckWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch.ackLoop(sctx)
		}()
	}

	hbEvery := e.cfg.HeartbeatInterval
	watchdogAfter := 3 * hbEvery
	watchdog := time.NewTimer(watchdogAfter)
	defer watchdog.Stop()
	hb := time.NewTicker(hbEvery)
	defer hb.Stop()
	hbC := hb.C
	var refresh *time.Timer
	var refreshC <-chan time.Time
	defer func() {
		if refresh != nil {
			refresh.Stop()
		}
	}()
	goneC := ch.goneC
	// While the stream is drained (see the goneC and watchdog cases),
	// drainC bounds the wait for its end and drainCause says why.
	var drain *time.Timer
	var drainC <-chan time.Time
	var drainCause error
	defer func() {
		if drain != nil {
			drain.Stop()
		}
	}()
	startDrain := func(why error, limit time.Duration) {
		goneC, hbC, refreshC = nil, nil, nil
		watchdog.Stop()
		drain = time.NewTimer(limit)
		drainC, drainCause = drain.C, why
		if wasUp {
			l.setState(LinkDegraded, why)
		}
	}
	opened := ch.opened

loop:
	for {
		select {
		case <-sctx.Done():
			break loop
		case <-opened:
			opened = nil
			wasUp = true
			l.setState(LinkUp, nil)
			e.log.Info("xsi: event channel open", "server", l.server, "channel", ch.channelID(), "expires", ch.expires())
			refresh = time.NewTimer(evHalf(ch.expires(), e.cfg.ChannelExpires))
			if drainC == nil {
				refreshC = refresh.C
			}
		case <-goneC:
			// The XSP has forgotten the channel (401/404 on a heartbeat,
			// acknowledgement or refresh), but what it wrote on the stream
			// before is still in flight: events queued ahead of a
			// ChannelTerminatedEvent or of a dropped connection. Abandoning
			// the stream now lost them for good (the XSP forgot them too),
			// and a refresh brings only the current state, not the changes
			// in between. So read on until the stream ends, sending nothing
			// more on the channel; a stream that does not end within the
			// watchdog period (e.g. the 404 came from another XSP behind a
			// load balancer) is abandoned with the cause.
			ch.gone = true
			startDrain(ch.goneErr, watchdogAfter)
		case <-drainC:
			cancel(drainCause)
		case <-ch.activity:
			if drainC == nil {
				watchdog.Reset(watchdogAfter)
			}
		case <-watchdog.C:
			if ch.delivering.Load() {
				watchdog.Reset(watchdogAfter)
				continue
			}
			// No document read for 3 heartbeat intervals. That is either a
			// dead stream or a stall on our side (GC, CPU starvation) with
			// documents waiting unread in the socket; abandoning the stream
			// then lost them, as the XSP forgets a channel's unacknowledged
			// events with the channel. So the channel is deleted first: the
			// XSP answers once it has queued ChannelTerminatedEvent behind
			// everything it wrote, and a live stream is read to that end
			// (research/xsi.md §3.2 step 6). A dead stream does not end
			// within a heartbeat interval (the time an echo gets) and is
			// abandoned.
			if wasUp {
				l.setState(LinkDegraded, ErrWatchdog)
			}
			drainCause = ErrWatchdog
			if err := ch.deleteChannel(sctx); err != nil {
				// Unless the stream already ended (the reader cancelled
				// sctx, e.g. on the ChannelTerminatedEvent arriving
				// before this answer), the XSP is unreachable.
				e.log.Debug("xsi: delete silent channel", "server", l.server, "err", err)
				cancel(ErrWatchdog)
				break loop
			}
			ch.gone = true
			startDrain(ErrWatchdog, hbEvery)
		case <-hbC:
			id := ch.channelID()
			if id == "" {
				continue
			}
			_, err := ch.ctl.call(sctx, http.MethodPut, evPath+"/channel/"+id+"/heartbeat", nil, e.callTimeout())
			switch {
			case err == nil:
				if wasUp {
					l.setState(LinkUp, nil)
				}
			case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrNotFound):
				ch.markGone(fmt.Errorf("xsi: heartbeat: channel gone: %w", err))
			case sctx.Err() == nil:
				l.setState(LinkDegraded, err)
			}
		case <-refreshC:
			id := ch.channelID()
			body, err := ch.ctl.call(sctx, http.MethodPut, evPath+"/channel/"+id, evChannelRefreshBody(e.cfg.ChannelExpires), e.callTimeout())
			next := hbEvery
			switch {
			case err == nil:
				if ev, perr := ParseEvent(body); perr == nil {
					if c, ok := ev.(*Channel); ok && c.Expires > 0 {
						ch.setExpires(c.Expires)
					}
				}
				next = evHalf(ch.expires(), e.cfg.ChannelExpires)
			case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrNotFound):
				ch.markGone(fmt.Errorf("xsi: channel refresh: channel gone: %w", err))
			case sctx.Err() == nil:
				l.setState(LinkDegraded, err)
			}
			refresh.Reset(next)
		}
	}
	cause := context.Cause(sctx)
	resp.Body.Close()
	wg.Wait()
	if errors.Is(cause, ErrChannelTerminated) {
		ch.gone = true
	}
	switch {
	case drainCause == nil:
	case errors.Is(cause, ErrChannelTerminated):
		// Read to its end: nothing was lost (no resync). A 401/404 was
		// only the sign of this termination; a watchdog stays visible.
		if errors.Is(drainCause, ErrWatchdog) {
			cause = fmt.Errorf("%w (stream then read to its end: %w)", ErrWatchdog, cause)
		}
	default:
		// Drained to a broken or closed stream, or not ended in time:
		// the first sign was the drain's cause.
		cause = drainCause
	}
	// A channel abandoned while the XSP may still hold it (watchdog, broken
	// stream) is deleted so the XSP stops routing events to it.
	if id := ch.channelID(); id != "" && !ch.gone && ctx.Err() == nil && !e.stopping.Load() {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), e.callTimeout())
		if err := ch.deleteChannel(dctx); err != nil {
			e.log.Debug("xsi: delete abandoned channel", "server", l.server, "channel", id, "err", err)
		}
		dcancel()
	}
	if cause == nil {
		cause = errors.New("xsi: event channel closed")
	}
	return wasUp, cause
}

// evHalf is half of a granted expiry (or of the requested one when none was
// granted); "never" (2147483647 s) is refreshed daily anyway.
func evHalf(granted, requested time.Duration) time.Duration {
	d := granted
	if d <= 0 {
		d = requested
	}
	if d >= evNeverExpire*time.Second {
		return 24 * time.Hour
	}
	return d / 2
}

// evChannel is one streaming channel and its pinned control client.
type evChannel struct {
	link   *evLink
	stream *http.Client
	ctl    *evClient
	pin    *evPin

	opened     chan struct{} // closed when the Channel document arrived
	activity   chan struct{} // a document was read (cap 1, coalesced)
	delivering atomic.Bool   // reader blocked handing an event to the consumer
	acks       chan string   // eventIDs to acknowledge
	gone       bool          // the XSP no longer knows the channel (owned by session)

	// goneC is closed (once, goneErr set) when a control request says the
	// XSP no longer knows the channel; see session.
	goneOnce sync.Once
	goneC    chan struct{}
	goneErr  error

	mu  sync.Mutex
	id  string
	exp time.Duration
}

func newEvChannel(l *evLink) *evChannel {
	e := l.e
	pin := &evPin{}
	jar, _ := cookiejar.New(nil)
	streamT := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := e.dial(ctx, network, addr)
			if err == nil {
				pin.set(addr, c)
			}
			return c, err
		},
		TLSClientConfig:       e.tlsConfig,
		TLSHandshakeTimeout:   evDialTimeout,
		ResponseHeaderTimeout: evHdrTimeout,
		DisableCompression:    true,
		MaxIdleConnsPerHost:   1,
	}
	ctlT := &http.Transport{
		// Control requests go to the very XSP that holds the stream: the
		// address the stream dialled, same Host/SNI (research/xsi.md §3.4).
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if p := pin.get(); p != "" {
				addr = p
			}
			return e.dial(ctx, network, addr)
		},
		TLSClientConfig:       e.tlsConfig,
		TLSHandshakeTimeout:   evDialTimeout,
		ResponseHeaderTimeout: evHdrTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &evChannel{
		link: l,
		pin:  pin,
		// No Client.Timeout: it would cover reading the endless body.
		stream:   &http.Client{Transport: streamT, Jar: jar, CheckRedirect: noRedirect},
		ctl:      &evClient{base: l.server, cfg: &e.cfg, hc: &http.Client{Transport: ctlT, Jar: jar, CheckRedirect: noRedirect}},
		opened:   make(chan struct{}),
		activity: make(chan struct{}, 1),
		acks:     make(chan string, evAckQueue),
		goneC:    make(chan struct{}),
	}
}

// markGone records that the XSP answered a control request of this channel
// with 401/404: it has forgotten the channel (and its unacknowledged
// events). The first cause wins.
func (ch *evChannel) markGone(err error) {
	ch.goneOnce.Do(func() {
		ch.goneErr = err
		close(ch.goneC)
	})
}

func (ch *evChannel) isGone() bool {
	select {
	case <-ch.goneC:
		return true
	default:
		return false
	}
}

func (ch *evChannel) close() {
	ch.stream.CloseIdleConnections()
	ch.ctl.hc.CloseIdleConnections()
}

func (ch *evChannel) channelID() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.id
}

func (ch *evChannel) expires() time.Duration {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.exp
}

func (ch *evChannel) setExpires(d time.Duration) {
	ch.mu.Lock()
	ch.exp = d
	ch.mu.Unlock()
}

func (ch *evChannel) deleteChannel(ctx context.Context) error {
	id := ch.channelID()
	if id == "" {
		return nil
	}
	_, err := ch.ctl.call(ctx, http.MethodDelete, evPath+"/channel/"+id, nil, ch.link.e.callTimeout())
	return err
}

// read consumes the stream until it ends; the returned error is why.
func (ch *evChannel) read(ctx context.Context, body io.Reader) error {
	e := ch.link.e
	sp := newSplitter(body, DefaultMaxDocument)
	defer sp.release()
	for {
		raw, err := sp.Next()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if err == io.EOF {
				return errors.New("xsi: event channel closed by the XSP")
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("xsi: event channel broken mid-document: %w", err)
			}
			return err // already "xsi: event channel: ..."
		}
		select {
		case ch.activity <- struct{}{}:
		default:
		}
		ev, err := ParseEvent(raw)
		if err != nil {
			e.log.Warn("xsi: unparsable document on event channel", "server", ch.link.server, "err", err)
			continue
		}
		switch ev := ev.(type) {
		case *Channel:
			ch.mu.Lock()
			first := ch.id == ""
			ch.id, ch.exp = ev.ChannelID, ev.Expires
			ch.mu.Unlock()
			if first {
				close(ch.opened)
			}
		case *ChannelHeartBeat:
		case *ChannelTerminatedEvent:
			if e.stopping.Load() || ev.Reason == "ExplicitDelete" {
				e.log.Info("xsi: channel terminated", "server", ch.link.server, "reason", ev.Reason)
			} else {
				e.log.Warn("xsi: channel terminated", "server", ch.link.server, "reason", ev.Reason)
			}
			if ev.Reason == "DuplicateChannelSet" {
				e.log.Error("xsi: another channel set uses this applicationId; check that ApplicationID/ChannelSetID are unique per connector", "applicationId", e.cfg.ApplicationID)
			}
			return &ChannelTerminatedError{Reason: ev.Reason}
		case *ErrorEvent:
			e.log.Warn("xsi: ErrorEvent on channel", "server", ch.link.server, "code", ev.ErrorCode, "message", ev.ErrorMessage)
		case *SubscriptionEvent:
			if err := ch.handle(ctx, ev); err != nil {
				return err
			}
		}
	}
}

// handle delivers one SubscriptionEvent (unless it is a duplicate) and
// queues its acknowledgement.
func (ch *evChannel) handle(ctx context.Context, ev *SubscriptionEvent) error {
	e := ch.link.e
	ev.Server = ch.link.server
	ch.link.count.received.Inc()
	switch e.dedup.claim(ev.EventID) {
	case evPending:
		// The original is still being handed over on another channel: do
		// not acknowledge this copy (if that handover fails, the XSP must
		// still redeliver).
		ch.link.count.duplicates.Inc()
		return nil
	case evDelivered:
		ch.link.count.duplicates.Inc()
	case evNew:
		verdict := seqInOrder
		var resyncs []*ScopeResync
		_, isScope := e.subs.scopeOf(ev.SubscriptionID)
		if isScope {
			if ev.SequenceNumber > 0 {
				var lost []Target
				verdict, lost = e.subs.observeScope(ev.SubscriptionID, evOrderKey(ev), ev.SequenceNumber, ch.link.count.gaps, time.Now())
				for _, t := range lost {
					// A scope's refresh resends nothing (research/xsi.md
					// §0 item 8): the marker goes first, in order, instead.
					e.log.Warn("xsi: sequence numbers of a scope subscription missing; its users' state must be read again", "scope", t.String(), "grace", evSeqHoleGrace)
					resyncs = append(resyncs, &ScopeResync{Scope: t, Reason: "sequence gap"})
				}
			}
		} else if ev.SequenceNumber > 0 {
			verdict = e.subs.observe(ev.SubscriptionID, ev.SequenceNumber)
		}
		switch verdict {
		case seqGap: // a user subscription's
			ch.link.count.gaps.Inc()
			e.log.Warn("xsi: sequence gap, refreshing subscription", "subscription", ev.SubscriptionID, "seq", ev.SequenceNumber)
			e.subs.refreshNow(ev.SubscriptionID)
		case seqStale:
			// A newer event of this subscription (for a scope: of the same
			// user) came first (the channels of a set are not ordered with
			// each other): applying this one would take the view back. It
			// is dropped (and acknowledged); a user subscription's refresh
			// brings any part of it the newer one did not carry.
			ch.link.count.stale.Inc()
			e.log.Debug("xsi: event older than one already delivered, dropped",
				"subscription", ev.SubscriptionID, "seq", ev.SequenceNumber, "target", ev.TargetID)
			e.dedup.delivered(ev.EventID) // a redelivery of it is a duplicate
			if !isScope {
				e.subs.refreshNow(ev.SubscriptionID)
			}
		}
		for _, resync := range resyncs {
			ch.delivering.Store(true)
			ok := e.emit(ctx, resync)
			ch.delivering.Store(false)
			if !ok {
				if verdict != seqStale {
					e.dedup.release(ev.EventID) // not delivered: accept the redelivery
				}
				return context.Cause(ctx)
			}
		}
		if verdict == seqStale {
			break // to the acknowledgement
		}
		ch.delivering.Store(true)
		select {
		case e.out <- ev:
			ch.delivering.Store(false)
			e.dedup.delivered(ev.EventID)
			select { // the wait was not silence on the stream
			case ch.activity <- struct{}{}:
			default:
			}
			if _, ok := ev.Data.(*SubscriptionTerminatedEvent); ok {
				// Resubscribed only now: what the new subscription brings
				// (initial events, a scope's ScopeResync) comes after this
				// event, not before it.
				e.subs.terminated(ev.SubscriptionID)
			}
		case <-ctx.Done():
			ch.delivering.Store(false)
			e.dedup.release(ev.EventID) // not delivered: accept the redelivery
			return context.Cause(ctx)
		}
	}
	select {
	case ch.acks <- ev.EventID:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// ackLoop sends EventResponse 200 for every queued eventID to the XSP that
// holds the channel; evAckWorkers of them run per channel.
func (ch *evChannel) ackLoop(ctx context.Context) {
	e := ch.link.e
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-ch.acks:
			if ch.isGone() {
				// The XSP forgot the channel and its events: nothing to
				// acknowledge, but the queue is still drained so that the
				// reader never blocks on it while it reads the rest.
				continue
			}
			_, err := ch.ctl.call(ctx, http.MethodPost, evPath+"/channel/eventresponse", evEventResponseBody(id, 200, "OK"), e.callTimeout())
			switch {
			case err == nil:
				ch.link.count.acked.Inc()
			case ctx.Err() != nil:
				return
			case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrNotFound):
				ch.link.count.ackFailed.Inc()
				ch.markGone(fmt.Errorf("xsi: event response: channel gone: %w", err))
			default:
				// The XSP redelivers an unacknowledged event on another
				// channel; duplicates are dropped there.
				e.log.Warn("xsi: event response failed", "server", ch.link.server, "event", id, "err", err)
				ch.link.count.ackFailed.Inc()
				ch.link.setState(LinkDegraded, err)
			}
		}
	}
}

// evPin remembers the address the stream connection reached, so control
// requests dial the same XSP behind a load-balanced name.
type evPin struct {
	mu   sync.Mutex
	addr string
}

func (p *evPin) set(dialed string, c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.addr != "" {
		return
	}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		p.addr = ta.String()
	} else {
		p.addr = dialed
	}
}

func (p *evPin) get() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// evClient sends the short Xsi-Events requests of one channel.
type evClient struct {
	base string
	cfg  *Config
	hc   *http.Client
}

func (c *evClient) setHeaders(req *http.Request, hasBody bool) {
	req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	h := req.Header
	h.Set("Accept", "application/xml")
	if hasBody {
		h.Set("Content-Type", "application/xml; charset=UTF-8")
	}
	if c.cfg.ProtocolVersion != "" {
		h.Set("X-BroadWorks-Protocol-Version", c.cfg.ProtocolVersion)
	}
}

// call does one request with its own deadline; non-2xx → *Error.
func (c *evClient) call(ctx context.Context, method, path string, body []byte, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("xsi: %s %s: %w", method, path, err)
	}
	c.setHeaders(req, body != nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("xsi: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, errorFromResponse(resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, evMaxCtlBody))
	if err != nil {
		return nil, fmt.Errorf("xsi: %s %s: reading body: %w", method, path, err)
	}
	return b, nil
}

// Request bodies (element order per the XSD sequences).

func evXMLText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func evSeconds(d time.Duration) string {
	s := int64(d / time.Second)
	if s < 1 {
		s = 1
	}
	if s > evNeverExpire {
		s = evNeverExpire
	}
	return strconv.FormatInt(s, 10)
}

const evXMLDecl = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

func evChannelAddBody(cfg *Config) []byte {
	return []byte(evXMLDecl + `<Channel xmlns="` + NS + `"><channelSetId>` + evXMLText(cfg.ChannelSetID) +
		`</channelSetId><priority>1</priority><weight>100</weight><expires>` + evSeconds(cfg.ChannelExpires) +
		`</expires><applicationId>` + evXMLText(cfg.ApplicationID) + `</applicationId></Channel>`)
}

func evChannelRefreshBody(exp time.Duration) []byte {
	return []byte(evXMLDecl + `<Channel xmlns="` + NS + `"><expires>` + evSeconds(exp) + `</expires></Channel>`)
}

func evEventResponseBody(eventID string, status int, reason string) []byte {
	return []byte(evXMLDecl + `<EventResponse xmlns="` + NS + `"><eventID>` + evXMLText(eventID) +
		`</eventID><statusCode>` + strconv.Itoa(status) + `</statusCode><reason>` + evXMLText(reason) + `</reason></EventResponse>`)
}

// evLRU remembers recently delivered eventIDs.
type evLRU struct {
	mu  sync.Mutex
	max int
	ll  *list.List
	m   map[string]*list.Element
}

type evLRUEntry struct {
	id        string
	delivered bool
}

// Outcomes of evLRU.claim.
const (
	evNew       = iota // first sighting: deliver it
	evPending          // being delivered right now by another channel
	evDelivered        // already delivered: acknowledge and drop
)

func newEvLRU(max int) *evLRU {
	return &evLRU{max: max, ll: list.New(), m: make(map[string]*list.Element, max)}
}

// claim records id as pending unless it is known.
func (c *evLRU) claim(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[id]; ok {
		c.ll.MoveToFront(el)
		if el.Value.(*evLRUEntry).delivered {
			return evDelivered
		}
		return evPending
	}
	c.m[id] = c.ll.PushFront(&evLRUEntry{id: id})
	if c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*evLRUEntry).id)
	}
	return evNew
}

// delivered marks a claimed id as handed to the consumer.
func (c *evLRU) delivered(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[id]; ok {
		el.Value.(*evLRUEntry).delivered = true
	}
}

// release forgets a claimed id (its delivery did not happen).
func (c *evLRU) release(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[id]; ok {
		c.ll.Remove(el)
		delete(c.m, id)
	}
}
