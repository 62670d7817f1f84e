package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/internal/sipptest"
	"github.com/broadworks-connector/connector/internal/testlog"
)

// phoneConnector starts `connector run` on the embedded simulator with
// phone sync on a free port and short liveness timers, and returns the
// CSTA and SIP addresses.
func phoneConnector(t *testing.T) (cstaAddr, sipAddr string) {
	t.Helper()
	return phoneConnectorWith(t, "", "", "")
}

// phoneConnectorWith is phoneConnector with more simulator.* and sip.* keys
// (YAML indented under their section) and more top-level YAML.
func phoneConnectorWith(t *testing.T, moreSimulator, moreSIP, moreTop string) (cstaAddr, sipAddr string) {
	t.Helper()
	a := startRun(t, moreSimulator, moreSIP, moreTop)
	return a.csta, a.sip
}

// runAddrs are the listeners of a `connector run` started by startRun, and
// its process.
type runAddrs struct {
	csta, sip, admin string
	cmd              *exec.Cmd
	stderr           *testlog.Buffer // its log
	exited           <-chan struct{}
}

// startRun starts `connector run` on the embedded simulator with every
// listener on port 0 (the addresses come from the log, so no other process
// can take them between asking and binding), phone sync with short
// liveness timers, and the extra YAML given; it returns once the XSI link
// is up and start-up recovery has run.
func startRun(t *testing.T, moreSimulator, moreSIP, moreTop string) runAddrs {
	t.Helper()
	return startRunIn(t, t.TempDir(), moreSimulator, moreSIP, moreTop)
}

// startRunIn is startRun with its files (config, journal, hoteling state)
// in dir, so a second run can pick up where a killed one stopped.
func startRunIn(t *testing.T, dir, moreSimulator, moreSIP, moreTop string) runAddrs {
	t.Helper()
	return startRunConfig(t, dir, runConfig(dir, moreSimulator, moreSIP, moreTop))
}

// runConfig is startRunIn's configuration.
func runConfig(dir, moreSimulator, moreSIP, moreTop string) string {
	return fmt.Sprintf(`csta:
  listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
  token: test-admin-token-0123456789
simulator:
  listen: 127.0.0.1:0
%sgateway:
  conflict_window: 0s
sip:
  listen: 127.0.0.1:0
  liveness:
    options_interval: 300ms
    timeout: 1500ms
%shoteling:
  state_file: %s
journal:
  path: %s
store:
  path: %s
%s`, moreSimulator, moreSIP, filepath.Join(dir, "hoteling.json"), filepath.Join(dir, "journal.db"), filepath.Join(dir, "connector.db"), moreTop)
}

// startRunConfig starts `connector run` with content as dir/connector.yaml
// and waits until it runs (see startRun).
func startRunConfig(t *testing.T, dir, content string) runAddrs {
	t.Helper()
	path := filepath.Join(dir, "connector.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return startRunCommand(t, exec.Command(binary, "run", "--config", path))
}

// startRunCommand is startRunConfig for a ready-made command (e.g. one that
// changes the process's limits first).
func startRunCommand(t *testing.T, cmd *exec.Cmd) runAddrs {
	t.Helper()
	cmd, stderr, exited := startCommand(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("connector log:\n%s", stderr.String())
		}
	})
	sipListening := regexp.MustCompile(`msg="SIP listening".* addr=(127\.0\.0\.1:\d+)`)
	running := regexp.MustCompile(`msg="connector running" csta=(127\.0\.0\.1:\d+) admin=(127\.0\.0\.1:\d+)`)
	started := regexp.MustCompile(`msg="reconciler: start-up recovery done"`)
	deadline := time.Now().Add(30 * time.Second)
	for !started.MatchString(stderr.String()) || !sipListening.MatchString(stderr.String()) {
		select {
		case <-exited:
			t.Fatalf("the connector exited during start-up (%v):\n%s", cmd.ProcessState, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the connector did not start within 30 s")
		}
	}
	log := stderr.String()
	r := running.FindStringSubmatch(log)
	return runAddrs{csta: r[1], admin: r[2], sip: sipListening.FindStringSubmatch(log)[1], cmd: cmd, stderr: stderr, exited: exited}
}

