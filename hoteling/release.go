package hoteling

import (
	"context"
	"errors"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// Release finishes what BroadWorks started when it ended guest's
// association with host on its own (the association limit, an operator on
// the portal): the host's CFA goes back (the remembered value, else off)
// if it still forwards to the guest and no other guest sits there, and the
// guest is signed out unless it is associated with a host again. Nothing is
// done when the guest is back at host (a new login came first). Like
// Logout it runs under the guest's and the host's locks, and a failed step
// is undone.
func (s *Sequencer) Release(ctx context.Context, guest, host string) (err error) {
	start := time.Now()
	defer func() { s.metrics.done(opRelease, start, err) }()
	if guest == "" || host == "" {
		return &StepError{Op: "release", Step: "check", Err: errors.New("empty guest or host user ID"), Guest: guest, Host: host}
	}
	release, err := s.lockFor(ctx, func() []string { return []string{agentKey(guest), hostKey(host)} })
	if err != nil {
		return &StepError{Op: "release", Step: "queue", Kind: kindOrSelf(ctx, err), Err: err, Guest: guest, Host: host}
	}
	defer release()
	g, h := s.view.User(guest), s.view.User(host)
	if g.HostUserID == host {
		return nil
	}
	if s.endInDoubt(guest) {
		return ErrOwnEndInDoubt
	}
	r := s.newRun(ctx, "release", guest, host)
	if g.HostUserID == "" && signedIn(g) {
		r.step(s.acdStep(guest, "agent-sign-out", xsi.ACDSignOut, ""))
	}
	rem, remembered := s.Remembered(host)
	remembered = remembered && rem.GuestUserID == guest
	number, target := "", xsi.Forwarding{Active: false}
	switch {
	case remembered:
		number, target = rem.ForwardTo, rem.PreviousCFA
	case s.cfg.NumberOf != nil:
		number = s.cfg.NumberOf(guest)
	}
	restore := (h.GuestUserID == "" || h.GuestUserID == guest) && number != "" && forwardsTo(h.CFA, number)
	if restore {
		r.step(s.cfaStep(host, "restore-host-cfa", target))
	}
	if err := r.finish(); err != nil {
		return err
	}
	if remembered {
		s.forget(host)
	}
	return nil
}
