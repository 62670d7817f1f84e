package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/phonesync"
	"github.com/broadworks-connector/connector/xsi"
)

// Phones is where the gateway sends every change for subscribed phones;
// *phonesync.Server satisfies it. Publish must not block.
type Phones interface {
	Publish(dn string, c phonesync.Change)
	// Subscribed: a phone holds a subscription for line dn (its user stays
	// loaded).
	Subscribed(dn string) bool
}

// SetPhones connects the phone side (phonesync starts after the gateway).
func (g *Gateway) SetPhones(p Phones) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deps.Phones = p
}

func (g *Gateway) phones() Phones {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.deps.Phones
}

// publishToPhones translates one CSTA event (already published to the CSTA
// monitors, in the same order) into what the phones of that device are told.
// A hot desk's phone also hears its guest association (x-broadworks-
// hoteling) when an agent other than the desk's own user logs on or off.
// version is the view version that made ev.
func (g *Gateway) publishToPhones(p Phones, ev csta.Event, version uint64) {
	dn := string(ev.Device)
	v := phonesync.Version(version)
	switch ev.Kind {
	case csta.EventDoNotDisturb:
		p.Publish(dn, phonesync.Change{Kind: phonesync.ChangeDoNotDisturb, DoNotDisturb: ev.DoNotDisturbOn, Version: v})
	case csta.EventForwarding:
		p.Publish(dn, phonesync.Change{Kind: phonesync.ChangeForwarding, Forwarding: phonesync.Forwarding{
			Type: phonesync.ForwardingType(ev.ForwardingType), Active: ev.ForwardStatus,
			Number: string(ev.ForwardTo), RingCount: ev.RingCount}, Version: v})
	case csta.EventAgentLoggedOn, csta.EventAgentLoggedOff, csta.EventAgentReady, csta.EventAgentNotReady, csta.EventAgentWorkingAfterCall:
		st := phoneAgentState[ev.Kind]
		a := phonesync.AgentState{AgentID: ev.AgentID, State: st}
		if st == phonesync.AgentNotReady {
			a.Reason = ev.ReasonCode
		}
		p.Publish(dn, phonesync.Change{Kind: phonesync.ChangeAgent, Agent: a, Version: v})
		if ev.Kind == csta.EventAgentLoggedOn || ev.Kind == csta.EventAgentLoggedOff {
			user, hotDesk, ok := g.dir().Device(ev.Device)
			agentUser, _, known := g.dir().Agent(ev.AgentID)
			if ok && hotDesk && known && agentUser != user {
				h := phonesync.Hoteling{}
				if ev.Kind == csta.EventAgentLoggedOn {
					h.GuestAddress = ev.AgentID
				}
				p.Publish(dn, phonesync.Change{Kind: phonesync.ChangeHoteling, Hoteling: h, Version: v})
			}
		}
	}
}

var phoneAgentState = map[csta.EventKind]phonesync.AgentStateName{
	csta.EventAgentLoggedOn:         phonesync.AgentLoggedOn,
	csta.EventAgentLoggedOff:        phonesync.AgentLoggedOff,
	csta.EventAgentReady:            phonesync.AgentReady,
	csta.EventAgentNotReady:         phonesync.AgentNotReady,
	csta.EventAgentWorkingAfterCall: phonesync.AgentWorkingAfterCall,
}

// ---- requests from phones ----

// PhoneService is the gateway as phonesync sees it: phones' requests go
// through the same service methods as CTI requests, and so reach
// BroadWorks, the CTI monitors and the other phones the same way.
func (g *Gateway) PhoneService() phonesync.Service { return phoneService{g} }

type phoneService struct{ g *Gateway }

var _ phonesync.Service = phoneService{}

// phoneErr turns the answer a CTI client would get into phonesync's terms.
func phoneErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, csta.ErrInvalidDeviceID):
		return errors.Join(phonesync.ErrUnknownDevice, err)
	case errors.Is(err, csta.ErrInvalidAgentIdentifier):
		return errors.Join(phonesync.ErrUnknownAgent, err)
	case errors.Is(err, csta.ErrPrivilegeViolationSpecifiedDevice):
		return errors.Join(phonesync.ErrForbidden, err)
	}
	return err
}

