package xspsim

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/beevik/etree"
)

// Agent ACD states (XSD AgentState).
const (
	StateSignIn      = "Sign-In"
	StateAvailable   = "Available"
	StateUnavailable = "Unavailable"
	StateWrapUp      = "Wrap-Up"
	StateSignOut     = "Sign-Out"
)

// Event package names (XSD EventPackage) the simulator produces events for.
const (
	PkgCallCenterAgent        = "Call Center Agent"
	PkgCallForwardingAlways   = "Call Forwarding Always"
	PkgCallForwardingBusy     = "Call Forwarding Busy"
	PkgCallForwardingNoAnswer = "Call Forwarding No Answer"
	PkgDoNotDisturb           = "Do Not Disturb"
	PkgHotelingGuest          = "Hoteling Guest"
)

var supportedPackages = []string{PkgCallCenterAgent, PkgCallForwardingAlways, PkgCallForwardingBusy,
	PkgCallForwardingNoAnswer, PkgDoNotDisturb, PkgHotelingGuest}

type forwarding struct {
	active     bool
	number     string
	ringSplash bool
	rings      int // CFNA only
}

// userState is one user's application-server state. It is kept small (a
// contact center has 100,000 users): the seed is referenced, not copied,
// and the services nobody touched have no state of their own (svc is nil
// until first use, meaning every service at its default).
type userState struct {
	*User                  // the seed (Config.Users or an AddUsers batch; never modified)
	grp             *group // the user's group (and through it its enterprise)
	svcs            *services
	seedIdx         int32  // position in Server.order
	acdState        string // Call Center agents only
	unavailableCode string
	stateTS         int64 // Unix ms of the last ACD state change
	signInTS        int64 // Unix ms of the last sign-in
}

// services is the state of the services a user has beyond the ACD state,
// allocated on first use.
type services struct {
	// unjoined[i] is true while the agent is unjoined from CallCenters[i];
	// nil: joined to every queue.
	unjoined []bool

	dnd            struct{ active, ringSplash bool }
	cfa, cfb, cfna forwarding

	guest struct {
		active      bool
		enableLimit bool
		limitHours  int
		hostID      string
		assocTime   time.Time
	}
	host struct {
		active       bool
		enforceLimit bool
		limitHours   int
		accessLevel  string
		guestID      string
		assocTime    time.Time
	}
}

// newUserState builds the state of a seed user u (checked by checkUser);
// defaultCode is the group's default unavailable code.
func newUserState(u *User, grp *group, now time.Time, defaultCode string) *userState {
	us := &userState{User: u, grp: grp, acdState: StateSignOut, stateTS: now.UnixMilli()}
	if u.CallCenter && u.ACDState != "" && u.ACDState != StateSignOut {
		us.acdState, us.signInTS = u.ACDState, us.stateTS
		if us.acdState == StateSignIn { // transient, as in setAgentStateLocked
			us.acdState = StateAvailable
		}
		if us.acdState == StateUnavailable {
			us.unavailableCode = defaultCode
		}
	}
	return us
}

// svc returns the user's service state, creating it with BroadWorks'
// defaults on first use.
func (u *userState) svc() *services {
	if u.svcs == nil {
		v := &services{}
		v.cfna.rings = 3
		v.guest.limitHours = 24
		v.host.active = u.HotelingHost
		v.host.accessLevel = "Group"
		v.host.limitHours = 24
		if u.HostAssociationLimitHours > 0 {
			v.host.enforceLimit = true
			v.host.limitHours = min(u.HostAssociationLimitHours, 999)
		}
		u.svcs = v
	}
	return u.svcs
}

// joined reports whether the agent is joined to (available in) queue.
func (u *userState) joined(queue string) bool {
	i := slices.Index(u.CallCenters, queue)
	if i < 0 {
		return false
	}
	return u.svcs == nil || u.svcs.unjoined == nil || !u.svcs.unjoined[i]
}

