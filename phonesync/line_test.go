package phonesync

import (
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/promtest"
)

// TestEveryDeviceOnLine: each device subscribed to a line holds its own
// dialog and hears every change (issue 14: a second device silenced the
// first); one more than sip.limits.max_subscriptions_per_line is refused
// 403 with the reason; one device leaving ends only its dialog, told so.
func TestEveryDeviceOnLine(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	cfg := testConfig()
	cfg.MaxSubscriptionsPerLine = 2
	s := startServer(t, cfg, svc)
	desk := newPhone(t, "1001", "UDP", s.Addr())
	soft := newPhone(t, "1001", "TCP", s.Addr())
	for _, p := range []*testPhone{desk, soft} {
		if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
			t.Fatalf("%s SUBSCRIBE: %d", p.transport, res.StatusCode)
		}
		if n := p.nextNotify(); !strings.Contains(string(n.Body()), "<doNotDisturbOn>false</doNotDisturbOn>") {
			t.Fatalf("%s full state: %s", p.transport, n.Body())
		}
	}
	s.Publish("1001", svc.change("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true}))
	for _, p := range []*testPhone{desk, soft} {
		if n := p.nextNotify(); !strings.Contains(string(n.Body()), "<doNotDisturbOn>true</doNotDisturbOn>") {
			t.Fatalf("%s change: %s", p.transport, n.Body())
		}
	}

	// A third device: over the cap.
	third := newPhone(t, "1001", "UDP", s.Addr())
	res := third.subscribe(subOpts{})
	if res.StatusCode != 403 || !strings.Contains(hdr(res, "Warning"), "sip.limits.max_subscriptions_per_line") {
		t.Fatalf("third device: %d %q, want 403 naming the limit", res.StatusCode, hdr(res, "Warning"))
	}
	promtest.WantSample(t, promtest.Scrape(t, s.Collectors()...), `connector_sip_subscribes_refused_total{reason="line_full"}`, 1)

	// The soft client leaves: told so; the desk phone still hears changes.
	if res := soft.subscribe(subOpts{expires: "0"}); res.StatusCode != 200 {
		t.Fatalf("un-SUBSCRIBE: %d", res.StatusCode)
	}
	if n := soft.nextNotify(); !strings.HasPrefix(hdr(n, "Subscription-State"), "terminated") {
		t.Fatalf("soft client told %q", hdr(n, "Subscription-State"))
	}
	s.Publish("1001", svc.change("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: false}))
	if n := desk.nextNotify(); !strings.Contains(string(n.Body()), "<doNotDisturbOn>false</doNotDisturbOn>") {
		t.Fatalf("desk change: %s", n.Body())
	}
	soft.noNotify(100 * time.Millisecond)

	// Room again for the third.
	third.toTag = ""
	if res := third.subscribe(subOpts{newCall: true}); res.StatusCode != 200 {
		t.Fatalf("third device after one left: %d", res.StatusCode)
	}
	third.nextNotify()
}

// TestEveryDeviceOnLineHoteling: the same for x-broadworks-hoteling.
func TestEveryDeviceOnLineHoteling(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	s := startServer(t, testConfig(), svc)
	a := newPhone(t, "1001", "UDP", s.Addr())
	b := newPhone(t, "1001", "UDP", s.Addr())
	for _, p := range []*testPhone{a, b} {
		if res := p.subscribe(subOpts{event: eventHoteling}); res.StatusCode != 200 {
			t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
		}
		p.nextNotify()
	}
	s.Publish("1001", Change{Kind: ChangeHoteling, Hoteling: Hoteling{GuestAddress: "agent7"}})
	for _, p := range []*testPhone{a, b} {
		if n := p.nextNotify(); !strings.Contains(string(n.Body()), "<guestAddress>agent7</guestAddress>") {
			t.Fatalf("hoteling change: %s", n.Body())
		}
	}
}

// TestEveryDeviceOnLinePinged: liveness pings go to every device of a
// line, not to one of them: a line is out of service only when none
// answers.
func TestEveryDeviceOnLinePinged(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	cfg := testConfig()
	cfg.OptionsInterval, cfg.LivenessTimeout = time.Hour, 2*time.Hour // pinged by hand below
	s := startServer(t, cfg, svc)
	desk := newPhone(t, "1001", "UDP", s.Addr())
	soft := newPhone(t, "1001", "UDP", s.Addr())
	for _, p := range []*testPhone{desk, soft} {
		if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
			t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
		}
		p.nextNotify()
	}
	// The desk phone's hoteling dialog is the same device: one ping.
	if res := desk.subscribe(subOpts{event: eventHoteling, newCall: true}); res.StatusCode != 200 {
		t.Fatalf("hoteling SUBSCRIBE: %d", res.StatusCode)
	}
	desk.nextNotify()
	s.pingAll()
	if d, o := desk.optionsSeen.Load(), soft.optionsSeen.Load(); d != 1 || o != 1 {
		t.Fatalf("OPTIONS seen: desk %d, soft client %d; want 1 each", d, o)
	}
}