// phoneRequester is who a phone's request comes from: the phone at dn,
// which acts on its own line only, and through requestAgent on the agent
// signed in at it (the guest at this desk, or the line's own agent).
func phoneRequester(dn string) csta.Requester {
	return csta.Requester{Transport: "sip", Devices: csta.LimitTo(csta.DeviceID(dn))}
}

// FeatureState is what a full NOTIFY shows for the phone at dn: the
// device user's DND and forwarding, and the agent at the device (its guest,
// or the line's own agent), with the view version it was read at. The view
// is read in one hold of Gateway.mu, so the version says exactly which
// changes the values hold: every event at or below it, none above
// (phonesync.Version; phonesync then drops a published change the phone
// was already sent newer). What the view does not hold fresh (after a link
// loss, or a package not subscribed) is read from the XSP after that: such
// a value is at least as new as the version, maybe newer, and an event
// above the version still follows it; only two changes of one feature
// landing within that read could then reach the phone out of order.
func (p phoneService) FeatureState(ctx context.Context, dn string) (phonesync.FeatureState, error) {
	g := p.g
	ctx, cancel, t, err := g.begin(ctx, csta.DeviceID(dn))
	defer cancel()
	if err != nil {
		return phonesync.FeatureState{}, phoneErr(err)
	}
	v := g.phoneView(t.user)
	a := g.deps.Actions
	if !v.dndFresh {
		if v.dnd, err = a.GetDoNotDisturb(ctx, t.user); err != nil {
			return phonesync.FeatureState{}, phoneErr(g.cstaError(err, csta.ErrInvalidDeviceID))
		}
	}
	gets := [3]func(context.Context, string) (xsi.Forwarding, error){
		a.GetCallForwardingAlways, a.GetCallForwardingBusy, a.GetCallForwardingNoAnswer}
	for i := range v.fwd {
		if !v.fwd[i].fresh {
			if v.fwd[i].f, err = gets[i](ctx, t.user); err != nil {
				return phonesync.FeatureState{}, phoneErr(g.cstaError(err, csta.ErrInvalidDeviceID))
			}
		}
	}
	st := phonesync.FeatureState{DoNotDisturb: v.dnd.Active, Version: phonesync.Version(v.version)}
	for i, ty := range []csta.ForwardingType{csta.ForwardImmediate, csta.ForwardBusy, csta.ForwardNoAns} {
		f := v.fwd[i].f
		st.Forwarding = append(st.Forwarding, phonesync.Forwarding{Type: phonesync.ForwardingType(ty),
			Active: f.Active, Number: string(forwardTo(f.ForwardToPhoneNumber)), RingCount: f.NumberOfRings})
	}
	if !v.agentFresh {
		cc, err := a.GetCallCenter(ctx, v.agent)
		if err != nil {
			// A device whose user has no call-center service has no agent
			// to show; that is not an error for the phone.
			return st, nil
		}
		v.acd, v.code = cc.AgentACDState, cc.AgentUnavailableCode
	}
	agent := phonesync.AgentState{AgentID: g.dir().AgentID(v.agent), State: phonesync.AgentLoggedOff}
	if loggedOn, state := cstaAgentState(v.acd); loggedOn {
		switch state {
		case csta.AgentReady:
			agent.State = phonesync.AgentReady
		case csta.AgentWorkingAfterCall:
			agent.State = phonesync.AgentWorkingAfterCall
		default:
			agent.State = phonesync.AgentNotReady
			if v.acd == xsi.ACDUnavailable && v.code != "" {
				agent.Reason = g.dir().Reason(v.code)
			}
		}
	}
	st.Agent = &agent
	return st, nil
}

// phoneView is what FeatureState reads of the view, in one hold of
// Gateway.mu, with the version it is at.
type phoneView struct {
	version    uint64
	dnd        xsi.DoNotDisturb
	dndFresh   bool
	fwd        [3]forwardingView
	agent      string // the agent user at the device: its guest, or its own user
	acd        xsi.ACDState
	code       string
	agentFresh bool
}

