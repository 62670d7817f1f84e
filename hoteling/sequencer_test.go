package hoteling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/broadworks-connector/connector/xsi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	num1 = "+15550001" // g1's number: what a host forwards to while g1 is its guest
	num2 = "+15550002"
)

var numbers = map[string]string{"g1": num1, "g2": num2}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func off(n string) xsi.Forwarding { return xsi.Forwarding{ForwardToPhoneNumber: n} }
func fwd(n string) xsi.Forwarding { return xsi.Forwarding{Active: true, ForwardToPhoneNumber: n} }

// scenario is a starting state of BroadWorks and of the Sequencer's memory.
type scenario struct {
	name   string
	users  []User
	memory []Remembered
}

func (sc scenario) start(t *testing.T, cfg Config, delay time.Duration) (*fakeBW, *Sequencer) {
	t.Helper()
	f := newFakeBW(sc.users, delay)
	if cfg.NumberOf == nil {
		cfg.NumberOf = func(g string) string { return numbers[g] }
	}
	s := New(cfg, f, f, testLogger())
	for _, r := range sc.memory {
		s.remember(r)
	}
	return f, s
}

func memoryOf(s *Sequencer) map[string]Remembered {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.remembered)
}

// Starting states. desk1/desk2 are hot-desk hosts; g1 and g2 agents.
var (
	plain = scenario{name: "host CFA off", users: []User{
		{ID: "g1", ACDState: xsi.ACDSignOut},
		{ID: "desk1", CFA: off("+15559999")},
	}}
	hostForwarding = scenario{name: "host CFA forwarding elsewhere", users: []User{
		{ID: "g1", ACDState: xsi.ACDSignOut},
		{ID: "desk1", CFA: fwd("+15558888")},
	}}
	takeover = scenario{name: "host held by another guest", users: []User{
		{ID: "g1", ACDState: xsi.ACDSignOut},
		{ID: "g2", ACDState: xsi.ACDUnavailable, UnavailableCode: "LUNCH", HostUserID: "desk1"},
		{ID: "desk1", CFA: fwd(num2), GuestUserID: "g2"},
	}, memory: []Remembered{{HostUserID: "desk1", GuestUserID: "g2", ForwardTo: num2, PreviousCFA: off("+15559999")}}}
	move = scenario{name: "agent moves from desk2", users: []User{
		{ID: "g1", ACDState: xsi.ACDAvailable, HostUserID: "desk2"},
		{ID: "desk1", CFA: off("")},
		{ID: "desk2", CFA: fwd(num1), GuestUserID: "g1"},
	}, memory: []Remembered{{HostUserID: "desk2", GuestUserID: "g1", ForwardTo: num1, PreviousCFA: fwd("+15557777")}}}
	loggedOn = scenario{name: "g1 logged on at desk1", users: []User{
		{ID: "g1", ACDState: xsi.ACDAvailable, HostUserID: "desk1"},
		{ID: "desk1", CFA: fwd(num1), GuestUserID: "g1"},
	}, memory: []Remembered{{HostUserID: "desk1", GuestUserID: "g1", ForwardTo: num1, PreviousCFA: fwd("+15558888")}}}
)

// loggedOnAt checks that g1 is fully logged on at desk1.
func loggedOnAt(t *testing.T, st map[string]User, guest, host, number string) {
	t.Helper()
	g, h := st[guest], st[host]
	if g.HostUserID != host || h.GuestUserID != guest || !forwardsTo(h.CFA, number) || !signedIn(g) {
		t.Fatalf("not logged on: guest %+v host %+v", g, h)
	}
}

