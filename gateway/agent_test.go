package gateway

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
)

func TestSetAgentState(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name     string
		pre      []*xsi.SubscriptionEvent // fixture events before the request
		linkDown bool
		actErrs  map[string]error
		hotErr   error
		guest    xsi.HotelingGuest // GetHotelingGuest answer when not fresh
		req      csta.SetAgentState
		calls    []string // Actions
		hotCalls []string
		wantErr  error
		noHot    bool
	}{
		{
			name:     "loggedOn at a hot-desk host: Login with the agent's own number",
			req:      csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOn, AgentID: "A1"},
			hotCalls: []string{"Login alice@example.com host1@example.com +15550001"},
		},
		{
			name:     "loggedOn at a host: agent without Number forwards to its ID",
			req:      csta.SetAgentState{Device: "desk2", RequestedState: csta.ReqLoggedOn, AgentID: "B2"},
			hotCalls: []string{"Login bob@example.com host2@example.com B2"},
		},
		{
			name:     "loggedOn at a host held by another guest: hoteling decides (takeover)",
			pre:      []*xsi.SubscriptionEvent{xev("bob@example.com", guestOf("host1@example.com", since))},
			req:      csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOn, AgentID: "A1"},
			hotCalls: []string{"Login alice@example.com host1@example.com +15550001"},
		},
		{
			name:     "loggedOn at a host the agent already holds: Login again (idempotent in hoteling)",
			pre:      []*xsi.SubscriptionEvent{xev("alice@example.com", guestOf("host1@example.com", since))},
			req:      csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOn, AgentID: "A1"},
			hotCalls: []string{"Login alice@example.com host1@example.com +15550001"},
		},
		{
			name:     "Login refused by hoteling: host busy",
			hotErr:   &hoteling.StepError{Op: "login", Step: "associate", Kind: hoteling.ErrHostBusy, Err: errors.New("taken")},
			req:      csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOn, AgentID: "A1"},
			hotCalls: []string{"Login alice@example.com host1@example.com +15550001"},
			wantErr:  ErrInvalidObjectState,
		},
		{
			name:     "Login: no confirming event",
			hotErr:   &hoteling.StepError{Op: "login", Step: "host-cfa", Kind: hoteling.ErrTimeout, Err: context.DeadlineExceeded},
			req:      csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOn, AgentID: "A1"},
			hotCalls: []string{"Login alice@example.com host1@example.com +15550001"},
			wantErr:  csta.ErrResourceBusy,
		},
		{
			name:     "Login refused by admission (XSI capacity): resourceBusy, as for a full queue",
			hotErr:   &hoteling.StepError{Op: "login", Step: "admission", Kind: hoteling.ErrOverloaded, Err: hoteling.ErrOverloaded},
			req:      csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOn, AgentID: "A1"},
			hotCalls: []string{"Login alice@example.com host1@example.com +15550001"},
			wantErr:  csta.ErrResourceBusy,
		},
		{
			name:     "Logout refused by admission: resourceBusy",
			pre:      []*xsi.SubscriptionEvent{xev("alice@example.com", guestOf("host1@example.com", since))},
			hotErr:   &hoteling.StepError{Op: "logout", Step: "admission", Kind: hoteling.ErrOverloaded, Err: hoteling.ErrOverloaded},
			req:      csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOff, AgentID: "A1"},
			hotCalls: []string{"Logout alice@example.com"},
			wantErr:  csta.ErrResourceBusy,
		},
		{
			name:     "Login: unknown guest",
			hotErr:   &hoteling.StepError{Op: "login", Kind: hoteling.ErrUnknownUser, Err: &xsi.Error{Status: 404}},
			req:      csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOn, AgentID: "zed"},
			hotCalls: []string{"Login zed@example.com host1@example.com zed"},
			wantErr:  csta.ErrInvalidAgentIdentifier,
		},
		{
			name:     "Logout: contradicted",
			pre:      []*xsi.SubscriptionEvent{xev("alice@example.com", guestOf("host1@example.com", since))},
			hotErr:   &hoteling.StepError{Op: "logout", Kind: hoteling.ErrContradicted, Err: hoteling.ErrContradicted},
			req:      csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOff, AgentID: "A1"},
			hotCalls: []string{"Logout alice@example.com"},
			wantErr:  ErrStateGeneric,
		},
		{
			name:     "Login: XSP unreachable",
			hotErr:   xsi.ErrLinkDown,
			req:      csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOn, AgentID: "A1"},
			hotCalls: []string{"Login alice@example.com host1@example.com +15550001"},
			wantErr:  csta.ErrResourceOutOfService,
		},
		{
			name:  "loggedOn at own device: Sign-In then Unavailable with the default code",
			req:   csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqLoggedOn, AgentID: "A1"},
			calls: []string{`SetAgentState alice@example.com Sign-In ""`, `SetAgentState alice@example.com Unavailable "999"`},
		},
		{
			name:  "loggedOn at own device without agentID, with a reason",
			req:   csta.SetAgentState{Device: "carol", RequestedState: csta.ReqLoggedOn, ReasonCode: "lunch"},
			calls: []string{`SetAgentState carol@example.com Sign-In ""`, `SetAgentState carol@example.com Unavailable "100"`},
		},
		{
			name:    "loggedOn at another user's ordinary device",
			req:     csta.SetAgentState{Device: "carol", RequestedState: csta.ReqLoggedOn, AgentID: "A1"},
			wantErr: csta.ErrInvalidDeviceID,
		},
		{
			name:     "loggedOff while hot-desked (from the view): Logout",
			pre:      []*xsi.SubscriptionEvent{xev("alice@example.com", guestOf("host1@example.com", since))},
			req:      csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOff, AgentID: "A1"},
			hotCalls: []string{"Logout alice@example.com"},
		},
		{
			name:     "loggedOff while hot-desked (view not fresh: asked of XSI)",
			guest:    xsi.HotelingGuest{Active: true, HostUserID: "host1@example.com"},
			req:      csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqLoggedOff, AgentID: "A1"},
			calls:    []string{"GetHotelingGuest alice@example.com"},
			hotCalls: []string{"Logout alice@example.com"},
		},
		{
			name:  "loggedOff not hot-desked: Sign-Out",
			pre:   []*xsi.SubscriptionEvent{xev("alice@example.com", &xsi.HotelingGuestEvent{Active: true})},
			req:   csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqLoggedOff, AgentID: "A1"},
			calls: []string{`SetAgentState alice@example.com Sign-Out ""`},
		},
		{
			name:    "loggedOff, no hoteling service (404): Sign-Out",
			actErrs: map[string]error{"GetHotelingGuest": &xsi.Error{Status: 404}},
			req:     csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqLoggedOff, AgentID: "A1"},
			calls:   []string{"GetHotelingGuest alice@example.com", `SetAgentState alice@example.com Sign-Out ""`},
		},
		{
			name:  "ready: Available",
			req:   csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqReady, AgentID: "A1"},
			calls: []string{`SetAgentState alice@example.com Available ""`},
		},
		{
			name:  "ready at a host: the guest is the agent",
			pre:   []*xsi.SubscriptionEvent{xev("alice@example.com", guestOf("host1@example.com", since))},
			req:   csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqReady},
			calls: []string{`SetAgentState alice@example.com Available ""`},
		},
		{
			name:  "notReady with a mapped reason",
			req:   csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqNotReady, AgentID: "A1", ReasonCode: "meeting"},
			calls: []string{`SetAgentState alice@example.com Unavailable "200"`},
		},
		{
			name:  "notReady without reason: default code",
			req:   csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqNotReady, AgentID: "A1"},
			calls: []string{`SetAgentState alice@example.com Unavailable "999"`},
		},
		{
			name:  "workingAfterCall: Wrap-Up",
			req:   csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqWorkingAfterCall, AgentID: "A1"},
			calls: []string{`SetAgentState alice@example.com Wrap-Up ""`},
		},
		{
			name:    "unknown agent (404)",
			actErrs: map[string]error{"SetAgentState": &xsi.Error{Status: 404}},
			req:     csta.SetAgentState{Device: "zed", RequestedState: csta.ReqReady, AgentID: "zed"},
			calls:   []string{`SetAgentState zed@example.com Available ""`},
			wantErr: csta.ErrInvalidAgentIdentifier,
		},
		{
			name:    "no sequencer wired: hot-desk logon refused",
			req:     csta.SetAgentState{Device: "desk1", RequestedState: csta.ReqLoggedOn, AgentID: "A1"},
			noHot:   true,
			wantErr: csta.ErrServiceNotSupported,
		},
		{
			name:    "unknown device",
			req:     csta.SetAgentState{Device: "", RequestedState: csta.ReqReady, AgentID: "A1"},
			wantErr: csta.ErrInvalidDeviceID,
		},
		{
			name:    "unknown requested state",
			req:     csta.SetAgentState{Device: "+15550001", RequestedState: "busy", AgentID: "A1"},
			wantErr: csta.ErrInvalidAgentState,
		},
		{
			name:    "XSP 5xx",
			actErrs: map[string]error{"SetAgentState": &xsi.Error{Status: 500}},
			req:     csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqReady, AgentID: "A1"},
			calls:   []string{`SetAgentState alice@example.com Available ""`},
			wantErr: csta.ErrResourceOutOfService,
		},
		{
			name:     "link down",
			linkDown: true,
			req:      csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqReady, AgentID: "A1"},
			wantErr:  csta.ErrResourceOutOfService,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.act.errs, h.act.guest, h.hot.err = tt.actErrs, tt.guest, tt.hotErr
			if tt.noHot {
				h.g.SetHoteling(nil)
			}
			for _, ev := range tt.pre {
				h.g.HandleXSIEvent(ev)
			}
			if tt.linkDown {
				h.g.SetLinkUp(false)
			}
			req := tt.req
			resp, err := h.g.SetAgentState(context.Background(), csta.Requester{}, &req)
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
		})
	}
}

