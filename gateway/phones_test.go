package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/phonesync"
	"github.com/broadworks-connector/connector/xsi"
)

// fakePhones records what phonesync would be asked to NOTIFY.
type fakePhones struct {
	mu       sync.Mutex
	changes  []string
	versions []phonesync.Version
}

func (p *fakePhones) Subscribed(string) bool { return false }

func (p *fakePhones) Publish(dn string, c phonesync.Change) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var what string
	switch c.Kind {
	case phonesync.ChangeDoNotDisturb:
		what = fmt.Sprintf("dnd=%v", c.DoNotDisturb)
	case phonesync.ChangeForwarding:
		what = fmt.Sprintf("%s=%v,%s,%d", c.Forwarding.Type, c.Forwarding.Active, c.Forwarding.Number, c.Forwarding.RingCount)
	case phonesync.ChangeAgent:
		what = fmt.Sprintf("agent %s %s %q", c.Agent.AgentID, c.Agent.State, c.Agent.Reason)
	case phonesync.ChangeHoteling:
		what = fmt.Sprintf("guest=%q", c.Hoteling.GuestAddress)
	}
	p.changes = append(p.changes, dn+" "+what)
	p.versions = append(p.versions, c.Version)
}

// Versions are the versions of the changes published for dn, and the
// changes.
func (p *fakePhones) Versions(dn string) ([]phonesync.Version, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var vs []phonesync.Version
	var cs []string
	for i, c := range p.changes {
		if strings.HasPrefix(c, dn+" ") {
			vs, cs = append(vs, p.versions[i]), append(cs, c)
		}
	}
	return vs, cs
}

func (p *fakePhones) Changes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.changes)
}

