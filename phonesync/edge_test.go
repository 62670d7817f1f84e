package phonesync

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/logguard"
	"github.com/broadworks-connector/connector/internal/promtest"
	"github.com/broadworks-connector/connector/internal/testlog"
)

// sample is one of the server's metrics, as scraped.
func sample(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	return promtest.Scrape(t, s.Collectors()...)[name]
}

// guardWait bounds waits that should end promptly; reaching it is a
// failure (a hang), not a timing assertion.
const guardWait = 30 * time.Second

// rawRequest is a request as a phone sends it from laddr over transport;
// extra headers go before Content-Length.
func rawRequest(method, transport, laddr, server string, extra ...string) []byte {
	lines := []string{
		fmt.Sprintf("%s sip:1001@%s SIP/2.0", method, server),
		fmt.Sprintf("Via: SIP/2.0/%s %s;branch=z9hG4bK%s;rport", transport, laddr, randomToken(10)),
		"Max-Forwards: 70",
		"From: <sip:1001@127.0.0.1>;tag=" + randomToken(6),
		"To: <sip:1001@127.0.0.1>",
		"Call-ID: " + randomToken(12),
		"CSeq: 1 " + method,
		"Contact: <sip:1001@" + laddr + ";transport=" + strings.ToLower(transport) + ">",
	}
	lines = append(lines, extra...)
	lines = append(lines, "Content-Length: 0", "", "")
	return []byte(strings.Join(lines, "\r\n"))
}

func rawSubscribe(transport, laddr, server string) []byte {
	return rawRequest("SUBSCRIBE", transport, laddr, server, "Event: as-feature-event", "Expires: 3600")
}

// streamPhone is a raw SIP/TCP connection.
type streamPhone struct {
	t  *testing.T
	c  net.Conn
	rd *bufio.Reader
}

func dialSIP(t *testing.T, from, server string) *streamPhone {
	t.Helper()
	d := net.Dialer{Timeout: guardWait}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &streamPhone{t: t, c: c, rd: bufio.NewReader(c)}
}

// response reads messages until a response, returning its status line and
// CSeq, or the read error (EOF: the server closed the connection).
func (p *streamPhone) response() (status, cseq string, err error) {
	p.c.SetReadDeadline(time.Now().Add(guardWait))
	tp := textproto.NewReader(p.rd)
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return "", "", err
		}
		if line == "" {
			continue // keep-alive
		}
		h, err := tp.ReadMIMEHeader()
		if err != nil {
			return "", "", err
		}
		n, _ := strconv.Atoi(h.Get("Content-Length"))
		if _, err := io.CopyN(io.Discard, p.rd, int64(n)); err != nil {
			return "", "", err
		}
		if strings.HasPrefix(line, "SIP/2.0 ") {
			return line, h.Get("CSeq"), nil
		}
		// A NOTIFY of the server's: left unanswered.
	}
}

// served says whether an OPTIONS on the connection is answered (true) or
// the connection was closed by the server (false).
func (p *streamPhone) served(server string) bool {
	p.t.Helper()
	p.c.SetWriteDeadline(time.Now().Add(guardWait))
	if _, err := p.c.Write(rawRequest("OPTIONS", "TCP", p.c.LocalAddr().String(), server)); err != nil {
		return false
	}
	status, _, err := p.response()
	if err != nil {
		if closedByPeer(err) {
			return false
		}
		p.t.Fatalf("reading the answer: %v", err)
	}
	if !strings.HasPrefix(status, "SIP/2.0 200") {
		p.t.Fatalf("OPTIONS answered %q", status)
	}
	return true
}

func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// udpPhone is a raw SIP/UDP socket.
type udpPhone struct {
	t *testing.T
	c *net.UDPConn
}

func newUDPPhone(t *testing.T, server string) *udpPhone {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpPhone{t: t, c: c}
}

