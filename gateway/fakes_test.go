package gateway

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeActions records every call as one line and answers from its fields.
type fakeActions struct {
	mu    sync.Mutex
	calls []string
	errs  map[string]error // by method name
	cc    xsi.CallCenter
	cfa   xsi.Forwarding
	cfb   xsi.Forwarding
	cfna  xsi.Forwarding
	dnd   xsi.DoNotDisturb
	guest xsi.HotelingGuest
	// The directory (Config.LoadUsers): users GetProfile answers 404 for,
	// users with an active Hoteling Host service, profiles by user.
	unknown  map[string]bool
	hosts    map[string]bool
	profiles map[string]xsi.Profile
	// onCall runs after a call is recorded (e.g. to inject an XSI event
	// before the HTTP answer).
	onCall func(method string)
}

func (f *fakeActions) rec(method, format string, args ...any) error {
	f.mu.Lock()
	f.calls = append(f.calls, method+" "+fmt.Sprintf(format, args...))
	err := f.errs[method]
	hook := f.onCall
	f.mu.Unlock()
	if hook != nil {
		hook(method)
	}
	return err
}

func (f *fakeActions) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeActions) GetCallCenter(_ context.Context, u string) (xsi.CallCenter, error) {
	return f.cc, f.rec("GetCallCenter", "%s", u)
}
func (f *fakeActions) SetAgentState(_ context.Context, u string, s xsi.ACDState, code string) error {
	return f.rec("SetAgentState", "%s %s %q", u, s, code)
}
func (f *fakeActions) GetCallForwardingAlways(_ context.Context, u string) (xsi.Forwarding, error) {
	return f.cfa, f.rec("GetCFA", "%s", u)
}
func (f *fakeActions) GetCallForwardingBusy(_ context.Context, u string) (xsi.Forwarding, error) {
	return f.cfb, f.rec("GetCFB", "%s", u)
}
func (f *fakeActions) GetCallForwardingNoAnswer(_ context.Context, u string) (xsi.Forwarding, error) {
	return f.cfna, f.rec("GetCFNA", "%s", u)
}
func (f *fakeActions) SetCallForwardingAlways(_ context.Context, u string, fw xsi.Forwarding) error {
	return f.rec("SetCFA", "%s %+v", u, fw)
}
func (f *fakeActions) SetCallForwardingBusy(_ context.Context, u string, fw xsi.Forwarding) error {
	return f.rec("SetCFB", "%s %+v", u, fw)
}
func (f *fakeActions) SetCallForwardingNoAnswer(_ context.Context, u string, fw xsi.Forwarding) error {
	return f.rec("SetCFNA", "%s %+v", u, fw)
}
func (f *fakeActions) GetDoNotDisturb(_ context.Context, u string) (xsi.DoNotDisturb, error) {
	return f.dnd, f.rec("GetDND", "%s", u)
}
func (f *fakeActions) SetDoNotDisturb(_ context.Context, u string, d xsi.DoNotDisturb) error {
	return f.rec("SetDND", "%s %+v", u, d)
}
func (f *fakeActions) GetHotelingGuest(_ context.Context, u string) (xsi.HotelingGuest, error) {
	return f.guest, f.rec("GetHotelingGuest", "%s", u)
}

