package gateway_test

import (
	"testing"
	"time"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/internal/stack"
	"github.com/broadworks-connector/connector/internal/testtool"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// TestUnnamedGuest: desks 1 and 3 (grp1, the connector's only scope) and
// desk2 (grp2) take guests of the whole enterprise. guest9 and guest8 (grp2: no event of
// theirs reaches the connector, and no directory entry names them) sit
// down on the portal; BroadWorks has no Hoteling Host event, and a desk's
// read gives only its guest's name, number and extension. A request naming
// no agent on desk1 is served for guest9, found in the enterprise
// directory by its number (not for the user whose number guest9's is a
// prefix of); guest6, which has only a name, by that name. guest8 has
// neither number, extension nor name: a request naming no agent on desk3
// is refused with invalidAgentIdentifier, and the desk's own subscriber is
// left alone. guest7 (an extension, no number) takes desk1
// while no connector runs: the next one finds it without a request, from
// desk1's read at start.
func TestUnnamedGuest(t *testing.T) {
	const guest9, guest8, guest7, guest6 = "guest9@" + stack.Domain, "guest8@" + stack.Domain, "guest7@" + stack.Domain, "guest6@" + stack.Domain
	st := newStack(t, stack.Config{Agents: 1, Desks: 3, Groups: 2,
		SimConfig: func(c *xspsim.Config) {
			c.Users = append(c.Users,
				xspsim.User{ID: guest9, FirstName: "Nine", LastName: "Guest", PhoneNumber: "+15550199", Extension: "199",
					GroupID: "grp2", CallCenter: true, ACDState: "Available"},
				xspsim.User{ID: "other@" + stack.Domain, FirstName: "Other", LastName: "User", PhoneNumber: "+155501990",
					GroupID: "grp2", CallCenter: true},
				// Neither number, extension nor name: nothing to search by.
				xspsim.User{ID: guest8, GroupID: "grp2", CallCenter: true, ACDState: "Available"},
				// A name only: found by it.
				xspsim.User{ID: guest6, FirstName: "Six", LastName: "Guest", GroupID: "grp2", CallCenter: true, ACDState: "Available"},
				xspsim.User{ID: guest7, FirstName: "Seven", LastName: "Guest", Extension: "177", GroupID: "grp2", CallCenter: true})
		},
		ConnectorConfig: func(c *config.Config) { c.XSILink.Scope = []string{stack.Scope("grp1")} },
	})
	desk1, desk2, desk3 := stack.DeskUser(1), stack.DeskUser(2), stack.DeskUser(3)
	for guest, desk := range map[string]string{guest9: desk1, guest8: desk3, guest6: desk2} {
		if err := st.Sim.PortalSetHostAccessLevel(desk, "Enterprise"); err != nil {
			t.Fatal(err)
		}
		if err := st.Sim.PortalAssociateGuest(guest, desk); err != nil {
			t.Fatal(err)
		}
	}
	before, err := st.Sim.Snapshot(desk3)
	if err != nil {
		t.Fatal(err)
	}

	c := dial(t, st)
	resp, err := c.GetAgentState(t.Context(), stack.DeskID(1))
	if err != nil {
		t.Fatal(err)
	}
	if e := resp.AgentStateList; len(e) != 1 || e[0].AgentID != "guest9" || !e[0].LoggedOnState || e[0].AgentInfo[0].AgentState != csta.AgentReady {
		t.Errorf("GetAgentState on desk1: %+v, want guest9 ready", resp.AgentStateList)
	}
	if _, err := c.SetAgentState(t.Context(), stack.DeskID(1), csta.ReqNotReady, "", ""); err != nil {
		t.Errorf("Not Ready on desk1 naming no agent: %v", err)
	}
	if s, err := st.Sim.Snapshot(guest9); err != nil || s.AgentState != xspsim.StateUnavailable {
		t.Errorf("guest9's agent state %q (%v), want Unavailable", s.AgentState, err)
	}

	_, err = c.GetAgentState(t.Context(), stack.DeskID(3))
	if ce := cstaErr(t, err); ce.Value != "invalidAgentIdentifier" {
		t.Errorf("GetAgentState on desk3, whose guest no one can name: %v, want invalidAgentIdentifier", err)
	}
	_, err = c.SetAgentState(t.Context(), stack.DeskID(3), csta.ReqReady, "", "")
	if ce := cstaErr(t, err); ce.Value != "invalidAgentIdentifier" {
		t.Errorf("Ready on desk3 naming no agent: %v, want invalidAgentIdentifier", err)
	}
	if after, err := st.Sim.Snapshot(desk3); err != nil || after.AgentState != before.AgentState {
		t.Errorf("desk3's own agent state %q (%v), want %q as before", after.AgentState, err, before.AgentState)
	}
	// guest6 has a name only.
	resp, err = c.GetAgentState(t.Context(), stack.DeskID(2))
	if err != nil || len(resp.AgentStateList) != 1 || resp.AgentStateList[0].AgentID != "guest6" {
		t.Errorf("GetAgentState on desk2: %+v, %v; want guest6, found by name", resp, err)
	}
	// Named, guest8 is served.
	if _, err := c.SetAgentState(t.Context(), stack.DeskID(3), csta.ReqNotReady, "guest8", ""); err != nil {
		t.Errorf("Not Ready for guest8 named at desk3: %v", err)
	}

	// While no connector runs, guest7 takes desk1 over from guest9: no
	// journal record or event names guest7; desk1's read at start does.
	if err := st.StopConnector(); err != nil {
		t.Fatal(err)
	}
	if err := st.Sim.PortalEndGuestAssociation(guest9); err != nil {
		t.Fatal(err)
	}
	if err := st.Sim.PortalAssociateGuest(guest7, desk1); err != nil {
		t.Fatal(err)
	}
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	g := st.Conn().Gateway
	testtool.WaitFor(t, 10*time.Second, "desk1's new guest found without a request", func() bool {
		return g.User(desk1).GuestUserID == guest7
	})
}
