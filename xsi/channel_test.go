package xsi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// harness runs the channel manager against fakeXSP backends on a pipeNet,
// inside a synctest bubble (fake time: heartbeats, watchdog, half-life
// refresh and backoff run instantly and deterministically).
type harness struct {
	t   *testing.T
	net *pipeNet
	xsp *fakeXSP
	ev  *Events
	col *collector
}

func newHarness(t *testing.T, mod func(*Config, *fakeXSP)) *harness {
	t.Helper()
	pn := newPipeNet()
	f := newFakeXSP("xsp1")
	cfg := testEventsConfig("http://xsp1.test")
	if mod != nil {
		mod(&cfg, f)
	}
	pn.serve("10.0.0.1", f)
	pn.alias("xsp1.test", "10.0.0.1")
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

func (h *harness) stop() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.ev.Stop(ctx); err != nil {
		h.t.Errorf("Stop: %v", err)
	}
	<-h.col.done
	h.net.closeAll()
}

// waitFor advances fake time in small steps until cond holds.
func (h *harness) waitFor(what string, limit time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		synctest.Wait()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out (fake %v) waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// subID waits for the subscription and returns its ID.
func (h *harness) subID() string {
	h.t.Helper()
	var id string
	h.waitFor("subscription", time.Minute, func() bool {
		for _, v := range h.ev.subs.subscriptionIDs() {
			id = v
		}
		return id != ""
	})
	return id
}

func (h *harness) channelN(n int) *fakeChan {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("channel #%d", n+1), 5*time.Minute, func() bool { return h.xsp.channel(n) != nil })
	return h.xsp.channel(n)
}

func TestEventsHappyPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		ch := h.channelN(0)
		sub := h.subID()
		h.waitFor("link up", time.Minute, func() bool { return h.ev.LinkState()[0].State == LinkUp })
		if st := h.ev.LinkState()[0]; st.ChannelID != ch.id || st.Server != "http://xsp1.test" {
			t.Errorf("link state %+v", st)
		}
		select {
		case <-h.ev.LinkChanges():
		default:
			t.Error("no link change notification")
		}
		add := h.xsp.stats().addBodies[0]
		for _, want := range []string{"<channelSetId>connector-1</channelSetId>", "<applicationId>connector</applicationId>", "<expires>3600</expires>"} {
			if !strings.Contains(add, want) {
				t.Errorf("channel add body lacks %s: %s", want, add)
			}
		}
		if got := h.xsp.stats().subPosts; len(got) != 1 || got[0] != "agent1@example.com|Do Not Disturb" {
			t.Errorf("subscriptions %v", got)
		}
		h.xsp.send(ch, eventDoc("e1", 1, sub, ch.id, ""))
		h.waitFor("ack", time.Minute, func() bool { return h.xsp.ackCount("e1") == 1 })
		h.col.exactlyOnce(t, "e1")
		if ev := h.col.evs[0]; ev.Server != "http://xsp1.test" || ev.TargetID != "agent1@example.com" {
			t.Errorf("event %+v", ev)
		}
		if _, ok := h.col.evs[0].Data.(*DoNotDisturbEvent); !ok {
			t.Errorf("data %T", h.col.evs[0].Data)
		}
		// Heartbeats every HeartbeatInterval, with the stream's cookie.
		hb0 := h.xsp.stats().heartbeats
		time.Sleep(4*15*time.Second + time.Second)
		synctest.Wait()
		if n := h.xsp.stats().heartbeats - hb0; n != 4 {
			t.Errorf("%d heartbeats in 61 s, want 4", n)
		}
		if nc := h.xsp.stats().noCookie; nc != 0 {
			t.Errorf("%d control requests without the channel cookie", nc)
		}
		if h.xsp.numChannels() != 1 {
			t.Errorf("%d channels, want 1", h.xsp.numChannels())
		}
		h.stop()
		if d := h.xsp.stats().chanDeletes; len(d) != 1 || d[0] != ch.id {
			t.Errorf("channel deletes %v", d)
		}
		if st := h.ev.LinkState()[0]; st.State != LinkDown {
			t.Errorf("after stop: %+v", st)
		}
	})
}

