package gateway

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/xsi"
)

// A directory with nothing but the domain: BroadWorks says who is who.
var loadConfig = Config{
	Domain:    "example.com",
	LoadUsers: true,
}

func newLoadHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarnessConfig(t, loadConfig)
	t.Cleanup(h.g.Close)
	return h
}

// count is how many recorded calls start with prefix.
func count(calls []string, prefix string) int {
	n := 0
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

var cti = csta.Requester{ConnID: 1}

// The first reference reads the user's snapshot (8 GETs, once); the next
// ones use the view. A user BroadWorks does not know is refused with the
// error of what named it.
func TestLoadOnFirstReference(t *testing.T) {
	h := newLoadHarness(t)
	h.act.unknown = map[string]bool{"9999@example.com": true}
	ctx := context.Background()
	if err := h.g.MonitorStart(ctx, cti, &csta.MonitorStart{Device: "2001"}); err != nil {
		t.Fatalf("MonitorStart 2001: %v", err)
	}
	calls := h.act.Calls()
	for _, get := range []string{"GetProfile", "GetCallCenter", "GetCFA", "GetCFB", "GetCFNA", "GetDND", "GetHotelingGuest", "GetHotelingHost"} {
		if n := count(calls, get+" 2001@example.com"); n != 1 {
			t.Errorf("%s 2001: %d calls, want 1 (%v)", get, n, calls)
		}
	}
	if _, err := h.g.GetDoNotDisturb(ctx, cti, &csta.GetDoNotDisturb{Device: "2001"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.g.GetForwarding(ctx, cti, &csta.GetForwarding{Device: "2001"}); err != nil {
		t.Fatal(err)
	}
	if n := len(h.act.Calls()); n != len(calls) {
		t.Errorf("requests on a loaded user read the XSP again: %v", h.act.Calls()[len(calls):])
	}

	if err := h.g.MonitorStart(ctx, cti, &csta.MonitorStart{Device: "9999"}); !errors.Is(err, csta.ErrInvalidDeviceID) {
		t.Errorf("MonitorStart on a user BroadWorks does not know: %v, want invalidDeviceID", err)
	}
	_, err := h.g.SetAgentState(ctx, cti, &csta.SetAgentState{Device: "2001", AgentID: "9999", RequestedState: csta.ReqReady})
	if !errors.Is(err, csta.ErrInvalidAgentIdentifier) {
		t.Errorf("SetAgentState for an agent BroadWorks does not know: %v, want invalidAgentIdentifier", err)
	}
	h.g.mu.Lock()
	_, kept := h.g.users["9999@example.com"]
	h.g.mu.Unlock()
	if kept {
		t.Error("a user BroadWorks does not know is kept in memory")
	}
}

// Many requests for one user at once read it once.
func TestLoadSingleFlight(t *testing.T) {
	h := newLoadHarness(t)
	gate := make(chan struct{})
	var once sync.Once
	h.act.onCall = func(method string) {
		if method == "GetProfile" {
			<-gate
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := h.g.GetDoNotDisturb(context.Background(), cti, &csta.GetDoNotDisturb{Device: "2001"})
			errs <- err
		})
	}
	// Every request is waiting for the one read (it holds GetProfile).
	for count(h.act.Calls(), "GetProfile") == 0 {
		time.Sleep(time.Millisecond)
	}
	once.Do(func() { close(gate) })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := count(h.act.Calls(), "GetProfile"); n != 1 {
		t.Errorf("GetProfile %d times for 20 requests at once, want 1", n)
	}
}

// A device is a hot desk when its user has an active Hoteling Host
// service, and the desk forwards to the guest's BroadWorks number.
func TestRolesFromBroadWorks(t *testing.T) {
	h := newLoadHarness(t)
	h.act.hosts = map[string]bool{"2001@example.com": true}
	h.act.profiles = map[string]xsi.Profile{"5001@example.com": {Number: "+15555001", Extension: "5001"}}
	h.act.cc = xsi.CallCenter{AgentACDState: xsi.ACDSignOut}
	ctx := context.Background()
	if _, err := h.g.SetAgentState(ctx, cti, &csta.SetAgentState{Device: "2001", AgentID: "5001", RequestedState: csta.ReqLoggedOn}); err != nil {
		t.Fatalf("hot-desk login at a BroadWorks hoteling host: %v", err)
	}
	if got := h.hot.Calls(); len(got) != 1 || got[0] != "Login 5001@example.com 2001@example.com +15555001" {
		t.Errorf("hoteling calls %v, want one Login of 5001 at 2001 forwarding to its number +15555001", got)
	}
	// Not a host: an agent's login at another user's plain line is refused.
	_, err := h.g.SetAgentState(ctx, cti, &csta.SetAgentState{Device: "3001", AgentID: "5001", RequestedState: csta.ReqLoggedOn})
	if !errors.Is(err, csta.ErrInvalidDeviceID) {
		t.Errorf("login at a line without Hoteling Host: %v, want invalidDeviceID", err)
	}
	// The extension when the profile has no number.
	h.act.profiles["5002@example.com"] = xsi.Profile{Extension: "5002x"}
	if _, err := h.g.SetAgentState(ctx, cti, &csta.SetAgentState{Device: "2001", AgentID: "5002", RequestedState: csta.ReqLoggedOn}); err != nil {
		t.Fatal(err)
	}
	if got := h.hot.Calls(); got[len(got)-1] != "Login 5002@example.com 2001@example.com 5002x" {
		t.Errorf("last hoteling call %q, want the extension 5002x", got[len(got)-1])
	}
}

// After a link loss a user is read again before a request on it is served;
// a changed value is published as a change.
func TestStaleUserReadAgain(t *testing.T) {
	h := newLoadHarness(t)
	ctx := context.Background()
	if _, err := h.g.GetDoNotDisturb(ctx, cti, &csta.GetDoNotDisturb{Device: "2001"}); err != nil {
		t.Fatal(err)
	}
	h.g.SetLinkUp(false)
	h.act.mu.Lock()
	h.act.dnd = xsi.DoNotDisturb{Active: true}
	h.act.mu.Unlock()
	h.g.SetLinkUp(true)
	resp, err := h.g.GetDoNotDisturb(ctx, cti, &csta.GetDoNotDisturb{Device: "2001"})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.DoNotDisturbOn {
		t.Error("DND after the link came back: off, want on (read again)")
	}
	if n := count(h.act.Calls(), "GetDND 2001@example.com"); n != 2 {
		t.Errorf("GetDND %d times, want 2 (first reference, then after the link loss)", n)
	}
	if n := count(h.act.Calls(), "GetProfile"); n != 1 {
		t.Errorf("GetProfile %d times, want 1 (roles are not stale)", n)
	}
	h.settle(t)
	found := false
	for _, ev := range h.pub.Events() {
		if ev.Kind == csta.EventDoNotDisturb && ev.Device == "2001" && ev.DoNotDisturbOn {
			found = true
		}
	}
	if !found {
		t.Errorf("no DoNotDisturbEvent on for the change the re-read found: %+v", h.pub.Events())
	}
}

// Events of users nobody refers to change no view and take no memory,
// except an agent state or an association, which loads the user.
func TestEventsOfUnreferencedUsers(t *testing.T) {
	h := newLoadHarness(t)
	h.g.HandleXSIEvent(xev("7001@example.com", dnd(true)))
	h.g.mu.Lock()
	_, kept := h.g.users["7001@example.com"]
	h.g.mu.Unlock()
	if kept {
		t.Error("a DND event of a user nobody refers to created it")
	}
	h.g.HandleXSIEvent(xev("7002@example.com", agentState("Available", "")))
	deadline := time.Now().Add(10 * time.Second)
	for !h.g.Fresh("7002@example.com") {
		if time.Now().After(deadline) {
			t.Fatal("an agent state event did not load its user")
		}
		time.Sleep(time.Millisecond)
	}
}

// Idle users are dropped unless something refers to them.
func TestIdleUsersDropped(t *testing.T) {
	cfg := loadConfig
	cfg.IdleTTL = time.Minute
	h := newHarnessConfig(t, cfg)
	t.Cleanup(h.g.Close)
	h.pub.monitored = map[csta.DeviceID]bool{"2002": true}
	ctx := context.Background()
	for _, dev := range []csta.DeviceID{"2001", "2002", "2003"} {
		if _, err := h.g.GetDoNotDisturb(ctx, cti, &csta.GetDoNotDisturb{Device: dev}); err != nil {
			t.Fatal(err)
		}
	}
	h.g.HandleXSIEvent(xev("2003@example.com", guestOf("2009@example.com", time.Now())))
	if n := h.g.sweepIdle(time.Now()); n != 0 {
		t.Errorf("dropped %d users used just now", n)
	}
	if n := h.g.sweepIdle(time.Now().Add(2 * time.Minute)); n != 1 {
		t.Errorf("dropped %d users, want 1 (2001: not monitored, no association)", n)
	}
	h.g.mu.Lock()
	_, u1 := h.g.users["2001@example.com"]
	_, u2 := h.g.users["2002@example.com"]
	_, u3 := h.g.users["2003@example.com"]
	h.g.mu.Unlock()
	if u1 || !u2 || !u3 {
		t.Errorf("after the sweep: 2001 kept %t (want false), 2002 (monitored) %t, 2003 (a guest) %t", u1, u2, u3)
	}
}

// fakeScopes covers group grp1 and records the users subscribed alone.
type fakeScopes struct {
	mu      sync.Mutex
	watched map[string]bool
	calls   []string
}

func (f *fakeScopes) Covers(group, _ string) bool { return group == "grp1" }
func (f *fakeScopes) WatchUser(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watched[id] = true
	f.calls = append(f.calls, "watch "+id)
	return nil
}
func (f *fakeScopes) UnwatchUser(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.watched, id)
	f.calls = append(f.calls, "unwatch "+id)
}

// A user no scope covers is subscribed as a user while it is loaded.
func TestUserOutsideEveryScope(t *testing.T) {
	cfg := loadConfig
	cfg.IdleTTL = time.Minute
	sc := &fakeScopes{watched: map[string]bool{}}
	act := &fakeActions{profiles: map[string]xsi.Profile{
		"2001@example.com": {GroupID: "grp1"}, "3001@example.com": {GroupID: "grp2"}}}
	g := New(cfg, Deps{Actions: act, Publisher: &fakePublisher{}, Scopes: sc}, nil)
	t.Cleanup(g.Close)
	ctx := context.Background()
	for _, dev := range []csta.DeviceID{"2001", "3001"} {
		if err := g.MonitorStart(ctx, cti, &csta.MonitorStart{Device: dev}); err != nil {
			t.Fatal(err)
		}
	}
	g.sweepIdle(time.Now().Add(2 * time.Minute))
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if want := []string{"watch 3001@example.com", "unwatch 3001@example.com"}; !slices.Equal(sc.calls, want) {
		t.Errorf("scope calls %v, want %v", sc.calls, want)
	}
}
