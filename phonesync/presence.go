package phonesync

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// The PBX-presence watcher (issue 5, sip.md §3): phonesync subscribes to a
// PBX (CUCM and the like) with Event: presence for configured DNs, and turns
// the PIDF it is NOTIFYed into agent states through the same Service calls a
// phone or CTI client would make. It is the SUBSCRIBE side of RFC 6665 /
// RFC 3856, with one dialog per DN.

const (
	presenceEvent = "presence"
	// presenceCallTimeout bounds each SIP request and each Service call: the
	// watcher gets PresenceConfig only, so it uses the default of
	// Config.RequestTimeout.
	presenceCallTimeout = 5 * time.Second
	// presenceMaxInFlight caps SUBSCRIBEs waiting for an answer at once, so
	// thousands of DNs do not hit the PBX in one burst at start.
	presenceMaxInFlight = 32
	// presenceUser is the user part of our From and Contact.
	presenceUser = "phonesync"
)

// presenceWatcher owns one subscription per DN. run starts and stops them;
// handleNotify is called by the server's NOTIFY handler.
type presenceWatcher struct {
	cfg    PresenceConfig
	client *sipgo.Client
	ua     *sipgo.UserAgent
	svc    Service
	log    *slog.Logger

	// Timing, fixed in newPresenceWatcher and shortened by tests.
	callTimeout            time.Duration
	minBackoff, maxBackoff time.Duration
	// do sends one request and waits for its final response: client.Do,
	// replaced by tests that drive the loop under testing/synctest.
	do func(ctx context.Context, req *sip.Request) (*sip.Response, error)

	inFlight chan struct{} // semaphore of presenceMaxInFlight

	list []*presentity // in cfg.DNs order, without duplicates

	mu       sync.Mutex
	byCallID map[string]*presentity
	contact  *sip.Uri // our Contact, worked out on first use
}

// presentity is the watcher's state for one DN.
type presentity struct {
	dn   string
	kick chan struct{} // cap 1: the PBX terminated the subscription

	mu        sync.Mutex // dialog state below
	callID    string
	localTag  string // our From tag
	remoteTag string // the PBX's To tag, from the 2xx or a NOTIFY
	cseq      uint32
	target    sip.Uri // Request-URI: the PBX's Contact once known
	// routes is the dialog's route set, set once by the message that
	// establishes the dialog (routed says it was): the 2xx's Record-Route
	// reversed (RFC 3261 §12.1.2), or a NOTIFY's in order when one comes
	// first (RFC 6665 §4.1.2.4; we are its UAS, §12.1.1).
	routes      []sip.Uri
	routed      bool
	established bool
	expires     time.Duration // what we ask for (Min-Expires may raise it)
	retryAfter  time.Duration // from a terminating NOTIFY

	applyMu       sync.Mutex // serialises the Service calls for this DN
	applied       AgentStateName
	appliedReason string
}

func newPresenceWatcher(cfg PresenceConfig, client *sipgo.Client, ua *sipgo.UserAgent, svc Service, log *slog.Logger) *presenceWatcher {
	if log == nil {
		log = slog.Default()
	}
	if cfg.Expires <= 0 {
		cfg.Expires = 3600 * time.Second // RFC 3856 §6.4 default
	}
	w := &presenceWatcher{
		cfg:         cfg,
		client:      client,
		ua:          ua,
		svc:         svc,
		log:         log.With("component", "presence", "pbx", cfg.PBX),
		callTimeout: presenceCallTimeout,
		minBackoff:  time.Second,
		maxBackoff:  5 * time.Minute,
		inFlight:    make(chan struct{}, presenceMaxInFlight),
		byCallID:    make(map[string]*presentity),
	}
	w.do = func(ctx context.Context, req *sip.Request) (*sip.Response, error) {
		// Any option turns sipgo's header building off, so ask for it
		// (sip.md §4.2); it adds only the Via here.
		return w.client.Do(ctx, req, sipgo.ClientRequestBuild)
	}
	seen := make(map[string]bool, len(cfg.DNs))
	for _, dn := range cfg.DNs {
		dn = strings.TrimSpace(dn)
		if dn == "" || seen[dn] {
			continue
		}
		seen[dn] = true
		w.list = append(w.list, &presentity{dn: dn, kick: make(chan struct{}, 1), expires: cfg.Expires})
	}
	return w
}

