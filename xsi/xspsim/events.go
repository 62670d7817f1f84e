package xspsim

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// Channel termination reasons (XSD ChannelTerminatedReason).
const (
	ReasonDuplicateChannelSet  = "DuplicateChannelSet"
	ReasonUserDeleted          = "UserDeleted"
	ReasonNonResponsiveChannel = "NonResponsiveChannel"
	ReasonExplicitDelete       = "ExplicitDelete"
	ReasonExpired              = "Expired"
	ReasonUnknownChannel       = "UnknownChannel"
)

type streamItem struct {
	data []byte
	last bool // close the stream (cleanly) after writing
	cut  bool // write half of data, then drop the connection
}

type channel struct {
	id                   string
	xsp                  int // XSP node holding the stream
	set                  *channelSet
	priority, weight     int
	expires              int
	expiresAt            time.Time // zero = never
	lastHeartbeat        time.Time
	q                    chan streamItem
	done                 chan struct{} // closed: abort the stream abruptly
	closed               bool          // removed; no further enqueues
	unacked              int           // events sent and not yet acknowledged
	chunkSeed1, chunkSeq uint64
}

type channelSet struct {
	key, id, owner, appID string
	channels              []*channel
	backlog               []*pendingEvent
}

type subscription struct {
	id, owner, setKey, setID, appID string
	targetType                      string // User, Group, ServiceProvider
	targetID, grpParent             string
	grp                             *group      // Group targets
	ent                             *enterprise // ServiceProvider targets
	packages                        []string
	list                            bool
	seq                             int
	expires                         int
	expiresAt                       time.Time
}

// backlogChannel is the placeholder channelId of events held in a channel
// set's backlog; it is replaced on delivery.
const backlogChannel = "xspsim-backlog-channel-placeholder"