// Heartbeat answered 401 or 404: the channel is gone; a new one is opened
// in the same channel set; events before and after arrive exactly once.
func TestEventsHeartbeatGone(t *testing.T) {
	for _, status := range []int{401, 404} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, nil)
				ch := h.channelN(0)
				sub := h.subID()
				h.xsp.send(ch, eventDoc("e1", 1, sub, ch.id, ""))
				h.waitFor("ack e1", time.Minute, func() bool { return h.xsp.ackCount("e1") == 1 })
				h.xsp.mu.Lock()
				h.xsp.hbStatus = status
				h.xsp.mu.Unlock()
				h.waitFor("link down", time.Minute, func() bool { return h.ev.LinkState()[0].State == LinkDown })
				if err := h.ev.LinkState()[0].LastError; !errors.Is(err, map[int]error{401: ErrUnauthorized, 404: ErrNotFound}[status]) {
					t.Errorf("LastError %v", err)
				}
				h.xsp.mu.Lock()
				h.xsp.hbStatus = 0
				h.xsp.mu.Unlock()
				ch2 := h.channelN(1)
				if !strings.Contains(h.xsp.stats().addBodies[1], "<channelSetId>connector-1</channelSetId>") {
					t.Error("new channel not in the same channel set")
				}
				h.xsp.send(ch2, eventDoc("e2", 2, sub, ch2.id, ""))
				h.waitFor("ack e2", time.Minute, func() bool { return h.xsp.ackCount("e2") == 1 })
				h.col.exactlyOnce(t, "e1", "e2")
				if p := h.xsp.stats().subPosts; len(p) != 1 {
					t.Errorf("resubscribed on channel loss: %v", p)
				}
				h.stop()
			})
		})
	}
}

// ChannelTerminatedEvent: not acknowledged; a new channel is opened.
func TestEventsChannelTerminated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		ch := h.channelN(0)
		sub := h.subID()
		acks := len(h.xsp.stats().ackOrder)
		h.xsp.send(ch, channelTerminatedDoc(ch.id, "Expired"))
		ch2 := h.channelN(1)
		h.waitFor("link up again", time.Minute, func() bool { return h.ev.LinkState()[0].ChannelID == ch2.id })
		h.xsp.send(ch2, eventDoc("e1", 1, sub, ch2.id, ""))
		h.waitFor("ack", time.Minute, func() bool { return h.xsp.ackCount("e1") == 1 })
		if n := len(h.xsp.stats().ackOrder) - acks; n != 1 {
			t.Errorf("%d acks, want 1 (ChannelTerminatedEvent is never acknowledged)", n)
		}
		if d := h.xsp.stats().chanDeletes; len(d) != 0 {
			t.Errorf("deleted a terminated channel: %v", d)
		}
		h.col.exactlyOnce(t, "e1")
		h.stop()
	})
}

// The XSP forgets the channel (an administrator ends it) while events it
// wrote are still on their way: the acknowledgement of the first is
// answered 404, the rest follow on the stream ahead of the
// ChannelTerminatedEvent. They are read and delivered (the XSP forgot them:
// abandoning the stream on the 404 lost them, and a refresh would bring the
// current state only), and since the stream ended with the
// ChannelTerminatedEvent nothing was lost: no resync.
func TestEventsChannelGoneStreamDrained(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		ch := h.channelN(0)
		sub := h.subID()
		h.xsp.mu.Lock()
		h.xsp.ackStatus = 404
		h.xsp.mu.Unlock()
		h.xsp.send(ch, eventDoc("e1", 1, sub, ch.id, ""))
		h.waitFor("ack e1 answered 404", time.Minute, func() bool { return h.xsp.ackCount("e1") == 1 })
		h.xsp.send(ch, eventDoc("e2", 2, sub, ch.id, ""))
		h.xsp.send(ch, eventDoc("e3", 3, sub, ch.id, ""))
		h.xsp.send(ch, channelTerminatedDoc(ch.id, "UserDeleted"))
		h.xsp.mu.Lock()
		h.xsp.ackStatus = 0
		h.xsp.mu.Unlock()
		ch2 := h.channelN(1)
		h.waitFor("link up again", time.Minute, func() bool { return h.ev.LinkState()[0].ChannelID == ch2.id })
		h.col.exactlyOnce(t, "e1", "e2", "e3")
		if p := h.xsp.stats().subPuts; len(p) != 0 {
			t.Errorf("refreshed %v after a stream read to its ChannelTerminatedEvent", p)
		}
		if d := h.xsp.stats().chanDeletes; len(d) != 0 {
			t.Errorf("deleted a channel the XSP forgot: %v", d)
		}
		h.stop()
	})
}

