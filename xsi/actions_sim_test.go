package xsi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/xsi/xspsim"
	"go.uber.org/goleak"
)

// Users of the Actions end-to-end tests. host1's first name is Latin-1 so
// the ISO-8859-1 Actions bodies are exercised.
const (
	asAgent  = "agent1@example.com"
	asGuest1 = "guest1@example.com"
	asGuest2 = "guest2@example.com"
	asHost1  = "host1@example.com"
	asHost2  = "host2@example.com"
	asQueue1 = "cc1@example.com"
	asQueue2 = "cc2@example.com"
	asNobody = "nobody@example.com"
)

func newActionsSim(t *testing.T, mod func(*xspsim.Config)) *xspsim.Server {
	t.Helper()
	sc := xspsim.Config{
		Users: []xspsim.User{
			{ID: asAgent, FirstName: "A", LastName: "One", CallCenter: true, CallCenters: []string{asQueue1, asQueue2}},
			{ID: asGuest1, FirstName: "G", LastName: "One", CallCenter: true, PhoneNumber: "+12025550101", Extension: "101"},
			{ID: asGuest2, FirstName: "G", LastName: "Two"},
			{ID: asHost1, FirstName: "José", LastName: "Höst", HotelingHost: true},
			{ID: asHost2, FirstName: "H", LastName: "Two", HotelingHost: true},
		},
		UnavailableCodes: []xspsim.UnavailableCode{
			{Code: "LUNCH", Description: "Lunch", Active: true, Default: true},
			{Code: "MTG", Description: "Meeting", Active: true},
			{Code: "OLD", Description: "Retired", Active: false},
		},
		Username:         "admin@example.com",
		Password:         "secret",
		HeartbeatTimeout: 5 * time.Second,
		EventAckTimeout:  5 * time.Second,
	}
	if mod != nil {
		mod(&sc)
	}
	sim := xspsim.New(sc, nil)
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

func actionsConfig(servers ...string) Config {
	cfg := testEventsConfig(servers...)
	cfg.RequestTimeout = 5 * time.Second
	cfg.HeartbeatInterval = 300 * time.Millisecond
	cfg.ReconnectMin, cfg.ReconnectMax = 10*time.Millisecond, 100*time.Millisecond
	return cfg
}

// wantXsiErr checks err against a sentinel and, when code != 0, the
// ErrorInfo errorCode.
func wantXsiErr(t *testing.T, what string, err, kind error, code int) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: err %v, want %v", what, err, kind)
	}
	var xe *Error
	if !errors.As(err, &xe) {
		t.Fatalf("%s: %T is not *xsi.Error", what, err)
	}
	if code != 0 && xe.ErrorCode != code {
		t.Errorf("%s: errorCode %d, want %d (%s)", what, xe.ErrorCode, code, xe.SummaryEnglish)
	}
}

