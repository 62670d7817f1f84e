package gateway

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/xsi"
)

// BroadWorks is the directory (Config.LoadUsers): a user is read from the
// XSP on its first reference — a monitor, a request naming its device or
// agent ID, a phone's SUBSCRIBE — through Actions GETs (profile, Call
// Center, the three forwardings, DND, Hoteling Guest and Host), one load
// per user at a time and at most Config.MaxUserLoads users at once. The
// snapshot gives the view its values and the user its roles: an agent has
// the Call Center service, a hot desk an active Hoteling Host service, and
// the number a desk forwards to is the guest's BroadWorks number (else its
// extension). The scope's events keep the view fresh from then on. After a
// link loss every user is stale until read again: in the background (users
// someone watches first), or before a request on it is served.
//
// A user nothing refers to — no monitor, phone, association, request in
// flight, promise still to keep or CTI login — is dropped after Config.IdleTTL. Its
// events are then ignored, except those that matter to others: an agent
// state or a hoteling association loads it again.

// errUnknownUser: BroadWorks has no such user (its profile is 404).
var errUnknownUser = errors.New("gateway: BroadWorks has no such user")

// Defaults of the loader.
const (
	defaultMaxUserLoads = 16
	defaultLoadTimeout  = 10 * time.Second
)

// userRoles is what BroadWorks says a user is, from its last snapshot.
type userRoles struct {
	loaded            bool   // a snapshot has been read
	groupID, spID     string // the user's group and service provider (enterprise)
	watched           bool   // outside every scope: subscribed as a user (Deps.Scopes)
	agent             bool   // the Call Center agent service is assigned
	host              bool   // the Hoteling Host service is assigned and active
	number, extension string
}

// userLoad is one snapshot read in flight; every caller waiting for the
// user waits for done.
type userLoad struct {
	done    chan struct{}
	err     error
	started time.Time // when its event marks were taken
}

// Facets of a user that events change, for userState.events: a snapshot
// value is kept only when no event of its facet came while it was read
// (the event is as new or newer).
const (
	facetAgent = iota
	facetCFA
	facetCFB
	facetCFNA
	facetDND
	facetHoteling
	facetCount
)

// freshLocked: every part of the view has been received since the link
// last came up. Gateway.mu is held.
func freshLocked(u *userState) bool {
	if !u.agentFresh || !u.dndFresh || !u.hotelFresh {
		return false
	}
	for _, f := range u.fwd {
		if !f.fresh {
			return false
		}
	}
	return true
}

