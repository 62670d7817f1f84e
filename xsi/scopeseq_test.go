package xsi

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// newScopeHarness is a channel set of two XSPs (one fake XSP serving both
// addresses, so the two channels share the subscriptions as a channel set's
// do) with one group scope and no user targets.
func newScopeHarness(t *testing.T) *harness {
	t.Helper()
	pn := newPipeNet()
	f := newFakeXSP("xsp")
	pn.serve("10.0.0.1", f)
	pn.serve("10.0.0.2", f)
	pn.alias("xsp1.test", "10.0.0.1")
	pn.alias("xsp2.test", "10.0.0.2")
	cfg := testEventsConfig("http://xsp1.test", "http://xsp2.test")
	cfg.Targets = nil
	cfg.Scopes = []Target{grp1}
	e, err := NewEvents(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	e.dial = pn.dial
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, net: pn, xsp: f, ev: e, col: collect(e)}
}

// scopeEventDoc is a DoNotDisturbEvent of user in scope subscription sub.
func scopeEventDoc(eventID string, seq int, sub, chID, user string) string {
	return strings.Replace(eventDoc(eventID, seq, sub, chID, ""), "<xsi:targetId>agent1@example.com<", "<xsi:targetId>"+user+"<", 1)
}

// seqCounters sums the two XSPs' sequence_gaps_total and out_of_order_total.
func seqCounters(e *Events) (gaps, stale float64) {
	for _, l := range e.links {
		gaps += counterValue(l.count.gaps)
		stale += counterValue(l.count.stale)
	}
	return gaps, stale
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func (c *collector) resyncCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.resyncs)
}

// scopeSend sends the events (id, seq, channel index, user) in this order,
// each acknowledged before the next is sent, so that the connector sees
// them in exactly this order across the two channels.
func (h *harness) scopeSend(sub string, evs ...scopeEv) {
	h.t.Helper()
	chans := []*fakeChan{h.channelN(0), h.channelN(1)}
	for _, ev := range evs {
		ch := chans[ev.ch]
		h.xsp.send(ch, scopeEventDoc(ev.id, ev.seq, sub, ch.id, ev.user))
		h.waitFor("ack of "+ev.id, time.Minute, func() bool { return h.xsp.ackCount(ev.id) == 1 })
	}
}

type scopeEv struct {
	id   string
	seq  int
	ch   int
	user string
}

// Two users' events of one scope subscription, overtaking each other
// across the two channels: every one is delivered, none counted as a gap or
// out of order, and no ScopeResync (the holes close within the grace).
func TestScopeSeqInterleavedAcrossChannels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newScopeHarness(t)
		sub := h.subID()
		h.scopeSend(sub,
			scopeEv{"a1", 1, 0, "a@x"},
			scopeEv{"a3", 3, 0, "a@x"}, // overtook b2
			scopeEv{"b2", 2, 1, "b@x"},
			scopeEv{"a6", 6, 0, "a@x"}, // overtook b4, b5
			scopeEv{"b5", 5, 1, "b@x"},
			scopeEv{"b4", 4, 1, "b@x"}, // b's own older one, but b5 came first: stale
			scopeEv{"b7", 7, 1, "b@x"},
		)
		time.Sleep(3 * evSeqHoleGrace) // fake time: past the grace of every hole
		synctest.Wait()
		h.col.exactlyOnce(t, "a1", "a3", "b2", "a6", "b5", "b7")
		if n := h.col.resyncCount(); n != 0 {
			t.Errorf("%d ScopeResync, want none: %+v", n, h.col.resyncs)
		}
		if g, s := seqCounters(h.ev); g != 0 || s != 1 {
			t.Errorf("gaps %v, out of order %v; want 0, 1", g, s)
		}
		h.stop()
	})
}