func (u *udpPhone) send(b []byte) {
	u.t.Helper()
	if _, err := u.c.Write(b); err != nil {
		u.t.Fatal(err)
	}
}

// response is the next response datagram's status line and CSeq.
func (u *udpPhone) response() (status, cseq string) {
	u.t.Helper()
	buf := make([]byte, 65536)
	for {
		u.c.SetReadDeadline(time.Now().Add(guardWait))
		n, err := u.c.Read(buf)
		if err != nil {
			u.t.Fatalf("no answer: %v", err)
		}
		msg := buf[:n]
		if !bytes.HasPrefix(msg, []byte("SIP/2.0 ")) {
			continue // a request of the server's
		}
		tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg)))
		line, _ := tp.ReadLine()
		h, _ := tp.ReadMIMEHeader()
		return line, h.Get("CSeq")
	}
}

// options sends an OPTIONS and waits for its 200: every datagram sent
// before it from this socket has been read by then (one read loop, and
// loopback keeps one sender's order).
func (u *udpPhone) options(server string) {
	u.t.Helper()
	u.send(rawRequest("OPTIONS", "UDP", u.c.LocalAddr().String(), server))
	if status, cseq := u.response(); !strings.HasPrefix(status, "SIP/2.0 200") || cseq != "1 OPTIONS" {
		u.t.Fatalf("OPTIONS answered %q (CSeq %q)", status, cseq)
	}
}

func TestTCPFloodRefusedOthersServed(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.TCPMaxConnections = 4
	s := startServer(t, cfg, newFakeSvc("1001"))
	addr := s.Addr()

	phone := dialSIP(t, "", addr)
	if !phone.served(addr) {
		t.Fatal("a phone under the cap was refused")
	}
	udp := newUDPPhone(t, addr)
	udp.options(addr)

	// The flood: 3 more fit under the cap of 4, the rest are closed at once.
	var flood []*streamPhone
	for i := range 10 {
		f := dialSIP(t, "", addr)
		if got, want := f.served(addr), i < 3; got != want {
			t.Fatalf("flood connection %d served = %v, want %v", i, got, want)
		}
		flood = append(flood, f)
	}
	if !phone.served(addr) {
		t.Fatal("the phone connected before the flood is no longer served")
	}
	udp.options(addr)
	if got := sample(t, s, `connector_sip_connections_refused_total{reason="max_connections"}`); got != 7 {
		t.Errorf("connections refused for max_connections: %v, want 7", got)
	}
	if n := sample(t, s, "connector_sip_tcp_connections"); n != 4 {
		t.Errorf("connector_sip_tcp_connections = %v, want 4", n)
	}

	for _, f := range flood {
		f.c.Close()
	}
	// The server notices the closes as it reads them.
	waitFor(t, "the flood's connections to be released", func() bool { return s.TCPConnections() == 1 })
	p := newPhone(t, "1001", "TCP", addr)
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE over TCP after the flood: %d", res.StatusCode)
	}
	if err := s.Health(); err != nil {
		t.Fatalf("Health() = %v", err)
	}
}

