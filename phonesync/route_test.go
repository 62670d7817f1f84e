package phonesync

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// routesOf is a request's Route header values, in order.
func routesOf(req *sip.Request) []string {
	var out []string
	for _, h := range req.GetHeaders("Route") {
		out = append(out, h.Value())
	}
	return out
}

func uriStrings(us []sip.Uri) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}

// TestRouteSetFromRecordRoute: the route set read from real SIP bytes:
// every Record-Route header and every comma-separated value, in the order
// received for a UAS, reversed for a UAC (RFC 3261 §12.1.1, §12.1.2).
func TestRouteSetFromRecordRoute(t *testing.T) {
	tests := []struct {
		name    string
		headers string
		uas     []string // in order
		ok      bool
	}{
		{name: "none", uas: nil, ok: true},
		{name: "one", headers: "Record-Route: <sip:10.0.0.1;lr>\r\n", uas: []string{"sip:10.0.0.1;lr"}, ok: true},
		{
			name: "headers and comma lists",
			headers: "Record-Route: <sip:p3.example.net;lr>, <sip:10.0.0.2:5070;transport=tcp;lr>\r\n" +
				"Record-Route: \"Edge\" <sip:p1.example.net;lr;ftag=abc>\r\n" +
				"Record-Route: <sip:[2001:db8::1]:5080;lr>,<sip:strict.example.net>\r\n",
			uas: []string{"sip:p3.example.net;lr", "sip:10.0.0.2:5070;transport=tcp;lr", "sip:p1.example.net;lr;ftag=abc", "sip:[2001:db8::1]:5080;lr", "sip:strict.example.net"},
			ok:  true,
		},
		{name: "too many", headers: strings.Repeat("Record-Route: <sip:10.0.0.1;lr>, <sip:10.0.0.2;lr>\r\n", maxRouteSet/2+1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := "SUBSCRIBE sip:1001@127.0.0.1 SIP/2.0\r\n" +
				"Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK1\r\n" +
				tc.headers +
				"From: <sip:1001@127.0.0.1>;tag=a\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 SUBSCRIBE\r\n" +
				"Contact: <sip:1001@10.0.0.9>\r\nEvent: as-feature-event\r\nContent-Length: 0\r\n\r\n"
			m, err := sip.ParseMessage([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			uas, ok := routeSet(m, false)
			if ok != tc.ok {
				t.Fatalf("ok = %t, want %t", ok, tc.ok)
			}
			if !slices.Equal(uriStrings(uas), tc.uas) {
				t.Errorf("UAS route set %q, want %q", uriStrings(uas), tc.uas)
			}
			uac, _ := routeSet(m, true)
			want := slices.Clone(tc.uas)
			slices.Reverse(want)
			if !slices.Equal(uriStrings(uac), want) {
				t.Errorf("UAC route set %q, want %q", uriStrings(uac), want)
			}
		})
	}
}

// TestRouteRequest: loose routing keeps the remote target as Request-URI
// and sends to the first route; a strict router (no lr) becomes the
// Request-URI and the remote target the last Route (RFC 3261 §12.2.1.1);
// the next hop's address takes maddr, the port or the transport's default.
func TestRouteRequest(t *testing.T) {
	parse := func(s string) sip.Uri {
		var u sip.Uri
		if err := sip.ParseUri(s, &u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	target := parse("sip:1001@192.0.2.10:5062;transport=udp")
	tests := []struct {
		name      string
		routes    []string
		transport string
		ruri      string
		route     []string
		hop       string
		hopTrans  string
	}{
		{name: "no route set", transport: "UDP", ruri: target.String(), hop: "192.0.2.10:5062", hopTrans: "UDP"},
		{name: "loose", routes: []string{"sip:10.0.0.1;lr", "sip:10.0.0.2:5070;lr"}, transport: "UDP",
			ruri: target.String(), route: []string{"sip:10.0.0.1;lr", "sip:10.0.0.2:5070;lr"}, hop: "10.0.0.1:5060", hopTrans: "UDP"},
		{name: "loose, LR in capitals, over TCP", routes: []string{"sip:10.0.0.1;LR"}, transport: "TCP",
			ruri: target.String(), route: []string{"sip:10.0.0.1;LR"}, hop: "10.0.0.1:5060", hopTrans: "TCP"},
		{name: "transport parameter wins", routes: []string{"sip:10.0.0.1:5071;transport=tcp;lr"}, transport: "UDP",
			ruri: target.String(), route: []string{"sip:10.0.0.1:5071;transport=tcp;lr"}, hop: "10.0.0.1:5071", hopTrans: "TCP"},
		{name: "sips is TLS, default port 5061", routes: []string{"sips:edge.example.net;lr"}, transport: "TCP",
			ruri: target.String(), route: []string{"sips:edge.example.net;lr"}, hop: "edge.example.net:5061", hopTrans: "TLS"},
		{name: "maddr", routes: []string{"sip:edge.example.net;maddr=10.0.0.7;lr"}, transport: "UDP",
			ruri: target.String(), route: []string{"sip:edge.example.net;maddr=10.0.0.7;lr"}, hop: "10.0.0.7:5060", hopTrans: "UDP"},
		{name: "IPv6", routes: []string{"sip:[2001:db8::1]:5080;lr"}, transport: "UDP",
			ruri: target.String(), route: []string{"sip:[2001:db8::1]:5080;lr"}, hop: "[2001:db8::1]:5080", hopTrans: "UDP"},
		{name: "strict", routes: []string{"sip:10.0.0.1:5070;method=NOTIFY", "sip:10.0.0.2;lr"}, transport: "UDP",
			ruri: "sip:10.0.0.1:5070", route: []string{"sip:10.0.0.2;lr", target.String()}, hop: "10.0.0.1:5070", hopTrans: "UDP"},
		{name: "strict, alone", routes: []string{"sip:10.0.0.1"}, transport: "UDP",
			ruri: "sip:10.0.0.1", route: []string{target.String()}, hop: "10.0.0.1:5060", hopTrans: "UDP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var routes []sip.Uri
			for _, r := range tc.routes {
				routes = append(routes, parse(r))
			}
			before := uriStrings(routes)
			ruri, route, next := routeRequest(target, routes)
			if ruri.String() != tc.ruri {
				t.Errorf("Request-URI %s, want %s", ruri.String(), tc.ruri)
			}
			if !slices.Equal(uriStrings(route), tc.route) {
				t.Errorf("Route %q, want %q", uriStrings(route), tc.route)
			}
			tr := hopTransport(next, tc.transport)
			if tr != tc.hopTrans || hopAddr(next, tr) != tc.hop {
				t.Errorf("next hop %s over %s, want %s over %s", hopAddr(next, tr), tr, tc.hop, tc.hopTrans)
			}
			if !slices.Equal(uriStrings(routes), before) {
				t.Errorf("the dialog's route set changed to %q", uriStrings(routes))
			}
		})
	}
}

// sipPeer is a raw SIP/UDP socket playing a record-routing proxy (and the
// phone behind it): it sends the phone's requests, and reads and answers
// what the server sends to the route.
type sipPeer struct {
	t *testing.T
	c net.PacketConn
}

func newSIPPeer(t *testing.T) *sipPeer {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &sipPeer{t: t, c: c}
}

func (p *sipPeer) addr() string { return p.c.LocalAddr().String() }

func (p *sipPeer) sendTo(server string, b []byte) {
	p.t.Helper()
	dst, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.c.WriteTo(b, dst); err != nil {
		p.t.Fatal(err)
	}
}

// next is the next message (a hang guard, not a latency assertion); a
// request is answered with answer (0: not at all).
func (p *sipPeer) next(answer int) (sip.Message, net.Addr) {
	p.t.Helper()
	buf := make([]byte, 65536)
	p.c.SetReadDeadline(time.Now().Add(guardWait))
	n, from, err := p.c.ReadFrom(buf)
	if err != nil {
		p.t.Fatalf("nothing arrived at %s: %v", p.addr(), err)
	}
	m, err := sip.ParseMessage(slices.Clone(buf[:n]))
	if err != nil {
		p.t.Fatalf("unparsable message: %v\n%s", err, buf[:n])
	}
	if req, ok := m.(*sip.Request); ok && answer != 0 {
		res := sip.NewResponseFromRequest(req, answer, reasonPhrase(answer), nil)
		if _, err := p.c.WriteTo([]byte(res.String()), from); err != nil {
			p.t.Fatal(err)
		}
	}
	return m, from
}

// request is the next request of method, answering it 200; responses and
// other requests (answered too) are skipped.
func (p *sipPeer) request(method sip.RequestMethod) *sip.Request {
	p.t.Helper()
	for {
		m, _ := p.next(200)
		if req, ok := m.(*sip.Request); ok && req.Method == method {
			return req
		}
	}
}

// response is the next response.
func (p *sipPeer) response() *sip.Response {
	p.t.Helper()
	for {
		m, _ := p.next(200)
		if res, ok := m.(*sip.Response); ok {
			return res
		}
	}
}

// routedSubscribe is a SUBSCRIBE as a proxy at via relays it: its Via on
// top, the phone's below, and the Record-Route lines given.
func routedSubscribe(via, server, callID, fromTag, toTag, contact string, cseq int, recordRoute ...string) []byte {
	to := "<sip:1001@127.0.0.1>"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	lines := []string{
		"SUBSCRIBE sip:1001@" + server + " SIP/2.0",
		"Via: SIP/2.0/UDP " + via + ";branch=z9hG4bK" + randomToken(8) + ";rport",
		"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK" + randomToken(8),
		"Max-Forwards: 69",
	}
	lines = append(lines, recordRoute...)
	lines = append(lines,
		"From: <sip:1001@127.0.0.1>;tag="+fromTag,
		"To: "+to,
		"Call-ID: "+callID,
		"CSeq: "+strconv.Itoa(cseq)+" SUBSCRIBE",
		"Contact: <"+contact+">",
		"Event: as-feature-event",
		"Expires: 3600",
		"Content-Length: 0", "", "")
	return []byte(strings.Join(lines, "\r\n"))
}

// TestNotifyFollowsRouteSet: over real UDP sockets, a SUBSCRIBE relayed by
// a record-routing proxy (Record-Route in two headers, one a comma list)
// makes every NOTIFY go to the first route with one Route per entry, in
// the order received; a strict first route is the Request-URI with the
// phone's Contact last in Route. The phone's Contact is unreachable
// (TEST-NET): only the proxy can be reached. A re-SUBSCRIBE from a new
// Contact moves the remote target but not the route set, even when it
// carries another Record-Route.
func TestNotifyFollowsRouteSet(t *testing.T) {
	tests := []struct {
		name   string
		strict bool
	}{{name: "loose"}, {name: "strict", strict: true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leakCheck(t)
			s := startServer(t, testConfig(), newFakeSvc("1001"))
			proxy := newSIPPeer(t)
			lr := ";lr"
			if tc.strict {
				lr = ""
			}
			first := "sip:" + proxy.addr() + lr
			recordRoute := []string{
				"Record-Route: <" + first + ">, <sip:p2.example.net;lr>",
				"Record-Route: <sip:10.9.9.9:5070;transport=udp;lr>",
			}
			const contact1, contact2 = "sip:1001@192.0.2.10:5062", "sip:1001@192.0.2.11:5064"
			callID, fromTag := "route-"+randomToken(6), "ph-"+randomToken(4)
			proxy.sendTo(s.Addr(), routedSubscribe(proxy.addr(), s.Addr(), callID, fromTag, "", contact1, 1, recordRoute...))
			res := proxy.response()
			if res.StatusCode != 200 {
				t.Fatalf("SUBSCRIBE answered %d", res.StatusCode)
			}
			if got := len(res.GetHeaders("Record-Route")); got != 3 {
				t.Errorf("the 200 carries %d Record-Route values, want the 3 received (RFC 3261 §12.1.1)", got)
			}
			toTag, _ := res.To().Params.Get("tag")

			check := func(n *sip.Request, target string) {
				t.Helper()
				want := []string{"<" + first + ">", "<sip:p2.example.net;lr>", "<sip:10.9.9.9:5070;transport=udp;lr>"}
				wantRURI := target
				if tc.strict {
					wantRURI = "sip:" + proxy.addr()
					want = append(want[1:], "<"+target+">")
				}
				if n.Recipient.String() != wantRURI {
					t.Errorf("NOTIFY Request-URI %s, want %s", n.Recipient.String(), wantRURI)
				}
				if got := routesOf(n); !slices.Equal(got, want) {
					t.Errorf("NOTIFY Route %q, want %q", got, want)
				}
				if tag, _ := n.To().Params.Get("tag"); tag != fromTag || n.CallID().Value() != callID {
					t.Errorf("NOTIFY not in the dialog: To tag %q, Call-ID %q", tag, n.CallID().Value())
				}
			}
			check(proxy.request(sip.NOTIFY), contact1)

			// The refresh: new Contact, another proxy's Record-Route.
			proxy.sendTo(s.Addr(), routedSubscribe(proxy.addr(), s.Addr(), callID, fromTag, toTag, contact2, 2,
				"Record-Route: <sip:10.1.1.1;lr>"))
			if res := proxy.response(); res.StatusCode != 200 {
				t.Fatalf("re-SUBSCRIBE answered %d", res.StatusCode)
			}
			check(proxy.request(sip.NOTIFY), contact2)

			s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})
			check(proxy.request(sip.NOTIFY), contact2)
		})
	}
}