// ensure makes sure the view of user id is loaded and fresh, reading it
// from the XSP when not (or waiting for the read another caller started).
// errUnknownUser when BroadWorks has no such user. Without
// Config.LoadUsers it does nothing: the directory entries alone decide.
func (g *Gateway) ensure(ctx context.Context, id string) error {
	if !g.cfg().LoadUsers || id == "" {
		return nil
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return csta.ErrResourceOutOfService
	}
	u := g.user(id)
	u.lastUse = time.Now()
	l := u.loading
	if l == nil {
		if u.roles.loaded && freshLocked(u) {
			g.mu.Unlock()
			return nil
		}
		l = g.startLoadLocked(u)
	}
	g.mu.Unlock()
	select {
	case <-l.done:
		return l.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loadSoonLocked starts a background load of id unless one runs or the view is
// fresh (an event that matters for a user not loaded; the refresh after a
// link loss). Gateway.mu is held.
func (g *Gateway) loadSoonLocked(u *userState) {
	if !g.cfg().LoadUsers || g.closed || u.loading != nil || (u.roles.loaded && freshLocked(u)) {
		return
	}
	g.startLoadLocked(u)
}

// startLoadLocked starts reading u's snapshot; the read is detached from
// any one caller (a client that gives up does not fail the others) and
// bounded by its own deadline once it has a slot. Gateway.mu is held.
func (g *Gateway) startLoadLocked(u *userState) *userLoad {
	l := &userLoad{done: make(chan struct{}), started: time.Now()}
	u.loading = l
	marks := u.events
	withRoles := !u.roles.loaded
	id := u.id
	g.loads.Add(1)
	go func() {
		defer g.loads.Done()
		var snap userSnapshot
		// The deadline bounds the read, not the wait for a slot: a storm
		// of first references (10,000 logins at once) needs longer than
		// one read's deadline to get through MaxUserLoads, and every read
		// failed past it. Callers bound their own wait (ensure's ctx).
		err := g.acquireLoad(g.loadCtx)
		if err == nil {
			ctx, cancel := context.WithTimeout(g.loadCtx, defaultLoadTimeout)
			snap, err = g.fetch(ctx, id, withRoles)
			cancel()
			g.releaseLoad()
		}
		g.finishLoad(u, l, snap, marks, err)
	}()
	return l
}

func (g *Gateway) acquireLoad(ctx context.Context) error {
	select {
	case g.loadSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *Gateway) releaseLoad() { <-g.loadSlots }

// userSnapshot is one read of a user from the XSP. A service the user
// does not have (the XSP answers 404 or 400 to its GET) is not ok.
type userSnapshot struct {
	withRoles bool
	profile   xsi.Profile
	cc        xsi.CallCenter
	ccOK      bool
	fwd       [3]xsi.Forwarding
	fwdOK     [3]bool
	dnd       xsi.DoNotDisturb
	dndOK     bool
	guest     xsi.HotelingGuest
	guestOK   bool
	host      xsi.HotelingHost
	hostOK    bool
}

// notAssigned: the GET of a service failed because the user does not have
// it, not because the XSP could not be asked.
func notAssigned(err error) bool {
	return errors.Is(err, xsi.ErrNotFound) || errors.Is(err, xsi.ErrBadRequest)
}

// fetch reads the user's snapshot, its GETs in parallel (one round trip
// of latency for a first reference).
func (g *Gateway) fetch(ctx context.Context, id string, withRoles bool) (userSnapshot, error) {
	a := g.deps.Actions
	s := userSnapshot{withRoles: withRoles}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		fail error
	)
	get := func(f func() error) {
		wg.Go(func() {
			if err := f(); err != nil {
				mu.Lock()
				if fail == nil {
					fail = err
				}
				mu.Unlock()
			}
		})
	}
	// service reads one service: not assigned is no error.
	service := func(ok *bool, f func() error) {
		get(func() error {
			err := f()
			if err == nil {
				*ok = true
				return nil
			}
			if notAssigned(err) {
				return nil
			}
			return err
		})
	}
	var profileErr error
	if withRoles {
		wg.Go(func() { s.profile, profileErr = a.GetProfile(ctx, id) })
	}
	service(&s.ccOK, func() (err error) { s.cc, err = a.GetCallCenter(ctx, id); return })
	fgets := [3]func(context.Context, string) (xsi.Forwarding, error){
		a.GetCallForwardingAlways, a.GetCallForwardingBusy, a.GetCallForwardingNoAnswer}
	for i := range fgets {
		service(&s.fwdOK[i], func() (err error) { s.fwd[i], err = fgets[i](ctx, id); return })
	}
	service(&s.dndOK, func() (err error) { s.dnd, err = a.GetDoNotDisturb(ctx, id); return })
	service(&s.guestOK, func() (err error) { s.guest, err = a.GetHotelingGuest(ctx, id); return })
	service(&s.hostOK, func() (err error) { s.host, err = a.GetHotelingHost(ctx, id); return })
	wg.Wait()
	switch {
	case errors.Is(profileErr, xsi.ErrNotFound):
		return s, errUnknownUser
	case profileErr != nil:
		return s, profileErr
	}
	return s, fail
}

// finishLoad applies a snapshot (or forgets a user BroadWorks does not
// know) and wakes the callers waiting for it.
func (g *Gateway) finishLoad(u *userState, l *userLoad, s userSnapshot, marks [facetCount]uint32, err error) {
	g.mu.Lock()
	u.loading = nil
	var out []csta.Event
	var ops []journalOp
	var jw *journalWriter
	switch {
	case errors.Is(err, errUnknownUser):
		g.log.Debug("gateway: BroadWorks has no such user", "user", u.id)
		if g.users[u.id] == u && !g.heldLocked(u) {
			delete(g.users, u.id)
		}
	case err != nil:
		g.log.Info("gateway: reading a user from BroadWorks failed", "user", u.id, "err", err)
	default:
		hostBefore := u.hostUserID
		out = g.applySnapshotLocked(u, s, marks)
		if u.events == marks {
			u.readAt = l.started // every part of the view is as read then, or newer
		}
		// An association first seen by reading BroadWorks is recorded as
		// one first seen in an event is: after a takeover the new active
		// adopts the channel set's subscriptions, so no event reports
		// what the dead active made and never wrote (issue 18). The
		// journal keeps one it already has as it is.
		if hostBefore == "" && u.hostUserID != "" {
			ops = g.journalLocked(u, "", u.hostUserID, u.hostSince, "")
			jw = g.journal
		}
	}
	l.err = err
	close(l.done)
	if len(out) > 0 {
		g.holdLocked(u, out)
	}
	g.wakeLocked(u.id)
	g.mu.Unlock()
	for _, op := range ops {
		jw.send(op)
	}
	if len(out) > 0 {
		g.flush(u.id)
	}
	if err == nil {
		g.rec.wake(u.id) // fresh now: its promise can be looked at
	}
}

// applySnapshotLocked takes the snapshot's values into the view, each
// facet unless an event of it came while the snapshot was read. A value
// the view had seen before and that differs is a change, published like
// an event's; a first value is not (nothing changed, it was not known).
// Gateway.mu is held.
func (g *Gateway) applySnapshotLocked(u *userState, s userSnapshot, marks [facetCount]uint32) []csta.Event {
	unheard := false // no event will tell this user's changes
	if s.withRoles {
		u.roles.number, u.roles.extension = s.profile.Number, s.profile.Extension
		u.roles.groupID, u.roles.spID = s.profile.GroupID, s.profile.ServiceProviderID
		if sc := g.deps.Scopes; sc != nil && !u.roles.watched && !sc.Covers(s.profile.GroupID, s.profile.ServiceProviderID) {
			// No scope brings its events: subscribe to it as a user (the
			// initial events follow; the snapshot stands until then).
			if err := sc.WatchUser(u.id); err != nil {
				g.log.Warn("gateway: a user outside every xsi.scope cannot be subscribed; its view is read again on each request",
					"user", u.id, "group", s.profile.GroupID, "service_provider", s.profile.ServiceProviderID, "err", err)
				unheard = true
			} else {
				u.roles.watched = true
			}
		}
	}
	u.roles.loaded = true
	u.roles.agent = s.ccOK
	u.roles.host = s.hostOK && s.host.Active
	if s.hostOK {
		g.findGuestLocked(u, s.host)
	}
	u.known = true
	var out []csta.Event
	keep := func(f int, seen bool, evs []csta.Event) {
		if seen {
			out = append(out, evs...)
		}
	}
	if u.events[facetAgent] == marks[facetAgent] {
		if s.ccOK {
			seen := u.agentSeen
			keep(facetAgent, seen, g.applyAgent(u, xsi.AgentStateInfo{State: string(s.cc.AgentACDState), UnavailableCode: s.cc.AgentUnavailableCode}))
		} else {
			// No agent service: no agent state to miss.
			u.agentFresh = true
		}
	}
	types := [3]csta.ForwardingType{csta.ForwardImmediate, csta.ForwardBusy, csta.ForwardNoAns}
	for i, t := range types {
		if u.events[facetCFA+i] != marks[facetCFA+i] {
			continue
		}
		f := s.fwd[i]
		if !s.fwdOK[i] {
			f = xsi.Forwarding{}
		}
		seen := u.fwd[i].seen
		keep(facetCFA+i, seen, g.applyForwarding(u, t, f))
	}
	if u.events[facetDND] == marks[facetDND] {
		seen := u.dndSeen
		keep(facetDND, seen, g.applyDND(u, &xsi.DoNotDisturbEvent{Active: s.dndOK && s.dnd.Active, RingSplash: s.dnd.RingSplash}))
	}
	if u.events[facetHoteling] == marks[facetHoteling] {
		seen := u.hotelSeen
		ev := &xsi.HotelingGuestEvent{Unassigned: !s.guestOK}
		if s.guestOK {
			ev.Active, ev.HostUserID = s.guest.Active, s.guest.HostUserID
			ev.HostAssociationDateTime = s.guest.HostAssociationDateTime
			ev.EnableAssociationLimit, ev.AssociationLimitHours = s.guest.EnableAssociationLimit, s.guest.AssociationLimitHours
			ev.HostEnforcesAssociationLimit, ev.HostAssociationLimitHours = s.guest.HostEnforcesAssociationLimit, s.guest.HostAssociationLimitHours
		}
		keep(facetHoteling, seen, g.applyHoteling(u, ev))
	}
	if unheard {
		u.stale()
		u.roles.loaded = false // roles and all: the next reference reads it again
	}
	return out
}

// heldLocked: the gateway itself still needs the user's view — an
// association, a request in flight or held events, a load, a promise still to keep, a
// CTI login or a waiter. Gateway.mu is held.
func (g *Gateway) heldLocked(u *userState) bool {
	if u.inflight > 0 || len(u.outbox) > 0 || u.loading != nil || u.hostUserID != "" || u.guestUserID != "" ||
		(u.pendingACD != "" && time.Now().Before(u.pendingUntil)) {
		return true
	}
	if _, ok := g.loginOwner[u.id]; ok {
		return true
	}
	if g.rec.keeps(u.id) {
		return true
	}
	_, ok := g.wakes[u.id]
	return ok
}

// watched: a monitor is on one of the user's devices, or a phone holds a
// subscription for one. Called without Gateway.mu (the front ends have
// locks of their own).
func (g *Gateway) watched(id string) bool {
	pub, phones := g.deps.Publisher, g.phones()
	for _, d := range g.dir().Devices(id) {
		if pub != nil && pub.Monitored(d) {
			return true
		}
		if phones != nil && phones.Subscribed(string(d)) {
			return true
		}
	}
	return false
}

// sweepIdle drops the users nothing refers to that have not been used for
// IdleTTL; it returns how many it dropped.
func (g *Gateway) sweepIdle(now time.Time) int {
	ttl := g.cfg().IdleTTL
	if ttl <= 0 || !g.cfg().LoadUsers {
		return 0
	}
	g.mu.Lock()
	var idle []*userState
	for _, u := range g.users {
		if now.Sub(u.lastUse) >= ttl && !g.heldLocked(u) {
			idle = append(idle, u)
		}
	}
	g.mu.Unlock()
	var drop []*userState
	for _, u := range idle {
		if g.watched(u.id) {
			g.mu.Lock()
			u.lastUse = now // watched: looked at again a TTL later
			g.mu.Unlock()
			continue
		}
		drop = append(drop, u)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, u := range drop {
		// Used or taken up again meanwhile: kept.
		if g.users[u.id] != u || now.Sub(u.lastUse) < ttl || g.heldLocked(u) {
			continue
		}
		delete(g.users, u.id)
		g.rec.forget(u.id)
		if u.roles.watched && g.deps.Scopes != nil {
			g.deps.Scopes.UnwatchUser(u.id) // non-blocking
		}
		n++
	}
	return n
}

// idleLoop sweeps idle users every quarter of IdleTTL (at most every
// minute) until ctx ends.
func (g *Gateway) idleLoop(ctx context.Context) {
	if !g.cfg().LoadUsers || g.cfg().IdleTTL <= 0 {
		return
	}
	every := min(g.cfg().IdleTTL/4, time.Minute)
	every = max(every, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if n := g.sweepIdle(now); n > 0 {
				g.log.Debug("gateway: idle users dropped", "users", n)
			}
		}
	}
}

// Backoff of refreshStale's passes while some reads fail (an XSP slow or
// failing: a change made while the link was down reaches monitors and
// phones only through a read).
const (
	refreshRetryMin = 500 * time.Millisecond
	refreshRetryMax = 30 * time.Second
)

// refreshStale reads again every loaded user whose view is stale (after a
// link loss, or a scope's missed events), pass after pass with a backoff
// while some reads fail, until none is stale, the link is down (the next
// link-up starts it again) or ctx ends.
func (g *Gateway) refreshStale(ctx context.Context) {
	if !g.cfg().LoadUsers {
		return
	}
	wait := refreshRetryMin
	for g.refreshPass(ctx) > 0 && g.LinkUp() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, refreshRetryMax)
	}
}