type pendingEvent struct {
	id       string
	subID    string
	setKey   string
	data     []byte
	ch       *channel
	deadline time.Time
	tried    map[string]bool // channel IDs that answered 500
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (s *Server) grantExpires(req int) (int, time.Time) {
	if req == NeverExpires {
		return NeverExpires, time.Time{}
	}
	g := req
	if g < s.cfg.MinExpires {
		g = s.cfg.MinExpires
	}
	if g > s.cfg.MaxExpires {
		g = s.cfg.MaxExpires
	}
	return g, time.Now().Add(time.Duration(g) * s.cfg.ExpiresUnit)
}

func (s *Server) owner(r *http.Request) string {
	if s.cfg.Username != "" {
		return s.cfg.Username
	}
	return "admin@sim.example.com"
}

// --- documents -----------------------------------------------------------------

func channelDoc(id string, expires int) []byte {
	doc, r := newDoc("Channel", "UTF-8")
	add(r, "channelId", id)
	add(r, "expires", strconv.Itoa(expires))
	return render(doc)
}

func heartbeatDoc() []byte {
	doc, _ := newDoc("ChannelHeartBeat", "UTF-8")
	return render(doc)
}

func eventEnvelope(typ string) (*etree.Document, *etree.Element) {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	ev := doc.CreateElement("xsi:Event")
	ev.CreateAttr("xmlns:xsi", NS)
	ev.CreateAttr("xmlns:xsi1", NSXSI)
	ev.CreateAttr("xsi1:type", "xsi:"+typ)
	return doc, ev
}

func channelTerminatedDoc(chID, reason string) []byte {
	doc, ev := eventEnvelope("ChannelTerminatedEvent")
	add(ev, "xsi:channelId", chID)
	add(ev, "xsi:reason", reason)
	return render(doc)
}

func (s *Server) subscriptionEventDoc(sub *subscription, seq int, eventID, chID, targetID string, ed *etree.Element) []byte {
	doc, ev := eventEnvelope("SubscriptionEvent")
	add(ev, "xsi:eventID", eventID)
	add(ev, "xsi:sequenceNumber", strconv.Itoa(seq))
	add(ev, "xsi:userId", sub.owner)
	add(ev, "xsi:externalApplicationId", sub.appID)
	add(ev, "xsi:subscriptionId", sub.id)
	add(ev, "xsi:channelId", chID)
	if targetID != "" {
		add(ev, "xsi:targetId", targetID)
	}
	ev.AddChild(ed)
	return render(doc)
}

// --- delivery (s.mu held) ----------------------------------------------------------

func (sub *subscription) covers(pkg string) bool {
	for _, p := range sub.packages {
		if p == pkg {
			return true
		}
	}
	return false
}

// notifyLocked emits ed (an eventData element) for package pkg of user u to
// every live subscription covering it — to the user, its group or its
// enterprise — in subscription ID order.
func (s *Server) notifyLocked(u *userState, pkg string, ed *etree.Element) {
	if pkg == PkgCallCenterAgent && !u.CallCenter {
		return
	}
	var subs []*subscription
	for _, m := range []map[string]*subscription{s.subsByUser[u.ID], u.grp.subs, u.grp.ent.subs} {
		for _, sub := range m {
			if sub.covers(pkg) {
				subs = append(subs, sub)
			}
		}
	}
	if len(subs) > 1 {
		slices.SortFunc(subs, func(a, b *subscription) int { return strings.Compare(a.id, b.id) })
	}
	for _, sub := range subs {
		s.emitLocked(sub, u.ID, ed.Copy())
	}
}

// addSubLocked registers sub in s.subs and in the index by target.
func (s *Server) addSubLocked(sub *subscription) {
	s.subs[sub.id] = sub
	switch {
	case sub.grp != nil:
		if sub.grp.subs == nil {
			sub.grp.subs = make(map[string]*subscription)
		}
		sub.grp.subs[sub.id] = sub
	case sub.ent != nil:
		if sub.ent.subs == nil {
			sub.ent.subs = make(map[string]*subscription)
		}
		sub.ent.subs[sub.id] = sub
	default:
		m := s.subsByUser[sub.targetID]
		if m == nil {
			m = make(map[string]*subscription)
			s.subsByUser[sub.targetID] = m
		}
		m[sub.id] = sub
	}
}

// deleteSubLocked removes sub from s.subs and from the index by target.
func (s *Server) deleteSubLocked(sub *subscription) {
	delete(s.subs, sub.id)
	switch {
	case sub.grp != nil:
		delete(sub.grp.subs, sub.id)
	case sub.ent != nil:
		delete(sub.ent.subs, sub.id)
	default:
		if m := s.subsByUser[sub.targetID]; m != nil {
			delete(m, sub.id)
			if len(m) == 0 {
				delete(s.subsByUser, sub.targetID)
			}
		}
	}
}

// sameTargetLocked are the subscriptions with the target of sub.
func (s *Server) sameTargetLocked(sub *subscription) map[string]*subscription {
	switch {
	case sub.grp != nil:
		return sub.grp.subs
	case sub.ent != nil:
		return sub.ent.subs
	}
	return s.subsByUser[sub.targetID]
}

func (s *Server) emitLocked(sub *subscription, targetID string, ed *etree.Element) {
	sub.seq++
	if sub.seq > NeverExpires {
		sub.seq = 1
	}
	pe := &pendingEvent{id: newID(), subID: sub.id, setKey: sub.setKey}
	s.deliverLocked(pe, sub, targetID, ed)
}

// deliverLocked sends an event to the best channel of its set, or keeps it
// in the set's backlog while the set has no channel.
func (s *Server) deliverLocked(pe *pendingEvent, sub *subscription, targetID string, ed *etree.Element) {
	set := s.sets[pe.setKey]
	if set == nil {
		s.stats.EventsDropped++
		return
	}
	ch := s.pickChannelLocked(set, pe.tried)
	seq := sub.seq
	render := func(chID string) []byte {
		return s.subscriptionEventDoc(sub, seq, pe.id, chID, targetID, ed)
	}
	if ch == nil {
		if len(set.backlog) >= s.cfg.BacklogSize {
			set.backlog = set.backlog[1:]
			s.stats.EventsDropped++
		}
		pe.data = render(backlogChannel)
		set.backlog = append(set.backlog, pe)
		return
	}
	pe.data = render(ch.id)
	s.sendEventLocked(pe, ch)
}

func (s *Server) sendEventLocked(pe *pendingEvent, ch *channel) {
	pe.ch = ch
	if s.cfg.EventAckTimeout > 0 {
		pe.deadline = time.Now().Add(s.cfg.EventAckTimeout)
	}
	s.pending[pe.id] = pe
	s.stats.EventsSent++
	ch.unacked++
	if ch.unacked > maxUnacked(s.cfg.QueueSize) {
		// Bounded memory: a client that never acknowledges loses its channel.
		s.terminateLocked(ch, ReasonNonResponsiveChannel)
		return
	}
	s.enqueueLocked(ch, streamItem{data: pe.data})
}

func maxUnacked(queueSize int) int { return 4 * queueSize }

func (s *Server) pickChannelLocked(set *channelSet, exclude map[string]bool) *channel {
	var best []*channel
	for _, ch := range set.channels {
		if ch.closed || exclude[ch.id] {
			continue
		}
		if len(best) == 0 || ch.priority < best[0].priority {
			best = []*channel{ch}
		} else if ch.priority == best[0].priority {
			best = append(best, ch)
		}
	}
	if len(best) == 0 {
		return nil
	}
	total := 0
	for _, ch := range best {
		total += max(ch.weight, 1)
	}
	n := s.rng.IntN(total)
	for _, ch := range best {
		n -= max(ch.weight, 1)
		if n < 0 {
			return ch
		}
	}
	return best[0]
}

// enqueueLocked puts an item on the channel's bounded queue; a full queue
// means the client is not reading: the channel is dropped abruptly.
func (s *Server) enqueueLocked(ch *channel, it streamItem) {
	if ch.closed {
		return
	}
	select {
	case ch.q <- it:
	default:
		s.log.Warn("xspsim: channel queue full, dropping channel", "channel", ch.id)
		s.abortLocked(ch)
	}
}

// removeLocked detaches ch from the server (no more events). Un-acked events
// sent on it are forgotten.
func (s *Server) removeLocked(ch *channel) {
	ch.closed = true
	delete(s.channels, ch.id)
	set := ch.set
	for i, c := range set.channels {
		if c == ch {
			set.channels = append(set.channels[:i], set.channels[i+1:]...)
			break
		}
	}
	for id, pe := range s.pending {
		if pe.ch == ch {
			delete(s.pending, id)
		}
	}
}

// terminateLocked ends ch with a ChannelTerminatedEvent, then closes the
// stream cleanly.
func (s *Server) terminateLocked(ch *channel, reason string) {
	if ch.closed {
		return
	}
	s.removeLocked(ch)
	b := channelTerminatedDoc(ch.id, reason)
	select {
	case ch.q <- streamItem{data: b, last: true}:
	default:
		close(ch.done)
	}
}

// abortLocked drops ch without a ChannelTerminatedEvent; the stream handler
// aborts the connection.
func (s *Server) abortLocked(ch *channel) {
	if ch.closed {
		select {
		case <-ch.done:
		default:
			close(ch.done)
		}
		return
	}
	s.removeLocked(ch)
	close(ch.done)
}

// flushBacklogLocked sends held events to a (new) channel of the set.
func (s *Server) flushBacklogLocked(set *channelSet) {
	if len(set.backlog) == 0 {
		return
	}
	ch := s.pickChannelLocked(set, nil)
	if ch == nil {
		return
	}
	old := set.backlog
	set.backlog = nil
	for _, pe := range old {
		pe.data = []byte(strings.Replace(string(pe.data), backlogChannel, ch.id, 1))
		s.sendEventLocked(pe, ch)
	}
}

// --- channel handlers --------------------------------------------------------------

var orderChannel = []string{"channelId", "channelSetId", "priority", "weight", "expires", "applicationId"}

// handleChannelAdd serves the streaming POST .../async/.../channel.
func (s *Server) handleChannelAdd(w http.ResponseWriter, r *http.Request) {
	body, perr := parseBody(w, r, "Channel", orderChannel)
	if perr != nil {
		s.writeError(w, perr)
		return
	}
	setID, appID := "", ""
	priority, weight, req := 1, 50, s.cfg.DefaultExpires
	if e := child(body, "channelSetId"); e != nil {
		if setID, perr = token(e); perr != nil {
			s.writeError(w, perr)
			return
		}
	}
	if setID == "" || len(setID) > 256 {
		s.writeError(w, invalid("channelSetId is required (1..256 characters)"))
		return
	}
	for _, f := range []struct {
		tag string
		dst *int
	}{{"priority", &priority}, {"weight", &weight}, {"expires", &req}} {
		if e := child(body, f.tag); e != nil {
			lo := 1
			if f.tag == "expires" {
				lo = 0
			}
			if *f.dst, perr = parseInt(e, lo, NeverExpires); perr != nil {
				s.writeError(w, perr)
				return
			}
		}
	}
	if e := child(body, "applicationId"); e != nil {
		if appID, perr = token(e); perr != nil {
			s.writeError(w, perr)
			return
		}
	}
	// The stream lives on: lift the body read deadline, or the server's
	// background read would cancel the request when it expires.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	flusher, ok := w.(http.Flusher)
	if !ok {
		s.writeError(w, errf(http.StatusInternalServerError, ErrCodeInjected, "streaming not supported"))
		return
	}
	owner := s.owner(r)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.writeError(w, errf(http.StatusServiceUnavailable, ErrCodeOverload, "server shutting down"))
		return
	}
	key := owner + "\x00" + setID
	set := s.sets[key]
	if set == nil {
		set = &channelSet{key: key, id: setID, owner: owner}
		s.sets[key] = set
	}
	if appID != "" {
		set.appID = appID
		// A new channel set with the same applicationId replaces the old one.
		for _, other := range s.sets {
			if other != set && other.owner == owner && other.appID == appID {
				for _, ch := range append([]*channel(nil), other.channels...) {
					s.terminateLocked(ch, ReasonDuplicateChannelSet)
				}
			}
		}
	}
	s.chanSeq++
	granted, at := s.grantExpires(req)
	ch := &channel{
		id: newID(), xsp: xspOf(r), set: set, priority: priority, weight: weight, expires: granted, expiresAt: at,
		lastHeartbeat: time.Now(), q: make(chan streamItem, s.cfg.QueueSize), done: make(chan struct{}),
		chunkSeed1: s.cfg.Chunking.Seed, chunkSeq: s.chanSeq,
	}
	ch.q <- streamItem{data: channelDoc(ch.id, granted)}
	s.channels[ch.id] = ch
	set.channels = append(set.channels, ch)
	s.flushBacklogLocked(set)
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	s.log.Debug("xspsim: channel added", "channel", ch.id, "set", setID)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: newID(), Path: "/com.broadsoft.xsi-events", HttpOnly: true})
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	s.stream(w, r, ch)
}

