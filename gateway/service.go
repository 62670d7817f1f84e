package gateway

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
)

// begin refuses requests while the link is down and bounds the request by
// RequestTimeout.
func (g *Gateway) begin(ctx context.Context, device csta.DeviceID) (context.Context, context.CancelFunc, target, error) {
	noop := func() {}
	if !g.LinkUp() {
		return ctx, noop, target{}, csta.ErrResourceOutOfService
	}
	user, hotDesk, err := g.device(device)
	if err != nil {
		return ctx, noop, target{}, err
	}
	cancel := noop
	if g.cfg().RequestTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, g.cfg().RequestTimeout)
	}
	// The device's user, read from BroadWorks unless loaded and fresh: it
	// must exist, and whether it is a hot desk is its Hoteling Host service.
	if err := g.ensure(ctx, user); err != nil {
		cancel()
		return ctx, noop, target{}, g.cstaError(err, csta.ErrInvalidDeviceID)
	}
	return ctx, cancel, target{user: user, hotDesk: g.hotDesk(user, hotDesk)}, nil
}

// target is the BroadWorks user a device request is about.
type target struct {
	user    string
	hotDesk bool
}

func (g *Gateway) device(id csta.DeviceID) (userID string, hotDesk bool, err error) {
	u, hd, ok := g.dir().Device(id)
	if !ok {
		return "", false, csta.ErrInvalidDeviceID
	}
	return u, hd, nil
}

// MonitorStart refuses devices the directory cannot map. Monitors are
// allowed while the link is down: they stay, and hear events once it is up.
//
// The device's user is read from BroadWorks first when the link is up: a
// user it does not know is invalidDeviceID. When it cannot be read now
// (the link is down, the XSP slow or failing) the monitor is accepted all
// the same: the user is kept from then on, so its events reach the
// monitor, and its view is read in the background.
func (g *Gateway) MonitorStart(ctx context.Context, _ csta.Requester, req *csta.MonitorStart) error {
	user, _, err := g.device(req.Device)
	if err != nil || !g.cfg().LoadUsers {
		return err
	}
	if !g.LinkUp() {
		g.mu.Lock()
		g.user(user).lastUse = time.Now()
		g.mu.Unlock()
		return nil // read after the link comes up (refreshStale)
	}
	if g.cfg().RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg().RequestTimeout)
		defer cancel()
	}
	err = g.ensure(ctx, user)
	switch {
	case errors.Is(err, errUnknownUser):
		return csta.ErrInvalidDeviceID
	case err != nil:
		g.log.Debug("gateway: monitor accepted on a user not read yet", "user", user, "err", err)
		g.mu.Lock()
		if u := g.users[user]; u != nil {
			g.loadSoonLocked(u)
		}
		g.mu.Unlock()
	}
	return nil
}

// agentAt resolves the agent of a request: agentID if given, else the guest
// hot-desked at the device (guestAt), else the device's user.
func (g *Gateway) agentAt(ctx context.Context, agentID, deviceUser string) (userID, number string, err error) {
	if agentID != "" {
		u, n, ok := g.dir().Agent(agentID)
		if !ok {
			return "", "", csta.ErrInvalidAgentIdentifier
		}
		return u, n, nil
	}
	guest, err := g.guestAt(ctx, deviceUser)
	if err != nil {
		return "", "", err
	}
	if guest != "" {
		deviceUser = guest
	}
	id := g.dir().AgentID(deviceUser)
	_, n, _ := g.dir().Agent(id)
	if n == "" {
		n = id
	}
	return deviceUser, n, nil
}

// SetAgentState maps the CSTA agent states onto ACD states and hot-desk
// sequences:
//
//	loggedOn at another user's hot-desk host → Hoteling.Login(agent, host, agent's number)
//	loggedOn at the agent's own device       → Sign-In, then Unavailable (reason's code)
//	loggedOff while hot-desked               → Hoteling.Logout(agent)
//	loggedOff otherwise                      → Sign-Out
//	ready → Available; notReady → Unavailable with the mapped code; workingAfterCall → Wrap-Up
//
// Within ConflictWindow of a Not Ready / Logout from the phone, a Ready /
// Login from the desktop is refused with invalidObjectState (and the
// other way round): the stronger state wins.
func (g *Gateway) SetAgentState(ctx context.Context, who csta.Requester, req *csta.SetAgentState) (*csta.SetAgentStateResponse, error) {
	return g.setAgentState(ctx, originCTI, who, req)
}