// The stream breaks in the middle of a document: the partial event is not
// delivered, the XSP redelivers it on the next channel, it arrives once.
func TestEventsStreamCutMidDocument(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		ch := h.channelN(0)
		sub := h.subID()
		h.xsp.send(ch, eventDoc("e1", 1, sub, ch.id, ""))
		h.waitFor("ack e1", time.Minute, func() bool { return h.xsp.ackCount("e1") == 1 })
		doc := eventDoc("e2", 2, sub, ch.id, "")
		h.xsp.send(ch, doc[:len(doc)/2])
		synctest.Wait()
		ch.end()
		ch2 := h.channelN(1)
		h.xsp.send(ch2, eventDoc("e2", 2, sub, ch2.id, ""))
		h.waitFor("ack e2", time.Minute, func() bool { return h.xsp.ackCount("e2") == 1 })
		h.col.exactlyOnce(t, "e1", "e2")
		if !strings.Contains(fmt.Sprint(h.ev.LinkState()[0].LastError), "unexpected EOF") {
			// LastError may have been cleared by nothing else; it is the cut.
			t.Errorf("LastError = %v", h.ev.LinkState()[0].LastError)
		}
		h.stop()
	})
}

// No document for 3 heartbeat intervals (heartbeats answered but never
// echoed): the channel is declared dead, deleted, and re-created.
func TestEventsWatchdog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(_ *Config, f *fakeXSP) { f.silent = true })
		ch := h.channelN(0)
		h.waitFor("link up", time.Minute, func() bool { return h.ev.LinkState()[0].State == LinkUp })
		start := time.Now()
		h.waitFor("link down", 5*time.Minute, func() bool { return h.ev.LinkState()[0].State == LinkDown })
		if d := time.Since(start); d < 44*time.Second || d > 46*time.Second {
			t.Errorf("watchdog fired after %v, want 45s", d)
		}
		if !errors.Is(h.ev.LinkState()[0].LastError, ErrWatchdog) {
			t.Errorf("LastError %v", h.ev.LinkState()[0].LastError)
		}
		h.channelN(1)
		h.xsp.mu.Lock()
		deletes := append([]string(nil), h.xsp.chanDeletes...)
		h.xsp.mu.Unlock()
		if len(deletes) != 1 || deletes[0] != ch.id {
			t.Errorf("abandoned channel not deleted: %v", deletes)
		}
		h.stop()
	})
}

// The watchdog fires while the XSP still writes (our process stalled, or
// the stream was quiet just before a burst): the channel is deleted before
// the stream is given up, and what the XSP wrote ahead of its
// ChannelTerminatedEvent is read and delivered. Nothing was lost, so no
// resync refresh follows; LastError still names the watchdog.
func TestEventsWatchdogDrainsStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(_ *Config, f *fakeXSP) { f.silent = true })
		ch := h.channelN(0)
		sub := h.subID()
		h.xsp.mu.Lock()
		h.xsp.onDelete = []string{eventDoc("e1", 1, sub, "CHANNEL", ""), eventDoc("e2", 2, sub, "CHANNEL", "")}
		h.xsp.mu.Unlock()
		h.waitFor("watchdog", 5*time.Minute, func() bool { return errors.Is(h.ev.LinkState()[0].LastError, ErrWatchdog) })
		ch2 := h.channelN(1)
		h.waitFor("link up again", time.Minute, func() bool { return h.ev.LinkState()[0].ChannelID == ch2.id })
		h.col.exactlyOnce(t, "e1", "e2")
		if p := h.xsp.stats().subPuts; len(p) != 0 {
			t.Errorf("refreshed %v after a stream read to its ChannelTerminatedEvent", p)
		}
		if d := h.xsp.stats().chanDeletes; len(d) != 1 || d[0] != ch.id {
			t.Errorf("channel deletes %v, want [%s]", d, ch.id)
		}
		h.stop()
	})
}

