package phonesync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"
)

// presenceCall is one SetAgentState the watcher made.
type presenceCall struct {
	DN, AgentID string
	State       AgentStateName
	Reason      string
}

func (c presenceCall) String() string {
	if c.Reason != "" {
		return fmt.Sprintf("%s:%s(%s)", c.DN, c.State, c.Reason)
	}
	return fmt.Sprintf("%s:%s", c.DN, c.State)
}

// presenceService records SetAgentState calls; fail refuses the next calls
// for the listed states once each.
type presenceService struct {
	Service // nil: any other method panics, the watcher must not call them
	mu      sync.Mutex
	calls   []presenceCall
	fail    map[AgentStateName]int
	badCall string
}

func (s *presenceService) SetAgentState(ctx context.Context, dn, agentID string, state AgentStateName, reason string, origin Origin) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok || origin != OriginPresence || agentID != "" {
		s.badCall = fmt.Sprintf("SetAgentState(%s, agentID %q, origin %d, deadline %v)", dn, agentID, origin, ok)
	}
	if s.fail[state] > 0 {
		s.fail[state]--
		return errors.New("refused by the test")
	}
	s.calls = append(s.calls, presenceCall{DN: dn, AgentID: agentID, State: state, Reason: reason})
	return nil
}

func (s *presenceService) take(t *testing.T) []string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.badCall != "" {
		t.Fatalf("bad Service call: %s", s.badCall)
	}
	out := make([]string, len(s.calls))
	for i, c := range s.calls {
		out[i] = c.String()
	}
	s.calls = nil
	return out
}

func quietLogger() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

// newTestWatcher is a watcher with dialogs open for dns and no network.
func newTestWatcher(t *testing.T, dns ...string) (*presenceWatcher, *presenceService) {
	t.Helper()
	svc := &presenceService{fail: map[AgentStateName]int{}}
	w := newPresenceWatcher(PresenceConfig{PBX: "127.0.0.1:5060", DNs: dns}, nil, nil, svc, quietLogger())
	w.contact = &sip.Uri{Scheme: "sip", User: presenceUser, Host: "127.0.0.1", Port: 5099}
	for _, p := range w.list {
		if _, _, err := w.buildSubscribe(p, -1); err != nil {
			t.Fatal(err)
		}
	}
	return w, svc
}

func (w *presenceWatcher) testPresentity(dn string) *presentity {
	for _, p := range w.list {
		if p.dn == dn {
			return p
		}
	}
	return nil
}

// notifyFor is a NOTIFY of dn's dialog as a PBX writes it, parsed by sipgo.
func notifyFor(t *testing.T, w *presenceWatcher, dn, extraHeaders string, body []byte) *sip.Request {
	t.Helper()
	p := w.testPresentity(dn)
	p.mu.Lock()
	callID, localTag := p.callID, p.localTag
	p.mu.Unlock()
	return rawNotify(t, callID, localTag, dn, extraHeaders, body)
}

func rawNotify(t *testing.T, callID, localTag, dn, extraHeaders string, body []byte) *sip.Request {
	t.Helper()
	if extraHeaders == "" {
		extraHeaders = "Event: presence\r\nSubscription-State: active;expires=3600\r\n"
	}
	ct := ""
	if len(body) > 0 && !strings.Contains(extraHeaders, "Content-Type") {
		ct = "Content-Type: application/pidf+xml\r\n"
	}
	msg := "NOTIFY sip:phonesync@127.0.0.1:5099 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.168.13.198:5060;branch=z9hG4bKa56da5d2a2\r\n" +
		"From: <sip:" + dn + "@192.168.13.198>;tag=1746816090\r\n" +
		"To: <sip:phonesync@127.0.0.1>;tag=" + localTag + "\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 114 NOTIFY\r\n" +
		"Contact: <sip:" + dn + "@192.168.13.198:5060;transport=udp>\r\n" +
		"Max-Forwards: 70\r\n" +
		"User-Agent: Cisco-CUCM7.0\r\n" +
		extraHeaders + ct +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body)
	m, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return m.(*sip.Request)
}

