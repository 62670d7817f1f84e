package phonesync

import (
	"fmt"
	"mime"
	"mime/multipart"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// checkDialogNotify checks a NOTIFY belongs to the phone's dialog: the
// Call-ID, our To-tag as From-tag, the phone's tag as To-tag.
func checkDialogNotify(t *testing.T, p *testPhone, n *sip.Request, event string) {
	t.Helper()
	if n.CallID().Value() != p.callID {
		t.Errorf("NOTIFY Call-ID %q, want %q", n.CallID().Value(), p.callID)
	}
	if got := tagOf(n.From().Params); got != p.toTag || got == "" {
		t.Errorf("NOTIFY From-tag %q, want our To-tag %q", got, p.toTag)
	}
	if got := tagOf(n.To().Params); got != p.fromTag {
		t.Errorf("NOTIFY To-tag %q, want phone tag %q", got, p.fromTag)
	}
	if got := hdr(n, "Event"); got != event {
		t.Errorf("NOTIFY Event %q, want %q", got, event)
	}
}

// multipartDocs splits a multipart/mixed NOTIFY into its documents.
func multipartDocs(t *testing.T, n *sip.Request) []string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(hdr(n, "Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q (%v), want multipart/mixed", hdr(n, "Content-Type"), err)
	}
	r := multipart.NewReader(strings.NewReader(string(n.Body())), params["boundary"])
	var docs []string
	for {
		part, err := r.NextPart()
		if err != nil {
			break
		}
		if ct := part.Header.Get("Content-Type"); ct != FeatureEventContentType {
			t.Errorf("part Content-Type %q", ct)
		}
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			k, err := part.Read(buf)
			b.Write(buf[:k])
			if err != nil {
				break
			}
		}
		docs = append(docs, b.String())
	}
	return docs
}

