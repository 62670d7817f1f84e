package gateway

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/xsi"
)

// fakeJournal records writes, each taking delay.
type fakeJournal struct {
	delay time.Duration
	mu    sync.Mutex
	log   []string
}

func (j *fakeJournal) Begin(_ context.Context, a Association) error {
	time.Sleep(j.delay)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.log = append(j.log, fmt.Sprintf("begin %s %s at %s", a.AgentID, a.DeskDeviceID, a.DeskUserID))
	return nil
}

func (j *fakeJournal) End(_ context.Context, agent string, _ time.Time, reason, _ string) error {
	time.Sleep(j.delay)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.log = append(j.log, fmt.Sprintf("end %s %s", agent, reason))
	return nil
}

func (j *fakeJournal) entries() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.log)
}

// TestJournalRecordsAssociations: every association the view sees is
// journalled, whoever made it, with why it ended; a hot-desk login or
// logout is answered only once its record is written.
func TestJournalRecordsAssociations(t *testing.T) {
	const alice = "alice@example.com"
	h := newHarness(t)
	j := &fakeJournal{delay: 50 * time.Millisecond}
	h.g.SetJournal(j)
	// The fake hoteling's Login / Logout make BroadWorks' event arrive
	// before they return, as the real sequence's confirmation does.
	h.hot.onLogin = func() { h.g.HandleXSIEvent(xev(alice, guestOf("host1@example.com", time.Now()))) }
	h.hot.onLogout = func() { h.g.HandleXSIEvent(xev(alice, &xsi.HotelingGuestEvent{Active: true})) }

	if _, err := h.g.SetAgentState(context.Background(), csta.Requester{}, &csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOn, AgentID: "A1"}); err != nil {
		t.Fatal(err)
	}
	if got := j.entries(); !slices.Equal(got, []string{"begin A1 desk1 at host1@example.com"}) {
		t.Fatalf("after the login's answer the journal has %q", got)
	}
	if _, err := h.g.SetAgentState(context.Background(), csta.Requester{}, &csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOff, AgentID: "A1"}); err != nil {
		t.Fatal(err)
	}
	if got := j.entries(); len(got) != 2 || got[1] != "end alice@example.com logout" {
		t.Fatalf("after the logout's answer the journal has %q", got)
	}
	// A portal association and its end, then a forced logout.
	h.g.HandleXSIEvent(xev(alice, guestOf("host2@example.com", time.Now())))
	h.g.HandleXSIEvent(xev(alice, &xsi.HotelingGuestEvent{Active: true}))
	h.g.HandleXSIEvent(xev(alice, guestOf("host1@example.com", time.Now())))
	h.g.HandleXSIEvent(xev(alice, agentState("Available", "")))
	if err := h.g.ForceLogout(context.Background(), "A1"); err != nil {
		t.Fatal(err)
	}
	h.g.CloseJournal()
	want := []string{
		"begin A1 desk1 at host1@example.com", "end alice@example.com logout",
		"begin A1 desk2 at host2@example.com", "end alice@example.com portal",
		"begin A1 desk1 at host1@example.com", "end alice@example.com forced",
	}
	if got := j.entries(); !slices.Equal(got, want) {
		t.Errorf("journal\n got %q\nwant %q", got, want)
	}
	h.settle(t)
}

// TestJournalRecordsAssociationFirstRead: an association BroadWorks already
// shows when the gateway first reads the agent, with no event reporting
// it (after a takeover the new active adopts the dead one's subscriptions,
// and the dead one may have made the association without writing it), is
// journalled too, from BroadWorks' association time; reading the agent
// again records nothing more.
func TestJournalRecordsAssociationFirstRead(t *testing.T) {
	const alice = "alice@example.com"
	cfg := testConfig
	cfg.LoadUsers = true
	h := newHarnessConfig(t, cfg)
	j := &fakeJournal{}
	h.g.SetJournal(j)
	h.act.guest = xsi.HotelingGuest{Active: true, HostUserID: "host1@example.com", HostAssociationDateTime: time.Now().Add(-time.Minute)}
	for range 2 {
		if unknown := h.g.Load(context.Background(), []string{alice}); len(unknown) > 0 {
			t.Fatalf("unknown: %q", unknown)
		}
	}
	h.g.Close() // waits for the loads: their records are queued
	h.g.CloseJournal()
	if got, want := j.entries(), []string{"begin A1 desk1 at host1@example.com"}; !slices.Equal(got, want) {
		t.Errorf("journal\n got %q\nwant %q", got, want)
	}
}

// TestEndUnseen: a record the journal kept open is ended only when the
// view knows the agent and shows it at no desk (at a desk, the view queued
// that association's record, which ends the other), on the agent's
// writer: in order with the agent's own records.
func TestEndUnseen(t *testing.T) {
	const alice, bob = "alice@example.com", "bob@example.com"
	cfg := testConfig
	cfg.LoadUsers = true
	h := newHarnessConfig(t, cfg)
	j := &fakeJournal{delay: 5 * time.Millisecond}
	h.g.SetJournal(j)
	h.act.guest = xsi.HotelingGuest{Active: true, HostUserID: "host1@example.com", HostAssociationDateTime: time.Now().Add(-time.Minute)}
	if unknown := h.g.Load(context.Background(), []string{alice}); len(unknown) > 0 {
		t.Fatalf("unknown: %q", unknown)
	}
	h.act.guest = xsi.HotelingGuest{}
	if unknown := h.g.Load(context.Background(), []string{bob}); len(unknown) > 0 {
		t.Fatalf("unknown: %q", unknown)
	}
	for _, tt := range []struct {
		agent string
		want  bool
	}{
		{alice, false},                // at a desk: her record there is queued already
		{"nobody@example.com", false}, // a user the view does not know (another instance's)
		{bob, true},                   // at no desk: what the journal has open ended unseen
	} {
		if got := h.g.EndUnseen(tt.agent, "unknown", "ended while the connector was not watching"); got != tt.want {
			t.Errorf("EndUnseen(%s) = %v, want %v", tt.agent, got, tt.want)
		}
	}
	h.g.Close()
	h.g.CloseJournal()
	// Two agents, two writers: in no particular order.
	if got, want := slices.Sorted(slices.Values(j.entries())), []string{"begin A1 desk1 at host1@example.com", "end bob@example.com unknown"}; !slices.Equal(got, want) {
		t.Errorf("journal\n got %q\nwant %q", got, want)
	}
}
