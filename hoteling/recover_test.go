package hoteling

import (
	"errors"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

func TestRecover(t *testing.T) {
	halfLoginCFA := scenario{name: "host forwarding to guest, no association", users: []User{
		{ID: "g1", ACDState: xsi.ACDSignOut},
		{ID: "desk1", CFA: fwd(num1)},
	}}
	halfLoginAssoc := scenario{name: "guest associated but signed out", users: []User{
		{ID: "g1", ACDState: xsi.ACDSignOut, HostUserID: "desk1"},
		{ID: "desk1", CFA: fwd(num1), GuestUserID: "g1"},
	}, memory: []Remembered{{HostUserID: "desk1", GuestUserID: "g1", ForwardTo: num1, PreviousCFA: fwd("+15557777")}}}
	clean := scenario{name: "nothing half done", users: []User{
		{ID: "g1", ACDState: xsi.ACDAvailable, HostUserID: "desk1"},
		{ID: "desk1", CFA: fwd(num1), GuestUserID: "g1"},
		{ID: "g2", ACDState: xsi.ACDSignOut},
		{ID: "desk2", CFA: fwd("+15557777")},
	}}
	loggedOff := func(t *testing.T, st map[string]User, hostCFA xsi.Forwarding) {
		t.Helper()
		g, h := st["g1"], st["desk1"]
		if g.HostUserID != "" || h.GuestUserID != "" || g.ACDState != xsi.ACDSignOut || h.CFA.Active != hostCFA.Active ||
			(hostCFA.Active && h.CFA != hostCFA) {
			t.Errorf("not logged off: %+v %+v", g, h)
		}
	}
	tests := []struct {
		sc      scenario
		mode    string
		repairs int
		check   func(t *testing.T, st map[string]User)
	}{
		{halfLoginCFA, RecoverUndo, 1, func(t *testing.T, st map[string]User) { loggedOff(t, st, xsi.Forwarding{}) }},
		{halfLoginCFA, RecoverComplete, 1, func(t *testing.T, st map[string]User) { loggedOnAt(t, st, "g1", "desk1", num1) }},
		{halfLoginAssoc, RecoverUndo, 1, func(t *testing.T, st map[string]User) { loggedOff(t, st, fwd("+15557777")) }},
		{halfLoginAssoc, RecoverComplete, 1, func(t *testing.T, st map[string]User) { loggedOnAt(t, st, "g1", "desk1", num1) }},
		{clean, RecoverUndo, 0, nil},
		{clean, RecoverComplete, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.sc.name+"/"+tt.mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// The remembered CFA was saved by a connector that then
				// crashed: a fresh Sequencer on the same file finds it.
				store := &FileStore{Path: filepath.Join(t.TempDir(), "hosts.json")}
				for _, r := range tt.sc.memory {
					if err := store.Save(r); err != nil {
						t.Fatal(err)
					}
				}
				sc := tt.sc
				sc.memory = nil
				f, s := sc.start(t, Config{RecoverMode: tt.mode, Store: store}, 10*time.Millisecond)
				before := f.snapshot()
				reps := recoverAll(t, s, []string{"g1", "g2", "desk1", "desk2"})
				if len(reps) != tt.repairs {
					t.Fatalf("repairs %+v, want %d", reps, tt.repairs)
				}
				for _, rp := range reps {
					if rp.Err != nil || rp.GuestUserID != "g1" || rp.HostUserID != "desk1" {
						t.Errorf("repair %+v", rp)
					}
				}
				st := f.snapshot()
				if tt.check != nil {
					tt.check(t, st)
				} else if !sameState(st, before) || len(f.actions()) != 0 {
					t.Errorf("changed: %+v, actions %q", st, f.actions())
				}
				left, err := store.Load()
				if err != nil {
					t.Fatal(err)
				}
				if tt.mode == RecoverUndo && len(left) != 0 {
					t.Errorf("store after undo: %+v", left)
				}
				if tt.mode == RecoverComplete && tt.repairs > 0 && (len(left) != 1 || left[0].GuestUserID != "g1") {
					t.Errorf("store after complete: %+v", left)
				}
			})
		})
	}
}

// recoverAll is start-up recovery as the gateway's reconciler runs it:
// each half-done sequence HalfDone finds is promised the shape of
// Config.RecoverMode and settled.
func recoverAll(t *testing.T, s *Sequencer, users []string) []Repair {
	t.Helper()
	var out []Repair
	for _, f := range s.HalfDone(users) {
		w := Want{Guest: f.GuestUserID, LeftHost: f.HostUserID, ACD: xsi.ACDSignOut}
		f.Action = "undone"
		if s.cfg.RecoverMode == RecoverComplete {
			w = Want{Guest: f.GuestUserID, Host: f.HostUserID, ACD: xsi.ACDUnavailable}
			f.Action = "completed"
		}
		acted, err := s.Settle(t.Context(), w, nil)
		if !acted && err == nil {
			continue
		}
		f.Err = err
		out = append(out, f)
	}
	return out
}

