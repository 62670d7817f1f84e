package gateway

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
)

// Gateway implements csta.Service over BroadWorks and hoteling.View over
// its state view.
//
// Lock order: pubMu → mu. Publisher calls are made with pubMu held and mu
// released (csta.Server.Publish never blocks).
type Gateway struct {
	live atomic.Pointer[liveConfig] // what Reload may replace
	deps Deps
	log  *slog.Logger

	mu     sync.Mutex
	users  map[string]*userState
	linkUp bool
	// viewVersion counts the events the view's changes make: each held
	// event has one of its own (holdLocked), carried to the phones
	// (phonesync.Version), so that a full state read at one version orders
	// against them.
	viewVersion uint64
	// linkEpoch counts down→up transitions of the link; linkSeenUp: the
	// link was reported up at least once (New takes it as up unreported).
	linkEpoch  uint64
	linkSeenUp bool
	// linkPartial: some XSP of the link is down (the link may be up on
	// another); rereading: users whose events may be lost are being read
	// again (refreshStale); viewWholeSince: when neither last held.
	// Until then the view may not show what BroadWorks has (doubtsHeld).
	linkPartial, rereading bool
	viewWholeSince         time.Time
	wakes                  map[string]chan struct{} // per user: closed (and dropped) when an XSI event may change its view
	claims                 map[string]agentClaim    // per agent user: the last agent-state request (ConflictWindow)
	observer               Observer                 // the operators' view, may be nil
	journal                *journalWriter           // association journal, may be nil
	// endReasons: why an agent's association is about to end (our logout
	// or a forced one), for the journal; absent = ended outside (portal).
	endReasons map[string]endNote
	// loginOwner: the CTI connection that logged each agent on
	// (StaleLoginGrace).
	loginOwner map[string]uint64
	closed     bool
	// rec keeps the promises made to clients (reconcile.go).
	rec *reconciler
	// metrics measured on the event path (metrics.go).
	metrics eventMetrics

	pubMu sync.Mutex

	// User loads (users.go): at most cap(loadSlots) at once, all ended by
	// Close.
	loadSlots chan struct{}
	// guestSearches bounds the searches for desks' unnamed guests
	// (guest.go) started in the background.
	guestSearches chan struct{}
	loads         sync.WaitGroup
	loadCtx       context.Context
	loadCancel    context.CancelFunc
}

var (
	_ csta.Service              = (*Gateway)(nil)
	_ csta.ConnectionObserver   = (*Gateway)(nil)
	_ hoteling.View             = (*Gateway)(nil)
	_ hoteling.AssociationNoter = (*Gateway)(nil)
)

// New returns a gateway; the link is taken as up until SetLinkUp or Run says
// otherwise. logger may be nil.
func New(cfg Config, deps Deps, logger *slog.Logger) *Gateway {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{
		deps:       deps,
		log:        logger,
		users:      make(map[string]*userState),
		linkUp:     true,
		wakes:      make(map[string]chan struct{}),
		claims:     make(map[string]agentClaim),
		endReasons: make(map[string]endNote),
		loginOwner: make(map[string]uint64),
	}
	g.rec = newReconciler(g)
	g.metrics = newEventMetrics()
	if cfg.MaxUserLoads <= 0 {
		cfg.MaxUserLoads = defaultMaxUserLoads
	}
	g.loadSlots = make(chan struct{}, cfg.MaxUserLoads)
	g.guestSearches = make(chan struct{}, maxGuestSearches)
	g.loadCtx, g.loadCancel = context.WithCancel(context.Background())
	g.live.Store(&liveConfig{cfg: cfg, dir: NewDirectory(cfg)})
	return g
}

// SetHoteling sets the hot-desk sequencer after New, for the wiring cycle:
// hoteling.New needs the gateway as its View, and the gateway needs the
// sequencer (gw := gateway.New(...); gw.SetHoteling(hoteling.New(hcfg,
// client, gw, logger))).
func (g *Gateway) SetHoteling(h Hoteling) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deps.Hoteling = h
}

