package hoteling

import (
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// hostAgentAt is the plain scenario with desk1, the host subscriber, a
// call-center agent in state (and code).
func hostAgentAt(state xsi.ACDState, code string) scenario {
	name := "host agent " + string(state)
	if state == "" {
		name = "host not an agent"
	}
	if code != "" {
		name += " " + code
	}
	return scenario{name: name, users: []User{
		{ID: "g1", ACDState: xsi.ACDSignOut},
		{ID: "desk1", CFA: off("+15559999"), ACDState: state, UnavailableCode: code},
	}}
}

var (
	hostAvailable   = hostAgentAt(xsi.ACDAvailable, "")
	hostUnavailable = hostAgentAt(xsi.ACDUnavailable, "LUNCH")
	hostWrapUp      = hostAgentAt(xsi.ACDWrapUp, "")
	hostSignedOut   = hostAgentAt(xsi.ACDSignOut, "")
	// takeoverHostIn: g2 sits at desk1, whose own agent was signed in
	// (by someone else) meanwhile.
	takeoverHostIn = scenario{name: "host held by another guest, host agent signed in", users: []User{
		{ID: "g1", ACDState: xsi.ACDSignOut},
		{ID: "g2", ACDState: xsi.ACDUnavailable, UnavailableCode: "LUNCH", HostUserID: "desk1"},
		{ID: "desk1", CFA: fwd(num2), GuestUserID: "g2", ACDState: xsi.ACDAvailable},
	}, memory: []Remembered{{HostUserID: "desk1", GuestUserID: "g2", ForwardTo: num2, PreviousCFA: off("+15559999")}}}
)

// TestHostSignOut: a hot-desk login signs the host subscriber out first
// when it is an agent signed in (whatever its state), and sends nothing to
// a host that is signed out or no agent; the four steps go in the
// documented order; Logout does not sign the host back in; nothing is left
// owed to the host once the login is done.
func TestHostSignOut(t *testing.T) {
	login := []string{"SetCFA desk1 true " + num1, "Associate g1 desk1", "SetAgentState g1 Unavailable "}
	withSignOut := append([]string{"SetAgentState desk1 Sign-Out "}, login...)
	tests := []struct {
		sc   scenario
		want []string
	}{
		{hostAvailable, withSignOut},
		{hostUnavailable, withSignOut},
		{hostWrapUp, withSignOut},
		{hostAgentAt(xsi.ACDSignIn, ""), withSignOut},
		{hostSignedOut, login},
		{hostAgentAt("", ""), login},
		{takeoverHostIn, append([]string{"SetAgentState g2 Sign-Out ", "SetCFA desk1 false +15559999", "End g2"}, withSignOut...)},
	}
	for _, tt := range tests {
		t.Run(tt.sc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, s := tt.sc.start(t, Config{}, 10*time.Millisecond)
				hostBefore := f.snapshot()["desk1"].ACDState
				if err := loginErr(s, t.Context(), "g1", "desk1", num1); err != nil {
					t.Fatal(err)
				}
				if got := f.actions(); !slices.Equal(got, tt.want) {
					t.Errorf("actions:\n got %q\nwant %q", got, tt.want)
				}
				st := f.snapshot()
				loggedOnAt(t, st, "g1", "desk1", num1)
				wantHost := xsi.ACDSignOut
				if hostBefore == "" {
					wantHost = ""
				}
				if st["desk1"].ACDState != wantHost || st["desk1"].UnavailableCode != "" {
					t.Errorf("host after login: %s %q, want %s", st["desk1"].ACDState, st["desk1"].UnavailableCode, wantHost)
				}
				if r, ok := s.Remembered("desk1"); !ok || r.HostAgentState != "" || r.HostUnavailableCode != "" {
					t.Errorf("remembered after the login %+v %v: nothing is owed to the host any more", r, ok)
				}
				n := len(f.actions())
				if _, err := s.Logout(t.Context(), "g1"); err != nil {
					t.Fatal(err)
				}
				for _, a := range f.actions()[n:] {
					if strings.HasPrefix(a, "SetAgentState desk1") {
						t.Errorf("logout sent %q: the host is not signed back in at logout", a)
					}
				}
				if got := f.snapshot()["desk1"].ACDState; got != wantHost {
					t.Errorf("host after logout: %s, want %s", got, wantHost)
				}
			})
		})
	}
}

