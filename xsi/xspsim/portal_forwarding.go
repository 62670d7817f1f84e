package xspsim

import (
	"errors"
	"fmt"
)

// PortalSetCFB sets Call Forwarding Busy as the portal would. forwardTo ""
// keeps the stored number; activating without any number fails.
func (s *Server) PortalSetCFB(userID string, active bool, forwardTo string) error {
	return s.portalSetForwarding(userID, PkgCallForwardingBusy, active, forwardTo, -1)
}

// PortalSetCFNA sets Call Forwarding No Answer as the portal would; rings 0
// or 2–20 (-1 keeps the stored value).
func (s *Server) PortalSetCFNA(userID string, active bool, forwardTo string, rings int) error {
	if rings >= 0 && !numberOfRingsSet[rings] {
		return fmt.Errorf("xspsim: numberOfRings %d outside 0, 2..20", rings)
	}
	return s.portalSetForwarding(userID, PkgCallForwardingNoAnswer, active, forwardTo, rings)
}

func (s *Server) portalSetForwarding(userID, pkg string, active bool, forwardTo string, rings int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.portalUser(userID)
	if err != nil {
		return err
	}
	cur := &u.svc().cfb
	if pkg == PkgCallForwardingNoAnswer {
		cur = &u.svc().cfna
	}
	nf := *cur
	nf.active = active
	if forwardTo != "" {
		nf.number = forwardTo
	}
	if rings >= 0 {
		nf.rings = rings
	}
	if nf.active && nf.number == "" {
		return errors.New("xspsim: forwardToPhoneNumber required to activate " + pkg)
	}
	if nf != *cur {
		*cur = nf
		s.notifyLocked(u, pkg, s.serviceEventData(u, pkg))
	}
	return nil
}