func (g *Gateway) phoneView(user string) phoneView {
	g.mu.Lock()
	defer g.mu.Unlock()
	v := phoneView{version: g.viewVersion, agent: user}
	if u := g.users[user]; u != nil {
		v.dnd, v.dndFresh, v.fwd = u.dnd, u.dndFresh, u.fwd
		if u.guestUserID != "" {
			v.agent = u.guestUserID
		}
	}
	if u := g.users[v.agent]; u != nil && u.agentFresh {
		v.acd, v.code, v.agentFresh = u.acdState, u.unavailableCode, true
	}
	return v
}

func (p phoneService) SetDoNotDisturb(ctx context.Context, dn string, on bool, _ phonesync.Origin) error {
	return phoneErr(p.g.SetDoNotDisturb(ctx, phoneRequester(dn), &csta.SetDoNotDisturb{Device: csta.DeviceID(dn), DoNotDisturbOn: on}))
}

func (p phoneService) SetForwarding(ctx context.Context, dn string, f phonesync.Forwarding, _ phonesync.Origin) error {
	return phoneErr(p.g.SetForwarding(ctx, phoneRequester(dn), &csta.SetForwarding{Device: csta.DeviceID(dn),
		ForwardingType: csta.ForwardingType(f.Type), ActivateForward: f.Active, ForwardDN: csta.DeviceID(f.Number), RingCount: f.RingCount}))
}

func (p phoneService) SetAgentState(ctx context.Context, dn, agentID string, state phonesync.AgentStateName, reason string, _ phonesync.Origin) error {
	_, err := p.g.setAgentState(ctx, originPhone, phoneRequester(dn), &csta.SetAgentState{Device: csta.DeviceID(dn),
		RequestedState: csta.ReqAgentState(state), AgentID: agentID, ReasonCode: reason})
	return phoneErr(err)
}

// AuthorizeAgent is SetAgentState's authorization alone (requestAgent),
// changing nothing, so that phonesync can answer the SUBSCRIBE 403 before
// it answers 200 and applies the change.
func (p phoneService) AuthorizeAgent(ctx context.Context, dn, agentID string, state phonesync.AgentStateName) error {
	g := p.g
	user, _, err := g.device(csta.DeviceID(dn))
	if err != nil {
		return phoneErr(err)
	}
	_, _, err = g.requestAgent(ctx, phoneRequester(dn), originPhone, agentID, user, csta.ReqAgentState(state))
	return phoneErr(err)
}

func (p phoneService) Hoteling(ctx context.Context, hostDN string) (phonesync.Hoteling, error) {
	g := p.g
	user, hotDesk, ok := g.dir().Device(csta.DeviceID(hostDN))
	if !ok {
		return phonesync.Hoteling{}, phonesync.ErrUnknownDevice
	}
	if err := p.load(ctx, user); err != nil {
		return phonesync.Hoteling{}, err
	}
	if !g.hotDesk(user, hotDesk) {
		return phonesync.Hoteling{}, phonesync.ErrUnknownDevice
	}
	// The guest and the version it is at, in one hold (see FeatureState).
	g.mu.Lock()
	var guest string
	if u := g.users[user]; u != nil {
		guest = u.guestUserID
	}
	version := phonesync.Version(g.viewVersion)
	g.mu.Unlock()
	if guest != "" {
		return phonesync.Hoteling{GuestAddress: g.dir().AgentID(guest), Version: version}, nil
	}
	return phonesync.Hoteling{Version: version}, nil
}

// load reads a line's user from BroadWorks unless loaded and fresh (when
// the link is up): a user BroadWorks does not know is an unknown device.
func (p phoneService) load(ctx context.Context, user string) error {
	g := p.g
	if !g.LinkUp() {
		return nil
	}
	if t := g.cfg().RequestTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	err := g.ensure(ctx, user)
	if errors.Is(err, errUnknownUser) {
		return phonesync.ErrUnknownDevice
	}
	return phoneErr(g.cstaError(err, csta.ErrInvalidDeviceID))
}

