package hoteling

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestRecheckUndoesLateChanges: a step times out, the sequence undoes
// itself and fails, and then the XSP applies the request it had received
// after all. With RecheckAfter the sequencer looks again and BroadWorks ends
// as before the sequence; without, the late change stays (which is what
// the re-check is for).
func TestRecheckUndoesLateChanges(t *testing.T) {
	timeout := errors.New("xsi: PUT: context deadline exceeded")
	seqs := []struct {
		name string
		sc   scenario
		run  func(ctx context.Context, s *Sequencer) error
	}{
		{"login", plain, func(ctx context.Context, s *Sequencer) error { return s.Login(ctx, "g1", "desk1", num1) }},
		{"logout", loggedOn, func(ctx context.Context, s *Sequencer) error { return s.Logout(ctx, "g1") }},
	}
	for _, sq := range seqs {
		for _, recheck := range []time.Duration{0, time.Minute} {
			for n := 0; n < 3; n++ { // the first three Actions of the sequence
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