// setJoined records the agent's availability in queue, one of CallCenters.
func (u *userState) setJoined(queue string, available bool) {
	i := slices.Index(u.CallCenters, queue)
	if i < 0 {
		return
	}
	v := u.svc()
	if v.unjoined == nil {
		if available {
			return
		}
		v.unjoined = make([]bool, len(u.CallCenters))
	}
	v.unjoined[i] = !available
}

func ms(unixMilli int64) string { return strconv.FormatInt(unixMilli, 10) }

func xsdTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// --- XML renderers; p is the element prefix ("" for Actions, "xsi:" in events).

func (u *userState) callCenterXML(r *etree.Element) {
	add(r, "agentACDState", u.acdState)
	if u.acdState == StateUnavailable && u.unavailableCode != "" {
		add(r, "agentUnavailableCode", u.unavailableCode)
	}
	add(r, "useDefaultGuardTimer", "true")
	add(r, "enableGuardTimer", "false")
	add(r, "guardTimerSeconds", "5")
	add(r, "useSystemDefaultUnavailableSettings", "true")
	add(r, "forceAgentUnavailableOnDNDActivation", "false")
	add(r, "forceUnavailableOnPersonalCalls", "false")
	add(r, "forceAgentUnavailableOnBouncedCallLimit", "false")
	add(r, "numberConsecutiveBouncedCallsToForceAgentUnavailable", "3")
	add(r, "makeOutgoingCallsAsCallCenter", "false")
	if len(u.CallCenters) > 0 {
		l := r.CreateElement("callCenterList")
		for _, q := range u.CallCenters {
			d := l.CreateElement("callCenterDetails")
			add(d, "serviceUserId", q)
			add(d, "available", boolText(u.joined(q)))
		}
	}
}

func (u *userState) agentStateInfo(parent *etree.Element, p, tag string) {
	si := parent.CreateElement(p + tag)
	add(si, p+"state", u.acdState)
	ts := si.CreateElement(p + "stateTimestamp")
	add(ts, p+"value", ms(u.stateTS))
	if u.acdState == StateUnavailable && u.unavailableCode != "" {
		add(si, p+"unavailableCode", u.unavailableCode)
	}
	if u.acdState != StateSignOut {
		add(si, p+"signInTimestamp", ms(u.signInTS))
		add(si, p+"totalAvailableTime", "0")
		awt := si.CreateElement(p + "averageWrapUpTime")
		add(awt, p+"value", "0")
	}
}

func (u *userState) joinInfo(parent *etree.Element, p, queue string) {
	ji := parent.CreateElement(p + "joinInfo")
	add(ji, p+"acdUserId", queue)
	if u.joined(queue) {
		ji.CreateElement(p + "joined")
	}
}

func (f *forwarding) xml(r *etree.Element, p, kind string) {
	add(r, p+"active", boolText(f.active))
	if f.number != "" {
		add(r, p+"forwardToPhoneNumber", f.number)
	}
	switch kind {
	case "always":
		add(r, p+"ringSplash", boolText(f.ringSplash))
	case "noanswer":
		add(r, p+"numberOfRings", strconv.Itoa(f.rings))
	}
}

func (u *userState) dndXML(r *etree.Element, p string) {
	add(r, p+"active", boolText(u.svc().dnd.active))
	add(r, p+"ringSplash", boolText(u.svc().dnd.ringSplash))
}

func (s *Server) guestXML(u *userState, r *etree.Element, p string) {
	add(r, p+"active", boolText(u.svc().guest.active))
	add(r, p+"enableAssociationLimit", boolText(u.svc().guest.enableLimit))
	add(r, p+"associationLimitHours", strconv.Itoa(u.svc().guest.limitHours))
	if u.svc().guest.hostID == "" {
		return
	}
	add(r, p+"hostUserId", u.svc().guest.hostID)
	h := s.users[u.svc().guest.hostID]
	if h != nil && h.LastName != "" {
		add(r, p+"hostLastName", h.LastName)
	}
	if h != nil && h.FirstName != "" {
		add(r, p+"hostFirstName", h.FirstName)
	}
	add(r, p+"hostAssociationDateTime", xsdTime(u.svc().guest.assocTime))
	if h != nil {
		add(r, p+"hostEnforcesAssociationLimit", boolText(h.svc().host.enforceLimit))
		add(r, p+"hostAssociationLimitHours", strconv.Itoa(h.svc().host.limitHours))
	}
}