// run keeps every DN subscribed until ctx ends, then unsubscribes them
// (Expires: 0, each under its own deadline) and returns when all are done.
// The caller must keep the user agent open until run returns.
func (w *presenceWatcher) run(ctx context.Context) {
	// The unSUBSCRIBEs at the end share one deadline, so stopping takes at
	// most callTimeout however many DNs there are or however dead the PBX.
	endCtx, endCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer endCancel()
	stopAfter := context.AfterFunc(ctx, func() { time.AfterFunc(w.callTimeout, endCancel) })
	defer stopAfter()
	var wg sync.WaitGroup
	for _, p := range w.list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.watch(ctx, endCtx, p)
		}()
	}
	wg.Wait()
}

// watch is the life of one DN's subscription: subscribe, refresh at 80% of
// the granted time, back off exponentially (with jitter) after failures and
// after the PBX terminates the subscription, unsubscribe at the end.
func (w *presenceWatcher) watch(ctx, endCtx context.Context, p *presentity) {
	backoff := w.minBackoff
	for {
		var wait time.Duration
		refresh, err := w.subscribe(ctx, p)
		switch {
		case ctx.Err() != nil:
			w.unsubscribe(endCtx, p)
			return
		case err != nil:
			w.log.Warn("presence SUBSCRIBE failed", "dn", p.dn, "err", err, "retry_in", backoff)
			wait = presenceJitter(backoff)
			backoff = min(2*backoff, w.maxBackoff)
		default:
			if refresh.wasRefresh {
				backoff = w.minBackoff // the dialog lived to its refresh: the PBX is fine
			}
			wait = refresh.in
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			w.unsubscribe(endCtx, p)
			return
		case <-t.C:
		case <-p.kick:
			t.Stop()
			p.mu.Lock()
			delay := max(p.retryAfter, backoff)
			p.mu.Unlock()
			backoff = min(2*backoff, w.maxBackoff)
			w.log.Info("presence subscription terminated by the PBX", "dn", p.dn, "resubscribe_in", delay)
			t = time.NewTimer(presenceJitter(delay))
			select {
			case <-ctx.Done():
				t.Stop()
				return // nothing left to unsubscribe
			case <-t.C:
			}
		}
	}
}

// presenceJitter spreads retries over [d/2, d] so DNs that failed together do not
// retry together.
func presenceJitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

type refreshPlan struct {
	in         time.Duration
	wasRefresh bool
}

// subscribe sends the initial SUBSCRIBE or the refresh of p's dialog and
// says when to refresh next.
func (w *presenceWatcher) subscribe(ctx context.Context, p *presentity) (refreshPlan, error) {
	for attempt := 0; ; attempt++ {
		req, refreshing, err := w.buildSubscribe(p, -1)
		if err != nil {
			return refreshPlan{}, err
		}
		res, err := w.send(ctx, req)
		if err != nil {
			if !refreshing {
				w.forget(p)
			}
			return refreshPlan{}, err
		}
		switch {
		case res.StatusCode >= 200 && res.StatusCode < 300:
			if _, ok := routeSet(res, true); !ok {
				w.forget(p)
				return refreshPlan{}, fmt.Errorf("SUBSCRIBE %s: 2xx with more than %d Record-Route entries", p.dn, maxRouteSet)
			}
			granted, ok := p.accept(res)
			if !ok {
				// A terminating NOTIFY ended the dialog while we waited.
				return refreshPlan{}, fmt.Errorf("SUBSCRIBE %s: dialog ended while subscribing", p.dn)
			}
			if granted <= 0 {
				// Accepted and over at once: treat like a termination.
				w.forget(p)
				return refreshPlan{}, fmt.Errorf("SUBSCRIBE %s: granted Expires 0", p.dn)
			}
			return refreshPlan{in: granted * 8 / 10, wasRefresh: refreshing}, nil
		case res.StatusCode == 423 && attempt == 0:
			// Interval Too Brief: ask again with the PBX's Min-Expires.
			if me := presenceHeaderSeconds(res, "Min-Expires"); me > 0 {
				p.mu.Lock()
				p.expires = me
				p.mu.Unlock()
				continue
			}
		case (res.StatusCode == 481 || res.StatusCode == 408) && refreshing && attempt == 0:
			// The PBX lost the dialog: start a new one straight away.
			w.forget(p)
			continue
		}
		if !refreshing {
			w.forget(p)
		}
		return refreshPlan{}, fmt.Errorf("SUBSCRIBE %s: %d %s", p.dn, res.StatusCode, res.Reason)
	}
}