// TestHostSignOutCompensation: a later step of the login fails (refused,
// so that step needs no undo); the completed steps are undone newest first
// and the host subscriber is signed back in to exactly its previous state
// and code, last.
func TestHostSignOutCompensation(t *testing.T) {
	refusedErr := &xsi.Error{Method: "PUT", Status: 400}
	for _, sc := range []scenario{hostAvailable, hostUnavailable, hostWrapUp} {
		h := sc.users[1]
		restore := "SetAgentState desk1 " + string(h.ACDState) + " " + h.UnavailableCode
		tests := []struct {
			call int
			step string
			want []string
		}{
			{1, "host-cfa", []string{"SetAgentState desk1 Sign-Out ", "SetCFA desk1 true " + num1, restore}},
			{2, "associate", []string{"SetAgentState desk1 Sign-Out ", "SetCFA desk1 true " + num1, "Associate g1 desk1",
				"SetCFA desk1 false +15559999", restore}},
			{3, "agent-unavailable", []string{"SetAgentState desk1 Sign-Out ", "SetCFA desk1 true " + num1, "Associate g1 desk1",
				"SetAgentState g1 Unavailable ", "End g1", "SetCFA desk1 false +15559999", restore}},
		}
		for _, tt := range tests {
			t.Run(sc.name+"/"+tt.step, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					f, s := sc.start(t, Config{}, 10*time.Millisecond)
					before := f.snapshot()
					f.fault = &fault{call: tt.call, mode: "error", err: refusedErr}
					err := loginErr(s, t.Context(), "g1", "desk1", num1)
					var se *StepError
					if !errors.As(err, &se) || se.Step != tt.step || se.Undo != nil {
						t.Fatalf("err %v, want a failed %s fully undone", err, tt.step)
					}
					if got := f.actions(); !slices.Equal(got, tt.want) {
						t.Errorf("actions:\n got %q\nwant %q", got, tt.want)
					}
					if got := f.snapshot(); !sameState(got, before) {
						t.Errorf("not restored:\n got %+v\nwant %+v", got, before)
					}
					if _, ok := s.Remembered("desk1"); ok {
						t.Error("desk1 remembered after a failed login")
					}
				})
			})
		}
	}
}

// TestHostSignOutFailure: the host's sign-out itself fails; nothing else
// is sent and the error names the step.
func TestHostSignOutFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := hostUnavailable.start(t, Config{}, 10*time.Millisecond)
		before := f.snapshot()
		f.fault = &fault{call: 0, mode: "error", err: &xsi.Error{Method: "PUT", Status: 404}}
		err := loginErr(s, t.Context(), "g1", "desk1", num1)
		var se *StepError
		if !errors.As(err, &se) || se.Step != StepHostSignOut || !errors.Is(err, ErrUnknownUser) {
			t.Fatalf("err %v, want host-sign-out failed, unknown user", err)
		}
		if got, want := f.actions(), []string{"SetAgentState desk1 Sign-Out "}; !slices.Equal(got, want) {
			t.Errorf("actions %q, want %q", got, want)
		}
		if !maps.Equal(f.snapshot(), before) {
			t.Errorf("changed: %+v", f.snapshot())
		}
	})
}