// SetHoteling logs guestAddress (an agent ID, or a user ID) in at the host
// device, or the current guest out: the hot-desk sequences of SetAgentState.
func (p phoneService) SetHoteling(ctx context.Context, hostDN, guestAddress string, _ phonesync.Origin) error {
	g := p.g
	req := &csta.SetAgentState{Device: csta.DeviceID(hostDN), RequestedState: csta.ReqLoggedOn, AgentID: guestAddress}
	// A sign-in: phonesync has checked the agent's password (the nonce
	// challenge), which authorizes it for any agent, wherever it sits.
	who := csta.Requester{Transport: "sip"}
	if guestAddress == "" {
		who = phoneRequester(hostDN)
		user, _, ok := g.dir().Device(csta.DeviceID(hostDN))
		if !ok {
			return phonesync.ErrUnknownDevice
		}
		if err := p.load(ctx, user); err != nil {
			return err
		}
		guest := g.User(user).GuestUserID
		if guest == "" {
			return nil // nobody to log out
		}
		req.RequestedState, req.AgentID = csta.ReqLoggedOff, g.dir().AgentID(guest)
	}
	_, err := g.setAgentState(ctx, originPhone, who, req)
	return phoneErr(err)
}

// GuestPassword is the configured password of the agent guestAddress names
// (its agent ID, or its BroadWorks user ID).
func (p phoneService) GuestPassword(guestAddress string) (string, bool) {
	g := p.g
	user, _, ok := g.dir().Agent(guestAddress)
	if !ok {
		return "", false
	}
	for _, ap := range g.cfg().AgentPasswords {
		if u, _, ok := g.dir().Agent(ap.AgentID); ok && u == user {
			return ap.Password, true
		}
	}
	return "", false
}

// PhoneService reports a phone that went silent (OutOfServiceEvent) or came
// back (BackInServiceEvent) on the CSTA monitors of its device's user.
func (p phoneService) PhoneService(dn string, inService bool) {
	g := p.g
	user, _, ok := g.dir().Device(csta.DeviceID(dn))
	if !ok {
		return
	}
	kind := csta.EventOutOfService
	if inService {
		kind = csta.EventBackInService
	}
	g.log.Info("gateway: phone liveness changed", "dn", dn, "in_service", inService)
	if obs := g.observe(); obs != nil {
		obs.PhoneChanged(dn, inService)
	}
	g.mu.Lock()
	evs := g.forUser(user, csta.Event{Kind: kind})
	g.mu.Unlock()
	g.emit(user, evs)
}

// ---- desktop versus phone ----

// origin is the interface a request came from.
type origin int

const (
	originCTI origin = iota + 1
	originPhone
)

// promiseOrigin names the origin of a promise (reconcile.go).
func (o origin) promiseOrigin() string {
	if o == originPhone {
		return OriginPhone
	}
	return OriginCTI
}

// agentClaim is the last agent-state request that succeeded for an agent.
type agentClaim struct {
	strong bool // notReady or loggedOff
	origin origin
	at     time.Time
}

// maxClaims bounds the conflict-window table; old claims are swept first.
const maxClaims = 100000

// conflicting says whether a request for state from o must lose against
// the agent's last claim: within ConflictWindow, from the other interface,
// Not Ready / Logout beats Ready / Login (the rule SIP Server applies
// between CUCM phones and desktops; research/sip.md §2.4).
func (g *Gateway) conflicting(agent string, o origin, state csta.ReqAgentState) bool {
	if g.cfg().ConflictWindow <= 0 || (state != csta.ReqReady && state != csta.ReqLoggedOn) {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.claims[agent]
	return ok && c.strong && c.origin != o && time.Since(c.at) < g.cfg().ConflictWindow
}

// claim records a successful agent-state request.
func (g *Gateway) claim(agent string, o origin, state csta.ReqAgentState) {
	if g.cfg().ConflictWindow <= 0 {
		return
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.claims) >= maxClaims {
		for id, c := range g.claims {
			if now.Sub(c.at) >= g.cfg().ConflictWindow {
				delete(g.claims, id)
			}
		}
		if len(g.claims) >= maxClaims {
			return // all recent: drop this one rather than grow
		}
	}
	g.claims[agent] = agentClaim{strong: state == csta.ReqNotReady || state == csta.ReqLoggedOff, origin: o, at: now}
}