// Duplicate eventIDs (redelivery, also across channels) are acknowledged
// each time but delivered once.
func TestEventsDuplicateEventID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		ch := h.channelN(0)
		sub := h.subID()
		h.xsp.send(ch, eventDoc("e1", 1, sub, ch.id, ""))
		h.xsp.send(ch, eventDoc("e1", 1, sub, ch.id, ""))
		h.xsp.send(ch, eventDoc("e2", 2, sub, ch.id, ""))
		h.waitFor("acks", time.Minute, func() bool { return h.xsp.ackCount("e1") == 2 && h.xsp.ackCount("e2") == 1 })
		h.xsp.send(ch, channelTerminatedDoc(ch.id, "NonResponsiveChannel"))
		ch2 := h.channelN(1)
		h.xsp.send(ch2, eventDoc("e2", 2, sub, ch2.id, ""))
		h.xsp.send(ch2, eventDoc("e3", 3, sub, ch2.id, ""))
		h.waitFor("acks 2", time.Minute, func() bool { return h.xsp.ackCount("e2") == 2 && h.xsp.ackCount("e3") == 1 })
		h.col.exactlyOnce(t, "e1", "e2", "e3")
		if p := h.xsp.stats().subPuts; len(p) != 0 {
			t.Errorf("redelivery taken for a gap: refreshes %v", p)
		}
		h.stop()
	})
}

// A sequence gap refreshes the subscription at once (the XSP then resends
// the full state); the events themselves are all delivered.
func TestEventsSequenceGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		ch := h.channelN(0)
		sub := h.subID()
		h.xsp.send(ch, eventDoc("e1", 1, sub, ch.id, ""))
		h.xsp.send(ch, eventDoc("e2", 2, sub, ch.id, ""))
		h.waitFor("acks", time.Minute, func() bool { return h.xsp.ackCount("e2") == 1 })
		if p := h.xsp.stats().subPuts; len(p) != 0 {
			t.Fatalf("refresh without a gap: %v", p)
		}
		h.xsp.send(ch, eventDoc("e5", 5, sub, ch.id, ""))
		h.waitFor("refresh", time.Minute, func() bool { defer h.xsp.lock()(); return len(h.xsp.subPuts) == 1 })
		if p := h.xsp.stats().subPuts; p[0] != sub {
			t.Errorf("refreshed %v, want %s", p, sub)
		}
		h.col.exactlyOnce(t, "e1", "e2", "e5")
		h.stop()
	})
}

// An event older than one already delivered for its subscription (the
// newer came first, on another channel of the set) is acknowledged but not
// delivered: it would take the view back. The subscription is refreshed.
func TestEventsOutOfOrderDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		ch := h.channelN(0)
		sub := h.subID()
		h.xsp.send(ch, eventDoc("e1", 1, sub, ch.id, ""))
		h.xsp.send(ch, eventDoc("e3", 3, sub, ch.id, "")) // overtook e2: a gap, refreshed
		h.xsp.send(ch, eventDoc("e2", 2, sub, ch.id, "")) // stale
		h.xsp.send(ch, eventDoc("e2", 2, sub, ch.id, "")) // and its redelivery
		h.waitFor("acks", time.Minute, func() bool { return h.xsp.ackCount("e2") == 2 && h.xsp.ackCount("e3") == 1 })
		h.col.exactlyOnce(t, "e1", "e3")
		h.waitFor("refreshes", time.Minute, func() bool { defer h.xsp.lock()(); return len(h.xsp.subPuts) >= 1 })
		h.stop()
	})
}

