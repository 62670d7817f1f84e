package gateway

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/internal/testlog"
	"github.com/broadworks-connector/connector/xsi"
)

// TestReconciler: the reconciler on the state view with a fake sequencer
// (its Satisfied reads the view; Settle records the promise it was asked to
// keep), in virtual time. Alice is promised Available by a request; then
// BroadWorks shows her signed out.
func TestReconciler(t *testing.T) {
	const alice = "alice@example.com"
	keep := "Settle " + alice + " host= left= acd=Available"
	tests := []struct {
		name string
		// before runs after the promise, before BroadWorks' change
		before func(h *harness)
		// between runs after the change, before the reconciler is let run
		between func(h *harness)
		// held: a request holds alice across the change; whileHeld runs
		// after the change, before the request ends
		held       bool
		whileHeld  func(h *harness)
		wantCalls  []string
		wantKind   string // the one repair counted, "" none
		wantOrigin string // of alice's promise at the end
		wantACD    xsi.ACDState
	}{
		{
			name:       "a change made outside is taken as the promise",
			wantKind:   RepairAdopted,
			wantOrigin: OriginBroadWorks, wantACD: xsi.ACDSignOut,
		},
		{
			name:      "a request given up on, landing late, is undone",
			before:    func(h *harness) { h.g.doubtAgentState(alice, xsi.ACDSignOut, "") },
			wantCalls: []string{keep}, wantKind: RepairLateLanding,
			wantOrigin: OriginCTI, wantACD: xsi.ACDAvailable,
		},
		{
			name: "a doubt past its window explains nothing",
			before: func(h *harness) {
				h.g.doubtAgentState(alice, xsi.ACDSignOut, "")
				time.Sleep(11 * time.Second)
			},
			wantKind:   RepairAdopted,
			wantOrigin: OriginBroadWorks, wantACD: xsi.ACDSignOut,
		},
		{
			// Its events may be held up by the XSP that is down.
			name: "a doubt past its window while an XSP is down still explains",
			before: func(h *harness) {
				h.g.setLinkPartial(true)
				h.g.doubtAgentState(alice, xsi.ACDSignOut, "")
				time.Sleep(11 * time.Second)
			},
			wantCalls: []string{keep}, wantKind: RepairLateLanding,
			wantOrigin: OriginCTI, wantACD: xsi.ACDAvailable,
		},
		{
			// Users whose events may be lost are read again (a scope's
			// sequence gap), and may show the landing only when read.
			name: "a doubt past its window while users are read again still explains",
			before: func(h *harness) {
				h.g.doubtAgentState(alice, xsi.ACDSignOut, "")
				h.g.setRereading(true)
				time.Sleep(15 * time.Second)
				h.g.setRereading(false)
				time.Sleep(3 * time.Second)
			},
			wantCalls: []string{keep}, wantKind: RepairLateLanding,
			wantOrigin: OriginCTI, wantACD: xsi.ACDAvailable,
		},
		{
			// Held-up events (or the users read again) come seconds later.
			name: "a doubt past its window shortly after every XSP is back still explains",
			before: func(h *harness) {
				h.g.setLinkPartial(true)
				h.g.doubtAgentState(alice, xsi.ACDSignOut, "")
				time.Sleep(11 * time.Second)
				h.g.setLinkPartial(false)
				time.Sleep(3 * time.Second)
			},
			wantCalls: []string{keep}, wantKind: RepairLateLanding,
			wantOrigin: OriginCTI, wantACD: xsi.ACDAvailable,
		},
		{
			name: "a doubt past its window once every XSP is back explains nothing",
			before: func(h *harness) {
				h.g.setLinkPartial(true)
				h.g.doubtAgentState(alice, xsi.ACDSignOut, "")
				time.Sleep(11 * time.Second)
				h.g.setLinkPartial(false)
				time.Sleep(10 * time.Second) // a whole window more
			},
			wantKind:   RepairAdopted,
			wantOrigin: OriginBroadWorks, wantACD: xsi.ACDSignOut,
		},
		{
			name:      "a doubt asking for something else explains nothing",
			before:    func(h *harness) { h.g.doubtAgentState(alice, xsi.ACDWrapUp, "") },
			wantKind:  RepairAdopted,
			wantCalls: nil, wantOrigin: OriginBroadWorks, wantACD: xsi.ACDSignOut,
		},
		{
			name: "an owed promise is repaired, not adopted",
			// A request of ours failed and its undo too: owed.
			held:      true,
			whileHeld: func(h *harness) { h.g.owe(alice) },
			wantCalls: []string{keep}, wantKind: RepairOwed,
			wantOrigin: OriginCTI, wantACD: xsi.ACDAvailable,
		},
		{
			// A hot-desk request failed and its undo, confirmed, put back
			// what a lagging view showed (older than the promise).
			name: "what a failed sequence's undo left is repaired, not adopted",
			held: true,
			whileHeld: func(h *harness) {
				h.g.failed(&hoteling.StepError{Op: "logout", Step: "agent-sign-out", Guest: alice, Sent: true}, alice)
			},
			wantCalls: []string{keep}, wantKind: RepairOwed,
			wantOrigin: OriginCTI, wantACD: xsi.ACDAvailable,
		},
		{
			// Nothing sent (refused at admission): nothing of ours.
			name: "a failed sequence that sent nothing owes nothing",
			held: true,
			whileHeld: func(h *harness) {
				h.g.failed(&hoteling.StepError{Op: "logout", Step: "admission", Guest: alice}, alice)
			},
			wantKind:   RepairAdopted,
			wantOrigin: OriginBroadWorks, wantACD: xsi.ACDSignOut,
		},
		{
			name:      "a user a request is working on waits for it",
			before:    func(h *harness) { h.g.doubtAgentState(alice, xsi.ACDSignOut, "") },
			held:      true,
			wantCalls: []string{keep}, wantKind: RepairLateLanding,
			wantOrigin: OriginCTI, wantACD: xsi.ACDAvailable,
		},
		{
			name: "nothing while the link is down; once it is up and fresh again",
			before: func(h *harness) {
				h.g.doubtAgentState(alice, xsi.ACDSignOut, "")
				h.g.SetLinkUp(false)
			},
			between: func(h *harness) {
				time.Sleep(time.Second)
				synctest.Wait()
				if calls := h.hot.Calls(); len(calls) != 0 {
					t.Errorf("repaired while the link is down: %q", calls)
				}
				h.g.SetLinkUp(true)
				h.g.rec.wakeAll()
				synctest.Wait()
				if calls := h.hot.Calls(); len(calls) != 0 {
					t.Errorf("repaired before the view is fresh: %q", calls)
				}
				h.g.HandleXSIEvent(xev(alice, agentSnap("Sign-Out", ""))) // the resync's snapshot
			},
			wantCalls: []string{keep}, wantKind: RepairLateLanding,
			wantOrigin: OriginCTI, wantACD: xsi.ACDAvailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig
				cfg.DoubtWindow = 10 * time.Second
				h := newHarnessConfig(t, cfg)
				h.reconcile(t)
				// The request's change has landed when its promise is made
				// (the request holds the user until then).
				h.g.HandleXSIEvent(xev(alice, agentSnap("Unavailable", "100")))
				h.g.HandleXSIEvent(xev(alice, agentState("Available", "")))
				h.g.promiseAgentState(alice, xsi.ACDAvailable, "", OriginCTI)
				synctest.Wait()
				if tt.before != nil {
					tt.before(h)
				}
				var release func()
				if tt.held {
					release = h.g.hold(context.Background(), alice)
				}
				h.g.HandleXSIEvent(xev(alice, agentState("Sign-Out", "")))
				if tt.held {
					time.Sleep(time.Second)
					synctest.Wait()
					if calls := h.hot.Calls(); len(calls) != 0 {
						t.Errorf("repaired while a request holds alice: %q", calls)
					}
					if tt.whileHeld != nil {
						tt.whileHeld(h)
					}
					release()
				}
				if tt.between != nil {
					tt.between(h)
				}
				time.Sleep(adoptQuiet + 100*time.Millisecond) // an outside change is taken once events are quiet
				synctest.Wait()
				if calls := h.hot.Calls(); !slices.Equal(calls, tt.wantCalls) {
					t.Errorf("sequencer calls %q, want %q", calls, tt.wantCalls)
				}
				counts := h.g.RepairCounts()
				for _, k := range repairKinds {
					want := uint64(0)
					if k == tt.wantKind {
						want = 1
					}
					if counts[k] != want {
						t.Errorf("repairs %s = %d, want %d", k, counts[k], want)
					}
				}
				w, origin, ok := h.g.Promise(alice)
				if !ok || origin != tt.wantOrigin || w.ACD != tt.wantACD {
					t.Errorf("promise %+v from %q, want %s from %s", w, origin, tt.wantACD, tt.wantOrigin)
				}
			})
		})
	}
}