func (s *Server) hostXML(u *userState, r *etree.Element) {
	add(r, "active", boolText(u.svc().host.active))
	add(r, "enforceAssociationLimit", boolText(u.svc().host.enforceLimit))
	add(r, "associationLimitHours", strconv.Itoa(u.svc().host.limitHours))
	add(r, "accessLevel", u.svc().host.accessLevel)
	if u.svc().host.guestID == "" {
		return
	}
	g := s.users[u.svc().host.guestID]
	if g == nil {
		return
	}
	if g.LastName != "" {
		add(r, "guestLastName", g.LastName)
	}
	if g.FirstName != "" {
		add(r, "guestFirstName", g.FirstName)
	}
	if g.PhoneNumber != "" {
		add(r, "guestPhoneNumber", g.PhoneNumber)
	}
	if g.Extension != "" {
		add(r, "guestExtension", g.Extension)
	}
	add(r, "guestAssociationDateTime", xsdTime(u.svc().host.assocTime))
}

// --- event data builders (prefix xsi:) ---------------------------------------

func eventData(typ string) *etree.Element {
	ed := etree.NewElement("xsi:eventData")
	ed.CreateAttr("xsi1:type", "xsi:"+typ)
	return ed
}

// serviceEventData builds the eventData for a service package's current
// state (used for changes and for initial events).
func (s *Server) serviceEventData(u *userState, pkg string) *etree.Element {
	var ed, info *etree.Element
	switch pkg {
	case PkgCallForwardingAlways:
		ed = eventData("CallForwardingAlwaysEvent")
		info = ed.CreateElement("xsi:info")
		u.svc().cfa.xml(info, "xsi:", "always")
	case PkgCallForwardingBusy:
		ed = eventData("CallForwardingBusyEvent")
		info = ed.CreateElement("xsi:info")
		u.svc().cfb.xml(info, "xsi:", "busy")
	case PkgCallForwardingNoAnswer:
		ed = eventData("CallForwardingNoAnswerEvent")
		info = ed.CreateElement("xsi:info")
		u.svc().cfna.xml(info, "xsi:", "noanswer")
	case PkgDoNotDisturb:
		ed = eventData("DoNotDisturbEvent")
		info = ed.CreateElement("xsi:info")
		u.dndXML(info, "xsi:")
	case PkgHotelingGuest:
		ed = eventData("HotelingGuestEvent")
		info = ed.CreateElement("xsi:info")
		s.guestXML(u, info, "xsi:")
	case PkgCallCenterAgent:
		ed = eventData("AgentSubscriptionEvent")
		jd := ed.CreateElement("xsi:joinData")
		if len(u.CallCenters) > 0 {
			jis := jd.CreateElement("xsi:joinInfos")
			for _, q := range u.CallCenters {
				u.joinInfo(jis, "xsi:", q)
			}
		}
		u.agentStateInfo(ed, "xsi:", "stateInfo")
	}
	return ed
}

func agentStateEventData(u *userState) *etree.Element {
	ed := eventData("AgentStateEvent")
	u.agentStateInfo(ed, "xsi:", "agentStateInfo")
	return ed
}

// --- operations (called with s.mu held) ---------------------------------------

func validState(st string) bool {
	switch st {
	case StateSignIn, StateAvailable, StateUnavailable, StateWrapUp, StateSignOut:
		return true
	}
	return false
}