func (g *Gateway) setAgentState(ctx context.Context, from origin, who csta.Requester, req *csta.SetAgentState) (_ *csta.SetAgentStateResponse, err error) {
	ctx, cancel, t, err := g.begin(ctx, req.Device)
	defer cancel()
	if err != nil {
		return nil, err
	}
	deviceUser := t.user
	hotDesk := t.hotDesk
	agent, number, err := g.requestAgent(ctx, who, from, req.AgentID, deviceUser, req.RequestedState)
	if err != nil {
		return nil, err
	}
	if g.conflicting(agent, from, req.RequestedState) {
		g.log.Info("gateway: agent state refused: the other interface asked for not ready / logged off just before",
			"agent", agent, "requested", req.RequestedState, "window", g.cfg().ConflictWindow)
		return nil, ErrInvalidObjectState
	}
	defer func() {
		if err == nil {
			g.claim(agent, from, req.RequestedState)
			g.noteLogin(agent, who.ConnID, req.RequestedState)
		}
	}()
	code := g.dir().UnavailableCode(req.ReasonCode, g.cfg().DefaultUnavailableCode)
	notFound := csta.ErrInvalidAgentIdentifier
	promisedBy := from.promiseOrigin()
	if _, forced := ctx.Value(logoutReasonKey{}).(string); forced {
		promisedBy = OriginAdmin
	}
	// What the agent (and whoever sits at the desk) is promised now, so
	// that a failure keeps "as before" (reconcile.go).
	g.baseline(agent, g.User(deviceUser).GuestUserID)
	set := func(state xsi.ACDState, code string) error {
		fate := g.fateOf(ctx, agent)
		mark := g.agentEventMark(agent)
		if err := g.deps.Actions.SetAgentState(ctx, agent, state, code); err != nil {
			if xsi.MayApplyLate(err) {
				g.doubtAgentState(agent, state, code)
			}
			return g.cstaError(err, notFound)
		}
		g.expectAgentState(agent, state, code, mark)
		if !fate.commit() {
			return csta.ErrResourceBusy // answered "not done": the promise before stands, owed
		}
		g.promiseAgentState(agent, state, code, promisedBy)
		return nil
	}

	switch req.RequestedState {
	case csta.ReqLoggedOn:
		if agent != deviceUser {
			if !hotDesk {
				return nil, csta.ErrInvalidDeviceID // not the agent's, and no hot desk
			}
			// A desk held by another guest is the sequencer's call: it signs
			// that guest out (issue 4, step 1), or refuses with ErrHostBusy
			// (invalidObjectState) when hoteling.refuse_occupied_host is set.
			hot := g.hoteling()
			if hot == nil {
				return nil, csta.ErrServiceNotSupported
			}
			defer g.hold(ctx, agent, deviceUser)()
			other := g.User(deviceUser).GuestUserID
			fate := g.fateOf(ctx, agent, other)
			g.intend(agent, deviceUser, number)
			defer g.persist(agent) // the intent replaced before the answer
			left, herr := hot.Login(ctx, agent, deviceUser, number)
			if herr == nil && !fate.commit() {
				herr = csta.ErrResourceBusy // answered "not done": the promises before stand, owed
			} else if herr == nil {
				g.promiseLogin(agent, left, promisedBy)
				if other != "" && other != agent {
					g.promise(other, hoteling.Want{ACD: xsi.ACDSignOut}, OriginTakeover, false)
				}
			} else {
				g.failed(herr, agent, other)
			}
			err := g.cstaError(herr, notFound)
			g.journalSync(ctx, agent) // the association is on record before the answer
			return ok(err)
		}
		defer g.hold(ctx, agent)()
		if err := set(xsi.ACDSignIn, ""); err != nil {
			return nil, err
		}
		return ok(set(xsi.ACDUnavailable, code))
	case csta.ReqLoggedOff:
		host, err := g.hostOf(ctx, agent)
		if err != nil {
			return nil, g.cstaError(err, notFound)
		}
		if host != "" {
			hot := g.hoteling()
			if hot == nil {
				return nil, csta.ErrServiceNotSupported
			}
			defer g.hold(ctx, agent, host)()
			if reason, ok := ctx.Value(logoutReasonKey{}).(string); ok {
				g.endingBy(agent, reason) // forced, stale
			} else {
				g.endingBy(agent, EndLogout)
			}
			fate := g.fateOf(ctx, agent)
			g.intend(agent, host, "")
			defer g.persist(agent) // the intent replaced before the answer
			left, herr := hot.Logout(ctx, agent)
			if herr == nil && !fate.commit() {
				herr = csta.ErrResourceBusy // answered "not done": the promise before stands, owed
			} else if herr == nil {
				g.promise(agent, left, promisedBy, false)
			} else {
				g.failed(herr, agent)
			}
			err := g.cstaError(herr, notFound)
			g.journalSync(ctx, agent) // the end is on record before the answer
			var se *hoteling.StepError
			if herr != nil && !(errors.As(herr, &se) && se.Step == hoteling.StepEndAssociation && xsi.MayApplyLate(herr)) {
				// Not ours to explain if it ends later. Unless the end
				// itself was given up on: the XSP may still apply it, and
				// that end is then ours (the reconciler puts the
				// association back), not one to free the desk for.
				g.endingBy(agent, "")
			}
			return ok(err)
		}
		defer g.hold(ctx, agent)()
		return ok(set(xsi.ACDSignOut, ""))
	case csta.ReqReady:
		defer g.hold(ctx, agent)()
		return ok(set(xsi.ACDAvailable, ""))
	case csta.ReqNotReady:
		defer g.hold(ctx, agent)()
		return ok(set(xsi.ACDUnavailable, code))
	case csta.ReqWorkingAfterCall:
		defer g.hold(ctx, agent)()
		return ok(set(xsi.ACDWrapUp, ""))
	}
	return nil, csta.ErrInvalidAgentState
}

