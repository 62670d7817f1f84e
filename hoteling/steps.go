package hoteling

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// step is one change on BroadWorks and the view condition that confirms it.
type step struct {
	name string
	user string                          // whose view reports the change
	proj func(User) string               // the part of the view the step changes
	want func(User) bool                 // the change is confirmed
	do   func(ctx context.Context) error // the Actions call
	undo func(before User) step          // puts proj back to before
	// assoc marks a change of the user's hoteling association (the View
	// may want to know it is ours: AssociationNoter).
	assoc bool
	// compensation marks an undo sent by finish: it waits for an XSI slot
	// as long as the client allows (xsi.request_timeout), never refused.
	compensation bool
}

// done is a step that ran (or may have run), with the view before it.
type done struct {
	st     step
	before User
}

// run executes steps in order until one fails, then compensates.
type run struct {
	s           *Sequencer
	ctx         context.Context
	op          string
	guest, host string
	start       time.Time
	done        []done
	err         *StepError
	// doubts: steps (and undos) that failed in a way the XSP may still
	// apply them (a timeout, a 5xx, a contradiction), for the caller
	// (StepError.Doubts).
	doubts []Doubt
	// repair: a reconciler's step towards a promise, which finish does not
	// undo (undone, it would put back the very difference it repairs, over
	// whatever a request set meanwhile); the caller tries again.
	repair bool
}

// newRun starts a sequence (a saga): one log line here, one when it ends
// (finish, or a failed step and its compensation).
func (s *Sequencer) newRun(ctx context.Context, op, guest, host string) *run {
	s.logger.Info("hoteling: sequence started", "op", op, "guest", guest, "host", host)
	return &run{s: s, ctx: ctx, op: op, guest: guest, host: host, start: time.Now()}
}

func (r *run) ok() bool { return r.err == nil }

// failNow records a failure that is not a step's (nothing to undo for it).
func (r *run) failNow(name string, err error) {
	if r.err == nil {
		r.err = &StepError{Op: r.op, Step: name, Kind: kindOf(r.ctx, err), Err: err, Guest: r.guest, Host: r.host}
	}
}

// step runs st unless the run has failed or the view already shows st's
// result (then it sends nothing and there is nothing to undo).
func (r *run) step(st step) {
	if r.err != nil {
		return
	}
	before := r.s.view.User(st.user)
	if st.want(before) {
		return
	}
	err := r.s.exec(r.ctx, r.op, st, before)
	if err == nil {
		r.done = append(r.done, done{st, before})
		return
	}
	if !refused(err) {
		// The change may have been applied (timeout, 5xx, contradicting
		// event): undo it as well.
		r.done = append(r.done, done{st, before})
		r.doubts = append(r.doubts, Doubt{User: st.user, Step: st.name, Shows: st.want})
	}
	kind := kindOf(r.ctx, err)
	if errors.Is(err, ErrContradicted) {
		kind = ErrContradicted
	}
	r.err = &StepError{Op: r.op, Step: st.name, Kind: kind, Err: err, Guest: r.guest, Host: r.host}
	r.s.logger.Warn("hoteling: step failed", "op", r.op, "guest", r.guest, "host", r.host, "step", st.name, "err", err)
}