// TestPhonesHearEveryChange: every change the CSTA monitors hear, phones of
// the same device hear too, in the same order, in phonesync's terms; a hot
// desk's phone also hears its guest association.
func TestPhonesHearEveryChange(t *testing.T) {
	const alice = "alice@example.com"
	tests := []struct {
		name string
		evs  []*xsi.SubscriptionEvent
		want []string
	}{
		{"DND and forwarding", []*xsi.SubscriptionEvent{
			xev("dave@x.org", dnd(true)),
			xev("dave@x.org", &xsi.CallForwardingAlwaysEvent{Active: true, ForwardToPhoneNumber: "tel:+15551234"}),
			xev("dave@x.org", &xsi.CallForwardingNoAnswerEvent{Active: true, ForwardToPhoneNumber: "5000", NumberOfRings: 4}),
		}, []string{
			"dave@x.org dnd=true",
			"dave@x.org forwardImmediate=true,+15551234,0",
			"dave@x.org forwardNoAns=true,5000,4",
		}},
		{"agent states with the reason", []*xsi.SubscriptionEvent{
			xev(alice, agentState("Sign-Out", "")),
			xev(alice, agentState("Unavailable", "100")),
			xev(alice, agentState("Wrap-Up", "")),
		}, []string{
			`+15550001 agent A1 loggedOff ""`, `alice agent A1 loggedOff ""`, `alice@example.com agent A1 loggedOff ""`,
			`+15550001 agent A1 loggedOn ""`, `alice agent A1 loggedOn ""`, `alice@example.com agent A1 loggedOn ""`,
			`+15550001 agent A1 notReady "lunch"`, `alice agent A1 notReady "lunch"`, `alice@example.com agent A1 notReady "lunch"`,
			`+15550001 agent A1 workingAfterCall ""`, `alice agent A1 workingAfterCall ""`, `alice@example.com agent A1 workingAfterCall ""`,
		}},
		{"hot desk: the desk's phone hears the guest come and go", []*xsi.SubscriptionEvent{
			xev(alice, &xsi.HotelingGuestEvent{Active: true}),
			xev(alice, guestOf("host1@example.com", time.Now())),
			xev(alice, &xsi.HotelingGuestEvent{Active: true}),
		}, []string{
			// Every device ID of the desk's user is the desk.
			`desk1 agent A1 loggedOn ""`, `desk1 guest="A1"`,
			`host1 agent A1 loggedOn ""`, `host1 guest="A1"`,
			`host1@example.com agent A1 loggedOn ""`, `host1@example.com guest="A1"`,
			`desk1 agent A1 loggedOff ""`, `desk1 guest=""`,
			`host1 agent A1 loggedOff ""`, `host1 guest=""`,
			`host1@example.com agent A1 loggedOff ""`, `host1@example.com guest=""`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			ph := &fakePhones{}
			h.g.SetPhones(ph)
			for _, ev := range tt.evs {
				h.g.HandleXSIEvent(ev)
			}
			if got := ph.Changes(); !slices.Equal(got, tt.want) {
				t.Errorf("phones heard\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestPhoneRequests: a phone's requests take the CTI requests' path to
// BroadWorks; its full state comes from the view or from XSI.
func TestPhoneRequests(t *testing.T) {
	ctx := context.Background()
	t.Run("DND, forwarding, agent state reach Xsi-Actions", func(t *testing.T) {
		h := newHarness(t)
		svc := h.g.PhoneService()
		if err := svc.SetDoNotDisturb(ctx, "carol", true, phonesync.OriginPhone); err != nil {
			t.Fatal(err)
		}
		if err := svc.SetForwarding(ctx, "carol", phonesync.Forwarding{Type: phonesync.ForwardNoAns, Active: true, Number: "2000", RingCount: 3}, phonesync.OriginPhone); err != nil {
			t.Fatal(err)
		}
		if err := svc.SetAgentState(ctx, "carol", "", phonesync.AgentNotReady, "meeting", phonesync.OriginPhone); err != nil {
			t.Fatal(err)
		}
		want := []string{
			"GetDND carol@example.com", "SetDND carol@example.com {Active:true RingSplash:false}",
			"SetCFNA carol@example.com {Active:true ForwardToPhoneNumber:2000 NumberOfRings:3 RingSplash:false}",
			`SetAgentState carol@example.com Unavailable "200"`,
		}
		if got := h.act.Calls(); !slices.Equal(got, want) {
			t.Errorf("calls\n got %q\nwant %q", got, want)
		}
		h.settle(t)
	})
	t.Run("bad ring count is refused, nothing sent", func(t *testing.T) {
		h := newHarness(t)
		err := h.g.PhoneService().SetForwarding(ctx, "carol", phonesync.Forwarding{Type: phonesync.ForwardNoAns, Active: true, Number: "2", RingCount: 50}, phonesync.OriginPhone)
		if !errors.Is(err, csta.ErrRingCountOutOfRange) || len(h.act.Calls()) != 0 {
			t.Fatalf("err %v, calls %q", err, h.act.Calls())
		}
	})
	t.Run("full state from the view and XSI", func(t *testing.T) {
		h := newHarness(t)
		h.g.HandleXSIEvent(xev("carol@example.com", dnd(true)))
		h.g.HandleXSIEvent(xev("carol@example.com", agentState("Unavailable", "200")))
		h.act.cfb = xsi.Forwarding{Active: true, ForwardToPhoneNumber: "tel:+1555"}
		st, err := h.g.PhoneService().FeatureState(ctx, "carol")
		if err != nil {
			t.Fatal(err)
		}
		want := phonesync.FeatureState{DoNotDisturb: true, Forwarding: []phonesync.Forwarding{
			{Type: phonesync.ForwardImmediate}, {Type: phonesync.ForwardBusy, Active: true, Number: "+1555"}, {Type: phonesync.ForwardNoAns},
		}, Agent: &phonesync.AgentState{AgentID: "carol", State: phonesync.AgentNotReady, Reason: "meeting"}}
		if st.DoNotDisturb != want.DoNotDisturb || !slices.Equal(st.Forwarding, want.Forwarding) || st.Agent == nil || *st.Agent != *want.Agent {
			t.Errorf("state\n got %+v %+v\nwant %+v %+v", st, st.Agent, want, want.Agent)
		}
		// DND and the agent came from the view: only forwarding was read.
		if got := h.act.Calls(); !slices.Equal(got, []string{"GetCFA carol@example.com", "GetCFB carol@example.com", "GetCFNA carol@example.com"}) {
			t.Errorf("calls %q", got)
		}
	})
	t.Run("unknown device", func(t *testing.T) {
		h := newHarness(t)
		h.act.errs = map[string]error{"GetDND": &xsi.Error{Status: 404}}
		if _, err := h.g.PhoneService().FeatureState(ctx, "nobody"); !errors.Is(err, phonesync.ErrUnknownDevice) {
			t.Fatalf("err %v, want ErrUnknownDevice", err)
		}
	})
	t.Run("hoteling login and logout at the desk phone", func(t *testing.T) {
		h := newHarness(t)
		svc := h.g.PhoneService()
		if err := svc.SetHoteling(ctx, "desk1", "A1", phonesync.OriginPhone); err != nil {
			t.Fatal(err)
		}
		h.g.HandleXSIEvent(xev("alice@example.com", guestOf("host1@example.com", time.Now())))
		if hot, err := svc.Hoteling(ctx, "desk1"); err != nil || hot.GuestAddress != "A1" {
			t.Fatalf("hoteling %+v %v", hot, err)
		}
		if err := svc.SetHoteling(ctx, "desk1", "", phonesync.OriginPhone); err != nil {
			t.Fatal(err)
		}
		if got := h.hot.Calls(); !slices.Equal(got, []string{"Login alice@example.com host1@example.com +15550001", "Logout alice@example.com"}) {
			t.Errorf("hoteling calls %q", got)
		}
		if _, err := svc.Hoteling(ctx, "alice"); !errors.Is(err, phonesync.ErrUnknownDevice) {
			t.Errorf("not a hot desk: %v", err)
		}
		h.settle(t)
	})
}

// TestPhoneStateVersions: the changes the phones are told carry the view
// version that made them, and a full state carries the version it was read
// at, so phonesync can tell that a change published late (held while a
// request was answered) is already in a full state read meanwhile (issue
// 14: a phone was sent an older value after a newer one).
func TestPhoneStateVersions(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	ph := &fakePhones{}
	h.g.SetPhones(ph)
	svc := h.g.PhoneService()
	const carol = "carol@example.com"
	h.g.HandleXSIEvent(xev(carol, dnd(true)))
	h.g.HandleXSIEvent(xev(carol, agentState("Available", "")))
	first, _ := ph.Versions("carol")
	if len(first) != 2 || first[0] == 0 || first[1] <= first[0] {
		t.Fatalf("versions of the first changes %v, want rising from 1", first)
	}

	release := h.g.hold(context.Background(), carol) // a request in flight: carol's events wait
	h.g.HandleXSIEvent(xev(carol, dnd(false)))
	if got, _ := ph.Versions("carol"); len(got) != 2 {
		t.Fatalf("%d changes published while held", got)
	}
	st, err := svc.FeatureState(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if st.DoNotDisturb || st.Version <= first[1] {
		t.Fatalf("full state read while held: dnd %t version %d, want false above %d", st.DoNotDisturb, st.Version, first[1])
	}
	release()
	h.settle(t)
	got, changes := ph.Versions("carol")
	if len(got) != 3 || changes[2] != "carol dnd=false" {
		t.Fatalf("after release: %q %v", changes, got)
	}
	if got[2] > st.Version {
		t.Errorf("the held change has version %d above the full state's %d, which holds it", got[2], st.Version)
	}
	if got[2] <= first[1] {
		t.Errorf("the held change has version %d, not above the changes before it (%d)", got[2], first[1])
	}

	// A change after the read is above it, and so is sent.
	h.g.HandleXSIEvent(xev(carol, dnd(true)))
	v, _ := ph.Versions("carol")
	if len(v) != 4 || v[3] <= st.Version {
		t.Fatalf("a later change: versions %v, want the last above %d", v, st.Version)
	}
	hot, err := svc.Hoteling(ctx, "desk1")
	if err != nil || hot.Version < v[3] {
		t.Errorf("hoteling read: %+v %v, want a version at least %d", hot, err, v[3])
	}
}

// TestPhoneStateVersionsOneEventTwoChanges: one XSI event that means two
// changes of the agent state at one device (a signed-out agent made
// Available: AgentLoggedOn, then AgentReady) gives each its own version,
// rising: with one version for both, phonesync took the second for the
// first sent again and dropped it, and the phone stayed at loggedOn (found
// by the fault campaign, latency-spikes-10s).
func TestPhoneStateVersionsOneEventTwoChanges(t *testing.T) {
	h := newHarness(t)
	ph := &fakePhones{}
	h.g.SetPhones(ph)
	const carol = "carol@example.com"
	h.g.HandleXSIEvent(xev(carol, agentState("Sign-Out", "")))
	h.g.HandleXSIEvent(xev(carol, agentState("Available", "")))
	v, changes := ph.Versions("carol")
	want := []string{`carol agent carol loggedOff ""`, `carol agent carol loggedOn ""`, `carol agent carol ready ""`}
	if !slices.Equal(changes, want) {
		t.Fatalf("changes %q, want %q", changes, want)
	}
	if !(v[0] < v[1] && v[1] < v[2]) {
		t.Errorf("versions %v, want each above the one before", v)
	}
}

func TestGuestPassword(t *testing.T) {
	cfg := testConfig
	cfg.AgentPasswords = []AgentPassword{{AgentID: "A1", Password: "s3cret"}}
	h := newHarnessConfig(t, cfg)
	svc := h.g.PhoneService()
	for _, tt := range []struct {
		guest  string
		want   string
		wantOK bool
	}{
		{"A1", "s3cret", true},
		{"alice@example.com", "s3cret", true}, // the user ID names the same agent
		{"B2", "", false},
		{"", "", false},
	} {
		if got, ok := svc.GuestPassword(tt.guest); got != tt.want || ok != tt.wantOK {
			t.Errorf("GuestPassword(%q) = %q %v, want %q %v", tt.guest, got, ok, tt.want, tt.wantOK)
		}
	}
}

// TestPhoneLiveness: a silent phone is OutOfService on its device's
// monitors; back is BackInService.
func TestPhoneLiveness(t *testing.T) {
	h := newHarness(t)
	svc := h.g.PhoneService()
	svc.PhoneService("desk1", false)
	svc.PhoneService("desk1", true)
	svc.PhoneService("", false) // not a device: nothing
	var got []string
	for _, ev := range h.pub.Events() {
		got = append(got, fmt.Sprintf("%s %s", ev.Kind, ev.Device))
	}
	want := []string{
		"OutOfServiceEvent desk1", "OutOfServiceEvent host1", "OutOfServiceEvent host1@example.com",
		"BackInServiceEvent desk1", "BackInServiceEvent host1", "BackInServiceEvent host1@example.com",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events\n got %q\nwant %q", got, want)
	}
}

// TestDesktopPhoneConflict: within the window, Not Ready / Logout from one
// interface beats a later Ready / Login from the other; the same interface
// may change its mind, and after the window anything goes.
func TestDesktopPhoneConflict(t *testing.T) {
	ctx := context.Background()
	type step struct {
		from  origin
		state csta.ReqAgentState
		wait  time.Duration
		err   error
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"phone not ready, desktop ready refused", []step{{originPhone, csta.ReqNotReady, 0, nil}, {originCTI, csta.ReqReady, 0, ErrInvalidObjectState}}},
		{"desktop not ready, phone ready refused", []step{{originCTI, csta.ReqNotReady, 0, nil}, {originPhone, csta.ReqReady, 0, ErrInvalidObjectState}}},
		{"desktop logout, phone login refused", []step{{originCTI, csta.ReqLoggedOff, 0, nil}, {originPhone, csta.ReqLoggedOn, 0, ErrInvalidObjectState}}},
		{"same interface may change its mind", []step{{originPhone, csta.ReqNotReady, 0, nil}, {originPhone, csta.ReqReady, 0, nil}}},
		{"the stronger state from the other side wins when later", []step{{originPhone, csta.ReqReady, 0, nil}, {originCTI, csta.ReqNotReady, 0, nil}}},
		{"after the window anything goes", []step{{originPhone, csta.ReqNotReady, 0, nil}, {originCTI, csta.ReqReady, 300 * time.Millisecond, nil}}},
		{"after-call work is neither", []step{{originPhone, csta.ReqNotReady, 0, nil}, {originCTI, csta.ReqWorkingAfterCall, 0, nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig
			cfg.ConflictWindow = 200 * time.Millisecond
			h := newHarnessConfig(t, cfg)
			for i, s := range tt.steps {
				time.Sleep(s.wait)
				_, err := h.g.setAgentState(ctx, s.from, csta.Requester{}, &csta.SetAgentState{Device: "carol", RequestedState: s.state})
				if !errors.Is(err, s.err) || (s.err == nil && err != nil) {
					t.Fatalf("step %d (%v from %d): err %v, want %v", i, s.state, s.from, err, s.err)
				}
			}
			h.settle(t)
		})
	}
}