// TestPresenceMapping feeds fixture sequences to one DN and checks the agent
// states the gateway is asked for (issue 5: first open → logged on and
// Ready; open with an activity → Not Ready with it as reason, on-the-phone
// read as busy; closed → logged off; nothing when nothing changed).
func TestPresenceMapping(t *testing.T) {
	const (
		idle     = "pidf_cucm7_idle.xml"
		onPhone  = "pidf_cucm7_on_the_phone.xml"
		closed   = "pidf_closed_offline.xml"
		away     = "pidf_rfc4480_away_note.xml"
		impBusy  = "pidf_imp_busy_closed.xml"
		bad      = "pidf_bad_basic.xml"
		both     = "pidf_both_namespaces.xml"
		person   = "pidf_person_only_open.xml"
		truncate = "pidf_bad_truncated.xml"
	)
	tests := []struct {
		name  string
		seq   []string
		fail  map[AgentStateName]int
		codes []int // per NOTIFY; all 200 when nil
		want  []string
	}{
		{name: "first open", seq: []string{idle}, want: []string{"8001:loggedOn", "8001:ready"}},
		{name: "first open on the phone", seq: []string{onPhone}, want: []string{"8001:loggedOn", "8001:notReady(busy)"}},
		{name: "call and hang up", seq: []string{idle, onPhone, idle}, want: []string{"8001:loggedOn", "8001:ready", "8001:notReady(busy)", "8001:ready"}},
		{name: "repeats change nothing", seq: []string{idle, idle, onPhone, onPhone}, want: []string{"8001:loggedOn", "8001:ready", "8001:notReady(busy)"}},
		{name: "closed first", seq: []string{closed}, want: []string{"8001:loggedOff"}},
		{name: "open after closed logs on again", seq: []string{idle, closed, closed, idle}, want: []string{"8001:loggedOn", "8001:ready", "8001:loggedOff", "8001:loggedOn", "8001:ready"}},
		{name: "away with a note", seq: []string{away}, want: []string{"8001:loggedOn", "8001:notReady(away)"}},
		{name: "other activity is another reason", seq: []string{onPhone, away}, want: []string{"8001:loggedOn", "8001:notReady(busy)", "8001:notReady(away)"}},
		{name: "IM&P closed busy is logged off", seq: []string{idle, impBusy}, want: []string{"8001:loggedOn", "8001:ready", "8001:loggedOff"}},
		{name: "both namespaces", seq: []string{both}, want: []string{"8001:loggedOn", "8001:notReady(busy)"}},
		{name: "person status only", seq: []string{person}, want: []string{"8001:loggedOn", "8001:ready"}},
		{name: "malformed changes nothing", seq: []string{idle, bad, truncate, idle}, codes: []int{200, 400, 400, 200}, want: []string{"8001:loggedOn", "8001:ready"}},
		{name: "refused ready is retried, log-on is not repeated", seq: []string{idle, idle}, fail: map[AgentStateName]int{AgentReady: 1},
			want: []string{"8001:loggedOn", "8001:ready"}},
		{name: "refused log-on is retried", seq: []string{onPhone, onPhone}, fail: map[AgentStateName]int{AgentLoggedOn: 1},
			want: []string{"8001:loggedOn", "8001:notReady(busy)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, svc := newTestWatcher(t, "8001")
			for k, v := range tc.fail {
				svc.fail[k] = v
			}
			for i, file := range tc.seq {
				code := w.handleNotify(notifyFor(t, w, "8001", "", readFixture(t, file)))
				want := 200
				if tc.codes != nil {
					want = tc.codes[i]
				}
				if code != want {
					t.Fatalf("NOTIFY %d (%s): %d, want %d", i, file, code, want)
				}
			}
			if got := svc.take(t); !slices.Equal(got, tc.want) {
				t.Fatalf("calls %q\nwant  %q", got, tc.want)
			}
		})
	}
}

