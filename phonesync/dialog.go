package phonesync

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// sipgo v1.7.2 has no SUBSCRIBE dialogs (sip.md §4.2), so this file keeps
// the notifier's half of each one (RFC 6665 §4.2.2, RFC 3261 §12) and builds
// the in-dialog NOTIFYs by hand (sip.md §4.3).

// dialogID finds a dialog from an in-dialog request: the Call-ID and the
// phone's tag (our tag is checked against the To-tag separately).
type dialogID struct{ callID, remoteTag string }

// subKey is a line and event package. Every device on a line holds its own
// subscription dialog for it (a desk phone and a soft client, say), and
// each gets every NOTIFY, as BroadWorks does; a device's new dialog (a
// rebooted phone, the same Contact) replaces its old one (Server.insert).
type subKey struct{ dn, event string }

// feature is one value a phone shows: DND, one forwarding type, the agent
// state, or the hoteling guest.
type feature struct {
	kind ChangeKind
	fwd  ForwardingType // ChangeForwarding only
}

func (c Change) feature() feature {
	if c.Kind == ChangeForwarding {
		return feature{kind: c.Kind, fwd: c.Forwarding.Type}
	}
	return feature{kind: c.Kind}
}

// numFeatureSlots is how many features a subscription tracks (slot).
const numFeatureSlots = 6

// slot is f's index in subscription.shown; -1 for none (an unknown kind).
func (f feature) slot() int {
	switch f.kind {
	case ChangeDoNotDisturb:
		return 0
	case ChangeForwarding:
		switch f.fwd {
		case ForwardImmediate:
			return 1
		case ForwardBusy:
			return 2
		case ForwardNoAns:
			return 3
		}
		return -1
	case ChangeAgent:
		return 4
	case ChangeHoteling:
		return 5
	}
	return -1
}

// fullStateFeatures are what an as-feature-event full state shows.
var fullStateFeatures = []feature{
	{kind: ChangeDoNotDisturb},
	{kind: ChangeForwarding, fwd: ForwardImmediate},
	{kind: ChangeForwarding, fwd: ForwardBusy},
	{kind: ChangeForwarding, fwd: ForwardNoAns},
	{kind: ChangeAgent},
}

type jobKind int

const (
	jobFull      jobKind = iota + 1 // the full state of the package
	jobDoc                          // a ready document (Publish, failed hoteling sign-in)
	jobFeature                      // one feature's current value, read from the Service when sent
	jobHoteling                     // the current hoteling association, with nonce when challenging
	jobTerminate                    // Subscription-State: terminated
)

// notifyJob is one thing to tell a phone on a subscription.
type notifyJob struct {
	kind    jobKind
	ctype   string
	body    []byte
	feature ChangeKind
	fwdType ForwardingType
	nonce   string
	reason  string
	// shows and version: the value a published change's document carries,
	// and its version (0: unversioned, always sent).
	shows   feature
	version Version
	// keepFull lets a pending full state go out before the terminating
	// NOTIFY (a fetch: SUBSCRIBE with Expires: 0 outside a dialog).
	keepFull bool
}

// subscription is one SUBSCRIBE-created dialog.
type subscription struct {
	// Fixed at creation.
	id          dialogID
	key         subKey
	dn, event   string
	eventHeader string // the SUBSCRIBE's Event value, echoed (;id= included)
	callID      string
	localTag    string  // our To-tag in the 200, our From-tag in NOTIFYs
	remoteTag   string  // the phone's From-tag
	localURI    sip.Uri // SUBSCRIBE's To URI
	remoteURI   sip.Uri // SUBSCRIBE's From URI
	device      string  // deviceOf at creation: a new dialog of the same device replaces this one
	// routes is the route set: the SUBSCRIBE's Record-Route, in the order
	// received (RFC 3261 §12.1.1); refreshes do not change it (§12.2).
	routes []sip.Uri

	// reqMu serialises the phone's change requests on this dialog, so two
	// quick re-SUBSCRIBEs reach the Service in the order they were answered.
	reqMu sync.Mutex
	// sendMu is held by the request of ours in flight on this dialog (a
	// NOTIFY, or an OPTIONS ping behind a proxy), from taking its CSeq to
	// its answer: a phone refuses a request whose CSeq is below one it has
	// seen (RFC 3261 §12.2.2), so they must arrive in CSeq order.
	sendMu sync.Mutex

	mu           sync.Mutex
	remoteTarget sip.Uri // Contact of the latest SUBSCRIBE
	source       string  // where the latest SUBSCRIBE came from: NOTIFYs go back there
	transport    string  // UDP, TCP or TLS
	localHost    string  // our address as the phone reaches it (Via, Contact)
	localPort    int
	cseq         uint32 // last NOTIFY CSeq used
	savedCSeq    uint32 // cseq as last written to the state file
	expires      time.Time
	queue        []notifyJob
	full         bool // a coalesced full-state NOTIFY is due before queue
	running      bool // a sender goroutine owns the queue
	dead         bool // terminated or replaced: accepts nothing more
	resync       bool // NOTIFYs were coalesced while the phone was out of service
	fullTries    int  // full states the Service could not give, in a row (fullStateLater)
	hotel        hotelingChallenge
	// shown is the version of each value last sent to the phone, by
	// feature.slot (see Version and showLocked).
	shown [numFeatureSlots]Version
}

