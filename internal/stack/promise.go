package stack

import (
	"fmt"
	"strings"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// The one check that BroadWorks ends as the CTI clients were told, for
// every harness that drives agent i at desk i (the fault campaign, the
// failover tests of issue 18): a client keeps a Promise per agent from
// the answers it got, and AgentProblems compares it with the simulator.

// Login is what the answers promised of an agent's hot-desk login.
type Login int

const (
	LoginUnknown Login = iota // no answer says (none yet, or one was lost)
	LoggedIn                  // associated at its desk
	LoggedOut                 // not associated
)

// AnyCode is Promise.Code when any unavailable code will do.
const AnyCode = "*"

// Promise is what the last answers to a client promised of one agent:
// its hot-desk login and its ACD state (ACD "" unknown; Code the
// unavailable code, AnyCode for any).
type Promise struct {
	Login     Login
	ACD, Code string
}

// Answered updates p after SetAgentState st (with the unavailable code
// for notReady) was answered with success.
func (p *Promise) Answered(st csta.ReqAgentState, code string) {
	switch st {
	case csta.ReqLoggedOn:
		// A login from logged out starts the agent Not Ready; one while
		// logged in at the desk already changes nothing.
		switch p.Login {
		case LoggedOut:
			p.ACD, p.Code = xspsim.StateUnavailable, AnyCode
		case LoginUnknown:
			p.ACD = ""
		}
		p.Login = LoggedIn
	case csta.ReqLoggedOff:
		p.Login, p.ACD, p.Code = LoggedOut, xspsim.StateSignOut, ""
	case csta.ReqReady:
		p.ACD, p.Code = xspsim.StateAvailable, ""
	case csta.ReqNotReady:
		p.ACD, p.Code = xspsim.StateUnavailable, code
	case csta.ReqWorkingAfterCall:
		p.ACD, p.Code = xspsim.StateWrapUp, ""
	}
}

// Refused updates p after SetAgentState st was answered with a CSTA
// error: a login or logout left BroadWorks as it was; a single ACD change
// may or may not have been applied.
func (p *Promise) Refused(st csta.ReqAgentState) {
	if st != csta.ReqLoggedOn && st != csta.ReqLoggedOff {
		p.ACD = ""
	}
}

// Lost updates p after a request got no answer (its connection dropped):
// its outcome is checked through the state only (consistency).
func (p *Promise) Lost() {
	p.Login, p.ACD = LoginUnknown, ""
}

// AgentProblems lists how agent i's BroadWorks state (snaps holds agent
// i's and desk i's snapshots) is neither fully logged in at desk i nor
// fully logged out, or not what p promised. ownCFA is desk i's own
// forwarding number ("" none), which a logout must have put back.
func AgentProblems(i int, p Promise, snaps map[string]xspsim.UserSnapshot, ownCFA string) []string {
	ag, dk := snaps[AgentUser(i)], snaps[DeskUser(i)]
	var bad []string
	agentAt := ag.GuestHostID == DeskUser(i)
	deskHas := dk.HostGuestID == AgentUser(i)
	if ag.GuestHostID != "" && !agentAt {
		bad = append(bad, "agent associated with another host "+ag.GuestHostID)
	}
	if dk.HostGuestID != "" && !deskHas {
		bad = append(bad, "desk's guest is another agent "+dk.HostGuestID)
	}
	if agentAt != deskHas {
		bad = append(bad, fmt.Sprintf("orphan association: agent's host %q, desk's guest %q", ag.GuestHostID, dk.HostGuestID))
	}
	cfaTo := strings.TrimPrefix(dk.CFANumber, "tel:")
	if agentAt || deskHas {
		if !dk.CFAActive || cfaTo != AgentNumber(i) {
			bad = append(bad, fmt.Sprintf("logged in but the desk's CFA is %v %q", dk.CFAActive, dk.CFANumber))
		}
		if ag.AgentState == xspsim.StateSignOut || ag.AgentState == xspsim.StateSignIn {
			bad = append(bad, "logged in but the agent is "+ag.AgentState)
		}
	} else {
		if dk.CFAActive && cfaTo == AgentNumber(i) {
			bad = append(bad, "orphan CFA: the desk forwards to the agent without an association")
		} else if dk.CFAActive != (ownCFA != "") || (ownCFA != "" && cfaTo != ownCFA) {
			bad = append(bad, fmt.Sprintf("logged out but the desk's own CFA is %v %q, want %q", dk.CFAActive, dk.CFANumber, ownCFA))
		}
		if ag.AgentState != xspsim.StateSignOut {
			bad = append(bad, "logged out but the agent is "+ag.AgentState)
		}
	}
	switch {
	case p.Login == LoggedIn && !agentAt:
		bad = append(bad, "told logged in, but not associated")
	case p.Login == LoggedOut && (agentAt || deskHas):
		bad = append(bad, "told logged out, but associated")
	}
	if p.ACD != "" && (ag.AgentState != p.ACD || (p.Code != AnyCode && p.Code != ag.UnavailableCode)) {
		bad = append(bad, fmt.Sprintf("told %s/%s, BroadWorks %s/%s", p.ACD, p.Code, ag.AgentState, ag.UnavailableCode))
	}
	return bad
}