// A number that never comes (the XSP lost it) is a loss once the grace is
// over: exactly one ScopeResync, from run's timer (no event follows), for
// both missing numbers; the events around the hole are delivered.
func TestScopeSeqHoleStaysOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newScopeHarness(t)
		sub := h.subID()
		h.scopeSend(sub,
			scopeEv{"a1", 1, 0, "a@x"},
			scopeEv{"b2", 2, 1, "b@x"},
			scopeEv{"a5", 5, 0, "a@x"}, // 3 and 4 never come
		)
		h.waitFor("ScopeResync", time.Minute, func() bool { return h.col.resyncCount() > 0 })
		time.Sleep(3 * evSeqHoleGrace)
		synctest.Wait()
		h.col.mu.Lock()
		rs := h.col.resyncs
		h.col.mu.Unlock()
		if len(rs) != 1 || rs[0].Scope != grp1 || rs[0].Reason != "sequence gap" {
			t.Errorf("resyncs %+v, want one sequence gap for %v", rs, grp1)
		}
		if g, s := seqCounters(h.ev); g != 2 || s != 0 {
			t.Errorf("gaps %v, out of order %v; want 2, 0", g, s)
		}
		// A missing number arriving after all (another user's) is dropped:
		// the marker's re-read covers it and it would take the view back.
		// Nothing more is reported.
		h.scopeSend(sub, scopeEv{"c3", 3, 1, "c@x"}, scopeEv{"b6", 6, 1, "b@x"})
		time.Sleep(3 * evSeqHoleGrace)
		synctest.Wait()
		h.col.exactlyOnce(t, "a1", "b2", "a5", "b6")
		if n := h.col.resyncCount(); n != 1 {
			t.Errorf("%d ScopeResync, want 1", n)
		}
		if _, s := seqCounters(h.ev); s != 1 {
			t.Errorf("out of order %v, want 1", s)
		}
		h.stop()
	})
}

// Holes of two jumps, on two channels, that stay open: one marker for both,
// each missing number counted as a gap.
func TestScopeSeqHolesCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newScopeHarness(t)
		sub := h.subID()
		h.scopeSend(sub,
			scopeEv{"a1", 1, 0, "a@x"},
			scopeEv{"a3", 3, 0, "a@x"}, // 2 never comes
			scopeEv{"a5", 5, 1, "a@x"}, // 4 never comes
		)
		time.Sleep(3 * evSeqHoleGrace)
		synctest.Wait()
		h.scopeSend(sub, scopeEv{"b6", 6, 1, "b@x"})
		synctest.Wait()
		h.col.exactlyOnce(t, "a1", "a3", "a5", "b6")
		h.col.mu.Lock()
		rs := h.col.resyncs
		h.col.mu.Unlock()
		if len(rs) != 1 || rs[0].Reason != "sequence gap" {
			t.Errorf("resyncs %+v, want one sequence gap", rs)
		}
		if g, _ := seqCounters(h.ev); g != 2 {
			t.Errorf("gaps %v, want 2", g)
		}
		h.stop()
	})
}

