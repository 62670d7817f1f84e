package phonesync

import (
	"strings"
	"testing"
)

// TestReloadLimits: a reload raises the body limit, the SUBSCRIBE rate
// and the subscription cap of a running server; the next request from a
// phone refused before is accepted.
func TestReloadLimits(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.MaxBodyBytes = 512
	cfg.MaxSubscriptions = 1
	cfg.SubscribeRate, cfg.SubscribeBurst = 0.001, 2
	s := startServer(t, cfg, newFakeSvc("1001", "1002"))

	p1 := newPhone(t, "1001", "TCP", s.Addr())
	if res := p1.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("first SUBSCRIBE: %d", res.StatusCode)
	}
	p1.nextNotify()
	p2 := newPhone(t, "1002", "TCP", s.Addr())
	if res := p2.subscribe(subOpts{}); res.StatusCode != 503 {
		t.Fatalf("a second phone over max_subscriptions 1: %d, want 503", res.StatusCode)
	}
	// The burst of 2 is spent (both phones come from 127.0.0.1).
	if res := p2.subscribe(subOpts{}); res.StatusCode != 503 || hdr(res, "Retry-After") == "" {
		t.Fatalf("over the rate: %d Retry-After %q, want 503 with Retry-After", res.StatusCode, hdr(res, "Retry-After"))
	}

	cfg.MaxBodyBytes = 4096
	cfg.MaxSubscriptions = 10
	cfg.SubscribeRate, cfg.SubscribeBurst = 100, 100
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if res := p2.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("the second phone after the reload: %d, want 200", res.StatusCode)
	}
	p2.nextNotify()
	if res := p1.subscribe(subOpts{body: dndBody("1001", true) + strings.Repeat(" ", 600)}); res.StatusCode == 413 {
		t.Fatal("a 600-byte body still refused after max_body_bytes 4096")
	}

	cfg.SubscribeRate = 0
	if err := s.Reload(cfg); err == nil {
		t.Error("turning the rate limit off live should need a restart")
	}
}
