package gateway

import (
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/promtest"
	"github.com/broadworks-connector/connector/xsi"
)

// TestAgentActivity: what the observer hears of each XSI event for the
// charts of the last hour, and the delay histogram.
func TestAgentActivity(t *testing.T) {
	const alice, host = "alice@example.com", "host1@example.com"
	stamped := func(state string, at time.Time) *xsi.AgentStateEvent {
		e := agentState(state, "")
		e.Info.StateTimestamp = at
		return e
	}
	type event struct {
		user string
		data xsi.EventData
	}
	// want: login, changed, delay ("" none, "+" positive, "-" negative)
	type want struct {
		login, changed bool
		delay          string
	}
	tests := []struct {
		name   string
		events []event
		want   []want // one per event that did something, in order
	}{
		{"the first state seen is no change nor a login", []event{{alice, agentState("Available", "")}}, nil},
		{"the first snapshot neither", []event{{alice, agentSnap("Sign-Out", "")}}, nil},
		{"a sign-in from Sign-Out is a login and a change", []event{{alice, agentSnap("Sign-Out", "")}, {alice, agentState("Sign-In", "")}},
			[]want{{login: true, changed: true}}},
		{"straight to Available from Sign-Out: a login", []event{{alice, agentSnap("Sign-Out", "")}, {alice, agentState("Available", "")}, {alice, agentState("Unavailable", "200")}},
			[]want{{login: true, changed: true}, {changed: true}}},
		{"a new unavailable code is a change", []event{{alice, agentState("Unavailable", "200")}, {alice, agentState("Unavailable", "300")}},
			[]want{{changed: true}}},
		{"the same state again is nothing", []event{{alice, agentState("Available", "")}, {alice, agentState("Available", "")}}, nil},
		{"a logout is a change, not a login", []event{{alice, agentState("Available", "")}, {alice, agentState("Sign-Out", "")}},
			[]want{{changed: true}}},
		{"hot-desk login: associated while signed out, then signed in: one login",
			[]event{{alice, agentSnap("Sign-Out", "")}, {alice, guestOf(host, time.Now())}, {alice, agentState("Unavailable", "")}},
			[]want{{login: true, changed: true}}},
		{"a desk got while signed in is a login", []event{{alice, agentState("Available", "")}, {alice, guestOf(host, time.Now())}},
			[]want{{login: true}}},
		{"a desk got by an agent whose state is unknown is a login", []event{{alice, guestOf(host, time.Now())}},
			[]want{{login: true}}},
		{"a stamped event: its delay, even with no change", []event{{alice, stamped("Available", time.Now().Add(-2*time.Second))}},
			[]want{{delay: "+"}}},
		{"a change stamped ahead of this clock: a negative delay", []event{{alice, agentState("Sign-Out", "")}, {alice, stamped("Available", time.Now().Add(time.Hour))}},
			[]want{{login: true, changed: true, delay: "-"}}},
		{"a snapshot's timestamp is no delay", []event{{alice, &xsi.AgentSubscriptionEvent{State: &xsi.AgentStateInfo{State: "Available", StateTimestamp: time.Now().Add(-time.Hour)}}}}, nil},
		{"other events are nothing", []event{{host, dnd(true)}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			obs := &fakeObserver{}
			h.g.SetObserver(obs)
			for _, e := range tt.events {
				h.g.HandleXSIEvent(xev(e.user, e.data))
			}
			obs.mu.Lock()
			got := obs.activity
			obs.mu.Unlock()
			if len(got) != len(tt.want) {
				t.Fatalf("heard %+v, want %+v", got, tt.want)
			}
			for i, a := range got {
				delay := ""
				switch {
				case a.HasDelay && a.Delay >= 2*time.Second && a.Delay < time.Minute:
					delay = "+"
				case a.HasDelay && a.Delay < -59*time.Minute:
					delay = "-"
				case a.HasDelay:
					delay = "? " + a.Delay.String()
				}
				if w := tt.want[i]; a.UserID != alice || a.Login != w.login || a.StateChanged != w.changed || delay != w.delay {
					t.Errorf("activity %d: %+v (delay %q), want %+v", i, a, delay, w)
				}
			}
		})
	}
}

func TestEventDelayMetric(t *testing.T) {
	h := newHarness(t)
	at := func(d time.Duration) *xsi.AgentStateEvent {
		e := agentState("Available", "")
		e.Info.StateTimestamp = time.Now().Add(-d)
		return e
	}
	h.g.HandleXSIEvent(xev("alice@example.com", at(2*time.Second)))          // in (1, 2.5]
	h.g.HandleXSIEvent(xev("alice@example.com", at(-time.Hour)))             // ahead: 0
	h.g.HandleXSIEvent(xev("alice@example.com", agentState("Sign-Out", ""))) // no timestamp
	got := promtest.Scrape(t, h.g.Collectors()...)
	promtest.WantSamples(t, got, map[string]float64{
		"connector_xsi_event_delay_seconds_count":              2,
		`connector_xsi_event_delay_seconds_bucket{le="0.005"}`: 1,
		`connector_xsi_event_delay_seconds_bucket{le="1"}`:     1,
		`connector_xsi_event_delay_seconds_bucket{le="2.5"}`:   2,
		"connector_xsi_event_stamped_ahead_total":              1,
	})
}