func TestLoginLogout(t *testing.T) {
	tests := []struct {
		sc          scenario
		wantActions []string
		after       func(t *testing.T, before, st map[string]User) // after login and logout
	}{
		{plain, []string{"SetCFA desk1 true " + num1, "Associate g1 desk1", "SetAgentState g1 Unavailable "}, nil},
		{hostForwarding, []string{"SetCFA desk1 true " + num1, "Associate g1 desk1", "SetAgentState g1 Unavailable "}, nil},
		{takeover, []string{
			"SetAgentState g2 Sign-Out ", "SetCFA desk1 false +15559999", "End g2",
			"SetCFA desk1 true " + num1, "Associate g1 desk1", "SetAgentState g1 Unavailable "},
			func(t *testing.T, before, st map[string]User) {
				// g2 was logged out by the takeover; desk1 back to its own CFA.
				if st["g2"].ACDState != xsi.ACDSignOut || st["g2"].HostUserID != "" || st["desk1"].CFA != off("+15559999") {
					t.Errorf("after takeover and logout: %+v", st)
				}
			}},
		{move, []string{
			"SetCFA desk2 true +15557777", "End g1",
			"SetCFA desk1 true " + num1, "Associate g1 desk1", "SetAgentState g1 Unavailable "},
			func(t *testing.T, before, st map[string]User) {
				if st["desk2"].CFA != fwd("+15557777") || st["desk2"].GuestUserID != "" || st["desk1"].CFA.Active ||
					st["g1"].HostUserID != "" || st["g1"].ACDState != xsi.ACDSignOut {
					t.Errorf("after move and logout: %+v", st)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.sc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, s := tt.sc.start(t, Config{}, 10*time.Millisecond)
				before := f.snapshot()
				if err := loginErr(s, t.Context(), "g1", "desk1", num1); err != nil {
					t.Fatal(err)
				}
				if got := f.actions(); !slices.Equal(got, tt.wantActions) {
					t.Errorf("actions:\n got %q\nwant %q", got, tt.wantActions)
				}
				loggedOnAt(t, f.snapshot(), "g1", "desk1", num1)
				if st := f.snapshot()["g1"]; st.ACDState != xsi.ACDUnavailable {
					t.Errorf("agent starts %s, want Unavailable", st.ACDState)
				}
				if r, ok := s.Remembered("desk1"); !ok || r.GuestUserID != "g1" {
					t.Errorf("remembered %+v %v", r, ok)
				}
				if _, err := s.Logout(t.Context(), "g1"); err != nil {
					t.Fatal(err)
				}
				st := f.snapshot()
				if tt.after != nil {
					tt.after(t, before, st)
				} else if !maps.Equal(st, before) {
					t.Errorf("after logout:\n got %+v\nwant %+v", st, before)
				}
				if _, ok := s.Remembered("desk1"); ok {
					t.Error("desk1 still remembered after logout")
				}
				// Logout again: idempotent, no traffic.
				n := len(f.actions())
				if _, err := s.Logout(t.Context(), "g1"); err != nil || len(f.actions()) != n {
					t.Errorf("second logout: %v, actions %q", err, f.actions()[n:])
				}
			})
		})
	}
}

func TestOwnDeviceLogin(t *testing.T) {
	for _, signInFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("SignInFirst=", signInFirst), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, s := plain.start(t, Config{SignInFirst: signInFirst}, time.Millisecond)
				if err := loginErr(s, t.Context(), "g1", "", ""); err != nil {
					t.Fatal(err)
				}
				want := []string{"SetAgentState g1 Unavailable "}
				if signInFirst {
					want = append([]string{"SetAgentState g1 Sign-In "}, want...)
				}
				if got := f.actions(); !slices.Equal(got, want) {
					t.Errorf("actions %q, want %q", got, want)
				}
				if f.snapshot()["g1"].ACDState != xsi.ACDUnavailable {
					t.Error("not Unavailable")
				}
			})
		})
	}
}

func TestAlreadyLoggedOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := loggedOn.start(t, Config{}, time.Millisecond)
		before := f.snapshot()
		if err := loginErr(s, t.Context(), "g1", "desk1", num1); err != nil {
			t.Fatal(err)
		}
		if a := f.actions(); len(a) != 0 {
			t.Errorf("actions %q, want none", a)
		}
		if !maps.Equal(f.snapshot(), before) {
			t.Error("state changed")
		}
	})
}

func TestRefuseOccupiedHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := takeover.start(t, Config{RefuseOccupiedHost: true}, time.Millisecond)
		before := f.snapshot()
		err := loginErr(s, t.Context(), "g1", "desk1", num1)
		var se *StepError
		if !errors.Is(err, ErrHostBusy) || !errors.As(err, &se) || se.Step != "check-host" {
			t.Fatalf("err %v, want ErrHostBusy", err)
		}
		if a := f.actions(); len(a) != 0 || !maps.Equal(f.snapshot(), before) {
			t.Errorf("actions %q", a)
		}
	})
}

// sameState compares BroadWorks states, except the stored number of a CFA
// that was off with none: XSI cannot clear a stored number (an empty
// forwardToPhoneNumber leaves it alone, research/xsi.md §2.4), so restoring
// "off" leaves the guest's number stored but inactive.
func sameState(got, want map[string]User) bool {
	got = maps.Clone(got)
	for id, w := range want {
		if g, ok := got[id]; ok && !w.CFA.Active && !g.CFA.Active && w.CFA.ForwardToPhoneNumber == "" {
			g.CFA.ForwardToPhoneNumber = ""
			got[id] = g
		}
	}
	return maps.Equal(got, want)
}

// failureModes are the ways a step fails and the error kind it must give.
var failureModes = []struct {
	name string
	f    fault
	kind error // sentinel expected via errors.Is
}{
	{"400", fault{mode: "error", err: &xsi.Error{Method: "PUT", Status: 400}}, xsi.ErrBadRequest},
	{"404", fault{mode: "error", err: &xsi.Error{Method: "PUT", Status: 404}}, ErrUnknownUser},
	{"503", fault{mode: "error", err: &xsi.Error{Method: "PUT", Status: 503}}, ErrLinkDown},
	{"link down", fault{mode: "error", err: fmt.Errorf("%w: dial tcp: refused", xsi.ErrLinkDown)}, ErrLinkDown},
	{"event lost", fault{mode: "drop"}, ErrTimeout},
	{"contradicting event", fault{mode: "contradict"}, ErrContradicted},
}

// TestStepFailures fails every mutating Action of a sequence in turn, in
// every mode, and checks that BroadWorks (the fake's truth, not only the
// view) and the remembered CFA end exactly as before.
func TestStepFailures(t *testing.T) {
	type seq struct {
		name string
		sc   scenario
		run  func(ctx context.Context, s *Sequencer) error
	}
	login := func(ctx context.Context, s *Sequencer) error { return loginErr(s, ctx, "g1", "desk1", num1) }
	seqs := []seq{
		{"login/" + plain.name, plain, login},
		{"login/" + hostForwarding.name, hostForwarding, login},
		{"login/" + takeover.name, takeover, login},
		{"login/" + move.name, move, login},
		{"login/" + hostAvailable.name, hostAvailable, login},
		{"login/" + hostUnavailable.name, hostUnavailable, login},
		{"login/" + hostWrapUp.name, hostWrapUp, login},
		{"login/" + takeoverHostIn.name, takeoverHostIn, login},
		{"login/own device while at desk2", move, func(ctx context.Context, s *Sequencer) error { return loginErr(s, ctx, "g1", "", "") }},
		{"logout/" + loggedOn.name, loggedOn, func(ctx context.Context, s *Sequencer) error { _, err := s.Logout(ctx, "g1"); return err }},
	}
	for _, sq := range seqs {
		for _, fm := range failureModes {
			t.Run(sq.name+"/"+fm.name, func(t *testing.T) {
				var steps []string
				for n := 0; ; n++ {
					fired := false
					synctest.Test(t, func(t *testing.T) {
						f, s := sq.sc.start(t, Config{}, 10*time.Millisecond)
						before, mem := f.snapshot(), memoryOf(s)
						flt := fm.f
						flt.call = n
						f.fault = &flt
						start := time.Now()
						err := sq.run(t.Context(), s)
						fired = f.fired
						if !fired {
							if err != nil {
								t.Fatalf("no fault injected at call %d, yet: %v", n, err)
							}
							return
						}
						var se *StepError
						if !errors.As(err, &se) {
							t.Fatalf("call %d: err %v, want *StepError", n, err)
						}
						steps = append(steps, se.Step)
						if !errors.Is(err, fm.kind) {
							t.Errorf("call %d (%s): err %v, want %v", n, se.Step, err, fm.kind)
						}
						if se.Undo != nil {
							t.Errorf("call %d: compensation: %v", n, se.Undo)
						}
						if got := f.snapshot(); !sameState(got, before) {
							t.Errorf("call %d (%s) failed; BroadWorks not restored:\n got %+v\nwant %+v\nactions %q",
								n, se.Step, got, before, f.actions())
						}
						got, want := memoryOf(s), mem
						if se.Op == "login" && slices.ContainsFunc(se.Doubts, func(d Doubt) bool { return d.User == "desk1" }) {
							// A step on the desk given up on may land after
							// its undo: what the desk had stays remembered
							// (the login's record, or the one before it).
							r, ok := got["desk1"]
							if old, had := mem["desk1"]; !ok || (r != old || !had) && (r.GuestUserID != "g1" || r.ForwardTo != num1) {
								t.Errorf("call %d (%s, in doubt): desk1 remembered %+v, want the login's or %+v", n, se.Step, r, mem["desk1"])
							}
							got, want = maps.Clone(got), maps.Clone(want)
							delete(got, "desk1")
							delete(want, "desk1")
						}
						if !maps.Equal(got, want) {
							t.Errorf("call %d: remembered CFA %+v, want %+v", n, got, want)
						}
						if fm.f.mode == "drop" && time.Since(start) < 5*time.Second {
							t.Errorf("timed out after %v, want the 5s default StepTimeout", time.Since(start))
						}
					})
					if !fired || t.Failed() {
						break
					}
				}
				if len(steps) == 0 {
					t.Fatal("no step failed")
				}
				t.Logf("failed in turn: %s", strings.Join(steps, ", "))
			})
		}
	}
}

