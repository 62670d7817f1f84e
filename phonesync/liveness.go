package phonesync

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"context"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Phone liveness: every SUBSCRIBE, every answer to a NOTIFY or OPTIONS and
// every OPTIONS a phone sends count as contact. With OptionsInterval set,
// each subscribed phone is pinged with OPTIONS over its flow; a phone not
// heard from for LivenessTimeout is reported out of service once, and back
// in service at its next contact (issue 5, "Phone liveness").

// PhoneInfo is what the admin surface shows about a phone.
type PhoneInfo struct {
	DN        string
	Address   string    // source IP of its latest SUBSCRIBE; "" once it holds none
	Port      int       // source port
	Transport string    // UDP, TCP or TLS
	Expires   time.Time // when its longest-lived subscription lapses unless refreshed
	LastSeen  time.Time
	InService bool
	Events    []string // event packages it is subscribed to, sorted
}

// phoneState is one phone's liveness record, keyed by DN. Records exist
// while the phone holds a subscription, and also while it is out of
// service, so that its return is reported.
type phoneState struct {
	lastSeen  time.Time
	inService bool
}

func (s *Server) livenessOn() bool {
	return s.cfg.OptionsInterval > 0 && s.cfg.LivenessTimeout > 0
}

// touch records contact from dn; create makes the record (only for a phone
// that just subscribed).
func (s *Server) touch(dn string, create bool) {
	s.mu.Lock()
	p := s.phones[dn]
	if p == nil {
		if !create || len(s.phones) >= maxPhones {
			s.mu.Unlock()
			return
		}
		p = &phoneState{inService: true}
		s.phones[dn] = p
	}
	p.lastSeen = time.Now()
	back := !p.inService
	s.mu.Unlock()
	if back {
		s.setInService(dn, true)
	}
}

// setInService reports a transition to the Service. serviceMu keeps the
// reports of one phone in the order the decisions were taken (lock order:
// serviceMu, then Server.mu).
func (s *Server) setInService(dn string, in bool) {
	s.serviceMu.Lock()
	defer s.serviceMu.Unlock()
	s.mu.Lock()
	p := s.phones[dn]
	if p == nil || p.inService == in || (!in && time.Since(p.lastSeen) <= s.cfg.LivenessTimeout) {
		s.mu.Unlock()
		return
	}
	p.inService = in
	s.mu.Unlock()
	if in {
		s.log.Info("phone back in service", "dn", dn)
	} else {
		s.log.Warn("phone out of service", "dn", dn, "silent_for", s.cfg.LivenessTimeout)
	}
	s.svc.PhoneService(dn, in)
	if in {
		s.resyncPhone(dn)
	}
}

// phoneDown says whether dn is out of service (NOTIFYs to it are coalesced).
func (s *Server) phoneDown(dn string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.phones[dn]
	return p != nil && !p.inService
}

// resyncPhone sends the full state on the subscriptions of a phone back in
// service whose NOTIFYs were coalesced meanwhile (the last attempt may have
// been lost).
func (s *Server) resyncPhone(dn string) {
	s.mu.Lock()
	subs := slices.Concat(s.lineLocked(dn, eventFeature), s.lineLocked(dn, eventHoteling))
	s.mu.Unlock()
	for _, sub := range subs {
		sub.mu.Lock()
		missed := sub.resync
		sub.resync = false
		sub.mu.Unlock()
		if missed {
			s.enqueue(sub, notifyJob{kind: jobFull})
		}
	}
}

// forgetPhoneLocked drops the record of a phone in service that holds no
// subscription any more. s.mu is held.
func (s *Server) forgetPhoneLocked(dn string) {
	if len(s.lineLocked(dn, eventFeature)) > 0 || len(s.lineLocked(dn, eventHoteling)) > 0 {
		return
	}
	if p := s.phones[dn]; p != nil && p.inService {
		delete(s.phones, dn)
	}
}

// housekeeping ends expired subscriptions and finds silent phones.
func (s *Server) housekeeping() {
	t := time.NewTicker(s.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.sweep(now)
		}
	}
}