func (g *Gateway) hoteling() Hoteling {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.deps.Hoteling
}

// Directory returns the gateway's directory in force (Reload replaces it).
func (g *Gateway) Directory() *Directory { return g.dir() }

// user returns the state of id, creating it; mu held.
func (g *Gateway) user(id string) *userState {
	u := g.users[id]
	if u == nil {
		u = &userState{id: id}
		g.users[id] = u
	}
	return u
}

// ---- link ----

// SetLinkUp records the XSI link state. Down: the system status becomes
// disabled, requests are answered resourceOutOfService, and the whole view
// turns stale (events may be lost); monitors stay. Up: status normal.
func (g *Gateway) SetLinkUp(up bool) {
	g.mu.Lock()
	changed := g.linkUp != up
	g.linkUp = up
	g.linkSeenUp = g.linkSeenUp || up
	if changed && up {
		g.linkEpoch++
	}
	if !up {
		for _, u := range g.users {
			u.stale()
		}
	}
	g.mu.Unlock()
	if !changed {
		return
	}
	g.log.Info("gateway: XSI link changed", "up", up)
	if obs := g.observe(); obs != nil {
		obs.LinkChanged(up)
	}
	if g.deps.Publisher != nil {
		if up {
			g.deps.Publisher.SetSystemStatus(csta.SystemNormal)
		} else {
			g.deps.Publisher.SetSystemStatus(csta.SystemDisabled)
		}
	}
}

// LinkUp reports the link state the gateway acts on.
func (g *Gateway) LinkUp() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.linkUp
}

// anyUp: the link is up when at least one XSP channel is up.
func anyUp(ls []xsi.LinkStatus) bool {
	for _, l := range ls {
		if l.State == xsi.LinkUp {
			return true
		}
	}
	return false
}

func allUp(ls []xsi.LinkStatus) bool {
	for _, l := range ls {
		if l.State != xsi.LinkUp {
			return false
		}
	}
	return true
}

// setLinkPartial records whether some XSP of the link is down.
func (g *Gateway) setLinkPartial(partial bool) {
	g.setViewPartial(func() { g.linkPartial = partial })
}

// setRereading records whether users whose events may be lost are being
// read again.
func (g *Gateway) setRereading(on bool) {
	g.setViewPartial(func() { g.rereading = on })
}

// setViewPartial applies set (under Gateway.mu); once the view is whole
// again (every XSP up, no user being read again), the promises are looked
// at a doubt window later (their doubts held meanwhile may end then).
func (g *Gateway) setViewPartial(set func()) {
	g.mu.Lock()
	was := g.linkPartial || g.rereading
	set()
	whole := was && !g.linkPartial && !g.rereading
	if whole {
		g.viewWholeSince = time.Now()
	}
	g.mu.Unlock()
	if whole {
		time.AfterFunc(g.doubtWindow(), g.rec.wakeAll)
	}
}

