package gateway

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
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
		lateEnd  bool // our own end landing late: the promise kept
	}{
		{"guest limit reached", limited(now.Add(-12*time.Hour), 12, 0), nil, EndLimit, true, false},
		{"host limit reached first", limited(now.Add(-9*time.Hour), 12, 8), nil, EndLimit, true, false},
		{"limit not reached: an operator", limited(now.Add(-1*time.Hour), 12, 24), nil, EndPortal, true, false},
		{"no limit: an operator", guestOf(host, now.Add(-48*time.Hour)), nil, EndPortal, true, false},
		{"our logout", limited(now.Add(-12*time.Hour), 12, 0), func(g *Gateway) { g.endingBy(alice, EndLogout) }, EndLogout, false, false},
		{"our sequence", limited(now.Add(-12*time.Hour), 12, 0), func(g *Gateway) { g.AssociationChanging(alice, "login") }, EndLogout, false, false},
		{"our recovery", guestOf(host, now), func(g *Gateway) { g.AssociationChanging(alice, "reconcile") }, EndRecovery, false, false},
		{"a stale note explains nothing", guestOf(host, now), func(g *Gateway) {
			g.mu.Lock()
			g.endReasons[alice] = endNote{reason: EndLogout, at: time.Now().Add(-endNoteTTL)}
			g.mu.Unlock()
		}, EndPortal, true, false},
		// A logout that gave up on its end-association: that end may land
		// late, and is ours then (the reconciler keeps the promise: back
		// at the desk), not BroadWorks'.
		{"our logout's end, given up on, landing late", guestOf(host, now),
			failedLogout(hoteling.StepEndAssociation, context.DeadlineExceeded), EndLogout, false, true},
		{"our logout failed elsewhere: a later end is BroadWorks'", guestOf(host, now),
			failedLogout("agent-sign-out", context.DeadlineExceeded), EndPortal, true, false},
		{"our logout's end refused: a later end is BroadWorks'", guestOf(host, now),
			failedLogout(hoteling.StepEndAssociation, &xsi.Error{Status: 400}), EndPortal, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			func() {
				h := newHarness(t)
				h.reconcile(t)
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
				// Released: the reconciler frees the desk, alice signed out.
				// Else nothing, or for our own end landing late the promise
				// kept: alice back at the desk.
				var want []string
				switch {
				case tt.released:
					want = []string{"Settle " + alice + " host= left=" + host + " acd=Sign-Out"}
				case tt.lateEnd:
					want = []string{"Settle " + alice + " host=" + host + " left= acd="}
				}
				h.settle(t)
				got := slices.DeleteFunc(h.hot.Calls(), func(c string) bool { return strings.HasPrefix(c, "Logout ") })
				if len(got) > 1 {
					got = got[:1] // the fake never makes the view show it: tried again
				}
				if !slices.Equal(got, want) {
					t.Errorf("hoteling calls %q, want %q", got, want)
				}
			}()
		})
	}
}

// failedLogout logs alice off through the gateway, the sequencer failing at
// step with err.
func failedLogout(step string, err error) func(g *Gateway) {
	return func(g *Gateway) {
		hot := g.hoteling().(*fakeHoteling)
		hot.mu.Lock()
		se := &hoteling.StepError{Op: "logout", Step: step, Kind: hoteling.ErrTimeout, Err: err}
		if xsi.MayApplyLate(err) {
			want := ""
			if step == "agent-sign-out" {
				se.Doubts = []hoteling.Doubt{{User: "alice@example.com", Step: step, Shows: func(u hoteling.User) bool { return u.ACDState == xsi.ACDSignOut }}}
			} else {
				se.Doubts = []hoteling.Doubt{{User: "alice@example.com", Step: step, Shows: func(u hoteling.User) bool { return u.HostUserID == want }}}
			}
		}
		hot.err = se
		hot.mu.Unlock()
		req := csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOff, AgentID: "A1"}
		if _, e := g.SetAgentState(context.Background(), csta.Requester{}, &req); e == nil {
			panic("the logout succeeded")
		}
		hot.mu.Lock()
		hot.err = nil
		hot.mu.Unlock()
	}
}