func TestGetAgentState(t *testing.T) {
	tests := []struct {
		name     string
		pre      []*xsi.SubscriptionEvent
		cc       xsi.CallCenter
		device   csta.DeviceID
		calls    []string
		agentID  string
		loggedOn bool
		state    csta.AgentState
		reason   string
	}{
		{
			name:     "from the view: unavailable with a mapped reason",
			pre:      []*xsi.SubscriptionEvent{xev("alice@example.com", agentSnap("Unavailable", "100"))},
			device:   "+15550001",
			agentID:  "A1",
			loggedOn: true, state: csta.AgentNotReady, reason: "lunch",
		},
		{
			name:    "not fresh: from XSI",
			cc:      xsi.CallCenter{AgentACDState: xsi.ACDWrapUp},
			device:  "carol",
			calls:   []string{"GetCallCenter carol@example.com"},
			agentID: "carol", loggedOn: true, state: csta.AgentWorkingAfterCall,
		},
		{
			name:    "signed out",
			pre:     []*xsi.SubscriptionEvent{xev("carol@example.com", agentState("Sign-Out", ""))},
			device:  "carol",
			agentID: "carol", loggedOn: false, state: csta.AgentNull,
		},
		{
			name: "a host device reports its guest",
			pre: []*xsi.SubscriptionEvent{
				xev("alice@example.com", guestOf("host1@example.com", time.Time{})),
				xev("alice@example.com", agentState("Available", "")),
			},
			device:  "desk1",
			agentID: "A1", loggedOn: true, state: csta.AgentReady,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.act.cc = tt.cc
			for _, ev := range tt.pre {
				h.g.HandleXSIEvent(ev)
			}
			resp, err := h.g.GetAgentState(context.Background(), csta.Requester{}, &csta.GetAgentState{Device: tt.device})
			if err != nil {
				t.Fatal(err)
			}
			if got := h.act.Calls(); !slices.Equal(got, tt.calls) {
				t.Errorf("calls %q, want %q", got, tt.calls)
			}
			if len(resp.AgentStateList) != 1 || len(resp.AgentStateList[0].AgentInfo) != 1 {
				t.Fatalf("response %+v", resp)
			}
			e := resp.AgentStateList[0]
			if e.AgentID != tt.agentID || e.LoggedOnState != tt.loggedOn || e.AgentInfo[0].AgentState != tt.state || resp.ReasonCode != tt.reason {
				t.Errorf("got %+v reason %q; want %s %v %s %q", e, resp.ReasonCode, tt.agentID, tt.loggedOn, tt.state, tt.reason)
			}
		})
	}
}