func (s *Server) sweep(now time.Time) {
	var expired []*subscription
	var silent []string
	s.mu.Lock()
	for _, sub := range s.subs {
		sub.mu.Lock()
		gone := now.After(sub.expires)
		sub.mu.Unlock()
		if gone {
			expired = append(expired, sub)
		}
	}
	for _, sub := range expired {
		s.removeLocked(sub)
	}
	if s.livenessOn() {
		for dn, p := range s.phones {
			if p.inService && now.Sub(p.lastSeen) > s.cfg.LivenessTimeout {
				silent = append(silent, dn)
			}
		}
	}
	s.mu.Unlock()
	for _, sub := range expired {
		s.log.Info("subscription expired", "dn", sub.dn, "event", sub.event)
		s.enqueue(sub, notifyJob{kind: jobTerminate, reason: "timeout"})
	}
	for _, dn := range silent {
		s.setInService(dn, false)
	}
}

// flow is where and how to reach a phone.
type flow struct {
	dn                  string
	target              sip.Uri
	routes              []sip.Uri // the dialog's route set (never modified)
	source, transport   string
	host                string
	port                int
	localURI, remoteURI sip.Uri
	sub                 *subscription // the dialog the flow belongs to
}

func (sub *subscription) flowLocked() flow {
	return flow{
		dn: sub.dn, target: sub.remoteTarget, routes: sub.routes, source: sub.source, transport: sub.transport,
		host: sub.localHost, port: sub.localPort, localURI: sub.localURI, remoteURI: sub.remoteURI, sub: sub,
	}
}

// pingLoop sends OPTIONS to every subscribed phone each OptionsInterval.
func (s *Server) pingLoop() {
	t := time.NewTicker(s.cfg.OptionsInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.pingAll()
		}
	}
}