// refreshPass is one pass of refreshStale: users someone watches first,
// then the rest, MaxUserLoads at a time. It returns how many are still
// stale after it.
func (g *Gateway) refreshPass(ctx context.Context) int {
	g.mu.Lock()
	var ids []string
	for id, u := range g.users {
		// Loaded users gone stale, and users kept for a monitor before
		// they could be read (MonitorStart).
		if !freshLocked(u) && (u.roles.loaded || !u.lastUse.IsZero()) {
			ids = append(ids, id)
		}
	}
	g.mu.Unlock()
	var first, rest []string
	for _, id := range ids {
		g.mu.Lock()
		held := g.users[id] != nil && g.heldLocked(g.users[id])
		g.mu.Unlock()
		if held || g.watched(id) {
			first = append(first, id)
		} else {
			rest = append(rest, id)
		}
	}
	if len(ids) == 0 {
		return 0
	}
	g.log.Info("gateway: reading stale users again", "users", len(ids), "watched", len(first))
	g.loadUsers(ctx, slices.Concat(first, rest))
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, id := range ids {
		if u := g.users[id]; u != nil && !(u.roles.loaded && freshLocked(u)) {
			n++
		}
	}
	return n
}

// Load reads the users' views from BroadWorks unless loaded and fresh,
// MaxUserLoads at a time (a harness that needs them all at once); it
// returns the users BroadWorks does not know.
func (g *Gateway) Load(ctx context.Context, ids []string) (unknown []string) {
	return g.loadUsers(ctx, ids)
}