// TestReconcilerRetriesFailedRepairs: a repair that fails is tried again,
// later each time, while the promise stands; a new promise ends it.
func TestReconcilerRetriesFailedRepairs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const alice = "alice@example.com"
		h := newHarness(t)
		h.reconcile(t)
		h.hot.err = errors.New("XSP unreachable")
		h.g.HandleXSIEvent(xev(alice, agentSnap("Available", "")))
		h.g.promiseAgentState(alice, xsi.ACDAvailable, "", OriginCTI)
		synctest.Wait()
		// A request of ours failed, its undo too: owed from its end.
		release := h.g.hold(context.Background(), alice)
		h.g.HandleXSIEvent(xev(alice, agentState("Sign-Out", "")))
		h.g.owe(alice)
		release()
		synctest.Wait()
		var at []time.Duration
		start := time.Now()
		for n := len(h.hot.Calls()); time.Since(start) < 10*time.Second; {
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			if m := len(h.hot.Calls()); m != n {
				at = append(at, time.Since(start).Round(500*time.Millisecond))
				n = m
			}
		}
		// 1 s, then 2 s, then 4 s later (0.5 s << tries).
		if want := []time.Duration{time.Second, 3 * time.Second, 7 * time.Second}; !slices.Equal(at, want) {
			t.Errorf("retries at %v, want %v", at, want)
		}
		if n := h.g.RepairCounts()[RepairFailed]; n < 3 {
			t.Errorf("failed repairs counted %d, want at least 3", n)
		}
		// The agent is told something new: the old promise is no longer
		// tried.
		h.g.promiseAgentState(alice, xsi.ACDSignOut, "", OriginCTI)
		calls := len(h.hot.Calls())
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := len(h.hot.Calls()); got != calls {
			t.Errorf("%d more repairs after the new promise: %q", got-calls, h.hot.Calls()[calls:])
		}
	})
}

