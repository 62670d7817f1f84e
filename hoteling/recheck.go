package hoteling

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// A step that failed on a timeout, a 5xx or a contradicting event may
// still be applied by the XSP after the sequence gave up and undid itself:
// the XSP received the request and works on it (research/xsi.md). Such a
// sequence is looked at again Config.RecheckAfter after it ended, under its
// users' locks:
//   - the step in doubt: when the view shows what it asked for and not what
//     its undo restored, the late change has landed, and the undo is sent
//     again (so BroadWorks ends as the client was told: as before);
//   - then Recover on the users the sequence touched, for any half-done
//     shape left: undone after a failed login, completed after a failed
//     logout (with the agent state last told set again), as the client
//     was told the sequence failed.
//
// Only the one step whose outcome was unknown is re-checked: the other
// steps were confirmed and so were their undos, and a later change by
// someone else to other parts of the view is left alone.
//
// When a later sequence (or a later CTI or phone request, AgentIntents)
// set the same part of the same user after the failure, the undo is not
// what BroadWorks must end as: that later word is. A late change over it
// is then answered by setting the later word again (the latency-spike
// fault: a sign-out given up on landed 10 s later, over the next login).
// Without a later word but with a later request on the same part of the
// user (RequestClock: an agent state or a forwarding change) the step is
// left alone.

// inDoubt is a failed step that may still be applied, and its undo; gen
// and at are the step user's generation and the time when its sequence
// ended: a later sequence or request on that user wins over the re-check.
type inDoubt struct {
	st, undo step
	gen      uint64
	at       time.Time
}

// recheckSet is one scheduled re-check.
type recheckSet struct {
	timer  *time.Timer
	users  []string
	doubts []inDoubt
	op     string // the latest failed sequence's ("login", "logout", …)
}

// scheduleRecheck arranges the re-check of a failed sequence over users,
// with its steps in doubt (the failed one, and undos that failed). One
// timer per set of users: a later failure on the same users adds its steps
// and moves the time on.
func (s *Sequencer) scheduleRecheck(op string, users []string, doubts []inDoubt) {
	if s.cfg.RecheckAfter <= 0 || len(users) == 0 {
		return
	}
	users = slices.Compact(slices.Sorted(slices.Values(users)))
	key := strings.Join(users, "|")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	rs := s.rechecks[key]
	if rs == nil {
		rs = &recheckSet{users: users}
		s.rechecks[key] = rs
		rs.timer = time.AfterFunc(s.cfg.RecheckAfter, func() { s.recheck(key) })
	} else {
		rs.timer.Reset(s.cfg.RecheckAfter)
	}
	rs.doubts = append(rs.doubts, doubts...)
	rs.op = op
}

func (s *Sequencer) recheck(key string) {
	s.mu.Lock()
	rs := s.rechecks[key]
	delete(s.rechecks, key)
	closed := s.closed
	s.mu.Unlock()
	if closed || rs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*s.cfg.StepTimeout*time.Duration(len(rs.users)+len(rs.doubts)))
	defer cancel()
	s.logger.Info("hoteling: re-checking a failed sequence the XSP may have applied late", "users", rs.users)
	s.redoUndos(ctx, rs.doubts)
	// What the failed sequence's client was told is "as before": a failed
	// login's half-done shapes are undone (logged out), a failed logout's
	// completed (logged in, in the agent state it was last told).
	if rs.op == "logout" {
		s.recover(ctx, rs.users, RecoverComplete, true)
		s.restoreIntents(ctx, rs.users)
		return
	}
	s.recover(ctx, rs.users, RecoverUndo, true)
}

// restoreIntents sets again, for each guest among users still at a desk
// and signed in, the agent state a CTI or phone request last left
// (AgentIntents), when the view shows another: completing a login puts
// the agent Unavailable.
func (s *Sequencer) restoreIntents(ctx context.Context, users []string) {
	ai, ok := s.view.(AgentIntents)
	if !ok {
		return
	}
	for _, id := range users {
		state, code, _ := ai.AgentIntent(id)
		if state == "" || state == xsi.ACDSignOut || state == xsi.ACDSignIn {
			continue
		}
		release, err := s.lockFor(ctx, func() []string { return []string{agentKey(id)} })
		if err != nil {
			return
		}
		v := s.view.User(id)
		st := s.acdStep(id, "agent-state-again", state, code)
		if v.HostUserID != "" && signedIn(v) && !st.want(v) {
			s.logger.Info("hoteling: re-check sets the agent state last told again", "user", id, "state", state, "code", code)
			if err := s.exec(ctx, "recheck", st, v); err != nil {
				s.logger.Error("hoteling: setting the agent state last told failed", "user", id, "err", err)
			}
		}
		release()
	}
}