func ok(err error) (*csta.SetAgentStateResponse, error) {
	if err != nil {
		return nil, err
	}
	return &csta.SetAgentStateResponse{}, nil
}

// hostOf is the host the agent is hot-desked at, from the view when fresh,
// else from Xsi-Actions.
func (g *Gateway) hostOf(ctx context.Context, agent string) (string, error) {
	g.mu.Lock()
	u := g.users[agent]
	if u != nil && u.hotelFresh {
		h := u.hostUserID
		g.mu.Unlock()
		return h, nil
	}
	g.mu.Unlock()
	hg, err := g.deps.Actions.GetHotelingGuest(ctx, agent)
	if err != nil {
		// Not a hoteling guest at all (service not assigned): not hot-desked.
		if errors.Is(err, xsi.ErrNotFound) {
			return "", nil
		}
		return "", err
	}
	if !hg.Active {
		return "", nil
	}
	return hg.HostUserID, nil
}

// cstaAgentState maps a BroadWorks ACD state to CSTA.
func cstaAgentState(s xsi.ACDState) (loggedOn bool, state csta.AgentState) {
	switch s {
	case xsi.ACDAvailable:
		return true, csta.AgentReady
	case xsi.ACDUnavailable, xsi.ACDSignIn:
		return true, csta.AgentNotReady
	case xsi.ACDWrapUp:
		return true, csta.AgentWorkingAfterCall
	}
	return false, csta.AgentNull
}

// GetAgentState answers from the view when fresh, else from Xsi-Actions.
func (g *Gateway) GetAgentState(ctx context.Context, who csta.Requester, req *csta.GetAgentState) (*csta.GetAgentStateResponse, error) {
	ctx, cancel, t, err := g.begin(ctx, req.Device)
	defer cancel()
	if err != nil {
		return nil, err
	}
	deviceUser := t.user
	// CSTA's GetAgentState names no agent: the one at the device, which
	// the front end's device check covered.
	agent, _, err := g.requestAgent(ctx, who, originCTI, "", deviceUser, "")
	if err != nil {
		return nil, err
	}
	var state xsi.ACDState
	var code string
	g.mu.Lock()
	u := g.users[agent]
	fresh := u != nil && u.agentFresh
	if fresh {
		state, code = u.acdState, u.unavailableCode
	}
	g.mu.Unlock()
	if !fresh {
		cc, err := g.deps.Actions.GetCallCenter(ctx, agent)
		if err != nil {
			return nil, g.cstaError(err, csta.ErrInvalidDeviceID)
		}
		state, code = cc.AgentACDState, cc.AgentUnavailableCode
	}
	loggedOn, cs := cstaAgentState(state)
	resp := &csta.GetAgentStateResponse{AgentStateList: []csta.AgentStateEntry{{
		AgentID:       g.dir().AgentID(agent),
		LoggedOnState: loggedOn,
		AgentInfo:     []csta.AgentInfoItem{{ACDGroup: req.ACDGroup, AgentState: cs}},
	}}}
	if state == xsi.ACDUnavailable && code != "" {
		resp.ReasonCode = g.dir().Reason(code)
	}
	return resp, nil
}