// Run feeds the gateway from the XSI event manager (xsi.Events: Events(),
// LinkChanges(), LinkState) until ctx ends or events is closed. It is the
// one goroutine that calls HandleXSIEvent, which keeps events in order.
func (g *Gateway) Run(ctx context.Context, events <-chan xsi.Event, linkChanges <-chan struct{}, linkState func() []xsi.LinkStatus) {
	var bg sync.WaitGroup
	defer bg.Wait()
	// The background work ends with Run, also when events is closed.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bg.Go(func() { g.idleLoop(ctx) })
	g.runReconciler(ctx, &bg)
	// After a link loss every loaded user is read again in the background
	// (users.go); a refresh still running when the link is lost again
	// goes on (its loads fail fast while the link is down).
	var refreshing atomic.Bool
	refresh := func() {
		if !refreshing.CompareAndSwap(false, true) {
			return
		}
		g.setRereading(true)
		bg.Go(func() {
			defer refreshing.Store(false)
			defer g.setRereading(false)
			g.refreshStale(ctx)
		})
	}
	setLink := func(ls []xsi.LinkStatus) {
		up := anyUp(ls)
		g.setLinkPartial(!allUp(ls))
		before := g.LinkUp()
		g.SetLinkUp(up)
		if up && !before {
			refresh()
			// Every promise is looked at again once its users are read.
			g.rec.wakeAll()
		}
	}
	if linkState != nil {
		setLink(linkState())
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-linkChanges:
			if linkState != nil {
				setLink(linkState())
			}
		case ev, ok := <-events:
			if !ok {
				return
			}
			if r, ok := ev.(*xsi.ScopeResync); ok {
				// The scope's events may be lost: its users' views are
				// read again, in the background.
				n := g.scopeLost(r)
				g.log.Info("gateway: a scope's events may be lost; reading its users again", "scope", r.Scope.String(), "reason", r.Reason, "users", n)
				if n > 0 && g.LinkUp() {
					refresh()
				}
				continue
			}
			if se, ok := ev.(*xsi.SubscriptionEvent); ok {
				// The first events of a new channel can come before its
				// link change is seen here: ask, so that they count as
				// fresh (an event handled while down does not).
				if linkState != nil && !g.LinkUp() {
					setLink(linkState())
				}
				g.HandleXSIEvent(se)
			}
		}
	}
}

// ---- state view from XSI events ----

// HandleXSIEvent updates the view from one XSI event and publishes the CSTA
// events it means. Call it from one goroutine, in channel order.
func (g *Gateway) HandleXSIEvent(ev *xsi.SubscriptionEvent) {
	if ev == nil {
		return
	}
	taken := time.Now()
	// userId is the subscriber (for the connector's admin credential, the
	// admin); targetId is the user the event is about (research/xsi.md).
	subject := ev.TargetID
	if subject == "" {
		subject = ev.UserID
	}
	if subject == "" {
		return
	}
	g.mu.Lock()
	matters := false // an event that makes a user not loaded worth loading
	switch d := ev.Data.(type) {
	case *xsi.AgentSubscriptionEvent, *xsi.AgentStateEvent:
		matters = true
	case *xsi.HotelingGuestEvent:
		matters = d.Active && !d.Unassigned && d.HostUserID != ""
	}
	if g.cfg().LoadUsers && g.users[subject] == nil && g.wakes[subject] == nil && !matters {
		// Nobody refers to the user (nor waits on it): a scope's event
		// for it changes no one's view (its snapshot is read when it is
		// first referred to).
		g.mu.Unlock()
		return
	}
	u := g.user(subject)
	u.known, u.heard = true, time.Now()
	if f := facetOf(ev.Data); f >= 0 {
		u.events[f]++
	}
	// A guest's event also changes its hosts' views; an association's end
	// is explained by how long it lasted under which limit.
	hostBefore, sinceBefore, limitBefore := u.hostUserID, u.hostSince, u.hostLimit
	agentBefore := agentOf(u)
	var out []csta.Event
	switch d := ev.Data.(type) {
	case *xsi.AgentSubscriptionEvent:
		if d.State != nil {
			out = g.applyAgent(u, *d.State)
		}
	case *xsi.AgentStateEvent:
		out = g.applyAgent(u, d.Info)
	case *xsi.CallForwardingAlwaysEvent:
		out = g.applyForwarding(u, csta.ForwardImmediate, xsi.Forwarding{
			Active: d.Active && !d.Unassigned, ForwardToPhoneNumber: d.ForwardToPhoneNumber, RingSplash: d.RingSplash})
	case *xsi.CallForwardingBusyEvent:
		out = g.applyForwarding(u, csta.ForwardBusy, xsi.Forwarding{
			Active: d.Active && !d.Unassigned, ForwardToPhoneNumber: d.ForwardToPhoneNumber})
	case *xsi.CallForwardingNoAnswerEvent:
		out = g.applyForwarding(u, csta.ForwardNoAns, xsi.Forwarding{
			Active: d.Active && !d.Unassigned, ForwardToPhoneNumber: d.ForwardToPhoneNumber, NumberOfRings: d.NumberOfRings})
	case *xsi.DoNotDisturbEvent:
		out = g.applyDND(u, d)
	case *xsi.HotelingGuestEvent:
		out = g.applyHoteling(u, d)
	case *xsi.SubscriptionTerminatedEvent:
		// The channel manager resubscribes; until the new snapshot, the
		// view of this user may miss changes.
		u.stale()
	}
	if !g.linkUp {
		// An event handled after the link went down was sent before: it
		// does not make the view fresh (the reconciler waits for the resync).
		u.stale()
	}
	g.holdLocked(u, out)
	if !u.roles.loaded {
		g.loadSoonLocked(u) // a user an event brought in: its snapshot, roles
	}
	// Reserved before the wake: a sequence woken by this event answers only
	// once these records are written (journalSync).
	var endReason string
	var outsideEnd bool
	if hostBefore != u.hostUserID {
		endReason, outsideEnd = g.endReasonLocked(u.id, sinceBefore, limitBefore)
	}
	ops := g.journalLocked(u, hostBefore, u.hostUserID, u.hostSince, endReason)
	jw := g.journal
	g.wakeLocked(subject, hostBefore, u.hostUserID)
	hostAfter, obs := u.hostUserID, g.observer
	activity := g.activityLocked(u, ev.Data, taken, agentBefore, hostBefore)
	g.mu.Unlock()
	for _, op := range ops {
		jw.send(op)
	}
	g.flush(subject)
	if hostBefore != "" && outsideEnd {
		g.associationEnded(subject, hostBefore)
	}
	g.rec.wake(subject, hostBefore, hostAfter)
	if obs != nil {
		// Counted before it is shown: a page that reads the history on
		// seeing the change finds it there.
		if activity.Login || activity.StateChanged || activity.HasDelay {
			obs.AgentActivity(activity)
		}
		// A guest's change shows on its desk too (hosts before and after).
		obs.UsersChanged(subject, hostBefore, hostAfter)
	}
}