func rootsOf(docs []string) []string {
	re := regexp.MustCompile(`<([A-Za-z]+Event) `)
	var out []string
	for _, d := range docs {
		if m := re.FindStringSubmatch(d); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

func TestSubscribeFullState(t *testing.T) {
	for _, tc := range []struct {
		name       string
		transport  string
		perFeature bool
		agent      bool
		wantRoots  []string
	}{
		{"udp multipart", "UDP", false, true, []string{"DoNotDisturbEvent", "ForwardingEvent", "ForwardingEvent", "ForwardingEvent", "AgentLoggedOffEvent"}},
		{"tcp multipart", "TCP", false, true, []string{"DoNotDisturbEvent", "ForwardingEvent", "ForwardingEvent", "ForwardingEvent", "AgentLoggedOffEvent"}},
		{"udp multipart without agent", "UDP", false, false, []string{"DoNotDisturbEvent", "ForwardingEvent", "ForwardingEvent", "ForwardingEvent"}},
		{"udp per feature", "UDP", true, true, []string{"DoNotDisturbEvent", "ForwardingEvent", "ForwardingEvent", "ForwardingEvent", "AgentLoggedOffEvent"}},
		{"tcp per feature", "TCP", true, false, []string{"DoNotDisturbEvent", "ForwardingEvent", "ForwardingEvent", "ForwardingEvent"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakCheck(t)
			cfg := testConfig()
			cfg.NotifyPerFeature = tc.perFeature
			cfg.AgentState = tc.agent
			s := startServer(t, cfg, newFakeSvc("1001"))
			p := newPhone(t, "1001", tc.transport, s.Addr())
			res := p.subscribe(subOpts{})
			if res.StatusCode != 200 {
				t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
			}
			if p.toTag == "" || len(p.toTag) != 16 {
				t.Fatalf("To-tag %q: want our own 16-character tag", p.toTag)
			}
			if hdr(res, "Expires") != "3600" || res.Contact() == nil {
				t.Fatalf("200 without Expires 3600 / Contact: %s", res)
			}
			var roots []string
			var last uint32
			for len(roots) < len(tc.wantRoots) {
				n := p.nextNotify()
				checkDialogNotify(t, p, n, eventFeature)
				if !strings.HasPrefix(hdr(n, "Subscription-State"), "active;expires=") {
					t.Errorf("Subscription-State %q", hdr(n, "Subscription-State"))
				}
				if cseqOf(n) <= last {
					t.Errorf("CSeq %d after %d", cseqOf(n), last)
				}
				last = cseqOf(n)
				if tc.perFeature {
					if ct := hdr(n, "Content-Type"); ct != FeatureEventContentType {
						t.Fatalf("Content-Type %q", ct)
					}
					roots = append(roots, rootsOf([]string{string(n.Body())})...)
				} else {
					roots = append(roots, rootsOf(multipartDocs(t, n))...)
				}
			}
			if fmt.Sprint(roots) != fmt.Sprint(tc.wantRoots) {
				t.Fatalf("full state roots %v, want %v", roots, tc.wantRoots)
			}
			p.noNotify(100 * time.Millisecond)

			// A refresh without a body gets the full state again.
			if res := p.subscribe(subOpts{expires: "1800"}); res.StatusCode != 200 || hdr(res, "Expires") != "1800" {
				t.Fatalf("refresh: %d Expires %q", res.StatusCode, hdr(res, "Expires"))
			}
			n := p.nextNotify()
			checkDialogNotify(t, p, n, eventFeature)
			if cseqOf(n) <= last {
				t.Errorf("refresh NOTIFY CSeq %d after %d", cseqOf(n), last)
			}
		})
	}
}

func TestSubscribeChangeFromPhone(t *testing.T) {
	const fwdBusy = `<?xml version="1.0" encoding="ISO-8859-1"?>
<SetForwarding xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
<device>1001</device>
<activateForward>true</activateForward>
<forwardingType>forwardBusy</forwardingType>
<forwardDN>2424</forwardDN>
</SetForwarding>`
	const notReady = `<?xml version="1.0" encoding="ISO-8859-1"?>
<SetAgentState xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
<device></device>
<requestedAgentState>notReady</requestedAgentState>
<extensions><privateData><private xmlns:pri="http://schema.broadsoft.com/CSTAPrivateData">
<pri:AgentNotReadyReasonValue>3</pri:AgentNotReadyReasonValue>
</private></privateData></extensions>
<agentID></agentID><password></password>
</SetAgentState>`
	for _, tc := range []struct {
		name      string
		transport string
		body      string
		refuse    bool
		wantCall  string
		event     Change // what the gateway publishes once BroadWorks confirms a done change
		wantBody  []string
	}{
		{"dnd on udp", "UDP", dndBody("1001", true), false, "dnd 1001 true 1",
			Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true}, []string{"<DoNotDisturbEvent", "<doNotDisturbOn>true</doNotDisturbOn>"}},
		{"dnd on tcp", "TCP", dndBody("1001", true), false, "dnd 1001 true 1",
			Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true}, []string{"<doNotDisturbOn>true</doNotDisturbOn>"}},
		{"dnd refused", "UDP", dndBody("1001", true), true, "dnd 1001 true 1", Change{}, []string{"<doNotDisturbOn>false</doNotDisturbOn>"}},
		{"forward busy", "UDP", fwdBusy, false, "fwd 1001 forwardBusy true 2424 1",
			Change{Kind: ChangeForwarding, Forwarding: Forwarding{Type: ForwardBusy, Active: true, Number: "2424"}},
			[]string{"<forwardingType>forwardBusy</forwardingType>", "<forwardStatus>true</forwardStatus>", "<forwardTo>2424</forwardTo>"}},
		{"forward refused", "TCP", fwdBusy, true, "fwd 1001 forwardBusy true 2424 1", Change{}, []string{"<forwardingType>forwardBusy</forwardingType>", "<forwardStatus>false</forwardStatus>"}},
		{"agent not ready", "UDP", notReady, false, "agent 1001 notReady 3 1",
			Change{Kind: ChangeAgent, Agent: AgentState{AgentID: "agent-1001", State: AgentNotReady, Reason: "3"}}, []string{"<AgentNotReadyEvent", ">3<"}},
		{"agent refused", "UDP", notReady, true, "agent 1001 notReady 3 1", Change{}, []string{"<AgentLoggedOffEvent"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakCheck(t)
			svc := newFakeSvc("1001")
			s := startServer(t, testConfig(), svc)
			p := newPhone(t, "1001", tc.transport, s.Addr())
			if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
				t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
			}
			first := p.nextNotify()
			if tc.refuse {
				svc.setRefuse(errRefused)
			}
			res := p.subscribe(subOpts{body: tc.body})
			if res.StatusCode != 200 {
				t.Fatalf("re-SUBSCRIBE with body: %d", res.StatusCode)
			}
			if !tc.refuse {
				// Done: nothing until the gateway publishes the confirmed
				// change (a snapshot now could overtake held events).
				p.noNotify(100 * time.Millisecond)
				s.Publish("1001", tc.event)
			}
			n := p.nextNotify()
			checkDialogNotify(t, p, n, eventFeature)
			if cseqOf(n) <= cseqOf(first) {
				t.Errorf("CSeq %d after %d", cseqOf(n), cseqOf(first))
			}
			if ct := hdr(n, "Content-Type"); ct != FeatureEventContentType {
				t.Errorf("Content-Type %q", ct)
			}
			for _, want := range tc.wantBody {
				if !strings.Contains(string(n.Body()), want) {
					t.Errorf("NOTIFY body lacks %q:\n%s", want, n.Body())
				}
			}
			if calls := svc.awaitCalls(t, 1); len(calls) != 1 || calls[0] != tc.wantCall {
				t.Errorf("service calls %q, want [%q]", calls, tc.wantCall)
			}
			p.noNotify(100 * time.Millisecond) // just the one feature, no full state
		})
	}
}

