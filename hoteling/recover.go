package hoteling

import (
	"context"
	"slices"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// Repair is one half-done sequence Recover found and what it did about it.
type Repair struct {
	GuestUserID string
	HostUserID  string
	Found       string // what BroadWorks showed
	Action      string // "undone" (back to logged out) or "completed" (on to logged in)
	Err         error  // nil when the repair succeeded
}

// Recover looks at users (agents and hosts; the view must have their
// snapshots) for sequences a crash or a lost link left half done, and
// completes or undoes each per Config.RecoverMode, returning (and logging)
// what it did. It finds:
//   - a host forwarding to a guest's number (remembered, or per
//     Config.NumberOf) with no guest associated: a login that stopped after
//     the host CFA, or a logout that stopped after ending the association;
//   - a guest associated with a host but signed out: a login that stopped
//     before Unavailable, or a logout that stopped after Sign-Out;
//   - only in the re-check of a failed sequence: a guest associated and
//     signed in whose host no longer forwards to it (a logout's restored
//     host CFA whose undo failed);
//   - a host subscriber signed out, neither forwarding to the guest nor
//     with a guest, that a login remembers signing out (Remembered's
//     HostAgentState): a login that stopped after the host's sign-out.
//
// Undo means: the guest signed out, the host's CFA restored (remembered
// value, else off), the association ended, and the host subscriber signed
// back in to the state it had when an unfinished login signed it out.
// Complete means: the login's steps, as Login runs them.
//
// Sequences may be running meanwhile (recovery after a link loss runs
// while clients work): each finding is checked again once its agent and
// host are locked, and left alone when the sequence that held them has
// since finished it one way or the other.
func (s *Sequencer) Recover(ctx context.Context, users []string) []Repair {
	return s.recover(ctx, users, s.cfg.RecoverMode, false)
}

// recover is Recover in the given mode (a re-check picks it from the
// failed sequence: its client was told nothing changed).
//
// afterFailure (a re-check) also takes for half done a guest associated
// and signed in whose host, which the sequencer forwarded to it, forwards
// elsewhere: a failed sequence's step or undo on the host's forwarding
// (outside a re-check that shape may be an operator's change, left alone).
func (s *Sequencer) recover(ctx context.Context, users []string, mode string, afterFailure bool) []Repair {
	var out []Repair
	for _, f := range s.halfDone(users, afterFailure) {
		start := time.Now()
		rp, acted := s.repair(ctx, f, users, mode, afterFailure)
		if !acted {
			s.logger.Debug("hoteling: half-done sequence settled meanwhile", "guest", f.GuestUserID, "host", f.HostUserID, "found", f.Found)
			continue
		}
		s.metrics.done(opRecover, start, rp.Err)
		out = append(out, rp)
		if rp.Err != nil {
			s.logger.Error("hoteling: recovery failed", "guest", rp.GuestUserID, "host", rp.HostUserID,
				"found", rp.Found, "action", rp.Action, "err", rp.Err)
		} else {
			s.logger.Info("hoteling: recovered half-done sequence", "guest", rp.GuestUserID, "host", rp.HostUserID,
				"found", rp.Found, "action", rp.Action)
		}
	}
	return out
}

// Half-done shapes Recover finds.
const (
	foundSignedOutGuest = "guest associated but signed out"
	foundOrphanCFA      = "host forwarding to guest without association"
	foundHostElsewhere  = "guest associated but its host forwarding elsewhere"
	foundHostSignedOut  = "host signed out by a login that did not finish"
)

// halfDone lists the half-done sequences the view shows among users.
func (s *Sequencer) halfDone(users []string, afterFailure bool) []Repair {
	var out []Repair
	guestOf := map[string]string{} // host → associated guest, as the guests report it
	for _, id := range users {
		if h := s.view.User(id).HostUserID; h != "" {
			guestOf[h] = id
		}
	}
	seen := map[string]bool{}
	for _, id := range users {
		u := s.view.User(id)
		// A guest associated but signed out.
		if u.HostUserID != "" && !signedIn(u) && u.Known {
			host := u.HostUserID
			seen[host] = true
			out = append(out, Repair{GuestUserID: id, HostUserID: host, Found: foundSignedOutGuest})
			continue
		}
		// A guest associated and signed in, its host no longer forwarding
		// to the number the sequencer set.
		if afterFailure && u.HostUserID != "" && u.Known {
			host := u.HostUserID
			h := s.view.User(host)
			if r, ok := s.Remembered(host); ok && r.GuestUserID == id && h.Known && !forwardsTo(h.CFA, r.ForwardTo) {
				seen[host] = true
				out = append(out, Repair{GuestUserID: id, HostUserID: host, Found: foundHostElsewhere})
				continue
			}
		}
		if guestOf[id] != "" || u.GuestUserID != "" || seen[id] {
			continue
		}
		// A host forwarding to a guest with no association.
		if u.CFA.Active {
			if guest := s.guestForwardedTo(id, u, users); guest != "" {
				seen[id] = true
				out = append(out, Repair{GuestUserID: guest, HostUserID: id, Found: foundOrphanCFA})
				continue
			}
		}
		// A host signed out by a login that stopped before its CFA.
		if r, ok := s.owedAgentState(id); ok && u.Known && !forwardsTo(u.CFA, r.ForwardTo) {
			seen[id] = true
			out = append(out, Repair{GuestUserID: r.GuestUserID, HostUserID: id, Found: foundHostSignedOut})
		}
	}
	return out
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

// stillHalfDone checks finding f again (under its locks).
func (s *Sequencer) stillHalfDone(f Repair, users []string, afterFailure bool) bool {
	return slices.Contains(s.halfDone(users, afterFailure), f)
}

// guestForwardedTo finds the guest whose number host's CFA points at.
func (s *Sequencer) guestForwardedTo(host string, h User, users []string) string {
	if r, ok := s.Remembered(host); ok && forwardsTo(h.CFA, r.ForwardTo) {
		return r.GuestUserID
	}
	if s.cfg.NumberOf == nil {
		return ""
	}
	for _, g := range users {
		if g != host && forwardsTo(h.CFA, s.cfg.NumberOf(g)) {
			return g
		}
	}
	return ""
}

// repair completes or undoes finding f once its locks are held, if it is
// still half done then; acted is false when it was not.
func (s *Sequencer) repair(ctx context.Context, f Repair, users []string, mode string, afterFailure bool) (rp Repair, acted bool) {
	rp = f
	guest, host := f.GuestUserID, f.HostUserID
	release, err := s.lockFor(ctx, func() []string { return s.loginKeys(guest, host, false) })
	if err != nil {
		rp.Action = recoverAction(mode)
		rp.Err = &StepError{Op: "recover", Step: "queue", Kind: kindOrSelf(ctx, err), Err: err, Guest: guest, Host: host}
		return rp, true
	}
	defer release()
	if !s.stillHalfDone(f, users, afterFailure) {
		return rp, false
	}
	rp.Action = recoverAction(mode)
	if mode == RecoverComplete {
		forwardTo := ""
		if r, ok := s.Remembered(host); ok && r.GuestUserID == guest {
			forwardTo = r.ForwardTo
		} else if s.cfg.NumberOf != nil {
			forwardTo = s.cfg.NumberOf(guest)
		}
		if forwardTo == "" {
			forwardTo = s.view.User(host).CFA.ForwardToPhoneNumber
		}
		rp.Err = s.loginHost(ctx, guest, host, forwardTo)
		return rp, true
	}
	r := s.newRun(ctx, "recover", guest, host)
	var restore func()
	switch {
	case f.Found == foundHostSignedOut:
		// Only the host's sign-out happened (below).
		old, hadOld := s.Remembered(host)
		restore = func() { s.setRemembered(host, old, hadOld) }
	case s.view.User(guest).HostUserID == host:
		r.step(s.acdStep(guest, "agent-sign-out", xsi.ACDSignOut, ""))
		restore = s.leaveHost(r, guest, host)
	default:
		// Only the host's CFA is ours to undo: the guest may be logged on
		// elsewhere.
		old, hadOld := s.Remembered(host)
		if target, ok := s.restoreTarget(guest, host); ok {
			r.step(s.cfaStep(host, "restore-host-cfa", target))
		}
		restore = func() { s.setRemembered(host, old, hadOld) }
	}
	// Last, as the reverse of a login: the host subscriber signed back in,
	// when a login that did not finish signed it out.
	if rem, ok := s.owedAgentState(host); ok {
		r.step(s.hostAgentStep(host, "restore-host-agent", rem.HostAgentState, rem.HostUnavailableCode))
	}
	if err := r.finish(); err != nil {
		restore()
		rp.Err = err
		return rp, true
	}
	s.forget(host)
	return rp, true
}

func recoverAction(mode string) string {
	if mode == RecoverComplete {
		return "completed"
	}
	return "undone"
}