// handleChannel serves PUT (refresh) and DELETE on .../channel/{id}.
func (s *Server) handleChannel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req int
	if r.Method == http.MethodPut {
		body, perr := parseBody(w, r, "Channel", orderChannel)
		if perr != nil {
			s.writeError(w, perr)
			return
		}
		e := child(body, "expires")
		if e == nil {
			s.writeError(w, invalid("expires is required"))
			return
		}
		if req, perr = parseInt(e, 0, NeverExpires); perr != nil {
			s.writeError(w, perr)
			return
		}
	}
	s.mu.Lock()
	ch := s.channelOn(r, id)
	if ch == nil {
		s.mu.Unlock()
		s.writeError(w, errf(http.StatusNotFound, ErrCodeNotFound, "Channel not found: %s", id))
		return
	}
	if r.Method == http.MethodDelete {
		s.terminateLocked(ch, ReasonExplicitDelete)
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		return
	}
	if req == 0 {
		s.terminateLocked(ch, ReasonExpired)
		s.mu.Unlock()
		s.writeEventsDoc(w, http.StatusOK, "Channel", func(r *etree.Element) {
			add(r, "channelId", id)
			add(r, "expires", "0")
		})
		return
	}
	ch.expires, ch.expiresAt = s.grantExpires(req)
	granted := ch.expires
	s.mu.Unlock()
	s.writeEventsDoc(w, http.StatusOK, "Channel", func(r *etree.Element) {
		add(r, "channelId", id)
		add(r, "expires", strconv.Itoa(granted))
	})
}