// Channel and subscription are refreshed at half of the *granted* expiry.
func TestEventsHalfLifeRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(_ *Config, f *fakeXSP) { f.chanExpires, f.subExpires = 7200, 86400 })
		h.channelN(0)
		h.subID()
		start := time.Now()
		h.waitFor("channel refresh", 2*time.Hour, func() bool { defer h.xsp.lock()(); return h.xsp.chanPuts == 1 })
		if d := time.Since(start); d < 3599*time.Second || d > 3601*time.Second {
			t.Errorf("channel refreshed after %v, want 1h (half of 7200 s granted)", d)
		}
		h.waitFor("subscription refresh", 13*time.Hour, func() bool { defer h.xsp.lock()(); return len(h.xsp.subPuts) == 1 })
		if d := time.Since(start); d < 43199*time.Second || d > 43201*time.Second {
			t.Errorf("subscription refreshed after %v, want 12h", d)
		}
		if h.xsp.numChannels() != 1 {
			t.Errorf("%d channels over 12 h, want 1", h.xsp.numChannels())
		}
		h.stop()
	})
}

// Channel adds refused: retries back off exponentially with jitter,
// bounded by ReconnectMin..ReconnectMax.
func TestEventsReconnectBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(_ *Config, f *fakeXSP) { f.addStatus = 503 })
		h.waitFor("attempts", 10*time.Minute, func() bool { defer h.xsp.lock()(); return len(h.xsp.channelAdds) >= 10 })
		h.xsp.mu.Lock()
		adds := append([]time.Time(nil), h.xsp.channelAdds...)
		h.xsp.mu.Unlock()
		for i := 1; i < len(adds); i++ {
			gap := adds[i].Sub(adds[i-1])
			upper := min(30*time.Second, time.Second<<i)
			if gap < time.Second-200*time.Millisecond || gap > upper+200*time.Millisecond {
				t.Errorf("attempt %d after %v, want within [1s, %v]", i, gap, upper)
			}
		}
		if st := h.ev.LinkState()[0]; st.State != LinkDown || !errors.Is(st.LastError, ErrUnavailable) {
			t.Errorf("link %+v", st)
		}
		h.stop()
	})
	// Jitter: two sequences differ.
	a, b := evBackoff(time.Second, time.Minute, 5), evBackoff(time.Second, time.Minute, 5)
	for i := 0; a == b && i < 10; i++ {
		b = evBackoff(time.Second, time.Minute, 5)
	}
	if a == b {
		t.Error("backoff has no jitter")
	}
}

// Existing subscriptions of the channel set are adopted (refreshed, not
// duplicated).
func TestEventsAdoptSubscriptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(_ *Config, f *fakeXSP) {
			f.subs["old-1"] = &fakeSub{id: "old-1", target: "agent1@example.com", event: "Do Not Disturb", channelSet: "connector-1"}
			f.subs["other-set"] = &fakeSub{id: "other-set", target: "agent1@example.com", event: "Do Not Disturb", channelSet: "someone-else"}
		})
		h.channelN(0)
		if id := h.subID(); id != "old-1" {
			t.Errorf("subscription %q, want adopted old-1", id)
		}
		h.waitFor("refresh", time.Minute, func() bool { defer h.xsp.lock()(); return len(h.xsp.subPuts) == 1 })
		if st := h.xsp.stats(); len(st.subPosts) != 0 || st.subPuts[0] != "old-1" {
			t.Errorf("posts %v puts %v", st.subPosts, st.subPuts)
		}
		h.stop()
	})
}