func (f *fakeActions) GetHotelingHost(_ context.Context, u string) (xsi.HotelingHost, error) {
	if err := f.rec("GetHotelingHost", "%s", u); err != nil {
		return xsi.HotelingHost{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.hosts[u] {
		return xsi.HotelingHost{}, fmt.Errorf("fake: %s has no Hoteling Host: %w", u, xsi.ErrNotFound)
	}
	return xsi.HotelingHost{Active: true}, nil
}
func (f *fakeActions) SearchEnterpriseDirectory(_ context.Context, u string, q xsi.DirectoryQuery) ([]xsi.DirectoryEntry, error) {
	return nil, f.rec("SearchEnterpriseDirectory", "%s %+v", u, q)
}
func (f *fakeActions) GetProfile(_ context.Context, u string) (xsi.Profile, error) {
	if err := f.rec("GetProfile", "%s", u); err != nil {
		return xsi.Profile{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unknown[u] {
		return xsi.Profile{}, fmt.Errorf("fake: no user %s: %w", u, xsi.ErrNotFound)
	}
	p := f.profiles[u]
	p.UserID = u
	return p, nil
}

// fakeHoteling records Login/Logout; onLogin/onLogout run before they
// return (e.g. to deliver the confirming XSI event).
type fakeHoteling struct {
	mu                sync.Mutex
	calls             []string
	err               error
	onLogin, onLogout func()
	view              hoteling.View            // for Satisfied; nil: always satisfied
	released          map[string]bool          // guest|left host Settle was called for
	onSettle          func()                   // runs in Settle, without mu
	settled           map[string]hoteling.Want // by guest: the last want Settle brought about
	seated            bool                     // Login finds the guest at the host signed in: it sends no agent state
}

// Login leaves the guest at host, starting Unavailable (as a full login),
// or, seated, in no agent state (it sent none).
func (h *fakeHoteling) Login(_ context.Context, guest, host, fwd string) (hoteling.Want, error) {
	h.mu.Lock()
	h.calls = append(h.calls, fmt.Sprintf("Login %s %s %s", guest, host, fwd))
	err, hook, seated := h.err, h.onLogin, h.seated
	h.mu.Unlock()
	if hook != nil {
		hook()
	}
	if err != nil {
		return hoteling.Want{}, err
	}
	w := hoteling.Want{Guest: guest, Host: host, ForwardTo: fwd, ACD: xsi.ACDUnavailable}
	if seated {
		w.ACD = ""
	}
	return w, nil
}

// Logout leaves the guest signed out at no desk (the desk's forwarding is
// not modelled: no LeftHost).
func (h *fakeHoteling) Logout(_ context.Context, guest string) (hoteling.Want, error) {
	h.mu.Lock()
	h.calls = append(h.calls, "Logout "+guest)
	err, hook := h.err, h.onLogout
	h.mu.Unlock()
	if hook != nil {
		hook()
	}
	if err != nil {
		return hoteling.Want{}, err
	}
	return hoteling.Want{Guest: guest, ACD: xsi.ACDSignOut}, nil
}

// Satisfied compares the promise with the gateway's view (the desk's
// forwarding left out); a desk left behind counts as settled once Settle
// was called for it.
func (h *fakeHoteling) Satisfied(w hoteling.Want) bool {
	h.mu.Lock()
	view, released := h.view, h.released[w.Guest+"|"+w.LeftHost]
	h.mu.Unlock()
	if view == nil {
		return true
	}
	h.mu.Lock()
	last, done := h.settled[w.Guest]
	h.mu.Unlock()
	if done && last == w {
		return true // as a real Settle would have made the view show it
	}
	v := view.User(w.Guest)
	return v.HostUserID == w.Host && hoteling.ACDShows(v, w.ACD, w.Code) && (w.LeftHost == "" || released)
}

func (h *fakeHoteling) Settle(_ context.Context, w hoteling.Want, current func() bool) (bool, error) {
	h.mu.Lock()
	hook := h.onSettle
	h.onSettle = nil
	h.mu.Unlock()
	if hook != nil {
		hook()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if current != nil && !current() {
		return false, nil
	}
	h.calls = append(h.calls, fmt.Sprintf("Settle %s host=%s left=%s acd=%s", w.Guest, w.Host, w.LeftHost, w.ACD))
	if h.err == nil {
		if h.settled == nil {
			h.settled = map[string]hoteling.Want{}
		}
		h.settled[w.Guest] = w
	}
	if h.err == nil && w.LeftHost != "" {
		if h.released == nil {
			h.released = map[string]bool{}
		}
		h.released[w.Guest+"|"+w.LeftHost] = true
	}
	return true, h.err
}

func (h *fakeHoteling) Busy(string) bool                       { return false }
func (h *fakeHoteling) RememberedDesks() []hoteling.Remembered { return nil }

func (h *fakeHoteling) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

// fakePublisher records what reaches the CSTA front end.
type fakePublisher struct {
	mu        sync.Mutex
	events    []csta.Event
	statuses  []csta.SystemStatusValue
	monitored map[csta.DeviceID]bool
}

func (p *fakePublisher) Monitored(dev csta.DeviceID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.monitored[dev]
}

func (p *fakePublisher) Publish(ev csta.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev)
}

func (p *fakePublisher) SetSystemStatus(v csta.SystemStatusValue) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.statuses = append(p.statuses, v)
}

func (p *fakePublisher) Events() []csta.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]csta.Event(nil), p.events...)
}

