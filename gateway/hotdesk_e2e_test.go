package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/internal/stack"
	"github.com/broadworks-connector/connector/internal/testtool"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// End-to-end hot-desk tests: a CTI client (csta/cticlient) over real TCP →
// csta.Server → gateway → hoteling.Sequencer → xsi.Client / xsi.Events →
// the XSP simulator over HTTP, built by internal/stack. BroadWorks state is
// read from the simulator (Snapshot), never from the connector.

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("STACK_LOG") != "" {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError + 4}))
}

func newStack(t testing.TB, cfg stack.Config) *stack.Stack {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
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
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	return st
}

func dial(t testing.TB, st *stack.Stack) *cticlient.Client {
	t.Helper()
	c, err := st.Dial(t.Context(), cticlient.WithTimeout(30*time.Second), cticlient.WithEventBuffer(1024))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func login(ctx context.Context, c *cticlient.Client, agent, desk int) error {
	_, err := c.SetAgentState(ctx, stack.DeskID(desk), csta.ReqLoggedOn, stack.AgentID(agent), "")
	return err
}

func logout(ctx context.Context, c *cticlient.Client, agent, desk int) error {
	_, err := c.SetAgentState(ctx, stack.DeskID(desk), csta.ReqLoggedOff, stack.AgentID(agent), "")
	return err
}

// cstaErr requires err to be a CSTAErrorCode answer.
func cstaErr(t *testing.T, err error) *cticlient.Error {
	t.Helper()
	var ce *cticlient.Error
	if !errors.As(err, &ce) {
		t.Fatalf("want a CSTAErrorCode, got %v", err)
	}
	return ce
}

func state(t testing.TB, st *stack.Stack, a, d int) stack.DeskState {
	t.Helper()
	s, err := st.State(a, d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHotDeskStepFailures: each step of login and of logout fails in turn
// (HTTP 500 and 400 injected on its path). The CTI client gets a
// CSTAErrorCode and BroadWorks is fully as before; with the fault cleared
// the same request succeeds and BroadWorks is fully in the new state.
// "Every injected failure ends with BroadWorks state either fully logged in
// or fully as before, and the client told which."
func TestHotDeskStepFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	t.Parallel()
	type tc struct {
		name   string
		logout bool
		path   func(a, d int) string
		status int
	}
	cfa := func(a, d int) string { return "/user/" + stack.DeskUser(d) + "/services/CallForwardingAlways" }
	guest := func(a, d int) string { return "/user/" + stack.AgentUser(a) + "/services/HotelingGuest" }
	cc := func(a, d int) string { return "/user/" + stack.AgentUser(a) + "/services/CallCenter" }
	var cases []tc
	for _, op := range []bool{false, true} {
		for _, step := range []struct {
			name string
			path func(a, d int) string
		}{{"host-CFA", cfa}, {"HotelingGuest", guest}, {"CallCenter", cc}} {
			for _, status := range []int{http.StatusInternalServerError, http.StatusBadRequest} {
				name := fmt.Sprintf("login/%s/%d", step.name, status)
				if op {
					name = fmt.Sprintf("logout/%s/%d", step.name, status)
				}
				cases = append(cases, tc{name, op, step.path, status})
			}
		}
	}
	// Each case its own agent and desk; desks alternate between having an
	// own CFA (even) and none (odd), so both restores are checked.
	st := newStack(t, stack.Config{Agents: len(cases), Desks: len(cases)})
	c := dial(t, st)
	for i, tc := range cases {
		a, d := i+1, i+1
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			seed := state(t, st, a, d)
			if tc.logout {
				if err := login(ctx, c, a, d); err != nil {
					t.Fatalf("setup login: %v", err)
				}
				if err := st.CheckLoggedIn(a, d); err != nil {
					t.Fatal(err)
				}
			}
			before := state(t, st, a, d)
			st.Sim.SetErrorRate(tc.path(a, d), 1, tc.status)
			var err error
			if tc.logout {
				err = logout(ctx, c, a, d)
			} else {
				err = login(ctx, c, a, d)
			}
			st.Sim.ClearFaults()
			ce := cstaErr(t, err)
			t.Logf("answer: %v", ce)
			// Told "failed": BroadWorks must be fully as before.
			if err := st.CheckSame(a, d, before); err != nil {
				t.Fatal(err)
			}
			if tc.logout {
				if err := st.CheckLoggedIn(a, d); err != nil {
					t.Fatal(err)
				}
			}
			// The connector's view catches up with BroadWorks.
			if err := st.AwaitViewSettled(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			// Fault cleared: the same request succeeds, fully.
			if tc.logout {
				if err := logout(ctx, c, a, d); err != nil {
					t.Fatalf("logout after clearing the fault: %v", err)
				}
				if err := st.CheckSame(a, d, seed); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := login(ctx, c, a, d); err != nil {
					t.Fatalf("login after clearing the fault: %v", err)
				}
				if err := st.CheckLoggedIn(a, d); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// loginAsync starts a login and returns the channel its answer arrives on.
func loginAsync(ctx context.Context, c *cticlient.Client, a, d int) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- login(ctx, c, a, d) }()
	return ch
}

func awaitAnswer(t *testing.T, ch <-chan error, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(timeout):
		t.Fatalf("no answer within %v", timeout)
		return nil
	}
}

// deskForwardsTo: the first step of the login (host CFA) has been applied.
func deskForwardsTo(st *stack.Stack, a, d int) func() bool {
	return func() bool {
		s, err := st.State(a, d)
		return err == nil && s.Desk.CFAActive && s.Desk.CFANumber == stack.AgentNumber(a)
	}
}

// agentAssociated: the second step (association) has been applied.
func agentAssociated(st *stack.Stack, a, d int) func() bool {
	return func() bool {
		s, err := st.State(a, d)
		return err == nil && s.Agent.GuestHostID == stack.DeskUser(d)
	}
}

// TestHotDeskXSPKilledMidLogin: the XSP dies while a login is in progress
// (after the host CFA, with the association request held by injected
// latency). The client gets an answer. When the undo cannot reach the dead
// XSP the login is left half done until the link comes back: then the
// reconciler, once the resync has read the users again, finishes the undo
// (the promise "as before" is owed), with no restart, and the desk ends
// fully as before.
func TestHotDeskXSPKilledMidLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	t.Parallel()
	cases := []struct {
		name      string
		desk      int  // odd: no own CFA; even: own CFA
		quickBack bool // the XSP is back before the undo gives up
	}{
		{"desk-without-CFA", 1, false},
		{"desk-with-own-CFA", 2, false},
		{"back-during-undo/desk-with-own-CFA", 4, true},
	}
	st := newStack(t, stack.Config{Agents: 4, Desks: 4, StepTimeout: time.Second})
	for i, tc := range cases {
		a, d := i+1, tc.desk
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, st)
			before := state(t, st, a, d)
			st.Sim.SetActionsLatency(xspsim.Latency{Min: 300 * time.Millisecond, Max: 300 * time.Millisecond})
			ans := loginAsync(t.Context(), c, a, d)
			testtool.WaitFor(t, 5*time.Second, "the host CFA step", deskForwardsTo(st, a, d))
			// Counted before the kill: the repair may be done by the time
			// the test sees the link back.
			repairsBefore := len(st.Conn().LinkRepairs())
			st.Sim.Kill()
			st.Sim.ClearFaults()
			var err error
			if tc.quickBack {
				time.Sleep(150 * time.Millisecond)
				if rerr := st.Sim.Restart(); rerr != nil {
					t.Fatal(rerr)
				}
				err = awaitAnswer(t, ans, 30*time.Second)
			} else {
				err = awaitAnswer(t, ans, 30*time.Second)
				if rerr := st.Sim.Restart(); rerr != nil {
					t.Fatal(rerr)
				}
			}
			t.Logf("answer: %v", err)
			testtool.WaitFor(t, 15*time.Second, "the link", st.Conn().Gateway.LinkUp)
			if err == nil {
				// The XSP was back in time for the sequence's retries:
				// told "done" → fully logged in.
				if err := st.CheckLoggedIn(a, d); err != nil {
					t.Fatal(err)
				}
				return
			}
			cstaErr(t, err)
			// Told "failed" → fully as before, by the undo itself or by the
			// repair after the link recovery.
			testtool.WaitFor(t, 20*time.Second, "the desk and agent as before", func() bool { return st.CheckSame(a, d, before) == nil })
			if !tc.quickBack {
				// The XSP stayed dead past the answer: the undo could not
				// run, so the desk was half done until the repair, which
				// is recorded once its last step is confirmed.
				testtool.WaitFor(t, 20*time.Second, "the repair after the link recovery", func() bool { return len(st.Conn().LinkRepairs()) > repairsBefore })
			}
			if err := st.AwaitViewSettled(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			reps := st.Conn().LinkRepairs()
			t.Logf("repairs after link recovery: %+v", reps)
			for _, rp := range reps {
				if rp.Kind != gateway.RepairOwed && rp.Kind != gateway.RepairLateLanding {
					t.Errorf("repair %+v, want the owed undo (or a late landing of ours undone)", rp)
				}
			}
			if !tc.quickBack {
				// Tried while the XSP was still coming back it may have
				// failed first: the last one for the agent succeeded.
				var last *gateway.Repair
				for i := range reps {
					if reps[i].User == stack.AgentUser(a) {
						last = &reps[i]
					}
				}
				if last == nil || last.Err != nil {
					t.Errorf("repairs %+v, want a successful one for agent %d", reps, a)
				}
			}
			if err := st.CheckSame(a, d, before); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// loginCrashing logs agent a in at desk d on c with the connector set to
// die just before step on user: the login must fail, and the connector is
// gone (crashed) when it returns.
func loginCrashing(t *testing.T, st *stack.Stack, c *cticlient.Client, a, d int, step, user string) {
	t.Helper()
	st.CrashBefore(step, user)
	err := awaitAnswer(t, loginAsync(t.Context(), c, a, d), 15*time.Second)
	t.Logf("answer from the dying connector: %v", err)
	if err == nil {
		t.Fatal("login succeeded although the connector died mid-sequence")
	}
	if err := st.CrashConnector(); err != nil {
		t.Logf("crash: %v", err)
	}
}

// TestHotDeskConnectorCrashMidLogin: the connector dies between two steps
// of a login (nothing more leaves it, its state file is as the crash left
// it); a new connector against the same simulator and store takes the
// sequence's intent at start-up and, with recover_mode undo, leaves the
// desk fully as before.
func TestHotDeskConnectorCrashMidLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	t.Parallel()
	cases := []struct {
		name        string
		desk        int
		crashBefore string // the step the connector dies before
		halfDone    func(st *stack.Stack, a, d int) func() bool
	}{
		{"after-host-CFA/desk-without-CFA", 1, "AssociateGuest", deskForwardsTo},
		{"after-host-CFA/desk-with-own-CFA", 2, "AssociateGuest", deskForwardsTo},
		{"after-association/desk-without-CFA", 3, "SetAgentState", agentAssociated},
		{"after-association/desk-with-own-CFA", 4, "SetAgentState", agentAssociated},
	}
	st := newStack(t, stack.Config{Agents: 4, Desks: 4})
	for i, tc := range cases {
		a, d := i+1, tc.desk
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, st)
			before := state(t, st, a, d)
			loginCrashing(t, st, c, a, d, tc.crashBefore, stack.AgentUser(a))
			if !tc.halfDone(st, a, d)() || st.CheckSame(a, d, before) == nil {
				t.Fatalf("not the half-done state expected after a crash before %s", tc.crashBefore)
			}
			if err := st.Start(); err != nil {
				t.Fatal(err)
			}
			t.Logf("repairs: %+v", st.Conn().Repairs)
			if r := st.Conn().Repairs; len(r) != 1 || r[0].Err != nil || r[0].Kind != gateway.RepairOwed || r[0].User != stack.AgentUser(a) {
				t.Errorf("repairs %+v, want one owed undo of agent %d", r, a)
			}
			if err := st.CheckSame(a, d, before); err != nil {
				t.Fatal(err)
			}
			// The desk is usable again.
			c2 := dial(t, st)
			if err := login(t.Context(), c2, a, d); err != nil {
				t.Fatal(err)
			}
			if err := st.CheckLoggedIn(a, d); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHotDeskRace: two agents log in at one desk at the same time, each from
// its own CTI client. Both are answered; exactly one ends logged in there
// (associated, the desk forwarding to it, Unavailable), and the other is
// neither associated nor signed in.
func TestHotDeskRace(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	t.Parallel()
	const rounds = 4
	st := newStack(t, stack.Config{Agents: 2 * rounds, Desks: rounds})
	for r := range rounds {
		a1, a2, d := 2*r+1, 2*r+2, r+1
		t.Run(fmt.Sprint("round", r), func(t *testing.T) {
			c1, c2 := dial(t, st), dial(t, st)
			var wg sync.WaitGroup
			var e1, e2 error
			wg.Add(2)
			go func() { defer wg.Done(); e1 = login(t.Context(), c1, a1, d) }()
			go func() { defer wg.Done(); e2 = login(t.Context(), c2, a2, d) }()
			wg.Wait()
			t.Logf("answers: %v / %v", e1, e2)
			for _, e := range []error{e1, e2} {
				if e != nil {
					cstaErr(t, e)
				}
			}
			s2 := state(t, st, a2, d)
			winner, loser, le, we := a1, a2, e2, e1
			if s2.Agent.GuestHostID == stack.DeskUser(d) {
				winner, loser, le, we = a2, a1, e1, e2
			}
			if we != nil {
				t.Fatalf("agent %d is at the desk but was told %v", winner, we)
			}
			if err := st.CheckLoggedIn(winner, d); err != nil {
				t.Fatal(err)
			}
			ls := state(t, st, loser, d)
			if ls.Agent.GuestHostID != "" || ls.Agent.AgentState != xspsim.StateSignOut {
				t.Fatalf("loser %d (told %v): %+v", loser, le, ls.Agent)
			}
			// Not racing any more: a login at a desk held by another guest
			// takes it over (the default of hoteling.refuse_occupied_host):
			// the former winner is signed out and unassociated.
			c := c1
			if loser == a2 {
				c = c2
			}
			if err := login(t.Context(), c, loser, d); err != nil {
				t.Fatalf("takeover login at an occupied desk: %v", err)
			}
			if err := st.CheckLoggedIn(loser, d); err != nil {
				t.Fatal(err)
			}
			ws := state(t, st, winner, d)
			if ws.Agent.GuestHostID != "" || ws.Agent.AgentState != xspsim.StateSignOut {
				t.Fatalf("taken-over agent %d: %+v", winner, ws.Agent)
			}
		})
	}
}

// nextEvent reads the client's events until one named name (and matching
// ok, when given) arrives.
func nextEvent(t *testing.T, c *cticlient.Client, name string, ok func(cticlient.Event) bool) cticlient.Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, open := <-c.Events():
			if !open {
				t.Fatalf("connection closed waiting for %s", name)
			}
			if ev.Name == name && (ok == nil || ok(ev)) {
				return ev
			}
			t.Logf("skipped %s", ev.Name)
		case <-timeout:
			t.Fatalf("no %s", name)
		}
	}
}

// TestHotDeskPortalChanges: changes made outside the connector (the
// BroadWorks portal) reach CTI clients monitoring the devices.
func TestHotDeskPortalChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	t.Parallel()
	st := newStack(t, stack.Config{Agents: 1, Desks: 1})
	// The stack is ready once the views agree with the simulator on ACD
	// state, CFA and the association (an unseen CFA or association agrees
	// when off); DND, CFB and CFNA are not looked at and may still be on
	// their way. A first value is always published (gateway.report), so a
	// monitor started now could hear the initial "DND off" before the
	// portal's "DND on". Wait until every initial value is in and published.
	gw := st.Conn().Gateway
	for _, user := range []string{stack.AgentUser(1), stack.DeskUser(1)} {
		deadline := time.Now().Add(10 * time.Second)
		for missing := gw.InitialValuesMissing(user); missing != ""; missing = gw.InitialValuesMissing(user) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: initial values still missing: %s", user, missing)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	c := dial(t, st)
	ctx := t.Context()
	agent, desk := stack.AgentID(1), stack.DeskID(1)
	if _, err := c.MonitorStart(ctx, agent); err != nil {
		t.Fatal(err)
	}
	if _, err := c.MonitorStart(ctx, desk); err != nil {
		t.Fatal(err)
	}
	user := stack.AgentUser(1)
	if err := st.Sim.PortalSetDND(user, true); err != nil {
		t.Fatal(err)
	}
	// Both devices are monitored: look at the agent's.
	onAgent := func(e cticlient.Event) bool { return e.Device == agent }
	ev := nextEvent(t, c, "DoNotDisturbEvent", onAgent)
	if ev.Device != agent || !ev.DoNotDisturbOn {
		t.Fatalf("DND event %+v", ev)
	}
	if err := st.Sim.PortalSetAgentState(user, xspsim.StateAvailable, ""); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c, "AgentReadyEvent", nil); ev.Device != agent || ev.AgentID != agent {
		t.Fatalf("ready event %+v", ev)
	}
	if err := st.Sim.PortalSetAgentState(user, xspsim.StateUnavailable, ""); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c, "AgentNotReadyEvent", nil); ev.Device != agent {
		t.Fatalf("not-ready event %+v", ev)
	}
	// A guest association made on the portal: the desk hears the logon.
	if err := st.Sim.PortalAssociateGuest(user, stack.DeskUser(1)); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c, "AgentLoggedOnEvent", func(e cticlient.Event) bool { return e.Device == desk }); ev.AgentID != agent {
		t.Fatalf("logged-on event %+v", ev)
	}
	if err := st.Sim.PortalSetDND(user, false); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c, "DoNotDisturbEvent", onAgent); ev.DoNotDisturbOn {
		t.Fatalf("DND event %+v", ev)
	}
	// All three forwarding services, changed on the portal.
	isType := func(ft string) func(cticlient.Event) bool {
		return func(e cticlient.Event) bool { return e.Device == agent && e.ForwardingType == ft }
	}
	if err := st.Sim.PortalSetCFA(user, true, "+15550100"); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c, "ForwardingEvent", isType("forwardImmediate")); !ev.ForwardStatus || ev.ForwardTo != "+15550100" {
		t.Fatalf("CFA event %+v", ev)
	}
	if err := st.Sim.PortalSetCFB(user, true, "+15550101"); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c, "ForwardingEvent", isType("forwardBusy")); !ev.ForwardStatus || ev.ForwardTo != "+15550101" {
		t.Fatalf("CFB event %+v", ev)
	}
	if err := st.Sim.PortalSetCFNA(user, true, "+15550102", 6); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c, "ForwardingEvent", isType("forwardNoAns")); !ev.ForwardStatus || ev.ForwardTo != "+15550102" || ev.RingCount != 6 {
		t.Fatalf("CFNA event %+v", ev)
	}
	if err := st.Sim.PortalSetCFNA(user, false, "", -1); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c, "ForwardingEvent", isType("forwardNoAns")); ev.ForwardStatus {
		t.Fatalf("CFNA off event %+v", ev)
	}
}

