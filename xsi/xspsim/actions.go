package xspsim

import (
	"net/http"
	"strings"

	"github.com/beevik/etree"
)

var (
	orderCallCenter = []string{"agentACDState", "agentUnavailableCode", "useDefaultGuardTimer", "enableGuardTimer",
		"guardTimerSeconds", "useSystemDefaultUnavailableSettings", "forceAgentUnavailableOnDNDActivation",
		"forceUnavailableOnPersonalCalls", "forceAgentUnavailableOnBouncedCallLimit",
		"numberConsecutiveBouncedCallsToForceAgentUnavailable", "makeOutgoingCallsAsCallCenter",
		"outgoingCallDNIS", "callCenterList"}
	orderCFA         = []string{"active", "forwardToPhoneNumber", "ringSplash"}
	orderCFB         = []string{"active", "forwardToPhoneNumber"}
	orderCFNA        = []string{"active", "forwardToPhoneNumber", "numberOfRings"}
	orderDND         = []string{"active", "ringSplash"}
	orderGuest       = []string{"active", "enableAssociationLimit", "associationLimitHours", "hostUserId", "hostLastName", "hostFirstName", "hostAssociationDateTime", "hostEnforcesAssociationLimit", "hostAssociationLimitHours"}
	orderHost        = []string{"active", "enforceAssociationLimit", "associationLimitHours", "accessLevel", "removeGuestAssociation", "guestLastName", "guestFirstName", "guestPhoneNumber", "guestExtension", "guestLocationDialingCode", "guestAssociationDateTime"}
	orderCCDetails   = []string{"serviceUserId", "available", "phoneNumber", "extension", "type", "priority", "isLogOffAllowed", "skillLevel"}
	numberOfRingsSet = map[int]bool{0: true}
)

func init() {
	for i := 2; i <= 20; i++ {
		numberOfRingsSet[i] = true
	}
}

func (s *Server) lookupUser(id string) (*userState, *simError) {
	u := s.users[id]
	if u == nil {
		return nil, errf(http.StatusNotFound, ErrCodeUserNotFound, "User not found: %s", id)
	}
	if !s.reaches(u.grp.ent.id) {
		return nil, outOfScope("user", id, u.grp.ent.id)
	}
	return u, nil
}