// TestReconcilerReleasesDesk: BroadWorks ends an association on its own:
// the desk is released once; a guest nobody promised anything (associated
// before the connector started) too.
func TestReconcilerReleasesDesk(t *testing.T) {
	for _, promised := range []bool{true, false} {
		t.Run(map[bool]string{true: "promised", false: "associated-before"}[promised], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const alice, host = "alice@example.com", "host1@example.com"
				h := newHarness(t)
				h.reconcile(t)
				h.g.HandleXSIEvent(xev(alice, agentSnap("Unavailable", "100")))
				h.g.HandleXSIEvent(xev(alice, guestOf(host, time.Now())))
				if promised {
					h.g.promise(alice, hoteling.Want{Host: host, ForwardTo: "+15550001", ACD: xsi.ACDUnavailable}, OriginCTI, false)
				}
				synctest.Wait()
				h.g.HandleXSIEvent(xev(alice, &xsi.HotelingGuestEvent{Active: true}))
				time.Sleep(time.Second)
				synctest.Wait()
				want := []string{"Settle " + alice + " host= left=" + host + " acd=Sign-Out"}
				if calls := h.hot.Calls(); !slices.Equal(calls[:min(1, len(calls))], want) {
					t.Errorf("sequencer calls %q, want %q", calls, want)
				}
				if n := h.g.RepairCounts()[RepairReleased]; n != 1 {
					t.Errorf("desks released %d, want 1", n)
				}
			})
		})
	}
}

// TestReconcilerRepairRacingRequest: a request makes a newer promise while
// a repair of the older one waits for the sequencer's locks: the older is
// not kept (Settle's current check), and the newer is owed (the repair may
// have overwritten it: an agent-state request takes no sequencer lock).
func TestReconcilerRepairRacingRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const alice = "alice@example.com"
		h := promisedAvailable(t, alice)
		h.hot.mu.Lock()
		h.hot.onSettle = func() { h.g.promiseAgentState(alice, xsi.ACDWrapUp, "", OriginCTI) }
		h.hot.mu.Unlock()
		release := h.g.hold(context.Background(), alice)
		h.g.HandleXSIEvent(xev(alice, agentState("Sign-Out", "")))
		h.g.owe(alice)
		release()
		time.Sleep(time.Second)
		synctest.Wait()
		want := []string{"Settle " + alice + " host= left= acd=Wrap-Up"}
		if calls := h.hot.Calls(); !slices.Equal(calls, want) {
			t.Errorf("sequencer calls %q, want %q (the older promise not kept, the newer one repaired)", calls, want)
		}
		if w, origin, _ := h.g.Promise(alice); w.ACD != xsi.ACDWrapUp || origin != OriginCTI {
			t.Errorf("promise %+v from %s, want Wrap-Up from the request", w, origin)
		}
	})
}

