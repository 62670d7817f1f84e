package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/internal/sipptest"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// Authorization by what a request touches (issue 13, attacks 3 and 4),
// end to end: `connector run` against a simulator in this process, so that
// BroadWorks' state is read from the simulator (Snapshot), never from the
// connector. CTI user crm is limited to 4001 and desk1; ops is not.

// authzRun starts the simulator and `connector run` with password auth for
// ops and crm, crm limited to "4001 desk1", and phone digest auth as the
// example config has it (phone 4001's password phone4001). It returns the
// simulator and the CSTA and SIP addresses.
func authzRun(t *testing.T) (sim *xspsim.Server, cstaAddr, sipAddr string) {
	t.Helper()
	simCfg := config.Default().Simulator()
	simCfg.Listen = "127.0.0.1:0"
	simCfg.Password = "secret"
	sim = xspsim.New(simCfg, nil)
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sim.Shutdown(ctx)
	})
	dir := t.TempDir()
	a := startRunConfig(t, dir, fmt.Sprintf(`csta:
  listen: 127.0.0.1:0
  require_session: true
  auth:
    mode: password
    users: ["ops=ops-pw", "crm=crm-pw"]
  authorization:
    devices: ["crm=4001 desk1"]
admin:
  listen: 127.0.0.1:0
  token: test-admin-token-0123456789
gateway:
  conflict_window: 0s
sip:
  listen: 127.0.0.1:0
xsi:
  simulate: false
  servers: [%s]
  password: secret
  reconnect_min: 50ms
hoteling:
  state_file: %s
journal:
  path: %s
store:
  path: %s
`, sim.URL(), filepath.Join(dir, "hoteling.json"), filepath.Join(dir, "journal.db"), filepath.Join(dir, "connector.db")))
	return sim, a.csta, a.sip
}

// ctiAs opens a CTI session as user.
func ctiAs(t *testing.T, ctx context.Context, addr, user string) *cticlient.Client {
	t.Helper()
	c, err := cticlient.Dial(ctx, addr, cticlient.WithEventBuffer(1024))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.StartSession(ctx, "authz-test", user, user+"-pw", csta.Edition6); err != nil {
		t.Fatalf("session as %s: %v", user, err)
	}
	return c
}