// hotelingChallenge is the nonce of a pending hoteling sign-in (sip.md §1.4).
type hotelingChallenge struct {
	nonce, guest string
	expires      time.Time
}

func (sub *subscription) kill() {
	sub.mu.Lock()
	sub.dead = true
	sub.queue = nil
	sub.full = false
	sub.mu.Unlock()
}

func (s *Server) onSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	source := req.Source()
	if ok, retry := s.limiter.allow(sourceHost(source), time.Now()); !ok {
		s.metrics.rateLimited.Inc()
		res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(retry)))
		respond(tx, res)
		return
	}
	pkg, eventHeader := eventPackage(req)
	if pkg != eventFeature && pkg != eventHoteling {
		res := sip.NewResponseFromRequest(req, 489, "Bad Event", nil)
		res.AppendHeader(sip.NewHeader("Allow-Events", allowEvents))
		respond(tx, res)
		return
	}
	body := req.Body()
	if len(body) > s.limits().maxBodyBytes {
		respond(tx, sip.NewResponseFromRequest(req, 413, "Request Entity Too Large", nil))
		return
	}
	from, to, callID := req.From(), req.To(), req.CallID()
	if from == nil || to == nil || callID == nil || from.Address.User == "" {
		respond(tx, sip.NewResponseFromRequest(req, 400, "Missing From, To or Call-ID", nil))
		return
	}
	fromTag, _ := from.Params.Get("tag")
	if fromTag == "" {
		respond(tx, sip.NewResponseFromRequest(req, 400, "Missing From tag", nil))
		return
	}
	expires, err := s.requestedExpires(req)
	if err != nil {
		respond(tx, sip.NewResponseFromRequest(req, 400, "Bad Expires", nil))
		return
	}
	if expires != 0 && expires < s.cfg.MinExpires {
		res := sip.NewResponseFromRequest(req, 423, "Interval Too Brief", nil)
		res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(seconds(s.cfg.MinExpires))))
		respond(tx, res)
		return
	}
	// Every SUBSCRIBE when auth is required; a change request always.
	hasBody := len(bytes.TrimSpace(body)) > 0
	if s.cfg.RequireAuth || hasBody {
		if !s.authorize(req, tx, from.Address.User) {
			return
		}
	}

	// Parse a change request before anything is touched: malformed is 400
	// and changes nothing.
	var feature *FeatureRequest
	var hoteling *HotelingRequest
	if hasBody && expires != 0 {
		switch pkg {
		case eventFeature:
			fr, err := ParseFeatureRequest(body)
			if err != nil {
				respond(tx, sip.NewResponseFromRequest(req, 400, "Bad Request Body", nil))
				return
			}
			feature = &fr
		case eventHoteling:
			hr, err := ParseSetHoteling(body)
			if err != nil {
				respond(tx, sip.NewResponseFromRequest(req, 400, "Bad Request Body", nil))
				return
			}
			hoteling = &hr
		}
	}

	dn := from.Address.User
	toTag, _ := to.Params.Get("tag")
	isNew := toTag == ""
	var sub *subscription
	if isNew {
		if code := s.checkDevice(dn, pkg); code != 0 {
			res := sip.NewResponseFromRequest(req, code, reasonPhrase(code), nil)
			if code == 503 {
				res.AppendHeader(sip.NewHeader("Retry-After", "5"))
			}
			respond(tx, res)
			return
		}
		if req.Contact() == nil {
			respond(tx, sip.NewResponseFromRequest(req, 400, "Missing Contact", nil))
			return
		}
		if _, ok := routeSet(req, false); !ok {
			respond(tx, sip.NewResponseFromRequest(req, 400, "Too Many Record-Route Entries", nil))
			return
		}
		sub = s.newSubscription(req, dn, pkg, eventHeader, fromTag, expires)
	} else {
		sub = s.lookup(dialogID{callID.Value(), fromTag})
		if sub == nil || sub.localTag != toTag || sub.event != pkg {
			respond(tx, sip.NewResponseFromRequest(req, 481, "Subscription Does Not Exist", nil))
			return
		}
	}

	if feature != nil && feature.Kind == ChangeAgent && !s.agentAllowed(sub, *feature) {
		// 403 and nothing changes. A refused refresh leaves the
		// subscription as it was (RFC 6665 §4.1.2.2: only 481 ends it);
		// the phone is told the unchanged state, as for any refused change
		// (it shows what it asked for until told otherwise, sip.md §1.2).
		s.metrics.agentForbidden.Inc()
		respond(tx, sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
		if !isNew {
			s.enqueue(sub, notifyJob{kind: jobFeature, feature: ChangeAgent})
		}
		return
	}
	if expires == 0 { // unsubscribe, or a fetch when new (RFC 6665 §4.4.3)
		if !isNew {
			s.remove(sub)
		}
		respond(tx, s.okResponse(req, sub, 0))
		if isNew {
			s.enqueue(sub, notifyJob{kind: jobFull})
		}
		s.enqueue(sub, notifyJob{kind: jobTerminate, reason: "timeout", keepFull: isNew})
		return
	}
	if isNew {
		switch err := s.insert(sub); {
		case errors.Is(err, errLineFull):
			// Another device may well leave, but a device over the cap
			// retrying at once only costs: 403 (a policy refusal, not
			// "try again later" as 503 would say), the cause spelt out.
			s.metrics.lineFull.Inc()
			s.log.Debug("SUBSCRIBE refused: line full", "dn", dn, "event", pkg, "max", s.limits().maxPerLine)
			res := sip.NewResponseFromRequest(req, 403, "Too Many Devices On Line", nil)
			res.AppendHeader(sip.NewHeader("Warning", fmt.Sprintf(`399 %s "this line already holds %d %s subscriptions (sip.limits.max_subscriptions_per_line)"`,
				net.JoinHostPort(sub.localHost, strconv.Itoa(sub.localPort)), s.limits().maxPerLine, pkg)))
			respond(tx, res)
			return
		case err != nil:
			s.metrics.full.Inc()
			res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
			res.AppendHeader(sip.NewHeader("Retry-After", "30"))
			respond(tx, res)
			return
		}
	} else {
		s.refresh(sub, req, expires)
	}
	respond(tx, s.okResponse(req, sub, expires))
	s.touch(sub.dn, true)
	s.markDirty(sub)

	// A new or plainly refreshed subscription gets the full state; a
	// refresh carrying a change gets just that feature, once the gateway
	// has answered (the phone shows what the server says, sip.md §1.2).
	if isNew || (feature == nil && hoteling == nil) {
		s.enqueue(sub, notifyJob{kind: jobFull})
	}
	switch {
	case feature != nil:
		s.applyFeature(sub, *feature)
	case hoteling != nil:
		s.applyHoteling(sub, *hoteling)
	}
}