// SetForwarding maps forwardImmediate/forwardBusy/forwardNoAns onto Call
// Forwarding Always/Busy/No Answer (ringCount → numberOfRings, 2–20). The
// ForwardingEvent comes from the XSI event the change causes, like any
// other change; only for a service whose events this connector does not
// receive (its package left out of xsi.event_packages) is it derived from
// the successful request.
func (g *Gateway) SetForwarding(ctx context.Context, _ csta.Requester, req *csta.SetForwarding) error {
	ctx, cancel, t, err := g.begin(ctx, req.Device)
	defer cancel()
	if err != nil {
		return err
	}
	user := t.user
	f := xsi.Forwarding{Active: req.ActivateForward, ForwardToPhoneNumber: string(req.ForwardDN)}
	a := g.deps.Actions
	var set func(context.Context, string, xsi.Forwarding) error
	switch req.ForwardingType {
	case csta.ForwardImmediate:
		if req.RingCount != 0 {
			return csta.ErrInvalidRingCount
		}
		// Keep ringSplash, which CSTA does not carry.
		if cur, fresh := g.forwardingView(user, csta.ForwardImmediate); fresh {
			f.RingSplash = cur.RingSplash
		} else if cur, err := a.GetCallForwardingAlways(ctx, user); err == nil {
			f.RingSplash = cur.RingSplash
		}
		set = a.SetCallForwardingAlways
	case csta.ForwardBusy:
		if req.RingCount != 0 {
			return csta.ErrInvalidRingCount
		}
		set = a.SetCallForwardingBusy
	case csta.ForwardNoAns:
		if req.RingCount != 0 && (req.RingCount < 2 || req.RingCount > 20) {
			return csta.ErrRingCountOutOfRange
		}
		f.NumberOfRings = req.RingCount
		set = a.SetCallForwardingNoAnswer
	default:
		return csta.ErrInvalidForwardingType
	}
	defer g.hold(ctx, user)()
	if err := set(ctx, user, f); err != nil {
		return g.cstaError(err, csta.ErrInvalidDeviceID)
	}
	if g.subscribed(forwardingPackage[req.ForwardingType]) {
		return nil // the XSI event reports it
	}
	g.mu.Lock()
	evs := g.forUser(user, csta.Event{Kind: csta.EventForwarding, ForwardingType: req.ForwardingType,
		ForwardStatus: req.ActivateForward, ForwardTo: req.ForwardDN, RingCount: req.RingCount})
	g.mu.Unlock()
	g.emit(user, evs) // held until the answer is queued
	return nil
}

// forwardingPackage is the Xsi-Events package of each forwarding type.
var forwardingPackage = map[csta.ForwardingType]string{
	csta.ForwardImmediate: "Call Forwarding Always",
	csta.ForwardBusy:      "Call Forwarding Busy",
	csta.ForwardNoAns:     "Call Forwarding No Answer",
}

// subscribed says whether events of an Xsi-Events package reach the view.
func (g *Gateway) subscribed(pkg string) bool {
	return len(g.cfg().EventPackages) == 0 || slices.Contains(g.cfg().EventPackages, pkg)
}

// forwardingView is the view's value of one forwarding service and whether
// it is fresh (no change can have been missed since it was received).
func (g *Gateway) forwardingView(user string, t csta.ForwardingType) (xsi.Forwarding, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if u := g.users[user]; u != nil && u.fwd[fwdIndex(t)].fresh {
		return u.fwd[fwdIndex(t)].f, true
	}
	return xsi.Forwarding{}, false
}