// TestHotDeskConcurrentLogins: 100 agents, each from its own CTI client, log
// in at the same time at 100 desks; every client is answered with success
// and BroadWorks shows all 100 fully logged in.
func TestHotDeskConcurrentLogins(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	t.Parallel()
	const n = 100
	st := newStack(t, stack.Config{Agents: n, Desks: n})
	clients := make([]*cticlient.Client, n)
	for i := range clients {
		clients[i] = dial(t, st)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = login(t.Context(), clients[i], i+1, i+1)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("agent %d: %v", i+1, err)
		}
		if err := st.CheckLoggedIn(i+1, i+1); err != nil {
			t.Error(err)
		}
	}
}

// TestHotDeskReleasedByBroadWorks: BroadWorks ends a hot-desk association
// on its own (here an operator on the portal; the association limit takes
// the same path): the connector frees the desk (its own forwarding back)
// and signs the agent out, and the desk's monitor hears the logoff.
func TestHotDeskReleasedByBroadWorks(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	t.Parallel()
	st, c, before := deskWithItsOwnForwarding(t)
	ctx := t.Context()
	if _, err := c.MonitorStart(ctx, stack.DeskID(1)); err != nil {
		t.Fatal(err)
	}
	if err := login(ctx, c, 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := st.CheckLoggedIn(1, 1); err != nil {
		t.Fatal(err)
	}
	if err := st.Sim.PortalEndGuestAssociation(stack.AgentUser(1)); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c, "AgentLoggedOffEvent", func(e cticlient.Event) bool { return e.Device == stack.DeskID(1) }); ev.AgentID != stack.AgentID(1) {
		t.Fatalf("logged-off event %+v", ev)
	}
	testtool.WaitFor(t, 10*time.Second, "the desk released", func() bool { return st.CheckSame(1, 1, before) == nil })
}