// requestedExpires is the SUBSCRIBE's Expires clamped to MaxExpires, the
// default when absent.
func (s *Server) requestedExpires(req *sip.Request) (time.Duration, error) {
	v := headerValue(req, "Expires", "")
	if v == "" {
		return s.cfg.DefaultExpires, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, err
	}
	d := time.Duration(n) * time.Second
	return min(d, s.cfg.MaxExpires), nil
}

// checkDevice answers 404 for a DN the gateway does not know (and 503 when
// it cannot tell), 0 when the device exists.
func (s *Server) checkDevice(dn, pkg string) int {
	ctx, cancel := context.WithTimeout(s.reqCtx, s.cfg.RequestTimeout)
	defer cancel()
	var err error
	if pkg == eventHoteling {
		_, err = s.svc.Hoteling(ctx, dn)
	} else {
		_, err = s.svc.FeatureState(ctx, dn)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUnknownDevice):
		return 404
	default:
		s.log.Warn("device lookup failed", "dn", dn, "err", err)
		return 503
	}
}

func (s *Server) newSubscription(req *sip.Request, dn, pkg, eventHeader, fromTag string, expires time.Duration) *subscription {
	transport := strings.ToUpper(req.Transport())
	host := s.bindHost
	if host == "" {
		host = req.Recipient.Host // how the phone reached us
	}
	port := s.port
	if transport == "TLS" {
		port = s.tlsPort
	}
	routes, _ := routeSet(req, false) // its length was checked by onSubscribe
	sub := &subscription{
		id:           dialogID{req.CallID().Value(), fromTag},
		key:          subKey{dn, pkg},
		dn:           dn,
		event:        pkg,
		eventHeader:  eventHeader,
		callID:       req.CallID().Value(),
		localTag:     sip.GenerateTagN(16),
		remoteTag:    fromTag,
		localURI:     bareURI(req.To().Address),
		remoteURI:    bareURI(req.From().Address),
		routes:       routes,
		remoteTarget: req.Contact().Address,
		device:       deviceOf(req.Contact().Address, req.Source(), transport),
		source:       req.Source(),
		transport:    transport,
		localHost:    host,
		localPort:    port,
		expires:      time.Now().Add(expires),
	}
	return sub
}

// bareURI drops URI parameters and headers, which From and To should not
// carry into the dialog.
func bareURI(u sip.Uri) sip.Uri {
	return sip.Uri{Scheme: u.Scheme, User: u.User, Host: u.Host, Port: u.Port}
}

func (s *Server) lookup(id dialogID) *subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs[id]
}