// TestOptionsPingFollowsRouteSet: a phone behind a proxy is pinged inside
// its subscription's dialog (Call-ID, both tags, the dialog's next CSeq)
// through the route set, so the proxy's in-dialog rule lets it pass; the
// next NOTIFY's CSeq is above the ping's.
func TestOptionsPingFollowsRouteSet(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.OptionsInterval = 50 * time.Millisecond
	cfg.LivenessTimeout = time.Minute
	s := startServer(t, cfg, newFakeSvc("1001"))
	proxy := newSIPPeer(t)
	first := "sip:" + proxy.addr() + ";lr"
	callID, fromTag := "ping-"+randomToken(6), "ph-"+randomToken(4)
	proxy.sendTo(s.Addr(), routedSubscribe(proxy.addr(), s.Addr(), callID, fromTag, "", "sip:1001@192.0.2.10:5062", 1,
		"Record-Route: <"+first+">"))
	if res := proxy.response(); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE answered %d", res.StatusCode)
	}
	notify := proxy.request(sip.NOTIFY)
	ping := proxy.request(sip.OPTIONS)
	toTag, _ := ping.To().Params.Get("tag")
	fromTagOurs, _ := ping.From().Params.Get("tag")
	notifyTag, _ := notify.From().Params.Get("tag")
	if ping.CallID().Value() != callID || toTag != fromTag || fromTagOurs != notifyTag {
		t.Errorf("OPTIONS outside the dialog: Call-ID %q, To tag %q, From tag %q", ping.CallID().Value(), toTag, fromTagOurs)
	}
	if got, want := routesOf(ping), []string{"<" + first + ">"}; !slices.Equal(got, want) {
		t.Errorf("OPTIONS Route %q, want %q", got, want)
	}
	if ping.Recipient.String() != "sip:1001@192.0.2.10:5062" {
		t.Errorf("OPTIONS Request-URI %s, want the Contact", ping.Recipient.String())
	}
	if cseqOf(ping) <= cseqOf(notify) {
		t.Errorf("OPTIONS CSeq %d not above the NOTIFY's %d", cseqOf(ping), cseqOf(notify))
	}
	s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})
	last := cseqOf(ping)
	for {
		m, _ := proxy.next(200)
		req, ok := m.(*sip.Request)
		if !ok {
			continue
		}
		if cseqOf(req) <= last {
			t.Fatalf("%s CSeq %d after %d", req.Method, cseqOf(req), last)
		}
		last = cseqOf(req)
		if req.Method == sip.NOTIFY {
			break
		}
	}
}

