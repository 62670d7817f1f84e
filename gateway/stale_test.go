package gateway

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
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
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig
				cfg.StaleLoginGrace = tt.grace
				h := newHarnessConfig(t, cfg)
				h.reconcile(t)
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
				time.Sleep(tt.grace + time.Second) // past the grace
				synctest.Wait()
				signedOut := slices.Contains(h.hot.Calls(), "Settle bob@example.com host= left= acd=Sign-Out")
				if signedOut != tt.wantSignO {
					t.Errorf("logged off by the reconciler %v, want %v (calls %q)", signedOut, tt.wantSignO, h.hot.Calls())
				}
				if w, origin, _ := h.g.Promise(bob); tt.wantSignO && (origin != OriginStaleLogin || w.ACD != "Sign-Out") {
					t.Errorf("promise %+v from %s, want Sign-Out from %s", w, origin, OriginStaleLogin)
				}
				h.settle(t)
			})
		})
	}
}