// TestConcurrentLoginsOneHost: two agents race for desk1; the sequences
// run one after the other (the Action log is one whole sequence, then the
// other) and the later one takes the host over.
func TestConcurrentLoginsOneHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := scenario{users: []User{
			{ID: "g1", ACDState: xsi.ACDSignOut}, {ID: "g2", ACDState: xsi.ACDSignOut},
			{ID: "desk1", CFA: off("+15559999")},
		}}
		f, s := sc.start(t, Config{}, 10*time.Millisecond)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, g := range []string{"g1", "g2"} {
			wg.Go(func() { errs[i] = loginErr(s, t.Context(), g, "desk1", numbers[g]) })
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatal(errs)
		}
		seqOf := func(first, second string) []string {
			return []string{
				"SetCFA desk1 true " + numbers[first], "Associate " + first + " desk1", "SetAgentState " + first + " Unavailable ",
				"SetAgentState " + first + " Sign-Out ", "SetCFA desk1 false +15559999", "End " + first,
				"SetCFA desk1 true " + numbers[second], "Associate " + second + " desk1", "SetAgentState " + second + " Unavailable ",
			}
		}
		got := f.actions()
		second := "g2"
		if slices.Equal(got, seqOf("g2", "g1")) {
			second = "g1"
		} else if !slices.Equal(got, seqOf("g1", "g2")) {
			t.Fatalf("interleaved or wrong:\n%s", strings.Join(got, "\n"))
		}
		loggedOnAt(t, f.snapshot(), second, "desk1", numbers[second])
		if r, _ := s.Remembered("desk1"); r.PreviousCFA != off("+15559999") {
			t.Errorf("remembered %+v, want the host's own CFA", r)
		}
	})
}

