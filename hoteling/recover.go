package hoteling

import (
	"github.com/broadworks-connector/connector/xsi"
)

// Repair is one half-done sequence HalfDone found and, once settled, what
// was done about it.
type Repair struct {
	GuestUserID string
	HostUserID  string
	Found       string // what BroadWorks showed
	Action      string // "undone" (back to logged out) or "completed" (on to logged in)
	Err         error  // nil when the repair succeeded
}

// HalfDone lists the sequences a crash or a lost link left half done among
// users (agents and hosts; the view must have their snapshots), the guest
// and host of each and what BroadWorks shows:
//   - a host forwarding to a guest's number (remembered, or per
//     Config.NumberOf) with no guest associated: a login that stopped after
//     the host CFA, or a logout that stopped after ending the association;
//   - a guest associated with a host but signed out: a login that stopped
//     before Unavailable, or a logout that stopped after Sign-Out;
//   - a host subscriber signed out, neither forwarding to the guest nor
//     with a guest, that a login remembers signing out (Remembered's
//     HostAgentState): a login that stopped after the host's sign-out.
//
// What to do about each (complete or undo, Config.RecoverMode) is the
// caller's promise to keep (Settle).
func (s *Sequencer) HalfDone(users []string) []Repair {
	return s.halfDone(users)
}

// Half-done shapes HalfDone finds.
const (
	foundSignedOutGuest = "guest associated but signed out"
	foundOrphanCFA      = "host forwarding to guest without association"
	foundHostSignedOut  = "host signed out by a login that did not finish"
)

// halfDone lists the half-done sequences the view shows among users.
func (s *Sequencer) halfDone(users []string) []Repair {
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