// channelOn returns channel id if it lives on the XSP the request came to.
func (s *Server) channelOn(r *http.Request, id string) *channel {
	ch := s.channels[id]
	if ch == nil || ch.xsp != xspOf(r) {
		return nil
	}
	return ch
}

// handleHeartbeat serves PUT .../channel/{id}/heartbeat.
func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	ch := s.channelOn(r, id)
	if ch == nil {
		s.mu.Unlock()
		s.writeError(w, errf(http.StatusNotFound, ErrCodeNotFound, "Channel not found: %s", id))
		return
	}
	if !s.faults.ignoreHeartbeats {
		ch.lastHeartbeat = time.Now()
		s.stats.Heartbeats++
		s.enqueueLocked(ch, streamItem{data: heartbeatDoc()})
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// handleChannelSet serves GET .../channelset/{id}.
func (s *Server) handleChannelSet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	set := s.sets[s.owner(r)+"\x00"+r.PathValue("id")]
	if set == nil || len(set.channels) == 0 {
		s.mu.Unlock()
		s.writeError(w, errf(http.StatusNotFound, ErrCodeNotFound, "Channel set not found: %s", r.PathValue("id")))
		return
	}
	type info struct {
		id           string
		prio, weight int
		expires      int
	}
	var chans []info
	for _, ch := range set.channels {
		chans = append(chans, info{ch.id, ch.priority, ch.weight, ch.expires})
	}
	setID := set.id
	s.mu.Unlock()
	s.writeEventsDoc(w, http.StatusOK, "ChannelSet", func(r *etree.Element) {
		for _, c := range chans {
			e := r.CreateElement("channel")
			add(e, "channelId", c.id)
			add(e, "channelSetId", setID)
			add(e, "priority", strconv.Itoa(c.prio))
			add(e, "weight", strconv.Itoa(c.weight))
			add(e, "expires", strconv.Itoa(c.expires))
		}
	})
}