func TestTCPPerSourceCap(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.TCPMaxConnectionsPerSource = 2
	s := startServer(t, cfg, newFakeSvc("1001"))
	addr := s.Addr()
	for i, tc := range []struct {
		from string
		want bool
	}{{"127.0.0.1", true}, {"127.0.0.1", true}, {"127.0.0.1", false}, {"127.0.0.2", true}} {
		if got := dialSIP(t, tc.from, addr).served(addr); got != tc.want {
			t.Fatalf("connection %d from %s served = %v, want %v", i, tc.from, got, tc.want)
		}
	}
	if got := sample(t, s, `connector_sip_connections_refused_total{reason="per_source"}`); got != 1 {
		t.Errorf("connections refused per source: %v, want 1", got)
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.TCPIdleTimeout = 100 * time.Millisecond
	s := startServer(t, cfg, newFakeSvc("1001"))
	addr := s.Addr()
	p := dialSIP(t, "", addr)
	if !p.served(addr) {
		t.Fatal("not served")
	}
	// Silence: the server closes the connection, however long the machine
	// takes to get there.
	if _, _, err := p.response(); !closedByPeer(err) {
		t.Fatalf("an idle connection: read %v, want it closed", err)
	}
	// sipgo's read loop ended and let go of the connection.
	pool := s.ua.TransportLayer().Pool("tcp")
	waitFor(t, "the idle connection to leave sipgo's pool", func() bool {
		return pool.Size() == 0 && s.TCPConnections() == 0
	})
	if err := s.Health(); err != nil {
		t.Fatalf("Health() = %v", err)
	}
}

// A TCP read that cannot be SIP closes that connection only.
func TestTCPBinaryClosesConnection(t *testing.T) {
	leakCheck(t)
	s := startServer(t, testConfig(), newFakeSvc("1001"))
	addr := s.Addr()
	p := dialSIP(t, "", addr)
	if _, err := p.c.Write(bytes.Repeat([]byte{0xff}, 4096)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.response(); !closedByPeer(err) {
		t.Fatalf("after binary bytes: read %v, want the connection closed", err)
	}
	if got := sample(t, s, `connector_sip_not_sip_total{transport="tcp"}`); got != 1 {
		t.Errorf("TCP reads refused: %v, want 1", got)
	}
	if !dialSIP(t, "", addr).served(addr) {
		t.Fatal("a new connection is not served")
	}
}

// Attack 2 of issue 13: malformed datagrams must not grow the log by more
// than a bounded amount, nor put digest responses in it.
func TestMalformedDatagramsLogBounded(t *testing.T) {
	leakCheck(t)
	var sink testlog.Buffer
	// As cmd/connector builds it, at the example config's level (info).
	log := slog.New(logguard.NewHandler(slog.NewTextHandler(&sink, &slog.HandlerOptions{Level: slog.LevelInfo}), logguard.Options{}))
	s, err := NewServer(testConfig(), newFakeSvc("1001"), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guardWait)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		testServers.CompareAndDelete(t, s)
	})
	testServers.Store(t, s) // the phone's cleanup closes the server first, as startServer's do
	addr := s.Addr()
	before := len(sink.String())

	const secret = "6629fae49393a05397450978507c4ef1" // a digest response
	authz := `Authorization: Digest username="1001", realm="BroadWorks", nonce="abc", uri="sip:1001@127.0.0.1", response="` + secret + `"`
	u := newUDPPhone(t, addr)
	laddr := u.c.LocalAddr().String()
	garbage := bytes.Repeat([]byte{0xff}, 30<<10)
	// Refused by the read filter: a header line that is not "name: value".
	noColon := rawRequest("SUBSCRIBE", "UDP", laddr, addr, authz, "this line has no colon")
	// Past the filter, refused by sipgo's parser (a Via it cannot read).
	badVia := bytes.Replace(rawRequest("SUBSCRIBE", "UDP", laddr, addr, authz), []byte("Via: SIP/2.0/UDP"), []byte("Via: garbage"), 1)
	for i := range 200 {
		u.send(garbage)
		if i%2 == 0 {
			u.send(noColon)
		} else {
			u.send(badVia)
		}
		u.options(addr) // the datagrams before it were read
	}

	p := newPhone(t, "1001", "UDP", addr)
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE after the flood: %d", res.StatusCode)
	}

	logged := sink.String()[before:]
	if len(logged) > 64<<10 {
		t.Errorf("the log grew by %d bytes for 400 malformed datagrams, want at most 64 KiB", len(logged))
	}
	if strings.Contains(logged, secret) {
		t.Errorf("a digest response reached the log:\n%s", logged)
	}
	if !strings.Contains(logged, "SIP datagram refused") || !strings.Contains(logged, "source=127.0.0.1") {
		t.Errorf("no refusal logged with its source:\n%.2000s", logged)
	}
	if got := sample(t, s, `connector_sip_not_sip_total{transport="udp"}`); got != 300 {
		t.Errorf("datagrams refused as not SIP: %v, want 300", got)
	}
	t.Logf("log growth: %d bytes", len(logged))
	if os.Getenv("PEEK") != "" {
		t.Log(logged)
	}
}