// SubscriptionTerminatedEvent: delivered, acknowledged, and resubscribed.
func TestEventsResubscribe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		ch := h.channelN(0)
		sub := h.subID()
		h.xsp.send(ch, eventDoc("t1", 1, sub, ch.id, `<xsi:eventData xsi1:type="xsi:SubscriptionTerminatedEvent"/>`))
		h.waitFor("resubscribe", time.Minute, func() bool { defer h.xsp.lock()(); return len(h.xsp.subPosts) == 2 })
		h.waitFor("new id", time.Minute, func() bool {
			for _, v := range h.ev.subs.subscriptionIDs() {
				return v != "" && v != sub
			}
			return false
		})
		h.col.exactlyOnce(t, "t1")
		if h.xsp.ackCount("t1") != 1 {
			t.Error("terminated event not acknowledged")
		}
		h.stop()
	})
}

// A consumer that does not read: the reader blocks (no loss, acks stop at
// what was handed over), the watchdog stays quiet, heartbeats go on; once
// the consumer reads, everything arrives exactly once.
func TestEventsSlowConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pn := newPipeNet()
		f := newFakeXSP("xsp1")
		pn.serve("10.0.0.1", f)
		pn.alias("xsp1.test", "10.0.0.1")
		e, err := NewEvents(testEventsConfig("http://xsp1.test"), nil)
		if err != nil {
			t.Fatal(err)
		}
		e.dial = pn.dial
		e.Start(context.Background())
		h := &harness{t: t, net: pn, xsp: f, ev: e}
		ch := h.channelN(0)
		sub := h.subID()
		n := EventBuffer + 20
		var ids []string
		for i := 1; i <= n; i++ {
			ids = append(ids, fmt.Sprintf("s%d", i))
			f.send(ch, eventDoc(ids[i-1], i, sub, ch.id, ""))
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		f.mu.Lock()
		acked, chans, hbs := len(f.ackOrder), len(f.order), f.heartbeats
		f.mu.Unlock()
		if acked > EventBuffer+1 || acked < EventBuffer {
			t.Errorf("%d acks while the consumer is stalled, want about %d", acked, EventBuffer)
		}
		if chans != 1 || hbs < 19 {
			t.Errorf("channels %d heartbeats %d during the stall", chans, hbs)
		}
		h.col = collect(e)
		h.waitFor("all acks", time.Minute, func() bool { defer f.lock()(); return len(f.ackOrder) == n })
		h.col.exactlyOnce(t, ids...)
		h.stop()
	})
}

// Affinity: the XSP name resolves round-robin to two backends; the
// heartbeats, acks and the cookie follow the backend holding the stream.
func TestEventsAffinity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pn := newPipeNet()
		a, b := newFakeXSP("a"), newFakeXSP("b")
		pn.serve("10.0.0.1", a)
		pn.serve("10.0.0.2", b)
		pn.alias("xsp.cluster.test", "10.0.0.2", "10.0.0.1")
		e, err := NewEvents(testEventsConfig("http://xsp.cluster.test"), nil)
		if err != nil {
			t.Fatal(err)
		}
		e.dial = pn.dial
		e.Start(context.Background())
		h := &harness{t: t, net: pn, xsp: b, ev: e, col: collect(e)}
		ch := h.channelN(0) // first dial → 10.0.0.2 (b)
		sub := h.subID()
		b.send(ch, eventDoc("e1", 1, sub, ch.id, ""))
		h.waitFor("ack", time.Minute, func() bool { return b.ackCount("e1") == 1 })
		time.Sleep(time.Minute)
		synctest.Wait()
		if r := a.stats().reqs; len(r) != 0 {
			t.Errorf("backend a got %v", r)
		}
		if st := b.stats(); st.heartbeats < 4 || st.noCookie != 0 {
			t.Errorf("backend b: %d heartbeats, %d without cookie", st.heartbeats, st.noCookie)
		}
		h.stop()
	})
}

