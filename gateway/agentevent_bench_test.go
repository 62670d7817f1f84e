package gateway

import (
	"testing"
	"time"
)

// BenchmarkAgentStateEvent: one stamped XSI agent-state event taken by
// the gateway, the agent's state changing each time (no observer, no
// front end): the event path's own cost.
//
//	go test -run '^$' -bench AgentStateEvent ./gateway/
func BenchmarkAgentStateEvent(b *testing.B) {
	h := newHarness(b)
	states := []string{"Available", "Unavailable"}
	b.ReportAllocs()
	for i := range b.N {
		e := agentState(states[i%2], "")
		e.Info.StateTimestamp = time.Now()
		h.g.HandleXSIEvent(xev("alice@example.com", e))
	}
}