// agentView is the part of a user's view AgentActivity compares.
type agentView struct {
	seen  bool
	state xsi.ACDState
	code  string
}

func agentOf(u *userState) agentView {
	return agentView{seen: u.agentSeen, state: u.acdState, code: u.unavailableCode}
}

// activityLocked is what the event d, taken at taken, did to u's agent
// (before: as it was); it feeds the event-delay histogram.
func (g *Gateway) activityLocked(u *userState, d xsi.EventData, taken time.Time, before agentView, hostBefore string) AgentActivity {
	after := agentOf(u)
	a := AgentActivity{UserID: u.id}
	a.StateChanged = before.seen && (before.state != after.state || before.code != after.code)
	signedOut := func(v agentView) bool { return v.seen && v.state == xsi.ACDSignOut }
	a.Login = (signedOut(before) && after.seen && !signedOut(after)) ||
		(u.hostUserID != "" && u.hostUserID != hostBefore && !signedOut(after))
	if se, ok := d.(*xsi.AgentStateEvent); ok && !se.Info.StateTimestamp.IsZero() {
		a.Delay, a.HasDelay = taken.Sub(se.Info.StateTimestamp), true
		g.metrics.observeDelay(a.Delay)
	}
	return a
}

// facetOf is the facet an XSI event changes (userState.events), -1 none.
func facetOf(d xsi.EventData) int {
	switch d.(type) {
	case *xsi.AgentSubscriptionEvent, *xsi.AgentStateEvent:
		return facetAgent
	case *xsi.CallForwardingAlwaysEvent:
		return facetCFA
	case *xsi.CallForwardingBusyEvent:
		return facetCFB
	case *xsi.CallForwardingNoAnswerEvent:
		return facetCFNA
	case *xsi.DoNotDisturbEvent:
		return facetDND
	case *xsi.HotelingGuestEvent:
		return facetHoteling
	}
	return -1
}

