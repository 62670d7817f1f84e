package xspsim

import (
	"errors"
	"fmt"
)

// Portal* methods change user state as the BroadWorks web portal, a phone or
// an administrator would, outside Xsi-Actions. They apply the same rules and
// produce the same events as the equivalent Xsi-Actions PUT. Errors are
// *simError values whose text starts with "xspsim: ".

func (s *Server) portalUser(id string) (*userState, error) {
	u := s.users[id]
	if u == nil {
		return nil, errors.New("xspsim: user not found: " + id)
	}
	return u, nil
}

func asErr(e *simError) error {
	if e == nil {
		return nil
	}
	return e
}

// PortalSetAgentState sets the agent's ACD state (Sign-In, Available,
// Unavailable, Wrap-Up, Sign-Out) and, for Unavailable, the unavailable code
// ("" = the group default / none).
func (s *Server) PortalSetAgentState(userID, state, unavailableCode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.portalUser(userID)
	if err != nil {
		return err
	}
	return asErr(s.setAgentStateLocked(u, state, unavailableCode, unavailableCode != ""))
}

// PortalSetCallCenterJoin joins (true) or unjoins the agent from a queue it is
// assigned to; emits ACDAgentJoinUpdateEvent.
func (s *Server) PortalSetCallCenterJoin(userID, serviceUserID string, joined bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.portalUser(userID)
	if err != nil {
		return err
	}
	if !u.CallCenter {
		return errors.New("xspsim: Call Center agent service not assigned to " + userID)
	}
	return asErr(s.setJoinedLocked(u, serviceUserID, joined))
}

// PortalSetDND switches Do Not Disturb (ringSplash unchanged).
func (s *Server) PortalSetDND(userID string, active bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.portalUser(userID)
	if err != nil {
		return err
	}
	s.setDNDLocked(u, active, u.svc().dnd.ringSplash)
	return nil
}

// PortalSetCFA sets Call Forwarding Always. forwardTo "" keeps the stored
// number; activating without any number fails.
func (s *Server) PortalSetCFA(userID string, active bool, forwardTo string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.portalUser(userID)
	if err != nil {
		return err
	}
	nf := u.svc().cfa
	nf.active = active
	if forwardTo != "" {
		nf.number = forwardTo
	}
	if nf.active && nf.number == "" {
		return errors.New("xspsim: forwardToPhoneNumber required to activate Call Forwarding Always")
	}
	if nf != u.svc().cfa {
		u.svc().cfa = nf
		s.notifyLocked(u, PkgCallForwardingAlways, s.serviceEventData(u, PkgCallForwardingAlways))
	}
	return nil
}

// PortalAssociateGuest associates guestID with hostID (activating the
// guest's Hoteling Guest service if needed), with the usual host rules.
func (s *Server) PortalAssociateGuest(guestID, hostID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.portalUser(guestID)
	if err != nil {
		return err
	}
	wasActive := g.svc().guest.active
	g.svc().guest.active = true
	if e := s.associateLocked(g, hostID); e != nil {
		g.svc().guest.active = wasActive
		return e
	}
	return nil
}

// PortalEndGuestAssociation ends the guest's association, if any.
func (s *Server) PortalEndGuestAssociation(guestID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.portalUser(guestID)
	if err != nil {
		return err
	}
	s.endAssociationLocked(g, false)
	return nil
}

// PortalSetHotelingHost activates or deactivates a host's Hoteling Host
// service; deactivation ends a current guest association.
func (s *Server) PortalSetHotelingHost(hostID string, active bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.portalHostLocked(hostID)
	if err != nil {
		return err
	}
	h.svc().host.active = active
	if !active && h.svc().host.guestID != "" {
		if g := s.users[h.svc().host.guestID]; g != nil {
			s.endAssociationLocked(g, false)
		}
	}
	return nil
}

// PortalSetHostAccessLevel sets a host's accessLevel: "Group" (guests of
// its group only, the default) or "Enterprise" (of its enterprise).
func (s *Server) PortalSetHostAccessLevel(hostID, level string) error {
	if level != "Group" && level != "Enterprise" {
		return fmt.Errorf("xspsim: access level %q is neither Group nor Enterprise", level)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.portalHostLocked(hostID)
	if err != nil {
		return err
	}
	h.svc().host.accessLevel = level
	return nil
}

// portalHostLocked is hostID, which must have the Hoteling Host service
// assigned. s.mu is held.
func (s *Server) portalHostLocked(hostID string) (*userState, error) {
	h, err := s.portalUser(hostID)
	if err != nil {
		return nil, err
	}
	if !h.HotelingHost {
		return nil, errors.New("xspsim: Hoteling Host service not assigned to " + hostID)
	}
	return h, nil
}

// UserSnapshot is the observable state of one user.
type UserSnapshot struct {
	AgentState, UnavailableCode string
	DND                         bool
	CFAActive                   bool
	CFANumber                   string
	GuestActive                 bool
	GuestHostID                 string // host the user (as guest) is associated with
	HostGuestID                 string // guest associated with the user (as host)
}

// Snapshot returns the current state of a user.
func (s *Server) Snapshot(userID string) (UserSnapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.portalUser(userID)
	if err != nil {
		return UserSnapshot{}, err
	}
	return UserSnapshot{u.acdState, u.unavailableCode, u.svc().dnd.active, u.svc().cfa.active, u.svc().cfa.number,
		u.svc().guest.active, u.svc().guest.hostID, u.svc().host.guestID}, nil
}