// handleEventResponse serves POST .../channel/eventresponse.
func (s *Server) handleEventResponse(w http.ResponseWriter, r *http.Request) {
	body, perr := parseBody(w, r, "EventResponse", []string{"eventID", "statusCode", "reason"})
	if perr != nil {
		s.writeError(w, perr)
		return
	}
	idE, codeE, reasonE := child(body, "eventID"), child(body, "statusCode"), child(body, "reason")
	if idE == nil || codeE == nil || reasonE == nil {
		s.writeError(w, badRequest("EventResponse requires eventID, statusCode and reason"))
		return
	}
	id, perr := token(idE)
	if perr == nil {
		_, perr = token(reasonE)
	}
	var code int
	if perr == nil {
		code, perr = parseInt(codeE, 200, 500)
	}
	if perr == nil && code != 200 && code != 400 && code != 404 && code != 481 && code != 500 {
		perr = invalid("statusCode %d not in {200,400,404,481,500}", code)
	}
	if perr != nil {
		s.writeError(w, perr)
		return
	}
	s.mu.Lock()
	pe := s.pending[id]
	if pe != nil && pe.ch != nil && pe.ch.xsp != xspOf(r) {
		pe = nil // the event went out on a channel of another XSP
	}
	if pe == nil {
		s.mu.Unlock()
		s.writeError(w, errf(http.StatusNotFound, ErrCodeNotFound, "Event not found or already acknowledged: %s", id))
		return
	}
	delete(s.pending, id)
	if pe.ch != nil {
		pe.ch.unacked--
	}
	s.stats.EventsAcked++
	switch code {
	case 404: // client does not know the channel: delete it, resend on the next one
		ch := pe.ch
		s.terminateLocked(ch, ReasonUnknownChannel)
		s.redeliverLocked(pe, ch)
	case 481: // client does not know the subscription: delete it silently
		if sub := s.subs[pe.subID]; sub != nil {
			s.deleteSubLocked(sub)
		}
	case 500: // client failure: send to the next channel of the set, if any
		s.redeliverLocked(pe, pe.ch)
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *Server) redeliverLocked(pe *pendingEvent, from *channel) {
	set := s.sets[pe.setKey]
	if set == nil {
		return
	}
	if pe.tried == nil {
		pe.tried = map[string]bool{}
	}
	pe.tried[from.id] = true
	ch := s.pickChannelLocked(set, pe.tried)
	if ch == nil {
		s.stats.EventsDropped++
		return
	}
	pe.data = []byte(strings.Replace(string(pe.data), "<xsi:channelId>"+from.id+"</xsi:channelId>", "<xsi:channelId>"+ch.id+"</xsi:channelId>", 1))
	s.sendEventLocked(pe, ch)
}

// --- subscriptions ---------------------------------------------------------------

var orderSubscription = []string{"subscriptionId", "sharedSubscriptionId", "subscriberId", "targetIdType",
	"targetGrpParentId", "targetId", "targetSubId", "event", "eventPackageList", "expires", "httpContact",
	"channelSetId", "applicationId"}

func validPackage(p string) bool {
	for _, x := range supportedPackages {
		if x == p {
			return true
		}
	}
	return false
}

// handleSubscribe serves POST .../user/{userId}[/subscription],
// .../enterprise|serviceprovider/{entId}[/group/{groupId}].
func (s *Server) handleSubscribe(w http.ResponseWriter, r *http.Request) {
	body, perr := parseBody(w, r, "Subscription", orderSubscription)
	if perr != nil {
		s.writeError(w, perr)
		return
	}
	var pkgs []string
	list := false
	if e := child(body, "event"); e != nil {
		p, err := token(e)
		if err != nil {
			s.writeError(w, err)
			return
		}
		pkgs = append(pkgs, p)
	} else if l := child(body, "eventPackageList"); l != nil {
		if s.cfg.RejectPackageLists {
			s.writeError(w, badRequest("eventPackageList is not supported by this XSP (before R23): subscribe to one event per subscription"))
			return
		}
		list = true
		for _, e := range l.ChildElements() {
			if e.Tag != "event" || e.NamespaceURI() != NS {
				s.writeError(w, badRequest("unexpected element %s in eventPackageList", e.Tag))
				return
			}
			p, err := token(e)
			if err != nil {
				s.writeError(w, err)
				return
			}
			if !containsString(pkgs, p) {
				pkgs = append(pkgs, p)
			}
		}
	}
	if len(pkgs) == 0 {
		s.writeError(w, invalid("event or eventPackageList is required"))
		return
	}
	for _, p := range pkgs {
		if !validPackage(p) {
			s.writeError(w, invalid("event package %q is not supported by the simulator (supported: %s)", p, strings.Join(supportedPackages, ", ")))
			return
		}
	}
	if child(body, "httpContact") != nil {
		s.writeError(w, invalid("httpContact subscriptions are not supported by the simulator; use channelSetId"))
		return
	}
	setID, appID, req := "", "", s.cfg.DefaultExpires
	if e := child(body, "channelSetId"); e != nil {
		if setID, perr = token(e); perr != nil {
			s.writeError(w, perr)
			return
		}
	}
	if setID == "" {
		s.writeError(w, invalid("channelSetId is required"))
		return
	}
	if e := child(body, "applicationId"); e != nil {
		if appID, perr = token(e); perr != nil {
			s.writeError(w, perr)
			return
		}
	}
	if e := child(body, "expires"); e != nil {
		if req, perr = parseInt(e, 0, NeverExpires); perr != nil {
			s.writeError(w, perr)
			return
		}
	}
	owner := s.owner(r)
	sub := &subscription{id: newID(), owner: owner, setKey: owner + "\x00" + setID, setID: setID, appID: appID, packages: pkgs, list: list}
	if sub.appID == "" {
		sub.appID = "xspsim-default-app"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.PathValue("userId") != "":
		u := s.users[r.PathValue("userId")]
		if u == nil {
			s.writeErrorUnlock(w, errf(http.StatusNotFound, ErrCodeUserNotFound, "User not found: %s", r.PathValue("userId")))
			return
		}
		if !s.reaches(u.grp.ent.id) {
			s.writeErrorUnlock(w, outOfScope("user", u.ID, u.grp.ent.id))
			return
		}
		if containsString(pkgs, PkgCallCenterAgent) && !u.CallCenter {
			s.writeErrorUnlock(w, notAssigned("Call Center", u.ID))
			return
		}
		sub.targetType, sub.targetID = "User", u.ID
	case r.PathValue("groupId") != "":
		entID, grpID := r.PathValue("entId"), r.PathValue("groupId")
		if !s.reaches(entID) {
			s.writeErrorUnlock(w, outOfScope("group", grpID, entID))
			return
		}
		g := s.groups[groupKey{entID, grpID}]
		if g == nil {
			s.writeErrorUnlock(w, errf(http.StatusNotFound, ErrCodeNotFound, "Group not found: %s/%s", entID, grpID))
			return
		}
		sub.targetType, sub.targetID, sub.grpParent, sub.grp = "Group", g.id, g.ent.id, g
	default:
		entID := r.PathValue("entId")
		if !s.reaches(entID) {
			s.writeErrorUnlock(w, outOfScope("enterprise", entID, entID))
			return
		}
		e := s.ents[entID]
		if e == nil {
			s.writeErrorUnlock(w, errf(http.StatusNotFound, ErrCodeNotFound, "Enterprise not found: %s", entID))
			return
		}
		sub.targetType, sub.targetID, sub.ent = "ServiceProvider", e.id, e
	}
	for _, o := range s.sameTargetLocked(sub) {
		if o.owner == owner && o.setKey == sub.setKey {
			if list && o.list {
				// One list subscription per owner and target: the new one replaces it (§4.2.4.6).
				s.deleteSubLocked(o)
				continue
			}
			for _, p := range pkgs {
				if o.covers(p) {
					s.writeErrorUnlock(w, errf(http.StatusConflict, ErrCodeDuplicate, "Subscription already exists for %s %q: %s", sub.targetID, p, o.id))
					return
				}
			}
		}
	}
	if s.sets[sub.setKey] == nil {
		s.sets[sub.setKey] = &channelSet{key: sub.setKey, id: setID, owner: owner, appID: appID}
	}
	sub.expires, sub.expiresAt = s.grantExpires(req)
	s.noteSubExpiryLocked(sub.expiresAt)
	s.addSubLocked(sub)
	s.initialEventsLocked(sub)
	id, granted := sub.id, sub.expires
	s.mu.Unlock()
	s.writeEventsDoc(w, http.StatusOK, "Subscription", func(r *etree.Element) {
		add(r, "subscriptionId", id)
		add(r, "expires", strconv.Itoa(granted))
	})
	s.mu.Lock() // for the deferred Unlock
}

func (s *Server) writeErrorUnlock(w http.ResponseWriter, e *simError) {
	s.mu.Unlock()
	s.writeError(w, e)
	s.mu.Lock()
}

// initialEventsLocked sends the full-state events of a user-target
// subscription (after add and refresh). Group/enterprise targets get none.
func (s *Server) initialEventsLocked(sub *subscription) {
	if sub.targetType != "User" {
		return
	}
	u := s.users[sub.targetID]
	if u == nil {
		return
	}
	for _, p := range sub.packages {
		if p == PkgCallCenterAgent && !u.CallCenter {
			continue
		}
		s.emitLocked(sub, u.ID, s.serviceEventData(u, p))
	}
}

func subscriptionXML(parent *etree.Element, sub *subscription) {
	add(parent, "subscriptionId", sub.id)
	add(parent, "subscriberId", sub.owner)
	add(parent, "targetIdType", sub.targetType)
	if sub.grpParent != "" {
		add(parent, "targetGrpParentId", sub.grpParent)
	}
	add(parent, "targetId", sub.targetID)
	if sub.list {
		l := parent.CreateElement("eventPackageList")
		for _, p := range sub.packages {
			add(l, "event", p)
		}
	} else {
		add(parent, "event", sub.packages[0])
	}
	add(parent, "expires", strconv.Itoa(sub.expires))
	add(parent, "channelSetId", sub.setID)
	add(parent, "applicationId", sub.appID)
}

// handleSubscriptionQuery serves GET .../subscription with the documented
// filters subscriberId, targetId, event, extAppId, targetEntityType, plus the
// simulator extension channelSetId. Only the caller's subscriptions are listed.
func (s *Server) handleSubscriptionQuery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	owner := s.owner(r)
	s.mu.Lock()
	var subs []*subscription
	for _, sub := range s.subs {
		if sub.owner != owner {
			continue
		}
		if v := q.Get("subscriberId"); v != "" && v != sub.owner {
			continue
		}
		if v := q.Get("targetId"); v != "" && v != sub.targetID {
			continue
		}
		if v := q.Get("event"); v != "" && !sub.covers(v) {
			continue
		}
		if v := q.Get("extAppId"); v != "" && v != sub.appID {
			continue
		}
		if v := q.Get("targetEntityType"); v != "" && !strings.EqualFold(v, sub.targetType) {
			continue
		}
		if v := q.Get("channelSetId"); v != "" && v != sub.setID {
			continue
		}
		cp := *sub
		cp.packages = append([]string(nil), sub.packages...)
		subs = append(subs, &cp)
	}
	s.mu.Unlock()
	sort.Slice(subs, func(i, j int) bool { return subs[i].id < subs[j].id })
	s.writeEventsDoc(w, http.StatusOK, "SubscriptionList", func(r *etree.Element) {
		for _, sub := range subs {
			subscriptionXML(r.CreateElement("subscription"), sub)
		}
	})
}