// TestHotDeskLateForwardingAfterLogout: a desk's forwarding to its last
// guest that lands after the guest logged out (an earlier failed logout's
// undo, given up on during an XSP failover, say) is put back to the desk's
// own forwarding: nothing is remembered for the desk any more, and the
// desk's event, not the guest's, is all that shows it.
func TestHotDeskLateForwardingAfterLogout(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	t.Parallel()
	st, c, before := deskWithItsOwnForwarding(t)
	ctx := t.Context()
	if err := login(ctx, c, 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := logout(ctx, c, 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := st.CheckSame(1, 1, before); err != nil {
		t.Fatal(err)
	}
	if err := st.Sim.PortalSetCFA(stack.DeskUser(1), true, stack.AgentNumber(1)); err != nil {
		t.Fatal(err)
	}
	testtool.WaitFor(t, 7*time.Second, "the desk's own forwarding back", func() bool { return st.CheckSame(1, 1, before) == nil })
	gw := st.Conn().Gateway
	if w, _, _ := gw.Promise(stack.AgentUser(1)); w.Host != "" || w.LeftHost != stack.DeskUser(1) {
		t.Fatalf("promise %+v: want at no desk, having left %s", w, stack.DeskUser(1))
	}
}

// deskWithItsOwnForwarding is a stack of one agent and one desk that
// forwards to a number of its own, a client, and the two as they start.
func deskWithItsOwnForwarding(t *testing.T) (*stack.Stack, *cticlient.Client, stack.DeskState) {
	st := newStack(t, stack.Config{Agents: 1, Desks: 1, DeskCFA: func(int) string { return "+15550999" }})
	c := dial(t, st)
	before, err := st.State(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	return st, c, before
}