// insert holds a new subscription next to the line's others. A dialog of
// the same device (deviceOf: a rebooted phone that lost its dialog) is
// replaced, and told so. It refuses with 503 when closing or at
// max_subscriptions, and with errLineFull at max_subscriptions_per_line.
func (s *Server) insert(sub *subscription) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errClosing
	}
	line := s.lines[sub.key]
	var old *subscription
	for _, o := range line {
		if o.device == sub.device {
			old = o
			break
		}
	}
	switch {
	case old == nil && len(s.subs) >= s.limits().maxSubscriptions:
		s.mu.Unlock()
		return errServerFull
	case old == nil && len(line) >= s.limits().maxPerLine:
		s.mu.Unlock()
		return errLineFull
	}
	if old != nil {
		s.unlinkLocked(old)
	}
	s.linkLocked(sub)
	s.mu.Unlock()
	if old != nil {
		// Never dropped silently (issue 14). "rejected": the device is
		// on its new dialog; a client that did still use the old one
		// must not retry at once, or its two dialogs would keep
		// replacing each other (RFC 6665 §4.2.2).
		s.log.Info("subscription replaced by the same device's new dialog", "dn", sub.dn, "event", sub.event, "old_call_id", old.callID)
		s.enqueue(old, notifyJob{kind: jobTerminate, reason: "rejected"})
	}
	return nil
}

// Why insert refused a new dialog.
var (
	errClosing    = errors.New("phonesync: closing")
	errServerFull = errors.New("phonesync: max_subscriptions reached")
	errLineFull   = errors.New("phonesync: max_subscriptions_per_line reached")
)

// deviceOf names the device behind a new dialog: its Contact (scheme,
// user, host and port; parameters aside), the address its SUBSCRIBE came
// from (not the port: a rebooted phone behind a NAT may get a new one) and
// the transport. Two phones behind different NATs may well give the same
// private Contact; their sources differ.
func deviceOf(contact sip.Uri, source, transport string) string {
	return strings.ToLower(contact.Scheme) + ":" + contact.User + "@" + strings.ToLower(contact.Host) + ":" + strconv.Itoa(contact.Port) +
		" from " + sourceHost(source) + " over " + transport
}

// linkLocked and unlinkLocked keep s.subs and s.lines together. s.mu is
// held.
func (s *Server) linkLocked(sub *subscription) {
	s.subs[sub.id] = sub
	s.lines[sub.key] = append(s.lines[sub.key], sub)
}

func (s *Server) unlinkLocked(sub *subscription) {
	if s.subs[sub.id] == sub {
		delete(s.subs, sub.id)
	}
	line := s.lines[sub.key]
	if i := slices.Index(line, sub); i >= 0 {
		// A fresh slice: Publish may range over the old one unlocked.
		line = slices.Concat(line[:i], line[i+1:])
	}
	if len(line) == 0 {
		delete(s.lines, sub.key)
	} else {
		s.lines[sub.key] = line
	}
}

// Subscribed says whether any phone holds a subscription for line dn, of
// either package (the gateway keeps the users of subscribed lines loaded).
func (s *Server) Subscribed(dn string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines[subKey{dn, eventFeature}]) > 0 || len(s.lines[subKey{dn, eventHoteling}]) > 0
}

// lineLocked is the subscriptions of dn for an event package. The slice is
// never changed in place: a caller may use it after unlocking.
func (s *Server) lineLocked(dn, event string) []*subscription {
	return s.lines[subKey{dn, event}]
}

// refresh takes a re-SUBSCRIBE's new expiry and flow: its Contact is the
// new remote target (a target refresh, RFC 6665 §4.1.2.1); the route set
// stays as the dialog began (RFC 3261 §12.2).
func (s *Server) refresh(sub *subscription, req *sip.Request, expires time.Duration) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if c := req.Contact(); c != nil {
		sub.remoteTarget = c.Address
	}
	sub.source = req.Source()
	sub.transport = strings.ToUpper(req.Transport())
	sub.expires = time.Now().Add(expires)
}

// remove forgets a subscription (its queue is left to drain).
func (s *Server) remove(sub *subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(sub)
}

func (s *Server) removeLocked(sub *subscription) {
	s.unlinkLocked(sub)
	s.forgetPhoneLocked(sub.dn)
	s.markDirtyLocked()
}

// dropSub ends a subscription without telling the phone (it said 481).
func (s *Server) dropSub(sub *subscription) {
	s.remove(sub)
	sub.kill()
}

func (s *Server) okResponse(req *sip.Request, sub *subscription, expires time.Duration) *sip.Response {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.To().Params.Add("tag", sub.localTag) // ours, not the random one sipgo adds (sip.md §4.2)
	exp := sip.ExpiresHeader(seconds(expires))
	res.AppendHeader(&exp)
	sub.mu.Lock()
	contact := contactHeader(sub.localHost, sub.localPort, sub.transport)
	sub.mu.Unlock()
	res.AppendHeader(contact)
	return res
}

func contactHeader(host string, port int, transport string) *sip.ContactHeader {
	c := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: host, Port: port}}
	if transport != "" && transport != "UDP" {
		c.Address.UriParams = sip.NewParams()
		c.Address.UriParams.Add("transport", strings.ToLower(transport))
	}
	return c
}

// seconds rounds up to whole seconds.
func seconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

func sourceHost(source string) string {
	host, _, err := net.SplitHostPort(source)
	if err != nil {
		return source
	}
	return host
}

