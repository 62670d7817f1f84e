package phonesync

import (
	"strings"
	"testing"
	"time"
)

func takeService(t *testing.T, svc *fakeSvc) string {
	t.Helper()
	select {
	case ev := <-svc.service:
		return ev
	case <-time.After(15 * time.Second):
		t.Fatal("no PhoneService report")
		return ""
	}
}

func TestLiveness(t *testing.T) {
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			leakCheck(t)
			svc := newFakeSvc("1001")
			cfg := testConfig()
			cfg.OptionsInterval = 100 * time.Millisecond
			cfg.LivenessTimeout = 500 * time.Millisecond
			s := startServer(t, cfg, svc)
			p := newPhone(t, "1001", transport, s.Addr())
			if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
				t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
			}
			p.nextNotify()
			waitFor(t, "OPTIONS pings", func() bool { return p.optionsSeen.Load() >= 3 })
			select {
			case ev := <-svc.service:
				t.Fatalf("answering phone reported: %s", ev)
			default:
			}
			phones := s.Phones()
			if len(phones) != 1 || !phones[0].InService || phones[0].Transport != transport || phones[0].Address != "127.0.0.1" ||
				phones[0].Port == 0 || len(phones[0].Events) != 1 || phones[0].Events[0] != eventFeature || phones[0].LastSeen.IsZero() ||
				time.Until(phones[0].Expires) <= 0 {
				t.Fatalf("Phones() = %+v", phones)
			}

			p.answerOptions.Store(false)
			if ev := takeService(t, svc); ev != "1001:false" {
				t.Fatalf("report %q, want 1001:false", ev)
			}
			if ph := s.Phones(); len(ph) != 1 || ph[0].InService {
				t.Fatalf("Phones() = %+v", ph)
			}
			p.answerOptions.Store(true)
			if ev := takeService(t, svc); ev != "1001:true" {
				t.Fatalf("report %q, want 1001:true", ev)
			}
			if ph := s.Phones(); len(ph) != 1 || !ph[0].InService {
				t.Fatalf("Phones() = %+v", ph)
			}
		})
	}
}

// A phone out of service that then loses its subscription is still
// reported back when it subscribes again.
func TestLivenessReturnAfterExpiry(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	cfg := testConfig()
	cfg.OptionsInterval = 100 * time.Millisecond
	cfg.LivenessTimeout = 300 * time.Millisecond
	s := startServer(t, cfg, svc)
	p := newPhone(t, "1001", "UDP", s.Addr())
	p.answerOptions.Store(false)
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	p.nextNotify()
	if ev := takeService(t, svc); ev != "1001:false" {
		t.Fatalf("report %q", ev)
	}
	// Deaf for the terminating NOTIFY too: an answer to it is contact,
	// which would bring the phone back before Phones() is read.
	p.deaf.Store(true)
	if res := p.subscribe(subOpts{expires: "0"}); res.StatusCode != 200 {
		t.Fatalf("unsubscribe: %d", res.StatusCode)
	}
	if ph := s.Phones(); len(ph) != 1 || ph[0].InService || len(ph[0].Events) != 0 {
		t.Fatalf("Phones() = %+v", ph)
	}
	p.deaf.Store(false)
	if res := p.subscribe(subOpts{newCall: true}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	if ev := takeService(t, svc); ev != "1001:true" {
		t.Fatalf("report %q", ev)
	}
}

// A phone out of service is not sent a NOTIFY per change: they collapse
// into one full state, and it gets the full state when it is back.
func TestOutOfServiceCoalesces(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	cfg := testConfig()
	cfg.OptionsInterval = 100 * time.Millisecond
	cfg.LivenessTimeout = 400 * time.Millisecond
	cfg.RequestTimeout = time.Second
	s := startServer(t, cfg, svc)
	p := newPhone(t, "1001", "UDP", s.Addr())
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	p.nextNotify()
	p.answerOptions.Store(false)
	p.deaf.Store(true)
	if ev := takeService(t, svc); ev != "1001:false" {
		t.Fatalf("report %q", ev)
	}
	const changes = 20
	for i := range changes {
		on := i%2 == 0
		svc.mu.Lock()
		svc.devices["1001"].DoNotDisturb = on
		svc.mu.Unlock()
		s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: on})
	}
	waitFor(t, "an attempt to reach the silent phone", func() bool {
		n := 0
		p.unanswered.Range(func(any, any) bool { n++; return true })
		return n > 0
	})
	p.deaf.Store(false)
	p.answerOptions.Store(true)
	if ev := takeService(t, svc); ev != "1001:true" {
		t.Fatalf("report %q", ev)
	}
	attempts := 0
	p.unanswered.Range(func(any, any) bool { attempts++; return true })
	if attempts >= changes/2 {
		t.Fatalf("%d NOTIFYs tried on a silent phone for %d changes", attempts, changes)
	}
	// Back in service: a full state with the last value (false) comes. A
	// NOTIFY tried while the phone was silent (its body built mid-burst)
	// may still arrive first by retransmission, so look past those.
	for {
		n := p.nextNotify()
		if strings.HasPrefix(hdr(n, "Content-Type"), "multipart/mixed") &&
			strings.Contains(string(n.Body()), "<doNotDisturbOn>false</doNotDisturbOn>") {
			break
		}
	}
}