// report says whether a value is published: when it is the first one seen
// or differs from the one before. XSI repeats the full state on every
// subscription create and refresh (research/xsi.md; xspsim README), and
// BroadWorks sends events only on change, so "changed" is the test; it
// also keeps a resubscription after link loss from repeating what monitors
// already know. The first value is published because group/enterprise
// subscriptions get no initial events: it may be a real change.
func report(seen, same bool) bool { return !seen || !same }

func (g *Gateway) applyAgent(u *userState, info xsi.AgentStateInfo) []csta.Event {
	state := xsi.ACDState(info.State)
	code := ""
	if state == xsi.ACDUnavailable {
		code = info.UnavailableCode
	}
	prev, seen := u.acdState, u.agentSeen
	same := prev == state && u.unavailableCode == code
	u.acdState, u.unavailableCode = state, code
	u.agentSeen, u.agentFresh = true, true
	if u.pendingACD == state && (u.pendingCode == "" || u.pendingCode == code) {
		u.pendingACD = "" // our request's change, confirmed
	}
	if !report(seen, same) {
		return nil
	}
	dir := g.dir()
	agentID := dir.AgentID(u.id)
	own := dir.Devices(u.id)
	all := own
	if u.hostUserID != "" {
		all = append(append([]csta.DeviceID(nil), own...), dir.Devices(u.hostUserID)...)
	}
	var out []csta.Event
	add := func(devs []csta.DeviceID, ev csta.Event) {
		for _, d := range devs {
			e := ev
			e.Device, e.AgentID = d, agentID
			out = append(out, e)
		}
	}
	signedOut := seen && prev == xsi.ACDSignOut
	switch state {
	case xsi.ACDSignIn:
		add(own, csta.Event{Kind: csta.EventAgentLoggedOn})
	case xsi.ACDSignOut:
		add(own, csta.Event{Kind: csta.EventAgentLoggedOff})
	case xsi.ACDAvailable, xsi.ACDUnavailable, xsi.ACDWrapUp:
		if signedOut {
			add(own, csta.Event{Kind: csta.EventAgentLoggedOn})
		}
		ev, _ := signedInEvent(dir, state, code)
		add(all, ev)
	}
	return out
}

// signedInEvent is the CSTA event of a signed-in ACD state (Ready, Not
// Ready with the reason of code, Working After Call); false for Sign-In,
// Sign-Out and anything else.
func signedInEvent(dir *Directory, state xsi.ACDState, code string) (csta.Event, bool) {
	switch state {
	case xsi.ACDAvailable:
		return csta.Event{Kind: csta.EventAgentReady}, true
	case xsi.ACDUnavailable:
		return csta.Event{Kind: csta.EventAgentNotReady, ReasonCode: dir.Reason(code)}, true
	case xsi.ACDWrapUp:
		return csta.Event{Kind: csta.EventAgentWorkingAfterCall}, true
	}
	return csta.Event{}, false
}

// forwardTo turns the XSP's forward-to (often a tel: URI) into a CSTA
// device ID.
func forwardTo(n string) csta.DeviceID {
	n = strings.TrimSpace(n)
	for _, p := range []string{"tel:", "sip:"} {
		if len(n) > len(p) && strings.EqualFold(n[:len(p)], p) {
			n = n[len(p):]
			break
		}
	}
	return csta.DeviceID(n)
}