// agentAllowed asks the gateway whether the phone may ask for an agent
// state change (Service.AuthorizeAgent) before the SUBSCRIBE is answered.
// Only ErrForbidden refuses here; any other failure is SetAgentState's to
// meet, after the 200, like every refused change.
func (s *Server) agentAllowed(sub *subscription, fr FeatureRequest) bool {
	ctx, cancel := context.WithTimeout(s.reqCtx, s.cfg.RequestTimeout)
	defer cancel()
	err := s.svc.AuthorizeAgent(ctx, sub.dn, fr.AgentID, fr.AgentState)
	if errors.Is(err, ErrForbidden) {
		// Debug: a phone naming agent after agent must not flood the log;
		// connector_sip_subscribes_refused_total{reason="agent_forbidden"}
		// counts them.
		s.log.Debug("phone change refused: not the agent signed in at the phone", "dn", sub.dn, "agent", fr.AgentID, "state", fr.AgentState)
		return false
	}
	return true
}

// applyFeature takes a phone's SetDoNotDisturb / SetForwarding /
// SetAgentState to the gateway, then tells the phone the feature's value as
// the gateway now has it: the new one on success, the old one when refused.
func (s *Server) applyFeature(sub *subscription, fr FeatureRequest) {
	sub.reqMu.Lock()
	defer sub.reqMu.Unlock()
	ctx, cancel := context.WithTimeout(s.reqCtx, s.cfg.RequestTimeout)
	defer cancel()
	job := notifyJob{kind: jobFeature, feature: fr.Kind}
	var err error
	switch fr.Kind {
	case ChangeDoNotDisturb:
		err = s.svc.SetDoNotDisturb(ctx, sub.dn, fr.DoNotDisturb, OriginPhone)
	case ChangeForwarding:
		job.fwdType = fr.Forwarding.Type
		err = s.svc.SetForwarding(ctx, sub.dn, fr.Forwarding, OriginPhone)
	case ChangeAgent:
		err = s.svc.SetAgentState(ctx, sub.dn, fr.AgentID, fr.AgentState, fr.Reason, OriginPhone)
	default:
		return
	}
	if err != nil {
		// Refused: the phone shows what it asked for until told otherwise
		// (sip.md §1.2), so tell it the unchanged value.
		s.log.Info("phone change refused", "dn", sub.dn, "kind", fr.Kind, "err", err)
		s.enqueue(sub, job)
	}
	// Done: the gateway publishes the change when BroadWorks' event
	// confirms it, to this phone as to every other subscriber, in event
	// order. A snapshot sent now could be older than events still held
	// (the CTI answer goes out first) and would arrive out of order.
}

// applyHoteling runs the x-broadworks-hoteling sign-in with its nonce
// challenge (sip.md §1.4): a guest without authenticationData gets a fresh
// nonce; the answer MD5(nonce:password) is checked once; an empty guest
// address signs the guest out.
func (s *Server) applyHoteling(sub *subscription, hr HotelingRequest) {
	sub.reqMu.Lock()
	defer sub.reqMu.Unlock()
	if hr.GuestAddress == "" {
		s.setHoteling(sub, "")
		return
	}
	if hr.Auth == nil {
		nonce := randomToken(16)
		sub.mu.Lock()
		sub.hotel = hotelingChallenge{nonce: nonce, guest: hr.GuestAddress, expires: time.Now().Add(s.nonceTTL)}
		sub.mu.Unlock()
		s.enqueue(sub, notifyJob{kind: jobHoteling, nonce: nonce})
		return
	}
	sub.mu.Lock()
	ch := sub.hotel
	sub.hotel = hotelingChallenge{} // single use, right or wrong
	sub.mu.Unlock()
	ok := ch.nonce != "" &&
		subtle.ConstantTimeCompare([]byte(ch.nonce), []byte(hr.Auth.Nonce)) == 1 &&
		time.Now().Before(ch.expires) &&
		ch.guest == hr.GuestAddress &&
		(hr.Auth.Algorithm == "" || strings.EqualFold(hr.Auth.Algorithm, "MD5"))
	if ok {
		password, known := s.svc.GuestPassword(hr.GuestAddress)
		ok = known && CheckHotelingResponse(ch.nonce, password, hr.Auth.Response)
	}
	if !ok {
		s.log.Info("hoteling sign-in refused", "host", sub.dn, "guest", hr.GuestAddress)
		s.enqueue(sub, notifyJob{kind: jobDoc, ctype: HotelingContentType, body: HotelingEventDoc(Hoteling{}, "")})
		return
	}
	s.setHoteling(sub, hr.GuestAddress)
}

