package gateway_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/stack"
	"github.com/broadworks-connector/connector/xsi"
)

// TestHotDeskAdmissionResourceBusy: a CTI client whose hot-desk login the
// XSI capacity cannot confirm in time gets systemResourceAvailibility/
// resourceBusy at once, and nothing of it reaches BroadWorks.
//
// The estimate is made deterministic by holding XSI events on their way to
// the gateway (stack.Config.OnEvent): agent 1's login at desk 1 has each
// step confirmed 400 ms after its request (confirmations take at least
// that), then agent 2's login at desk 2 is held at its first confirmation,
// so that it is running while agent 3 asks for desk 3. Four steps of
// 400 ms with twice the headroom (3.2 s) do not fit the gateway's 3 s
// request timeout: refused. Released, agent 2's login completes.
func TestHotDeskAdmissionResourceBusy(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	t.Parallel()
	const confirmIn = 400 * time.Millisecond
	var (
		slow      atomic.Bool            // agent 1's and desk 1's events come confirmIn late
		holdFor   atomic.Pointer[string] // user (or desk) whose first event is held
		held      = make(chan struct{})
		release   = make(chan struct{})
		holdOnce  sync.Once
		freeOnce  sync.Once
		freeHeld  = func() { freeOnce.Do(func() { close(release) }) }
		target    = func(ev xsi.Event) string { se, _ := ev.(*xsi.SubscriptionEvent); return targetOf(se) }
		heldDesk  = stack.DeskUser(2)
		heldAgent = stack.AgentUser(2)
	)
	defer freeHeld()
	st := newStack(t, stack.Config{Agents: 3, Desks: 3, StepTimeout: 30 * time.Second, RequestTimeout: 3 * time.Second,
		OnEvent: func(ev xsi.Event) {
			who := target(ev)
			if slow.Load() && (who == stack.AgentUser(1) || who == stack.DeskUser(1)) {
				time.Sleep(confirmIn) // the event's latency, not a synchronisation
			}
			if p := holdFor.Load(); p != nil && (who == heldDesk || who == heldAgent) {
				first := false
				holdOnce.Do(func() { first = true })
				if first {
					close(held)
					<-release
				}
			}
		}})
	c := dial(t, st)
	ctx := t.Context()

	// Agent 1 at desk 1, alone (admitted whatever the estimate): its
	// steps measured at 400 ms or more each.
	slow.Store(true)
	if err := login(ctx, c, 1, 1); err != nil {
		t.Fatalf("agent 1 login: %v", err)
	}
	slow.Store(false)

	// Agent 2 at desk 2, held at its first confirmation.
	holdFor.Store(&heldDesk)
	second := make(chan error, 1)
	go func() { second <- login(ctx, c, 2, 2) }()
	<-held

	before := state(t, st, 3, 3)
	err := login(ctx, c, 3, 3)
	ce := cstaErr(t, err)
	if ce.Class != "systemResourceAvailibility" || ce.Value != "resourceBusy" {
		t.Fatalf("agent 3 login while over capacity: %v, want systemResourceAvailibility/resourceBusy", ce)
	}
	if after := state(t, st, 3, 3); after != before {
		t.Errorf("refused login changed BroadWorks:\n%+v\nwas\n%+v", after, before)
	}

	freeHeld()
	if err := <-second; err != nil {
		t.Fatalf("agent 2 login, admitted before the refusal: %v", err)
	}
	if s := state(t, st, 2, 2); s.Agent.GuestHostID != heldDesk || s.Desk.HostGuestID != heldAgent {
		t.Errorf("agent 2 not logged in at desk 2: %+v", s)
	}
}

func targetOf(se *xsi.SubscriptionEvent) string {
	if se == nil {
		return ""
	}
	return se.TargetID
}