// GetForwarding lists CFA, CFB and CFNA, each from the view when fresh and
// read from the XSP when not.
func (g *Gateway) GetForwarding(ctx context.Context, _ csta.Requester, req *csta.GetForwarding) (*csta.GetForwardingResponse, error) {
	ctx, cancel, t, err := g.begin(ctx, req.Device)
	defer cancel()
	if err != nil {
		return nil, err
	}
	user := t.user
	a := g.deps.Actions
	types := []struct {
		t   csta.ForwardingType
		get func(context.Context, string) (xsi.Forwarding, error)
	}{
		{csta.ForwardImmediate, a.GetCallForwardingAlways},
		{csta.ForwardBusy, a.GetCallForwardingBusy},
		{csta.ForwardNoAns, a.GetCallForwardingNoAnswer},
	}
	resp := &csta.GetForwardingResponse{}
	for _, ty := range types {
		f, fresh := g.forwardingView(user, ty.t)
		if !fresh {
			if f, err = ty.get(ctx, user); err != nil {
				return nil, g.cstaError(err, csta.ErrInvalidDeviceID)
			}
		}
		resp.ForwardingList = append(resp.ForwardingList, csta.ForwardListItem{ForwardingType: ty.t,
			ForwardStatus: f.Active, ForwardDN: forwardTo(f.ForwardToPhoneNumber), RingCount: f.NumberOfRings})
	}
	return resp, nil
}

// SetDoNotDisturb writes DND, keeping ringSplash; the DoNotDisturbEvent
// comes from the XSI event it causes.
func (g *Gateway) SetDoNotDisturb(ctx context.Context, _ csta.Requester, req *csta.SetDoNotDisturb) error {
	ctx, cancel, t, err := g.begin(ctx, req.Device)
	defer cancel()
	if err != nil {
		return err
	}
	user := t.user
	d, fresh := g.dndView(user)
	if !fresh {
		if cur, err := g.deps.Actions.GetDoNotDisturb(ctx, user); err == nil {
			d = cur
		}
	}
	d.Active = req.DoNotDisturbOn
	defer g.hold(ctx, user)()
	return g.cstaError(g.deps.Actions.SetDoNotDisturb(ctx, user, d), csta.ErrInvalidDeviceID)
}

func (g *Gateway) dndView(user string) (xsi.DoNotDisturb, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if u := g.users[user]; u != nil && u.dndFresh {
		return u.dnd, true
	}
	return xsi.DoNotDisturb{}, false
}

// GetDoNotDisturb answers from the view when fresh, else from Xsi-Actions.
func (g *Gateway) GetDoNotDisturb(ctx context.Context, _ csta.Requester, req *csta.GetDoNotDisturb) (*csta.GetDoNotDisturbResponse, error) {
	ctx, cancel, t, err := g.begin(ctx, req.Device)
	defer cancel()
	if err != nil {
		return nil, err
	}
	user := t.user
	d, fresh := g.dndView(user)
	if !fresh {
		if d, err = g.deps.Actions.GetDoNotDisturb(ctx, user); err != nil {
			return nil, g.cstaError(err, csta.ErrInvalidDeviceID)
		}
	}
	return &csta.GetDoNotDisturbResponse{DoNotDisturbOn: d.Active}, nil
}

// pendingWindow bounds how long an agent state the XSP accepted stands in
// for its confirming event.
const pendingWindow = 10 * time.Second

// agentEventMark is where user's agent-state events stand before a request
// is sent (expectAgentState).
func (g *Gateway) agentEventMark(user string) uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.user(user).events[facetAgent]
}

// expectAgentState notes that the XSP accepted state (and code) for user,
// asked for by a request sent at mark (agentEventMark): until the event
// confirms it, the view shows it already (and the reconciler compares its
// promise with that). The request is answered on the 200, before the event;
// without this a hot-desk login or logout following at once would start
// from the state before, take the late event for a contradiction, and put
// that older state back when it undoes itself, and the reconciler would
// take a previous request's late event (Available → LUNCH → Available: the
// LUNCH event arriving after the second Available's 200) for an outside
// change (both found by the fault campaign). The view showing state
// already is its event come first when an event was applied since mark, or
// when no earlier request of ours is still unconfirmed (then it is
// BroadWorks' state, and a request asking for it changes nothing and gets
// no event: a pending state would hide the next real change for
// pendingWindow). With one unconfirmed, it may be an older event.
func (g *Gateway) expectAgentState(user string, state xsi.ACDState, code string, mark uint32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.user(user)
	ourEarlier := u.pendingACD != "" && time.Now().Before(u.pendingUntil)
	if u.agentSeen && u.acdState == state && (code == "" || u.unavailableCode == code) &&
		(u.events[facetAgent] != mark || !ourEarlier) {
		u.pendingACD = "" // the event came first
		return
	}
	u.pendingACD, u.pendingCode, u.pendingUntil = state, code, time.Now().Add(pendingWindow)
}