func TestPresenceHandleNotifyCodes(t *testing.T) {
	idle := readFixture(t, "pidf_cucm7_idle.xml")
	w, svc := newTestWatcher(t, "8001", "8002", "8001", " ")
	if len(w.list) != 2 {
		t.Fatalf("%d presentities, want 2 (duplicates and blanks dropped)", len(w.list))
	}
	p := w.testPresentity("8001")
	p.mu.Lock()
	callID, localTag := p.callID, p.localTag
	p.mu.Unlock()

	tests := []struct {
		name string
		req  *sip.Request
		want int
	}{
		{"unknown dialog", rawNotify(t, "no-such-call", localTag, "8001", "", idle), 481},
		{"wrong To tag", rawNotify(t, callID, "other-tag", "8001", "", idle), 481},
		{"other event", rawNotify(t, callID, localTag, "8001", "Event: dialog\r\nSubscription-State: active\r\n", idle), 489},
		{"other body type", rawNotify(t, callID, localTag, "8001", "Event: presence\r\nContent-Type: application/dialog-info+xml\r\n", idle), 415},
		{"malformed", rawNotify(t, callID, localTag, "8001", "", []byte("<presence><tuple>")), 400},
		{"no body", rawNotify(t, callID, localTag, "8001", "", nil), 200},
		{"compact Event", rawNotify(t, callID, localTag, "8001", "o: presence;id=1\r\nSubscription-State: active\r\n", idle), 200},
	}
	for _, tc := range tests {
		if got := w.handleNotify(tc.req); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := svc.take(t); !slices.Equal(got, []string{"8001:loggedOn", "8001:ready"}) {
		t.Fatalf("calls %q", got)
	}

	// Terminated: the body still counts, the dialog is gone, the loop is woken.
	term := rawNotify(t, callID, localTag, "8001", "Event: presence\r\nSubscription-State: terminated;reason=noresource;retry-after=30\r\n", readFixture(t, "pidf_closed_offline.xml"))
	if got := w.handleNotify(term); got != 200 {
		t.Fatalf("terminated NOTIFY: %d", got)
	}
	select {
	case <-p.kick:
	default:
		t.Fatal("terminated NOTIFY did not wake the subscription loop")
	}
	p.mu.Lock()
	retry := p.retryAfter
	p.mu.Unlock()
	if retry != 30*time.Second {
		t.Errorf("retry-after %v, want 30s", retry)
	}
	if got := svc.take(t); !slices.Equal(got, []string{"8001:loggedOff"}) {
		t.Fatalf("calls %q", got)
	}
	if got := w.handleNotify(rawNotify(t, callID, localTag, "8001", "", idle)); got != 481 {
		t.Fatalf("NOTIFY after termination: %d, want 481", got)
	}
}

// fakePBX answers SUBSCRIBEs the way the test says, in synctest time.
type fakePBX struct {
	mu       sync.Mutex
	requests []*sip.Request
	at       []time.Duration
	start    time.Time
	answer   func(n int, req *sip.Request) (*sip.Response, error)
}

func (f *fakePBX) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("request without a deadline")
	}
	f.mu.Lock()
	n := len(f.requests)
	f.requests = append(f.requests, req.Clone())
	f.at = append(f.at, time.Since(f.start))
	f.mu.Unlock()
	return f.answer(n, req)
}

func okSubscribe(req *sip.Request, expires string) *sip.Response {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.To().Params.Add("tag", "pbx-tag")
	res.AppendHeader(sip.NewHeader("Expires", expires))
	return res
}