func (s *Server) pingAll() {
	// Every device of a line is pinged (its feature and hoteling dialogs
	// once): any answer is the line's contact, so a line is out of service
	// only when none of its devices answers.
	type target struct{ dn, device string }
	targets := make(map[target]flow)
	s.mu.Lock()
	for _, sub := range s.subs {
		k := target{sub.dn, sub.device}
		if _, ok := targets[k]; ok {
			continue
		}
		sub.mu.Lock()
		targets[k] = sub.flowLocked()
		sub.mu.Unlock()
	}
	s.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	ch := make(chan flow)
	var wg sync.WaitGroup
	for range min(optionsFanout, len(targets)) {
		wg.Go(func() {
			for f := range ch {
				s.ping(f)
			}
		})
	}
feed:
	for _, f := range targets {
		select {
		case ch <- f:
		case <-s.ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
}

// ping sends one OPTIONS over the phone's flow; any answer at all is
// contact. A phone reached straight gets it outside any dialog. Behind a
// proxy it goes inside the subscription's dialog, with its route set: a
// record-routing proxy relays only in-dialog requests that carry its
// Route (RFC 3261 §16.12); one with no To-tag it takes for a new request
// of its own to route, which would not reach the phone.
func (s *Server) ping(f flow) {
	if s.ctx.Err() != nil {
		return
	}
	from := &sip.FromHeader{Address: f.localURI, Params: sip.NewParams()}
	to := &sip.ToHeader{Address: f.remoteURI}
	callID, cseq := randomToken(16), uint32(1)
	if len(f.routes) > 0 && f.sub != nil {
		sub := f.sub
		if !sub.sendMu.TryLock() {
			return // a NOTIFY is in flight: its answer is contact enough
		}
		defer sub.sendMu.Unlock()
		sub.mu.Lock()
		sub.cseq++ // the dialog's CSeq, shared with its NOTIFYs (§12.2.1.1)
		cseq = sub.cseq
		persistCSeq := sub.transport == "UDP" && cseq-sub.savedCSeq >= restartCSeqGap/2 // as sendNotify
		sub.mu.Unlock()
		if persistCSeq {
			s.markDirty(sub)
		}
		callID = sub.callID
		from.Params.Add("tag", sub.localTag)
		to.Params = sip.NewParams()
		to.Params.Add("tag", sub.remoteTag)
	} else {
		from.Params.Add("tag", sip.GenerateTagN(16))
	}
	req := s.outboundWithHeaders(sip.OPTIONS, f, from, to, callID, cseq)
	req.SetBody(nil)
	ctx, cancel := context.WithTimeout(s.ctx, min(s.cfg.RequestTimeout, s.cfg.OptionsInterval))
	defer cancel()
	if _, err := s.client.Do(ctx, req, sipgo.ClientRequestBuild); err != nil {
		s.log.Debug("OPTIONS not answered", "dn", f.dn, "err", err)
		return
	}
	s.touch(f.dn, false)
}

// outbound starts a request to a phone over its flow: Request-URI, Via,
// Route, and where it goes (sip.md §4.3, "where to send"). With a route
// set, to its first entry (RFC 3261 §12.2.1.1, routeRequest). Without
// one, over UDP back to where the phone's SUBSCRIBE came from (NAT); over
// TCP or TLS over the connection the phone opened while it is open (a
// phone behind NAT cannot be reached at its Contact), else to the remote
// target.
func (s *Server) outbound(method sip.RequestMethod, f flow) *sip.Request {
	ruri, route, next := routeRequest(f.target, f.routes)
	transport, host, port := f.transport, f.host, f.port
	var dest string
	switch {
	case len(f.routes) > 0:
		transport = hopTransport(next, f.transport)
		if transport != f.transport {
			port = s.listenPort(transport)
		}
		dest = hopAddr(next, transport)
	case transport == "UDP" || s.connectionOpen(transport, f.source):
		dest = f.source
	default:
		dest = hopAddr(f.target, transport)
	}
	req := sip.NewRequest(method, ruri)
	req.SetTransport(transport)
	req.SetDestination(dest)
	if transport == "UDP" {
		s.udpLaddr.Copy(&req.Laddr) // from the listening port
	}
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: transport, Host: host, Port: port, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranchN(16))
	req.AppendHeader(via)
	for _, r := range route {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	return req
}

// listenPort is our port for transport (Via, Contact).
func (s *Server) listenPort(transport string) int {
	if transport == "TLS" {
		return s.tlsPort
	}
	return s.port
}

// connectionOpen says whether sipgo holds an open connection to addr over
// transport (it pools the ones phones open by their remote address, and
// sends a request to that address over it).
func (s *Server) connectionOpen(transport, addr string) bool {
	c, err := s.ua.TransportLayer().GetConnection(transport, addr)
	if err != nil || c == nil {
		return false
	}
	_, _ = c.TryClose() // GetConnection took a reference
	return true
}

// outboundWithHeaders is outbound with From, To, Call-ID, CSeq, Max-Forwards and
// our Contact: what NOTIFY and OPTIONS both carry.
func (s *Server) outboundWithHeaders(method sip.RequestMethod, f flow, from *sip.FromHeader, to *sip.ToHeader, callID string, cseq uint32) *sip.Request {
	req := s.outbound(method, f)
	cid := sip.CallIDHeader(callID)
	maxf := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	req.AppendHeader(&maxf)
	via := req.Via()
	req.AppendHeader(contactHeader(f.host, via.Port, via.Transport))
	return req
}

// Phones lists the phones holding subscriptions or out of service, by DN.
func (s *Server) Phones() []PhoneInfo {
	s.mu.Lock()
	byDN := make(map[string]*PhoneInfo, len(s.phones))
	for dn, p := range s.phones {
		byDN[dn] = &PhoneInfo{DN: dn, LastSeen: p.lastSeen, InService: p.inService}
	}
	for _, sub := range s.subs {
		info := byDN[sub.dn]
		if info == nil {
			info = &PhoneInfo{DN: sub.dn, InService: true}
			byDN[sub.dn] = info
		}
		info.Events = append(info.Events, sub.event)
		sub.mu.Lock()
		if sub.expires.After(info.Expires) {
			info.Expires = sub.expires
			host, port, _ := net.SplitHostPort(sub.source)
			info.Address = host
			info.Port, _ = strconv.Atoi(port)
			info.Transport = sub.transport
		}
		sub.mu.Unlock()
	}
	s.mu.Unlock()
	out := make([]PhoneInfo, 0, len(byDN))
	for _, info := range byDN {
		slices.Sort(info.Events)
		out = append(out, *info)
	}
	slices.SortFunc(out, func(a, b PhoneInfo) int { return strings.Compare(a.DN, b.DN) })
	return out
}
