package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// An XSP the connector's configuration says nothing about: users of
// acme.test in grp1@ent1, 2001 a hoteling host whose own call-center agent
// is signed in (Available), 5001 an agent with a number of its own, 3001 a
// plain user.
func directoryXSP(t *testing.T) *xspsim.Server {
	t.Helper()
	sim := xspsim.New(xspsim.Config{
		Users: []xspsim.User{
			{ID: "2001@acme.test", FirstName: "Desk", LastName: "2001", PhoneNumber: "+15550002001", Extension: "2001",
				HotelingHost: true, CallCenter: true, ACDState: "Available"},
			{ID: "5001@acme.test", FirstName: "Agent", LastName: "5001", PhoneNumber: "+15550005001", Extension: "5001", CallCenter: true},
			{ID: "3001@acme.test", FirstName: "Plain", LastName: "3001", PhoneNumber: "+15550003001", Extension: "3001"},
		},
		Username: "admin@acme.test", Password: "acme-secret",
		UnavailableCodes: []xspsim.UnavailableCode{{Code: "LUNCH", Description: "Lunch", Active: true, Default: true}},
	}, nil)
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sim.Shutdown(ctx)
	})
	return sim
}

// TestExampleConfigAgainstAnXSP is the first "done means": the
// example configuration with only the XSP (servers, credential) and
// directory.domain changed — plus what a test must move (listeners on free
// ports, files in a temporary directory, the embedded simulator off) —
// against an XSP where 2001 is a hoteling host with its agent signed in. A
// CTI client monitors 2001, logs agent 5001 in there (host sign-out, CFA,
// association, Unavailable, in that order, each confirmed), sees the
// events, sets Ready / Not Ready / After Call Work, forwarding and DND on
// another user of the scope, hears a portal change, uses a user added to
// BroadWorks after start, and logs out.
// exampleCommand is `connector run --config config.example.yaml` with what
// a test must move — listeners on free loopback ports, files in dir — and
// the environment overrides in env.
func exampleCommand(dir string, env ...string) *exec.Cmd {
	cmd := exec.Command(binary, "run", "--config", filepath.Join("..", "..", "config.example.yaml"))
	cmd.Env = append([]string{
		"CONNECTOR_CSTA_LISTEN=127.0.0.1:0",
		"CONNECTOR_ADMIN_LISTEN=127.0.0.1:0",
		"CONNECTOR_SIP_LISTEN=127.0.0.1:0",
		"CONNECTOR_HOTELING_STATE_FILE=" + filepath.Join(dir, "hoteling.json"),
		"CONNECTOR_JOURNAL_PATH=" + filepath.Join(dir, "journal.db"),
		"CONNECTOR_STORE_PATH=" + filepath.Join(dir, "connector.db"),
	}, env...)
	return cmd
}