// setAgentStateLocked applies an ACD state change. Sign-In is transient: the
// agent ends in Available (the BroadWorks default "state after sign-in"), and
// one AgentStateEvent with the resulting state is emitted. No event is sent
// when neither state nor code changes.
func (s *Server) setAgentStateLocked(u *userState, state, code string, codeSet bool) *simError {
	if !u.CallCenter {
		return notAssigned("Call Center", u.ID)
	}
	if state == "" {
		state = u.acdState
	}
	if !validState(state) {
		return invalid("agentACDState: invalid value %q", state)
	}
	if state == StateSignIn {
		state = StateAvailable
		if u.acdState != StateSignOut {
			state = u.acdState
		}
	}
	if codeSet && code != "" {
		if state != StateUnavailable {
			return invalid("agentUnavailableCode is only allowed with agentACDState Unavailable")
		}
		if len(code) > 10 {
			return invalid("agentUnavailableCode: %q longer than 10 characters", code)
		}
		if !s.codeActive(code) {
			return invalid("agentUnavailableCode: %q is not an active unavailable code of group %s", code, u.grp.id)
		}
	}
	if state == StateUnavailable && !codeSet {
		if state == u.acdState {
			code = u.unavailableCode
		} else {
			code = s.defaultCode()
		}
	}
	if state == StateUnavailable && code == "" && s.cfg.ForceUnavailableCodes {
		return invalid("agentUnavailableCode is required (group forces unavailable codes)")
	}
	if state != StateUnavailable {
		code = ""
	}
	if state == u.acdState && code == u.unavailableCode {
		return nil
	}
	now := time.Now().UnixMilli()
	if u.acdState == StateSignOut && state != StateSignOut {
		u.signInTS = now
	}
	u.acdState, u.unavailableCode, u.stateTS = state, code, now
	s.notifyLocked(u, PkgCallCenterAgent, agentStateEventData(u))
	return nil
}

func (s *Server) codeActive(code string) bool {
	for _, c := range s.cfg.UnavailableCodes {
		if c.Code == code && c.Active {
			return true
		}
	}
	return false
}

func (s *Server) defaultCode() string {
	for _, c := range s.cfg.UnavailableCodes {
		if c.Default && c.Active {
			return c.Code
		}
	}
	return ""
}

func (s *Server) setJoinedLocked(u *userState, queue string, available bool) *simError {
	if !slices.Contains(u.CallCenters, queue) {
		return invalid("serviceUserId %q: agent %s is not assigned to that call center", queue, u.ID)
	}
	if u.joined(queue) == available {
		return nil
	}
	u.setJoined(queue, available)
	ed := eventData("ACDAgentJoinUpdateEvent")
	d := ed.CreateElement("xsi:ccAgentJoinUpdateData")
	u.joinInfo(d, "xsi:", queue)
	s.notifyLocked(u, PkgCallCenterAgent, ed)
	return nil
}

func (s *Server) hostLimit(g, h *userState) time.Duration {
	hours := 0
	if g.svc().guest.enableLimit {
		hours = g.svc().guest.limitHours
	}
	if h != nil && h.svc().host.enforceLimit && (hours == 0 || h.svc().host.limitHours < hours) {
		hours = h.svc().host.limitHours
	}
	return time.Duration(hours) * s.cfg.HourUnit
}

// checkHostLocked applies BroadWorks' host rules for guest g: the host
// exists, is not the guest, has Hoteling Host assigned and active, and
// carries no other guest.
func (s *Server) checkHostLocked(g *userState, hostID string) *simError {
	h := s.users[hostID]
	switch {
	case h == nil:
		return errf(http.StatusBadRequest, ErrCodeHostNotAvailable, "hoteling host %s not found", hostID)
	case h == g:
		return errf(http.StatusBadRequest, ErrCodeHostNotAvailable, "a user cannot be its own hoteling host")
	case !h.HotelingHost || !h.svc().host.active:
		return errf(http.StatusBadRequest, ErrCodeHostNotAvailable, "user %s has no active Hoteling Host service", hostID)
	case !h.hostReaches(g):
		return errf(http.StatusBadRequest, ErrCodeHostNotAvailable, "hoteling host %s (access level %s) is not available to %s of another group or enterprise", hostID, h.svc().host.accessLevel, g.ID)
	case h.svc().host.guestID != "" && h.svc().host.guestID != g.ID:
		return errf(http.StatusBadRequest, ErrCodeHostBusy, "hoteling host %s is already associated with guest %s", hostID, h.svc().host.guestID)
	}
	return nil
}

