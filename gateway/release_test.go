package gateway

import (
	"slices"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

// TestAssociationEnds: why an association ended, as the journal records
// it, and whether the desk is released (BroadWorks' own ends only).
func TestAssociationEnds(t *testing.T) {
	const alice, host = "alice@example.com", "host1@example.com"
	limited := func(since time.Time, hours, hostHours int) *xsi.HotelingGuestEvent {
		ev := guestOf(host, since)
		ev.EnableAssociationLimit, ev.AssociationLimitHours = hours > 0, hours
		ev.HostEnforcesAssociationLimit, ev.HostAssociationLimitHours = hostHours > 0, hostHours
		return ev
	}
	now := time.Now()
	tests := []struct {
		name     string
		assoc    *xsi.HotelingGuestEvent
		before   func(g *Gateway) // just before BroadWorks' end event
		reason   string
		released bool
	}{
		{"guest limit reached", limited(now.Add(-12*time.Hour), 12, 0), nil, EndLimit, true},
		{"host limit reached first", limited(now.Add(-9*time.Hour), 12, 8), nil, EndLimit, true},
		{"limit not reached: an operator", limited(now.Add(-1*time.Hour), 12, 24), nil, EndPortal, true},
		{"no limit: an operator", guestOf(host, now.Add(-48*time.Hour)), nil, EndPortal, true},
		{"our logout", limited(now.Add(-12*time.Hour), 12, 0), func(g *Gateway) { g.endingBy(alice, EndLogout) }, EndLogout, false},
		{"our sequence", limited(now.Add(-12*time.Hour), 12, 0), func(g *Gateway) { g.AssociationChanging(alice, "login") }, EndLogout, false},
		{"our recovery", guestOf(host, now), func(g *Gateway) { g.AssociationChanging(alice, "recover") }, EndRecovery, false},
		{"a stale note explains nothing", guestOf(host, now), func(g *Gateway) {
			g.mu.Lock()
			g.endReasons[alice] = endNote{reason: EndLogout, at: time.Now().Add(-endNoteTTL)}
			g.mu.Unlock()
		}, EndPortal, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			j := &fakeJournal{}
			h.g.SetJournal(j)
			h.g.HandleXSIEvent(xev(alice, tt.assoc))
			if tt.before != nil {
				tt.before(h.g)
			}
			h.g.HandleXSIEvent(xev(alice, &xsi.HotelingGuestEvent{Active: true}))
			h.g.CloseJournal()
			if got := j.entries(); len(got) != 2 || got[1] != "end "+alice+" "+tt.reason {
				t.Errorf("journal %q, want the end for %s", got, tt.reason)
			}
			want := []string{"Release " + alice + " " + host}
			if !tt.released {
				want = nil
			}
			for deadline := time.Now().Add(5 * time.Second); len(h.hot.Calls()) < len(want) && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			h.settle(t)
			if got := h.hot.Calls(); !slices.Equal(got, want) {
				t.Errorf("hoteling calls %q, want %q", got, want)
			}
		})
	}
}