// RFC 3261 §17.2.1: an ACK is never answered. The ACK goes first; the
// first answer read must be the OPTIONS' that follows it.
func TestACKNotAnswered(t *testing.T) {
	leakCheck(t)
	s := startServer(t, testConfig(), newFakeSvc("1001"))
	addr := s.Addr()

	u := newUDPPhone(t, addr)
	u.send(rawRequest("ACK", "UDP", u.c.LocalAddr().String(), addr))
	u.send(rawRequest("OPTIONS", "UDP", u.c.LocalAddr().String(), addr))
	if status, cseq := u.response(); cseq != "1 OPTIONS" {
		t.Fatalf("UDP: first answer %q to %q, want the OPTIONS'", status, cseq)
	}

	p := dialSIP(t, "", addr)
	p.c.Write(rawRequest("ACK", "TCP", p.c.LocalAddr().String(), addr))
	p.c.Write(rawRequest("OPTIONS", "TCP", p.c.LocalAddr().String(), addr))
	if status, cseq, err := p.response(); err != nil || cseq != "1 OPTIONS" {
		t.Fatalf("TCP: first answer %q to %q (%v), want the OPTIONS'", status, cseq, err)
	}
}

// A listener whose serve loop ends before Close turns Health red, naming
// it; Close itself does not.
func TestHealthNamesStoppedListener(t *testing.T) {
	leakCheck(t)
	s := startServer(t, testConfig(), newFakeSvc("1001"))
	if err := s.Health(); err != nil {
		t.Fatalf("Health() = %v while serving", err)
	}
	s.tcpRaw.Close() // under the guard: its Accept fails for good
	waitFor(t, "Health to report sip/tcp", func() bool { return s.Health() != nil })
	if err := s.Health(); !strings.Contains(err.Error(), "sip/tcp") {
		t.Fatalf("Health() = %v, want it to name sip/tcp", err)
	}
	udp := newUDPPhone(t, s.Addr())
	udp.options(s.Addr()) // the others still serve
}

func TestDatagramProblem(t *testing.T) {
	ok := string(rawRequest("OPTIONS", "UDP", "127.0.0.1:5070", "127.0.0.1:5060"))
	tests := []struct {
		name, data string
		want       bool // refused
	}{
		{"request", ok, false},
		{"response", "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nContent-Length: 0\r\n\r\n", false},
		{"leading CRLF", "\r\n" + ok, false},
		{"keep-alive", "\r\n\r\n", false},
		{"LF only", strings.ReplaceAll(ok, "\r\n", "\n"), false},
		{"folded header", strings.Replace(ok, "Max-Forwards: 70", "Subject: a\r\n continued", 1), false},
		{"UTF-8 display name", strings.Replace(ok, "From: <", "From: \"Zoë\" <", 1), false},
		{"binary", strings.Repeat("\xff", 100), true},
		{"binary after a method", "SUBSCRIBE " + strings.Repeat("\xff", 100), true},
		{"no version", "OPTIONS sip:a@b\r\n\r\n", true},
		{"bad method", "OPT<IONS sip:a@b SIP/2.0\r\n\r\n", true},
		{"bad status", "SIP/2.0 2x0 OK\r\n\r\n", true},
		{"no end of headers", strings.TrimSuffix(ok, "\r\n\r\n") + "\r\n", true},
		{"control byte in a header", strings.Replace(ok, "Max-Forwards: 70", "Max-Forwards: 7\x000", 1), true},
		{"header without colon", strings.Replace(ok, "Max-Forwards: 70", "Max-Forwards 70", 1), true},
		{"CSeq without a number", strings.Replace(ok, "CSeq: 1 ", "CSeq: x ", 1), true},
		{"CSeq without a method", strings.Replace(ok, "CSeq: 1 OPTIONS", "CSeq: 1", 1), true},
		{"bad Content-Length", strings.Replace(ok, "Content-Length: 0", "Content-Length: -1", 1), true},
		{"bad compact Content-Length", strings.Replace(ok, "Content-Length: 0", "l: x", 1), true},
		{"bad Max-Forwards", strings.Replace(ok, "Max-Forwards: 70", "Max-Forwards: seventy", 1), true},
		{"invalid UTF-8 in a header", strings.Replace(ok, "Max-Forwards: 70", "Subject: \xc3\x28", 1), true},
		{"binary body is the body's business", ok + "\xff\xfe", false},
	}
	for _, tc := range tests {
		if got := datagramProblem([]byte(tc.data)); (got != "") != tc.want {
			t.Errorf("%s: datagramProblem = %q, want refused %v", tc.name, got, tc.want)
		}
	}
}