// monitoring is a CTI client of the connector at addr monitoring device,
// closed when the test ends.
func monitoring(ctx context.Context, t *testing.T, addr, device string) *cticlient.Client {
	t.Helper()
	cti, err := cticlient.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cti.Close() })
	if _, err := cti.MonitorStart(ctx, device); err != nil {
		t.Fatal(err)
	}
	return cti
}

// awaitCTI returns the next event named name on the monitored device,
// skipping others.
func awaitCTI(t *testing.T, c *cticlient.Client, name string, match func(cticlient.Event) bool) cticlient.Event {
	t.Helper()
	return awaitCTIWhile(t, c, nil, name, match)
}

// awaitCTIWhile is awaitCTI while a phone (sipp) runs: the phone ending
// with an error ends the wait with its trace.
func awaitCTIWhile(t *testing.T, c *cticlient.Client, phone <-chan error, name string, match func(cticlient.Event) bool) cticlient.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case err := <-phone:
			t.Fatalf("the phone ended while the desktop waited for %s: %v", name, err)
		case ev := <-c.Events():
			if ev.Name == name && (match == nil || match(ev)) {
				return ev
			}
			t.Logf("CTI: skipped %s %+v", ev.Name, ev)
		case <-timeout:
			t.Fatalf("CTI: no %s within 30 s", name)
		}
	}
}

const ed3 = `xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3"`