func (s *Server) setHoteling(sub *subscription, guest string) {
	ctx, cancel := context.WithTimeout(s.reqCtx, s.cfg.RequestTimeout)
	defer cancel()
	if err := s.svc.SetHoteling(ctx, sub.dn, guest, OriginPhone); err != nil {
		s.log.Info("hoteling change refused", "host", sub.dn, "guest", guest, "err", err)
	}
	s.enqueue(sub, notifyJob{kind: jobHoteling})
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Publish tells every device subscribed to dn's line about one change. It
// never blocks: the NOTIFY is queued on each subscription, the document
// built once for all of them.
func (s *Server) Publish(dn string, c Change) {
	if c.Kind == ChangeAgent && !s.cfg.AgentState {
		return
	}
	event := eventFeature
	if c.Kind == ChangeHoteling {
		event = eventHoteling
	}
	s.mu.Lock()
	line := s.lineLocked(dn, event)
	closing := s.closing
	s.mu.Unlock()
	if len(line) == 0 || closing {
		return
	}
	job := notifyJob{kind: jobDoc, shows: c.feature(), version: c.Version}
	if c.Kind == ChangeHoteling {
		job.ctype, job.body = HotelingContentType, HotelingEventDoc(c.Hoteling, "")
	} else {
		job.ctype, job.body = FeatureEventContentType, ChangeEventDoc(dn, c)
		if job.body == nil {
			return // nothing ECMA-323 can say about it
		}
	}
	for _, sub := range line {
		s.enqueue(sub, job)
	}
}

// showLocked decides whether a value of f at version v may go to the phone
// on sub, and if so notes it as what the phone now shows. It may not when
// the phone was already sent a newer value of f: a change published with
// a version at or below the one last shown is already in what was shown
// (a full state read at version V holds every change up to V, Version), so
// sending it would take the phone back. (This is what keeps a full state
// that coalesced an overflow, or that a refresh asked for, from being
// followed by the older deltas still queued behind it.) A value read at
// send time (read true: a full state, or one feature after a refused
// change) is never older than what was sent before it on the same
// subscription, since sends are sequential and every earlier value was
// published, so applied to the view, before this read began; it is sent
// even at an equal version. Version 0 is unversioned: always sent, noted
// nowhere. sub.mu is held.
func (sub *subscription) showLocked(f feature, v Version, read bool) bool {
	if v == 0 {
		return true
	}
	i := f.slot()
	if i < 0 {
		return true
	}
	last := sub.shown[i]
	if v < last || (v == last && !read) {
		return false
	}
	sub.shown[i] = v
	return true
}

// show is showLocked taking sub.mu.
func (sub *subscription) show(f feature, v Version, read bool) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.showLocked(f, v, read)
}

// enqueue adds a NOTIFY to the subscription's queue and makes sure a sender
// runs. A full queue collapses into one full-state NOTIFY, which carries
// every change it replaces.
func (s *Server) enqueue(sub *subscription, job notifyJob) {
	down := job.kind != jobTerminate && s.phoneDown(sub.dn)
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.dead {
		return
	}
	switch {
	case down:
		// Out of service: one full state stands for everything queued, so
		// a silent phone holds a sender for one deadline per burst, not one
		// per change; an answer brings it back, and its return resends.
		sub.queue = sub.queue[:0]
		sub.full = true
		sub.resync = true
	case job.kind == jobTerminate:
		sub.dead = true
		sub.full = sub.full && job.keepFull
		sub.queue = append(sub.queue[:0], job)
	case job.kind == jobFull:
		sub.full = true
	case len(sub.queue) >= s.queueLimit:
		sub.queue = sub.queue[:0]
		sub.full = true
	default:
		sub.queue = append(sub.queue, job)
	}
	if !sub.running && s.startSender(sub) {
		sub.running = true
	}
}

// startSender gets sub's queue sent: by a new sender goroutine while fewer
// than maxSenders run, else by the next one to finish (the ready list). It
// is false once the server stops taking work. Lock order: subscription.mu,
// then workMu.
func (s *Server) startSender(sub *subscription) bool {
	s.workMu.Lock()
	defer s.workMu.Unlock()
	if s.workersClosed {
		return false
	}
	if s.activeSenders < s.senderLimit {
		s.activeSenders++
		s.workers.Go(func() { s.runSender(sub) })
	} else {
		s.ready = append(s.ready, sub)
	}
	return true
}

// runSender sends sub's NOTIFYs, then those of the subscriptions waiting
// on the ready list, and ends when there are none.
func (s *Server) runSender(sub *subscription) {
	for sub != nil {
		s.drain(sub)
		sub = s.nextReady()
	}
}

func (s *Server) nextReady() *subscription {
	s.workMu.Lock()
	defer s.workMu.Unlock()
	if len(s.ready) == 0 {
		s.activeSenders--
		s.ready = nil
		return nil
	}
	sub := s.ready[0]
	s.ready[0] = nil
	s.ready = s.ready[1:]
	return sub
}

// drain sends sub's NOTIFYs one at a time, in order, until its queue is
// empty.
func (s *Server) drain(sub *subscription) {
	for {
		down := s.phoneDown(sub.dn)
		sub.mu.Lock()
		var job notifyJob
		switch {
		case down && len(sub.queue) > 0 && sub.queue[0].kind != jobTerminate:
			// Went out of service with NOTIFYs waiting: one full state
			// stands for them (as in enqueue).
			clear(sub.queue)
			sub.queue = sub.queue[:0]
			sub.full = true
			sub.resync = true
			sub.mu.Unlock()
			continue
		case sub.full:
			job = notifyJob{kind: jobFull}
			sub.full = false
		case len(sub.queue) > 0:
			job = sub.queue[0]
			sub.queue[0] = notifyJob{}
			sub.queue = sub.queue[1:]
		default:
			sub.running = false
			sub.queue = nil
			sub.mu.Unlock()
			return
		}
		sub.mu.Unlock()
		s.deliver(sub, job)
	}
}

