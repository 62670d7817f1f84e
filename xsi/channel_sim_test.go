package xsi

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/xsi/xspsim"
	"go.uber.org/goleak"
)

// waitEvent reads Events() until match accepts one, or fails after d.
func waitEvent(t *testing.T, e *Events, d time.Duration, what string, match func(*SubscriptionEvent) bool) *SubscriptionEvent {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-e.Events():
			if !ok {
				t.Fatalf("events closed waiting for %s", what)
			}
			if se := ev.(*SubscriptionEvent); match(se) {
				return se
			}
		case <-timer.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func waitLink(t *testing.T, e *Events, d time.Duration, want LinkState) {
	t.Helper()
	deadline := time.Now().Add(d)
	for e.LinkState()[0].State != want {
		if time.Now().After(deadline) {
			t.Fatalf("link %v, want %v", e.LinkState()[0], want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitSubs(t *testing.T, sim *xspsim.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(sim.Subscriptions()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions on the XSP, want %d", len(sim.Subscriptions()), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dnd(active bool) func(*SubscriptionEvent) bool {
	return func(se *SubscriptionEvent) bool {
		d, ok := se.Data.(*DoNotDisturbEvent)
		return ok && d.Active == active && se.TargetID == "agent1@example.com"
	}
}

// TestEventsAgainstSimulator: over real HTTP against xsi/xspsim (an
// independent implementation) with randomly split and coalesced chunks:
// open a channel, subscribe four packages, get the initial events, receive
// a portal change; kill and restart the XSP and resume on a new channel
// with the same subscriptions; restart the connector and adopt them.
func TestEventsAgainstSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	// Runs last: every goroutine of both Events and of the simulator is gone.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sim := xspsim.New(xspsim.Config{
		Users:            []xspsim.User{{ID: "agent1@example.com", FirstName: "A", LastName: "One", CallCenter: true}},
		Username:         "admin@example.com",
		Password:         "secret",
		Chunking:         xspsim.Chunking{Mode: xspsim.ChunkRandom, Seed: 7},
		HeartbeatTimeout: 5 * time.Second,
		EventAckTimeout:  5 * time.Second,
	}, nil)
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		sim.Shutdown(ctx)
	}()
	cfg := testEventsConfig(sim.URL())
	cfg.HeartbeatInterval = 300 * time.Millisecond
	cfg.ReconnectMin, cfg.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	cfg.EventPackages = []string{"Call Center Agent", "Call Forwarding Always", "Do Not Disturb", "Hoteling Guest"}
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	e, err := NewEvents(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stop := func(e *Events) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := e.Stop(sctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
	waitEvent(t, e, 10*time.Second, "initial DND event", dnd(false))
	if err := sim.PortalSetDND("agent1@example.com", true); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, e, 10*time.Second, "DND on", dnd(true))
	waitSubs(t, sim, 4)

	sim.Kill()
	waitLink(t, e, 10*time.Second, LinkDown)
	if err := sim.Restart(); err != nil {
		t.Fatal(err)
	}
	waitLink(t, e, 10*time.Second, LinkUp)
	if err := sim.PortalSetDND("agent1@example.com", false); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, e, 10*time.Second, "DND off after XSP restart", dnd(false))
	if n := len(sim.Subscriptions()); n != 4 {
		t.Errorf("%d subscriptions after XSP restart, want 4", n)
	}
	stop(e)
	time.Sleep(50 * time.Millisecond)
	if n := len(sim.Channels()); n != 0 {
		t.Errorf("%d channels left after Stop", n)
	}

	// Connector restart: same channel set, subscriptions adopted.
	e2, err := NewEvents(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer stop(e2)
	waitLink(t, e2, 10*time.Second, LinkUp)
	if err := sim.PortalSetCFA("agent1@example.com", true, "+12025550123"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, e2, 10*time.Second, "CFA on", func(se *SubscriptionEvent) bool {
		d, ok := se.Data.(*CallForwardingAlwaysEvent)
		return ok && d.Active
	})
	if n := len(sim.Subscriptions()); n != 4 {
		t.Errorf("%d subscriptions after connector restart, want 4 (adopted)", n)
	}
}
