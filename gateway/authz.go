package gateway

import (
	"context"
	"errors"

	"github.com/broadworks-connector/connector/csta"
)

// Authorization by what a request touches (issue 13). The CSTA front end
// checks the device a request names against the requester's limit
// (csta.authorization.devices); a request that names an agent touches that
// agent too, wherever it sits, and only the gateway knows where that is.
// requestAgent is the one place every entry point resolving an agent goes
// through, CTI and phone alike.

// requestAgent resolves the agent a request about deviceUser's device is
// about (agentAt) and checks that who may act on it with state (mayActOn).
// An agent not named is the one at the request's device, which the device
// check already covered.
func (g *Gateway) requestAgent(ctx context.Context, who csta.Requester, from origin, agentID, deviceUser string, state csta.ReqAgentState) (userID, number string, err error) {
	userID, number, err = g.agentAt(ctx, agentID, deviceUser)
	if err != nil {
		if agentID != "" && who.Devices.Limited {
			// Not known to sit at the requester's devices; and a limited
			// requester does not learn which agent IDs the directory has.
			g.refused(who, agentID, "", state)
			return "", "", csta.ErrPrivilegeViolationSpecifiedDevice
		}
		return "", "", err
	}
	if err := g.ensure(ctx, userID); err != nil {
		notFound := csta.ErrInvalidAgentIdentifier
		if agentID == "" {
			notFound = csta.ErrInvalidDeviceID
		}
		if agentID != "" && who.Devices.Limited && errors.Is(err, errUnknownUser) {
			g.refused(who, agentID, "", state)
			return "", "", csta.ErrPrivilegeViolationSpecifiedDevice
		}
		return "", "", g.cstaError(err, notFound)
	}
	if n := g.NumberOf(userID); n != "" && !g.dir().hasNumber(userID) {
		number = n // BroadWorks' number for the agent, unless an entry says
	}
	if agentID == "" {
		return userID, number, nil
	}
	if err := g.mayActOn(ctx, who, from, userID, deviceUser, state); err != nil {
		return "", "", err
	}
	return userID, number, nil
}

// mayActOn applies the rule for a named agent: a requester limited to
// devices acts on an agent whose own device is one of them, or who sits
// (is a hoteling guest) at one of them. Logging an agent on at one of the
// requester's devices is allowed too, unless the agent sits at a desk
// outside them: the move would log it off there. A phone (from
// originPhone) logs on only its line's own agent this way; any other agent
// signs in through x-broadworks-hoteling with its password (SetHoteling).
// Refusals are csta.ErrPrivilegeViolationSpecifiedDevice, decided from the
// view when it is fresh (no XSI request), else after reading where the
// agent sits (GetHotelingGuest); never after a change.
func (g *Gateway) mayActOn(ctx context.Context, who csta.Requester, from origin, agent, deviceUser string, state csta.ReqAgentState) error {
	lim := who.Devices
	if !lim.Limited || g.covers(lim, agent) {
		return nil
	}
	if state == csta.ReqLoggedOn && from == originPhone {
		g.refused(who, agent, "", state)
		return csta.ErrPrivilegeViolationSpecifiedDevice
	}
	host, err := g.hostOf(ctx, agent)
	if err != nil {
		return g.cstaError(err, csta.ErrInvalidAgentIdentifier)
	}
	switch {
	case host != "" && g.covers(lim, host):
		return nil // a guest at one of the requester's desks
	case host == "" && state == csta.ReqLoggedOn && g.covers(lim, deviceUser):
		return nil // sits nowhere else: logs on at the requester's device
	}
	g.refused(who, agent, host, state)
	return csta.ErrPrivilegeViolationSpecifiedDevice
}

// covers reports whether lim allows one of the device IDs of a BroadWorks
// user: the limit lists IDs as the client writes them, and "desk1" and
// "desk1@example.com" are one desk when the directory maps both to it.
func (g *Gateway) covers(lim csta.DeviceLimit, userID string) bool {
	for _, id := range g.dir().Devices(userID) {
		if lim.Allows(id) {
			return true
		}
	}
	return false
}

// refused logs a refusal at debug: a prober naming agent after agent must
// not flood the log. CTI refusals are counted by the front end's request
// metrics (result privilegeViolationSpecifiedDevice), phone refusals by
// the SIP answers.
func (g *Gateway) refused(who csta.Requester, agent, host string, state csta.ReqAgentState) {
	g.log.Debug("gateway: request refused: the agent is not at the requester's devices",
		"agent", agent, "host", host, "requested", state, "transport", who.Transport, "user", who.UserName, "conn", who.ConnID)
}
