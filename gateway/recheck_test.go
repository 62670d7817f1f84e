package gateway

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/xsi"
)

// An agent-state request given up on and applied late by the XSP over a
// later request is set back to the later request's state; left alone when
// nothing later was asked, when the XSP cannot have applied it, or when
// the view moved on since.
func TestRecheckLateAgentState(t *testing.T) {
	const alice = "alice@example.com"
	serverError := &xsi.Error{Method: "PUT", Status: http.StatusInternalServerError}
	overloaded := &xsi.Error{Method: "PUT", Status: http.StatusServiceUnavailable}
	tests := []struct {
		name    string
		before  *csta.SetAgentState      // an earlier request, succeeding (nil: none)
		failErr error                    // the first request's failure
		then    *csta.SetAgentState      // a later request, succeeding (nil: none)
		thenEv  *xsi.AgentStateEvent     // its confirming event
		late    []*xsi.SubscriptionEvent // what the XSP reports after that
		want    []string                 // Actions calls after the requests
	}{
		{
			name:    "Ready given up on, Not Ready, then the Ready lands: Not Ready again",
			failErr: serverError,
			then:    &csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqNotReady, ReasonCode: "lunch"},
			thenEv:  agentState("Unavailable", "100"),
			late:    []*xsi.SubscriptionEvent{xev(alice, agentState("Available", ""))},
			want:    []string{`SetAgentState alice@example.com Unavailable "100"`},
		},
		{
			name:    "Ready timed out, logged off, then the Ready lands: signed out again",
			failErr: context.DeadlineExceeded,
			then:    &csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqLoggedOff},
			thenEv:  agentState("Sign-Out", ""),
			late:    []*xsi.SubscriptionEvent{xev(alice, agentState("Available", ""))},
			want:    []string{`SetAgentState alice@example.com Sign-Out ""`},
		},
		{
			name:    "nothing asked since: the late Ready stands (the monitor heard it)",
			failErr: serverError,
			late:    []*xsi.SubscriptionEvent{xev(alice, agentState("Available", ""))},
		},
		{
			name:    "Not Ready before, nothing since: the late Ready stands",
			before:  &csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqNotReady, ReasonCode: "lunch"},
			failErr: serverError,
			late:    []*xsi.SubscriptionEvent{xev(alice, agentState("Available", ""))},
		},
		{
			name:    "503: the XSP did nothing; a later Available is someone else's",
			failErr: overloaded,
			then:    &csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqNotReady, ReasonCode: "lunch"},
			thenEv:  agentState("Unavailable", "100"),
			late:    []*xsi.SubscriptionEvent{xev(alice, agentState("Available", ""))},
		},
		{
			name:    "the view moved on after the late change: left alone",
			failErr: serverError,
			then:    &csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqNotReady, ReasonCode: "lunch"},
			thenEv:  agentState("Unavailable", "100"),
			late: []*xsi.SubscriptionEvent{xev(alice, agentState("Available", "")),
				xev(alice, agentState("Wrap-Up", ""))},
		},
		{
			name:    "the late request never landed: nothing to do",
			failErr: serverError,
			then:    &csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqNotReady, ReasonCode: "lunch"},
			thenEv:  agentState("Unavailable", "100"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig
			cfg.RecheckAfter = 30 * time.Millisecond
			h := newHarnessConfig(t, cfg)
			h.g.HandleXSIEvent(xev(alice, agentSnap("Unavailable", "200")))
			if tt.before != nil {
				if _, err := h.g.SetAgentState(context.Background(), csta.Requester{}, tt.before); err != nil {
					t.Fatalf("earlier request: %v", err)
				}
				h.g.HandleXSIEvent(xev(alice, agentState("Unavailable", "100")))
			}

			h.act.mu.Lock()
			h.act.errs = map[string]error{"SetAgentState": tt.failErr}
			h.act.mu.Unlock()
			ready := csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqReady}
			if _, err := h.g.SetAgentState(context.Background(), csta.Requester{}, &ready); err == nil {
				t.Fatal("Ready: no error")
			}
			h.act.mu.Lock()
			h.act.errs = nil
			h.act.mu.Unlock()
			if tt.then != nil {
				if _, err := h.g.SetAgentState(context.Background(), csta.Requester{}, tt.then); err != nil {
					t.Fatalf("later request: %v", err)
				}
				h.g.HandleXSIEvent(xev(alice, tt.thenEv))
			}
			for _, ev := range tt.late {
				h.g.HandleXSIEvent(ev)
			}
			before := len(h.act.Calls())
			waitRechecks(t, h.g)
			if got := h.act.Calls()[before:]; !slices.Equal(got, tt.want) {
				t.Errorf("calls after the re-check = %q, want %q", got, tt.want)
			}
			h.g.Close()
		})
	}
}

// A re-check waits for a request of the agent still in flight: run while
// one is, it only schedules itself again.
func TestRecheckWaitsForInflight(t *testing.T) {
	const alice = "alice@example.com"
	cfg := testConfig
	cfg.RecheckAfter = time.Hour // the test runs the re-check itself
	h := newHarnessConfig(t, cfg)
	h.g.HandleXSIEvent(xev(alice, agentSnap("Unavailable", "200")))
	h.g.doubtAgentState(alice, xsi.ACDAvailable, "")
	release := h.g.hold(context.Background(), alice)
	h.g.recheckAgent(alice, 0)
	h.g.mu.Lock()
	pending := h.g.rechecks[alice] != nil && len(h.g.users[alice].doubts) == 1
	h.g.mu.Unlock()
	if !pending {
		t.Fatal("the re-check ran while a request was in flight")
	}
	release()
	waitRechecks(t, h.g)
	h.g.Close()
}

// waitRechecks waits until no re-check is scheduled (each has run).
func waitRechecks(t *testing.T, g *Gateway) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		n := len(g.rechecks)
		g.mu.Unlock()
		if n == 0 {
			g.Wait() // the last one may still be running
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("re-checks still scheduled after 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