// TestHostSignedInDuringStay: the agent is logged on at desk1 and the host
// subscriber was signed in since (a supervisor, the portal); a login again
// is no longer a no-op: it signs the host out, and only that.
func TestHostSignedInDuringStay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := scenario{users: []User{
			{ID: "g1", ACDState: xsi.ACDAvailable, HostUserID: "desk1"},
			{ID: "desk1", CFA: fwd(num1), GuestUserID: "g1", ACDState: xsi.ACDWrapUp},
		}, memory: loggedOn.memory}
		f, s := sc.start(t, Config{}, time.Millisecond)
		if err := loginErr(s, t.Context(), "g1", "desk1", num1); err != nil {
			t.Fatal(err)
		}
		if got, want := f.actions(), []string{"SetAgentState desk1 Sign-Out "}; !slices.Equal(got, want) {
			t.Errorf("actions %q, want %q", got, want)
		}
		if r, _ := s.Remembered("desk1"); r != loggedOn.memory[0] {
			t.Errorf("remembered %+v, want %+v unchanged", r, loggedOn.memory[0])
		}
		// And again: now a no-op.
		if err := loginErr(s, t.Context(), "g1", "desk1", num1); err != nil || len(f.actions()) != 1 {
			t.Errorf("third login: %v, actions %q", err, f.actions())
		}
	})
}

// TestRecoverHostSignedOut: a connector crashed after a login signed the
// host subscriber out (and maybe set its CFA); a fresh Sequencer on the
// same store settles what the gateway's recovery promises the guest. Undo signs the host back in to its previous state
// and code; complete carries the login on and owes the host nothing.
func TestRecoverHostSignedOut(t *testing.T) {
	mem := Remembered{HostUserID: "desk1", GuestUserID: "g1", ForwardTo: num1, PreviousCFA: off("+15559999"),
		HostAgentState: xsi.ACDUnavailable, HostUnavailableCode: "LUNCH"}
	afterSignOut := scenario{name: "stopped after the host's sign-out", users: []User{
		{ID: "g1", ACDState: xsi.ACDSignOut},
		{ID: "desk1", CFA: off("+15559999"), ACDState: xsi.ACDSignOut},
	}, memory: []Remembered{mem}}
	afterCFA := scenario{name: "stopped after the host CFA", users: []User{
		{ID: "g1", ACDState: xsi.ACDSignOut},
		{ID: "desk1", CFA: fwd(num1), ACDState: xsi.ACDSignOut},
	}, memory: []Remembered{mem}}
	afterAssoc := scenario{name: "stopped after the association", users: []User{
		{ID: "g1", ACDState: xsi.ACDSignOut, HostUserID: "desk1"},
		{ID: "desk1", CFA: fwd(num1), GuestUserID: "g1", ACDState: xsi.ACDSignOut},
	}, memory: []Remembered{mem}}
	hostBack := func(t *testing.T, st map[string]User) {
		t.Helper()
		g, h := st["g1"], st["desk1"]
		if g.HostUserID != "" || signedIn(g) || h.GuestUserID != "" || h.CFA.Active ||
			h.ACDState != xsi.ACDUnavailable || h.UnavailableCode != "LUNCH" {
			t.Errorf("not as before the login: %+v %+v", g, h)
		}
	}
	tests := []struct {
		sc    scenario
		mode  string
		want  []string
		check func(t *testing.T, st map[string]User)
	}{
		{afterSignOut, RecoverUndo, []string{"SetAgentState desk1 Unavailable LUNCH"}, hostBack},
		{afterSignOut, RecoverComplete,
			[]string{"SetCFA desk1 true " + num1, "Associate g1 desk1", "SetAgentState g1 Unavailable "}, nil},
		{afterCFA, RecoverUndo, []string{"SetCFA desk1 false +15559999", "SetAgentState desk1 Unavailable LUNCH"}, hostBack},
		{afterCFA, RecoverComplete, []string{"Associate g1 desk1", "SetAgentState g1 Unavailable "}, nil},
		{afterAssoc, RecoverUndo,
			[]string{"SetCFA desk1 false +15559999", "End g1", "SetAgentState desk1 Unavailable LUNCH"}, hostBack},
		{afterAssoc, RecoverComplete, []string{"SetAgentState g1 Unavailable "}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.sc.name+"/"+tt.mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := &FileStore{Path: filepath.Join(t.TempDir(), "hosts.json")}
				if err := store.Save(mem); err != nil {
					t.Fatal(err)
				}
				sc := tt.sc
				sc.memory = nil
				f, s := sc.start(t, Config{Store: store}, 10*time.Millisecond)
				if acted, err := settleRecovery(t, s, tt.mode, "g1", "desk1"); !acted || err != nil {
					t.Fatalf("Settle acted=%v err=%v, want a repair", acted, err)
				}
				if got := f.actions(); !slices.Equal(got, tt.want) {
					t.Errorf("actions:\n got %q\nwant %q", got, tt.want)
				}
				st := f.snapshot()
				left, err := store.Load()
				if err != nil {
					t.Fatal(err)
				}
				if tt.check != nil {
					tt.check(t, st)
					if len(left) != 0 {
						t.Errorf("store after undo: %+v", left)
					}
				} else {
					loggedOnAt(t, st, "g1", "desk1", num1)
					if st["desk1"].ACDState != xsi.ACDSignOut {
						t.Errorf("host %s after completing, want Sign-Out", st["desk1"].ACDState)
					}
					want := mem
					want.HostAgentState, want.HostUnavailableCode = "", ""
					if len(left) != 1 || left[0] != want {
						t.Errorf("store after complete: %+v, want %+v", left, want)
					}
				}
				// Nothing half done any more.
				if acted, err := settleRecovery(t, s, tt.mode, "g1", "desk1"); acted || err != nil {
					t.Errorf("second recovery acted=%v err=%v", acted, err)
				}
			})
		})
	}
}