// readSIP reads one SIP message from a stream.
func readSIP(rd *bufio.Reader) (sip.Message, error) {
	var head bytes.Buffer
	length := 0
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if head.Len() == 0 && strings.TrimSpace(line) == "" {
			continue // keep-alive
		}
		head.WriteString(line)
		if strings.TrimSpace(line) == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && (strings.EqualFold(strings.TrimSpace(k), "Content-Length") || strings.TrimSpace(k) == "l") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(rd, body); err != nil {
		return nil, err
	}
	return sip.ParseMessage(append(head.Bytes(), body...))
}

// TestNotifyOverPhonesTCPConnection: a phone that subscribed over TCP is
// sent its NOTIFYs over the connection it opened, though its Contact names
// a port nobody listens on (a phone behind NAT); once that connection has
// closed they go to the Contact.
func TestNotifyOverPhonesTCPConnection(t *testing.T) {
	leakCheck(t)
	s := startServer(t, testConfig(), newFakeSvc("1001"))

	// The Contact: first a port nothing listens on, later a listener.
	contactLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer contactLn.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := closed.Addr().String()
	closed.Close()

	phone := dialSIP(t, "", s.Addr())
	laddr := phone.c.LocalAddr().String()
	callID, fromTag := "tcp-"+randomToken(6), "ph-"+randomToken(4)
	sub := func(contact, toTag string, cseq int) {
		t.Helper()
		to := "<sip:1001@127.0.0.1>"
		if toTag != "" {
			to += ";tag=" + toTag
		}
		msg := strings.Join([]string{
			"SUBSCRIBE sip:1001@" + s.Addr() + ";transport=tcp SIP/2.0",
			"Via: SIP/2.0/TCP " + laddr + ";branch=z9hG4bK" + randomToken(8),
			"Max-Forwards: 70",
			"From: <sip:1001@127.0.0.1>;tag=" + fromTag,
			"To: " + to,
			"Call-ID: " + callID,
			"CSeq: " + strconv.Itoa(cseq) + " SUBSCRIBE",
			"Contact: <sip:1001@" + contact + ";transport=tcp>",
			"Event: as-feature-event",
			"Expires: 3600",
			"Content-Length: 0", "", ""}, "\r\n")
		phone.c.SetWriteDeadline(time.Now().Add(guardWait))
		if _, err := phone.c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	sub(deadAddr, "", 1)
	phone.c.SetReadDeadline(time.Now().Add(guardWait))
	var toTag string
	var notify *sip.Request
	for notify == nil {
		m, err := readSIP(phone.rd)
		if err != nil {
			t.Fatalf("reading from the phone's connection: %v", err)
		}
		switch m := m.(type) {
		case *sip.Response:
			if m.StatusCode != 200 {
				t.Fatalf("SUBSCRIBE answered %d", m.StatusCode)
			}
			toTag, _ = m.To().Params.Get("tag")
		case *sip.Request:
			notify = m
			res := sip.NewResponseFromRequest(m, 200, "OK", nil)
			if _, err := phone.c.Write([]byte(res.String())); err != nil {
				t.Fatal(err)
			}
		}
	}
	if notify.Method != sip.NOTIFY || notify.Recipient.Port != closed.Addr().(*net.TCPAddr).Port {
		t.Errorf("got %s %s over the phone's connection, want a NOTIFY to its Contact", notify.Method, notify.Recipient.String())
	}
	if toTag == "" {
		t.Fatal("no 200 with a To tag before the NOTIFY")
	}

	// The phone moves its Contact to a live listener (a refresh over the
	// same connection; its 200 and full state come back over it), then
	// closes the connection: the next NOTIFY goes to the Contact.
	sub(contactLn.Addr().String(), toTag, 2)
	for got := 0; got < 2; {
		m, err := readSIP(phone.rd)
		if err != nil {
			t.Fatalf("reading from the phone's connection: %v", err)
		}
		got++
		if req, ok := m.(*sip.Request); ok {
			res := sip.NewResponseFromRequest(req, 200, "OK", nil)
			if _, err := phone.c.Write([]byte(res.String())); err != nil {
				t.Fatal(err)
			}
		}
	}
	phone.c.Close()
	waitFor(t, "the server to see the phone's connection close", func() bool { return !s.connectionOpen("TCP", laddr) })
	s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})

	contactLn.(*net.TCPListener).SetDeadline(time.Now().Add(guardWait))
	c, err := contactLn.Accept()
	if err != nil {
		t.Fatalf("no connection to the Contact: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(guardWait))
	m, err := readSIP(bufio.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	req, ok := m.(*sip.Request)
	if !ok || req.Method != sip.NOTIFY || !strings.Contains(string(req.Body()), "doNotDisturbOn>true") {
		t.Fatalf("at the Contact: %s", m)
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if _, err := c.Write([]byte(res.String())); err != nil {
		t.Fatal(err)
	}
}

// TestRestartKeepsRouteSet: a UDP dialog set up through a proxy keeps its
// route set across a restart (the state file), so the restored full state
// goes through the proxy; a state file written before route sets were
// kept (no route_set) restores its dialogs with none, and one whose route
// set does not parse is dropped.
func TestRestartKeepsRouteSet(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	cfg := testConfig()
	cfg.StateFile = filepath.Join(t.TempDir(), "sip-state.json")
	s1 := startServer(t, cfg, svc)
	proxy := newSIPPeer(t)
	first := "sip:" + proxy.addr() + ";lr"
	const contact = "sip:1001@192.0.2.10:5062"
	callID, fromTag := "restart-"+randomToken(6), "ph-"+randomToken(4)
	proxy.sendTo(s1.Addr(), routedSubscribe(proxy.addr(), s1.Addr(), callID, fromTag, "", contact, 1,
		"Record-Route: <"+first+">, <sip:p2.example.net;lr>"))
	if res := proxy.response(); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE answered %d", res.StatusCode)
	}
	before := proxy.request(sip.NOTIFY)
	want := []string{"<" + first + ">", "<sip:p2.example.net;lr>"}
	waitFor(t, "the state file with the route set", func() bool {
		st, err := readState(cfg.StateFile, 1<<20)
		return err == nil && len(st.Dialogs) == 1 && len(st.Dialogs[0].RouteSet) == 2
	})
	if err := s1.crash(); err != nil {
		t.Fatal(err)
	}
	cfg.Listen = s1.Addr()
	startServer(t, cfg, svc)
	n := proxy.request(sip.NOTIFY)
	if got := routesOf(n); !slices.Equal(got, want) || n.CallID().Value() != callID || n.Recipient.String() != contact {
		t.Errorf("restored NOTIFY: Call-ID %s, Request-URI %s, Route %q; want %s, %s, %q", n.CallID().Value(), n.Recipient.String(), got, callID, contact, want)
	}
	if cseqOf(n) <= cseqOf(before) {
		t.Errorf("restored CSeq %d after %d", cseqOf(n), cseqOf(before))
	}

	// Files of the previous format, and a route set that does not parse.
	peer := newSIPPeer(t)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	dialog := func(dn, extra string) string {
		return `{"dn":"` + dn + `","event":"as-feature-event","event_header":"as-feature-event","call_id":"old-` + dn + `","local_tag":"l","remote_tag":"r","local_uri":"sip:` + dn + `@127.0.0.1","remote_uri":"sip:` + dn + `@127.0.0.1","remote_target":"sip:` + dn + `@` + peer.addr() + `","source":"` + peer.addr() + `","transport":"UDP","local_host":"127.0.0.1","cseq":7,"expires":"` + future + `"` + extra + `}`
	}
	file := filepath.Join(t.TempDir(), "old-state.json")
	data := `{"version":1,"dialogs":[` + dialog("1002", "") + `,` + dialog("1003", `,"route_set":["sip:ok.example.net;lr","not a uri <"]`) + `]}`
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = testConfig()
	cfg.StateFile = file
	s3 := startServer(t, cfg, newFakeSvc("1002", "1003"))
	if ph := s3.Phones(); len(ph) != 1 || ph[0].DN != "1002" {
		t.Fatalf("Phones() = %+v, want 1002 alone", ph)
	}
	n = peer.request(sip.NOTIFY)
	if got := routesOf(n); n.CallID().Value() != "old-1002" || len(got) != 0 {
		t.Errorf("NOTIFY of the old-format dialog: Call-ID %s, Route %q", n.CallID().Value(), got)
	}
}

// TestPresenceRouteSet: the watcher, UAC of its presence dialogs, takes
// the route set from the 2xx's Record-Route reversed (RFC 3261 §12.1.2);
// its refresh and its un-SUBSCRIBE carry it as Route, go to the first
// route (the proxy next to us), and name the PBX's Contact as
// Request-URI. A strict first route is the Request-URI instead. A NOTIFY
// that comes before the 2xx sets the route set in the order received (we
// are its UAS), and the 2xx then leaves it.
func TestPresenceRouteSet(t *testing.T) {
	const pbxContact = "sip:8001@192.0.2.50:5080"
	twoXX := func(callID, recordRoute string) *sip.Response {
		t.Helper()
		raw := "SIP/2.0 200 OK\r\n" +
			"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\n" +
			recordRoute +
			"From: <sip:phonesync@127.0.0.1>;tag=ours\r\n" +
			"To: <sip:8001@127.0.0.1>;tag=cucm\r\n" +
			"Call-ID: " + callID + "\r\n" +
			"CSeq: 1 SUBSCRIBE\r\n" +
			"Contact: <" + pbxContact + ">\r\n" +
			"Expires: 3600\r\n" +
			"Content-Length: 0\r\n\r\n"
		m, err := sip.ParseMessage([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return m.(*sip.Response)
	}
	tests := []struct {
		name        string
		recordRoute string // in the 2xx, PBX side first
		notifyRR    string // in a NOTIFY before the 2xx
		ruri        string
		route       []string
		dest        string
	}{
		{
			name:        "loose, reversed",
			recordRoute: "Record-Route: <sip:10.0.0.3:5070;lr>, <sip:10.0.0.2;lr>\r\nRecord-Route: <sip:10.0.0.1:5071;lr>\r\n",
			ruri:        pbxContact,
			route:       []string{"<sip:10.0.0.1:5071;lr>", "<sip:10.0.0.2;lr>", "<sip:10.0.0.3:5070;lr>"},
			dest:        "10.0.0.1:5071",
		},
		{
			name:        "strict first route",
			recordRoute: "Record-Route: <sip:10.0.0.2;lr>, <sip:10.0.0.1:5071>\r\n",
			ruri:        "sip:10.0.0.1:5071",
			route:       []string{"<sip:10.0.0.2;lr>", "<" + pbxContact + ">"},
			dest:        "10.0.0.1:5071",
		},
		{
			name:  "none: the configured PBX",
			ruri:  pbxContact,
			route: nil,
			dest:  "127.0.0.1:5060",
		},
		{
			name:        "NOTIFY first, in order",
			notifyRR:    "Record-Route: <sip:10.0.0.1:5071;lr>, <sip:10.0.0.2;lr>\r\n",
			recordRoute: "Record-Route: <sip:10.0.0.2;lr>, <sip:10.0.0.1:5071;lr>\r\nRecord-Route: <sip:10.6.6.6;lr>\r\n",
			ruri:        pbxContact, // the 2xx's Contact refreshes the NOTIFY's
			route:       []string{"<sip:10.0.0.1:5071;lr>", "<sip:10.0.0.2;lr>"},
			dest:        "10.0.0.1:5071",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := newTestWatcher(t, "8001")
			p := w.testPresentity("8001")
			p.mu.Lock()
			callID, localTag := p.callID, p.localTag
			p.mu.Unlock()
			if tc.notifyRR != "" {
				if code := w.handleNotify(rawNotify(t, callID, localTag, "8001", "Event: presence\r\nSubscription-State: active;expires=3600\r\n"+tc.notifyRR, nil)); code != 200 {
					t.Fatalf("NOTIFY answered %d", code)
				}
			}
			if _, ok := p.accept(twoXX(callID, tc.recordRoute)); !ok {
				t.Fatal("2xx not taken")
			}
			for _, expires := range []time.Duration{-1, 0} { // refresh, un-SUBSCRIBE
				req, refreshing, err := w.buildSubscribe(p, expires)
				if err != nil || !refreshing {
					t.Fatalf("buildSubscribe: refreshing %t, %v", refreshing, err)
				}
				if req.Recipient.String() != tc.ruri {
					t.Errorf("Request-URI %s, want %s", req.Recipient.String(), tc.ruri)
				}
				if got := routesOf(req); !slices.Equal(got, tc.route) {
					t.Errorf("Route %q, want %q", got, tc.route)
				}
				if req.Destination() != tc.dest {
					t.Errorf("sent to %s, want %s", req.Destination(), tc.dest)
				}
			}
		})
	}
}