// unsubscribe ends p's dialog with Expires: 0, under endCtx since the
// watcher's context is already done.
func (w *presenceWatcher) unsubscribe(endCtx context.Context, p *presentity) {
	p.mu.Lock()
	live := p.established
	p.mu.Unlock()
	if !live {
		w.forget(p)
		return
	}
	req, _, err := w.buildSubscribe(p, 0)
	if err == nil {
		var res *sip.Response
		res, err = w.send(endCtx, req)
		if err == nil && res.StatusCode >= 300 {
			err = fmt.Errorf("%d %s", res.StatusCode, res.Reason)
		}
	}
	if err != nil {
		w.log.Debug("presence unSUBSCRIBE failed", "dn", p.dn, "err", err)
	}
	w.forget(p)
}

func (w *presenceWatcher) send(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	select {
	case w.inFlight <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-w.inFlight }()
	ctx, cancel := context.WithTimeout(ctx, w.callTimeout)
	defer cancel()
	return w.do(ctx, req)
}

// buildSubscribe makes the next SUBSCRIBE of p's dialog, starting a new
// dialog when there is none. expires < 0 asks for p.expires.
func (w *presenceWatcher) buildSubscribe(p *presentity, expires time.Duration) (*sip.Request, bool, error) {
	contact, err := w.contactURI()
	if err != nil {
		return nil, false, err
	}
	pbxHost, pbxPort, err := sip.ParseAddr(w.cfg.PBX)
	if err != nil {
		return nil, false, fmt.Errorf("presence PBX %q: %w", w.cfg.PBX, err)
	}
	presentityURI := sip.Uri{Scheme: "sip", User: p.dn, Host: pbxHost, Port: pbxPort}

	p.mu.Lock()
	if p.callID == "" {
		p.established = false
		p.callID = newPresenceCallID()
		p.localTag = sip.GenerateTagN(16)
		p.remoteTag = ""
		p.cseq = 0
		p.target = presentityURI
		w.mu.Lock()
		w.byCallID[p.callID] = p
		w.mu.Unlock()
	}
	refreshing := p.established
	p.cseq++
	if expires < 0 {
		expires = p.expires
	}
	// In the dialog, the route set decides the Request-URI, the Route
	// headers and the next hop (RFC 3261 §12.2.1.1); the first SUBSCRIBE
	// and a dialog without one go to the PBX's address.
	ruri, route, next := p.target, []sip.Uri(nil), sip.Uri{}
	if p.established {
		ruri, route, next = routeRequest(p.target, p.routes)
	}
	req := sip.NewRequest(sip.SUBSCRIBE, ruri)
	from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: presenceUser, Host: contact.Host}, Params: sip.NewParams()}
	from.Params.Add("tag", p.localTag)
	to := sip.ToHeader{Address: presentityURI, Params: sip.NewParams()}
	if p.remoteTag != "" {
		to.Params.Add("tag", p.remoteTag)
	}
	callID := sip.CallIDHeader(p.callID)
	cseq := sip.CSeqHeader{SeqNo: p.cseq, MethodName: sip.SUBSCRIBE}
	p.mu.Unlock()

	maxForwards := sip.MaxForwardsHeader(70)
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	req.AppendHeader(&callID)
	req.AppendHeader(&cseq)
	req.AppendHeader(&maxForwards)
	req.AppendHeader(&sip.ContactHeader{Address: *contact})
	req.AppendHeader(sip.NewHeader("Event", presenceEvent))
	req.AppendHeader(sip.NewHeader("Accept", pidfContentType))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	for _, r := range route {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	if len(route) > 0 {
		transport := hopTransport(next, "UDP")
		req.SetTransport(transport)
		req.SetDestination(hopAddr(next, transport))
	} else {
		req.SetTransport("UDP")
		// To the configured PBX: its Contact may name an address we
		// cannot reach, the trunk address we can.
		req.SetDestination(w.cfg.PBX)
	}
	req.SetBody(nil)
	return req, refreshing, nil
}