// finish compensates a failed run, newest step first, each undo sent
// unconditionally (the view may lag the XSP after a lost event) and
// confirmed like a step, under a context the caller cannot cancel.
func (r *run) finish() error {
	if r.err == nil {
		r.s.logger.Info("hoteling: sequence done", "op", r.op, "guest", r.guest, "host", r.host,
			"steps", len(r.done), "elapsed", time.Since(r.start).Round(time.Millisecond))
		return nil
	}
	if r.repair {
		r.err.Doubts, r.err.Sent = r.doubts, len(r.done) > 0
		return r.err
	}
	ctx := context.WithoutCancel(r.ctx)
	var errs []error
	for i := len(r.done) - 1; i >= 0; i-- {
		d := r.done[i]
		u := d.st.undo(d.before)
		u.compensation = true
		cur := r.s.view.User(u.user)
		if err := r.s.exec(ctx, r.op, u, cur); err != nil {
			if !refused(err) {
				// The undo may land late as well (over a later change).
				r.doubts = append(r.doubts, Doubt{User: u.user, Step: u.name, Shows: u.want})
			}
			r.s.logger.Error("hoteling: compensation failed", "op", r.op, "guest", r.guest, "host", r.host, "step", u.name, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", u.name, err))
		} else if u.want(cur) || u.user == r.guest {
			// Confirmed by nothing (the view showed the undo's result
			// before it was sent: the failed step's event not in yet), or
			// the guest's, which an older event delivered late may have
			// confirmed (a channel lost mid-document). Its own event, and
			// the step's, may come after a later request's change, and
			// that request may have skipped a step on a view still showing
			// them: the undo's result showing then is a late landing, not
			// an outside change. (A desk's undo is left out: a doubt on
			// the desk keeps its remembered forwarding, Login.)
			r.doubts = append(r.doubts, Doubt{User: u.user, Step: u.name, Shows: u.want})
		}
	}
	r.err.Undo = errors.Join(errs...)
	r.err.Doubts = r.doubts
	r.err.Sent = r.err.Sent || len(r.done) > 0
	r.s.metrics.compensated(r.op, len(r.done), r.err.Undo)
	if r.err.Undo == nil {
		r.s.logger.Info("hoteling: sequence undone", "op", r.op, "guest", r.guest, "host", r.host, "failed", r.err.Step,
			"elapsed", time.Since(r.start).Round(time.Millisecond))
	}
	return r.err
}

// exec sends st's Action (for the run op) and waits for the view to
// confirm it, within StepTimeout of the request's send: the wait for an XSI
// slot before it does not count (a storm would eat the step's time in the
// client's queue) but has a bound of its own, StepTimeout again, none for a
// compensation. A view change of st's part to anything but the wanted
// result is a contradiction.
func (s *Sequencer) exec(ctx context.Context, op string, st step, before User) (err error) {
	start := time.Now()
	defer func() { s.metrics.step(st.name, start, err) }()
	queue := s.cfg.StepTimeout
	if st.compensation {
		queue = 0
	}
	sctx, sent, cancel := xsi.WithSendTimeout(ctx, queue, s.cfg.StepTimeout)
	defer cancel()
	s.logger.Debug("hoteling: step", "step", st.name, "user", st.user)
	if n, ok := s.view.(AssociationNoter); ok && st.assoc {
		n.AssociationChanging(st.user, op)
	}
	s.adm.calling(1)
	err = st.do(sctx)
	s.adm.calling(-1)
	if errors.Is(err, xsi.ErrNotSent) {
		return err
	}
	sentAt := sent() // the transport marked it; else (not an xsi Client) now
	s.adm.answered(time.Since(sentAt))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			s.adm.confirmed(s.cfg.StepTimeout) // no answer, so no confirmation either: at least that
		}
		return err
	}
	defer func() {
		switch {
		case err == nil, errors.Is(err, ErrContradicted):
			s.adm.confirmed(time.Since(sentAt))
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			s.adm.confirmed(s.cfg.StepTimeout) // at least
		}
	}()
	was := st.proj(before)
	var mu sync.Mutex
	var got User
	err = s.view.Await(sctx, st.user, func(u User) bool {
		if st.want(u) || st.proj(u) != was && u.ACDState != xsi.ACDSignIn {
			mu.Lock()
			got = u
			mu.Unlock()
			return true
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("awaiting %s of %s: %w", st.name, st.user, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !st.want(got) {
		return fmt.Errorf("%w: %s of %s: view shows %s", ErrContradicted, st.name, st.user, st.proj(got))
	}
	return nil
}

func (s *Sequencer) acdStep(user, name string, state xsi.ACDState, code string) step {
	return step{
		name: name,
		user: user,
		proj: func(u User) string { return string(u.ACDState) },
		want: func(u User) bool {
			switch state {
			case xsi.ACDSignIn: // transient: any signed-in state confirms it
				return signedIn(u) && u.ACDState != xsi.ACDSignIn
			case xsi.ACDUnavailable:
				return u.ACDState == state && (code == "" || u.UnavailableCode == code)
			}
			return u.ACDState == state
		},
		do: func(ctx context.Context) error { return s.act.SetAgentState(ctx, user, state, code) },
		undo: func(before User) step {
			st, c := before.ACDState, ""
			switch st {
			case "", xsi.ACDSignIn:
				st = xsi.ACDSignOut
				if before.ACDState == xsi.ACDSignIn {
					st = xsi.ACDUnavailable
				}
			case xsi.ACDUnavailable:
				c = before.UnavailableCode
			}
			return s.acdStep(user, "undo-"+name, st, c)
		},
	}
}

func (s *Sequencer) cfaStep(host, name string, f xsi.Forwarding) step {
	return step{
		name: name,
		user: host,
		proj: func(u User) string { return fmt.Sprintf("%t|%s", u.CFA.Active, u.CFA.ForwardToPhoneNumber) },
		want: func(u User) bool {
			if f.Active {
				return forwardsTo(u.CFA, f.ForwardToPhoneNumber)
			}
			return !u.CFA.Active
		},
		do: func(ctx context.Context) error { return s.act.SetCallForwardingAlways(ctx, host, f) },
		undo: func(before User) step {
			return s.cfaStep(host, "undo-"+name, before.CFA)
		},
	}
}

// assocStep associates guest with host, or ends its association when host
// is empty. The guest's HotelingGuestEvent confirms it (there is no event
// package for the host side, research/xsi.md §2.7).
func (s *Sequencer) assocStep(guest, name, host string) step {
	return step{
		name: name,
		user: guest,
		proj: func(u User) string { return u.HostUserID },
		want: func(u User) bool { return u.HostUserID == host },
		do: func(ctx context.Context) error {
			if host == "" {
				return s.act.EndGuestAssociation(ctx, guest)
			}
			return s.act.AssociateGuest(ctx, guest, host)
		},
		undo:  func(before User) step { return s.assocStep(guest, "undo-"+name, before.HostUserID) },
		assoc: true,
	}
}

// StepHostSignOut is the name of the step that signs the host subscriber
// out at a hot-desk login (StepError.Step); its compensation is
// "undo-host-sign-out", Settle's "restore-host-agent".
const StepHostSignOut = "host-sign-out"

// hostSignOutStep signs the host subscriber out: a desk line that is a
// call-center agent leaves the ACD queues while a guest sits at it. Its
// undo signs the host back in to exactly the state it had: BroadWorks
// applies no transition restrictions (research/xsi.md §7), so one PUT of
// Available, Wrap-Up or Unavailable with the previous code does it, from
// Sign-Out; a host caught in the transient Sign-In gets Sign-In again
// (which lands where a sign-in lands).
func (s *Sequencer) hostSignOutStep(host string) step {
	st := s.acdStep(host, StepHostSignOut, xsi.ACDSignOut, "")
	st.undo = func(before User) step {
		return s.hostAgentStep(host, "undo-"+StepHostSignOut, before.ACDState, before.UnavailableCode)
	}
	return st
}

// hostAgentStep puts the host subscriber's agent state back to state (and
// code, for Unavailable).
func (s *Sequencer) hostAgentStep(host, name string, state xsi.ACDState, code string) step {
	switch state {
	case "":
		state = xsi.ACDSignOut
	case xsi.ACDUnavailable:
	default:
		code = ""
	}
	return s.acdStep(host, name, state, code)
}