// memPromises is a PromiseStore in memory.
type memPromises struct {
	mu    sync.Mutex
	saved map[string][]byte
	ops   []string
}

func (m *memPromises) SavePromise(user string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.saved == nil {
		m.saved = map[string][]byte{}
	}
	m.saved[user] = value
	m.ops = append(m.ops, "save "+user)
	return nil
}

func (m *memPromises) DeletePromise(user string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.saved, user)
	m.ops = append(m.ops, "delete "+user)
	return nil
}

func (m *memPromises) LoadPromises() (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.saved), nil
}

// TestPromisesKeptAcrossACrash: a promise the reconciler has work on is in
// the store until it is kept (and only then: a kept one costs no write);
// a connector started on that store takes it, owed, and keeps it.
func TestPromisesKeptAcrossACrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const alice = "alice@example.com"
		store := &memPromises{}
		h := newHarness(t)
		h.g.deps.Promises = store
		h.g.HandleXSIEvent(xev(alice, agentSnap("Available", "")))
		h.g.promiseAgentState(alice, xsi.ACDAvailable, "", OriginCTI)
		if len(store.ops) != 0 {
			t.Fatalf("a kept promise was written: %q", store.ops)
		}
		h.g.owe(alice) // a failed undo: work left
		if _, ok := store.saved[alice]; !ok {
			t.Fatalf("the owed promise is not in the store: %q", store.ops)
		}
		// The connector dies here. The next one, on the same store:
		next := newHarness(t)
		next.g.deps.Promises = store
		next.reconcile(t)
		next.g.HandleXSIEvent(xev(alice, agentSnap("Sign-Out", "")))
		if n := next.g.loadPromises(); n != 1 {
			t.Fatalf("loaded %d promises, want 1", n)
		}
		next.g.rec.wakeAll()
		synctest.Wait()
		want := []string{"Settle " + alice + " host= left= acd=Available"}
		if calls := next.hot.Calls(); !slices.Equal(calls, want) {
			t.Errorf("sequencer calls %q, want %q", calls, want)
		}
		// Kept (the fake's Settle counts as done): gone from the store.
		next.g.rec.wake(alice)
		synctest.Wait()
		if _, ok := store.saved[alice]; ok {
			t.Errorf("the kept promise is still in the store: %q", store.ops)
		}
	})
}

// TestOwedKeptWhileADoubtMayLand: an owed promise the view shows stays owed
// while a change of ours given up on may still show: the view may lag
// BroadWorks, and what it shows next (here an agent state older than the
// promise, which an undo put back) is ours to repair, not an outside
// change. Once the doubt has ended, the promise shown is kept no more.
func TestOwedKeptWhileADoubtMayLand(t *testing.T) {
	const alice = "alice@example.com"
	keep := "Settle " + alice + " host= left= acd=Available"
	for _, tc := range []struct {
		name     string
		after    time.Duration // from the doubt to the view's change
		wantKind string
	}{
		{"within the doubt's window", 5 * time.Second, RepairOwed},
		{"after the doubt's window", 12 * time.Second, RepairAdopted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig
				cfg.DoubtWindow = 10 * time.Second
				h := newHarnessConfig(t, cfg)
				h.reconcile(t)
				h.g.HandleXSIEvent(xev(alice, agentSnap("Available", "")))
				h.g.promiseAgentState(alice, xsi.ACDAvailable, "", OriginCTI)
				synctest.Wait()
				release := h.g.hold(context.Background(), alice)
				h.g.failed(&hoteling.StepError{Op: "logout", Step: "agent-sign-out", Guest: alice, Sent: true,
					Doubts: []hoteling.Doubt{{User: alice, Step: "agent-sign-out", Shows: func(u hoteling.User) bool { return u.ACDState == xsi.ACDSignOut }}}}, alice)
				release()
				time.Sleep(tc.after)
				synctest.Wait()
				h.g.HandleXSIEvent(xev(alice, agentState("Wrap-Up", "")))
				time.Sleep(adoptQuiet + 100*time.Millisecond) // an outside change is taken once events are quiet
				synctest.Wait()
				var want []string
				if tc.wantKind == RepairOwed {
					want = []string{keep}
				}
				if calls := h.hot.Calls(); !slices.Equal(calls, want) {
					t.Errorf("sequencer calls %q, want %q", calls, want)
				}
				if n := h.g.RepairCounts()[tc.wantKind]; n != 1 {
					t.Errorf("repairs %s = %d, want 1 (%v)", tc.wantKind, n, h.g.RepairCounts())
				}
			})
		})
	}
}