func TestSubscribeRejections(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	cfg := testConfig()
	cfg.MaxBodyBytes = 512
	s := startServer(t, cfg, svc)

	t.Run("unknown event", func(t *testing.T) {
		p := newPhone(t, "1001", "UDP", s.Addr())
		res := p.subscribe(subOpts{event: "dialog"})
		if res.StatusCode != 489 || !strings.Contains(hdr(res, "Allow-Events"), eventHoteling) {
			t.Fatalf("%d Allow-Events %q, want 489 naming our packages", res.StatusCode, hdr(res, "Allow-Events"))
		}
	})
	t.Run("unknown device", func(t *testing.T) {
		p := newPhone(t, "9999", "UDP", s.Addr())
		if res := p.subscribe(subOpts{}); res.StatusCode != 404 {
			t.Fatalf("%d, want 404", res.StatusCode)
		}
	})
	t.Run("interval too brief", func(t *testing.T) {
		p := newPhone(t, "1001", "UDP", s.Addr())
		res := p.subscribe(subOpts{expires: "1"})
		if res.StatusCode != 423 || hdr(res, "Min-Expires") != "2" {
			t.Fatalf("%d Min-Expires %q, want 423 with 2", res.StatusCode, hdr(res, "Min-Expires"))
		}
	})
	t.Run("expires above max is clamped", func(t *testing.T) {
		p := newPhone(t, "1001", "UDP", s.Addr())
		res := p.subscribe(subOpts{expires: "999999"})
		if res.StatusCode != 200 || hdr(res, "Expires") != "3600" {
			t.Fatalf("%d Expires %q, want 200 with 3600", res.StatusCode, hdr(res, "Expires"))
		}
		p.nextNotify()
	})
	t.Run("body too large", func(t *testing.T) {
		p := newPhone(t, "1001", "TCP", s.Addr())
		if res := p.subscribe(subOpts{body: dndBody("1001", true) + strings.Repeat(" ", 600)}); res.StatusCode != 413 {
			t.Fatalf("%d, want 413", res.StatusCode)
		}
	})
	t.Run("unknown dialog", func(t *testing.T) {
		p := newPhone(t, "1001", "UDP", s.Addr())
		p.toTag = "not-ours"
		if res := p.subscribe(subOpts{}); res.StatusCode != 481 {
			t.Fatalf("%d, want 481", res.StatusCode)
		}
	})
	t.Run("malformed body", func(t *testing.T) {
		for _, body := range []string{"<SetDoNotDisturb", "<Nonsense/>", "not xml at all"} {
			p := newPhone(t, "1001", "UDP", s.Addr())
			if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
				t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
			}
			p.nextNotify()
			if res := p.subscribe(subOpts{body: body}); res.StatusCode != 400 {
				t.Fatalf("%q: %d, want 400", body, res.StatusCode)
			}
			p.noNotify(100 * time.Millisecond)
		}
		if calls := svc.takeCalls(); len(calls) != 0 {
			t.Fatalf("service called: %q", calls)
		}
	})
}