func (p *fakePublisher) Statuses() []csta.SystemStatusValue {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]csta.SystemStatusValue(nil), p.statuses...)
}

var testConfig = Config{
	Domain: "example.com",
	Devices: []DeviceEntry{
		{DeviceID: "desk1", UserID: "host1@example.com", HotDesk: true},
		{DeviceID: "desk2", UserID: "host2@example.com", HotDesk: true},
		{DeviceID: "+15550001", UserID: "alice@example.com"},
	},
	Agents: []AgentEntry{
		{AgentID: "A1", UserID: "alice@example.com", Number: "+15550001"},
		{AgentID: "B2", UserID: "bob@example.com"},
	},
	ReasonCodes:            []ReasonEntry{{Reason: "lunch", Code: "100"}, {Reason: "meeting", Code: "200"}},
	DefaultUnavailableCode: "999",
}

type harness struct {
	g   *Gateway
	act *fakeActions
	hot *fakeHoteling
	pub *fakePublisher
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessConfig(t, testConfig)
}

func newHarnessConfig(t testing.TB, cfg Config) *harness {
	t.Helper()
	h := &harness{act: &fakeActions{}, hot: &fakeHoteling{}, pub: &fakePublisher{}}
	h.g = New(cfg, Deps{Actions: h.act, Hoteling: h.hot, Publisher: h.pub}, nil)
	return h
}

// reconcile runs the gateway's reconciler (Run does; the harness calls
// HandleXSIEvent itself) with the fake sequencer looking at the view, until
// the test ends.
func (h *harness) reconcile(t *testing.T) {
	t.Helper()
	h.hot.mu.Lock()
	h.hot.view = h.g
	h.hot.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	h.g.runReconciler(ctx, &bg)
	t.Cleanup(func() { cancel(); bg.Wait() })
}

// settle waits for a re-check still running. (Held events need no
// waiting: a request made without a front end releases them as it
// returns.)
func (h *harness) settle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.g.Settle(ctx); err != nil {
		t.Fatal(err)
	}
}

var seq int64

func xev(user string, data xsi.EventData) *xsi.SubscriptionEvent {
	seq++
	return &xsi.SubscriptionEvent{EventID: fmt.Sprint("ev", seq), SequenceNumber: seq, UserID: "admin@example.com", TargetID: user, SubscriptionID: "sub-" + user, Data: data}
}

func agentState(state, code string) *xsi.AgentStateEvent {
	return &xsi.AgentStateEvent{Info: xsi.AgentStateInfo{State: state, UnavailableCode: code}}
}

func agentSnap(state, code string) *xsi.AgentSubscriptionEvent {
	return &xsi.AgentSubscriptionEvent{State: &xsi.AgentStateInfo{State: state, UnavailableCode: code}}
}

func dnd(on bool) *xsi.DoNotDisturbEvent { return &xsi.DoNotDisturbEvent{Active: on} }

func guestOf(host string, since time.Time) *xsi.HotelingGuestEvent {
	return &xsi.HotelingGuestEvent{Active: true, HostUserID: host, HostAssociationDateTime: since}
}

// The real sequencer fits the Hoteling interface.
var _ Hoteling = (*hoteling.Sequencer)(nil)
