package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
)

func agentEv(k csta.EventKind, dev csta.DeviceID, agent, reason string) csta.Event {
	return csta.Event{Kind: k, Device: dev, AgentID: agent, ReasonCode: reason}
}

func TestXSIEventsPublished(t *testing.T) {
	const carol, alice = "carol@example.com", "alice@example.com"
	since := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		name string
		evs  []*xsi.SubscriptionEvent
		want []csta.Event
	}{
		{
			name: "first values are published, repeats are not",
			evs: []*xsi.SubscriptionEvent{
				xev(carol, agentSnap("Available", "")), xev(carol, dnd(false)),
				xev(carol, agentSnap("Available", "")), xev(carol, dnd(false)), xev(carol, agentState("Available", "")),
			},
			want: []csta.Event{
				agentEv(csta.EventAgentReady, "carol", "carol", ""), agentEv(csta.EventAgentReady, "carol@example.com", "carol", ""),
				{Kind: csta.EventDoNotDisturb, Device: "carol"}, {Kind: csta.EventDoNotDisturb, Device: "carol@example.com"},
			},
		},
		{
			name: "agent state changes",
			evs: []*xsi.SubscriptionEvent{
				xev(carol, agentSnap("Sign-Out", "")),
				xev(carol, agentSnap("Sign-Out", "")), // refresh: unchanged
				xev(carol, agentState("Sign-In", "")),
				xev(carol, agentState("Unavailable", "100")),
				xev(carol, agentState("Available", "")),
				xev(carol, agentState("Wrap-Up", "")),
				xev(carol, agentState("Sign-Out", "")),
			},
			want: []csta.Event{
				agentEv(csta.EventAgentLoggedOff, "carol", "carol", ""), agentEv(csta.EventAgentLoggedOff, "carol@example.com", "carol", ""),
				agentEv(csta.EventAgentLoggedOn, "carol", "carol", ""), agentEv(csta.EventAgentLoggedOn, "carol@example.com", "carol", ""),
				agentEv(csta.EventAgentNotReady, "carol", "carol", "lunch"), agentEv(csta.EventAgentNotReady, "carol@example.com", "carol", "lunch"),
				agentEv(csta.EventAgentReady, "carol", "carol", ""), agentEv(csta.EventAgentReady, "carol@example.com", "carol", ""),
				agentEv(csta.EventAgentWorkingAfterCall, "carol", "carol", ""), agentEv(csta.EventAgentWorkingAfterCall, "carol@example.com", "carol", ""),
				agentEv(csta.EventAgentLoggedOff, "carol", "carol", ""), agentEv(csta.EventAgentLoggedOff, "carol@example.com", "carol", ""),
			},
		},
		{
			name: "Sign-Out straight to Unavailable: logged on, then not ready with an unmapped code",
			evs:  []*xsi.SubscriptionEvent{xev("dave@x.org", agentState("Sign-Out", "")), xev("dave@x.org", agentState("Unavailable", "7"))},
			want: []csta.Event{
				agentEv(csta.EventAgentLoggedOff, "dave@x.org", "dave@x.org", ""),
				agentEv(csta.EventAgentLoggedOn, "dave@x.org", "dave@x.org", ""),
				agentEv(csta.EventAgentNotReady, "dave@x.org", "dave@x.org", "7"),
			},
		},
		{
			name: "DND and CFA, portal or ours alike",
			evs: []*xsi.SubscriptionEvent{
				xev("dave@x.org", dnd(true)),
				xev("dave@x.org", &xsi.CallForwardingAlwaysEvent{Active: true, ForwardToPhoneNumber: "tel:+15551234"}),
				xev("dave@x.org", &xsi.CallForwardingAlwaysEvent{Unassigned: true}),
			},
			want: []csta.Event{
				{Kind: csta.EventDoNotDisturb, Device: "dave@x.org", DoNotDisturbOn: true},
				{Kind: csta.EventForwarding, Device: "dave@x.org", ForwardingType: csta.ForwardImmediate, ForwardStatus: true, ForwardTo: "+15551234"},
				{Kind: csta.EventForwarding, Device: "dave@x.org", ForwardingType: csta.ForwardImmediate},
			},
		},
		{
			name: "CFB and CFNA, portal or ours alike; ring count changes are changes",
			evs: []*xsi.SubscriptionEvent{
				xev("dave@x.org", &xsi.CallForwardingBusyEvent{Active: true, ForwardToPhoneNumber: "+15551234"}),
				xev("dave@x.org", &xsi.CallForwardingBusyEvent{Active: true, ForwardToPhoneNumber: "+15551234"}),
				xev("dave@x.org", &xsi.CallForwardingNoAnswerEvent{Active: true, ForwardToPhoneNumber: "sip:5000@x.org", NumberOfRings: 3}),
				xev("dave@x.org", &xsi.CallForwardingNoAnswerEvent{Active: true, ForwardToPhoneNumber: "sip:5000@x.org", NumberOfRings: 5}),
				xev("dave@x.org", &xsi.CallForwardingBusyEvent{Unassigned: true}),
			},
			want: []csta.Event{
				{Kind: csta.EventForwarding, Device: "dave@x.org", ForwardingType: csta.ForwardBusy, ForwardStatus: true, ForwardTo: "+15551234"},
				{Kind: csta.EventForwarding, Device: "dave@x.org", ForwardingType: csta.ForwardNoAns, ForwardStatus: true, ForwardTo: "5000@x.org", RingCount: 3},
				{Kind: csta.EventForwarding, Device: "dave@x.org", ForwardingType: csta.ForwardNoAns, ForwardStatus: true, ForwardTo: "5000@x.org", RingCount: 5},
				{Kind: csta.EventForwarding, Device: "dave@x.org", ForwardingType: csta.ForwardBusy},
			},
		},
		{
			name: "hot desk: host hears logon/logoff, guest's ready reaches the host too",
			evs: []*xsi.SubscriptionEvent{
				xev(alice, &xsi.HotelingGuestEvent{Active: true}),
				xev(alice, guestOf("host1@example.com", since)),
				xev(alice, agentState("Available", "")),
				xev(alice, &xsi.HotelingGuestEvent{Active: true}),
			},
			want: []csta.Event{
				agentEv(csta.EventAgentLoggedOn, "desk1", "A1", ""), agentEv(csta.EventAgentLoggedOn, "host1", "A1", ""), agentEv(csta.EventAgentLoggedOn, "host1@example.com", "A1", ""),
				agentEv(csta.EventAgentReady, "+15550001", "A1", ""), agentEv(csta.EventAgentReady, "alice", "A1", ""), agentEv(csta.EventAgentReady, "alice@example.com", "A1", ""),
				agentEv(csta.EventAgentReady, "desk1", "A1", ""), agentEv(csta.EventAgentReady, "host1", "A1", ""), agentEv(csta.EventAgentReady, "host1@example.com", "A1", ""),
				agentEv(csta.EventAgentLoggedOff, "desk1", "A1", ""), agentEv(csta.EventAgentLoggedOff, "host1", "A1", ""), agentEv(csta.EventAgentLoggedOff, "host1@example.com", "A1", ""),
			},
		},
		{
			name: "hot desk: a guest associated in a state it keeps: the host hears that state after the logon",
			evs: []*xsi.SubscriptionEvent{
				xev(alice, agentSnap("Unavailable", "200")),
				xev(alice, &xsi.HotelingGuestEvent{Active: true}),
				xev(alice, guestOf("host1@example.com", since)),
			},
			want: []csta.Event{
				agentEv(csta.EventAgentNotReady, "+15550001", "A1", "meeting"), agentEv(csta.EventAgentNotReady, "alice", "A1", "meeting"), agentEv(csta.EventAgentNotReady, "alice@example.com", "A1", "meeting"),
				agentEv(csta.EventAgentLoggedOn, "desk1", "A1", ""), agentEv(csta.EventAgentNotReady, "desk1", "A1", "meeting"),
				agentEv(csta.EventAgentLoggedOn, "host1", "A1", ""), agentEv(csta.EventAgentNotReady, "host1", "A1", "meeting"),
				agentEv(csta.EventAgentLoggedOn, "host1@example.com", "A1", ""), agentEv(csta.EventAgentNotReady, "host1@example.com", "A1", "meeting"),
			},
		},
		{
			name: "after link loss, a snapshot reports only differences",
			evs: []*xsi.SubscriptionEvent{
				xev("dave@x.org", dnd(false)),
				nil, // link down and up
				xev("dave@x.org", dnd(false)),
				nil,
				xev("dave@x.org", dnd(true)),
			},
			want: []csta.Event{{Kind: csta.EventDoNotDisturb, Device: "dave@x.org"}, {Kind: csta.EventDoNotDisturb, Device: "dave@x.org", DoNotDisturbOn: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			for _, ev := range tt.evs {
				if ev == nil {
					h.g.SetLinkUp(false)
					h.g.SetLinkUp(true)
					continue
				}
				h.g.HandleXSIEvent(ev)
			}
			if got := h.pub.Events(); !slices.Equal(got, tt.want) {
				t.Errorf("published\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestStateView(t *testing.T) {
	h := newHarness(t)
	since := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, ev := range []*xsi.SubscriptionEvent{
		xev("alice@example.com", agentSnap("Unavailable", "100")),
		xev("alice@example.com", &xsi.CallForwardingAlwaysEvent{Active: true, ForwardToPhoneNumber: "2000"}),
		xev("alice@example.com", guestOf("host1@example.com", since)),
	} {
		h.g.HandleXSIEvent(ev)
	}
	want := hoteling.User{ID: "alice@example.com", Known: true, ACDState: xsi.ACDUnavailable, UnavailableCode: "100",
		CFA: xsi.Forwarding{Active: true, ForwardToPhoneNumber: "2000"}, HostUserID: "host1@example.com", Since: since}
	if got := h.g.User("alice@example.com"); got != want {
		t.Errorf("guest\n got %+v\nwant %+v", got, want)
	}
	wantHost := hoteling.User{ID: "host1@example.com", GuestUserID: "alice@example.com", Since: since}
	if got := h.g.User("host1@example.com"); got != wantHost {
		t.Errorf("host\n got %+v\nwant %+v", got, wantHost)
	}
	// The guest moves to another host: the first host is free again.
	h.g.HandleXSIEvent(xev("alice@example.com", guestOf("host2@example.com", since)))
	if got := h.g.User("host1@example.com").GuestUserID; got != "" {
		t.Errorf("old host still has guest %q", got)
	}
	if got := h.g.User("host2@example.com").GuestUserID; got != "alice@example.com" {
		t.Errorf("new host guest %q", got)
	}
	if got := h.g.User("nobody@example.com"); got != (hoteling.User{ID: "nobody@example.com"}) {
		t.Errorf("unknown user %+v", got)
	}
}

func TestLinkDownAndUp(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.g.HandleXSIEvent(xev("carol@example.com", dnd(true)))
	h.g.SetLinkUp(false)
	h.g.SetLinkUp(false) // no second status
	calls := []func() error{
		func() error {
			_, err := h.g.SetAgentState(ctx, csta.Requester{}, &csta.SetAgentState{Device: "carol", RequestedState: csta.ReqReady})
			return err
		},
		func() error {
			_, err := h.g.GetAgentState(ctx, csta.Requester{}, &csta.GetAgentState{Device: "carol"})
			return err
		},
		func() error {
			return h.g.SetForwarding(ctx, csta.Requester{}, &csta.SetForwarding{Device: "carol", ForwardingType: csta.ForwardBusy})
		},
		func() error {
			_, err := h.g.GetForwarding(ctx, csta.Requester{}, &csta.GetForwarding{Device: "carol"})
			return err
		},
		func() error {
			return h.g.SetDoNotDisturb(ctx, csta.Requester{}, &csta.SetDoNotDisturb{Device: "carol"})
		},
		func() error {
			_, err := h.g.GetDoNotDisturb(ctx, csta.Requester{}, &csta.GetDoNotDisturb{Device: "carol"})
			return err
		},
	}
	for i, call := range calls {
		if err := call(); !errors.Is(err, csta.ErrResourceOutOfService) {
			t.Errorf("request %d while down: %v", i, err)
		}
	}
	if c := h.act.Calls(); len(c) != 0 {
		t.Errorf("XSI called while down: %q", c)
	}
	// Monitors may still start while down.
	if err := h.g.MonitorStart(ctx, csta.Requester{}, &csta.MonitorStart{Device: "carol"}); err != nil {
		t.Errorf("MonitorStart while down: %v", err)
	}
	h.g.SetLinkUp(true)
	if got, want := h.pub.Statuses(), []csta.SystemStatusValue{csta.SystemDisabled, csta.SystemNormal}; !slices.Equal(got, want) {
		t.Errorf("statuses %q, want %q", got, want)
	}
	// Up again, the view is stale until events arrive: DND is read from XSI.
	h.act.dnd = xsi.DoNotDisturb{Active: true}
	if r, err := h.g.GetDoNotDisturb(ctx, csta.Requester{}, &csta.GetDoNotDisturb{Device: "carol"}); err != nil || !r.DoNotDisturbOn {
		t.Errorf("after link up: %+v, %v", r, err)
	}
	if c := h.act.Calls(); !slices.Equal(c, []string{"GetDND carol@example.com"}) {
		t.Errorf("calls %q", c)
	}
}

func TestMonitorStart(t *testing.T) {
	h := newHarness(t)
	for _, tt := range []struct {
		dev csta.DeviceID
		err error
	}{{"carol", nil}, {"desk1", nil}, {"x@y.org", nil}, {"", csta.ErrInvalidDeviceID}} {
		if err := h.g.MonitorStart(context.Background(), csta.Requester{}, &csta.MonitorStart{Device: tt.dev}); !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Errorf("MonitorStart(%q) = %v, want %v", tt.dev, err, tt.err)
		}
	}
}

func TestRun(t *testing.T) {
	h := newHarness(t)
	events := make(chan xsi.Event)
	changes := make(chan struct{}) // unbuffered: each send is taken before the next step
	var links atomic.Pointer[[]xsi.LinkStatus]
	links.Store(&[]xsi.LinkStatus{{State: xsi.LinkDown}})
	linkState := func() []xsi.LinkStatus { return *links.Load() }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); h.g.Run(ctx, events, changes, linkState) }()
	events <- &xsi.ChannelHeartBeat{} // not a SubscriptionEvent: ignored
	links.Store(&[]xsi.LinkStatus{{State: xsi.LinkDown}, {State: xsi.LinkUp}})
	changes <- struct{}{}
	events <- xev("carol@example.com", dnd(true))
	events <- xev("carol@example.com", dnd(false))
	close(events)
	<-done
	if got, want := h.pub.Statuses(), []csta.SystemStatusValue{csta.SystemDisabled, csta.SystemNormal}; !slices.Equal(got, want) {
		t.Errorf("statuses %q, want %q", got, want)
	}
	want := []csta.Event{
		{Kind: csta.EventDoNotDisturb, Device: "carol", DoNotDisturbOn: true}, {Kind: csta.EventDoNotDisturb, Device: "carol@example.com", DoNotDisturbOn: true},
		{Kind: csta.EventDoNotDisturb, Device: "carol"}, {Kind: csta.EventDoNotDisturb, Device: "carol@example.com"},
	}
	if got := h.pub.Events(); !slices.Equal(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
}

func TestAwait(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		res <- h.g.Await(ctx, "alice@example.com", func(u hoteling.User) bool { return u.HostUserID == "host1@example.com" })
	}()
	h.g.HandleXSIEvent(xev("bob@example.com", dnd(true))) // another user: still waiting
	h.g.HandleXSIEvent(xev("alice@example.com", dnd(true)))
	select {
	case err := <-res:
		t.Fatalf("Await returned early: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	h.g.HandleXSIEvent(xev("alice@example.com", guestOf("host1@example.com", time.Time{})))
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	// Already true: at once. Never true: ctx's error.
	if err := h.g.Await(ctx, "alice@example.com", func(u hoteling.User) bool { return u.Known }); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if err := h.g.Await(short, "alice@example.com", func(hoteling.User) bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

// TestAnswerBeforeEvents: an XSI event that arrives before the HTTP answer
// of our own request is held until the request has returned and its answer
// is queued (csta.WithAnswer stands for the front end); a later event of
// the same user queues behind it, in order. Without a front end answer to
// wait for, they go as the method returns.
func TestAnswerBeforeEvents(t *testing.T) {
	want := []csta.Event{
		{Kind: csta.EventDoNotDisturb, Device: "carol", DoNotDisturbOn: true}, {Kind: csta.EventDoNotDisturb, Device: "carol@example.com", DoNotDisturbOn: true},
		{Kind: csta.EventDoNotDisturb, Device: "carol"}, {Kind: csta.EventDoNotDisturb, Device: "carol@example.com"},
	}
	for _, front := range []bool{true, false} {
		t.Run(fmt.Sprintf("front=%t", front), func(t *testing.T) {
			h := newHarness(t)
			h.g.HandleXSIEvent(xev("carol@example.com", dnd(false))) // snapshot
			h.act.onCall = func(method string) {
				if method == "SetDND" {
					h.g.HandleXSIEvent(xev("carol@example.com", dnd(true)))
				}
			}
			ctx, answered := context.Background(), func() {}
			if front {
				ctx, answered = csta.WithAnswer(ctx)
			}
			before := len(h.pub.Events())
			if err := h.g.SetDoNotDisturb(ctx, csta.Requester{}, &csta.SetDoNotDisturb{Device: "carol", DoNotDisturbOn: true}); err != nil {
				t.Fatal(err)
			}
			h.act.onCall = nil
			if !front {
				if got := h.pub.Events()[before:]; !slices.Equal(got, want[:2]) {
					t.Fatalf("after the method returned: %+v, want %+v", got, want[:2])
				}
				h.g.HandleXSIEvent(xev("carol@example.com", dnd(false)))
			} else {
				if got := h.pub.Events()[before:]; len(got) != 0 {
					t.Fatalf("published before the answer: %+v", got)
				}
				// Meanwhile another event for the same user is queued behind, in order.
				h.g.HandleXSIEvent(xev("carol@example.com", dnd(false)))
				if got := h.pub.Events()[before:]; len(got) != 0 {
					t.Fatalf("published while held: %+v", got)
				}
				answered()
				answered() // once only
			}
			if got := h.pub.Events()[before:]; !slices.Equal(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}
