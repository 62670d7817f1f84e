package hoteling

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// TestAgainstSimulatorHostSignOut: over real HTTP against xsi/xspsim, with
// each step confirmed by a real Xsi-Events event, a login at a desk whose
// host subscriber is a call-center agent signed in sends the documented
// four PUTs in order (host CallCenter Sign-Out, host CFA, guest
// HotelingGuest, guest CallCenter Unavailable), read from the wire; the
// logout leaves the host signed out; and a login whose association the XSP
// refuses signs the host back in to exactly its state and code.
func TestAgainstSimulatorHostSignOut(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	const (
		guest, host = "agent1@example.com", "desk1@example.com"
		guestNumber = "+12025550101"
	)
	sim := startSim(t, xspsim.Config{
		Users: []xspsim.User{
			{ID: guest, FirstName: "A", LastName: "One", PhoneNumber: guestNumber, CallCenter: true},
			{ID: host, FirstName: "Desk", LastName: "One", HotelingHost: true, CallCenter: true},
		},
		UnavailableCodes: []xspsim.UnavailableCode{
			{Code: "LUNCH", Description: "Lunch", Active: true},
			{Code: "MTG", Description: "Meeting", Active: true, Default: true},
		},
	})
	client, view := simView(t, sim, guest, host)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s := New(Config{StepTimeout: 5 * time.Second}, client, view, testLogger())

	// hostIn signs the host subscriber in on the portal and waits for the
	// view to show it.
	hostIn := func(t *testing.T, state, code string) {
		t.Helper()
		if err := sim.PortalSetAgentState(host, state, code); err != nil {
			t.Fatal(err)
		}
		if err := view.Await(ctx, host, func(u User) bool {
			return string(u.ACDState) == state && u.UnavailableCode == code
		}); err != nil {
			t.Fatalf("view of %s never showed %s %s: %v", host, state, code, err)
		}
	}
	for _, tt := range []struct{ state, code string }{
		{xspsim.StateAvailable, ""},
		{xspsim.StateUnavailable, "LUNCH"},
		{xspsim.StateWrapUp, ""},
	} {
		t.Run(tt.state+tt.code, func(t *testing.T) {
			hostIn(t, tt.state, tt.code)
			sim.ClearRequests()
			if err := loginErr(s, ctx, guest, host, guestNumber); err != nil {
				t.Fatal(err)
			}
			want := []string{
				host + " CallCenter Sign-Out",
				host + " CallForwardingAlways true " + guestNumber,
				guest + " HotelingGuest " + host,
				guest + " CallCenter Unavailable",
			}
			if got := xspsim.Changes(sim.Requests()); !slices.Equal(got, want) {
				t.Errorf("login PUTs:\n got %q\nwant %q", got, want)
			}
			g, _ := sim.Snapshot(guest)
			h, _ := sim.Snapshot(host)
			if h.AgentState != xspsim.StateSignOut || g.GuestHostID != host || g.AgentState != xspsim.StateUnavailable ||
				!h.CFAActive || !sameNumber(h.CFANumber, guestNumber) {
				t.Fatalf("after login: guest %+v host %+v", g, h)
			}

			sim.ClearRequests()
			if _, err := s.Logout(ctx, guest); err != nil {
				t.Fatal(err)
			}
			for _, p := range xspsim.Changes(sim.Requests()) {
				if strings.HasPrefix(p, host+" CallCenter") {
					t.Errorf("logout sent %q: the host is not signed back in at logout", p)
				}
			}
			if h, _ := sim.Snapshot(host); h.AgentState != xspsim.StateSignOut {
				t.Errorf("host %s after logout, want Sign-Out", h.AgentState)
			}

			// The XSP refuses the association: the host's CFA goes back,
			// then the host is signed in to exactly what it was.
			hostIn(t, tt.state, tt.code)
			sim.SetErrorRate("/services/hotelingguest", 1, http.StatusBadRequest)
			sim.ClearRequests()
			err := loginErr(s, ctx, guest, host, guestNumber)
			sim.ClearFaults()
			var se *StepError
			if !errors.As(err, &se) || se.Step != "associate" || se.Undo != nil {
				t.Fatalf("login with the association refused: %v", err)
			}
			want = []string{
				host + " CallCenter Sign-Out",
				host + " CallForwardingAlways true " + guestNumber,
				guest + " HotelingGuest " + host,
				host + " CallForwardingAlways false " + guestNumber, // the number stored before, kept
				host + " CallCenter " + tt.state,
			}
			if got := xspsim.Changes(sim.Requests()); !slices.Equal(got, want) {
				t.Errorf("compensated login PUTs:\n got %q\nwant %q", got, want)
			}
			h, _ = sim.Snapshot(host)
			if h.AgentState != tt.state || h.UnavailableCode != tt.code || h.CFAActive || h.HostGuestID != "" {
				t.Errorf("host after the compensated login: %+v, want %s %q", h, tt.state, tt.code)
			}
			// Back to signed out for the next case.
			if err := sim.PortalSetAgentState(host, xspsim.StateSignOut, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}