func TestExampleConfigAgainstAnXSP(t *testing.T) {
	sim := directoryXSP(t)
	dir := t.TempDir()
	cmd := exampleCommand(dir,
		"CONNECTOR_XSI_SIMULATE=false",
		"CONNECTOR_XSI_SERVERS="+sim.URL(),
		"CONNECTOR_XSI_USERNAME=admin@acme.test",
		"CONNECTOR_XSI_PASSWORD=acme-secret",
		"CONNECTOR_XSI_RECONNECT_MIN=50ms",
		"CONNECTOR_DIRECTORY_DOMAIN=acme.test",
		"CONNECTOR_ADMIN_TOKEN="+testAdminToken,
	)
	a := startRunCommand(t, cmd)
	waitFor(t, "/readyz 200 (channel up, scope active)", func() bool { return adminStatus(a.admin, "/readyz") == 200 })

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	desk := monitoring(ctx, t, a.csta, "2001")
	plain := monitoring(ctx, t, a.csta, "3001")
	cti := desk
	sim.ClearRequests()

	// The login: four PUTs, in the documented order, and no other change.
	if _, err := cti.SetAgentState(ctx, "2001", csta.ReqLoggedOn, "5001", ""); err != nil {
		t.Fatalf("hot-desk login of 5001 at 2001: %v", err)
	}
	puts := xspsim.Changes(sim.Requests())
	want := []string{
		"2001@acme.test CallCenter Sign-Out",
		"2001@acme.test CallForwardingAlways true +15550005001",
		"5001@acme.test HotelingGuest 2001@acme.test",
		"5001@acme.test CallCenter Unavailable",
	}
	if !slices.Equal(puts, want) {
		t.Fatalf("the login's PUTs:\n  %s\nwant, in this order:\n  %s", strings.Join(puts, "\n  "), strings.Join(want, "\n  "))
	}
	s := userSnapshot(t, sim, "2001@acme.test")
	g := userSnapshot(t, sim, "5001@acme.test")
	if s.AgentState != "Sign-Out" || !s.CFAActive || s.CFANumber != "+15550005001" || s.HostGuestID != "5001@acme.test" ||
		g.GuestHostID != "2001@acme.test" || g.AgentState != "Unavailable" {
		t.Fatalf("BroadWorks after the login: desk %+v, agent %+v", s, g)
	}
	awaitCTI(t, desk, "AgentLoggedOnEvent", func(ev cticlient.Event) bool { return ev.AgentID == "5001" })

	// Ready, Not Ready with a reason, After Call Work of the guest.
	for _, step := range []struct {
		state  csta.ReqAgentState
		reason string
		event  string
		bw     string
	}{
		{csta.ReqReady, "", "AgentReadyEvent", "Available"},
		{csta.ReqNotReady, "LUNCH", "AgentNotReadyEvent", "Unavailable"},
		{csta.ReqWorkingAfterCall, "", "AgentWorkingAfterCallEvent", "Wrap-Up"},
	} {
		if _, err := cti.SetAgentState(ctx, "2001", step.state, "5001", step.reason); err != nil {
			t.Fatalf("%s: %v", step.state, err)
		}
		awaitCTI(t, desk, step.event, func(ev cticlient.Event) bool { return ev.AgentID == "5001" })
		if got := userSnapshot(t, sim, "5001@acme.test").AgentState; got != step.bw {
			t.Errorf("after %s BroadWorks has %s, want %s", step.state, got, step.bw)
		}
	}

	// Forwarding and DND of another user of the scope; a portal change.
	if err := plain.SetForwarding(ctx, "3001", csta.ForwardImmediate, true, "+15559999", 0); err != nil {
		t.Fatal(err)
	}
	awaitCTI(t, plain, "ForwardingEvent", func(ev cticlient.Event) bool { return ev.ForwardStatus && ev.ForwardTo == "+15559999" })
	if err := plain.SetDoNotDisturb(ctx, "3001", true); err != nil {
		t.Fatal(err)
	}
	awaitCTI(t, plain, "DoNotDisturbEvent", func(ev cticlient.Event) bool { return ev.DoNotDisturbOn })
	if err := sim.PortalSetDND("3001@acme.test", false); err != nil {
		t.Fatal(err)
	}
	awaitCTI(t, plain, "DoNotDisturbEvent", func(ev cticlient.Event) bool { return !ev.DoNotDisturbOn })

	// A user added to BroadWorks after start, used without a restart.
	if err := sim.AddUsers(xspsim.User{ID: "3002@acme.test", FirstName: "New", LastName: "3002"}); err != nil {
		t.Fatal(err)
	}
	late := monitoring(ctx, t, a.csta, "3002")
	if err := sim.PortalSetCFA("3002@acme.test", true, "+15558888"); err != nil {
		t.Fatal(err)
	}
	awaitCTI(t, late, "ForwardingEvent", func(ev cticlient.Event) bool { return ev.ForwardStatus && ev.ForwardTo == "+15558888" })
	// A device BroadWorks does not know.
	if _, err := cti.MonitorStart(ctx, "9999"); err == nil || !strings.Contains(err.Error(), "invalidDeviceID") {
		t.Errorf("MonitorStart on a user BroadWorks does not know: %v, want invalidDeviceID", err)
	}

	// The logout: the desk's forwarding back, the association ended.
	if _, err := cti.SetAgentState(ctx, "2001", csta.ReqLoggedOff, "5001", ""); err != nil {
		t.Fatalf("logout: %v", err)
	}
	awaitCTI(t, desk, "AgentLoggedOffEvent", func(ev cticlient.Event) bool { return ev.AgentID == "5001" })
	s, g = userSnapshot(t, sim, "2001@acme.test"), userSnapshot(t, sim, "5001@acme.test")
	if s.CFAActive || s.HostGuestID != "" || g.GuestActive && g.GuestHostID != "" || g.AgentState != "Sign-Out" {
		t.Errorf("BroadWorks after the logout: desk %+v, agent %+v", s, g)
	}
}

func userSnapshot(t *testing.T, sim *xspsim.Server, user string) xspsim.UserSnapshot {
	t.Helper()
	s, err := sim.Snapshot(user)
	if err != nil {
		t.Fatal(fmt.Errorf("snapshot of %s: %w", user, err))
	}
	return s
}

// TestRunAddsSimulatorUsersOnReload: a user added to simulator.users while
// `run` runs on the embedded simulator is added to it on SIGHUP — a user
// added to BroadWorks — and from then on is a device (and agent) the
// connector knows, without a restart.
func TestRunAddsSimulatorUsersOnReload(t *testing.T) {
	dir := t.TempDir()
	a := startRunIn(t, dir, "", "", "")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cti, err := cticlient.Dial(ctx, a.csta)
	if err != nil {
		t.Fatal(err)
	}
	defer cti.Close()
	if _, err := cti.MonitorStart(ctx, "agent5"); err == nil || !strings.Contains(err.Error(), "invalidDeviceID") {
		t.Fatalf("MonitorStart on a user BroadWorks does not have yet: %v, want invalidDeviceID", err)
	}

	path := filepath.Join(dir, "connector.yaml")
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	content = []byte(strings.Replace(string(content), "simulator:\n", `simulator:
  users: [agent1@example.com, agent2@example.com, agent3@example.com, agent4@example.com, desk1@example.com, desk2@example.com, agent5@example.com]
  call_center_agents: [agent1@example.com, agent2@example.com, agent3@example.com, agent4@example.com, agent5@example.com]
`, 1))
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	a.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload", func() bool { return strings.Contains(a.stderr.String(), "reload: applied") })
	if log := a.stderr.String(); !regexp.MustCompile(`msg="reload: xsp simulator users added" added=1 users=7`).MatchString(log) ||
		strings.Contains(log, "change needs a restart") {
		t.Fatalf("the reload should add agent5 to the simulator, refusing nothing:\n%s", grepLines(log, "time"))
	}
	if _, err := cti.MonitorStart(ctx, "agent5"); err != nil {
		t.Fatalf("MonitorStart on the user added: %v", err)
	}
	if _, err := cti.SetAgentState(ctx, "agent5", csta.ReqLoggedOn, "agent5", ""); err != nil {
		t.Fatalf("the new agent's login at its own line: %v", err)
	}
	awaitCTI(t, cti, "AgentLoggedOnEvent", func(ev cticlient.Event) bool { return ev.Device == "agent5" })
}