func TestTextProblemStream(t *testing.T) {
	tests := []struct {
		name, data string
		want       bool
	}{
		{"text", "SUBSCRIBE sip:a@b SIP/2.0\r\n", false},
		{"rune split at the end", "Zo\xc3", false},
		{"rune split at the start", "\xabtext", false},
		{"binary", "\xff\xff\xff\xff\xff", true},
		{"NUL inside", "abc\x00def", true},
		{"DEL", "abc\x7f", true},
	}
	for _, tc := range tests {
		if got := textProblem([]byte(tc.data), true); (got != "") != tc.want {
			t.Errorf("%s: textProblem = %q, want refused %v", tc.name, got, tc.want)
		}
	}
}

func TestWireExcerpt(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string // substrings
		not        []string
	}{
		{"short", "OPTIONS sip:a@b SIP/2.0", []string{"OPTIONS sip:a@b SIP/2.0"}, nil},
		{"cut before Authorization", "SUBSCRIBE sip:a@b SIP/2.0\r\nAuthorization: Digest response=\"s3cr3t\"\r\n",
			[]string{"SUBSCRIBE", "[redacted]"}, []string{"s3cr3t", "Digest"}},
		{"binary is escaped and bounded", strings.Repeat("\xff", 30<<10), []string{`\xff`, "(30720 bytes)"}, nil},
	}
	for _, tc := range tests {
		got := wireExcerpt([]byte(tc.data))
		if len(got) > logguard.DefaultMaxValueBytes {
			t.Errorf("%s: excerpt of %d bytes, above logguard's %d", tc.name, len(got), logguard.DefaultMaxValueBytes)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", tc.name, got, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(got, n) {
				t.Errorf("%s: %q contains %q", tc.name, got, n)
			}
		}
	}
}

// sip.limits.tcp_* apply live: connections already open stay, new ones
// meet the new caps.
func TestReloadTCPLimits(t *testing.T) {
	leakCheck(t)
	s := startServer(t, testConfig(), newFakeSvc("1001"))
	addr := s.Addr()
	first := dialSIP(t, "", addr)
	second := dialSIP(t, "", addr)
	if !first.served(addr) || !second.served(addr) {
		t.Fatal("not served under the default caps")
	}
	cfg := testConfig()
	cfg.TCPMaxConnectionsPerSource = 1
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if dialSIP(t, "", addr).served(addr) {
		t.Fatal("a connection over the reloaded per-source cap was served")
	}
	if !first.served(addr) || !second.served(addr) {
		t.Fatal("connections open before the reload were dropped")
	}
	if !dialSIP(t, "127.0.0.2", addr).served(addr) {
		t.Fatal("another source was refused")
	}
}
