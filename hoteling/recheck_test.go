package hoteling

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// TestRecheckUndoesLateChanges: a step times out, the sequence undoes
// itself and fails, and then the XSP applies the request it had received
// after all. With RecheckAfter the sequencer looks again and BroadWorks ends
// as before the sequence; without, the late change stays (which is what
// the re-check is for).
func TestRecheckUndoesLateChanges(t *testing.T) {
	timeout := errors.New("xsi: PUT: context deadline exceeded")
	seqs := []struct {
		name  string
		sc    scenario
		run   func(ctx context.Context, s *Sequencer) error
		calls int // the Actions of the sequence to fail, from the first
	}{
		{"login", plain, func(ctx context.Context, s *Sequencer) error { return s.Login(ctx, "g1", "desk1", num1) }, 3},
		{"logout", loggedOn, func(ctx context.Context, s *Sequencer) error { return s.Logout(ctx, "g1") }, 3},
		// The host's sign-out first, then the three above.
		{"login/host agent Unavailable", hostUnavailable, func(ctx context.Context, s *Sequencer) error { return s.Login(ctx, "g1", "desk1", num1) }, 4},
	}
	for _, sq := range seqs {
		for _, recheck := range []time.Duration{0, time.Minute} {
			for n := 0; n < sq.calls; n++ {
				name := sq.name + "/call" + string(rune('0'+n))
				if recheck == 0 {
					name += "/no recheck"
				}
				t.Run(name, func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) {
						f, s := sq.sc.start(t, Config{RecheckAfter: recheck, StepTimeout: 2 * time.Second}, 10*time.Millisecond)
						defer s.Close()
						before := f.snapshot()
						f.fault = &fault{call: n, mode: "late", err: timeout, lateBy: 10 * time.Second}
						if err := sq.run(t.Context(), s); err == nil {
							t.Fatal("the sequence succeeded despite the timeout")
						}
						time.Sleep(2 * time.Minute) // the late change lands, then the re-check runs
						synctest.Wait()
						got := f.snapshot()
						if recheck > 0 && !sameState(got, before) {
							t.Errorf("after the re-check BroadWorks is not as before:\n got %+v\nwant %+v\nactions %q", got, before, f.actions())
						}
						if recheck == 0 && sameState(got, before) {
							t.Errorf("call %d: without the re-check the late change should still show (the fault did not bite): actions %q", n, f.actions())
						}
					})
				})
			}
		}
	}
}

// TestRecheckLeavesLaterSequences: a failed login's step lands late, and
// the agent logs in again (successfully) before the re-check; the re-check
// must not undo that login.
func TestRecheckLeavesLaterSequences(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := plain.start(t, Config{RecheckAfter: time.Minute, StepTimeout: 2 * time.Second}, 10*time.Millisecond)
		defer s.Close()
		f.fault = &fault{call: 2, mode: "late", err: errors.New("xsi: PUT: context deadline exceeded"), lateBy: 10 * time.Second}
		if err := s.Login(t.Context(), "g1", "desk1", num1); err == nil {
			t.Fatal("the login succeeded despite the timeout")
		}
		time.Sleep(15 * time.Second) // the late Unavailable has landed
		f.mu.Lock()
		f.fault = nil
		f.mu.Unlock()
		if err := s.Login(t.Context(), "g1", "desk1", num1); err != nil {
			t.Fatalf("the second login: %v", err)
		}
		time.Sleep(2 * time.Minute) // the re-check of the first
		synctest.Wait()
		loggedOnAt(t, f.snapshot(), "g1", "desk1", num1)
	})
}

// intentView is fakeBW as a gateway that also takes agent-state requests
// of its own (RequestClock, AgentIntents).
type intentView struct {
	*fakeBW
	mu     sync.Mutex
	intent map[string]intent
}

type intent struct {
	state xsi.ACDState
	at    time.Time
}

// request sets user's agent state as a CTI request would: through
// Actions, noted as the user's latest request.
func (v *intentView) request(t *testing.T, user string, state xsi.ACDState) {
	if err := v.fakeBW.SetAgentState(t.Context(), user, state, ""); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	v.intent[user] = intent{state, time.Now()}
	v.mu.Unlock()
}

