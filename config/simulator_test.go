package config_test

import (
	"testing"

	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// simulator.signed_in_agents start Available; the others signed out. A
// user part longer than BroadWorks' 30-character first name is cut.
func TestSimulatorSignedInAgents(t *testing.T) {
	long := "a-user-part-of-more-than-thirty-characters@example.net"
	t.Setenv("CONNECTOR_SIMULATOR_USERS", "a1@example.net,a2@example.net,h1@example.net,"+long)
	t.Setenv("CONNECTOR_SIMULATOR_CALL_CENTER_AGENTS", "a1@example.net,a2@example.net,"+long)
	t.Setenv("CONNECTOR_SIMULATOR_SIGNED_IN_AGENTS", "a2@example.net,"+long)
	got := mustLoad(t, fixture("good.yaml")).Simulator()
	want := map[string]string{"a1@example.net": "", "a2@example.net": xspsim.StateAvailable, "h1@example.net": "", long: xspsim.StateAvailable}
	for _, u := range got.Users {
		if u.ACDState != want[u.ID] {
			t.Errorf("user %s: ACDState %q, want %q", u.ID, u.ACDState, want[u.ID])
		}
	}
	if name := got.Users[3].FirstName; name != "a-user-part-of-more-than-thirt" {
		t.Errorf("first name %q, want the user part cut to 30 characters", name)
	}
	got.Listen = "127.0.0.1:0"
	s := xspsim.New(got, nil)
	defer s.Shutdown(t.Context())
	if err := s.Start(); err != nil {
		t.Errorf("the simulator refuses the converted users: %v", err)
	}
}
