package hoteling

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/xsi"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// eventView is a minimal View fed by a real xsi.Events channel set: the
// gateway's state view reduced to what the sequences read.
type eventView struct {
	mu      sync.Mutex
	users   map[string]User
	seen    map[string]map[string]bool // user → event data types received
	changed chan struct{}
}

func newEventView() *eventView {
	return &eventView{users: map[string]User{}, seen: map[string]map[string]bool{}, changed: make(chan struct{})}
}

func (v *eventView) run(events <-chan xsi.Event) {
	for ev := range events {
		se, ok := ev.(*xsi.SubscriptionEvent)
		if !ok || se.TargetID == "" {
			continue
		}
		v.apply(se.TargetID, se.Data)
	}
}

func (v *eventView) apply(id string, data xsi.EventData) {
	v.mu.Lock()
	defer v.mu.Unlock()
	u := v.users[id]
	u.ID = id
	kind := ""
	switch d := data.(type) {
	case *xsi.AgentStateEvent:
		u.ACDState, u.UnavailableCode, kind = xsi.ACDState(d.Info.State), d.Info.UnavailableCode, "agent"
	case *xsi.AgentSubscriptionEvent:
		if d.State != nil {
			u.ACDState, u.UnavailableCode = xsi.ACDState(d.State.State), d.State.UnavailableCode
		}
		kind = "agent"
	case *xsi.CallForwardingAlwaysEvent:
		u.CFA = xsi.Forwarding{Active: d.Active, ForwardToPhoneNumber: d.ForwardToPhoneNumber, RingSplash: d.RingSplash}
		kind = "cfa"
	case *xsi.HotelingGuestEvent:
		// No event package for the host side (research/xsi.md §2.7): derive it.
		if old := u.HostUserID; old != "" && old != d.HostUserID {
			h := v.users[old]
			if h.GuestUserID == id {
				h.GuestUserID = ""
				v.users[old] = h
			}
		}
		u.HostUserID, kind = d.HostUserID, "guest"
		if d.HostUserID != "" {
			h := v.users[d.HostUserID]
			h.ID, h.GuestUserID = d.HostUserID, id
			v.users[d.HostUserID] = h
		}
	default:
		return
	}
	if v.seen[id] == nil {
		v.seen[id] = map[string]bool{}
	}
	v.seen[id][kind] = true
	u.Known = len(v.seen[id]) == 3
	v.users[id] = u
	close(v.changed)
	v.changed = make(chan struct{})
}

func (v *eventView) User(id string) User {
	v.mu.Lock()
	defer v.mu.Unlock()
	u := v.users[id]
	u.ID = id
	return u
}

func (v *eventView) Await(ctx context.Context, id string, cond func(User) bool) error {
	for {
		v.mu.Lock()
		u, ch := v.users[id], v.changed
		v.mu.Unlock()
		u.ID = id
		if cond(u) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// countingActions counts the Actions calls the sequences make.
type countingActions struct {
	Actions
	n atomic.Int32
}

func (c *countingActions) SetAgentState(ctx context.Context, u string, st xsi.ACDState, code string) error {
	c.n.Add(1)
	return c.Actions.SetAgentState(ctx, u, st, code)
}

func (c *countingActions) GetCallForwardingAlways(ctx context.Context, u string) (xsi.Forwarding, error) {
	c.n.Add(1)
	return c.Actions.GetCallForwardingAlways(ctx, u)
}

func (c *countingActions) SetCallForwardingAlways(ctx context.Context, u string, f xsi.Forwarding) error {
	c.n.Add(1)
	return c.Actions.SetCallForwardingAlways(ctx, u, f)
}

func (c *countingActions) AssociateGuest(ctx context.Context, g, h string) error {
	c.n.Add(1)
	return c.Actions.AssociateGuest(ctx, g, h)
}

func (c *countingActions) EndGuestAssociation(ctx context.Context, g string) error {
	c.n.Add(1)
	return c.Actions.EndGuestAssociation(ctx, g)
}

// startSim starts a simulator with cfg and the credential simView uses,
// shut down when t ends.
func startSim(t *testing.T, cfg xspsim.Config) *xspsim.Server {
	t.Helper()
	cfg.Username, cfg.Password = "admin@example.com", "secret"
	sim := xspsim.New(cfg, nil)
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sim.Shutdown(ctx)
	})
	return sim
}