// observeScope directly: per-user staleness, holes closing across the
// 2147483647 → 1 wrap, the hole bound, and the per-user bound.
func TestScopeSeqObserve(t *testing.T) {
	cfg := testEventsConfig("http://x")
	cfg.Targets = nil
	cfg.Scopes = []Target{grp1}
	e, err := NewEvents(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh := func() *evSubs {
		s := newEvSubs(e)
		s.list[0].id = "sub-1"
		s.byID["sub-1"] = s.list[0]
		return s
	}
	gaps := e.metrics.forLink("test").gaps
	t0 := time.Unix(1_000_000, 0)
	type step struct {
		user  string
		seq   int64
		after time.Duration // since t0
		stale bool
		lost  bool
	}
	const max = evNeverExpire
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{"a", 1, 0, false, false}, {"b", 2, 0, false, false}, {"a", 3, 0, false, false}}},
		{"other user's late event closes the hole", []step{{"a", 1, 0, false, false}, {"a", 3, 0, false, false}, {"b", 2, time.Second, false, false}, {"a", 4, 5 * time.Second, false, false}}},
		{"same user's older event is stale", []step{{"a", 1, 0, false, false}, {"a", 3, 0, false, false}, {"a", 2, 0, true, false}, {"b", 4, 5 * time.Second, false, false}}},
		{"equal number is stale", []step{{"a", 7, 0, false, false}, {"a", 7, 0, true, false}}},
		{"hole past the grace is lost", []step{{"a", 1, 0, false, false}, {"a", 3, 0, false, false}, {"b", 4, evSeqHoleGrace, false, true}, {"c", 2, evSeqHoleGrace, true, false}, {"b", 5, 10 * time.Second, false, false}}},
		{"hole across the wrap closes", []step{{"a", max - 1, 0, false, false}, {"a", 2, 0, false, false}, {"b", max, 0, false, false}, {"b", 1, 0, false, false}, {"a", 3, 5 * time.Second, false, false}}},
		{"same user across the wrap", []step{{"a", max, 0, false, false}, {"a", 1, 0, false, false}, {"a", max, 0, true, false}}},
		{"a jump past the hole bound is a loss at once", []step{{"a", 1, 0, false, false}, {"a", 1 + evSeqMaxHoles, 0, false, false}, {"b", 2 + evSeqMaxHoles, 0, false, false}, {"a", 4 + 2*evSeqMaxHoles, 0, false, true}, {"c", 3, 0, true, false}, {"a", 5 + 2*evSeqMaxHoles, 10 * time.Second, false, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fresh()
			for i, st := range tc.steps {
				v, lost := s.observeScope("sub-1", st.user, st.seq, gaps, t0.Add(st.after))
				if (v == seqStale) != st.stale || (len(lost) > 0) != st.lost {
					t.Errorf("step %d (%s %d): verdict %v, lost %v; want stale %v, lost %v", i, st.user, st.seq, v, lost, st.stale, st.lost)
				}
				if len(lost) > 1 || len(lost) == 1 && lost[0] != grp1 {
					t.Errorf("step %d: lost %v", i, lost)
				}
			}
		})
	}

	t.Run("evicted user is not recognised as stale", func(t *testing.T) {
		s := fresh()
		s.observeScope("sub-1", "a", 5, gaps, t0)
		if v, _ := s.observeScope("sub-1", "a", 4, gaps, t0); v != seqStale {
			t.Fatalf("a 4 after a 5: %v, want stale", v)
		}
		for i := range evSeqMaxUsers {
			s.observeScope("sub-1", fmt.Sprint("u", i), int64(6+i), gaps, t0)
		}
		if n := len(s.scopeSeqs["sub-1"].users); n != evSeqMaxUsers {
			t.Errorf("%d users kept, want %d", n, evSeqMaxUsers)
		}
		if v, _ := s.observeScope("sub-1", "a", 3, gaps, t0); v != seqInOrder {
			t.Errorf("a 3 after a was evicted: %v, want delivered", v)
		}
	})

	t.Run("termination and channel loss clear the tracking", func(t *testing.T) {
		s := fresh()
		s.observeScope("sub-1", "a", 1, gaps, t0)
		s.observeScope("sub-1", "a", 3, gaps, t0)
		s.resync() // channel lost: its ScopeResync covers the hole
		if _, lost := s.observeScope("sub-1", "b", 4, gaps, t0.Add(time.Minute)); lost != nil {
			t.Errorf("hole reported after a channel loss: %v", lost)
		}
		if v, _ := s.observeScope("sub-1", "c", 2, gaps, t0.Add(time.Minute)); v != seqStale {
			t.Errorf("the missing number after the channel loss: %v, want stale", v)
		}
		s.terminated("sub-1")
		if s.scopeSeqs["sub-1"] != nil {
			t.Error("tracking kept after SubscriptionTerminatedEvent")
		}
	})
}

// A scope event's staleness is judged per user and package: a user's DND
// change numbered after its CFA change does not make the CFA one stale,
// while the Call Center Agent package's two event types are one order.
func TestEvOrderKey(t *testing.T) {
	ev := func(user string, d EventData) *SubscriptionEvent { return &SubscriptionEvent{TargetID: user, Data: d} }
	cfa := evOrderKey(ev("a@x", &CallForwardingAlwaysEvent{}))
	dnd := evOrderKey(ev("a@x", &DoNotDisturbEvent{}))
	state := evOrderKey(ev("a@x", &AgentStateEvent{}))
	snap := evOrderKey(ev("a@x", &AgentSubscriptionEvent{}))
	other := evOrderKey(ev("b@x", &DoNotDisturbEvent{}))
	if cfa == dnd || dnd == other || state != snap {
		t.Errorf("keys: CFA %q, DND %q, other user's DND %q, agent state %q, agent snapshot %q", cfa, dnd, other, state, snap)
	}
}