// TestPhoneAndDesktopAgree: a sipp "phone" (agent1's phone, DN 4001) and a
// CTI client monitoring the same device stay in agreement through login,
// Ready, Not Ready with a reason, After Call Work, DND, forwarding and
// logout, with changes made from either side: each side makes a change
// and then waits to see the other's.
func TestPhoneAndDesktopAgree(t *testing.T) {
	sipptest.Path(t)
	cstaAddr, sipAddr := phoneConnector(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cti := monitoring(ctx, t, cstaAddr, "4001")

	phone := sipptest.NewPhone("4001", "4001", "phone4001").
		Subscribe().
		AwaitNotify("AgentLoggedOffEvent"). // the full state: agent1 signed out
		// 1. The phone logs the agent in; BroadWorks starts it Not Ready.
		Request(`<SetAgentState ` + ed3 + `><device>4001</device><requestedAgentState>loggedOn</requestedAgentState><agentID>agent1</agentID></SetAgentState>`).
		AwaitNotify("AgentNotReadyEvent").
		// 2. The desktop sets Ready.
		AwaitNotify("AgentReadyEvent").
		// 3. The phone sets Not Ready with reason 2.
		Request(`<SetAgentState ` + ed3 + ` xmlns:pri="http://schema.broadsoft.com/CSTAPrivateData"><device>4001</device><requestedAgentState>notReady</requestedAgentState><agentID>agent1</agentID><extensions><privateData><private><pri:AgentNotReadyReasonValue>2</pri:AgentNotReadyReasonValue></private></privateData></extensions></SetAgentState>`).
		AwaitNotify("AgentNotReadyReasonValue>2<").
		// 4. The desktop sets After Call Work.
		AwaitNotify("AgentWorkingAfterCallEvent").
		// 5. The phone turns DND on; 6. the desktop turns it off.
		Request(`<SetDoNotDisturb ` + ed3 + `><device>4001</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`).
		AwaitNotify("doNotDisturbOn>true").
		AwaitNotify("doNotDisturbOn>false").
		// 7. The phone forwards always; 8. the desktop forwards on no answer.
		Request(`<SetForwarding ` + ed3 + `><device>4001</device><forwardingType>forwardImmediate</forwardingType><activateForward>true</activateForward><forwardDN>5551234</forwardDN></SetForwarding>`).
		AwaitNotify("forwardTo>5551234<").
		AwaitNotify("forwardTo>5559876<").
		// 9. The phone logs the agent out; 10. the desktop logs it in
		// and 11. out again.
		Request(`<SetAgentState ` + ed3 + `><device>4001</device><requestedAgentState>loggedOff</requestedAgentState><agentID>agent1</agentID></SetAgentState>`).
		AwaitNotify("AgentLoggedOffEvent").
		AwaitNotify("AgentLoggedOnEvent").
		AwaitNotify("AgentLoggedOffEvent").
		Unsubscribe().
		Pause(200)
	phoneDir := t.TempDir()
	t.Cleanup(func() {
		if t.Failed() {
			msgs, _ := os.ReadFile(filepath.Join(phoneDir, "phone-4001-messages.log"))
			t.Logf("the phone's SIP messages:\n%s", msgs)
		}
	})
	phoneDone := make(chan error, 1)
	go func() { phoneDone <- phone.Run(ctx, t, phoneDir, sipAddr, sipptest.FreeUDPPort(t)) }()

	on4001 := func(ev cticlient.Event) bool { return ev.Device == "4001" }
	awaitCTI := func(t *testing.T, c *cticlient.Client, name string, match func(cticlient.Event) bool) cticlient.Event {
		t.Helper()
		return awaitCTIWhile(t, c, phoneDone, name, match)
	}
	awaitCTI(t, cti, "AgentLoggedOnEvent", on4001)
	awaitCTI(t, cti, "AgentNotReadyEvent", on4001)
	if _, err := cti.SetAgentState(ctx, "4001", csta.ReqReady, "agent1", ""); err != nil {
		t.Fatal(err)
	}
	awaitCTI(t, cti, "AgentReadyEvent", on4001)
	if ev := awaitCTI(t, cti, "AgentNotReadyEvent", on4001); ev.ReasonCode != "2" {
		t.Errorf("the phone's Not Ready reached the desktop with reason %q, want 2", ev.ReasonCode)
	}
	if _, err := cti.SetAgentState(ctx, "4001", csta.ReqWorkingAfterCall, "agent1", ""); err != nil {
		t.Fatal(err)
	}
	awaitCTI(t, cti, "AgentWorkingAfterCallEvent", on4001)
	awaitCTI(t, cti, "DoNotDisturbEvent", func(ev cticlient.Event) bool { return on4001(ev) && ev.DoNotDisturbOn })
	if err := cti.SetDoNotDisturb(ctx, "4001", false); err != nil {
		t.Fatal(err)
	}
	awaitCTI(t, cti, "DoNotDisturbEvent", func(ev cticlient.Event) bool { return on4001(ev) && !ev.DoNotDisturbOn })
	awaitCTI(t, cti, "ForwardingEvent", func(ev cticlient.Event) bool {
		return on4001(ev) && ev.ForwardingType == "forwardImmediate" && ev.ForwardStatus && ev.ForwardTo == "5551234"
	})
	if err := cti.SetForwarding(ctx, "4001", csta.ForwardNoAns, true, "5559876", 4); err != nil {
		t.Fatal(err)
	}
	awaitCTI(t, cti, "ForwardingEvent", func(ev cticlient.Event) bool { return on4001(ev) && ev.ForwardTo == "5559876" })
	awaitCTI(t, cti, "AgentLoggedOffEvent", on4001)
	if _, err := cti.SetAgentState(ctx, "4001", csta.ReqLoggedOn, "agent1", ""); err != nil {
		t.Fatal(err)
	}
	awaitCTI(t, cti, "AgentLoggedOnEvent", on4001)
	if _, err := cti.SetAgentState(ctx, "4001", csta.ReqLoggedOff, "agent1", ""); err != nil {
		t.Fatal(err)
	}
	awaitCTI(t, cti, "AgentLoggedOffEvent", on4001)
	if err := <-phoneDone; err != nil {
		t.Fatal(err)
	}
	// Both sides end where they agree: logged off, DND off, CFA to 5551234.
	st, err := cti.GetAgentState(ctx, "4001")
	if err != nil || len(st.AgentStateList) != 1 || st.AgentStateList[0].LoggedOnState {
		t.Errorf("agent state at the end: %+v %v", st, err)
	}
}

// TestSilentPhoneOutOfService: a phone that stops answering (sipp has
// exited, its subscription still on the books) is reported on the CTI
// monitor as OutOfServiceEvent within the liveness timeout; when it
// subscribes again it is BackInService.
func TestSilentPhoneOutOfService(t *testing.T) {
	sipptest.Path(t)
	cstaAddr, sipAddr := phoneConnector(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cti := monitoring(ctx, t, cstaAddr, "4002")
	subscribeAndLeave := func() {
		t.Helper()
		phone := sipptest.NewPhone("4002", "4002", "phone4002").Subscribe().AwaitNotify("DoNotDisturbEvent").Pause(100)
		if err := phone.Run(ctx, t, t.TempDir(), sipAddr, sipptest.FreeUDPPort(t)); err != nil {
			t.Fatal(err)
		}
	}
	subscribeAndLeave()
	gone := time.Now()
	awaitCTI(t, cti, "OutOfServiceEvent", func(ev cticlient.Event) bool { return ev.Device == "4002" })
	t.Logf("OutOfServiceEvent %v after the phone went silent (timeout 1.5 s, pings every 300 ms)", time.Since(gone).Round(10*time.Millisecond))
	subscribeAndLeave()
	awaitCTI(t, cti, "BackInServiceEvent", func(ev cticlient.Event) bool { return ev.Device == "4002" })
}

// TestPBXPresenceDrivesAgentState: sipp plays a PBX (CUCM-style presence
// notifier, testdata/sipp/pbx-presence.xml); the connector subscribes to
// DN 4003's presence and turns open / open on the phone / closed into
// agent3 logged on and Ready, Not Ready "busy", logged off — which a CTI
// monitor of 4003 sees.
func TestPBXPresenceDrivesAgentState(t *testing.T) {
	sipp := sipptest.Path(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	pbxPort := sipptest.FreeUDPPort(t)
	dir := t.TempDir()
	scenario, err := filepath.Abs(filepath.Join("..", "..", "testdata", "sipp", "pbx-presence.xml"))
	if err != nil {
		t.Fatal(err)
	}
	pbx := exec.CommandContext(ctx, sipp, "-sf", scenario, "-s", "4003", "-i", "127.0.0.1", "-p", fmt.Sprint(pbxPort),
		"-m", "1", "-nostdin", "-timeout", "50s", "-timeout_error",
		"-trace_msg", "-message_file", filepath.Join(dir, "pbx-messages.log"))
	pbx.Dir = dir
	var pbxOut testlog.Buffer
	pbx.Stdout, pbx.Stderr = &pbxOut, &pbxOut
	if err := pbx.Start(); err != nil {
		t.Fatal(err)
	}
	pbxDone := make(chan error, 1)
	go func() { pbxDone <- pbx.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			msgs, _ := os.ReadFile(filepath.Join(dir, "pbx-messages.log"))
			t.Logf("the PBX's SIP messages:\n%s", msgs)
		}
	})

	// The watcher subscribes as the connector starts, so the monitor may
	// come after the first NOTIFY (open: logged on and Ready); the later
	// ones come 1.5 s apart and are what the test checks.
	// "busy" (on the phone) must be a reason BroadWorks knows: mapped to an
	// unavailable code of the group, as an operator would configure it.
	cstaAddr, _ := phoneConnectorWith(t,
		"  unavailable_codes: [\"LUNCH:Lunch\", \"BUSY:On another phone\"]\n",
		fmt.Sprintf("  presence:\n    pbx: 127.0.0.1:%d\n    dns: [\"4003\"]\n", pbxPort),
		"directory:\n  reason_codes: [\"1=LUNCH\", \"busy=BUSY\"]\n")
	cti := monitoring(ctx, t, cstaAddr, "4003")
	on4003 := func(ev cticlient.Event) bool { return ev.Device == "4003" }
	awaitPBX := func(name string, match func(cticlient.Event) bool) {
		t.Helper()
		awaitCTIWhile(t, cti, nil, name, match)
	}
	awaitPBX("AgentNotReadyEvent", func(ev cticlient.Event) bool { return on4003(ev) && ev.ReasonCode == "busy" })
	awaitPBX("AgentLoggedOffEvent", on4003)
	select {
	case err := <-pbxDone:
		if err != nil {
			t.Fatalf("sipp PBX: %v\n%s", err, pbxOut.String())
		}
	case <-ctx.Done():
		t.Fatal("sipp PBX did not finish")
	}
	st, err := cti.GetAgentState(ctx, "4003")
	if err != nil || len(st.AgentStateList) != 1 || st.AgentStateList[0].LoggedOnState {
		t.Errorf("agent3 at the end: %+v %v, want logged off", st, err)
	}
}