// TestAcceptedStateInView: a state the XSP accepted for our request stands
// in the hot-desk view until its event comes (or the window passes), so a
// sequence started right after the answer does not start from the state
// before.
func TestAcceptedStateInView(t *testing.T) {
	const alice = "alice@example.com"
	h := newHarness(t)
	h.g.HandleXSIEvent(xev(alice, agentState("Unavailable", "200")))
	ready := csta.SetAgentState{Device: "+15550001", RequestedState: csta.ReqReady, AgentID: "A1"}
	if _, err := h.g.SetAgentState(context.Background(), csta.Requester{}, &ready); err != nil {
		t.Fatal(err)
	}
	if v := h.g.User(alice); v.ACDState != xsi.ACDAvailable || v.UnavailableCode != "" {
		t.Fatalf("view after the 200, before the event: %s/%s, want Available", v.ACDState, v.UnavailableCode)
	}
	// An event of an earlier change does not end it; ours does.
	h.g.HandleXSIEvent(xev(alice, agentState("Unavailable", "100")))
	if v := h.g.User(alice); v.ACDState != xsi.ACDAvailable {
		t.Fatalf("view after an older event: %s, want Available still", v.ACDState)
	}
	h.g.HandleXSIEvent(xev(alice, agentState("Available", "")))
	h.g.HandleXSIEvent(xev(alice, agentState("Unavailable", "200"))) // someone else, after ours
	if v := h.g.User(alice); v.ACDState != xsi.ACDUnavailable || v.UnavailableCode != "200" {
		t.Fatalf("view after the confirming event and a later change: %s/%s, want Unavailable/200", v.ACDState, v.UnavailableCode)
	}
	// Never confirmed: the view goes back to the events once the window has passed.
	if _, err := h.g.SetAgentState(context.Background(), csta.Requester{}, &ready); err != nil {
		t.Fatal(err)
	}
	h.g.mu.Lock()
	h.g.users[alice].pendingUntil = time.Now().Add(-time.Millisecond)
	h.g.mu.Unlock()
	if v := h.g.User(alice); v.ACDState != xsi.ACDUnavailable {
		t.Fatalf("view after the window: %s, want the events' Unavailable", v.ACDState)
	}
	h.settle(t)
}
