package hoteling

import (
	"errors"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// TestSettleRecovery: a connector crashed in the middle of a login of g1
// at desk1; the next one settles what its store says of it
// (recoveryWant): undo, at no desk signed out, the desk's own forwarding
// back from the remembered entry; complete, logged on at desk1. A guest at
// no desk with nothing left behind is already as undo promises.
func TestSettleRecovery(t *testing.T) {
	mem := []Remembered{{HostUserID: "desk1", GuestUserID: "g1", ForwardTo: num1, PreviousCFA: fwd("+15557777")}}
	halfLoginCFA := scenario{name: "host forwarding to guest, no association", users: []User{
		{ID: "g1", ACDState: xsi.ACDSignOut},
		{ID: "desk1", CFA: fwd(num1)},
	}, memory: mem}
	halfLoginAssoc := scenario{name: "guest associated but signed out", users: []User{
		{ID: "g1", ACDState: xsi.ACDSignOut, HostUserID: "desk1"},
		{ID: "desk1", CFA: fwd(num1), GuestUserID: "g1"},
	}, memory: mem}
	clean := scenario{name: "nothing half done", users: []User{
		{ID: "g1", ACDState: xsi.ACDSignOut},
		{ID: "desk1", CFA: fwd("+15557777")},
	}, memory: []Remembered{{HostUserID: "desk1", GuestUserID: "g1", ForwardTo: num1, PreviousCFA: fwd("+15557777")}}}
	loggedOff := func(t *testing.T, st map[string]User) {
		t.Helper()
		g, h := st["g1"], st["desk1"]
		if g.HostUserID != "" || h.GuestUserID != "" || g.ACDState != xsi.ACDSignOut || h.CFA != fwd("+15557777") {
			t.Errorf("not logged off: %+v %+v", g, h)
		}
	}
	tests := []struct {
		sc    scenario
		mode  string
		acts  bool
		check func(t *testing.T, st map[string]User)
	}{
		{halfLoginCFA, RecoverUndo, true, loggedOff},
		{halfLoginCFA, RecoverComplete, true, func(t *testing.T, st map[string]User) { loggedOnAt(t, st, "g1", "desk1", num1) }},
		{halfLoginAssoc, RecoverUndo, true, loggedOff},
		{halfLoginAssoc, RecoverComplete, true, func(t *testing.T, st map[string]User) { loggedOnAt(t, st, "g1", "desk1", num1) }},
		{clean, RecoverUndo, false, nil},
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
				f, s := sc.start(t, Config{Store: store}, 10*time.Millisecond)
				before := f.snapshot()
				acted, err := settleRecovery(t, s, tt.mode, "g1", "desk1")
				if acted != tt.acts || err != nil {
					t.Fatalf("Settle acted=%v err=%v, want acted=%v", acted, err, tt.acts)
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
				if tt.acts && tt.mode == RecoverUndo && len(left) != 0 {
					t.Errorf("store after undo: %+v", left)
				}
				if tt.mode == RecoverComplete && (len(left) != 1 || left[0].GuestUserID != "g1") {
					t.Errorf("store after complete: %+v", left)
				}
			})
		})
	}
}

// settleRecovery settles what the gateway's start-up recovery promises
// guest for a sequence at host a crash cut off (recoveryWant): undo, at no
// desk signed out; complete, at host.
func settleRecovery(t *testing.T, s *Sequencer, mode, guest, host string) (bool, error) {
	t.Helper()
	w := Want{Guest: guest, ACD: xsi.ACDSignOut}
	if mode == RecoverComplete {
		w = Want{Guest: guest, Host: host, ACD: xsi.ACDUnavailable}
	}
	return s.Settle(t.Context(), w, nil)
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