func (v *intentView) LastRequest(user string) time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.intent[user].at
}

func (v *intentView) AgentIntent(user string) (xsi.ACDState, string, time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.intent[user].state, "", v.intent[user].at
}

// TestRecheckSetsLaterWordAgain: a failed sequence's step lands late over
// what a later sequence or request set on the same part of the same user;
// the re-check sets that later word again (not the failed sequence's
// undo, and not nothing).
func TestRecheckSetsLaterWordAgain(t *testing.T) {
	timeout := errors.New("xsi: PUT: context deadline exceeded")
	tests := []struct {
		name  string
		sc    scenario
		call  int // the failing Action of fail, which lands 10 s late
		fail  func(ctx context.Context, s *Sequencer) error
		later func(t *testing.T, v *intentView, s *Sequencer)
		check func(t *testing.T, st map[string]User)
	}{
		{
			name: "logout's sign-out lands after the agent went Available: Available again",
			sc:   loggedOn,
			fail: func(ctx context.Context, s *Sequencer) error { return s.Logout(ctx, "g1") },
			later: func(t *testing.T, v *intentView, _ *Sequencer) {
				v.request(t, "g1", xsi.ACDWrapUp)
				v.request(t, "g1", xsi.ACDAvailable)
			},
			check: func(t *testing.T, st map[string]User) {
				loggedOnAt(t, st, "g1", "desk1", num1)
				if st["g1"].ACDState != xsi.ACDAvailable {
					t.Fatalf("g1 is %s, want Available (the later request)", st["g1"].ACDState)
				}
			},
		},
		{
			name: "logout's end lands after a later agent-state request: associated again (requests never change associations)",
			sc:   loggedOn,
			call: 2, // sign-out, restore-host-cfa, end-association
			fail: func(ctx context.Context, s *Sequencer) error { return s.Logout(ctx, "g1") },
			later: func(t *testing.T, v *intentView, _ *Sequencer) {
				v.request(t, "g1", xsi.ACDWrapUp)
			},
			check: func(t *testing.T, st map[string]User) {
				loggedOnAt(t, st, "g1", "desk1", num1)
				if st["g1"].ACDState != xsi.ACDWrapUp {
					t.Fatalf("g1 is %s, want Wrap-Up (the later request)", st["g1"].ACDState)
				}
			},
		},
		{
			name: "login's host CFA lands after a later logout: the desk's own forwarding again",
			sc:   plain,
			fail: func(ctx context.Context, s *Sequencer) error { return s.Login(ctx, "g1", "desk1", num1) },
			later: func(t *testing.T, _ *intentView, s *Sequencer) {
				if err := s.Login(t.Context(), "g1", "desk1", num1); err != nil {
					t.Fatalf("second login: %v", err)
				}
				if err := s.Logout(t.Context(), "g1"); err != nil {
					t.Fatalf("logout: %v", err)
				}
			},
			check: func(t *testing.T, st map[string]User) {
				if g, h := st["g1"], st["desk1"]; g.HostUserID != "" || h.GuestUserID != "" || forwardsTo(h.CFA, num1) || g.ACDState != xsi.ACDSignOut {
					t.Fatalf("not logged out: guest %+v host %+v", g, h)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeBW(tt.sc.users, 10*time.Millisecond)
				v := &intentView{fakeBW: f, intent: map[string]intent{}}
				s := New(Config{RecheckAfter: time.Minute, StepTimeout: 2 * time.Second,
					NumberOf: func(g string) string { return numbers[g] }}, f, v, testLogger())
				defer s.Close()
				for _, r := range tt.sc.memory {
					s.remember(r)
				}
				f.fault = &fault{call: tt.call, mode: "late", err: timeout, lateBy: 10 * time.Second}
				if err := tt.fail(t.Context(), s); err == nil {
					t.Fatal("the sequence succeeded despite the timeout")
				}
				time.Sleep(3 * time.Second)
				tt.later(t, v, s)
				time.Sleep(2 * time.Minute) // the late change lands, then the re-check runs
				synctest.Wait()
				tt.check(t, f.snapshot())
			})
		})
	}
}