func headerOf(req *sip.Request, name string) string {
	if h := req.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// TestPresenceSubscribeLoop drives the subscription loop in synctest time:
// failures back off (1 s, 2 s, 4 s with jitter), a success refreshes at 80%
// of the granted time in the same dialog, a terminating NOTIFY starts a new
// dialog after its retry-after, and the end unsubscribes with Expires: 0.
func TestPresenceSubscribeLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		svc := &presenceService{fail: map[AgentStateName]int{}}
		w := newPresenceWatcher(PresenceConfig{PBX: "192.0.2.10:5060", DNs: []string{"8001"}, Expires: 100 * time.Second}, nil, nil, svc, quietLogger())
		w.contact = &sip.Uri{Scheme: "sip", User: presenceUser, Host: "192.0.2.1", Port: 5070}
		pbx := &fakePBX{start: time.Now()}
		pbx.answer = func(n int, req *sip.Request) (*sip.Response, error) {
			switch {
			case n < 2:
				return sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil), nil
			case n == 2:
				return nil, context.DeadlineExceeded // no answer at all
			}
			return okSubscribe(req, headerOf(req, "Expires")), nil
		}
		w.do = pbx.do
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { w.run(ctx); close(done) }()

		// 3 failures, success at ~3.5-7 s, refresh 80 s later.
		time.Sleep(100 * time.Second)
		synctest.Wait()
		pbx.mu.Lock()
		reqs, at := slices.Clone(pbx.requests), slices.Clone(pbx.at)
		pbx.mu.Unlock()
		if len(reqs) != 5 {
			t.Fatalf("%d SUBSCRIBEs in 100 s, want 5 (3 failed, 1 ok, 1 refresh); at %v", len(reqs), at)
		}
		for i, b := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
			if gap := at[i+1] - at[i]; gap < b/2 || gap > b {
				t.Errorf("retry %d after %v, want within [%v, %v]", i+1, gap, b/2, b)
			}
		}
		if gap := at[4] - at[3]; gap != 80*time.Second {
			t.Errorf("refresh after %v, want 80 s (80%% of 100 s)", gap)
		}
		ok, refresh := reqs[3], reqs[4]
		for _, r := range []*sip.Request{ok, refresh} {
			if headerOf(r, "Event") != "presence" || headerOf(r, "Accept") != "application/pidf+xml" || headerOf(r, "Expires") != "100" {
				t.Errorf("headers: Event %q Accept %q Expires %q", headerOf(r, "Event"), headerOf(r, "Accept"), headerOf(r, "Expires"))
			}
			if r.Recipient.User != "8001" || r.Destination() != "192.0.2.10:5060" {
				t.Errorf("sent to %s via %s", r.Recipient.String(), r.Destination())
			}
			if c := r.Contact(); c == nil || c.Address.Port != 5070 {
				t.Errorf("Contact %v", c)
			}
		}
		if ok.CallID().Value() != refresh.CallID().Value() || refresh.CSeq().SeqNo != ok.CSeq().SeqNo+1 {
			t.Errorf("refresh not in the dialog: Call-ID %s/%s CSeq %d/%d", ok.CallID().Value(), refresh.CallID().Value(), ok.CSeq().SeqNo, refresh.CSeq().SeqNo)
		}
		if tag, _ := refresh.To().Params.Get("tag"); tag != "pbx-tag" {
			t.Errorf("refresh To tag %q, want the PBX's", tag)
		}
		if reqs[0].CallID().Value() == ok.CallID().Value() {
			t.Error("a failed initial SUBSCRIBE's dialog was reused")
		}

		// The PBX ends the subscription: resubscribe, new dialog, after retry-after.
		p := w.list[0]
		p.mu.Lock()
		callID, localTag := p.callID, p.localTag
		p.mu.Unlock()
		term := rawNotify(t, callID, localTag, "8001", "Event: presence\r\nSubscription-State: terminated;reason=deactivated;retry-after=20\r\n", nil)
		if code := w.handleNotify(term); code != 200 {
			t.Fatalf("terminating NOTIFY: %d", code)
		}
		termAt := time.Since(pbx.start)
		time.Sleep(25 * time.Second)
		synctest.Wait()
		pbx.mu.Lock()
		if len(pbx.requests) != 6 {
			t.Fatalf("%d SUBSCRIBEs after termination, want 6", len(pbx.requests))
		}
		again, againAt := pbx.requests[5], pbx.at[5]
		pbx.mu.Unlock()
		if again.CallID().Value() == callID {
			t.Error("resubscribed in the terminated dialog")
		}
		if d := againAt - termAt; d < 10*time.Second || d > 20*time.Second {
			t.Errorf("resubscribed %v after termination, want within the jittered retry-after [10 s, 20 s]", d)
		}

		cancel()
		<-done
		pbx.mu.Lock()
		last := pbx.requests[len(pbx.requests)-1]
		pbx.mu.Unlock()
		if headerOf(last, "Expires") != "0" || last.CallID().Value() != again.CallID().Value() {
			t.Fatalf("last request Expires %q Call-ID %s, want an unSUBSCRIBE of the live dialog", headerOf(last, "Expires"), last.CallID().Value())
		}
		if len(svc.take(t)) != 0 {
			t.Error("Service called without any PIDF")
		}
	})
}

