package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/phonesync"
	"github.com/broadworks-connector/connector/xsi"
)

// Authorization by what a request touches (issue 13, attacks 3 and 4): a
// requester limited to devices acts on an agent only when the agent's own
// device or its desk is one of them; logging an agent on at one of them is
// fine unless the agent sits at a desk outside. Refusals change nothing
// and, with a fresh view, ask XSI nothing.

// crm is a CTI user limited to alice's line and desk1 (testConfig's
// directory: desk1 → host1, desk2 → host2, +15550001 → alice = A1; B2 =
// bob, whose own device is "bob" by the domain rule).
var crm = csta.Requester{Transport: "tcp", UserName: "crm", Devices: csta.LimitTo("+15550001", "desk1")}

func TestAgentAuthorization(t *testing.T) {
	const alice, bob = "alice@example.com", "bob@example.com"
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	seated := func(user, host string) *xsi.SubscriptionEvent { return xev(user, guestOf(host, since)) }
	notSeated := func(user string) *xsi.SubscriptionEvent { return xev(user, &xsi.HotelingGuestEvent{Active: true}) }
	refused := csta.ErrPrivilegeViolationSpecifiedDevice
	tests := []struct {
		name     string
		who      csta.Requester
		pre      []*xsi.SubscriptionEvent
		req      csta.SetAgentState
		calls    []string // Actions
		hotCalls []string
		wantErr  error
	}{
		// Attack 3: an agent sitting at a desk outside the user's devices.
		{name: "log off an agent at a desk outside", who: crm, pre: []*xsi.SubscriptionEvent{seated(bob, "host2@example.com")},
			req: csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqLoggedOff, AgentID: "B2"}, wantErr: refused},
		{name: "ready for an agent at a desk outside", who: crm, pre: []*xsi.SubscriptionEvent{seated(bob, "host2@example.com")},
			req: csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqReady, AgentID: "B2"}, wantErr: refused},
		{name: "notReady for an agent at a desk outside", who: crm, pre: []*xsi.SubscriptionEvent{seated(bob, "host2@example.com")},
			req: csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqNotReady, AgentID: "B2"}, wantErr: refused},
		{name: "workingAfterCall for an agent at a desk outside", who: crm, pre: []*xsi.SubscriptionEvent{seated(bob, "host2@example.com")},
			req: csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqWorkingAfterCall, AgentID: "B2"}, wantErr: refused},
		{name: "log on at one's desk an agent sitting at a desk outside (the move would log it off there)", who: crm,
			pre: []*xsi.SubscriptionEvent{seated(bob, "host2@example.com")},
			req: csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOn, AgentID: "B2"}, wantErr: refused},
		{name: "state of an agent at its own line outside", who: crm, pre: []*xsi.SubscriptionEvent{notSeated(bob)},
			req: csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqNotReady, AgentID: "B2"}, wantErr: refused},

		// What the user may do.
		{name: "log on the agent of one's own line", who: crm, pre: []*xsi.SubscriptionEvent{notSeated(alice)},
			req:   csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqLoggedOn, AgentID: "A1"},
			calls: []string{`SetAgentState alice@example.com Sign-In ""`, `SetAgentState alice@example.com Unavailable "999"`}},
		{name: "ready for the agent of one's own line", who: crm,
			req:   csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqReady, AgentID: "A1"},
			calls: []string{`SetAgentState alice@example.com Available ""`}},
		{name: "the agent of one's own line, sitting at a desk outside", who: crm, pre: []*xsi.SubscriptionEvent{seated(alice, "host2@example.com")},
			req:   csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqNotReady, AgentID: "A1"},
			calls: []string{`SetAgentState alice@example.com Unavailable "999"`}},
		{name: "log on at one's desk an agent sitting nowhere", who: crm, pre: []*xsi.SubscriptionEvent{notSeated(bob)},
			req:      csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOn, AgentID: "B2"},
			hotCalls: []string{"Login bob@example.com host1@example.com B2"}},
		{name: "the guest at one's desk", who: crm, pre: []*xsi.SubscriptionEvent{seated(bob, "host1@example.com")},
			req:   csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqReady, AgentID: "B2"},
			calls: []string{`SetAgentState bob@example.com Available ""`}},
		{name: "log off the guest at one's desk", who: crm, pre: []*xsi.SubscriptionEvent{seated(bob, "host1@example.com")},
			req:      csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOff, AgentID: "B2"},
			hotCalls: []string{"Logout bob@example.com"}},
		{name: "the desk written as its user ID is the same desk",
			who: csta.Requester{Devices: csta.LimitTo("host1@example.com")}, pre: []*xsi.SubscriptionEvent{seated(bob, "host1@example.com")},
			req:   csta.SetAgentState{Device: "host1@example.com", RequestedState: csta.ReqNotReady, AgentID: "B2"},
			calls: []string{`SetAgentState bob@example.com Unavailable "999"`}},
		{name: "the agent's own device written as its user ID",
			who: csta.Requester{Devices: csta.LimitTo("bob@example.com")}, pre: []*xsi.SubscriptionEvent{seated(bob, "host2@example.com")},
			req:      csta.SetAgentState{Device: "bob@example.com", RequestedState: csta.ReqLoggedOff, AgentID: "B2"},
			hotCalls: []string{"Logout bob@example.com"}},
		{name: "no agent named: the one at the (checked) device", who: crm, pre: []*xsi.SubscriptionEvent{seated(bob, "host1@example.com")},
			req:   csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqReady},
			calls: []string{`SetAgentState bob@example.com Available ""`}},

		// Where the view does not know, where the agent sits is read (never
		// changed) before the refusal.
		{name: "view not fresh: seat read from XSI, then refused", who: crm,
			req:     csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqLoggedOff, AgentID: "zed"},
			calls:   []string{"GetHotelingGuest zed@example.com"},
			wantErr: refused},

		// Unlimited requesters as before.
		{name: "unlimited user logs off an agent anywhere", who: csta.Requester{UserName: "ops"}, pre: []*xsi.SubscriptionEvent{seated(bob, "host2@example.com")},
			req:      csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqLoggedOff, AgentID: "B2"},
			hotCalls: []string{"Logout bob@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			for _, ev := range tt.pre {
				h.g.HandleXSIEvent(ev)
			}
			req := tt.req
			resp, err := h.g.SetAgentState(context.Background(), tt.who, &req)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || resp != nil {
					t.Fatalf("got %v, %v; want error %v", resp, err, tt.wantErr)
				}
			} else if err != nil || resp == nil {
				t.Fatalf("got %v, %v; want a response", resp, err)
			}
			if got := h.act.Calls(); !slices.Equal(got, tt.calls) {
				t.Errorf("Actions calls\n got %q\nwant %q", got, tt.calls)
			}
			if got := h.hot.Calls(); !slices.Equal(got, tt.hotCalls) {
				t.Errorf("Hoteling calls\n got %q\nwant %q", got, tt.hotCalls)
			}
			h.settle(t)
		})
	}
}

