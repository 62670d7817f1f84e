package gateway

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/xsi"
)

// The operators' view of the state (the admin API's agents and devices),
// built from the same XSI-fed view as everything else.

// AgentStatus is one configured agent as BroadWorks last reported it.
type AgentStatus struct {
	AgentID, UserID string
	// State: loggedOff, ready, notReady, workingAfterCall, or unknown (no
	// snapshot yet).
	State  string
	Reason string    // the CSTA not-ready reason of the unavailable code
	Desk   string    // the hot desk (device ID) it is a guest at, "" if none
	Since  time.Time // when the hot-desk association began
}

// DeviceStatus is one configured device.
type DeviceStatus struct {
	DeviceID, UserID string
	HotDesk          bool
	DoNotDisturb     bool
	Forwarding       []ForwardStatus // always, busy, no answer, once known
	GuestAgentID     string          // a hot desk's guest, "" if none
	GuestSince       time.Time
}

// ForwardStatus is one forwarding service of a device.
type ForwardStatus struct {
	Type      csta.ForwardingType
	Active    bool
	Number    string
	RingCount int
}

// Observer hears, after the fact, that something the operators' view shows
// may have changed; it must not block (the admin stream's Publish).
type Observer interface {
	// UsersChanged: the view of these BroadWorks users changed.
	UsersChanged(userIDs ...string)
	// LinkChanged: the XSI link went up or down.
	LinkChanged(up bool)
	// PhoneChanged: a phone went silent or came back.
	PhoneChanged(dn string, inService bool)
	// AgentActivity: what one XSI event did to an agent (the operators'
	// charts of the last hour); only called when it did something.
	AgentActivity(a AgentActivity)
}

// AgentActivity is what one XSI event did to one agent.
type AgentActivity struct {
	UserID string
	// Login: the agent went from Sign-Out to any signed-in state, or got
	// a desk (a hoteling host, or another one) while not known to be
	// signed out. A hot-desk login associates first and signs in after
	// (hoteling's order), so it counts once, at the sign-in.
	Login bool
	// StateChanged: the ACD state, or the unavailable code, changed from
	// one the view knew (the first state seen of an agent is no change).
	StateChanged bool
	// Delay of an agent-state event (HasDelay; only events carrying a
	// stateTimestamp): when the gateway took the event minus BroadWorks'
	// timestamp of the change. It includes the time in the connector's
	// event queue and the skew between the application server's clock
	// and this host's, so it may be negative.
	Delay    time.Duration
	HasDelay bool
}

// SetObserver connects the operators' view (the admin stream).
func (g *Gateway) SetObserver(o Observer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.observer = o
}

func (g *Gateway) observe() Observer {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.observer
}

// Sentinels of ForceLogout.
var (
	ErrUnknownAgent = errors.New("gateway: unknown agent")
	ErrNotLoggedOn  = errors.New("gateway: agent not logged on")
)

// Agents lists the configured agents (directory.agents), in config order,
// then the users BroadWorks says are agents among those loaded (users.go),
// by user ID.
func (g *Gateway) Agents() []AgentStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.dir()
	out := make([]AgentStatus, 0, len(d.agents))
	seen := make(map[string]bool, len(d.agents))
	for _, e := range d.agents {
		if !seen[e.AgentID] { // the first entry of an ID counts
			seen[e.AgentID] = true
			out = append(out, g.agentStatusLocked(d, e))
		}
	}
	var loaded []AgentStatus
	for id, u := range g.users {
		if _, listed := d.agentOfUser[id]; listed || !u.roles.agent {
			continue
		}
		loaded = append(loaded, g.agentStatusLocked(d, AgentEntry{AgentID: d.AgentID(id), UserID: id}))
	}
	slices.SortFunc(loaded, func(a, b AgentStatus) int { return cmp.Compare(a.UserID, b.UserID) })
	return append(out, loaded...)
}

// AgentOf is the agent of a BroadWorks user, if any: its configured entry,
// else the user itself when BroadWorks says it is an agent.
func (g *Gateway) AgentOf(userID string) (AgentStatus, bool) {
	d := g.dir()
	g.mu.Lock()
	defer g.mu.Unlock()
	if id, ok := d.agentOfUser[userID]; ok {
		return g.agentStatusLocked(d, d.agentByID[id]), true
	}
	if u := g.users[userID]; u != nil && u.roles.agent {
		return g.agentStatusLocked(d, AgentEntry{AgentID: d.AgentID(userID), UserID: userID}), true
	}
	return AgentStatus{}, false
}

func (g *Gateway) agentStatusLocked(d *Directory, e AgentEntry) AgentStatus {
	a := AgentStatus{AgentID: e.AgentID, UserID: e.UserID, State: "unknown"}
	u := g.users[e.UserID]
	if u == nil {
		return a
	}
	if u.agentSeen {
		a.State = agentStateName(u.acdState)
		if u.acdState == xsi.ACDUnavailable && u.unavailableCode != "" {
			a.Reason = d.Reason(u.unavailableCode)
		}
	}
	if u.hostUserID != "" {
		if devs := d.Devices(u.hostUserID); len(devs) > 0 {
			a.Desk = string(devs[0])
		}
		a.Since = u.hostSince
	}
	return a
}