// contactURI is where the PBX sends NOTIFYs: the client's hostname (or the
// local address that routes to the PBX) and our UDP listening port.
func (w *presenceWatcher) contactURI() (*sip.Uri, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.contact != nil {
		return w.contact, nil
	}
	host := ""
	if w.client != nil {
		host = w.client.Hostname()
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		// A connected UDP socket sends nothing; it only picks the route.
		c, err := net.Dial("udp", w.cfg.PBX)
		if err != nil {
			return nil, fmt.Errorf("presence: no route to PBX %q: %w", w.cfg.PBX, err)
		}
		host = c.LocalAddr().(*net.UDPAddr).IP.String()
		_ = c.Close()
	}
	port := 0
	if w.ua != nil {
		if ports := w.ua.TransportLayer().ListenPorts("udp"); len(ports) > 0 {
			port = ports[0]
		}
	}
	if port == 0 {
		w.log.Warn("presence: no UDP listener; the PBX will send NOTIFYs to port 5060")
	}
	w.contact = &sip.Uri{Scheme: "sip", User: presenceUser, Host: host, Port: port}
	return w.contact, nil
}

func newPresenceCallID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return "presence-" + hex.EncodeToString(b[:])
}

// accept records a 2xx to SUBSCRIBE and returns the granted time; ok is
// false when the dialog is no longer the one the SUBSCRIBE was for.
func (p *presentity) accept(res *sip.Response) (granted time.Duration, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id := res.CallID(); id == nil || p.callID == "" || id.Value() != p.callID {
		return 0, false
	}
	if to := res.To(); to != nil {
		if tag, ok := to.Params.Get("tag"); ok && tag != "" {
			p.remoteTag = tag
		}
	}
	if c := res.Contact(); c != nil && c.Address.Host != "" {
		p.target = c.Address
	}
	if !p.routed { // the route set is fixed once the dialog exists (§12.2)
		p.routes, _ = routeSet(res, true) // its length was checked by subscribe
		p.routed = true
	}
	p.established = true
	granted = p.expires
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n >= 0 {
			granted = time.Duration(n) * time.Second
		}
	}
	return granted, true
}

// forget drops p's dialog; the next subscribe starts a new one.
func (w *presenceWatcher) forget(p *presentity) {
	p.mu.Lock()
	callID := p.callID
	p.callID, p.localTag, p.remoteTag, p.established = "", "", "", false
	p.routes, p.routed = nil, false
	p.mu.Unlock()
	if callID != "" {
		w.mu.Lock()
		if w.byCallID[callID] == p {
			delete(w.byCallID, callID)
		}
		w.mu.Unlock()
	}
}