// A limited user's GetAgentState of one of its devices reports the agent
// there (the guest at its desk) as before.
func TestGetAgentStateLimited(t *testing.T) {
	h := newHarness(t)
	h.g.HandleXSIEvent(xev("bob@example.com", guestOf("host1@example.com", time.Time{})))
	h.g.HandleXSIEvent(xev("bob@example.com", agentState("Available", "")))
	resp, err := h.g.GetAgentState(context.Background(), crm, &csta.GetAgentState{Device: "desk1"})
	if err != nil {
		t.Fatal(err)
	}
	if e := resp.AgentStateList[0]; e.AgentID != "B2" || e.AgentInfo[0].AgentState != csta.AgentReady {
		t.Errorf("got %+v", e)
	}
	if calls := h.act.Calls(); len(calls) != 0 {
		t.Errorf("calls %q", calls)
	}
}

// Attack 4: a phone acts on its own line and the agent signed in at it
// only; logging another agent on goes through x-broadworks-hoteling with
// the agent's password (SetHoteling). AuthorizeAgent (phonesync asks it
// before answering) and SetAgentState agree, and refusals change nothing.
func TestPhoneAgentAuthorization(t *testing.T) {
	const alice, bob = "alice@example.com", "bob@example.com"
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name     string
		pre      []*xsi.SubscriptionEvent
		dn       string
		agentID  string
		state    phonesync.AgentStateName
		forbid   bool
		calls    []string
		hotCalls []string
	}{
		{name: "another agent's state", dn: "+15550001", agentID: "B2", state: phonesync.AgentNotReady, forbid: true,
			pre: []*xsi.SubscriptionEvent{xev(bob, guestOf("host2@example.com", since))}},
		{name: "another agent at its own line", dn: "+15550001", agentID: "B2", state: phonesync.AgentReady, forbid: true,
			pre: []*xsi.SubscriptionEvent{xev(bob, &xsi.HotelingGuestEvent{Active: true})}},
		{name: "log off another agent", dn: "+15550001", agentID: "B2", state: phonesync.AgentLoggedOff, forbid: true,
			pre: []*xsi.SubscriptionEvent{xev(bob, guestOf("host2@example.com", since))}},
		{name: "log another agent on at the phone's line", dn: "+15550001", agentID: "B2", state: phonesync.AgentLoggedOn, forbid: true,
			pre: []*xsi.SubscriptionEvent{xev(bob, &xsi.HotelingGuestEvent{Active: true})}},
		{name: "log an agent on at a desk phone without its password", dn: "desk1", agentID: "B2", state: phonesync.AgentLoggedOn, forbid: true,
			pre: []*xsi.SubscriptionEvent{xev(bob, &xsi.HotelingGuestEvent{Active: true})}},
		{name: "the guest at the desk phone", dn: "desk1", agentID: "B2", state: phonesync.AgentNotReady,
			pre:   []*xsi.SubscriptionEvent{xev(bob, guestOf("host1@example.com", since))},
			calls: []string{`SetAgentState bob@example.com Unavailable "999"`}},
		{name: "the line's own agent", dn: "+15550001", agentID: "A1", state: phonesync.AgentReady,
			calls: []string{`SetAgentState alice@example.com Available ""`}},
		{name: "the line's own agent logs on", dn: "+15550001", agentID: "A1", state: phonesync.AgentLoggedOn,
			calls: []string{`SetAgentState alice@example.com Sign-In ""`, `SetAgentState alice@example.com Unavailable "999"`}},
		{name: "the line's own agent, sitting at a desk elsewhere", dn: "+15550001", agentID: "A1", state: phonesync.AgentLoggedOff,
			pre:      []*xsi.SubscriptionEvent{xev(alice, guestOf("host2@example.com", since))},
			hotCalls: []string{"Logout alice@example.com"}},
		{name: "no agent named", dn: "+15550001", state: phonesync.AgentWorkingAfterCall,
			calls: []string{`SetAgentState alice@example.com Wrap-Up ""`}},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			for _, ev := range tt.pre {
				h.g.HandleXSIEvent(ev)
			}
			svc := h.g.PhoneService()
			authErr := svc.AuthorizeAgent(ctx, tt.dn, tt.agentID, tt.state)
			if calls := h.act.Calls(); len(calls) != 0 {
				t.Fatalf("AuthorizeAgent asked XSI %q", calls)
			}
			err := svc.SetAgentState(ctx, tt.dn, tt.agentID, tt.state, "", phonesync.OriginPhone)
			for what, e := range map[string]error{"AuthorizeAgent": authErr, "SetAgentState": err} {
				if tt.forbid != errors.Is(e, phonesync.ErrForbidden) {
					t.Errorf("%s: %v, forbidden want %v", what, e, tt.forbid)
				}
				if !tt.forbid && e != nil {
					t.Errorf("%s: %v", what, e)
				}
			}
			if got := h.act.Calls(); !slices.Equal(got, tt.calls) {
				t.Errorf("Actions calls\n got %q\nwant %q", got, tt.calls)
			}
			if got := h.hot.Calls(); !slices.Equal(got, tt.hotCalls) {
				t.Errorf("Hoteling calls\n got %q\nwant %q", got, tt.hotCalls)
			}
			h.settle(t)
		})
	}

	t.Run("hoteling sign-in with the agent's password moves it from a desk elsewhere", func(t *testing.T) {
		h := newHarness(t)
		h.g.HandleXSIEvent(xev(bob, guestOf("host2@example.com", since)))
		if err := h.g.PhoneService().SetHoteling(ctx, "desk1", "B2", phonesync.OriginPhone); err != nil {
			t.Fatal(err)
		}
		if got := h.hot.Calls(); !slices.Equal(got, []string{"Login bob@example.com host1@example.com B2"}) {
			t.Errorf("hoteling calls %q", got)
		}
		h.settle(t)
	})
}

// BenchmarkRequestAgent is what a limited requester's SetAgentState naming
// an agent pays before anything else: resolving the agent, its own device
// IDs against the limit, then its seat from the view and the desk's IDs.
func BenchmarkRequestAgent(b *testing.B) {
	devices := make([]csta.DeviceID, 1000)
	for i := range devices {
		devices[i] = csta.DeviceID(fmt.Sprint(4000 + i))
	}
	who := csta.Requester{Devices: csta.LimitTo(append(devices, "desk1", "+15550001")...)}
	g := New(testConfig, Deps{Actions: &fakeActions{}, Hoteling: &fakeHoteling{}, Publisher: &fakePublisher{}}, nil)
	g.HandleXSIEvent(xev("bob@example.com", guestOf("host1@example.com", time.Time{})))
	for _, tt := range []struct {
		name  string
		agent string
		want  error
	}{{"seated at an allowed desk", "B2", nil}, {"own device allowed", "A1", nil}} {
		b.Run(tt.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := g.requestAgent(context.Background(), who, originCTI, tt.agent, "host1@example.com", csta.ReqReady); err != tt.want {
					b.Fatal(err)
				}
			}
		})
	}
}