func (s *Server) deliver(sub *subscription, job notifyJob) {
	switch job.kind {
	case jobTerminate:
		timeout := s.cfg.RequestTimeout
		if job.reason == "noresource" { // Close: say it once, do not wait long for the answer
			timeout = min(timeout, closeNotifyTimeout)
		}
		s.sendNotify(sub, "terminated;reason="+job.reason, "", nil, timeout)
	case jobDoc:
		if job.version != 0 && !sub.show(job.shows, job.version, false) {
			s.metrics.superseded.Inc()
			return
		}
		s.sendNotify(sub, "", job.ctype, job.body, s.cfg.RequestTimeout)
	case jobFull:
		s.sendFullState(sub)
	case jobFeature:
		ctx, cancel := context.WithTimeout(s.reqCtx, s.cfg.RequestTimeout)
		st, err := s.svc.FeatureState(ctx, sub.dn)
		cancel()
		if err != nil {
			s.log.Warn("feature state for NOTIFY", "dn", sub.dn, "err", err)
			return
		}
		c := featureChange(st, job.feature, job.fwdType)
		if !sub.show(c.feature(), st.Version, true) {
			return
		}
		if doc := ChangeEventDoc(sub.dn, c); doc != nil {
			s.sendNotify(sub, "", FeatureEventContentType, doc, s.cfg.RequestTimeout)
		}
	case jobHoteling:
		ctx, cancel := context.WithTimeout(s.reqCtx, s.cfg.RequestTimeout)
		h, err := s.svc.Hoteling(ctx, sub.dn)
		cancel()
		if err != nil {
			s.log.Warn("hoteling state for NOTIFY", "dn", sub.dn, "err", err)
			return
		}
		if !sub.show(feature{kind: ChangeHoteling}, h.Version, true) {
			return
		}
		s.sendNotify(sub, "", HotelingContentType, HotelingEventDoc(h, job.nonce), s.cfg.RequestTimeout)
	}
}

// featureChange picks one feature out of a full state.
func featureChange(st FeatureState, kind ChangeKind, fwd ForwardingType) Change {
	switch kind {
	case ChangeDoNotDisturb:
		return Change{Kind: ChangeDoNotDisturb, DoNotDisturb: st.DoNotDisturb}
	case ChangeForwarding:
		for _, f := range st.Forwarding {
			if f.Type == fwd {
				return Change{Kind: ChangeForwarding, Forwarding: f}
			}
		}
		return Change{Kind: ChangeForwarding, Forwarding: Forwarding{Type: fwd}}
	default:
		if st.Agent != nil {
			return Change{Kind: ChangeAgent, Agent: *st.Agent}
		}
		return Change{Kind: ChangeAgent, Agent: AgentState{State: AgentLoggedOff}}
	}
}

// udpMessageLimit is the largest NOTIFY sent over UDP. sipgo refuses UDP
// messages within 200 bytes of sip.UDPMTUSize (1500 by default, after RFC
// 3261 §18.1.1), which a multipart full state (~1.5 KB, sip.md §1.3) does
// not fit; BroadWorks and FreeSWITCH send it over UDP all the same and let
// IP fragment it, and phones subscribed over UDP cannot be reached over TCP
// anyway. Above this limit the full state goes one feature per NOTIFY.
const udpMessageLimit = 4000

func init() {
	// Set once before any goroutine runs; sipgo reads it only when writing.
	if sip.UDPMTUSize < udpMessageLimit+200 {
		sip.UDPMTUSize = udpMessageLimit + 200
	}
}

// udpNotifyLimit is the multipart body size that still fits udpMessageLimit
// with the NOTIFY's headers (~700 bytes with a long Call-ID and URIs).
func udpNotifyLimit() int { return udpMessageLimit - 700 }