// TestPresenceSubscribeIntervalTooBrief: 423 is answered with Min-Expires.
func TestPresenceSubscribeIntervalTooBrief(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newPresenceWatcher(PresenceConfig{PBX: "192.0.2.10:5060", DNs: []string{"8001"}, Expires: 30 * time.Second}, nil, nil, &presenceService{}, quietLogger())
		w.contact = &sip.Uri{Scheme: "sip", User: presenceUser, Host: "192.0.2.1", Port: 5070}
		pbx := &fakePBX{start: time.Now()}
		pbx.answer = func(n int, req *sip.Request) (*sip.Response, error) {
			if headerOf(req, "Expires") == "30" {
				res := sip.NewResponseFromRequest(req, 423, "Interval Too Brief", nil)
				res.AppendHeader(sip.NewHeader("Min-Expires", "600"))
				return res, nil
			}
			return okSubscribe(req, headerOf(req, "Expires")), nil
		}
		w.do = pbx.do
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { w.run(ctx); close(done) }()
		time.Sleep(time.Second)
		synctest.Wait()
		cancel()
		<-done
		pbx.mu.Lock()
		defer pbx.mu.Unlock()
		var got []string
		for _, r := range pbx.requests {
			got = append(got, headerOf(r, "Expires"))
		}
		if !slices.Equal(got, []string{"30", "600", "0"}) {
			t.Fatalf("Expires sent %q, want 30, 600 and the final 0", got)
		}
	})
}

// listenSIP serves a sipgo server on a UDP socket on 127.0.0.1.
func listenSIP(t *testing.T, ctx context.Context, srv *sipgo.Server) string {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeUDP(conn) }()
	go func() { <-ctx.Done(); _ = conn.Close() }()
	return conn.LocalAddr().String()
}