// TestAdoptedAgentStateKeepsTheDesk: BroadWorks changing only the agent
// state of an agent logged in at a desk (its ACD after a call, a
// supervisor) is taken as the promise with the desk kept whole — not as an
// association only, which would leave the desk's forwarding no longer
// promised (and a later failed sequence's undo of it unrepaired).
func TestAdoptedAgentStateKeepsTheDesk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const alice, host1 = "alice@example.com", "host1@example.com"
		h := newHarness(t)
		h.reconcile(t)
		h.g.HandleXSIEvent(xev(alice, agentSnap("Available", "")))
		h.g.HandleXSIEvent(xev(alice, guestOf(host1, time.Now())))
		h.g.promise(alice, hoteling.Want{Host: host1, ForwardTo: "+15550001", ACD: xsi.ACDAvailable}, OriginCTI, false)
		synctest.Wait()
		h.g.HandleXSIEvent(xev(alice, agentState("Wrap-Up", "")))
		time.Sleep(adoptQuiet + 100*time.Millisecond) // an outside change is taken once events are quiet
		synctest.Wait()
		w, origin, _ := h.g.Promise(alice)
		if w.Host != host1 || w.Loose || w.ForwardTo != "+15550001" || w.ACD != xsi.ACDWrapUp || origin != OriginBroadWorks {
			t.Fatalf("promise %+v from %s, want Wrap-Up logged in at %s (whole) from BroadWorks", w, origin, host1)
		}
		if calls := h.hot.Calls(); len(calls) != 0 {
			t.Errorf("sequencer calls %q, want none (adopted)", calls)
		}
	})
}

// TestLateEventOfAnEarlierRequest: Available → LUNCH → Available, each
// answered on its 200; LUNCH's event arrives after the second Available was
// answered. The view keeps showing Available (the request's own event has
// not come: the Available the view showed when it was sent is not its
// confirmation) and the reconciler takes nothing for an outside change.
func TestLateEventOfAnEarlierRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const alice = "alice@example.com"
		h := newHarness(t)
		h.reconcile(t)
		h.g.HandleXSIEvent(xev(alice, agentSnap("Available", "")))
		set := func(st csta.ReqAgentState, reason string) {
			t.Helper()
			if _, err := h.g.SetAgentState(context.Background(), csta.Requester{}, &csta.SetAgentState{Device: "+15550001", RequestedState: st, AgentID: "A1", ReasonCode: reason}); err != nil {
				t.Fatal(err)
			}
		}
		set(csta.ReqNotReady, "lunch")
		set(csta.ReqReady, "")
		h.g.HandleXSIEvent(xev(alice, agentState("Unavailable", "100"))) // LUNCH's, late
		time.Sleep(adoptQuiet + 100*time.Millisecond)                    // an outside change is taken once events are quiet
		synctest.Wait()
		if v := h.g.User(alice); v.ACDState != xsi.ACDAvailable {
			t.Errorf("view shows %s, want Available (the last request's, its event to come)", v.ACDState)
		}
		if n := h.g.RepairCounts()[RepairAdopted]; n != 0 {
			t.Errorf("%d outside changes taken", n)
		}
		h.g.HandleXSIEvent(xev(alice, agentState("Available", ""))) // its own
		time.Sleep(adoptQuiet + 100*time.Millisecond)               // an outside change is taken once events are quiet
		synctest.Wait()
		if w, origin, _ := h.g.Promise(alice); w.ACD != xsi.ACDAvailable || origin != OriginCTI {
			t.Errorf("promise %+v from %s, want Available from the request", w, origin)
		}
		if n := h.g.RepairCounts()[RepairAdopted]; n != 0 {
			t.Errorf("%d outside changes taken", n)
		}
	})
}