// TestReleaseLeavesOwnLateEnd: a logout gives up on ending the association,
// and the end lands late. To the gateway it looks like BroadWorks ending
// the association on its own; Release must leave it to the re-check
// (which puts the association back: the client was told the logout
// failed), not sign the agent out and free the desk.
func TestReleaseLeavesOwnLateEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := loggedOn.start(t, Config{RecheckAfter: time.Minute, StepTimeout: 2 * time.Second}, 10*time.Millisecond)
		defer s.Close()
		f.fault = &fault{call: 2, mode: "late", err: errors.New("xsi: PUT: context deadline exceeded"), lateBy: 10 * time.Second}
		if err := s.Logout(t.Context(), "g1"); err == nil {
			t.Fatal("the logout succeeded despite the timeout")
		}
		time.Sleep(15 * time.Second) // the late end has landed
		synctest.Wait()
		if err := s.Release(t.Context(), "g1", "desk1"); !errors.Is(err, ErrOwnEndInDoubt) {
			t.Fatalf("Release = %v, want ErrOwnEndInDoubt", err)
		}
		time.Sleep(2 * time.Minute) // the re-check
		synctest.Wait()
		loggedOnAt(t, f.snapshot(), "g1", "desk1", num1)
		// With nothing in doubt any more, Release acts again.
		if s.endInDoubt("g1") {
			t.Fatal("the end is still in doubt after the re-check")
		}
	})
}

// TestRecheckAfterFailedLogout: the half-done shape a failed logout left
// (its undo failed too) is completed by the re-check, not undone: the
// client was told the logout failed, so the agent stays logged on, in the
// agent state it was last told. After a failed login the same shape is
// undone.
func TestRecheckAfterFailedLogout(t *testing.T) {
	shapes := map[string][]User{
		"signed out": { // associated, signed out, the desk forwarding to g1
			{ID: "g1", ACDState: xsi.ACDSignOut, HostUserID: "desk1"},
			{ID: "desk1", CFA: fwd(num1), GuestUserID: "g1"},
		},
		"desk forwarding elsewhere": { // associated, signed in, the desk's own forwarding back
			{ID: "g1", ACDState: xsi.ACDWrapUp, HostUserID: "desk1"},
			{ID: "desk1", CFA: fwd("+15558888"), GuestUserID: "g1"},
		},
	}
	for name, halfDone := range shapes {
		for _, op := range []string{"logout", "login"} {
			t.Run(name+"/"+op, func(t *testing.T) {
				testRecheckAfterFailure(t, halfDone, op)
			})
		}
	}
}

func testRecheckAfterFailure(t *testing.T, halfDone []User, op string) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBW(halfDone, 10*time.Millisecond)
		v := &intentView{fakeBW: f, intent: map[string]intent{"g1": {xsi.ACDWrapUp, time.Now()}}}
		s := New(Config{RecheckAfter: time.Second, StepTimeout: 2 * time.Second,
			NumberOf: func(g string) string { return numbers[g] }}, f, v, testLogger())
		defer s.Close()
		s.remember(Remembered{HostUserID: "desk1", GuestUserID: "g1", ForwardTo: num1, PreviousCFA: fwd("+15558888")})
		s.scheduleRecheck(op, []string{"g1", "desk1"}, nil)
		time.Sleep(time.Minute)
		synctest.Wait()
		st := f.snapshot()
		if op == "logout" {
			loggedOnAt(t, st, "g1", "desk1", num1)
			if st["g1"].ACDState != xsi.ACDWrapUp {
				t.Fatalf("g1 is %s, want Wrap-Up (last told)", st["g1"].ACDState)
			}
			return
		}
		if g, h := st["g1"], st["desk1"]; g.HostUserID != "" || h.GuestUserID != "" || forwardsTo(h.CFA, num1) || g.ACDState != xsi.ACDSignOut {
			t.Fatalf("not logged out: guest %+v host %+v", g, h)
		}
	})
}