// handleSubscription serves GET, PUT (refresh) and DELETE on
// .../subscription/{id}. Every failure is 403, as documented (§4.6.2.5–6).
func (s *Server) handleSubscription(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	req := 0
	if r.Method == http.MethodPut {
		body, perr := parseBody(w, r, "Subscription", orderSubscription)
		if perr != nil {
			perr.status, perr.code = http.StatusForbidden, ErrCodeForbidden
			s.writeError(w, perr)
			return
		}
		e := child(body, "expires")
		if e == nil {
			s.writeError(w, errf(http.StatusForbidden, ErrCodeForbidden, "expires is required"))
			return
		}
		if req, perr = parseInt(e, 0, NeverExpires); perr != nil {
			perr.status, perr.code = http.StatusForbidden, ErrCodeForbidden
			s.writeError(w, perr)
			return
		}
	}
	s.mu.Lock()
	sub := s.subs[id]
	if sub == nil || sub.owner != s.owner(r) {
		s.mu.Unlock()
		s.writeError(w, errf(http.StatusForbidden, ErrCodeForbidden, "Subscription not found: %s", id))
		return
	}
	switch r.Method {
	case http.MethodGet:
		cp := *sub
		s.mu.Unlock()
		s.writeEventsDoc(w, http.StatusOK, "Subscription", func(r *etree.Element) { subscriptionXML(r, &cp) })
		return
	case http.MethodDelete:
		s.endSubscriptionLocked(sub)
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		return
	}
	if req == 0 {
		s.endSubscriptionLocked(sub)
		s.mu.Unlock()
		s.writeEventsDoc(w, http.StatusOK, "Subscription", func(r *etree.Element) {
			add(r, "subscriptionId", id)
			add(r, "expires", "0")
		})
		return
	}
	sub.expires, sub.expiresAt = s.grantExpires(req)
	s.noteSubExpiryLocked(sub.expiresAt)
	granted := sub.expires
	s.initialEventsLocked(sub) // a refresh resends the full state (user targets)
	s.mu.Unlock()
	s.writeEventsDoc(w, http.StatusOK, "Subscription", func(r *etree.Element) {
		add(r, "subscriptionId", id)
		add(r, "expires", strconv.Itoa(granted))
	})
}