// TestNoAdoptionWhileEventsComeIn: late events arrive in a burst (a channel
// lost and its events redelivered on another) and the view passes through
// an older state on its way to the promised one: nothing is taken for an
// outside change, since the difference is judged once the events have been
// quiet for adoptQuiet. One that stands after that is taken.
func TestNoAdoptionWhileEventsComeIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const alice = "alice@example.com"
		h := promisedAvailable(t, alice)
		h.g.HandleXSIEvent(xev(alice, agentState("Unavailable", "100"))) // late
		time.Sleep(adoptQuiet / 2)
		h.g.HandleXSIEvent(xev(alice, agentState("Available", ""))) // the last
		time.Sleep(2 * adoptQuiet)
		synctest.Wait()
		if n := h.g.RepairCounts()[RepairAdopted]; n != 0 {
			t.Errorf("%d outside changes taken from a burst of late events", n)
		}
		h.g.HandleXSIEvent(xev(alice, agentState("Wrap-Up", ""))) // one that stands
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.g.Settle(ctx); err != nil {
			t.Fatal(err)
		}
		if w, origin, _ := h.g.Promise(alice); w.ACD != xsi.ACDWrapUp || origin != OriginBroadWorks {
			t.Errorf("promise %+v from %s, want Wrap-Up taken from BroadWorks", w, origin)
		}
	})
}

// TestRequestForTheStateAlreadyThere: a request for the agent state the
// agent already has changes nothing and gets no event; it must not stand in
// the view (read-your-writes) and hide the next real change — the sign-out
// of a hot-desk logout that follows at once waits for exactly that.
func TestRequestForTheStateAlreadyThere(t *testing.T) {
	const alice = "alice@example.com"
	h := newHarness(t)
	h.g.HandleXSIEvent(xev(alice, agentSnap("Unavailable", "999")))
	if _, err := h.g.SetAgentState(context.Background(), csta.Requester{}, &csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqNotReady, AgentID: "A1"}); err != nil {
		t.Fatal(err)
	}
	h.g.HandleXSIEvent(xev(alice, agentState("Sign-Out", ""))) // a logout's step
	if v := h.g.User(alice); v.ACDState != xsi.ACDSignOut {
		t.Fatalf("view shows %s, want the Sign-Out that followed", v.ACDState)
	}
}

// promisedAvailable is a harness with its reconciler running and user
// Available, as a request promised it (inside a synctest bubble).
func promisedAvailable(t *testing.T, user string) *harness {
	t.Helper()
	h := newHarness(t)
	h.reconcile(t)
	h.g.HandleXSIEvent(xev(user, agentSnap("Available", "")))
	h.g.promiseAgentState(user, xsi.ACDAvailable, "", OriginCTI)
	synctest.Wait()
	return h
}

// TestDeskEventsWakeTheAgentsNamingIt: a desk's events wake the agents whose
// promise or doubts name the desk, exactly while they do.
func TestDeskEventsWakeTheAgentsNamingIt(t *testing.T) {
	r := newReconciler(nil)
	queued := func(desk string) []string {
		r.mu.Lock()
		r.queue, r.queued = nil, map[string]bool{}
		r.mu.Unlock()
		r.wake(desk)
		r.mu.Lock()
		defer r.mu.Unlock()
		return slices.Sorted(slices.Values(r.queue))
	}
	r.mu.Lock()
	r.setLocked("a1", hoteling.Want{Host: "d1"}, OriginCTI, false)
	r.setLocked("a2", hoteling.Want{LeftHost: "d1", ACD: xsi.ACDSignOut}, OriginCTI, false)
	r.mu.Unlock()
	if got := queued("d1"); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Fatalf("woken by d1: %v", got)
	}
	r.mu.Lock()
	r.setLocked("a1", hoteling.Want{Host: "d2"}, OriginCTI, false)
	r.promises["a2"].doubts = []doubtAt{{d: hoteling.Doubt{User: "d3"}}}
	r.rewatchLocked("a2", "d3")
	r.mu.Unlock()
	if got := queued("d1"); !slices.Equal(got, []string{"a2"}) {
		t.Fatalf("woken by d1 once a1 moved to d2: %v", got)
	}
	if got := queued("d3"); !slices.Equal(got, []string{"a2"}) {
		t.Fatalf("woken by d3 (a doubt on it): %v", got)
	}
	if !r.keeps("d3") || r.keeps("d2") {
		t.Fatal("a desk is kept loaded while an agent naming it has work left (doubts), and only then")
	}
	r.mu.Lock()
	r.promises["a2"].doubts = nil
	r.rewatchLocked("a2", "d3")
	r.setLocked("a2", hoteling.Want{ACD: xsi.ACDAvailable}, OriginCTI, false)
	r.mu.Unlock()
	r.forget("a1")
	if got := queued("d1"); len(got) != 0 {
		t.Fatalf("woken by d1 with no promise naming it: %v", got)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.watchers) != 0 {
		t.Fatalf("watchers left: %v", r.watchers)
	}
}