// hostReaches reports whether host h's access level lets guest g use it:
// Group, a guest of the host's group; Enterprise, of its enterprise.
func (h *userState) hostReaches(g *userState) bool {
	if h.svc().host.accessLevel == "Enterprise" {
		return h.grp.ent == g.grp.ent
	}
	return h.grp == g.grp
}

// associateLocked associates guest g with host hostID following the
// BroadWorks rules: the host exists, has Hoteling Host assigned and active,
// and carries no other guest; the guest's Hoteling Guest is active.
func (s *Server) associateLocked(g *userState, hostID string) *simError {
	if err := s.checkHostLocked(g, hostID); err != nil {
		return err
	}
	if !g.svc().guest.active {
		return errf(http.StatusBadRequest, ErrCodeGuestInactive, "Hoteling Guest service of %s is not active", g.ID)
	}
	h := s.users[hostID]
	if g.svc().guest.hostID == hostID {
		return nil
	}
	if old := s.users[g.svc().guest.hostID]; old != nil {
		old.svc().host.guestID = ""
	}
	now := time.Now()
	g.svc().guest.hostID, g.svc().guest.assocTime = hostID, now
	h.svc().host.guestID, h.svc().host.assocTime = g.ID, now
	s.assocGuests[g.ID] = g
	if lim := s.hostLimit(g, h); lim > 0 {
		s.noteAssocExpiryLocked(now.Add(lim))
	}
	s.notifyLocked(g, PkgHotelingGuest, s.serviceEventData(g, PkgHotelingGuest))
	return nil
}

// endAssociationLocked ends g's association, if any, and reports whether it
// changed anything (without emitting the event when silent).
func (s *Server) endAssociationLocked(g *userState, silent bool) bool {
	if g.svc().guest.hostID == "" {
		return false
	}
	if h := s.users[g.svc().guest.hostID]; h != nil && h.svc().host.guestID == g.ID {
		h.svc().host.guestID = ""
	}
	g.svc().guest.hostID = ""
	delete(s.assocGuests, g.ID)
	if !silent {
		s.notifyLocked(g, PkgHotelingGuest, s.serviceEventData(g, PkgHotelingGuest))
	}
	return true
}

func (s *Server) expireAssociationsLocked(now time.Time) {
	// Only associated guests can expire, and none before nextAssocExpiry
	// (unless a limit setting changed): most ticks walk nothing.
	if !s.assocLimitsChanged && (s.nextAssocExpiry.IsZero() || now.Before(s.nextAssocExpiry)) {
		return
	}
	s.assocLimitsChanged, s.nextAssocExpiry = false, time.Time{}
	var due []*userState
	for _, g := range s.assocGuests {
		lim := s.hostLimit(g, s.users[g.svc().guest.hostID])
		switch {
		case lim <= 0:
		case now.Sub(g.svc().guest.assocTime) >= lim:
			due = append(due, g)
		default:
			s.noteAssocExpiryLocked(g.svc().guest.assocTime.Add(lim))
		}
	}
	// End them in seed order.
	slices.SortFunc(due, func(a, b *userState) int { return int(a.seedIdx - b.seedIdx) })
	for _, g := range due {
		s.endAssociationLocked(g, false)
	}
}

// noteAssocExpiryLocked keeps s.nextAssocExpiry at the earliest time an
// association may reach its limit.
func (s *Server) noteAssocExpiryLocked(at time.Time) {
	if s.nextAssocExpiry.IsZero() || at.Before(s.nextAssocExpiry) {
		s.nextAssocExpiry = at
	}
}