func (s *Server) sendFullState(sub *subscription) {
	ctx, cancel := context.WithTimeout(s.reqCtx, s.cfg.RequestTimeout)
	defer cancel()
	if sub.event == eventHoteling {
		h, err := s.svc.Hoteling(ctx, sub.dn)
		if err != nil {
			s.log.Warn("hoteling state for NOTIFY", "dn", sub.dn, "err", err)
			s.fullStateLater(sub)
			return
		}
		s.fullStateGiven(sub)
		if !sub.show(feature{kind: ChangeHoteling}, h.Version, true) {
			return
		}
		s.sendNotify(sub, "", HotelingContentType, HotelingEventDoc(h, ""), s.cfg.RequestTimeout)
		return
	}
	st, err := s.svc.FeatureState(ctx, sub.dn)
	if err != nil {
		s.log.Warn("feature state for NOTIFY", "dn", sub.dn, "err", err)
		s.fullStateLater(sub)
		return
	}
	s.fullStateGiven(sub)
	sub.mu.Lock()
	for _, f := range fullStateFeatures {
		sub.showLocked(f, st.Version, true)
	}
	sub.mu.Unlock()
	if !s.cfg.AgentState {
		st.Agent = nil
	}
	docs := FeatureEventDocs(sub.dn, st)
	perFeature := s.cfg.NotifyPerFeature
	var ctype string
	var body []byte
	if !perFeature {
		ctype, body = Multipart(docs, FeatureEventContentType)
		sub.mu.Lock()
		udp := sub.transport == "UDP"
		sub.mu.Unlock()
		perFeature = udp && len(body) > udpNotifyLimit()-routeHeaderBytes(sub.routes)
	}
	if !perFeature {
		s.sendNotify(sub, "", ctype, body, s.cfg.RequestTimeout)
		return
	}
	for _, doc := range docs {
		sub.mu.Lock()
		killed := sub.dead && len(sub.queue) == 0 // replaced or dropped, not merely ending
		sub.mu.Unlock()
		if killed || s.reqCtx.Err() != nil {
			return
		}
		if !s.sendNotify(sub, "", FeatureEventContentType, doc, s.cfg.RequestTimeout) {
			return
		}
	}
}

// A full state the Service could not give (its link to BroadWorks not up
// yet: a connector that has just started, or taken over a pair's dialogs)
// is asked for again: after fullStateRetryMin, doubling up to
// fullStateRetryMax, at most fullStateTries times in a row.
const (
	fullStateRetryMin = 250 * time.Millisecond
	fullStateRetryMax = 30 * time.Second
	fullStateTries    = 8
)

func (s *Server) fullStateLater(sub *subscription) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.dead || sub.fullTries >= fullStateTries || s.reqCtx.Err() != nil {
		return
	}
	wait := min(fullStateRetryMin<<sub.fullTries, fullStateRetryMax)
	sub.fullTries++
	time.AfterFunc(wait, func() {
		if s.reqCtx.Err() == nil {
			s.enqueue(sub, notifyJob{kind: jobFull})
		}
	})
}

func (s *Server) fullStateGiven(sub *subscription) {
	sub.mu.Lock()
	sub.fullTries = 0
	sub.mu.Unlock()
}

// sendNotify sends one in-dialog NOTIFY (sip.md §4.3) and waits for the
// answer; state "" means active with the time left. It reports false when
// the subscription is gone (the phone answered 481).
func (s *Server) sendNotify(sub *subscription, state, ctype string, body []byte, timeout time.Duration) bool {
	sub.sendMu.Lock()
	defer sub.sendMu.Unlock()
	sub.mu.Lock()
	sub.cseq++
	cseq := sub.cseq
	// The state file need not follow every CSeq: a restart jumps by
	// restartCSeqGap, so a write each half gap keeps CSeqs increasing.
	persistCSeq := sub.transport == "UDP" && cseq-sub.savedCSeq >= restartCSeqGap/2
	f := sub.flowLocked()
	if state == "" {
		state = fmt.Sprintf("active;expires=%d", max(1, seconds(time.Until(sub.expires))))
	}
	sub.mu.Unlock()

	from := &sip.FromHeader{Address: sub.localURI, Params: sip.NewParams()}
	from.Params.Add("tag", sub.localTag)
	to := &sip.ToHeader{Address: sub.remoteURI, Params: sip.NewParams()}
	to.Params.Add("tag", sub.remoteTag)
	req := s.outboundWithHeaders(sip.NOTIFY, f, from, to, sub.callID, cseq)
	req.AppendHeader(sip.NewHeader("Event", sub.eventHeader))
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	if ctype != "" {
		ct := sip.ContentTypeHeader(ctype)
		req.AppendHeader(&ct)
	}
	req.SetBody(body)
	if persistCSeq {
		s.markDirty(sub)
	}

	// Close abandons NOTIFYs in flight (reqCtx) but lets the terminating
	// ones it sends go out (ctx).
	parent := s.reqCtx
	if strings.HasPrefix(state, "terminated") {
		parent = s.ctx
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	res, err := s.client.Do(ctx, req, sipgo.ClientRequestBuild)
	if err != nil {
		s.log.Debug("NOTIFY not answered", "dn", sub.dn, "event", sub.event, "cseq", cseq, "err", err)
		s.metrics.notified(sub.event, notifyNoAnswer)
		return true
	}
	s.touch(sub.dn, false)
	switch {
	case res.StatusCode == 481:
		s.log.Info("phone dropped the subscription", "dn", sub.dn, "event", sub.event)
		s.metrics.notified(sub.event, notifyGone)
		s.dropSub(sub)
		return false
	case !res.IsSuccess():
		s.log.Info("NOTIFY refused", "dn", sub.dn, "event", sub.event, "status", res.StatusCode)
		s.metrics.notified(sub.event, notifyRefused)
	default:
		s.metrics.notified(sub.event, notifyOK)
	}
	return true
}
