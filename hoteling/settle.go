package hoteling

import (
	"context"
	"errors"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// Want is what one agent (a hoteling guest) was promised: at a desk or at
// none, in an agent state. The gateway's reconciler keeps it (Settle); the
// sequencer knows what each shape means step by step.
type Want struct {
	Guest string
	// Host is the desk the guest is promised at, "" none. At a desk means
	// the whole login: associated, the desk forwarding to the guest, the
	// guest signed in. At none means no association and no desk of ours
	// left forwarding to the guest or owed its subscriber's agent state.
	Host string
	// Loose: at Host only the association is promised, as BroadWorks
	// shows it (one made outside the connector is taken as it is; its
	// desk's forwarding is not ours to set).
	Loose bool
	// ForwardTo is what Host forwards to while the guest sits there; ""
	// takes the remembered number, else Config.NumberOf.
	ForwardTo string
	// LeftHost is the desk the guest last left (a logout, or BroadWorks
	// taking it away: association limit, portal): its forwarding goes back
	// (remembered, else LeftCFA) if it still forwards to the guest and no
	// one sits there — a change of ours given up on (an undo of a failed
	// logout, say) may land after the desk was put back.
	LeftHost string
	// LeftCFA is the desk's own forwarding LeftHost went back to (off when
	// not known).
	LeftCFA xsi.Forwarding
	// ACD is the agent state promised ("" leaves it as it is), Code the
	// unavailable code ("" any).
	ACD  xsi.ACDState
	Code string
}

// acdShows reports whether u is in state (and code).
func acdShows(u User, state xsi.ACDState, code string) bool {
	switch state {
	case "":
		return true
	case xsi.ACDSignIn: // transient: any signed-in state shows it
		return signedIn(u) && u.ACDState != xsi.ACDSignIn
	case xsi.ACDUnavailable:
		return u.ACDState == state && (code == "" || u.UnavailableCode == code)
	}
	return u.ACDState == state
}

// forwardToFor is the number host forwards to while guest sits there.
func (s *Sequencer) forwardToFor(w Want) string {
	if w.ForwardTo != "" {
		return w.ForwardTo
	}
	if r, ok := s.Remembered(w.Host); ok && r.GuestUserID == w.Guest {
		return r.ForwardTo
	}
	if s.cfg.NumberOf != nil {
		return s.cfg.NumberOf(w.Guest)
	}
	return ""
}

// Satisfied reports whether the view shows w (no locks: a quick look; Settle
// looks again under its locks).
func (s *Sequencer) Satisfied(w Want) bool {
	g := s.view.User(w.Guest)
	if g.HostUserID != w.Host || !acdShows(g, w.ACD, w.Code) {
		return false
	}
	if w.Host != "" {
		if w.Loose {
			return true
		}
		return signedIn(g) && forwardsTo(s.view.User(w.Host).CFA, s.forwardToFor(w))
	}
	for _, r := range s.rememberedOf(w.Guest) {
		if s.leftBehind(r) {
			return false
		}
	}
	if w.LeftHost != "" {
		if _, ok := s.leftForwarding(w); ok {
			return false
		}
	}
	return true
}

// leftBehind reports whether a remembered desk still shows a login of its
// guest that is no longer one: it forwards to the guest with no one
// associated, or its subscriber is still owed the agent state a login that
// did not finish signed out.
func (s *Sequencer) leftBehind(r Remembered) bool {
	h := s.view.User(r.HostUserID)
	if g := s.view.User(r.GuestUserID); g.HostUserID == r.HostUserID {
		return false // the guest sits there: not left behind
	}
	if h.GuestUserID == "" && forwardsTo(h.CFA, r.ForwardTo) {
		return true
	}
	_, owed := s.owedAgentState(r.HostUserID)
	return owed
}

// owedAgentState is the remembered entry of host when an unfinished login
// signed the host subscriber out and the view shows it signed out still.
func (s *Sequencer) owedAgentState(host string) (Remembered, bool) {
	r, ok := s.Remembered(host)
	if !ok || !signedIn(User{ACDState: r.HostAgentState}) || s.view.User(host).ACDState != xsi.ACDSignOut {
		return Remembered{}, false
	}
	return r, true
}

// leftForwarding is what w.LeftHost's forwarding goes back to (w.LeftCFA),
// when it still forwards to the guest, no one sits there and nothing is
// remembered for it (a remembered entry is leftBehind's).
func (s *Sequencer) leftForwarding(w Want) (xsi.Forwarding, bool) {
	if r, ok := s.Remembered(w.LeftHost); ok && r.GuestUserID == w.Guest {
		return xsi.Forwarding{}, false
	}
	h := s.view.User(w.LeftHost)
	number := w.ForwardTo
	if number == "" && s.cfg.NumberOf != nil {
		number = s.cfg.NumberOf(w.Guest)
	}
	if h.GuestUserID != "" || !forwardsTo(h.CFA, number) || forwardsTo(w.LeftCFA, number) {
		return xsi.Forwarding{}, false
	}
	return w.LeftCFA, true
}

// settleKeys are the locks Settle needs: the guest, the desk it sits at,
// the desk it is promised, whoever sits there, and the desks remembered
// for it.
func (s *Sequencer) settleKeys(w Want) []string {
	keys := []string{agentKey(w.Guest)}
	if w.Host != "" {
		keys = s.loginKeys(w.Guest, w.Host, false)
	}
	if prev := s.view.User(w.Guest).HostUserID; prev != "" {
		keys = append(keys, hostKey(prev))
	}
	if w.LeftHost != "" {
		keys = append(keys, hostKey(w.LeftHost))
	}
	for _, r := range s.rememberedOf(w.Guest) {
		keys = append(keys, hostKey(r.HostUserID), agentKey(r.HostUserID))
	}
	return keys
}

// Settle brings BroadWorks to w, under the locks of the guest and of every
// desk involved, through the same steps (each confirmed by its event, a
// failure undone) as Login and Logout: at a desk, the login's steps that
// are missing; at none, the logout's, and a desk left forwarding to the
// guest (or owed its subscriber's agent state) put back; then the agent
// state. acted is false when the view already showed w once the locks were
// held (a sequence finished it meanwhile), or when current (if not nil)
// says w is no longer the promise then (a request made a newer one while
// Settle waited for the locks).
func (s *Sequencer) Settle(ctx context.Context, w Want, current func() bool) (acted bool, err error) {
	if w.Guest == "" {
		return false, &StepError{Op: "reconcile", Step: "check", Err: errors.New("empty guest user ID")}
	}
	release, err := s.lockFor(ctx, func() []string { return s.settleKeys(w) })
	if err != nil {
		return false, &StepError{Op: "reconcile", Step: "queue", Kind: kindOrSelf(ctx, err), Err: err, Guest: w.Guest, Host: w.Host}
	}
	defer release()
	if s.Satisfied(w) || (current != nil && !current()) {
		return false, nil
	}
	start := time.Now()
	defer func() { s.metrics.done(opReconcile, start, err) }()
	g := s.view.User(w.Guest)
	switch {
	case w.Host != "" && w.Loose:
		if g.HostUserID != w.Host {
			// An association taken as BroadWorks showed it has changed
			// since: the caller looks again.
			return false, nil
		}
	case w.Host != "":
		if err := s.loginHost(ctx, w.Guest, w.Host, s.forwardToFor(w)); err != nil {
			return true, err
		}
	default:
		if err := s.leaveDesks(ctx, w); err != nil {
			return true, err
		}
	}
	g = s.view.User(w.Guest)
	if acdShows(g, w.ACD, w.Code) || (w.Host != "" && !signedIn(User{ACDState: w.ACD})) {
		return true, nil
	}
	r := s.newRun(ctx, "reconcile", w.Guest, w.Host)
	r.repair = true
	r.step(s.acdStep(w.Guest, "agent-state", w.ACD, w.Code))
	return true, r.finish()
}

// leaveDesks takes the guest away from every desk (w.Host is ""): the
// association ends as a logout ends it (the guest signed out first unless
// promised a signed-in state), desks remembered for the guest and left
// forwarding to it get their own forwarding back, and a desk subscriber a
// login that did not finish signed out is signed back in.
func (s *Sequencer) leaveDesks(ctx context.Context, w Want) error {
	g := s.view.User(w.Guest)
	r := s.newRun(ctx, "reconcile", w.Guest, g.HostUserID)
	var restores []func()
	var left []string
	if host := g.HostUserID; host != "" {
		if !signedIn(User{ACDState: w.ACD}) && signedIn(g) {
			r.step(s.acdStep(w.Guest, "agent-sign-out", xsi.ACDSignOut, ""))
		}
		restores = append(restores, s.leaveHost(r, w.Guest, host))
		left = append(left, host)
	}
	for _, rem := range s.rememberedOf(w.Guest) {
		host := rem.HostUserID
		if host == g.HostUserID {
			if owed, ok := s.owedAgentState(host); ok {
				r.step(s.hostAgentStep(host, "restore-host-agent", owed.HostAgentState, owed.HostUnavailableCode))
			}
			continue
		}
		if !s.leftBehind(rem) {
			continue
		}
		h := s.view.User(host)
		if h.GuestUserID == "" && forwardsTo(h.CFA, rem.ForwardTo) {
			r.step(s.cfaStep(host, "restore-host-cfa", rem.PreviousCFA))
		}
		if owed, ok := s.owedAgentState(host); ok {
			r.step(s.hostAgentStep(host, "restore-host-agent", owed.HostAgentState, owed.HostUnavailableCode))
		}
		old := rem
		restores = append(restores, func() { s.setRemembered(host, old, true) })
		left = append(left, host)
	}
	if w.LeftHost != "" && w.LeftHost != g.HostUserID {
		if target, ok := s.leftForwarding(w); ok {
			r.step(s.cfaStep(w.LeftHost, "restore-host-cfa", target))
		}
	}
	if err := r.finish(); err != nil {
		if r.err.Undo == nil {
			for i := len(restores) - 1; i >= 0; i-- {
				restores[i]()
			}
		}
		return err
	}
	for _, host := range left {
		if rem, ok := s.Remembered(host); ok && rem.GuestUserID == w.Guest {
			s.forget(host)
		}
	}
	return nil
}

// ACDShows reports whether u is in state ("" any; Sign-In: any signed-in
// state) with code (for Unavailable; "" any).
func ACDShows(u User, state xsi.ACDState, code string) bool { return acdShows(u, state, code) }