func presenceHeaderSeconds(m interface{ GetHeader(string) sip.Header }, name string) time.Duration {
	h := m.GetHeader(name)
	if h == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// handleNotify answers a NOTIFY of one of our presence dialogs: 200 when it
// was taken (whether or not the Service accepted the change), 400 for a
// malformed PIDF (nothing changes), 415 for another body type, 489 for
// another event, 481 when no dialog of ours matches.
func (w *presenceWatcher) handleNotify(req *sip.Request) int {
	callID := req.CallID()
	if callID == nil {
		return 400
	}
	w.mu.Lock()
	p := w.byCallID[callID.Value()]
	w.mu.Unlock()
	if p == nil {
		return 481
	}
	if ev := presenceEventOf(req); !strings.EqualFold(ev, presenceEvent) {
		return 489
	}
	p.mu.Lock()
	localTag := p.localTag
	p.mu.Unlock()
	if to := req.To(); to != nil {
		if tag, ok := to.Params.Get("tag"); ok && tag != localTag {
			return 481
		}
	}
	state, params := presenceSubState(req)

	var pres *Presence
	if body := req.Body(); len(body) > 0 {
		if ct := req.ContentType(); ct != nil {
			mt, _, _ := strings.Cut(ct.Value(), ";")
			if !strings.EqualFold(strings.TrimSpace(mt), pidfContentType) {
				return 415
			}
		}
		parsed, err := ParsePIDF(body)
		if err != nil {
			w.log.Warn("presence NOTIFY with a malformed PIDF", "dn", p.dn, "err", err)
			return 400
		}
		pres = &parsed
	}

	// A NOTIFY may come before the 2xx (RFC 6665 §4.1.2.4): its From tag is
	// the PBX's half of the dialog.
	p.mu.Lock()
	if p.remoteTag == "" {
		if from := req.From(); from != nil {
			p.remoteTag, _ = from.Params.Get("tag")
		}
	}
	if !p.routed {
		if routes, ok := routeSet(req, false); ok {
			p.routes, p.routed = routes, true
		}
		if c := req.Contact(); c != nil && c.Address.Host != "" {
			p.target = c.Address
		}
	}
	p.mu.Unlock()

	if pres != nil {
		if user := presenceEntityUser(pres.Entity); user != "" && user != p.dn {
			w.log.Debug("presence entity differs from the subscribed DN", "dn", p.dn, "entity", pres.Entity)
		}
		w.apply(p, *pres)
	}

	if strings.EqualFold(state, "terminated") {
		retry := time.Duration(0)
		if s, ok := params["retry-after"]; ok {
			if n, err := strconv.Atoi(s); err == nil && n > 0 {
				retry = time.Duration(n) * time.Second
			}
		}
		w.forget(p)
		p.mu.Lock()
		p.retryAfter = retry
		p.mu.Unlock()
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	return 200
}

// presenceEventOf is the Event header's package, compact form "o" included
// (sipgo does not map it, sip.md §4.2).
func presenceEventOf(req *sip.Request) string {
	h := req.GetHeader("Event")
	if h == nil {
		h = req.GetHeader("o")
	}
	if h == nil {
		return ""
	}
	ev, _, _ := strings.Cut(h.Value(), ";")
	return strings.TrimSpace(ev)
}

// presenceSubState splits "terminated;reason=timeout;retry-after=30".
func presenceSubState(req *sip.Request) (string, map[string]string) {
	h := req.GetHeader("Subscription-State")
	if h == nil {
		return "", nil
	}
	parts := strings.Split(h.Value(), ";")
	params := make(map[string]string, len(parts)-1)
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		params[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	return strings.TrimSpace(parts[0]), params
}

// presenceEntityUser is the user part of a "sip:8001@host" or "pres:8001@host" URI.
func presenceEntityUser(entity string) string {
	_, rest, ok := strings.Cut(entity, ":")
	if !ok {
		return ""
	}
	user, _, ok := strings.Cut(rest, "@")
	if !ok {
		return ""
	}
	return user
}

// presenceAgentState maps a presence document to the agent state it means
// (issue 5): open without an activity is Ready, open with one is Not Ready
// with the first activity as the reason (on-the-phone reads "busy"), closed
// is logged off.
func presenceAgentState(p Presence) (AgentStateName, string) {
	if !p.Open {
		return AgentLoggedOff, ""
	}
	if len(p.Activities) == 0 {
		return AgentReady, ""
	}
	reason := p.Activities[0]
	if reason == "on-the-phone" {
		reason = "busy"
	}
	return AgentNotReady, reason
}

// apply drives the gateway to the state the presence maps to, calling the
// Service only when that differs from what was last applied for the DN. An
// agent seen for the first time (or again after closed) is logged on first.
// A failed call leaves the last applied state, so the next NOTIFY retries.
func (w *presenceWatcher) apply(p *presentity, pres Presence) {
	state, reason := presenceAgentState(pres)
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	if state == p.applied && reason == p.appliedReason {
		return
	}
	if state != AgentLoggedOff && (p.applied == "" || p.applied == AgentLoggedOff) {
		if err := w.setAgentState(p.dn, AgentLoggedOn, ""); err != nil {
			w.log.Warn("presence: log-on refused", "dn", p.dn, "err", err)
			return
		}
		p.applied, p.appliedReason = AgentLoggedOn, ""
	}
	if err := w.setAgentState(p.dn, state, reason); err != nil {
		w.log.Warn("presence: agent state refused", "dn", p.dn, "state", state, "reason", reason, "err", err)
		return
	}
	p.applied, p.appliedReason = state, reason
}

func (w *presenceWatcher) setAgentState(dn string, state AgentStateName, reason string) error {
	ctx, cancel := context.WithTimeout(context.Background(), w.callTimeout)
	defer cancel()
	return w.svc.SetAgentState(ctx, dn, "", state, reason, OriginPresence)
}
