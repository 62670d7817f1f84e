package phonesync

import (
	"strconv"
	"testing"
	"time"
)

func TestSourceLimiter(t *testing.T) {
	l := newSourceLimiter(2, 3, 4)
	now := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := l.allow("192.0.2.1", now); !ok {
			t.Fatalf("burst request %d refused", i)
		}
	}
	ok, retry := l.allow("192.0.2.1", now)
	if ok || retry != 1 {
		t.Fatalf("over burst: ok=%t retry=%d", ok, retry)
	}
	if ok, _ := l.allow("192.0.2.2", now); !ok {
		t.Fatal("another source refused")
	}
	if ok, _ := l.allow("192.0.2.1", now.Add(600*time.Millisecond)); !ok {
		t.Fatal("refilled token refused")
	}
	// The map stays bounded.
	for i := range 100 {
		l.allow("198.51.100."+strconv.Itoa(i), now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := l.size(); n > 4 {
		t.Fatalf("%d buckets held, limit 4", n)
	}
	if newSourceLimiter(0, 10, 10) != nil {
		t.Fatal("rate 0 should mean no limiter")
	}
	if ok, _ := (*sourceLimiter)(nil).allow("x", now); !ok {
		t.Fatal("nil limiter refused")
	}
}

func TestSubscribeFlood(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.SubscribeRate = 1
	cfg.SubscribeBurst = 5
	s := startServer(t, cfg, newFakeSvc("1001"))
	p := newPhone(t, "1001", "UDP", s.Addr())
	var ok, limited int
	for range 20 {
		res := p.subscribe(subOpts{event: "flood"}) // 489 when let through, 503 when not
		switch res.StatusCode {
		case 489:
			ok++
		case 503:
			limited++
			if hdr(res, "Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
		default:
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	if limited == 0 || ok < 5 {
		t.Fatalf("%d let through, %d limited", ok, limited)
	}
}
