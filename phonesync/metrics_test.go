package phonesync

import (
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/promtest"
)

// waitSample polls the server's metrics until name has the value want (the
// server counts a NOTIFY when its answer arrives, after the phone saw it).
func waitSample(t *testing.T, s *Server, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, ok := promtest.Scrape(t, s.Collectors()...)[name]
		if ok && v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %t), want %v", name, v, ok, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const (
	featureSubs = `connector_sip_subscriptions{event="as-feature-event"}`
	featureOK   = `connector_sip_notifies_total{event="as-feature-event",result="ok"}`
)

// Subscriptions, NOTIFYs by result, the NOTIFY queue of a phone that stopped
// answering, and SUBSCRIBEs refused by digest auth, with real phones.
func TestServerMetrics(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.RequireAuth = true
	s := startServer(t, cfg, newFakeSvc("1001", "1002"))
	waitSample(t, s, featureSubs, 0)

	p := newPhone(t, "1001", "UDP", s.Addr())
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 { // 401, then 200 with credentials
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	p.nextNotify()
	waitSample(t, s, featureSubs, 1)
	waitSample(t, s, featureOK, 1)
	waitSample(t, s, `connector_sip_subscribes_refused_total{reason="auth_challenge"}`, 1)

	p.notifyStatus.Store(500)
	s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})
	p.nextNotify()
	waitSample(t, s, `connector_sip_notifies_total{event="as-feature-event",result="refused"}`, 1)

	// A phone that stops answering: the first NOTIFY waits for its answer,
	// the changes after it queue.
	p.notifyStatus.Store(200)
	p.deaf.Store(true)
	for i := range 4 {
		s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: i%2 == 0})
	}
	got := promtest.Scrape(t, s.Collectors()...)
	if q := got[`connector_sip_notify_queue`]; q < 3 || q > 4 {
		t.Errorf("notify queue %v, want 3 or 4 behind the unanswered NOTIFY", q)
	}
	if n := got[`connector_sip_notify_senders`]; n != 1 {
		t.Errorf("senders %v, want 1", n)
	}

	// Another phone's credentials: 403.
	q := newPhone(t, "1002", "UDP", s.Addr())
	q.password = "wrong"
	if res := q.subscribe(subOpts{}); res.StatusCode != 403 {
		t.Fatalf("wrong password: %d, want 403", res.StatusCode)
	}
	waitSample(t, s, `connector_sip_subscribes_refused_total{reason="auth_forbidden"}`, 1)

	// The phone answers again and the queue drains: no NOTIFY is in flight
	// when the phone closes. One that reaches a closing test phone makes
	// sipgo handle it after the phone's UA closed, and open (and leak) a
	// socket to answer it (seen as a leaked readUDPConnection of the phone's
	// UA, 1 fresh-clone run in 5).
	p.deaf.Store(false)
	waitSample(t, s, `connector_sip_notify_queue`, 0)
	waitSample(t, s, `connector_sip_notify_senders`, 0)
}

// SUBSCRIBEs over a source's rate are refused and counted; a 481 answer
// to a NOTIFY counts gone and drops the subscription.
func TestServerMetricsRateLimitAndGone(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.SubscribeRate, cfg.SubscribeBurst = 0.01, 2
	s := startServer(t, cfg, newFakeSvc("1001"))
	p := newPhone(t, "1001", "UDP", s.Addr())
	p.user = ""
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	p.nextNotify()
	p.subscribe(subOpts{newCall: true})
	if res := p.subscribe(subOpts{newCall: true}); res.StatusCode != 503 {
		t.Fatalf("third SUBSCRIBE in a burst of 2: %d, want 503", res.StatusCode)
	}
	waitSample(t, s, `connector_sip_subscribes_refused_total{reason="rate_limit"}`, 1)
	// The second SUBSCRIBE came from the same device, so its dialog replaced
	// the first: the first dialog's terminated;reason=rejected NOTIFY and the
	// new one's full state are answered 200 before the phone turns to 481
	// (either one answered 481 would count gone too).
	waitSample(t, s, featureOK, 3)

	p.notifyStatus.Store(481)
	s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})
	waitSample(t, s, `connector_sip_notifies_total{event="as-feature-event",result="gone"}`, 1)
	waitSample(t, s, featureSubs, 0)
}
