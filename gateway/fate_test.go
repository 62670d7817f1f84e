package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
)

// TestTimedOutSequenceKeepsThePromiseBefore: a hot-desk logout outlives
// the front end's request timeout. The client is answered resourceBusy
// ("not done"), and before that answer goes out the promise from before
// (logged in at the desk) is owed and in the store: a crash right after
// the answer leaves it to the next connector. The logout then succeeds all
// the same: its success does not become the promise (the reconciler puts
// the login back).
func TestTimedOutSequenceKeepsThePromiseBefore(t *testing.T) {
	const alice, host1 = "alice@example.com", "host1@example.com"
	f := newCSTAFront(t, testConfig)
	store := &memPromises{}
	f.g.deps.Promises = store
	ccfg := csta.DefaultConfig()
	ccfg.Listen = "127.0.0.1:0"
	ccfg.RequestTimeout = 100 * time.Millisecond
	if err := f.srv.Reload(ccfg); err != nil {
		t.Fatal(err)
	}
	f.g.HandleXSIEvent(xev(alice, agentSnap("Available", "")))
	f.g.HandleXSIEvent(xev(alice, guestOf(host1, time.Now())))
	proceed, savedAtAnswer := make(chan struct{}), make(chan bool, 1)
	f.hot.mu.Lock()
	f.hot.onLogout = func() { <-proceed } // the logout runs past the deadline
	f.hot.mu.Unlock()

	c := f.dial(t)
	c.send(1, fmt.Sprintf(`<SetAgentState xmlns="%s"><device>desk1</device><requestedAgentState>loggedOff</requestedAgentState><agentID>A1</agentID></SetAgentState>`, ns3))
	_, answer := c.read()
	store.mu.Lock()
	value, saved := store.saved[alice]
	store.mu.Unlock()
	savedAtAnswer <- saved
	close(proceed)
	if !strings.Contains(answer, "resourceBusy") {
		t.Fatalf("answered %s, want resourceBusy (the front end's deadline)", answer)
	}
	if !<-savedAtAnswer {
		t.Fatalf("the promise before the logout was not in the store when the client read its answer: %q", store.ops)
	}
	var sp storedPromise
	if err := json.Unmarshal(value, &sp); err != nil || sp.Want.Host != host1 {
		t.Fatalf("stored %s (%v), want the login at %s", value, err, host1)
	}
	// The logout's success, after the answer, is not a promise.
	deadline := time.Now().Add(10 * time.Second)
	for f.g.inFlight(alice) {
		if time.Now().After(deadline) {
			t.Fatal("the logout did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.g.rec.mu.Lock()
	p := f.g.rec.promises[alice]
	f.g.rec.mu.Unlock()
	if p.want.Host != host1 || !p.owed || p.want.ACD == xsi.ACDSignOut {
		t.Fatalf("promise %+v owed=%v, want the login at %s, owed", p.want, p.owed, host1)
	}
}

// TestSequenceIntentInTheStore: while a hot-desk sequence runs, the store
// holds what start-up recovery makes of it (hoteling.recover_mode), so that
// a crash in the middle leaves the next connector that promise whatever
// shape the sequence reached; once it has ended (before its answer), the
// record is gone, or replaced by a promise with work left.
func TestSequenceIntentInTheStore(t *testing.T) {
	const alice, host1 = "alice@example.com", "host1@example.com"
	for _, tc := range []struct {
		mode     string
		req      csta.ReqAgentState
		pre      bool // alice at host1 before
		wantHost string
		fail     error
		kept     bool // a record after the sequence
	}{
		{mode: hoteling.RecoverUndo, req: csta.ReqLoggedOn},
		{mode: hoteling.RecoverComplete, req: csta.ReqLoggedOn, wantHost: host1},
		{mode: hoteling.RecoverUndo, req: csta.ReqLoggedOff, pre: true},
		{mode: hoteling.RecoverComplete, req: csta.ReqLoggedOff, pre: true, wantHost: host1},
		{mode: hoteling.RecoverUndo, req: csta.ReqLoggedOff, pre: true,
			fail: &hoteling.StepError{Op: "logout", Step: "end-association", Kind: hoteling.ErrTimeout, Err: context.DeadlineExceeded,
				Undo: errors.New("undo failed")}, kept: true},
	} {
		t.Run(fmt.Sprintf("%s/%s/failed=%v", tc.mode, tc.req, tc.fail != nil), func(t *testing.T) {
			cfg := testConfig
			cfg.RecoverMode = tc.mode
			h := newHarnessConfig(t, cfg)
			store := &memPromises{}
			h.g.deps.Promises = store
			h.g.HandleXSIEvent(xev(alice, agentSnap("Available", "")))
			if tc.pre {
				h.g.HandleXSIEvent(xev(alice, guestOf(host1, time.Now())))
			}
			var during []byte
			hook := func() {
				store.mu.Lock()
				during = store.saved[alice]
				store.mu.Unlock()
			}
			h.hot.mu.Lock()
			h.hot.onLogin, h.hot.onLogout, h.hot.err = hook, hook, tc.fail
			h.hot.mu.Unlock()
			_, _ = h.g.SetAgentState(context.Background(), csta.Requester{}, &csta.SetAgentState{Device: "desk1", RequestedState: tc.req, AgentID: "A1"})
			var sp storedPromise
			if err := json.Unmarshal(during, &sp); err != nil {
				t.Fatalf("no intent in the store while the sequence ran: %q (%v)", during, err)
			}
			if sp.Origin != OriginRecovery || sp.Want.Host != tc.wantHost {
				t.Errorf("intent %+v, want recovery at %q", sp, tc.wantHost)
			}
			store.mu.Lock()
			_, kept := store.saved[alice]
			store.mu.Unlock()
			if kept != tc.kept {
				t.Errorf("a record after the sequence: %v, want %v (ops %q)", kept, tc.kept, store.ops)
			}
		})
	}
}

// TestSignOutPromisesNoDesk: an agent signed out on its own (the view shows
// no desk, the request signs it out) after a failed logout left it owed "at
// the desk" is promised at no desk — not "at the desk, signed out", a shape
// no sequence leaves and Settle cannot reach (the long campaign's
// xsp-primary-killed repaired such a promise every few seconds, forever).
func TestSignOutPromisesNoDesk(t *testing.T) {
	const alice, host1 = "alice@example.com", "host1@example.com"
	h := newHarness(t)
	h.g.HandleXSIEvent(xev(alice, agentSnap("Unavailable", "100")))
	h.g.promise(alice, hoteling.Want{Host: host1, ACD: xsi.ACDUnavailable}, OriginCTI, true)
	if _, err := h.g.SetAgentState(context.Background(), csta.Requester{}, &csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqLoggedOff, AgentID: "A1"}); err != nil {
		t.Fatal(err)
	}
	w, origin, _ := h.g.Promise(alice)
	if w.Host != "" || w.ACD != xsi.ACDSignOut || origin != OriginCTI {
		t.Fatalf("promise %+v from %s, want Sign-Out at no desk from the request", w, origin)
	}
}

// TestDeskDoubtKeptWithTheAgent: a step on the desk given up on (its
// forwarding) is a doubt of the agent whose sequence it was — desks have no
// promise of their own — so its late landing is undone, not adopted.
func TestDeskDoubtKeptWithTheAgent(t *testing.T) {
	const alice, host1 = "alice@example.com", "host1@example.com"
	h := newHarness(t)
	h.g.HandleXSIEvent(xev(alice, agentSnap("Unavailable", "100")))
	h.g.promise(alice, hoteling.Want{Host: host1, ACD: xsi.ACDUnavailable}, OriginCTI, false)
	h.g.failed(&hoteling.StepError{Op: "logout", Step: "restore-host-cfa", Guest: alice, Host: host1,
		Doubts: []hoteling.Doubt{{User: host1, Step: "undo-restore-host-cfa", Shows: func(hoteling.User) bool { return true }}}}, alice)
	h.g.rec.mu.Lock()
	defer h.g.rec.mu.Unlock()
	if p := h.g.rec.promises[alice]; len(p.doubts) != 1 || p.doubts[0].d.User != host1 {
		t.Fatalf("alice's doubts %+v, want the desk's", p.doubts)
	}
}

// TestLoginWhereTheAgentSitsKeepsItsPromise: a hot-desk login where the
// agent already sits signed in sends no agent state, so the agent keeps the
// state it was promised there — owed if it was (the view showed a difference
// of ours still to repair) — not whatever the view shows; with no promise
// at that desk, the view's.
func TestLoginWhereTheAgentSitsKeepsItsPromise(t *testing.T) {
	const alice, host1 = "alice@example.com", "host1@example.com"
	login := &csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOn, AgentID: "A1"}
	for _, tc := range []struct {
		name     string
		promise  *hoteling.Want
		owed     bool
		wantACD  xsi.ACDState
		wantCode string
		wantOwed bool
	}{
		{"promised there, owed", &hoteling.Want{Host: host1, ACD: xsi.ACDUnavailable, Code: "100"}, true, xsi.ACDUnavailable, "100", true},
		{"promised there", &hoteling.Want{Host: host1, ACD: xsi.ACDAvailable}, false, xsi.ACDAvailable, "", false},
		{"promised elsewhere", &hoteling.Want{Host: "host2@example.com", ACD: xsi.ACDAvailable}, false, xsi.ACDUnavailable, "200", false},
		{"no promise", nil, false, xsi.ACDUnavailable, "200", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.hot.seated = true
			h.g.HandleXSIEvent(xev(alice, agentSnap("Unavailable", "200")))
			h.g.HandleXSIEvent(xev(alice, guestOf(host1, time.Now())))
			if tc.promise != nil {
				h.g.promise(alice, *tc.promise, OriginCTI, tc.owed)
			}
			if _, err := h.g.SetAgentState(context.Background(), csta.Requester{}, login); err != nil {
				t.Fatal(err)
			}
			h.g.rec.mu.Lock()
			p := h.g.rec.promises[alice]
			w, owed := p.want, p.owed
			h.g.rec.mu.Unlock()
			if w.Host != host1 || w.ACD != tc.wantACD || w.Code != tc.wantCode || owed != tc.wantOwed {
				t.Fatalf("promise %+v owed=%v, want %s/%s at %s owed=%v", w, owed, tc.wantACD, tc.wantCode, host1, tc.wantOwed)
			}
		})
	}
}
