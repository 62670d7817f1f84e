package phonesync

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/promtest"
)

// forwardTo is the highest <forwardTo> number in a NOTIFY body, -1 for none.
func forwardToOf(body []byte) int {
	got := -1
	for _, m := range forwardToRE.FindAllSubmatch(body, -1) {
		v, _ := strconv.Atoi(string(m[1]))
		got = max(got, v)
	}
	return got
}

var forwardToRE = regexp.MustCompile(`<forwardTo>(\d+)</forwardTo>`)

// subscribedForwarding subscribes a phone of 1001 and takes its full state;
// forward(i) then moves 1001's CFA to number i and publishes it, as the
// gateway does.
func subscribedForwarding(t *testing.T, s *Server, svc *fakeSvc, transport string) (p *testPhone, forward func(i int)) {
	t.Helper()
	p = newPhone(t, "1001", transport, s.Addr())
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	p.nextNotify()
	return p, func(i int) {
		s.Publish("1001", svc.change("1001", Change{Kind: ChangeForwarding,
			Forwarding: Forwarding{Type: ForwardImmediate, Active: true, Number: strconv.Itoa(i)}}))
	}
}

// TestFullStateSupersedesQueuedChanges makes, deterministically, the case
// that made TestPublishOverflowCoalesces fail at random (issue 14): a
// subscription's queue overflows while its sender waits for the phone's
// answer, so one full state stands for the changes dropped; more changes
// are queued behind it; the full state, read when sent, already holds
// them. The queued changes must not follow it: they would take the phone
// back to older values.
func TestFullStateSupersedesQueuedChanges(t *testing.T) {
	for _, transport := range []string{"UDP", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			leakCheck(t)
			svc := newFakeSvc("1001")
			s := startServer(t, testConfig(), svc, func(s *Server) { s.queueLimit = 4 })
			p, forward := subscribedForwarding(t, s, svc, transport)

			p.holdAnswers()
			forward(0)
			if got := forwardToOf(p.nextNotify().Body()); got != 0 {
				t.Fatalf("first NOTIFY forwardTo %d, want 0", got)
			}
			// The sender waits for the answer to 0: 1..4 fill the queue, 5
			// overflows it (one full state due instead), 6 and 7 queue
			// behind the full state.
			for i := 1; i <= 7; i++ {
				forward(i)
			}
			p.releaseAnswers()

			n := p.nextNotify()
			if got := forwardToOf(n.Body()); got != 7 || !strings.Contains(hdr(n, "Content-Type"), "multipart") {
				t.Fatalf("after the overflow: %s forwardTo %d, want the full state with 7", hdr(n, "Content-Type"), got)
			}
			// 6 and 7 were published at versions the full state holds.
			p.noNotify(200 * time.Millisecond)
			promtest.WantSample(t, promtest.Scrape(t, s.Collectors()...), "connector_sip_notifies_superseded_total", 2)
			// A later change is sent as usual.
			forward(8)
			if got := forwardToOf(p.nextNotify().Body()); got != 8 {
				t.Fatalf("NOTIFY after: forwardTo %d, want 8", got)
			}
		})
	}
}

// TestRefreshFullStateSupersedesQueuedChanges: the same for a full state a
// refreshing SUBSCRIBE asks for while changes are queued (no overflow).
func TestRefreshFullStateSupersedesQueuedChanges(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	s := startServer(t, testConfig(), svc)
	p, forward := subscribedForwarding(t, s, svc, "TCP")
	p.holdAnswers()
	forward(0)
	p.nextNotify()
	forward(1)                                                // queued
	forward(2)                                                // queued
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 { // refresh: a full state is due
		t.Fatalf("re-SUBSCRIBE: %d", res.StatusCode)
	}
	// The full state is queued just after the 200 is sent.
	sub := s.lookup(dialogID{p.callID, p.fromTag})
	waitFor(t, "the full state due", func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return sub.full
	})
	p.releaseAnswers()
	if got := forwardToOf(p.nextNotify().Body()); got != 2 {
		t.Fatalf("after the refresh: forwardTo %d, want the full state with 2", got)
	}
	p.noNotify(200 * time.Millisecond)
}

// TestUnversionedChangesStillSent: a Service that does not version (0)
// gets every change sent, as before versions existed.
func TestUnversionedChangesStillSent(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	s := startServer(t, testConfig(), svc)
	p := newPhone(t, "1001", "UDP", s.Addr())
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	p.nextNotify()
	for _, on := range []bool{true, false, true} {
		s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: on})
		want := "<doNotDisturbOn>" + strconv.FormatBool(on) + "</doNotDisturbOn>"
		if n := p.nextNotify(); !strings.Contains(string(n.Body()), want) {
			t.Fatalf("NOTIFY %s, want %s", n.Body(), want)
		}
	}
}

// TestShowRules: what a subscription sends of one feature given the
// version last shown: a published change only above it, a value read at
// send time at or above it; unversioned always; features apart.
func TestShowRules(t *testing.T) {
	dnd := feature{kind: ChangeDoNotDisturb}
	cfa := feature{kind: ChangeForwarding, fwd: ForwardImmediate}
	steps := []struct {
		f    feature
		v    Version
		read bool
		want bool
	}{
		{dnd, 5, false, true},  // first change
		{dnd, 5, false, false}, // the same change again
		{dnd, 4, false, false}, // older
		{dnd, 5, true, true},   // a read at the same version: an answer, sent
		{dnd, 4, true, false},  // a read older than what was sent
		{cfa, 3, false, true},  // another feature has its own version
		{dnd, 0, false, true},  // unversioned: always
		{dnd, 6, false, true},  // newer
		{feature{kind: ChangeForwarding, fwd: "forwardUnknown"}, 1, false, true},
	}
	var sub subscription
	for i, s := range steps {
		if got := sub.show(s.f, s.v, s.read); got != s.want {
			t.Errorf("step %d (%+v v%d read %t): %t, want %t", i, s.f, s.v, s.read, got, s.want)
		}
	}
}