func TestUnsubscribeTerminates(t *testing.T) {
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			leakCheck(t)
			s := startServer(t, testConfig(), newFakeSvc("1001"))
			p := newPhone(t, "1001", transport, s.Addr())
			if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
				t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
			}
			first := p.nextNotify()
			res := p.subscribe(subOpts{expires: "0"})
			if res.StatusCode != 200 || hdr(res, "Expires") != "0" {
				t.Fatalf("unsubscribe: %d Expires %q", res.StatusCode, hdr(res, "Expires"))
			}
			n := p.nextNotify()
			checkDialogNotify(t, p, n, eventFeature)
			if got := hdr(n, "Subscription-State"); !strings.HasPrefix(got, "terminated") {
				t.Fatalf("Subscription-State %q", got)
			}
			if cseqOf(n) <= cseqOf(first) {
				t.Errorf("CSeq %d after %d", cseqOf(n), cseqOf(first))
			}
			if len(s.Phones()) != 0 {
				t.Errorf("Phones() after unsubscribe: %+v", s.Phones())
			}
			s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})
			p.noNotify(100 * time.Millisecond)
			// The dialog is gone.
			if res := p.subscribe(subOpts{}); res.StatusCode != 481 {
				t.Fatalf("SUBSCRIBE in ended dialog: %d, want 481", res.StatusCode)
			}
		})
	}
}

func TestSubscriptionExpires(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.MinExpires = time.Second
	s := startServer(t, cfg, newFakeSvc("1001"))
	p := newPhone(t, "1001", "UDP", s.Addr())
	if res := p.subscribe(subOpts{expires: "1"}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	p.nextNotify()
	n := p.nextNotify()
	if got := hdr(n, "Subscription-State"); got != "terminated;reason=timeout" {
		t.Fatalf("Subscription-State %q, want terminated;reason=timeout", got)
	}
	waitFor(t, "subscription removed", func() bool { return len(s.Phones()) == 0 })
}

func TestCloseTerminatesSubscriptions(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001", "1002")
	s := startServer(t, testConfig(), svc)
	udp := newPhone(t, "1001", "UDP", s.Addr())
	tcp := newPhone(t, "1002", "TCP", s.Addr())
	for _, p := range []*testPhone{udp, tcp} {
		if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
			t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
		}
		p.nextNotify()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*testPhone{udp, tcp} {
		n := p.nextNotify()
		if got := hdr(n, "Subscription-State"); got != "terminated;reason=noresource" {
			t.Fatalf("%s: Subscription-State %q", p.transport, got)
		}
	}
	s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true}) // after Close: a no-op
}

func TestPhoneAnswering481EndsSubscription(t *testing.T) {
	leakCheck(t)
	s := startServer(t, testConfig(), newFakeSvc("1001"))
	p := newPhone(t, "1001", "UDP", s.Addr())
	p.notifyStatus.Store(481)
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	p.nextNotify()
	waitFor(t, "subscription dropped", func() bool { return len(s.Phones()) == 0 })
	s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})
	p.noNotify(100 * time.Millisecond)
}

func TestNewDialogReplacesOld(t *testing.T) {
	leakCheck(t)
	s := startServer(t, testConfig(), newFakeSvc("1001"))
	p := newPhone(t, "1001", "UDP", s.Addr())
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	p.nextNotify()
	oldCall := p.callID
	if res := p.subscribe(subOpts{newCall: true}); res.StatusCode != 200 { // the phone rebooted
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	// The same device (same Contact): the old dialog is ended, and told
	// so, not dropped silently; the new one gets the full state.
	for range 2 {
		n := p.nextNotify()
		switch state := hdr(n, "Subscription-State"); n.CallID().Value() {
		case oldCall:
			if state != "terminated;reason=rejected" {
				t.Fatalf("old dialog told %q", state)
			}
		case p.callID:
			if !strings.HasPrefix(state, "active") {
				t.Fatalf("new dialog told %q", state)
			}
		default:
			t.Fatalf("NOTIFY on Call-ID %q", n.CallID().Value())
		}
	}
	s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})
	n := p.nextNotify()
	if n.CallID().Value() == oldCall || n.CallID().Value() != p.callID {
		t.Fatalf("NOTIFY on Call-ID %q, want only the new dialog %q", n.CallID().Value(), p.callID)
	}
	p.noNotify(100 * time.Millisecond)
	if got := len(s.Phones()); got != 1 {
		t.Fatalf("%d phones", got)
	}
}

