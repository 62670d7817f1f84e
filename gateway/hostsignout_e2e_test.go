package gateway_test

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/internal/stack"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// End-to-end tests of step 1 of the documented hot-desk login (peers.md
// §1.1): a desk whose user is a call-center agent signed in is signed out
// before the desk forwards to the guest.

// newHostStack is newStack, not started, with the group's unavailable
// codes LUNCH and MTG (the default).
func newHostStack(t *testing.T, cfg stack.Config) *stack.Stack {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	cfg.SimConfig = func(c *xspsim.Config) {
		c.UnavailableCodes = []xspsim.UnavailableCode{
			{Code: "LUNCH", Description: "Lunch", Active: true},
			{Code: "MTG", Description: "Meeting", Active: true, Default: true},
		}
	}
	st, err := stack.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Logf("stack close: %v", err)
		}
	})
	return st
}

// deskAgent reads the desk user's own agent state and code from the
// simulator.
func deskAgent(t *testing.T, st *stack.Stack, d int) (string, string) {
	t.Helper()
	s, err := st.Sim.Snapshot(stack.DeskUser(d))
	if err != nil {
		t.Fatal(err)
	}
	return s.AgentState, s.UnavailableCode
}

// TestHotDeskHostAgentSignedIn: the desk user is a call-center agent,
// signed in Unavailable with code LUNCH. A CTI client monitoring the desk
// logs an agent in there: the connector sends, in this order, the desk's
// CallCenter Sign-Out, the desk's CFA, the agent's HotelingGuest and the
// agent's CallCenter Unavailable (read from the simulator's request log),
// the client hears the agent logged on at the desk, and the desk user stays
// signed out after the logout. Signed in again (Available) and with the association refused by
// the XSP, a login fails and the desk user is signed back in to Available,
// last.
func TestHotDeskHostAgentSignedIn(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	t.Parallel()
	st := newHostStack(t, stack.Config{Agents: 1, Desks: 1})
	desk, agent := stack.DeskUser(1), stack.AgentUser(1)
	if err := st.Sim.PortalSetAgentState(desk, xspsim.StateUnavailable, "LUNCH"); err != nil {
		t.Fatal(err)
	}
	if err := st.Start(); err != nil { // ready: the view shows the desk user Unavailable LUNCH
		t.Fatal(err)
	}
	c := dial(t, st)
	ctx := t.Context()
	if _, err := c.MonitorStart(ctx, stack.DeskID(1)); err != nil {
		t.Fatal(err)
	}
	st.Sim.ClearRequests()
	if err := login(ctx, c, 1, 1); err != nil {
		t.Fatal(err)
	}
	want := []string{
		desk + " CallCenter Sign-Out",
		desk + " CallForwardingAlways true " + stack.AgentNumber(1),
		agent + " HotelingGuest " + desk,
		agent + " CallCenter Unavailable",
	}
	if got := xspsim.Changes(st.Sim.Requests()); !slices.Equal(got, want) {
		t.Errorf("login PUTs:\n got %q\nwant %q", got, want)
	}
	if err := st.CheckLoggedIn(1, 1); err != nil {
		t.Fatal(err)
	}
	if s, code := deskAgent(t, st, 1); s != xspsim.StateSignOut || code != "" {
		t.Errorf("desk user %s %q after the login, want Sign-Out", s, code)
	}
	// The desk's monitor hears the guest logged on and the desk user's
	// own agent logged off (in either order: the gateway may hold one
	// user's events while a request on it is answered).
	awaitEvents(t, c, map[string]func(cticlient.Event) bool{
		"guest logged on": func(e cticlient.Event) bool {
			return e.Name == "AgentLoggedOnEvent" && e.Device == stack.DeskID(1) && e.AgentID == stack.AgentID(1)
		},
		"desk user logged off": func(e cticlient.Event) bool {
			return e.Name == "AgentLoggedOffEvent" && e.Device == stack.DeskID(1) && e.AgentID == stack.DeskID(1)
		},
	})

	st.Sim.ClearRequests()
	if err := logout(ctx, c, 1, 1); err != nil {
		t.Fatal(err)
	}
	for _, p := range xspsim.Changes(st.Sim.Requests()) {
		if strings.HasPrefix(p, desk+" CallCenter") {
			t.Errorf("logout sent %q: the desk user is not signed back in at logout", p)
		}
	}
	if s, _ := deskAgent(t, st, 1); s != xspsim.StateSignOut {
		t.Errorf("desk user %s after the logout, want Sign-Out", s)
	}

	// Compensation: the desk user signed in again, the association refused.
	if err := st.Sim.PortalSetAgentState(desk, xspsim.StateAvailable, ""); err != nil {
		t.Fatal(err)
	}
	if err := st.AwaitViewSettled(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	before := state(t, st, 1, 1)
	st.Sim.SetErrorRate("/user/"+agent+"/services/HotelingGuest", 1, http.StatusBadRequest)
	st.Sim.ClearRequests()
	err := login(ctx, c, 1, 1)
	st.Sim.ClearFaults()
	cstaErr(t, err)
	want = []string{
		desk + " CallCenter Sign-Out",
		desk + " CallForwardingAlways true " + stack.AgentNumber(1),
		agent + " HotelingGuest " + desk,
		desk + " CallForwardingAlways false " + stack.AgentNumber(1), // the number stored before, kept
		desk + " CallCenter Available",
	}
	if got := xspsim.Changes(st.Sim.Requests()); !slices.Equal(got, want) {
		t.Errorf("compensated login PUTs:\n got %q\nwant %q", got, want)
	}
	if err := st.CheckSame(1, 1, before); err != nil {
		t.Error(err)
	}
	if s, _ := deskAgent(t, st, 1); s != xspsim.StateAvailable {
		t.Errorf("desk user %s after the failed login, want Available again", s)
	}
}

// awaitEvents reads the client's events until each of want has matched
// one, in any order.
func awaitEvents(t *testing.T, c *cticlient.Client, want map[string]func(cticlient.Event) bool) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for len(want) > 0 {
		select {
		case ev, open := <-c.Events():
			if !open {
				t.Fatal("connection closed waiting for events")
			}
			for what, ok := range want {
				if ok(ev) {
					delete(want, what)
					break
				}
			}
		case <-timeout:
			t.Fatalf("events not heard: %v", slices.Collect(maps.Keys(want)))
		}
	}
}

