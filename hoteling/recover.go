package hoteling

import (
	"context"
	"slices"

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
//     before Unavailable, or a logout that stopped after Sign-Out.
//
// Undo means: the guest signed out, the host's CFA restored (remembered
// value, else off), the association ended. Complete means: a Login.
func (s *Sequencer) Recover(ctx context.Context, users []string) []Repair {
	var out []Repair
	add := func(rp Repair) {
		out = append(out, rp)
		if rp.Err != nil {
			s.logger.Error("hoteling: recovery failed", "guest", rp.GuestUserID, "host", rp.HostUserID,
				"found", rp.Found, "action", rp.Action, "err", rp.Err)
		} else {
			s.logger.Info("hoteling: recovered half-done sequence", "guest", rp.GuestUserID, "host", rp.HostUserID,
				"found", rp.Found, "action", rp.Action)
		}
	}
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
			add(s.repair(ctx, id, host, "guest associated but signed out"))
			continue
		}
		// A host forwarding to a guest with no association.
		if !u.CFA.Active || guestOf[id] != "" || u.GuestUserID != "" || seen[id] {
			continue
		}
		guest := s.guestForwardedTo(id, u, users)
		if guest == "" {
			continue
		}
		seen[id] = true
		add(s.repair(ctx, guest, id, "host forwarding to guest without association"))
	}
	return out
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

func (s *Sequencer) repair(ctx context.Context, guest, host, found string) Repair {
	rp := Repair{GuestUserID: guest, HostUserID: host, Found: found}
	if s.cfg.RecoverMode == RecoverComplete {
		rp.Action = "completed"
		forwardTo := ""
		if r, ok := s.Remembered(host); ok && r.GuestUserID == guest {
			forwardTo = r.ForwardTo
		} else if s.cfg.NumberOf != nil {
			forwardTo = s.cfg.NumberOf(guest)
		}
		if forwardTo == "" {
			forwardTo = s.view.User(host).CFA.ForwardToPhoneNumber
		}
		rp.Err = s.Login(ctx, guest, host, forwardTo)
		return rp
	}
	rp.Action = "undone"
	keys := []string{agentKey(guest), hostKey(host)}
	release, err := s.lockFor(ctx, func() []string {
		if h := s.view.User(guest).HostUserID; h != "" && !slices.Contains(keys, hostKey(h)) {
			return append(slices.Clone(keys), hostKey(h))
		}
		return keys
	})
	if err != nil {
		rp.Err = &StepError{Op: "recover", Step: "queue", Kind: kindOrSelf(ctx, err), Err: err, Guest: guest, Host: host}
		return rp
	}
	defer release()
	r := s.newRun(ctx, "recover", guest, host)
	var restore func()
	if s.view.User(guest).HostUserID == host {
		r.step(s.acdStep(guest, "agent-sign-out", xsi.ACDSignOut, ""))
		restore = s.leaveHost(r, guest, host)
	} else {
		// Only the host's CFA is ours to undo: the guest may be logged on
		// elsewhere.
		old, hadOld := s.Remembered(host)
		if target, ok := s.restoreTarget(guest, host); ok {
			r.step(s.cfaStep(host, "restore-host-cfa", target))
		}
		restore = func() { s.setRemembered(host, old, hadOld) }
	}
	if err := r.finish(); err != nil {
		restore()
		rp.Err = err
		return rp
	}
	s.forget(host)
	return rp
}
