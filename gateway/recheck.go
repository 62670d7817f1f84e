package gateway

import (
	"context"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// An agent-state request the connector gave up on (its deadline passed, or
// the XSP answered 5xx) may still be applied by the XSP afterwards
// (research/xsi.md): the XSP received it and works on it. Landing on its
// own, that late change is reported by its event like any other change,
// and the client, told the request failed, hears the new state on its
// monitor. But landing after a later request of the same agent succeeded
// (Ready given up on, then a logout that succeeded: the agent back in the
// ACD while logged out), it overrides what the client was last told. The
// hot-desk sequencer re-checks its own steps (hoteling/recheck.go); this is
// the same for the single agent-state requests of the gateway:
// Config.RecheckAfter after the failure, when a later agent-state request
// of the same agent has succeeded since and the view shows the state the
// failed request asked for instead of the one the later request set, the
// later request's state is sent again.

// agentStateAt is an agent state and when: a request's given up on that
// the XSP may still apply (userState.doubts), or the one the last
// successful request left (userState.intent).
type agentStateAt struct {
	state xsi.ACDState
	code  string
	at    time.Time
}

// doubtAgentState records a failed agent-state request the XSP may still
// apply and schedules the re-check of its agent.
func (g *Gateway) doubtAgentState(user string, state xsi.ACDState, code string) {
	after := g.cfg().RecheckAfter
	if after <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	u := g.user(user)
	u.doubts = append(u.doubts, agentStateAt{state: state, code: code, at: time.Now()})
	if len(u.doubts) > maxDoubts {
		u.doubts = u.doubts[len(u.doubts)-maxDoubts:]
	}
	if t := g.rechecks[user]; t != nil {
		t.Reset(after) // one re-check per agent, after its newest doubt
		return
	}
	g.rechecks[user] = time.AfterFunc(after, func() { g.recheckAgent(user, 0) })
}

// maxDoubts bounds the failed requests remembered per agent until its
// re-check (only whether one of them matches the view matters).
const maxDoubts = 8

// noteIntent records, after a successful agent-state request, the state it
// left in the view (the XSP's 200 or, for a hot-desk sequence, its
// confirming events).
func (g *Gateway) noteIntent(user string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.user(user)
	v := u.view()
	u.intent = agentStateAt{state: v.ACDState, code: v.UnavailableCode, at: time.Now()}
}

// AgentIntent is the agent state the last successful CTI or phone request
// left, and when (hoteling.AgentIntents); "" when none.
func (g *Gateway) AgentIntent(user string) (xsi.ACDState, string, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if u := g.users[user]; u != nil {
		return u.intent.state, u.intent.code, u.intent.at
	}
	return "", "", time.Time{}
}

// recheckAgent looks at user's failed requests again; while a request of
// the agent is in flight it waits for it (a few times at most).
func (g *Gateway) recheckAgent(user string, tries int) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	u := g.user(user)
	if u.inflight > 0 && tries < 5 {
		g.rechecks[user] = time.AfterFunc(time.Second, func() { g.recheckAgent(user, tries+1) })
		g.mu.Unlock()
		return
	}
	delete(g.rechecks, user)
	g.settles.Add(1) // Wait waits for it
	defer g.settles.Done()
	doubts, intent := u.doubts, u.intent
	u.doubts = nil
	fresh, state, code := u.agentFresh, u.acdState, u.unavailableCode
	g.mu.Unlock()

	if !fresh || intent.state == "" || (state == intent.state && (intent.code == "" || code == intent.code)) {
		return // nothing to say, or the view shows what the client was last told
	}
	for _, d := range doubts {
		if !intent.at.After(d.at) || d.state != state || (d.code != "" && d.code != code) {
			continue
		}
		g.log.Warn("gateway: an agent-state request given up on was applied late, over a later request; setting the later state again",
			"agent", user, "late", d.state, "given_up", d.at.Format(time.RFC3339Nano), "state", intent.state, "code", intent.code)
		g.lateUndone.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), g.staleLogoutTimeout())
		defer cancel()
		if err := g.deps.Actions.SetAgentState(ctx, user, intent.state, intent.code); err != nil {
			g.log.Error("gateway: setting the later agent state again failed", "agent", user, "state", intent.state, "err", err)
		}
		return
	}
}

// stopRechecksLocked stops the re-checks still to come (Close).
func (g *Gateway) stopRechecksLocked() {
	for user, t := range g.rechecks {
		t.Stop()
		delete(g.rechecks, user)
	}
}