// TestHotDeskCrashAfterHostSignOut: the connector dies just after a login
// signed the desk user out (before the desk's CFA, and before the
// association); a new connector on the same store takes the login's intent
// at start-up and, with recover_mode undo, signs the desk user back in to
// its state and code.
func TestHotDeskCrashAfterHostSignOut(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	t.Parallel()
	cases := []struct {
		name        string
		crashBefore string
		user        func(a, d int) string
	}{
		{"before-host-CFA", "SetCallForwardingAlways", func(a, d int) string { return stack.DeskUser(d) }},
		{"before-association", "AssociateGuest", func(a, d int) string { return stack.AgentUser(a) }},
	}
	st := newHostStack(t, stack.Config{Agents: len(cases), Desks: len(cases)})
	for i := range cases {
		if err := st.Sim.PortalSetAgentState(stack.DeskUser(i+1), xspsim.StateUnavailable, "LUNCH"); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	for i, tc := range cases {
		a, d := i+1, i+1
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, st)
			before := state(t, st, a, d)
			loginCrashing(t, st, c, a, d, tc.crashBefore, tc.user(a, d))
			if s, _ := deskAgent(t, st, d); s != xspsim.StateSignOut {
				t.Fatalf("desk user %s after the crash, want Sign-Out (the login got that far)", s)
			}
			if err := st.Start(); err != nil {
				t.Fatal(err)
			}
			var ours []string
			for _, rp := range st.Conn().Repairs {
				if rp.User == stack.AgentUser(a) {
					ours = append(ours, rp.Kind+"/"+rp.Found)
					if rp.Err != nil || rp.Kind != gateway.RepairOwed {
						t.Errorf("repair %+v, want the owed undo", rp)
					}
				}
			}
			if len(ours) != 1 {
				t.Errorf("repairs of desk %d: %q, want one", d, ours)
			}
			if err := st.CheckSame(a, d, before); err != nil {
				t.Error(err)
			}
			if s, code := deskAgent(t, st, d); s != xspsim.StateUnavailable || code != "LUNCH" {
				t.Errorf("desk user %s %q after recovery, want Unavailable LUNCH", s, code)
			}
		})
	}
}