func TestNewEventsValidation(t *testing.T) {
	good := testEventsConfig("http://x")
	bad := []func(*Config){
		func(c *Config) { c.Servers = nil },
		func(c *Config) { c.ChannelSetID = "" },
		func(c *Config) { c.HeartbeatInterval = 0 },
		func(c *Config) { c.ReconnectMax = c.ReconnectMin / 2 },
		func(c *Config) { c.Targets = []Target{{Kind: "group", ID: "g"}} },
		func(c *Config) { c.Targets = []Target{{Kind: "device", ID: "d"}} },
		func(c *Config) { c.Scopes = []Target{{Kind: "user", ID: "u@x"}} },
		func(c *Config) { c.Scopes = []Target{{Kind: "group", ID: "g"}} },
		func(c *Config) { c.Scopes = []Target{{Kind: "enterprise", ID: ""}} },
		func(c *Config) {
			c.Scopes = []Target{{Kind: "enterprise", ID: "e1"}, {Kind: "serviceprovider", ID: "e1"}}
		},
		func(c *Config) { c.Scopes, c.EventPackages = []Target{{Kind: "enterprise", ID: "e1"}}, nil },
		func(c *Config) { c.MaxWatchedUsers = -1 },
	}
	for i, m := range bad {
		c := good
		m(&c)
		if _, err := NewEvents(c, nil); err == nil || !strings.HasPrefix(err.Error(), "xsi: ") {
			t.Errorf("case %d: err %v", i, err)
		}
	}
	if _, err := NewEvents(good, nil); err != nil {
		t.Fatal(err)
	}
}

func TestEventsDedupLRU(t *testing.T) {
	c := newEvLRU(3)
	if c.claim("a") != evNew || c.claim("a") != evPending {
		t.Fatal("pending")
	}
	c.delivered("a")
	if c.claim("a") != evDelivered {
		t.Fatal("delivered")
	}
	c.claim("b")
	c.release("b")
	if c.claim("b") != evNew {
		t.Fatal("released id must be new again")
	}
	c.claim("c")
	c.claim("d") // evicts the least recently used: a was touched after b? order: b,c,d newest → a evicted
	if c.claim("a") != evNew {
		t.Fatal("LRU bound not applied")
	}
}

// A refresh answered 404/403 (the XSP forgot the subscription) leads to a
// new subscription at once.
func TestEventsRefreshUnknownResubscribes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		ch := h.channelN(0)
		sub := h.subID()
		h.xsp.mu.Lock()
		delete(h.xsp.subs, sub)
		h.xsp.mu.Unlock()
		h.xsp.send(ch, eventDoc("e1", 1, sub, ch.id, ""))
		h.xsp.send(ch, eventDoc("e3", 3, sub, ch.id, "")) // gap → refresh → 404
		h.waitFor("resubscribe", time.Minute, func() bool { return len(h.xsp.stats().subPosts) == 2 })
		h.col.exactlyOnce(t, "e1", "e3")
		h.stop()
	})
}

// A subscribe or refresh still unanswered when the channel breaks: the
// XSP may have written its snapshot (the initial events) on the lost
// stream. The resync after the loss cannot mark a subscription that has
// no ID yet, and a mark it sets on one being refreshed is cleared by that
// refresh's answer: either way the snapshot would be gone until the
// half-life refresh. The answer arriving after the loss must bring one
// more refresh.
func TestEventsRequestInFlightAtChannelLossIsRefreshed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		// wantPuts: refreshes expected once the held request is answered.
		wantPuts int
	}{
		{"subscribe", http.MethodPost, 1},
		{"refresh", http.MethodPut, 2}, // the held one and the one after
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				gate := make(chan struct{})
				hold := func(method, path string) bool {
					// POST .../user/{id} subscribes, PUT .../subscription/{id} refreshes.
					return method == tc.method && (strings.Contains(path, "/user/") || strings.Contains(path, "/subscription/"))
				}
				h := newHarness(t, func(_ *Config, f *fakeXSP) {
					f.holdGate = gate
					if tc.method == http.MethodPost {
						f.hold = hold
					}
				})
				ch := h.channelN(0)
				h.waitFor("link up", time.Minute, func() bool { return h.ev.LinkState()[0].State == LinkUp })
				if tc.method == http.MethodPut {
					sub := h.subID()
					h.xsp.mu.Lock()
					h.xsp.hold = hold
					h.xsp.mu.Unlock()
					h.xsp.send(ch, eventDoc("e1", 1, sub, ch.id, ""))
					h.xsp.send(ch, eventDoc("e3", 3, sub, ch.id, "")) // gap → refresh
				}
				h.waitFor("the request held", time.Minute, func() bool { defer h.xsp.lock()(); return h.xsp.held == 1 })
				ch.end()
				h.channelN(1)
				h.waitFor("link up again", time.Minute, func() bool { return h.ev.LinkState()[0].State == LinkUp })
				close(gate)
				sub := h.subID()
				h.waitFor("the refresh after the loss", time.Minute, func() bool {
					defer h.xsp.lock()()
					return len(h.xsp.subPuts) >= tc.wantPuts
				})
				for _, id := range h.xsp.stats().subPuts {
					if id != sub {
						t.Errorf("refreshed %s, want %s", id, sub)
					}
				}
				h.stop()
			})
		})
	}
}