// applyForwarding records one forwarding service; a change (status, number
// or, for No Answer, the ring count) is a ForwardingEvent on every device of
// the user.
func (g *Gateway) applyForwarding(u *userState, t csta.ForwardingType, f xsi.Forwarding) []csta.Event {
	v := &u.fwd[fwdIndex(t)]
	same := v.f.Active == f.Active && v.f.ForwardToPhoneNumber == f.ForwardToPhoneNumber && v.f.NumberOfRings == f.NumberOfRings
	seen := v.seen
	v.f, v.seen, v.fresh = f, true, true
	if !report(seen, same) {
		return nil
	}
	return g.forUser(u.id, csta.Event{Kind: csta.EventForwarding, ForwardingType: t,
		ForwardStatus: f.Active, ForwardTo: forwardTo(f.ForwardToPhoneNumber), RingCount: f.NumberOfRings})
}

func (g *Gateway) applyDND(u *userState, d *xsi.DoNotDisturbEvent) []csta.Event {
	v := xsi.DoNotDisturb{Active: d.Active && !d.Unassigned, RingSplash: d.RingSplash}
	same := u.dnd.Active == v.Active
	seen := u.dndSeen
	u.dnd, u.dndSeen, u.dndFresh = v, true, true
	if !report(seen, same) {
		return nil
	}
	return g.forUser(u.id, csta.Event{Kind: csta.EventDoNotDisturb, DoNotDisturbOn: v.Active})
}

// applyHoteling records the guest ↔ host association. The host device
// hears AgentLoggedOn when a guest associates and AgentLoggedOff when it
// leaves (the association is the hot-desk logon).
func (g *Gateway) applyHoteling(u *userState, d *xsi.HotelingGuestEvent) []csta.Event {
	host := d.HostUserID
	if d.Unassigned || !d.Active {
		host = ""
	}
	prev := u.hostUserID
	since := d.HostAssociationDateTime
	if host != "" && since.IsZero() {
		since = time.Now() // no date sent: first seen now, kept while it lasts
		if prev == host && !u.hostSince.IsZero() {
			since = u.hostSince
		}
	}
	if host == "" {
		since = time.Time{}
	}
	u.hostUserID, u.hostSince = host, since
	u.hostLimit = associationLimit(d.EnableAssociationLimit, d.AssociationLimitHours, d.HostEnforcesAssociationLimit, d.HostAssociationLimitHours)
	u.hotelSeen, u.hotelFresh = true, true
	if prev != "" && prev != host {
		if h := g.users[prev]; h != nil && h.guestUserID == u.id {
			h.guestUserID, h.guestSince = "", time.Time{}
		}
	}
	if host != "" {
		h := g.user(host)
		h.guestUserID, h.guestSince = u.id, since
	}
	if prev == host {
		return nil
	}
	dir := g.dir()
	agentID := dir.AgentID(u.id)
	var out []csta.Event
	if prev != "" {
		for _, dev := range dir.Devices(prev) {
			out = append(out, csta.Event{Kind: csta.EventAgentLoggedOff, Device: dev, AgentID: agentID})
		}
	}
	if host != "" {
		// The desk's monitors and phones learn the guest's state too: no
		// agent-state event may follow (the guest kept its state, or it
		// was associated again after a late end).
		now, haveState := signedInEvent(dir, u.acdState, u.unavailableCode)
		haveState = haveState && u.agentSeen
		for _, dev := range dir.Devices(host) {
			out = append(out, csta.Event{Kind: csta.EventAgentLoggedOn, Device: dev, AgentID: agentID})
			if haveState {
				now.Device, now.AgentID = dev, agentID
				out = append(out, now)
			}
		}
	}
	return out
}

// forUser copies ev to every device of the user.
func (g *Gateway) forUser(userID string, ev csta.Event) []csta.Event {
	var out []csta.Event
	for _, d := range g.dir().Devices(userID) {
		e := ev
		e.Device = d
		out = append(out, e)
	}
	return out
}

// ---- publishing, held while a request is in flight ----