// TestAdoptionWhenEventsNeverStop: a difference waits for the user's events
// to be quiet, but not for ever: events that never stop for adoptQuiet are
// judged as they are after maxQuietWait.
func TestAdoptionWhenEventsNeverStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const alice = "alice@example.com"
		h := promisedAvailable(t, alice)
		start := time.Now()
		states := []string{"Unavailable", "Wrap-Up"}
		for i := 0; time.Since(start) < maxQuietWait+5*time.Second; i++ {
			h.g.HandleXSIEvent(xev(alice, agentState(states[i%2], "")))
			time.Sleep(adoptQuiet / 2)
			synctest.Wait()
			if n := h.g.RepairCounts()[RepairAdopted]; n > 0 {
				if took := time.Since(start); took < maxQuietWait {
					t.Fatalf("taken after %v of unquiet events, before maxQuietWait", took)
				}
				return
			}
		}
		t.Fatalf("no outside change taken after %v of events that never stop", time.Since(start))
	})
}

// TestAdoptionOnlyOfWhatBroadWorksSays: an event delivered after a newer
// read takes the view back to a state of ours long replaced (the long
// fault campaign's expiry-under-load); before the difference is taken for
// an outside change the user is read again, and BroadWorks says the
// promise holds. A real outside change is read too, and taken.
func TestAdoptionOnlyOfWhatBroadWorksSays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const alice = "alice@example.com"
		h := newHarnessConfig(t, loadConfig)
		defer h.g.Close()
		var logs testlog.Buffer
		h.g.log = slog.New(slog.NewTextHandler(&logs, nil))
		h.reconcile(t)
		h.act.cc = xsi.CallCenter{AgentACDState: xsi.ACDAvailable}
		const wentBack = "BroadWorks, read again, shows the promise"
		if err := h.g.ensure(context.Background(), alice); err != nil {
			t.Fatal(err)
		}
		h.g.promiseAgentState(alice, xsi.ACDAvailable, "", OriginCTI)
		synctest.Wait()
		reads := func() int { return count(h.act.Calls(), "GetCallCenter "+alice) }
		before := reads()

		h.g.HandleXSIEvent(xev(alice, agentState("Unavailable", "MEETING"))) // late, of an earlier request
		h.settle(t)
		if n := h.g.RepairCounts()[RepairAdopted]; n != 0 {
			t.Errorf("%d outside changes taken from a view gone back", n)
		}
		if w, origin, _ := h.g.Promise(alice); w.ACD != xsi.ACDAvailable || origin != OriginCTI {
			t.Errorf("promise %+v from %s, want Available from cti", w, origin)
		}
		if v := h.g.User(alice); v.ACDState != xsi.ACDAvailable {
			t.Errorf("view shows %s after the read, want BroadWorks' Available", v.ACDState)
		}
		if reads() == before {
			t.Error("BroadWorks was not read before the judgement")
		}
		if n := strings.Count(logs.String(), wentBack); n != 1 {
			t.Errorf("the view that went back logged %d times, want once:\n%s", n, logs.String())
		}

		h.act.cc = xsi.CallCenter{AgentACDState: xsi.ACDUnavailable, AgentUnavailableCode: "MEETING"}
		h.g.HandleXSIEvent(xev(alice, agentState("Unavailable", "MEETING"))) // the supervisor's
		h.settle(t)
		if w, origin, _ := h.g.Promise(alice); w.ACD != xsi.ACDUnavailable || w.Code != "MEETING" || origin != OriginBroadWorks {
			t.Errorf("promise %+v from %s, want Unavailable/MEETING taken from BroadWorks", w, origin)
		}
		if n := strings.Count(logs.String(), wentBack); n != 1 {
			t.Errorf("a real outside change logged as a view that went back (%d lines)", n)
		}
	})
}