// recoverDuringLogin looks for half-done sequences while a login of g1 at
// desk1 (num1) is under way, once desk1 shows reached: the running login
// looks half done (found, when not ""); once it has finished nothing does
// (the gateway leaves users a request is working on to that request).
func recoverDuringLogin(t *testing.T, f *fakeBW, s *Sequencer, reached func(User) bool, found string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- loginErr(s, t.Context(), "g1", "desk1", num1) }()
	if err := f.Await(t.Context(), "desk1", reached); err != nil {
		t.Fatal(err)
	}
	if got := s.HalfDone([]string{"g1", "desk1"}); len(got) != 1 || found != "" && got[0].Found != found {
		t.Fatalf("the running login should look half done (%s), found %+v", found, got)
	}
	if !s.Busy("g1") || !s.Busy("desk1") {
		t.Errorf("the running login's users are not busy")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if reps := recoverAll(t, s, []string{"g1", "desk1"}); len(reps) != 0 {
		t.Errorf("repairs %+v, want none", reps)
	}
	synctest.Wait()
}

// TestRecoverLeavesRunningSequences: recovery after a link loss runs while
// clients work. A login caught between its host CFA and its association
// looks half done; recovery must wait for it and then leave it alone, in
// both modes, and so must a logout caught after ending the association.
func TestRecoverLeavesRunningSequences(t *testing.T) {
	for _, mode := range []string{RecoverUndo, RecoverComplete} {
		t.Run("login/"+mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, s := plain.start(t, Config{RecoverMode: mode}, 10*time.Millisecond)
				// The host CFA step is confirmed, the association not yet.
				recoverDuringLogin(t, f, s, func(u User) bool { return forwardsTo(u.CFA, num1) }, "")
				loggedOnAt(t, f.snapshot(), "g1", "desk1", num1)
			})
		})
		t.Run("logout/"+mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, s := plain.start(t, Config{RecoverMode: mode}, 10*time.Millisecond)
				if err := loginErr(s, t.Context(), "g1", "desk1", num1); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				done := make(chan error, 1)
				go func() { _, err := s.Logout(t.Context(), "g1"); done <- err }()
				// Signed out and association ended, host CFA not yet restored.
				if err := f.Await(t.Context(), "g1", func(u User) bool { return u.HostUserID == "" }); err != nil {
					t.Fatal(err)
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if reps := recoverAll(t, s, []string{"g1", "desk1"}); len(reps) != 0 {
					t.Errorf("repairs %+v, want none", reps)
				}
				synctest.Wait()
				st := f.snapshot()
				if g, h := st["g1"], st["desk1"]; g.HostUserID != "" || h.GuestUserID != "" || signedIn(g) || h.CFA.Active {
					t.Errorf("not logged off: %+v %+v", g, h)
				}
			})
		})
	}
}

// TestSettleLeavesItsFailedAgentStateStep: the agent-state step of a repair
// whose event never comes (applied, unconfirmed) is not undone: undone, it
// would put back the very state the repair was fixing (and overwrite what a
// request set meanwhile). The error carries it as sent and in doubt; the
// caller tries again.
func TestSettleLeavesItsFailedAgentStateStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := scenario{name: "seated, Wrap-Up", users: []User{
			{ID: "g1", ACDState: xsi.ACDWrapUp, HostUserID: "desk1"},
			{ID: "desk1", CFA: fwd(num1), GuestUserID: "g1"},
		}}
		f, s := sc.start(t, Config{StepTimeout: time.Second}, 10*time.Millisecond)
		f.fault = &fault{call: 0, mode: "drop"}
		acted, err := s.Settle(t.Context(), Want{Guest: "g1", Host: "desk1", ACD: xsi.ACDAvailable}, nil)
		var se *StepError
		if !acted || !errors.As(err, &se) {
			t.Fatalf("Settle acted=%v err=%v, want a failed step", acted, err)
		}
		if !se.Sent || len(se.Doubts) != 1 || se.Undo != nil {
			t.Errorf("step error sent=%v doubts=%d undo=%v, want sent, one doubt, no undo", se.Sent, len(se.Doubts), se.Undo)
		}
		if got := f.actions(); len(got) != 1 {
			t.Errorf("actions %q, want only the repair's (no undo)", got)
		}
		if st := f.snapshot()["g1"]; st.ACDState != xsi.ACDAvailable {
			t.Errorf("BroadWorks shows %s, want the repair's Available left in place", st.ACDState)
		}
	})
}
