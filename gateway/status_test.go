package gateway

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/xsi"
)

type fakeObserver struct {
	mu       sync.Mutex
	calls    []string
	activity []AgentActivity
}

func (o *fakeObserver) UsersChanged(ids ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, "users "+ids[0])
}
func (o *fakeObserver) LinkChanged(up bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, map[bool]string{true: "link up", false: "link down"}[up])
}
func (o *fakeObserver) AgentActivity(a AgentActivity) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.activity = append(o.activity, a)
}
func (o *fakeObserver) PhoneChanged(dn string, in bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, "phone "+dn)
}

// TestOperatorsView: agents and devices as the admin API shows them, from
// the XSI-fed view; the observer hears what changed.
func TestOperatorsView(t *testing.T) {
	h := newHarness(t)
	obs := &fakeObserver{}
	h.g.SetObserver(obs)
	since := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	h.g.HandleXSIEvent(xev("alice@example.com", agentState("Unavailable", "200")))
	h.g.HandleXSIEvent(xev("alice@example.com", guestOf("host1@example.com", since)))
	h.g.HandleXSIEvent(xev("host1@example.com", &xsi.CallForwardingAlwaysEvent{Active: true, ForwardToPhoneNumber: "tel:+15550001"}))
	h.g.HandleXSIEvent(xev("host1@example.com", dnd(true)))

	agents := h.g.Agents()
	wantAgents := []AgentStatus{
		{AgentID: "A1", UserID: "alice@example.com", State: "notReady", Reason: "meeting", Desk: "desk1", Since: since},
		{AgentID: "B2", UserID: "bob@example.com", State: "unknown"},
	}
	if !slices.Equal(agents, wantAgents) {
		t.Errorf("agents\n got %+v\nwant %+v", agents, wantAgents)
	}
	if a, ok := h.g.AgentOf("alice@example.com"); !ok || a != wantAgents[0] {
		t.Errorf("AgentOf %+v %v", a, ok)
	}
	devs := h.g.DevicesOf("host1@example.com")
	if len(devs) != 1 || devs[0].DeviceID != "desk1" || !devs[0].HotDesk || !devs[0].DoNotDisturb ||
		devs[0].GuestAgentID != "A1" || !devs[0].GuestSince.Equal(since) ||
		len(devs[0].Forwarding) != 1 || devs[0].Forwarding[0] != (ForwardStatus{Type: csta.ForwardImmediate, Active: true, Number: "+15550001"}) {
		t.Errorf("desk1 %+v", devs)
	}
	if n := len(h.g.Devices()); n != 3 {
		t.Errorf("%d devices, want the 3 configured", n)
	}
	h.g.SetLinkUp(false)
	h.g.PhoneService().PhoneService("desk1", false)
	obs.mu.Lock()
	got := slices.Clone(obs.calls)
	obs.mu.Unlock()
	want := []string{"users alice@example.com", "users alice@example.com", "users host1@example.com", "users host1@example.com", "link down", "phone desk1"}
	if !slices.Equal(got, want) {
		t.Errorf("observer heard %q, want %q", got, want)
	}
}

func TestForceLogout(t *testing.T) {
	ctx := context.Background()
	t.Run("unknown agent", func(t *testing.T) {
		h := newHarness(t)
		if err := h.g.ForceLogout(ctx, "nobody"); !errors.Is(err, ErrUnknownAgent) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("not logged on", func(t *testing.T) {
		h := newHarness(t)
		h.g.HandleXSIEvent(xev("bob@example.com", agentState("Sign-Out", "")))
		if err := h.g.ForceLogout(ctx, "B2"); !errors.Is(err, ErrNotLoggedOn) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("hot-desked agent: the hot-desk logout", func(t *testing.T) {
		h := newHarness(t)
		h.g.HandleXSIEvent(xev("alice@example.com", agentState("Available", "")))
		h.g.HandleXSIEvent(xev("alice@example.com", guestOf("host1@example.com", time.Now())))
		if err := h.g.ForceLogout(ctx, "A1"); err != nil {
			t.Fatal(err)
		}
		if got := h.hot.Calls(); !slices.Equal(got, []string{"Logout alice@example.com"}) {
			t.Errorf("hoteling calls %q", got)
		}
		h.settle(t)
	})
	t.Run("agent at its own phone: Sign-Out", func(t *testing.T) {
		h := newHarness(t)
		h.g.HandleXSIEvent(xev("bob@example.com", agentState("Available", "")))
		if err := h.g.ForceLogout(ctx, "B2"); err != nil {
			t.Fatal(err)
		}
		if got := h.act.Calls(); !slices.Contains(got, `SetAgentState bob@example.com Sign-Out ""`) {
			t.Errorf("calls %q", got)
		}
		h.settle(t)
	})
}