// redoUndos sends again the undo of each step in doubt whose late change
// the view shows.
func (s *Sequencer) redoUndos(ctx context.Context, doubts []inDoubt) {
	if len(doubts) == 0 {
		return
	}
	release, err := s.lockFor(ctx, func() []string {
		var keys []string
		for _, d := range doubts {
			keys = append(keys, agentKey(d.st.user), hostKey(d.st.user))
		}
		return slices.Compact(slices.Sorted(slices.Values(keys)))
	})
	if err != nil {
		s.logger.Error("hoteling: re-check could not lock its users", "err", err)
		return
	}
	defer release()
	for i := len(doubts) - 1; i >= 0; i-- {
		d := doubts[i]
		v := s.view.User(d.st.user)
		if last, ok := s.laterWord(d); ok {
			if !d.st.want(v) || last.want(v) {
				continue // the late change has not landed, or the later word stands
			}
			s.logger.Warn("hoteling: a request given up on was applied late, over a later change; setting that again",
				"step", d.st.name, "user", d.st.user, "view", d.st.proj(v), "again", last.name)
			if err := s.exec(ctx, "recheck", last, v); err != nil {
				s.logger.Error("hoteling: setting a later change again failed", "step", last.name, "user", last.user, "err", err)
			}
			continue
		}
		if s.generation(d.st.user) != d.gen {
			s.logger.Debug("hoteling: re-check skips a step: a later sequence acted on its user", "step", d.st.name, "user", d.st.user)
			continue
		}
		// A CTI or phone request changes agent states and forwarding, never
		// an association (that takes a sequence, a word above).
		if c, ok := s.view.(RequestClock); ok && d.st.facet != facetAssoc && c.LastRequest(d.st.user).After(d.at) {
			s.logger.Debug("hoteling: re-check skips a step: a later request changed its user", "step", d.st.name, "user", d.st.user)
			continue
		}
		if !d.st.want(v) || d.undo.want(v) {
			continue
		}
		s.logger.Warn("hoteling: a request given up on was applied late; undoing it again",
			"step", d.st.name, "user", d.st.user, "view", d.st.proj(v))
		if err := s.exec(ctx, "recheck", d.undo, v); err != nil {
			s.logger.Error("hoteling: undoing a late change failed", "step", d.undo.name, "user", d.undo.user, "err", err)
		}
	}
}

// Close stops the re-checks still to come (the connector is stopping); a
// sequence running still finishes.
func (s *Sequencer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for key, rs := range s.rechecks {
		rs.timer.Stop()
		delete(s.rechecks, key)
	}
}

// touch counts a sequence step on user (exec), for the re-check's
// generation test.
func (s *Sequencer) touch(user string) {
	s.mu.Lock()
	s.gens[user]++
	s.mu.Unlock()
}

func (s *Sequencer) generation(user string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gens[user]
}

// The parts of a user a step sets (step.facet).
const (
	facetACD   = "acd"
	facetCFA   = "cfa"
	facetAssoc = "assoc"
)

// word is the last change the sequencer made (or found made and relied
// on) to one part of one user.
type word struct {
	st step
	at time.Time
}

// noteWord records st as the last word on its user's part.
func (s *Sequencer) noteWord(st step) {
	if st.facet == "" || s.cfg.RecheckAfter <= 0 {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.words[st.user+"|"+st.facet] = word{st: st, at: now}
	// Only words newer than a failure still to be re-checked matter: now
	// and then, drop the ones older than any such failure can be.
	if s.wordsNoted++; s.wordsNoted%1024 == 0 {
		for k, w := range s.words {
			if now.Sub(w.at) > 2*s.cfg.RecheckAfter {
				delete(s.words, k)
			}
		}
	}
}

// laterWord is the change set on d's part of d's user after d's sequence
// ended: the sequencer's own, or for the agent state a CTI or phone
// request's (AgentIntents), whichever came last.
func (s *Sequencer) laterWord(d inDoubt) (step, bool) {
	s.mu.Lock()
	w, ok := s.words[d.st.user+"|"+d.st.facet]
	s.mu.Unlock()
	ok = ok && w.at.After(d.at)
	if d.st.facet == facetACD {
		if ai, is := s.view.(AgentIntents); is {
			if state, code, at := ai.AgentIntent(d.st.user); state != "" && at.After(d.at) && (!ok || at.After(w.at)) {
				return s.acdStep(d.st.user, "agent-state-again", state, code), true
			}
		}
	}
	return w.st, ok
}

// endInDoubt reports whether a re-check still to come holds an end of
// guest's association that a failed sequence gave up on.
func (s *Sequencer) endInDoubt(guest string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range s.rechecks {
		for _, d := range rs.doubts {
			if d.st.user == guest && d.st.facet == facetAssoc && d.st.want(User{ID: guest}) {
				return true
			}
		}
	}
	return false
}