// TestRecoverNotOwed: a host signed out with nothing owed (a finished
// login's entry, or none) is not put back by the guest's recovery.
func TestRecoverNotOwed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := scenario{users: []User{
			{ID: "g1", ACDState: xsi.ACDSignOut},
			{ID: "desk1", CFA: off("+15559999"), ACDState: xsi.ACDSignOut},
			{ID: "desk2", CFA: off("+15559999"), ACDState: xsi.ACDSignOut},
		}, memory: []Remembered{{HostUserID: "desk2", GuestUserID: "g1", ForwardTo: num1, PreviousCFA: off("+15559999")}}}
		f, s := sc.start(t, Config{}, time.Millisecond)
		if acted, err := settleRecovery(t, s, RecoverUndo, "g1", "desk1"); acted || err != nil || len(f.actions()) != 0 {
			t.Errorf("Settle acted=%v err=%v, actions %q", acted, err, f.actions())
		}
	})
}

// TestHostOwnLoginRacesHotDesk: the host subscriber logs in at its own
// desk (an agent in its own right) while a guest logs in there. The host's
// agent lock serialises them: the Action log is one whole sequence, then
// the other, and the host ends as the later one left it.
func TestHostOwnLoginRacesHotDesk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := hostSignedOut.start(t, Config{}, 10*time.Millisecond)
		var wg sync.WaitGroup
		var errGuest, errHost error
		wg.Go(func() { errGuest = loginErr(s, t.Context(), "g1", "desk1", num1) })
		wg.Go(func() { errHost = loginErr(s, t.Context(), "desk1", "", "") })
		wg.Wait()
		if errGuest != nil || errHost != nil {
			t.Fatal(errGuest, errHost)
		}
		guestSeq := []string{"SetCFA desk1 true " + num1, "Associate g1 desk1", "SetAgentState g1 Unavailable "}
		hostFirst := append([]string{"SetAgentState desk1 Unavailable ", "SetAgentState desk1 Sign-Out "}, guestSeq...)
		guestFirst := append(slices.Clone(guestSeq), "SetAgentState desk1 Unavailable ")
		got := f.actions()
		st := f.snapshot()
		switch {
		case slices.Equal(got, hostFirst):
			if st["desk1"].ACDState != xsi.ACDSignOut {
				t.Errorf("host %s after the guest's login, want Sign-Out", st["desk1"].ACDState)
			}
		case slices.Equal(got, guestFirst):
			if st["desk1"].ACDState != xsi.ACDUnavailable {
				t.Errorf("host %s after its own login, want Unavailable", st["desk1"].ACDState)
			}
		default:
			t.Fatalf("interleaved or wrong:\n%s", strings.Join(got, "\n"))
		}
		loggedOnAt(t, st, "g1", "desk1", num1)
	})
}