func agentStateName(s xsi.ACDState) string {
	switch s {
	case xsi.ACDSignOut:
		return "loggedOff"
	case xsi.ACDAvailable:
		return "ready"
	case xsi.ACDUnavailable, xsi.ACDSignIn:
		return "notReady"
	case xsi.ACDWrapUp:
		return "workingAfterCall"
	}
	return "unknown"
}

// Devices lists the configured devices (directory.devices), in config
// order, then the devices of the loaded users BroadWorks says are hot
// desks (users.go), by user ID.
func (g *Gateway) Devices() []DeviceStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.dir()
	out := make([]DeviceStatus, 0, len(d.devices))
	for _, e := range d.devices {
		if d.deviceByID[e.DeviceID].UserID == e.UserID {
			out = append(out, g.deviceStatusLocked(d, e.DeviceID, e.UserID))
		}
	}
	var hosts []string
	for id, u := range g.users {
		if _, listed := d.devicesOfUser[id]; !listed && u.roles.host {
			hosts = append(hosts, id)
		}
	}
	slices.Sort(hosts)
	for _, id := range hosts {
		for _, dev := range d.Devices(id) {
			out = append(out, g.deviceStatusLocked(d, string(dev), id))
		}
	}
	return out
}

// DevicesOf lists the devices of a BroadWorks user: its configured ones,
// else the one the domain rule gives a loaded user.
func (g *Gateway) DevicesOf(userID string) []DeviceStatus {
	d := g.dir()
	ids := d.devicesOfUser[userID]
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(ids) == 0 {
		if u := g.users[userID]; u == nil || !u.roles.loaded {
			return nil
		}
		for _, dev := range d.Devices(userID) {
			ids = append(ids, string(dev))
		}
	}
	out := make([]DeviceStatus, 0, len(ids))
	for _, id := range ids {
		if e, ok := d.deviceByID[id]; !ok || e.UserID == userID {
			out = append(out, g.deviceStatusLocked(d, id, userID))
		}
	}
	return out
}

func (g *Gateway) deviceStatusLocked(dir *Directory, deviceID, userID string) DeviceStatus {
	d := DeviceStatus{DeviceID: deviceID, UserID: userID, HotDesk: dir.deviceByID[deviceID].HotDesk || dir.hotDeskUsers[userID]}
	u := g.users[userID]
	if u != nil && u.roles.host {
		d.HotDesk = true
	}
	if u == nil {
		return d
	}
	d.DoNotDisturb = u.dnd.Active
	for i, t := range []csta.ForwardingType{csta.ForwardImmediate, csta.ForwardBusy, csta.ForwardNoAns} {
		if f := u.fwd[i]; f.seen {
			d.Forwarding = append(d.Forwarding, ForwardStatus{Type: t, Active: f.f.Active,
				Number: string(forwardTo(f.f.ForwardToPhoneNumber)), RingCount: f.f.NumberOfRings})
		}
	}
	if u.guestUserID != "" {
		d.GuestAgentID, d.GuestSince = dir.AgentID(u.guestUserID), u.guestSince
	}
	return d
}

// ForceLogout logs an agent off wherever it is (a supervisor's action),
// through the same path as a CTI logout: a hot-desked agent's sequence
// restores the desk. ErrUnknownAgent, ErrNotLoggedOn, or the CSTA error
// the request got.
func (g *Gateway) ForceLogout(ctx context.Context, agentID string) error {
	if _, known := g.dir().agentByID[agentID]; !known {
		// Configured agents, and the users BroadWorks says are agents
		// (read now when not loaded), are supervised.
		user, _, ok := g.dir().Agent(agentID)
		if !ok {
			return ErrUnknownAgent
		}
		if err := g.ensure(ctx, user); errors.Is(err, errUnknownUser) {
			return ErrUnknownAgent
		} else if err != nil {
			return g.cstaError(err, csta.ErrInvalidAgentIdentifier)
		}
		if _, agent := g.AgentOf(user); !agent {
			return ErrUnknownAgent
		}
	}
	return g.logoutAgent(ctx, agentID, EndForced)
}

// logoutAgent logs an agent off wherever it is, the journal recording
// reason (forced, stale).
func (g *Gateway) logoutAgent(ctx context.Context, agentID, reason string) error {
	user, _, ok := g.dir().Agent(agentID)
	if !ok {
		return ErrUnknownAgent
	}
	v := g.User(user)
	if v.HostUserID == "" && (v.ACDState == "" || v.ACDState == xsi.ACDSignOut) {
		return ErrNotLoggedOn
	}
	device := user
	if v.HostUserID != "" {
		device = v.HostUserID
	}
	if devs := g.dir().Devices(device); len(devs) > 0 {
		device = string(devs[0])
	}
	g.log.Info("gateway: logging an agent off", "agent", agentID, "device", device, "reason", reason)
	ctx = context.WithValue(ctx, logoutReasonKey{}, reason)
	_, err := g.setAgentState(ctx, originCTI, csta.Requester{}, &csta.SetAgentState{Device: csta.DeviceID(device), RequestedState: csta.ReqLoggedOff, AgentID: agentID})
	return err
}
