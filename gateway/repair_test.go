package gateway

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// TestRepairLoop: repair runs after a link recovery only once the resync
// has refreshed every user's view (or the wait ran out), once per recovery,
// never while the link is down.
func TestRepairLoop(t *testing.T) {
	const alice, host = "alice@example.com", "host1@example.com"
	snapshot := func(h *harness) {
		h.g.HandleXSIEvent(xev(alice, agentState("Available", "")))
		h.g.HandleXSIEvent(xev(alice, &xsi.HotelingGuestEvent{Active: true}))
		h.g.HandleXSIEvent(xev(host, &xsi.CallForwardingAlwaysEvent{}))
	}
	tests := []struct {
		name    string
		startup bool
		wait    time.Duration
		steps   func(t *testing.T, h *harness, calls <-chan []string)
	}{
		{"startup: first snapshot, then each recovery", true, time.Hour, func(t *testing.T, h *harness, calls <-chan []string) {
			expectNone(t, calls) // nothing known yet
			snapshot(h)
			expectCall(t, calls)
			h.g.SetLinkUp(false)
			h.g.SetLinkUp(true)
			expectNone(t, calls) // views stale until the resync's events
			h.g.HandleXSIEvent(xev(alice, agentState("Available", "")))
			h.g.HandleXSIEvent(xev(alice, &xsi.HotelingGuestEvent{Active: true}))
			expectNone(t, calls) // host still stale
			h.g.HandleXSIEvent(xev(host, &xsi.CallForwardingAlwaysEvent{}))
			expectCall(t, calls)
			expectNone(t, calls) // once per recovery
		}},
		{"no startup: only recoveries", false, time.Hour, func(t *testing.T, h *harness, calls <-chan []string) {
			snapshot(h)
			expectNone(t, calls)
			h.g.SetLinkUp(false)
			expectNone(t, calls)
			snapshot(h) // events while down do not count: the link is down
			expectNone(t, calls)
			h.g.SetLinkUp(true)
			expectNone(t, calls)
			snapshot(h)
			expectCall(t, calls)
		}},
		{"snapshot wait runs out: repair on what is known", false, time.Second, func(t *testing.T, h *harness, calls <-chan []string) {
			snapshot(h)
			h.g.SetLinkUp(false)
			h.g.SetLinkUp(true)
			time.Sleep(2 * time.Second)
			expectCall(t, calls)
		}},
		{"snapshots after the wait: a second pass for those users", true, time.Second, func(t *testing.T, h *harness, calls <-chan []string) {
			h.g.HandleXSIEvent(xev(host, &xsi.CallForwardingAlwaysEvent{})) // alice's snapshot is late
			time.Sleep(2 * time.Second)
			if got := <-calls; !slices.Equal(got, []string{PassStartup, alice, host}) {
				t.Fatalf("first pass %q", got)
			}
			expectNone(t, calls)
			h.g.HandleXSIEvent(xev(alice, agentState("Available", "")))
			h.g.HandleXSIEvent(xev(alice, &xsi.HotelingGuestEvent{Active: true}))
			time.Sleep(2 * lateSnapshotPoll)
			if got := <-calls; !slices.Equal(got, []string{PassLateSnapshot, alice}) {
				t.Fatalf("second pass %q", got)
			}
			expectNone(t, calls)
		}},
		{"lost again while waiting: no repair for that recovery", false, time.Hour, func(t *testing.T, h *harness, calls <-chan []string) {
			snapshot(h)
			h.g.SetLinkUp(false)
			h.g.SetLinkUp(true)
			h.g.SetLinkUp(false)
			expectNone(t, calls)
			h.g.SetLinkUp(true)
			snapshot(h)
			expectCall(t, calls)
			expectNone(t, calls)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t)
				ctx, cancel := context.WithCancel(t.Context())
				calls := make(chan []string, 10)
				done := make(chan struct{})
				since := h.g.LinkEpoch()
				go func() {
					defer close(done)
					h.g.RepairLoop(ctx, []string{alice, host}, RepairOptions{Startup: tt.startup, Since: since, SnapshotWait: tt.wait},
						func(ctx context.Context, users []string) { calls <- append([]string{RepairPass(ctx)}, users...) })
				}()
				tt.steps(t, h, calls)
				cancel()
				<-done
				h.g.Wait()
			})
		})
	}
}

// expectCall / expectNone look at the loop after letting it run a while
// (inside a synctest bubble: fake time, so no flakiness).
func expectCall(t *testing.T, calls <-chan []string) {
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	select {
	case <-calls:
	default:
		t.Fatal("repair not called")
	}
}

func expectNone(t *testing.T, calls <-chan []string) {
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	select {
	case users := <-calls:
		t.Fatalf("repair called (%v)", users)
	default:
	}
}