// emit queues events in the user's outbox and publishes them unless held.
func (g *Gateway) emit(userID string, evs []csta.Event) {
	if len(evs) == 0 {
		return
	}
	g.mu.Lock()
	u := g.user(userID)
	g.holdLocked(u, evs)
	g.mu.Unlock()
	g.flush(userID)
}

// holdLocked queues evs in u's outbox, each with a version of its own: one
// XSI event can mean two changes of one feature at one device (a Sign-Out
// agent made Available: AgentLoggedOn, then AgentReady), and the second
// must not look like the first sent again (phonesync drops a change whose
// version it has already shown). They are raised under Gateway.mu with the
// view change they follow, so a view read after it holds a version at or
// above all of them (phoneService.FeatureState). Gateway.mu is held.
func (g *Gateway) holdLocked(u *userState, evs []csta.Event) {
	for _, ev := range evs {
		g.viewVersion++
		u.outbox = append(u.outbox, heldEvent{ev: ev, version: g.viewVersion})
	}
}

// flush publishes the user's outbox unless a request holds it.
func (g *Gateway) flush(userID string) {
	g.pubMu.Lock()
	defer g.pubMu.Unlock()
	g.mu.Lock()
	u := g.users[userID]
	if u == nil || u.inflight > 0 || len(u.outbox) == 0 {
		g.mu.Unlock()
		return
	}
	batch := u.outbox
	u.outbox = nil
	phones := g.deps.Phones
	g.mu.Unlock()
	for _, h := range batch {
		if g.deps.Publisher != nil {
			g.deps.Publisher.Publish(h.ev)
		}
		if phones != nil {
			g.publishToPhones(phones, h.ev, h.version)
		}
	}
}

// hold marks a request in flight for the users; the returned release,
// called when the Service method returns, lets their events go once the
// front end has queued the request's answer (csta.AfterAnswer), so they
// follow it on the requester's connection — at once if ctx belongs to no
// front end request. The front end runs it on every path, the connection
// closing included, so no user's events are held for good.
func (g *Gateway) hold(ctx context.Context, userIDs ...string) (release func()) {
	g.mu.Lock()
	for _, id := range userIDs {
		g.user(id).inflight++
	}
	g.mu.Unlock()
	return func() {
		// The front end waits for its own goroutines
		// (csta.Server.Shutdown); without one it runs now.
		done := func() {
			g.mu.Lock()
			for _, id := range userIDs {
				g.user(id).inflight--
			}
			g.mu.Unlock()
			for _, id := range userIDs {
				g.flush(id)
			}
			// The reconciler left them alone meanwhile (reconcile.go).
			g.rec.wake(userIDs...)
		}
		if !csta.AfterAnswer(ctx, done) {
			done()
		}
	}
}

// ---- hoteling.View ----

// User returns the current view of one BroadWorks user.
func (g *Gateway) User(id string) hoteling.User {
	g.mu.Lock()
	defer g.mu.Unlock()
	if u := g.users[id]; u != nil {
		return u.view()
	}
	return hoteling.User{ID: id}
}

// wakeLocked wakes the Await calls waiting on these users. Only they
// re-check their condition, not every waiter on every event.
func (g *Gateway) wakeLocked(ids ...string) {
	for _, id := range ids {
		if ch := g.wakes[id]; ch != nil {
			close(ch)
			delete(g.wakes, id)
		}
	}
}

// Await returns nil once cond holds for the user's view, checking now and
// after every XSI event that touches the user, or ctx's error.
func (g *Gateway) Await(ctx context.Context, id string, cond func(hoteling.User) bool) error {
	for {
		g.mu.Lock()
		v := hoteling.User{ID: id}
		if u := g.users[id]; u != nil {
			v = u.view()
		}
		wake := g.wakes[id]
		if wake == nil {
			wake = make(chan struct{})
			g.wakes[id] = wake
		}
		g.mu.Unlock()
		if cond(v) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}