// simView connects an XSI client and an event channel set (user targets
// for users: agent, CFA and guest packages) to sim, both closed when t
// ends, and returns the client and an eventView that has read each user's
// snapshot.
func simView(t *testing.T, sim *xspsim.Server, users ...string) (*xsi.Client, *eventView) {
	t.Helper()
	cfg := xsi.DefaultConfig()
	cfg.Servers = []string{sim.URL()}
	cfg.Username, cfg.Password = "admin@example.com", "secret"
	cfg.RequestTimeout = 5 * time.Second
	cfg.ReconnectMin, cfg.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	for _, u := range users {
		cfg.Targets = append(cfg.Targets, xsi.Target{Kind: "user", ID: u})
	}
	cfg.EventPackages = []string{"Call Center Agent", "Call Forwarding Always", "Hoteling Guest"}
	logger := testLogger()
	client, err := xsi.NewClient(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	events, err := xsi.NewEvents(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	view := newEventView()
	viewDone := make(chan struct{})
	go func() { defer close(viewDone); view.run(events.Events()) }()
	if err := events.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := events.Stop(ctx); err != nil {
			t.Error(err)
		}
		<-viewDone
	})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for _, id := range users {
		if err := view.Await(ctx, id, func(u User) bool { return u.Known }); err != nil {
			t.Fatalf("no snapshot of %s: %v", id, err)
		}
	}
	return client, view
}

// TestAgainstSimulator: a login and logout round trip over real HTTP
// against xsi/xspsim, each step confirmed by a real Xsi-Events event, with
// the simulator's own state checked after each.
func TestAgainstSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	const (
		guest, host = "agent1@example.com", "desk1@example.com"
		guestNumber = "+12025550101"
		hostOwnCFA  = "+12025550199"
	)
	sim := startSim(t, xspsim.Config{Users: []xspsim.User{
		{ID: guest, FirstName: "A", LastName: "One", PhoneNumber: guestNumber, CallCenter: true},
		// CallCenter too, so that one package list fits every target.
		{ID: host, FirstName: "Desk", LastName: "One", HotelingHost: true, CallCenter: true},
	}})
	if err := sim.PortalSetCFA(host, true, hostOwnCFA); err != nil {
		t.Fatal(err)
	}
	client, view := simView(t, sim, guest, host)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	acts := &countingActions{Actions: client}
	s := New(Config{StepTimeout: 5 * time.Second}, acts, view, slog.New(slog.DiscardHandler))
	left, err := s.Login(ctx, guest, host, guestNumber)
	if err != nil {
		t.Fatal(err)
	}
	if left.Host != host || left.ForwardTo != guestNumber || left.ACD != xsi.ACDUnavailable {
		t.Errorf("the login left %+v, want Unavailable at %s forwarding to %s", left, host, guestNumber)
	}
	g, _ := sim.Snapshot(guest)
	h, _ := sim.Snapshot(host)
	if g.GuestHostID != host || h.HostGuestID != guest || g.AgentState != xspsim.StateUnavailable ||
		!h.CFAActive || !sameNumber(h.CFANumber, guestNumber) {
		t.Fatalf("after login: guest %+v host %+v", g, h)
	}
	// Again, once the agent is Available: already logged on, nothing
	// sent, and the agent state is left as it is.
	if n := acts.n.Load(); n != 3 {
		t.Errorf("login sent %d Actions, want 3", n)
	}
	if err := client.SetAgentState(ctx, guest, xsi.ACDAvailable, ""); err != nil {
		t.Fatal(err)
	}
	for view.User(guest).ACDState != xsi.ACDAvailable {
		if ctx.Err() != nil {
			t.Fatal("the view never showed the agent Available")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if left, err = s.Login(ctx, guest, host, guestNumber); err != nil {
		t.Fatal(err)
	}
	if n := acts.n.Load(); n != 3 {
		t.Errorf("second login sent %d Actions, want none", n-3)
	}
	if left.Host != host || left.ACD != "" {
		t.Errorf("the second login left %+v, want %s with no agent state (it sent none)", left, host)
	}

	if _, err := s.Logout(ctx, guest); err != nil {
		t.Fatal(err)
	}
	g, _ = sim.Snapshot(guest)
	h, _ = sim.Snapshot(host)
	if g.GuestHostID != "" || h.HostGuestID != "" || g.AgentState != xspsim.StateSignOut ||
		!h.CFAActive || h.CFANumber != hostOwnCFA {
		t.Fatalf("after logout: guest %+v host %+v", g, h)
	}
}