// handleService serves GET|PUT .../user/{userId}/services/{service}.
func (s *Server) handleService(w http.ResponseWriter, r *http.Request) {
	userID, service := r.PathValue("userId"), strings.ToLower(r.PathValue("service"))
	var root string
	var order []string
	switch service {
	case "callcenter":
		root, order = "CallCenter", orderCallCenter
	case "callforwardingalways":
		root, order = "CallForwardingAlways", orderCFA
	case "callforwardingbusy":
		root, order = "CallForwardingBusy", orderCFB
	case "callforwardingnoanswer":
		root, order = "CallForwardingNoAnswer", orderCFNA
	case "donotdisturb":
		root, order = "DoNotDisturb", orderDND
	case "hotelingguest":
		root, order = "HotelingGuest", orderGuest
	case "hotelinghost":
		root, order = "HotelingHost", orderHost
	default:
		s.writeError(w, errf(http.StatusNotFound, ErrCodeNotFound, "service %s not supported by the simulator", r.PathValue("service")))
		return
	}
	var body *etree.Element
	if r.Method == http.MethodPut {
		var perr *simError
		if body, perr = parseBody(w, r, root, order); perr != nil {
			s.writeError(w, perr)
			return
		}
	}
	s.mu.Lock()
	u, err := s.lookupUser(userID)
	if err == nil && root == "CallCenter" && !u.CallCenter {
		err = notAssigned("Call Center", userID)
	}
	if err == nil && root == "HotelingHost" && !u.HotelingHost {
		err = notAssigned("Hoteling Host", userID)
	}
	if err != nil {
		s.mu.Unlock()
		s.writeError(w, err)
		return
	}
	if r.Method == http.MethodGet {
		b := s.actionsBytes(root, s.serviceGetBuilderLocked(u, root))
		s.mu.Unlock()
		s.sendActions(w, http.StatusOK, b)
		return
	}
	switch root {
	case "CallCenter":
		err = s.putCallCenterLocked(u, body, r.URL.Query().Get("validateSignOut") == "true")
	case "CallForwardingAlways":
		err = s.putForwardingLocked(u, body, &u.svc().cfa, PkgCallForwardingAlways)
	case "CallForwardingBusy":
		err = s.putForwardingLocked(u, body, &u.svc().cfb, PkgCallForwardingBusy)
	case "CallForwardingNoAnswer":
		err = s.putForwardingLocked(u, body, &u.svc().cfna, PkgCallForwardingNoAnswer)
	case "DoNotDisturb":
		err = s.putDNDLocked(u, body)
	case "HotelingGuest":
		err = s.putGuestLocked(u, body)
	case "HotelingHost":
		err = s.putHostLocked(u, body)
	}
	s.mu.Unlock()
	if err != nil {
		s.writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) serviceGetBuilderLocked(u *userState, root string) func(*etree.Element) {
	switch root {
	case "CallCenter":
		return u.callCenterXML
	case "CallForwardingAlways":
		return func(r *etree.Element) { u.svc().cfa.xml(r, "", "always") }
	case "CallForwardingBusy":
		return func(r *etree.Element) { u.svc().cfb.xml(r, "", "busy") }
	case "CallForwardingNoAnswer":
		return func(r *etree.Element) { u.svc().cfna.xml(r, "", "noanswer") }
	case "DoNotDisturb":
		return func(r *etree.Element) { u.dndXML(r, "") }
	case "HotelingGuest":
		return func(r *etree.Element) { s.guestXML(u, r, "") }
	default:
		return func(r *etree.Element) { s.hostXML(u, r) }
	}
}

func (s *Server) putCallCenterLocked(u *userState, body *etree.Element, validateSignOut bool) *simError {
	var state, code string
	codeSet := false
	if e := child(body, "agentACDState"); e != nil {
		var err *simError
		if state, err = token(e); err != nil {
			return err
		}
		if !validState(state) {
			return invalid("agentACDState: invalid value %q", state)
		}
	}
	if validateSignOut {
		if state != StateSignOut || len(body.ChildElements()) != 1 {
			return invalid("validateSignOut=true requires a body with only agentACDState Sign-Out")
		}
	}
	if e := child(body, "agentUnavailableCode"); e != nil {
		codeSet = true
		isnil, err := isNil(e)
		if err != nil {
			return err
		}
		if !isnil {
			if code, err = token(e); err != nil {
				return err
			}
		}
	}
	// Validate the queue list before changing anything.
	type join struct {
		queue     string
		available bool
	}
	var joins []join
	if l := child(body, "callCenterList"); l != nil {
		for _, d := range l.ChildElements() {
			if d.Tag != "callCenterDetails" || d.NamespaceURI() != NS {
				return badRequest("unexpected element %s in callCenterList", d.Tag)
			}
			if err := checkOrder(d, orderCCDetails); err != nil {
				return err
			}
			idE, avE := child(d, "serviceUserId"), child(d, "available")
			if idE == nil || avE == nil {
				continue
			}
			q, err := token(idE)
			if err != nil {
				return err
			}
			av, err := parseBool(avE)
			if err != nil {
				return err
			}
			if !containsString(u.CallCenters, q) {
				return invalid("serviceUserId %q: agent %s is not assigned to that call center", q, u.ID)
			}
			joins = append(joins, join{q, av})
		}
	}
	if state != "" || codeSet {
		if err := s.setAgentStateLocked(u, state, code, codeSet); err != nil {
			return err
		}
	}
	for _, j := range joins {
		if err := s.setJoinedLocked(u, j.queue, j.available); err != nil {
			return err
		}
	}
	return nil
}

func containsString(l []string, v string) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

func (s *Server) putForwardingLocked(u *userState, body *etree.Element, f *forwarding, pkg string) *simError {
	nf := *f
	if e := child(body, "active"); e != nil {
		v, err := parseBool(e)
		if err != nil {
			return err
		}
		nf.active = v
	}
	if e := child(body, "forwardToPhoneNumber"); e != nil {
		isnil, err := isNil(e)
		if err != nil {
			return err
		}
		if isnil {
			nf.number = ""
		} else if nf.number, err = token(e); err != nil {
			return err
		}
	}
	if e := child(body, "ringSplash"); e != nil {
		v, err := parseBool(e)
		if err != nil {
			return err
		}
		nf.ringSplash = v
	}
	if e := child(body, "numberOfRings"); e != nil {
		n, err := parseInt(e, 0, 20)
		if err != nil {
			return err
		}
		if !numberOfRingsSet[n] {
			return invalid("numberOfRings: %d not allowed (0 or 2..20)", n)
		}
		nf.rings = n
	}
	if nf.active && nf.number == "" {
		return invalid("forwardToPhoneNumber must be present when the service is active")
	}
	if nf == *f {
		return nil
	}
	*f = nf
	s.notifyLocked(u, pkg, s.serviceEventData(u, pkg))
	return nil
}

func (s *Server) putDNDLocked(u *userState, body *etree.Element) *simError {
	active, splash := u.svc().dnd.active, u.svc().dnd.ringSplash
	if e := child(body, "active"); e != nil {
		v, err := parseBool(e)
		if err != nil {
			return err
		}
		active = v
	}
	if e := child(body, "ringSplash"); e != nil {
		v, err := parseBool(e)
		if err != nil {
			return err
		}
		splash = v
	}
	s.setDNDLocked(u, active, splash)
	return nil
}

func (s *Server) setDNDLocked(u *userState, active, splash bool) {
	if u.svc().dnd.active == active && u.svc().dnd.ringSplash == splash {
		return
	}
	u.svc().dnd.active, u.svc().dnd.ringSplash = active, splash
	s.notifyLocked(u, PkgDoNotDisturb, s.serviceEventData(u, PkgDoNotDisturb))
}

// putGuestLocked: hostUserId with a value associates; hostUserId xsi:nil="true"
// ends the association; active=false ends it as well. Read-only host*
// elements are ignored.
func (s *Server) putGuestLocked(g *userState, body *etree.Element) *simError {
	active, enable, hours := g.svc().guest.active, g.svc().guest.enableLimit, g.svc().guest.limitHours
	if e := child(body, "active"); e != nil {
		v, err := parseBool(e)
		if err != nil {
			return err
		}
		active = v
	}
	if e := child(body, "enableAssociationLimit"); e != nil {
		v, err := parseBool(e)
		if err != nil {
			return err
		}
		enable = v
	}
	if e := child(body, "associationLimitHours"); e != nil {
		n, err := parseInt(e, 1, 999)
		if err != nil {
			return err
		}
		hours = n
	}
	hostID, clearHost := "", false
	if e := child(body, "hostUserId"); e != nil {
		isnil, err := isNil(e)
		if err != nil {
			return err
		}
		if isnil {
			clearHost = true
		} else if hostID, err = token(e); err != nil {
			return err
		}
	}
	if hostID != "" && !active {
		return errf(http.StatusBadRequest, ErrCodeGuestInactive, "cannot associate: Hoteling Guest service of %s is not active", g.ID)
	}
	// Validate the association before committing anything.
	if hostID != "" {
		if err := s.checkHostLocked(g, hostID); err != nil {
			return err
		}
	}
	changed := g.svc().guest.active != active || g.svc().guest.enableLimit != enable || g.svc().guest.limitHours != hours
	g.svc().guest.active, g.svc().guest.enableLimit, g.svc().guest.limitHours = active, enable, hours
	s.assocLimitsChanged = true
	if clearHost || !active {
		if s.endAssociationLocked(g, true) {
			changed = true
		}
	}
	if hostID != "" && hostID != g.svc().guest.hostID {
		if err := s.associateLocked(g, hostID); err != nil {
			return err
		}
		return nil // associateLocked notified
	}
	if changed {
		s.notifyLocked(g, PkgHotelingGuest, s.serviceEventData(g, PkgHotelingGuest))
	}
	return nil
}

func (s *Server) putHostLocked(h *userState, body *etree.Element) *simError {
	nh := h.svc().host
	remove := false
	if e := child(body, "active"); e != nil {
		v, err := parseBool(e)
		if err != nil {
			return err
		}
		nh.active = v
	}
	if e := child(body, "enforceAssociationLimit"); e != nil {
		v, err := parseBool(e)
		if err != nil {
			return err
		}
		nh.enforceLimit = v
	}
	if e := child(body, "associationLimitHours"); e != nil {
		n, err := parseInt(e, 1, 999)
		if err != nil {
			return err
		}
		nh.limitHours = n
	}
	if e := child(body, "accessLevel"); e != nil {
		v, err := token(e)
		if err != nil {
			return err
		}
		if v != "Enterprise" && v != "Group" {
			return invalid("accessLevel: invalid value %q", v)
		}
		nh.accessLevel = v
	}
	if e := child(body, "removeGuestAssociation"); e != nil {
		v, err := parseBool(e)
		if err != nil {
			return err
		}
		remove = v
	}
	h.svc().host.active, h.svc().host.enforceLimit, h.svc().host.limitHours, h.svc().host.accessLevel = nh.active, nh.enforceLimit, nh.limitHours, nh.accessLevel
	s.assocLimitsChanged = true
	if (remove || !nh.active) && h.svc().host.guestID != "" {
		if g := s.users[h.svc().host.guestID]; g != nil {
			s.endAssociationLocked(g, false)
		}
		h.svc().host.guestID = ""
	}
	return nil
}

// handleDirectory serves GET .../user/{userId}/directories/{dir}: the
// HotelingHosts and Enterprise directories (names case-insensitive).
func (s *Server) handleDirectory(w http.ResponseWriter, r *http.Request) {
	switch strings.ToLower(r.PathValue("dir")) {
	case "hotelinghosts":
		s.handleHotelingHosts(w, r)
	case "enterprise":
		s.handleEnterpriseDirectory(w, r)
	default:
		s.writeError(w, errf(http.StatusNotFound, ErrCodeNotFound, "directory %s not supported by the simulator", r.PathValue("dir")))
	}
}

// handleHotelingHosts serves GET .../user/{userId}/directories/HotelingHosts:
// hosts with an active Hoteling Host service that carry no guest (or this
// guest).
func (s *Server) handleHotelingHosts(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	g, err := s.lookupUser(r.PathValue("userId"))
	var hosts []string
	if err == nil {
		for _, h := range s.hosts {
			if h != g && h.svc().host.active && h.hostReaches(g) && (h.svc().host.guestID == "" || h.svc().host.guestID == g.ID) {
				hosts = append(hosts, h.ID)
			}
		}
	}
	s.mu.Unlock()
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.writeActionsDoc(w, http.StatusOK, "AvailableHotelingHosts", func(r *etree.Element) {
		l := r.CreateElement("hostUserIdList")
		for _, h := range hosts {
			add(l, "userID", h)
		}
	})
}

// handleGroupService serves GET .../group/{groupId}/services/CallCenter/UnavailableCodes
// (research §2.3; spec §3.5.14.2). The query parameter enterpriseId or
// serviceProviderId names the group's enterprise; without it any
// enterprise's group of that ID will do. Every group has the codes of
// Config.UnavailableCodes.
func (s *Server) handleGroupService(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.PathValue("svc"), "CallCenter") || !strings.EqualFold(r.PathValue("sub"), "UnavailableCodes") {
		s.writeError(w, errf(http.StatusNotFound, ErrCodeNotFound, "group service %s/%s not supported by the simulator", r.PathValue("svc"), r.PathValue("sub")))
		return
	}
	if err := s.findGroup(r); err != nil {
		s.writeError(w, err)
		return
	}
	s.writeActionsDoc(w, http.StatusOK, "ACDAgentUnavailableCodes", func(r *etree.Element) {
		add(r, "enableAgentUnavailableCodes", boolText(len(s.cfg.UnavailableCodes) > 0))
		add(r, "forceUseOfAgentUnavailableCodes", boolText(s.cfg.ForceUnavailableCodes))
		l := r.CreateElement("unavailableCodes")
		for _, c := range s.cfg.UnavailableCodes {
			d := l.CreateElement("unavailableCodeDetail")
			if c.Default {
				d.CreateAttr("isDefault", "true")
			}
			add(d, "active", boolText(c.Active))
			add(d, "code", c.Code)
			if c.Description != "" {
				add(d, "description", c.Description)
			}
		}
	})
}

// findGroup checks the group of a group-level Actions request exists and is
// in reach.
func (s *Server) findGroup(r *http.Request) *simError {
	grpID := r.PathValue("groupId")
	entID := r.URL.Query().Get("enterpriseId")
	if entID == "" {
		entID = r.URL.Query().Get("serviceProviderId")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var found *group
	if entID != "" {
		found = s.groups[groupKey{entID, grpID}]
	} else {
		for k, g := range s.groups {
			if k.grp == grpID && (found == nil || s.reaches(g.ent.id)) {
				found = g
			}
		}
	}
	switch {
	case found == nil && entID != "" && !s.reaches(entID):
		return outOfScope("group", grpID, entID)
	case found == nil:
		return errf(http.StatusNotFound, ErrCodeNotFound, "Group not found: %s", grpID)
	case !s.reaches(found.ent.id):
		return outOfScope("group", grpID, found.ent.id)
	}
	return nil
}