// TestActionsAgainstSimulator: every service method of the Actions client
// over real HTTP against xsi/xspsim, the BroadWorks rules as typed errors,
// and for every change the event a channel manager subscribed to the user
// receives.
func TestActionsAgainstSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	sim := newActionsSim(t, nil)
	cfg := actionsConfig(sim.URL())
	c, err := NewClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	ecfg := cfg
	ecfg.Targets = []Target{{Kind: "user", ID: asAgent}, {Kind: "user", ID: asGuest1}}
	ecfg.EventPackages = []string{"Call Center Agent", "Call Forwarding Always", "Do Not Disturb", "Hoteling Guest"}
	e, err := NewEvents(ecfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := e.Stop(sctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	waitLink(t, e, 10*time.Second, LinkUp)
	waitSubs(t, sim, 8) // agent1 × 4 + guest1 × 4
	// The initial state of the guest, last of the initial events we rely on.
	waitEvent(t, e, 10*time.Second, "initial hoteling guest", func(se *SubscriptionEvent) bool {
		_, ok := se.Data.(*HotelingGuestEvent)
		return ok && se.TargetID == asGuest1
	})

	// --- reads of the initial state
	cc, err := c.GetCallCenter(ctx, asAgent)
	if err != nil {
		t.Fatal(err)
	}
	if cc.AgentACDState != ACDSignOut || len(cc.Queues) != 2 || cc.Queues[0].ID != asQueue1 || !cc.Queues[0].Available {
		t.Errorf("GetCallCenter = %+v", cc)
	}
	codes, err := c.UnavailableCodes(ctx, "grp1", "ent1")
	if err != nil {
		t.Fatal(err)
	}
	want := []UnavailableCode{{"LUNCH", "Lunch", true, true}, {"MTG", "Meeting", true, false}, {"OLD", "Retired", false, false}}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("UnavailableCodes = %+v, want %+v", codes, want)
	}
	hosts, err := c.ListHotelingHosts(ctx, asGuest1)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(hosts) != fmt.Sprint([]HotelingHostEntry{{asHost1}, {asHost2}}) {
		t.Errorf("ListHotelingHosts = %v", hosts)
	}

	agentState := func(state ACDState, code string) func(*SubscriptionEvent) bool {
		return func(se *SubscriptionEvent) bool {
			d, ok := se.Data.(*AgentStateEvent)
			return ok && se.TargetID == asAgent && d.Info.State == string(state) && d.Info.UnavailableCode == code
		}
	}
	guestHost := func(host string) func(*SubscriptionEvent) bool {
		return func(se *SubscriptionEvent) bool {
			d, ok := se.Data.(*HotelingGuestEvent)
			return ok && se.TargetID == asGuest1 && d.HostUserID == host
		}
	}
	checkCC := func(state ACDState, code string) func() error {
		return func() error {
			cc, err := c.GetCallCenter(ctx, asAgent)
			if err != nil {
				return err
			}
			if cc.AgentACDState != state || cc.AgentUnavailableCode != code {
				return fmt.Errorf("GetCallCenter: %s/%q, want %s/%q", cc.AgentACDState, cc.AgentUnavailableCode, state, code)
			}
			return nil
		}
	}
	checkGuest := func(guest, host, first string) func() error {
		return func() error {
			g, err := c.GetHotelingGuest(ctx, guest)
			if err != nil {
				return err
			}
			if g.HostUserID != host || g.HostFirstName != first || (host != "") != !g.HostAssociationDateTime.IsZero() {
				return fmt.Errorf("GetHotelingGuest(%s) = %+v, want host %q %q", guest, g, host, first)
			}
			return nil
		}
	}
	checkHost := func(host string, hasGuest bool) func() error {
		return func() error {
			h, err := c.GetHotelingHost(ctx, host)
			if err != nil {
				return err
			}
			if !h.Active || h.HasGuest() != hasGuest || h.AccessLevel != "Group" {
				return fmt.Errorf("GetHotelingHost(%s) = %+v, want guest %v", host, h, hasGuest)
			}
			return nil
		}
	}

	steps := []struct {
		name    string
		do      func() error
		errKind error // nil: success expected
		errCode int
		check   func() error                  // read back after success
		event   func(*SubscriptionEvent) bool // event expected after success
	}{
		{name: "Sign-In lands in Available", do: func() error { return c.SetAgentState(ctx, asAgent, ACDSignIn, "") },
			check: checkCC(ACDAvailable, ""), event: agentState(ACDAvailable, "")},
		{name: "Unavailable with code", do: func() error { return c.SetAgentState(ctx, asAgent, ACDUnavailable, "MTG") },
			check: checkCC(ACDUnavailable, "MTG"), event: agentState(ACDUnavailable, "MTG")},
		{name: "Available", do: func() error { return c.SetAgentState(ctx, asAgent, ACDAvailable, "") },
			check: checkCC(ACDAvailable, ""), event: agentState(ACDAvailable, "")},
		{name: "Unavailable without code gets the group default", do: func() error { return c.SetAgentState(ctx, asAgent, ACDUnavailable, "") },
			check: checkCC(ACDUnavailable, "LUNCH"), event: agentState(ACDUnavailable, "LUNCH")},
		{name: "inactive unavailable code → 400", do: func() error { return c.SetAgentState(ctx, asAgent, ACDUnavailable, "OLD") },
			errKind: ErrBadRequest, errCode: xspsim.ErrCodeInvalidValue},
		{name: "Wrap-Up", do: func() error { return c.SetAgentState(ctx, asAgent, ACDWrapUp, "") },
			check: checkCC(ACDWrapUp, ""), event: agentState(ACDWrapUp, "")},
		{name: "Sign-Out", do: func() error { return c.SetAgentState(ctx, asAgent, ACDSignOut, "") },
			check: checkCC(ACDSignOut, ""), event: agentState(ACDSignOut, "")},
		{name: "agent state of a user without Call Center → 400", do: func() error { return c.SetAgentState(ctx, asGuest2, ACDAvailable, "") },
			errKind: ErrBadRequest, errCode: xspsim.ErrCodeServiceNotAssigned},
		{name: "leave queue", do: func() error { return c.JoinQueue(ctx, asAgent, asQueue1, false) },
			check: func() error {
				cc, err := c.GetCallCenter(ctx, asAgent)
				if err == nil && (cc.Queues[0].Available || !cc.Queues[1].Available) {
					err = fmt.Errorf("queues %+v", cc.Queues)
				}
				return err
			},
			event: func(se *SubscriptionEvent) bool {
				d, ok := se.Data.(*ACDAgentJoinUpdateEvent)
				return ok && len(d.Joins) == 1 && d.Joins[0].ACDUserID == asQueue1 && !d.Joins[0].Joined
			}},
		{name: "join queue", do: func() error { return c.JoinQueue(ctx, asAgent, asQueue1, true) },
			event: func(se *SubscriptionEvent) bool {
				d, ok := se.Data.(*ACDAgentJoinUpdateEvent)
				return ok && len(d.Joins) == 1 && d.Joins[0].ACDUserID == asQueue1 && d.Joins[0].Joined
			}},
		{name: "join a queue not assigned → 400", do: func() error { return c.JoinQueue(ctx, asAgent, "cc9@example.com", true) },
			errKind: ErrBadRequest, errCode: xspsim.ErrCodeInvalidValue},
		{name: "CFA on", do: func() error {
			return c.SetCallForwardingAlways(ctx, asAgent, Forwarding{Active: true, ForwardToPhoneNumber: "+12025550123", RingSplash: true})
		},
			check: func() error {
				f, err := c.GetCallForwardingAlways(ctx, asAgent)
				if err == nil && f != (Forwarding{Active: true, ForwardToPhoneNumber: "+12025550123", RingSplash: true}) {
					err = fmt.Errorf("CFA %+v", f)
				}
				return err
			},
			event: func(se *SubscriptionEvent) bool {
				d, ok := se.Data.(*CallForwardingAlwaysEvent)
				return ok && se.TargetID == asAgent && d.Active && d.ForwardToPhoneNumber == "+12025550123" && d.RingSplash
			}},
		{name: "CFA off", do: func() error { return c.SetCallForwardingAlways(ctx, asAgent, Forwarding{}) },
			event: func(se *SubscriptionEvent) bool {
				d, ok := se.Data.(*CallForwardingAlwaysEvent)
				return ok && se.TargetID == asAgent && !d.Active && d.ForwardToPhoneNumber == "+12025550123"
			}},
		{name: "CFA on without any number → 400", do: func() error { return c.SetCallForwardingAlways(ctx, asGuest2, Forwarding{Active: true}) },
			errKind: ErrBadRequest},
		{name: "CFB", do: func() error {
			return c.SetCallForwardingBusy(ctx, asAgent, Forwarding{Active: true, ForwardToPhoneNumber: "2000"})
		}, check: func() error {
			f, err := c.GetCallForwardingBusy(ctx, asAgent)
			if err == nil && f != (Forwarding{Active: true, ForwardToPhoneNumber: "2000"}) {
				err = fmt.Errorf("CFB %+v", f)
			}
			return err
		}},
		{name: "CFNA", do: func() error {
			return c.SetCallForwardingNoAnswer(ctx, asAgent, Forwarding{Active: true, ForwardToPhoneNumber: "3000", NumberOfRings: 5})
		}, check: func() error {
			f, err := c.GetCallForwardingNoAnswer(ctx, asAgent)
			if err == nil && f != (Forwarding{Active: true, ForwardToPhoneNumber: "3000", NumberOfRings: 5}) {
				err = fmt.Errorf("CFNA %+v", f)
			}
			return err
		}},
		{name: "DND on", do: func() error { return c.SetDoNotDisturb(ctx, asAgent, DoNotDisturb{Active: true, RingSplash: true}) },
			check: func() error {
				d, err := c.GetDoNotDisturb(ctx, asAgent)
				if err == nil && d != (DoNotDisturb{Active: true, RingSplash: true}) {
					err = fmt.Errorf("DND %+v", d)
				}
				return err
			},
			event: func(se *SubscriptionEvent) bool {
				d, ok := se.Data.(*DoNotDisturbEvent)
				return ok && se.TargetID == asAgent && d.Active && d.RingSplash
			}},
		{name: "DND of unknown user → 404", do: func() error { return c.SetDoNotDisturb(ctx, asNobody, DoNotDisturb{}) },
			errKind: ErrNotFound, errCode: xspsim.ErrCodeUserNotFound},
		{name: "GET of unknown user → 404", do: func() error { _, err := c.GetCallCenter(ctx, asNobody); return err },
			errKind: ErrNotFound, errCode: xspsim.ErrCodeUserNotFound},
		{name: "associate guest1 with host1", do: func() error { return c.AssociateGuest(ctx, asGuest1, asHost1) },
			check: func() error {
				if err := checkGuest(asGuest1, asHost1, "José")(); err != nil {
					return err
				}
				return checkHost(asHost1, true)()
			},
			event: guestHost(asHost1)},
		{name: "host1 busy → 400", do: func() error { return c.AssociateGuest(ctx, asGuest2, asHost1) },
			errKind: ErrBadRequest, errCode: xspsim.ErrCodeHostBusy},
		{name: "busy host not listed", do: func() error {
			hosts, err := c.ListHotelingHosts(ctx, asGuest2)
			if err == nil && slices.Contains(hosts, HotelingHostEntry{asHost1}) {
				err = fmt.Errorf("hosts %v lists the busy host", hosts)
			}
			return err
		}},
		{name: "a user that is no host → 400", do: func() error { return c.AssociateGuest(ctx, asGuest2, asAgent) },
			errKind: ErrBadRequest, errCode: xspsim.ErrCodeHostNotAvailable},
		{name: "guest ends the association", do: func() error { return c.EndGuestAssociation(ctx, asGuest1) },
			check: func() error {
				if err := checkGuest(asGuest1, "", "")(); err != nil {
					return err
				}
				return checkHost(asHost1, false)()
			},
			event: guestHost("")},
		{name: "associate guest1 with host2", do: func() error { return c.AssociateGuest(ctx, asGuest1, asHost2) },
			check: checkHost(asHost2, true), event: guestHost(asHost2)},
		{name: "host removes the guest", do: func() error { return c.RemoveGuestAssociation(ctx, asHost2) },
			check: func() error {
				if err := checkGuest(asGuest1, "", "")(); err != nil {
					return err
				}
				return checkHost(asHost2, false)()
			},
			event: guestHost("")},
	}
	for _, s := range steps {
		err := s.do()
		if s.errKind != nil {
			wantXsiErr(t, s.name, err, s.errKind, s.errCode)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if s.check != nil {
			if err := s.check(); err != nil {
				t.Errorf("%s: %v", s.name, err)
			}
		}
		if s.event != nil {
			waitEvent(t, e, 5*time.Second, s.name+" event", s.event)
		}
	}
}

// TestActionsFaultsAgainstSimulator: the Actions client under the
// simulator's overload (503 + Retry-After), injected 5xx and latency.
func TestActionsFaultsAgainstSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	ctx := context.Background()
	newClient := func(t *testing.T, sim *xspsim.Server, mod func(*Config)) *Client {
		cfg := actionsConfig(sim.URL())
		if mod != nil {
			mod(&cfg)
		}
		c, err := NewClient(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}

	t.Run("503 Retry-After then success", func(t *testing.T) {
		t.Parallel()
		sim := newActionsSim(t, nil)
		c := newClient(t, sim, nil)
		sim.SetOverload(2, time.Second)
		start := time.Now()
		if err := c.SetDoNotDisturb(ctx, asAgent, DoNotDisturb{Active: true}); err != nil {
			t.Fatalf("PUT through overload: %v", err)
		}
		// Two 503s with Retry-After: 1 each: the client waited as told.
		if d := time.Since(start); d < 1900*time.Millisecond {
			t.Errorf("PUT succeeded after %v: Retry-After (2 × 1 s) not honoured", d)
		}
		if s, err := sim.Snapshot(asAgent); err != nil || !s.DND {
			t.Errorf("DND not set: %+v %v", s, err)
		}
		sim.SetOverload(1, time.Second)
		if d, err := c.GetDoNotDisturb(ctx, asAgent); err != nil || !d.Active {
			t.Errorf("GET through overload: %+v %v", d, err)
		}
	})
	t.Run("503 Retry-After beyond the deadline is the answer", func(t *testing.T) {
		t.Parallel()
		sim := newActionsSim(t, nil)
		c := newClient(t, sim, func(c *Config) { c.RequestTimeout = 500 * time.Millisecond })
		sim.SetOverload(-1, 5*time.Second)
		_, err := c.GetDoNotDisturb(ctx, asAgent)
		wantXsiErr(t, "GET under persistent overload", err, ErrUnavailable, xspsim.ErrCodeOverload)
		if !errors.Is(err, ErrServerError) {
			t.Errorf("503 does not match ErrServerError: %v", err)
		}
	})
	t.Run("injected 502s are retried", func(t *testing.T) {
		t.Parallel()
		sim := newActionsSim(t, func(c *xspsim.Config) { c.Seed = 3 })
		c := newClient(t, sim, func(c *Config) { c.MaxRetries = 8 })
		sim.SetErrorRate("/services/", 0.2, 502)
		for i := range 12 {
			if err := c.SetCallForwardingAlways(ctx, asAgent, Forwarding{Active: true, ForwardToPhoneNumber: fmt.Sprintf("+1202555%04d", i)}); err != nil {
				t.Fatalf("PUT %d: %v", i, err)
			}
			f, err := c.GetCallForwardingAlways(ctx, asAgent)
			if err != nil || f.ForwardToPhoneNumber != fmt.Sprintf("+1202555%04d", i) {
				t.Fatalf("GET %d: %+v %v", i, f, err)
			}
		}
	})
	t.Run("injected 400 is not retried", func(t *testing.T) {
		t.Parallel()
		sim := newActionsSim(t, nil)
		c := newClient(t, sim, nil)
		sim.SetErrorRate("/services/DoNotDisturb", 1, 400)
		_, err := c.GetDoNotDisturb(ctx, asAgent)
		wantXsiErr(t, "GET with injected 400", err, ErrBadRequest, xspsim.ErrCodeInjected)
	})
	t.Run("latency with 32 in flight", func(t *testing.T) {
		t.Parallel()
		sim := newActionsSim(t, nil)
		c := newClient(t, sim, nil)
		sim.SetActionsLatency(xspsim.Latency{Min: 5 * time.Millisecond, Max: 30 * time.Millisecond, SpikeProb: 0.2, Spike: 100 * time.Millisecond})
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := range 32 {
			wg.Go(func() {
				if i%2 == 0 {
					_, err := c.GetHotelingHost(ctx, asHost1)
					errs <- err
					return
				}
				errs <- c.SetDoNotDisturb(ctx, asGuest2, DoNotDisturb{Active: i%4 == 1})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})
	t.Run("latency beyond RequestTimeout", func(t *testing.T) {
		t.Parallel()
		sim := newActionsSim(t, nil)
		c := newClient(t, sim, func(c *Config) { c.RequestTimeout = 100 * time.Millisecond })
		sim.SetActionsLatency(xspsim.Latency{Min: 400 * time.Millisecond, Max: 400 * time.Millisecond})
		_, err := c.GetDoNotDisturb(ctx, asAgent)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err %v, want a deadline error", err)
		}
		sim.ClearFaults()
		if _, err := c.GetDoNotDisturb(ctx, asAgent); err != nil {
			t.Errorf("after the latency: %v", err)
		}
	})
}