// endSubscriptionLocked removes sub and emits SubscriptionTerminatedEvent.
func (s *Server) endSubscriptionLocked(sub *subscription) {
	target := ""
	if sub.targetType == "User" {
		target = sub.targetID
	}
	s.emitLocked(sub, target, eventData("SubscriptionTerminatedEvent"))
	s.deleteSubLocked(sub)
}

// --- janitor -------------------------------------------------------------------------

func (s *Server) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case now := <-t.C:
			s.mu.Lock()
			s.sweepLocked(now)
			s.mu.Unlock()
		}
	}
}

func (s *Server) sweepLocked(now time.Time) {
	// Without EventAckTimeout no pending event has a deadline: skip the
	// walk over every un-acked event (thousands in a storm).
	for _, pe := range s.pendingWithDeadlines() {
		if !pe.deadline.IsZero() && now.After(pe.deadline) && pe.ch != nil && !pe.ch.closed {
			s.log.Info("xspsim: event not acknowledged, ending channel", "event", pe.id, "channel", pe.ch.id)
			s.terminateLocked(pe.ch, ReasonNonResponsiveChannel)
		}
	}
	for _, ch := range s.channels {
		switch {
		case !ch.expiresAt.IsZero() && now.After(ch.expiresAt):
			s.terminateLocked(ch, ReasonExpired)
		case s.cfg.HeartbeatTimeout > 0 && now.Sub(ch.lastHeartbeat) > s.cfg.HeartbeatTimeout:
			s.terminateLocked(ch, ReasonNonResponsiveChannel)
		}
	}
	// Subscriptions: walked only once the earliest expiry has come.
	if !s.nextSubExpiry.IsZero() && now.After(s.nextSubExpiry) {
		var expired []*subscription
		s.nextSubExpiry = time.Time{}
		for _, sub := range s.subs {
			switch {
			case sub.expiresAt.IsZero():
			case now.After(sub.expiresAt):
				expired = append(expired, sub)
			default:
				s.noteSubExpiryLocked(sub.expiresAt)
			}
		}
		sort.Slice(expired, func(i, j int) bool { return expired[i].id < expired[j].id })
		for _, sub := range expired {
			s.endSubscriptionLocked(sub)
		}
	}
	s.expireAssociationsLocked(now)
}

// pendingWithDeadlines is s.pending when events get an ack deadline, else
// nothing.
func (s *Server) pendingWithDeadlines() map[string]*pendingEvent {
	if s.cfg.EventAckTimeout <= 0 {
		return nil
	}
	return s.pending
}

// noteSubExpiryLocked keeps s.nextSubExpiry at the earliest subscription
// expiry (zero: none expires).
func (s *Server) noteSubExpiryLocked(at time.Time) {
	if !at.IsZero() && (s.nextSubExpiry.IsZero() || at.Before(s.nextSubExpiry)) {
		s.nextSubExpiry = at
	}
}