func snapshot(t *testing.T, sim *xspsim.Server, user string) xspsim.UserSnapshot {
	t.Helper()
	s, err := sim.Snapshot(user + "@example.com")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDeviceLimitedUserActsOnlyOnItsAgents: crm cannot log off, or change
// the state of, agent3 sitting at desk2, nor pull it to desk1; BroadWorks
// keeps agent3 associated with desk2, desk2 forwarding to it, and agent3
// Ready. crm can log agent1 on at 4001 and set its state, and log agent2
// (sitting nowhere) on at desk1 and off again.
func TestDeviceLimitedUserActsOnlyOnItsAgents(t *testing.T) {
	sim, cstaAddr, _ := authzRun(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ops := ctiAs(t, ctx, cstaAddr, "ops")
	crm := ctiAs(t, ctx, cstaAddr, "crm")

	// ops seats agent3 at desk2, Ready.
	if _, err := ops.SetAgentState(ctx, "desk2", csta.ReqLoggedOn, "agent3", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.SetAgentState(ctx, "desk2", csta.ReqReady, "agent3", ""); err != nil {
		t.Fatal(err)
	}
	seated := func() {
		t.Helper()
		a3, d2 := snapshot(t, sim, "agent3"), snapshot(t, sim, "desk2")
		if a3.GuestHostID != "desk2@example.com" || d2.HostGuestID != "agent3@example.com" || !d2.CFAActive || d2.CFANumber != "4003" || a3.AgentState != xspsim.StateAvailable {
			t.Fatalf("agent3 not (or no longer) Ready at desk2: agent3 %+v desk2 %+v", a3, d2)
		}
	}
	seated()

	for _, tt := range []struct {
		device string
		state  csta.ReqAgentState
	}{
		{"4001", csta.ReqLoggedOff}, // the attack as reported
		{"desk1", csta.ReqLoggedOff},
		{"4001", csta.ReqNotReady},
		{"4001", csta.ReqReady},
		{"4001", csta.ReqWorkingAfterCall},
		{"desk1", csta.ReqLoggedOn}, // would move agent3 from desk2
	} {
		t.Run(fmt.Sprintf("%s agent3 at %s", tt.state, tt.device), func(t *testing.T) {
			_, err := crm.SetAgentState(ctx, tt.device, tt.state, "agent3", "")
			if !errors.Is(err, csta.ErrPrivilegeViolationSpecifiedDevice) {
				t.Fatalf("answered %v, want %v", err, csta.ErrPrivilegeViolationSpecifiedDevice)
			}
			seated()
		})
	}
	if _, err := crm.SetAgentState(ctx, "4002", csta.ReqLoggedOff, "agent3", ""); !errors.Is(err, csta.ErrPrivilegeViolationSpecifiedDevice) {
		t.Errorf("a device outside: %v", err) // the front end's own check, as before
	}

	// What crm may do.
	steps := []struct {
		device string
		state  csta.ReqAgentState
		agent  string
		check  func() error
	}{
		{"4001", csta.ReqLoggedOn, "agent1", func() error {
			if s := snapshot(t, sim, "agent1"); s.AgentState != xspsim.StateUnavailable {
				return fmt.Errorf("agent1 %+v, want Unavailable", s)
			}
			return nil
		}},
		{"4001", csta.ReqReady, "agent1", func() error {
			if s := snapshot(t, sim, "agent1"); s.AgentState != xspsim.StateAvailable {
				return fmt.Errorf("agent1 %+v, want Available", s)
			}
			return nil
		}},
		{"desk1", csta.ReqLoggedOn, "agent2", func() error {
			if s := snapshot(t, sim, "agent2"); s.GuestHostID != "desk1@example.com" {
				return fmt.Errorf("agent2 %+v, want desk1's guest", s)
			}
			return nil
		}},
		{"desk1", csta.ReqNotReady, "agent2", func() error {
			if s := snapshot(t, sim, "agent2"); s.AgentState != xspsim.StateUnavailable {
				return fmt.Errorf("agent2 %+v, want Unavailable", s)
			}
			return nil
		}},
		{"desk1", csta.ReqLoggedOff, "agent2", func() error {
			if s := snapshot(t, sim, "agent2"); s.GuestHostID != "" {
				return fmt.Errorf("agent2 %+v, want no association", s)
			}
			return nil
		}},
	}
	for _, st := range steps {
		if _, err := crm.SetAgentState(ctx, st.device, st.state, st.agent, ""); err != nil {
			t.Fatalf("crm %s %s at %s: %v", st.state, st.agent, st.device, err)
		}
		if err := st.check(); err != nil {
			t.Errorf("after crm %s %s at %s: %v", st.state, st.agent, st.device, err)
		}
	}
	if st, err := crm.GetAgentState(ctx, "4001"); err != nil || len(st.AgentStateList) != 1 || st.AgentStateList[0].AgentID != "agent1" {
		t.Errorf("crm GetAgentState 4001: %+v %v", st, err)
	}
	seated()

	// ops, unlimited, still may.
	if _, err := ops.SetAgentState(ctx, "4001", csta.ReqLoggedOff, "agent3", ""); err != nil {
		t.Fatalf("ops logs agent3 off: %v", err)
	}
	if s := snapshot(t, sim, "agent3"); s.GuestHostID != "" {
		t.Errorf("agent3 after ops' logoff: %+v", s)
	}
}

// TestPhoneCannotChangeAnotherAgent: phone 4001, with its own digest
// credentials, names agent4 in a SetAgentState body: 403, and agent4 stays
// Ready at the simulator; naming agent2 to log it on: 403, agent2 stays
// signed out with no association. The phone is told its own agent's
// unchanged state each time, and its own agent's change still goes through.
func TestPhoneCannotChangeAnotherAgent(t *testing.T) {
	sipptest.Path(t)
	sim, cstaAddr, sipAddr := authzRun(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ops := ctiAs(t, ctx, cstaAddr, "ops")
	if _, err := ops.SetAgentState(ctx, "4004", csta.ReqLoggedOn, "agent4", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.SetAgentState(ctx, "4004", csta.ReqReady, "agent4", ""); err != nil {
		t.Fatal(err)
	}
	if s := snapshot(t, sim, "agent4"); s.AgentState != xspsim.StateAvailable {
		t.Fatalf("agent4 before: %+v", s)
	}
	fixture := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "xml", "sip", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	phone := sipptest.NewPhone("4001", "4001", "phone4001").
		Subscribe().
		AwaitNotify("AgentLoggedOffEvent"). // the full state: agent1 signed out
		RequestRefused(fixture("feature_set_agent_state_other_agent.xml"), 403).
		AwaitNotify("AgentLoggedOffEvent"). // agent1's unchanged state
		RequestRefused(fixture("feature_set_agent_state_logon_other_agent.xml"), 403).
		AwaitNotify("AgentLoggedOffEvent").
		// The line's own agent: allowed.
		Request(`<SetAgentState ` + ed3 + `><device>4001</device><requestedAgentState>loggedOn</requestedAgentState><agentID>agent1</agentID></SetAgentState>`).
		AwaitNotify("AgentNotReadyEvent").
		Unsubscribe().
		Pause(200)
	dir := t.TempDir()
	if err := phone.Run(ctx, t, dir, sipAddr, sipptest.FreeUDPPort(t)); err != nil {
		t.Fatal(err)
	}
	if s := snapshot(t, sim, "agent4"); s.AgentState != xspsim.StateAvailable {
		t.Errorf("agent4 after phone 4001's refused request: %+v, want Available", s)
	}
	if s := snapshot(t, sim, "agent2"); s.AgentState != xspsim.StateSignOut || s.GuestHostID != "" {
		t.Errorf("agent2 after phone 4001's refused logon: %+v, want signed out, no association", s)
	}
	if s := snapshot(t, sim, "agent1"); s.AgentState != xspsim.StateUnavailable {
		t.Errorf("agent1 after its own phone's logon: %+v, want Unavailable", s)
	}
}