// TestQueueBound: one login runs, QueueLength wait, the next is refused.
func TestQueueBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := scenario{users: []User{
			{ID: "g1", ACDState: xsi.ACDSignOut}, {ID: "g2", ACDState: xsi.ACDSignOut}, {ID: "g3", ACDState: xsi.ACDSignOut},
			{ID: "desk1"},
		}}
		f, s := sc.start(t, Config{QueueLength: 1}, time.Second)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Go(func() { errs[0] = loginErr(s, t.Context(), "g1", "desk1", num1) })
		synctest.Wait() // g1 runs: waiting for its first event
		wg.Go(func() { errs[1] = loginErr(s, t.Context(), "g2", "desk1", num2) })
		synctest.Wait() // g2 queued behind it
		err := loginErr(s, t.Context(), "g3", "desk1", "+15550003")
		if !errors.Is(err, ErrBusy) {
			t.Errorf("third login: %v, want ErrBusy", err)
		}
		// The agent's own queue counts too: g1's login runs, its logout
		// waits, so g1 at another desk is refused.
		var logoutErr error
		wg.Go(func() { _, logoutErr = s.Logout(t.Context(), "g1") })
		synctest.Wait()
		if err := loginErr(s, t.Context(), "g1", "desk2", num1); !errors.Is(err, ErrBusy) {
			t.Errorf("g1 at desk2: %v, want ErrBusy", err)
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatal(errs)
		}
		if logoutErr != nil {
			t.Error(logoutErr)
		}
		if len(s.locks) != 0 {
			t.Errorf("locks left: %v", s.locks)
		}
		// Nothing ran at desk2; g2 ends on desk1.
		if a := f.actions(); slices.ContainsFunc(a, func(e string) bool { return strings.Contains(e, "desk2") }) {
			t.Errorf("refused request sent %q", a)
		}
		loggedOnAt(t, f.snapshot(), "g2", "desk1", num2)
	})
}

// TestCallerCancel: the caller giving up mid-sequence still gets the
// completed steps undone.
func TestCallerCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := plain.start(t, Config{}, time.Second)
		before := f.snapshot()
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		defer cancel()
		err := loginErr(s, ctx, "g1", "desk1", num1)
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
			t.Fatalf("err %v", err)
		}
		if got := f.snapshot(); !maps.Equal(got, before) {
			t.Errorf("not restored: %+v", got)
		}
	})
}

// TestUndoConfirmedByNothingIsADoubt: a logout's sign-out is applied but
// its event is not in when the step gives up; the undo puts back the state
// the view still shows, so nothing confirms it. Its event (and the
// step's) may come after a later request's change: the undo is one of the
// sequence's doubts, for the reconciler to tell a late landing from an
// outside change.
func TestUndoConfirmedByNothingIsADoubt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := loggedOn.start(t, Config{}, 10*time.Millisecond)
		f.fault = &fault{call: 0, mode: "drop"}
		_, err := s.Logout(t.Context(), "g1")
		var se *StepError
		if !errors.As(err, &se) || se.Step != "agent-sign-out" {
			t.Fatalf("err %v, want the agent-sign-out step's", err)
		}
		var steps []string
		for _, d := range se.Doubts {
			steps = append(steps, d.Step)
		}
		i := slices.Index(steps, "undo-agent-sign-out")
		if i < 0 {
			t.Fatalf("doubts %v, want the undo confirmed by nothing among them", steps)
		}
		if d := se.Doubts[i]; d.User != "g1" || !d.Shows(User{ID: "g1", ACDState: xsi.ACDAvailable}) {
			t.Errorf("undo's doubt %+v: want g1 showing Available", d)
		}
	})
}

// TestGuestUndoIsADoubt: a logout fails after its sign-out (the desk's
// forwarding put back, its event lost); the sign-out's undo is confirmed by
// an event, yet it is one of the sequence's doubts: an older event of the
// guest delivered late (a channel lost mid-document) may have been what
// confirmed it, and its own may come after a later request's change.
func TestGuestUndoIsADoubt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, s := loggedOn.start(t, Config{}, 10*time.Millisecond)
		f.fault = &fault{call: 1, mode: "drop"}
		_, err := s.Logout(t.Context(), "g1")
		var se *StepError
		if !errors.As(err, &se) || se.Step != "restore-host-cfa" || se.Undo != nil {
			t.Fatalf("err %v, want the restore-host-cfa step's, undone", err)
		}
		i := slices.IndexFunc(se.Doubts, func(d Doubt) bool { return d.Step == "undo-agent-sign-out" })
		if i < 0 || se.Doubts[i].User != "g1" || !se.Doubts[i].Shows(User{ID: "g1", ACDState: xsi.ACDAvailable}) {
			t.Errorf("doubts %+v, want the guest's confirmed undo (g1 showing Available) among them", se.Doubts)
		}
	})
}