func TestScopeCovers(t *testing.T) {
	cfg := testEventsConfig("http://x")
	cfg.Scopes = []Target{{Kind: KindGroup, ID: "grp1", ParentID: "ent1"}, {Kind: KindServiceProvider, ID: "sp2"}, {Kind: KindEnterprise, ID: "ent3"}}
	e, err := NewEvents(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		group, sp string
		want      bool
	}{
		{"grp1", "ent1", true},
		{"grp1", "ent9", false}, // a group ID is unique within its enterprise only
		{"grp2", "ent1", false},
		{"any", "sp2", true},
		{"", "sp2", true},
		{"x", "ent3", true},
		{"", "", false},
		{"grp1", "", false},
	} {
		if got := e.Covers(tt.group, tt.sp); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.group, tt.sp, got, tt.want)
		}
	}
}

func TestSubscribePaths(t *testing.T) {
	for _, tt := range []struct {
		t    Target
		want string
	}{
		{Target{Kind: "user", ID: "a b@example.com"}, evPath + "/user/a%20b@example.com"},
		{Target{Kind: "group", ID: "grp1", ParentID: "ent1"}, evPath + "/enterprise/ent1/group/grp1"},
		{Target{Kind: "enterprise", ID: "ent1"}, evPath + "/enterprise/ent1"},
		{Target{Kind: "serviceprovider", ID: "sp 1"}, evPath + "/serviceprovider/sp%201"},
	} {
		if got := evSubscribePath(tt.t); got != tt.want {
			t.Errorf("%+v: %s, want %s", tt.t, got, tt.want)
		}
	}
	if !evTargetMatches(Target{Kind: "user", ID: "u"}, "User", "u", "") || evTargetMatches(Target{Kind: "user", ID: "u"}, "Group", "u", "") {
		t.Error("target matching")
	}
	// enterprise/… and serviceprovider/… name the same thing (§4.6.2.1).
	for _, kind := range []string{KindEnterprise, KindServiceProvider} {
		for _, typ := range []string{"ServiceProvider", "Enterprise"} {
			if !evTargetMatches(Target{Kind: kind, ID: "e"}, typ, "e", "") {
				t.Errorf("%s target does not match %s", kind, typ)
			}
		}
	}
	if evTargetMatches(Target{Kind: KindGroup, ID: "g", ParentID: "e1"}, "Group", "g", "e2") {
		t.Error("group of another enterprise matched")
	}
	for _, tt := range []struct {
		t    Target
		want string
	}{
		{Target{Kind: KindGroup, ID: "grp1", ParentID: "ent1"}, "group:grp1@ent1"},
		{Target{Kind: KindEnterprise, ID: "ent1"}, "enterprise:ent1"},
		{Target{Kind: KindServiceProvider, ID: "sp1"}, "serviceprovider:sp1"},
		{Target{Kind: KindUser, ID: "u@x"}, "user:u@x"},
	} {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.t, got, tt.want)
		}
	}
}