// TestPresenceWatcherOverUDP is one real round trip on 127.0.0.1: a sipgo
// "PBX" answers the watcher's SUBSCRIBE, NOTIFYs a CUCM PIDF to the Contact
// it was given, sees the refresh in the same dialog and the final
// unSUBSCRIBE.
func TestPresenceWatcherOverUDP(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	// The connector side: UA, server routing NOTIFY to the watcher, client.
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("connector"))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	var w *presenceWatcher
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		code := w.handleNotify(req)
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, "", nil))
	})
	myAddr := listenSIP(t, ctx, srv)
	// ServeUDP registers the listener in its goroutine; the watcher takes
	// its Contact port from it (Server.Start waits the same way).
	for deadline := time.Now().Add(5 * time.Second); len(ua.TransportLayer().ListenPorts("udp")) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the UDP listener never registered")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// The PBX.
	pbxUA, err := sipgo.NewUA(sipgo.WithUserAgent("Cisco-CUCM7.0"))
	if err != nil {
		t.Fatal(err)
	}
	defer pbxUA.Close()
	pbxSrv, err := sipgo.NewServer(pbxUA)
	if err != nil {
		t.Fatal(err)
	}
	pbxClient, err := sipgo.NewClient(pbxUA, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	subscribes := make(chan *sip.Request, 10)
	notified := make(chan int, 10)
	pidf := readFixture(t, "pidf_cucm7_on_the_phone.xml")
	var cseq sync.Mutex
	notifyCSeq := uint32(100)
	pbxSrv.OnSubscribe(func(req *sip.Request, tx sip.ServerTransaction) {
		subscribes <- req.Clone()
		expires := headerOf(req, "Expires")
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.To().Params.Add("tag", "cucm-tag")
		res.AppendHeader(sip.NewHeader("Expires", expires))
		_ = tx.Respond(res)
		if expires == "0" {
			return
		}
		// NOTIFY the state, in the dialog, to the watcher's Contact.
		go func() {
			cseq.Lock()
			notifyCSeq++
			n := notifyCSeq
			cseq.Unlock()
			nreq := sip.NewRequest(sip.NOTIFY, req.Contact().Address)
			from := sip.FromHeader{Address: req.To().Address, Params: sip.NewParams()}
			from.Params.Add("tag", "cucm-tag")
			to := sip.ToHeader{Address: req.From().Address, Params: req.From().Params.Clone()}
			callID := *req.CallID()
			seq := sip.CSeqHeader{SeqNo: n, MethodName: sip.NOTIFY}
			nreq.AppendHeader(&from)
			nreq.AppendHeader(&to)
			nreq.AppendHeader(&callID)
			nreq.AppendHeader(&seq)
			nreq.AppendHeader(sip.NewHeader("Event", "presence"))
			nreq.AppendHeader(sip.NewHeader("Subscription-State", "active;expires="+expires))
			ct := sip.ContentTypeHeader("application/pidf+xml")
			nreq.AppendHeader(&ct)
			nreq.SetBody(pidf)
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			res, err := pbxClient.Do(rctx, nreq, sipgo.ClientRequestBuild)
			if err != nil {
				notified <- 0
				return
			}
			notified <- res.StatusCode
		}()
	})
	pbxAddr := listenSIP(t, ctx, pbxSrv)

	svc := &presenceService{fail: map[AgentStateName]int{}}
	w = newPresenceWatcher(PresenceConfig{PBX: pbxAddr, DNs: []string{"8001"}, Expires: 2 * time.Second}, client, ua, svc, quietLogger())
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() { w.run(runCtx); close(runDone) }()

	next := func(what string) *sip.Request {
		t.Helper()
		select {
		case r := <-subscribes:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s SUBSCRIBE", what)
			return nil
		}
	}
	first := next("initial")
	if headerOf(first, "Event") != "presence" || headerOf(first, "Accept") != "application/pidf+xml" || headerOf(first, "Expires") != "2" {
		t.Fatalf("SUBSCRIBE headers: Event %q Accept %q Expires %q", headerOf(first, "Event"), headerOf(first, "Accept"), headerOf(first, "Expires"))
	}
	if first.Recipient.User != "8001" {
		t.Errorf("Request-URI %s", first.Recipient.String())
	}
	if c := first.Contact(); c == nil || c.Address.HostPort() != myAddr {
		t.Errorf("Contact %v, want the watcher's listener %s", c, myAddr)
	}
	select {
	case code := <-notified:
		if code != 200 {
			t.Fatalf("NOTIFY answered %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("NOTIFY not answered")
	}
	if got := svc.take(t); !slices.Equal(got, []string{"8001:loggedOn", "8001:notReady(busy)"}) {
		t.Fatalf("calls %q", got)
	}

	refresh := next("refresh") // due 1.6 s after the first
	if refresh.CallID().Value() != first.CallID().Value() || refresh.CSeq().SeqNo != first.CSeq().SeqNo+1 {
		t.Errorf("refresh not in the dialog")
	}
	if tag, _ := refresh.To().Params.Get("tag"); tag != "cucm-tag" {
		t.Errorf("refresh To tag %q", tag)
	}
	<-notified // the PBX NOTIFYs again on refresh; same state, no call
	stopRun()
	select {
	case <-runDone:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return")
	}
	var last *sip.Request
	for last == nil || headerOf(last, "Expires") != "0" {
		last = next("unsubscribe")
	}
	if last.CallID().Value() != first.CallID().Value() {
		t.Error("unSUBSCRIBE outside the dialog")
	}
	if got := svc.take(t); len(got) != 0 {
		t.Fatalf("unchanged presence called the Service: %q", got)
	}
}

// TestPresenceStopIsBounded: with a PBX that stops answering, stopping the
// watcher still takes one request timeout, not one per DN.
func TestPresenceStopIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dns := make([]string, 200)
		for i := range dns {
			dns[i] = strconv.Itoa(8000 + i)
		}
		w := newPresenceWatcher(PresenceConfig{PBX: "192.0.2.10:5060", DNs: dns, Expires: time.Hour}, nil, nil, &presenceService{}, quietLogger())
		w.contact = &sip.Uri{Scheme: "sip", User: presenceUser, Host: "192.0.2.1", Port: 5070}
		var mu sync.Mutex
		answering := true
		w.do = func(ctx context.Context, req *sip.Request) (*sip.Response, error) {
			mu.Lock()
			ok := answering
			mu.Unlock()
			if ok {
				return okSubscribe(req, "3600"), nil
			}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { w.run(ctx); close(done) }()
		time.Sleep(time.Second)
		synctest.Wait()
		mu.Lock()
		answering = false
		mu.Unlock()
		start := time.Now()
		cancel()
		<-done
		if d := time.Since(start); d > presenceCallTimeout {
			t.Fatalf("stopping took %v with a silent PBX, want at most %v", d, presenceCallTimeout)
		}
	})
}