func TestPublishInOrder(t *testing.T) {
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			leakCheck(t)
			svc := newFakeSvc("1001")
			s := startServer(t, testConfig(), svc, func(s *Server) { s.queueLimit = 128 })
			p := newPhone(t, "1001", transport, s.Addr())
			if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
				t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
			}
			last := cseqOf(p.nextNotify())
			const changes = 100
			for i := range changes {
				s.Publish("1001", Change{Kind: ChangeForwarding, Forwarding: Forwarding{Type: ForwardImmediate, Active: true, Number: strconv.Itoa(i)}})
			}
			re := regexp.MustCompile(`<forwardTo>(\d+)</forwardTo>`)
			for i := range changes {
				n := p.nextNotify()
				checkDialogNotify(t, p, n, eventFeature)
				if cseqOf(n) <= last {
					t.Fatalf("change %d: CSeq %d after %d", i, cseqOf(n), last)
				}
				last = cseqOf(n)
				m := re.FindStringSubmatch(string(n.Body()))
				if m == nil || m[1] != strconv.Itoa(i) {
					t.Fatalf("NOTIFY %d carries %v, want forwardTo %d", i, m, i)
				}
			}
		})
	}
}

func TestPublishOverflowCoalesces(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	s := startServer(t, testConfig(), svc, func(s *Server) { s.queueLimit = 4 })
	p := newPhone(t, "1001", "UDP", s.Addr())
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	last := cseqOf(p.nextNotify())
	const changes = 60
	for i := range changes {
		num := strconv.Itoa(i)
		s.Publish("1001", svc.change("1001", Change{Kind: ChangeForwarding, Forwarding: Forwarding{Type: ForwardImmediate, Active: true, Number: num}}))
	}
	// Whatever got coalesced, NOTIFYs stay in order and the phone ends on
	// the last value.
	re := regexp.MustCompile(`<forwardTo>(\d+)</forwardTo>`)
	prev := -1
	for prev != changes-1 {
		n := p.nextNotify()
		if cseqOf(n) <= last {
			t.Fatalf("CSeq %d after %d", cseqOf(n), last)
		}
		last = cseqOf(n)
		got := -1
		for _, m := range re.FindAllStringSubmatch(string(n.Body()), -1) {
			v, _ := strconv.Atoi(m[1])
			got = max(got, v)
		}
		if got < prev {
			t.Fatalf("forwardTo went back from %d to %d", prev, got)
		}
		prev = got
	}
}

func TestPublishRouting(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001", "1002")
	cfg := testConfig()
	cfg.AgentState = false
	s := startServer(t, cfg, svc)
	feat := newPhone(t, "1001", "UDP", s.Addr())
	hotel := newPhone(t, "1001", "TCP", s.Addr())
	other := newPhone(t, "1002", "UDP", s.Addr())
	if res := feat.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	if res := hotel.subscribe(subOpts{event: eventHoteling}); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	if res := other.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	feat.nextNotify()
	if n := hotel.nextNotify(); !strings.Contains(string(n.Body()), "<guestAddress/>") || hdr(n, "Content-Type") != HotelingContentType {
		t.Fatalf("hoteling full state: %s %s", hdr(n, "Content-Type"), n.Body())
	}
	other.nextNotify()

	s.Publish("1001", Change{Kind: ChangeAgent, Agent: AgentState{State: AgentReady}}) // agent state is off
	s.Publish("1001", Change{Kind: ChangeHoteling, Hoteling: Hoteling{GuestAddress: "agent7", Expires: time.Hour}})
	s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})
	s.Publish("5555", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})
	if n := feat.nextNotify(); !strings.Contains(string(n.Body()), "<doNotDisturbOn>true</doNotDisturbOn>") {
		t.Fatalf("feature NOTIFY: %s", n.Body())
	}
	if n := hotel.nextNotify(); !strings.Contains(string(n.Body()), "<guestAddress>agent7</guestAddress>") {
		t.Fatalf("hoteling NOTIFY: %s", n.Body())
	}
	feat.noNotify(100 * time.Millisecond)
	hotel.noNotify(0)
	other.noNotify(0)
}

