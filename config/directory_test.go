package config_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/xsi"
)

// The default directory is the simulator's seed: every device and agent
// user is simulated, hot desks are hosts, agents have Call Center, and
// the default scope covers the simulator's group (so every user's events
// reach the gateway).
func TestDefaultDirectoryMatchesSimulator(t *testing.T) {
	c := config.Default()
	g := c.Gateway()
	if len(g.Devices) != 6 || len(g.Agents) != 4 || len(g.ReasonCodes) != 3 {
		t.Fatalf("Gateway() = %+v", g)
	}
	sim := c.Simulator()
	users := map[string]bool{}
	for _, u := range sim.Users {
		users[u.ID] = true
	}
	// Every simulated user is in the simulator's one group, which the
	// default scope covers: its events reach the gateway.
	scoped := slices.ContainsFunc(c.XSI().Scopes, func(tg xsi.Target) bool {
		return tg.Kind == xsi.KindGroup && tg.ID == sim.GroupID && tg.ParentID == sim.EnterpriseID
	})
	if !scoped {
		t.Errorf("xsi.scope %v does not cover the simulator's group %s@%s", c.XSI().Scopes, sim.GroupID, sim.EnterpriseID)
	}
	for _, d := range g.Devices {
		if !users[d.UserID] {
			t.Errorf("device %s: user %s is not simulated", d.DeviceID, d.UserID)
		}
	}
	for _, a := range g.Agents {
		if !users[a.UserID] {
			t.Errorf("agent %s: user %s is not simulated", a.AgentID, a.UserID)
		}
	}
	for _, r := range g.ReasonCodes {
		found := false
		for _, code := range sim.UnavailableCodes {
			found = found || code.Code == r.Code
		}
		if !found {
			t.Errorf("reason %s maps to %s, not a simulator unavailable code", r.Reason, r.Code)
		}
	}
	if got, want := c.StartUpUsers(), []string{
		"desk1@example.com", "desk2@example.com",
		"agent1@example.com", "agent2@example.com", "agent3@example.com", "agent4@example.com",
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("StartUpUsers() = %v, want %v", got, want)
	}
}

func TestGatewayConversion(t *testing.T) {
	c := config.Default()
	c.Directory = config.Directory{
		Domain:                 "acme.test",
		Devices:                []string{"Desk-A=h1@acme.test,hotdesk", "+1555=a1@acme.test"},
		Agents:                 []string{"A1=a1@acme.test,+1555", "a2=a2@acme.test"},
		ReasonCodes:            []string{"Lunch break=LUNCH"},
		DefaultUnavailableCode: "OTHER",
		IdleTTL:                time.Minute,
		MaxConcurrentLoads:     4,
	}
	c.GatewayCore.RequestTimeout = 3 * time.Second
	want := gateway.Config{
		Domain: "acme.test",
		Devices: []gateway.DeviceEntry{
			{DeviceID: "Desk-A", UserID: "h1@acme.test", HotDesk: true},
			{DeviceID: "+1555", UserID: "a1@acme.test"},
		},
		Agents: []gateway.AgentEntry{
			{AgentID: "A1", UserID: "a1@acme.test", Number: "+1555"},
			{AgentID: "a2", UserID: "a2@acme.test"},
		},
		ReasonCodes:            []gateway.ReasonEntry{{Reason: "Lunch break", Code: "LUNCH"}},
		DefaultUnavailableCode: "OTHER",
		LoadUsers:              true,
		IdleTTL:                time.Minute,
		MaxUserLoads:           4,
		RequestTimeout:         3 * time.Second,
		EventPackages:          config.Default().XSILink.EventPackages,
		ConflictWindow:         2 * time.Second,
		AgentPasswords: []gateway.AgentPassword{
			{AgentID: "agent1", Password: "agent1pw"}, {AgentID: "agent2", Password: "agent2pw"},
			{AgentID: "agent3", Password: "agent3pw"}, {AgentID: "agent4", Password: "agent4pw"},
		},
	}
	if got := c.Gateway(); !reflect.DeepEqual(got, want) {
		t.Errorf("Gateway() = %+v\nwant %+v", got, want)
	}
}

func TestHotelingConversion(t *testing.T) {
	c := config.Default()
	c.Directory.Agents = []string{"agent1=agent1@example.com,4001", "Agent2=a2@other.test"}
	got := c.Hoteling()
	if got.StepTimeout != 5*time.Second || got.QueueLength != 4 || got.RefuseOccupiedHost || got.DisableAdmission {
		t.Errorf("Hoteling() = %+v", got)
	}
	if got.Store != nil {
		t.Errorf("Store = %#v, want none: the store (store.path) supplies it, hoteling.state_file is only migrated", got.Store)
	}
	for user, want := range map[string]string{
		"agent1@example.com": "4001",   // the entry's number
		"a2@other.test":      "Agent2", // the entry's agent ID
		"agent3@example.com": "agent3", // the domain rule
		"x@elsewhere.test":   "",       // unknown
	} {
		if n := got.NumberOf(user); n != want {
			t.Errorf("NumberOf(%s) = %q, want %q", user, n, want)
		}
	}

	c.HotDesks = config.HotelingSettings{StepTimeout: time.Second, QueueLength: 0, RefuseOccupiedHost: true, RecoverMode: "complete"}
	got = c.Hoteling()
	if got.Store != nil || got.QueueLength >= 0 || !got.RefuseOccupiedHost || !got.DisableAdmission {
		t.Errorf("Hoteling() with queue 0, no state file, admission false = %+v; want no Store, a negative QueueLength (none may wait), admission disabled", got)
	}
}

// In a CONNECTOR_* variable the list is comma-separated, so ";" stands for
// the "," inside an entry.
func TestDirectoryFromEnvironment(t *testing.T) {
	t.Setenv("CONNECTOR_DIRECTORY_DEVICES", "4001=agent1@example.com,desk1=desk1@example.com;hotdesk")
	t.Setenv("CONNECTOR_DIRECTORY_AGENTS", "agent1=agent1@example.com;4001")
	t.Setenv("CONNECTOR_HOTELING_RECOVER_MODE", "complete")
	c, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	g := c.Gateway()
	want := []gateway.DeviceEntry{
		{DeviceID: "4001", UserID: "agent1@example.com"},
		{DeviceID: "desk1", UserID: "desk1@example.com", HotDesk: true},
	}
	if !reflect.DeepEqual(g.Devices, want) {
		t.Errorf("devices = %+v, want %+v", g.Devices, want)
	}
	if !reflect.DeepEqual(g.Agents, []gateway.AgentEntry{{AgentID: "agent1", UserID: "agent1@example.com", Number: "4001"}}) {
		t.Errorf("agents = %+v", g.Agents)
	}
	if c.HotDesks.RecoverMode != "complete" {
		t.Errorf("hoteling.recover_mode = %q", c.HotDesks.RecoverMode)
	}

	t.Setenv("CONNECTOR_DIRECTORY_DEVICES", "desk1=desk1@example.com,hotdesk")
	_, err = config.Load("")
	if err == nil || !contains(err.Error(), `directory.devices: item "hotdesk"`) || !contains(err.Error(), `write ";"`) {
		t.Errorf("Load with a split entry = %v, want a directory.devices problem with the hint", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
