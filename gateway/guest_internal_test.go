package gateway

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/xsi"
)

// TestGuestAtUnreadDesk: a request naming no agent on a hot desk whose
// guest the view does not know reads the desk; when that read fails,
// nothing says a guest sits there, and the view's answer (the desk's own
// user) stands, as before the read was added.
func TestGuestAtUnreadDesk(t *testing.T) {
	h := newHarness(t)
	h.act.cc = xsi.CallCenter{AgentACDState: xsi.ACDSignOut}
	h.act.errs = map[string]error{"GetHotelingHost": fmt.Errorf("fake: %w", xsi.ErrUnavailable)}
	resp, err := h.g.GetAgentState(context.Background(), csta.Requester{}, &csta.GetAgentState{Device: "desk1"})
	if err != nil {
		t.Fatalf("GetAgentState on desk1 with its read failing: %v, want the view's answer", err)
	}
	if len(resp.AgentStateList) != 1 || resp.AgentStateList[0].AgentID != "host1" {
		t.Errorf("GetAgentState on desk1: %+v, want host1's", resp.AgentStateList)
	}
	if calls := h.act.Calls(); !slices.ContainsFunc(calls, func(c string) bool { return c == "GetHotelingHost host1@example.com" }) {
		t.Errorf("calls %q, want the desk read", calls)
	}
}
