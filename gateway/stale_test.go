package gateway

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
)

// TestStaleLogins: an agent a vanished CTI connection left logged on is
// logged off after the grace period; not when another connection logged it
// on meanwhile, nor when the connector itself is stopping, nor when the
// cleanup is off. (The journal's "stale" reason rides the same context
// value as "forced", checked in TestJournalRecordsAssociations.)
func TestStaleLogins(t *testing.T) {
	const bob = "bob@example.com"
	tests := []struct {
		name      string
		grace     time.Duration
		relogin   bool // another connection logs bob on before the grace ends
		shutdown  bool
		wantSignO bool
	}{
		{"vanished client: logged off", 50 * time.Millisecond, false, false, true},
		{"logged on again by another client", 50 * time.Millisecond, true, false, false},
		{"connector shutting down", 50 * time.Millisecond, false, true, false},
		{"cleanup off", 0, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig
			cfg.StaleLoginGrace = tt.grace
			h := newHarnessConfig(t, cfg)
			t.Cleanup(h.g.Close)
			ctx := context.Background()
			first, second := csta.Requester{ConnID: 1}, csta.Requester{ConnID: 2}
			if _, err := h.g.SetAgentState(ctx, first, &csta.SetAgentState{Device: "bob", RequestedState: csta.ReqLoggedOn}); err != nil {
				t.Fatal(err)
			}
			h.g.HandleXSIEvent(xev(bob, agentState("Unavailable", "999")))
			if tt.relogin {
				if _, err := h.g.SetAgentState(ctx, second, &csta.SetAgentState{Device: "bob", RequestedState: csta.ReqLoggedOn}); err != nil {
					t.Fatal(err)
				}
			}
			h.g.ConnectionClosed(first, tt.shutdown)
			signedOut := func() bool { return slices.Contains(h.act.Calls(), `SetAgentState bob@example.com Sign-Out ""`) }
			if tt.wantSignO {
				deadline := time.Now().Add(10 * time.Second)
				for !signedOut() && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			} else {
				time.Sleep(tt.grace + 200*time.Millisecond) // past the grace: nothing may happen
			}
			if signedOut() != tt.wantSignO {
				t.Errorf("signed out %v, want %v (calls %q)", signedOut(), tt.wantSignO, h.act.Calls())
			}
			h.settle(t)
		})
	}
}