// loadUsers ensures each user's view, in order, MaxUserLoads at a time,
// until done or ctx ends; failures are the loads' to log. It returns the
// users BroadWorks does not know.
func (g *Gateway) loadUsers(ctx context.Context, ids []string) (unknown []string) {
	work := make(chan string)
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for range min(g.maxLoads(), len(ids)) {
		wg.Go(func() {
			for id := range work {
				if errors.Is(g.ensure(ctx, id), errUnknownUser) {
					mu.Lock()
					unknown = append(unknown, id)
					mu.Unlock()
				}
			}
		})
	}
	func() {
		defer wg.Wait()
		defer close(work)
		for _, id := range ids {
			select {
			case work <- id:
			case <-ctx.Done():
				return
			}
		}
	}()
	return unknown
}

func (g *Gateway) maxLoads() int {
	return cap(g.loadSlots)
}

// NumberOf is the number a hot desk forwards to when userID logs on there
// as a guest: an explicit agent entry's number, else the user's BroadWorks
// number, else its extension, else the directory rule's.
func (g *Gateway) NumberOf(userID string) string {
	dir := g.dir()
	if n, ok := dir.numberOfUser[userID]; ok {
		return n
	}
	g.mu.Lock()
	var r userRoles
	if u := g.users[userID]; u != nil {
		r = u.roles
	}
	g.mu.Unlock()
	switch {
	case r.number != "":
		return r.number
	case r.extension != "":
		return r.extension
	}
	return dir.NumberOf(userID)
}

// hotDesk says whether a user's device is a hot desk: an explicit
// ",hotdesk" entry, or an active Hoteling Host service.
func (g *Gateway) hotDesk(userID string, explicit bool) bool {
	if explicit {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.users[userID]
	return u != nil && u.roles.host
}

// scopeLost marks stale the loaded users of a scope whose events may have
// been lost (xsi.ScopeResync: a group or enterprise subscription's refresh
// resends nothing, so their views are read again); users whose group is
// not known are marked too.
func (g *Gateway) scopeLost(r *xsi.ScopeResync) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, u := range g.users {
		if !u.roles.loaded || u.roles.watched {
			continue // not loaded yet, or heard through its own subscriptions
		}
		in := u.roles.groupID == "" && u.roles.spID == ""
		switch r.Scope.Kind {
		case xsi.KindGroup:
			in = in || (u.roles.groupID == r.Scope.ID && (u.roles.spID == "" || u.roles.spID == r.Scope.ParentID))
		case xsi.KindEnterprise, xsi.KindServiceProvider:
			in = in || u.roles.spID == r.Scope.ID
		}
		if in {
			u.stale()
			n++
		}
	}
	return n
}