func TestHotelingSignIn(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	s := startServer(t, testConfig(), svc)
	p := newPhone(t, "1001", "UDP", s.Addr())
	hotel := func(body string) *sip.Request {
		t.Helper()
		if res := p.subscribe(subOpts{event: eventHoteling, body: body}); res.StatusCode != 200 {
			t.Fatalf("SetHoteling: %d", res.StatusCode)
		}
		n := p.nextNotify()
		checkDialogNotify(t, p, n, eventHoteling)
		if ct := hdr(n, "Content-Type"); ct != HotelingContentType {
			t.Fatalf("Content-Type %q", ct)
		}
		return n
	}
	setHoteling := func(guest, auth string) string {
		return `<?xml version="1.0" encoding="ISO-8859-1"?>
<SetHoteling xmlns="http://schema.broadsoft.com/hoteling">
<guestAddress>` + guest + `</guestAddress>` + auth + `
</SetHoteling>`
	}
	authData := func(nonce, response string) string {
		return `<authenticationData><nonce>` + nonce + `</nonce><algorithm>MD5</algorithm><response>` + response + `</response></authenticationData>`
	}
	challenge := func() string {
		t.Helper()
		n := hotel(setHoteling("agent7", ""))
		m := nonceRE.FindStringSubmatch(string(n.Body()))
		if m == nil {
			t.Fatalf("no nonce in %s", n.Body())
		}
		return m[1]
	}

	if res := p.subscribe(subOpts{event: eventHoteling}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	if n := p.nextNotify(); !strings.Contains(string(n.Body()), "<guestAddress/>") {
		t.Fatalf("initial hoteling state: %s", n.Body())
	}

	// No authenticationData: a nonce, nothing changes.
	nonce := challenge()
	if calls := svc.takeCalls(); len(calls) != 0 {
		t.Fatalf("service called on challenge: %q", calls)
	}
	// Wrong password: empty guest, nothing changes, and the nonce is spent.
	n := hotel(setHoteling("agent7", authData(nonce, md5hex(nonce+":wrong"))))
	if !strings.Contains(string(n.Body()), "<guestAddress/>") || nonceRE.Match(n.Body()) {
		t.Fatalf("wrong password answered: %s", n.Body())
	}
	n = hotel(setHoteling("agent7", authData(nonce, md5hex(nonce+":secret7")))) // replay of a spent nonce
	if !strings.Contains(string(n.Body()), "<guestAddress/>") {
		t.Fatalf("spent nonce accepted: %s", n.Body())
	}
	if calls := svc.takeCalls(); len(calls) != 0 {
		t.Fatalf("service called on failed sign-in: %q", calls)
	}
	// Right password on a fresh nonce: the guest is logged in.
	nonce = challenge()
	n = hotel(setHoteling("agent7", authData(nonce, strings.ToUpper(md5hex(nonce+":secret7")))))
	if !strings.Contains(string(n.Body()), "<guestAddress>agent7</guestAddress>") {
		t.Fatalf("sign-in NOTIFY: %s", n.Body())
	}
	if calls := svc.takeCalls(); len(calls) != 1 || calls[0] != `hoteling 1001 "agent7" 1` {
		t.Fatalf("service calls %q", calls)
	}
	// Unknown guest: refused without a password check.
	nonce = func() string {
		n := hotel(setHoteling("nobody", ""))
		return nonceRE.FindStringSubmatch(string(n.Body()))[1]
	}()
	n = hotel(setHoteling("nobody", authData(nonce, md5hex(nonce+":"))))
	if !strings.Contains(string(n.Body()), "<guestAddress/>") {
		t.Fatalf("unknown guest: %s", n.Body())
	}
	// Logout needs no password.
	n = hotel(setHoteling("", ""))
	if !strings.Contains(string(n.Body()), "<guestAddress/>") {
		t.Fatalf("logout NOTIFY: %s", n.Body())
	}
	if calls := svc.takeCalls(); len(calls) != 1 || calls[0] != `hoteling 1001 "" 1` {
		t.Fatalf("service calls %q", calls)
	}
}

func TestHotelingNonceExpires(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	s := startServer(t, testConfig(), svc, func(s *Server) { s.nonceTTL = time.Millisecond })
	p := newPhone(t, "1001", "UDP", s.Addr())
	if res := p.subscribe(subOpts{event: eventHoteling}); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	p.nextNotify()
	body := func(auth string) string {
		return `<SetHoteling xmlns="http://schema.broadsoft.com/hoteling"><guestAddress>agent7</guestAddress>` + auth + `</SetHoteling>`
	}
	p.subscribe(subOpts{event: eventHoteling, body: body("")})
	nonce := nonceRE.FindStringSubmatch(string(p.nextNotify().Body()))[1]
	time.Sleep(10 * time.Millisecond)
	p.subscribe(subOpts{event: eventHoteling, body: body(`<authenticationData><nonce>` + nonce + `</nonce><response>` + md5hex(nonce+":secret7") + `</response></authenticationData>`)})
	if n := p.nextNotify(); !strings.Contains(string(n.Body()), "<guestAddress/>") {
		t.Fatalf("expired nonce accepted: %s", n.Body())
	}
	if calls := svc.takeCalls(); len(calls) != 0 {
		t.Fatalf("service calls %q", calls)
	}
}

func TestMaxSubscriptions(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.MaxSubscriptions = 2
	s := startServer(t, cfg, newFakeSvc("1001", "1002", "1003"))
	for i, dn := range []string{"1001", "1002", "1003"} {
		p := newPhone(t, dn, "UDP", s.Addr())
		res := p.subscribe(subOpts{})
		want := 200
		if i == 2 {
			want = 503
		}
		if res.StatusCode != want {
			t.Fatalf("%s: %d, want %d", dn, res.StatusCode, want)
		}
		if want == 503 && hdr(res, "Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
	}
}

func TestFetchSubscription(t *testing.T) {
	leakCheck(t)
	s := startServer(t, testConfig(), newFakeSvc("1001"))
	p := newPhone(t, "1001", "UDP", s.Addr())
	res := p.subscribe(subOpts{expires: "0"})
	if res.StatusCode != 200 || hdr(res, "Expires") != "0" {
		t.Fatalf("fetch: %d Expires %q", res.StatusCode, hdr(res, "Expires"))
	}
	n := p.nextNotify()
	checkDialogNotify(t, p, n, eventFeature)
	if len(multipartDocs(t, n)) != 5 {
		t.Fatalf("fetch state: %s", n.Body())
	}
	if n := p.nextNotify(); !strings.HasPrefix(hdr(n, "Subscription-State"), "terminated") {
		t.Fatalf("Subscription-State %q", hdr(n, "Subscription-State"))
	}
	if len(s.Phones()) != 0 {
		t.Fatalf("a fetch left a subscription: %+v", s.Phones())
	}
}

func TestInDialogEventMismatch(t *testing.T) {
	leakCheck(t)
	s := startServer(t, testConfig(), newFakeSvc("1001"))
	p := newPhone(t, "1001", "UDP", s.Addr())
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	p.nextNotify()
	if res := p.subscribe(subOpts{event: eventHoteling}); res.StatusCode != 481 {
		t.Fatalf("%d, want 481", res.StatusCode)
	}
}

// With fewer sender goroutines than subscriptions waiting, every queue is
// still sent, each in order.
func TestSenderLimit(t *testing.T) {
	leakCheck(t)
	dns := []string{"1001", "1002", "1003"}
	s := startServer(t, testConfig(), newFakeSvc(dns...), func(s *Server) { s.senderLimit = 1 })
	var phones []*testPhone
	for _, dn := range dns {
		p := newPhone(t, dn, "UDP", s.Addr())
		if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
			t.Fatal(res.StatusCode)
		}
		p.nextNotify()
		phones = append(phones, p)
	}
	for i := range 10 {
		for _, dn := range dns {
			s.Publish(dn, Change{Kind: ChangeForwarding, Forwarding: Forwarding{Type: ForwardBusy, Active: true, Number: strconv.Itoa(i)}})
		}
	}
	re := regexp.MustCompile(`<forwardTo>(\d+)</forwardTo>`)
	for _, p := range phones {
		for i := range 10 {
			n := p.nextNotify()
			if m := re.FindStringSubmatch(string(n.Body())); m == nil || m[1] != strconv.Itoa(i) {
				t.Fatalf("%s: NOTIFY %d carries %v", p.dn, i, m)
			}
		}
	}
	s.workMu.Lock()
	active := s.activeSenders
	s.workMu.Unlock()
	if active > 1 {
		t.Fatalf("%d senders running, limit 1", active)
	}
}
