package csta

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/broadworks-connector/connector/internal/testcert"
)

func wsServer(t *testing.T, s *Server) string {
	mux := http.NewServeMux()
	mux.Handle("/csta", s.WebSocketHandler())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/csta"
}

func wsDial(t *testing.T, url string) *websocket.Conn {
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func wsRequest(t *testing.T, ws *websocket.Conn, invokeID int, xml string) Frame {
	t.Helper()
	b, _ := AppendFrame(nil, invokeID, []byte(xml))
	if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		t.Fatal(err)
	}
	return wsRead(t, ws)
}

func wsRead(t *testing.T, ws *websocket.Conn) Frame {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if typ != websocket.BinaryMessage {
		t.Fatalf("message type %d, want binary", typ)
	}
	f, err := ParseFrame(msg, MaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestWebSocketSessionRequestsAndEvents(t *testing.T) {
	svc := newFakeService("4711")
	cfg := testConfig()
	s := NewServer(cfg, svc, testLogger(t))
	svc.publish = s.Publish
	url := wsServer(t, s)
	t.Cleanup(func() { s.Shutdown(t.Context()) })

	ws := wsDial(t, url)
	if f := wsRequest(t, ws, 1, startEd6); parseRoot(t, f.XML).Tag != "StartApplicationSessionPosResponse" || f.InvokeID != 1 {
		t.Fatalf("session over WebSocket answered %04d %s", f.InvokeID, f.XML)
	}
	wsRequest(t, ws, 2, `<MonitorStart `+ns6+`><monitorObject><deviceObject>4711</deviceObject></monitorObject></MonitorStart>`)
	if f := wsRequest(t, ws, 3, "not xml"); errorOf(parseRoot(t, f.XML)) != "operation/generic" {
		t.Fatalf("garbage answered %s", f.XML)
	}
	// A TCP client changes DND; the WebSocket monitor hears it.
	s2 := s
	if err := s2.Start(); err != nil {
		t.Fatal(err)
	}
	tcp := dial(t, s2)
	tcp.request(1, `<SetDoNotDisturb `+ns6+`><device>4711</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`)
	ev := wsRead(t, ws)
	if root := parseRoot(t, ev.XML); ev.InvokeID != EventInvokeID || root.Tag != "DoNotDisturbEvent" {
		t.Fatalf("WebSocket monitor got %04d %s", ev.InvokeID, ev.XML)
	}
}

func TestWebSocketBadFrameCloses(t *testing.T) {
	s := NewServer(testConfig(), nil, testLogger(t))
	url := wsServer(t, s)
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	ws := wsDial(t, url)
	// Header says 100 bytes, the message has 12: the framing cannot be trusted.
	ws.WriteMessage(websocket.BinaryMessage, []byte("\x00\x00\x00\x640001<a/>"))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("server kept a connection whose frame length lied")
	}
}

func TestWebSocketAuthIsPerListener(t *testing.T) {
	cfg := testConfig()
	cfg.WebSocketAuth = Auth{Mode: "password", UserName: "web", Password: "pw"}
	s := NewServer(cfg, newFakeService("4711"), testLogger(t))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	url := wsServer(t, s)
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	// TCP has no auth configured: requests work at once.
	if name, _ := dial(t, s).request(1, `<GetDoNotDisturb `+ns6+`><device>4711</device></GetDoNotDisturb>`); name != "GetDoNotDisturbResponse" {
		t.Fatalf("TCP without auth answered %s", name)
	}
	ws := wsDial(t, url)
	if f := wsRequest(t, ws, 1, `<GetDoNotDisturb `+ns6+`><device>4711</device></GetDoNotDisturb>`); errorOf(parseRoot(t, f.XML)) != "security/securityInfoViolated" {
		t.Fatalf("WebSocket before login answered %s", f.XML)
	}
	login := strings.Replace(strings.Replace(loginPlain, "%s", "web", 1), "%s", "pw", 1)
	if f := wsRequest(t, ws, 2, login); parseRoot(t, f.XML).Tag != "StartApplicationSessionPosResponse" {
		t.Fatalf("WebSocket login answered %s", f.XML)
	}
}

func TestTLSListener(t *testing.T) {
	certFile, keyFile, pool := testcert.Write(t)
	cfg := testConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile = certFile, keyFile
	s := startServer(t, cfg, newFakeService("4711"))
	nc, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, fr: NewFrameReader(nc, MaxFrameSize)}
	c.openSession(1, startEd6)
	// A plain-text client on the TLS port gets no CSTA service.
	plain := dial(t, s)
	plain.send(1, `<RequestSystemStatus/>`)
	plain.expectClosed()

	bad := testConfig()
	bad.TLSCertFile, bad.TLSKeyFile = keyFile, certFile
	if err := NewServer(bad, nil, nil).Start(); err == nil {
		t.Fatal("Start accepted a swapped certificate and key")
	}
}

// zultysMessage lays out a request as a Zultys MX client does (csta-to-tapi's
// ZultysPacketCodec.Encode): the length of the base64 header as one
// character, the base64 of the 8-byte header, the XML. Written out here
// rather than with AppendTextFrame, so that the test does not check the
// code with itself.
func zultysMessage(invokeID int, xml string) []byte {
	h := []byte{0, 0, byte((len(xml) + 8) >> 8), byte(len(xml) + 8)}
	h = fmt.Appendf(h, "%04d", invokeID)
	b64 := base64.StdEncoding.EncodeToString(h)
	return []byte(string(rune(len(b64))) + b64 + xml)
}

// zultysRead reads one message, which must be a Zultys-dialect text message.
func zultysRead(t *testing.T, ws *websocket.Conn) Frame {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if typ != websocket.TextMessage || len(msg) == 0 || msg[0] != 12 {
		t.Fatalf("message type %d %q, want a text message starting with \\x0c", typ, msg)
	}
	f, err := ParseTextFrame(msg, MaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func zultysRequest(t *testing.T, ws *websocket.Conn, invokeID int, xml string) Frame {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, zultysMessage(invokeID, xml)); err != nil {
		t.Fatal(err)
	}
	return zultysRead(t, ws)
}

// TestWebSocketZultysDialect: a client speaking the Zultys MX text dialect
// opens an ECMA-354 session, monitors a device, sets DND on it, and gets
// the answers and the event as text messages in its dialect.
func TestWebSocketZultysDialect(t *testing.T) {
	svc := newFakeService("4711")
	s := NewServer(testConfig(), svc, testLogger(t))
	svc.publish = s.Publish
	url := wsServer(t, s)
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	ws := wsDial(t, url)

	if f := zultysRequest(t, ws, 1, `<?xml version="1.0" encoding="utf-8"?>`+startEd6); f.InvokeID != 1 || parseRoot(t, f.XML).Tag != "StartApplicationSessionPosResponse" {
		t.Fatalf("session answered %04d %s", f.InvokeID, f.XML)
	}
	// The capture-layout fixture: MonitorStart on 4711, invoke ID 0001.
	if err := ws.WriteMessage(websocket.TextMessage, zultysFixture(t, "monitor_start.msg")); err != nil {
		t.Fatal(err)
	}
	mon := zultysRead(t, ws)
	if root := parseRoot(t, mon.XML); mon.InvokeID != 1 || root.Tag != "MonitorStartResponse" || root.FindElement("monitorCrossRefID") == nil {
		t.Fatalf("MonitorStart answered %04d %s", mon.InvokeID, mon.XML)
	}
	crossRef := parseRoot(t, mon.XML).FindElement("monitorCrossRefID").Text()

	if err := ws.WriteMessage(websocket.TextMessage, zultysMessage(42, `<SetDoNotDisturb `+ns6+`><device>4711</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`)); err != nil {
		t.Fatal(err)
	}
	// The answer and the event, in whichever order they were queued.
	var answered, evented bool
	for !answered || !evented {
		f := zultysRead(t, ws)
		root := parseRoot(t, f.XML)
		switch {
		case f.InvokeID == 42 && root.Tag == "SetDoNotDisturbResponse" && !answered:
			answered = true
		case f.InvokeID == EventInvokeID && root.Tag == "DoNotDisturbEvent" && !evented:
			if got := root.FindElement("monitorCrossRefID").Text(); got != crossRef {
				t.Fatalf("DoNotDisturbEvent for monitor %q, want %q", got, crossRef)
			}
			if got := root.FindElement("doNotDisturbOn").Text(); got != "true" {
				t.Fatalf("DoNotDisturbEvent doNotDisturbOn %q", got)
			}
			evented = true
		default:
			t.Fatalf("unexpected %04d %s", f.InvokeID, f.XML)
		}
	}
	// What an MX has beyond CSTA is answered in the dialect, and the
	// connection stays: zultys-csta-go's JSON commands are not XML;
	// csta-to-tapi's proprietary loginRequest is no CSTA service.
	if f := zultysRequest(t, ws, 43, `{"command":"keepalive"}`); f.InvokeID != 43 || errorOf(parseRoot(t, f.XML)) != "operation/generic" {
		t.Fatalf("JSON answered %04d %s", f.InvokeID, f.XML)
	}
	mxLogin := `<loginRequest type="User" platform="3rdParty" version="1.0.0.1" forced="false" dcmode="phone" webToken=""><userName>u</userName><pwd>p</pwd></loginRequest>`
	if f := zultysRequest(t, ws, 0, mxLogin); f.InvokeID != 0 || errorOf(parseRoot(t, f.XML)) != "operation/serviceNotSupported" {
		t.Fatalf("loginRequest answered %04d %s", f.InvokeID, f.XML)
	}
	if f := zultysRequest(t, ws, 44, `<GetDoNotDisturb `+ns6+`><device>4711</device></GetDoNotDisturb>`); parseRoot(t, f.XML).FindElement("doNotDisturbOn").Text() != "true" {
		t.Fatalf("GetDoNotDisturb answered %s", f.XML)
	}
}

// wsClosedWith reads until the server closes and checks the Close frame's
// status code and that its reason contains reason.
func wsClosedWith(t *testing.T, ws *websocket.Conn, code int, reason string) {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := ws.ReadMessage()
		if err == nil {
			continue // an answer sent before the close
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended with %v (last message %q), want a Close frame %d", err, msg, code)
		}
		if ce.Code != code || !strings.Contains(ce.Text, reason) {
			t.Fatalf("closed with %d %q, want %d with %q", ce.Code, ce.Text, code, reason)
		}
		if len(ce.Text) > maxCloseReason {
			t.Fatalf("close reason of %d bytes", len(ce.Text))
		}
		return
	}
}

// TestWebSocketCloseCodes: every way the server ends a WebSocket connection
// says why with an RFC 6455 §7.4.1 status code and a reason.
func TestWebSocketCloseCodes(t *testing.T) {
	type msg struct {
		typ  int
		data []byte
		// answered means the server answers it before the next is sent.
		answered bool
	}
	bin := func(invokeID int, xml string) []byte { b, _ := AppendFrame(nil, invokeID, []byte(xml)); return b }
	status := `<RequestSystemStatus ` + ns6 + `/>`
	big := `<RequestSystemStatus ` + ns6 + `/><!--` + strings.Repeat("x", 5000) + `-->`
	// 11 base64 characters leave the text message one byte shorter than
	// the 12-character form: a header of 4097 bytes fits the read cap.
	unpaddedBig := "\x0b" + strings.TrimRight(base64.StdEncoding.EncodeToString([]byte("\x00\x00\x10\x010001")), "=") + strings.Repeat(" ", 4097-8)
	cases := []struct {
		name   string
		cfg    func(*Config)
		send   []msg
		code   int
		reason string
	}{
		{name: "binary header lies about the length", send: []msg{{typ: websocket.BinaryMessage, data: []byte("\x00\x00\x00\x640001<a/>")}},
			code: websocket.CloseProtocolError, reason: "framing error: header says 100 bytes, message has 12"},
		{name: "text header not base64", send: []msg{{typ: websocket.TextMessage, data: []byte("\x0cAAAA*DAwMDE=<a/>")}},
			code: websocket.CloseProtocolError, reason: `framing error: header "AAAA*DAwMDE=" is not base64 of 8 bytes`},
		{name: "text length mismatch", send: []msg{{typ: websocket.TextMessage, data: zultysFixture(t, "set_dnd_length_in_chars.msg")}},
			code: websocket.CloseProtocolError, reason: "header says 190 bytes, message carries 192"},
		{name: "text without the header length character", send: []msg{{typ: websocket.TextMessage, data: []byte("AAAADDAwMDE=<a/>")}},
			code: websocket.CloseProtocolError, reason: "header length character 0x41, want 0x0c"},
		{name: "binary frame after text", send: []msg{
			{typ: websocket.TextMessage, data: zultysMessage(1, status), answered: true},
			{typ: websocket.BinaryMessage, data: bin(2, status)}},
			code: websocket.CloseProtocolError, reason: "binary message on a connection that spoke text"},
		{name: "text message after binary", send: []msg{
			{typ: websocket.BinaryMessage, data: bin(1, status), answered: true},
			{typ: websocket.TextMessage, data: zultysMessage(2, status)}},
			code: websocket.CloseProtocolError, reason: "text message on a connection that spoke binary"},
		{name: "text not UTF-8", send: []msg{{typ: websocket.TextMessage, data: zultysMessage(1, "<a>\xff</a>")}},
			code: websocket.CloseInvalidFramePayloadData, reason: "text message is not UTF-8"},
		{name: "binary over max_frame_bytes", cfg: func(c *Config) { c.MaxFrameBytes = 4096 }, send: []msg{{typ: websocket.BinaryMessage, data: bin(1, big)}},
			code: websocket.CloseMessageTooBig, reason: "message over 4096 bytes (csta.limits.max_frame_bytes)"},
		{name: "text over max_frame_bytes", cfg: func(c *Config) { c.MaxFrameBytes = 4096 }, send: []msg{{typ: websocket.TextMessage, data: zultysMessage(1, big)}},
			code: websocket.CloseMessageTooBig, reason: "message over 4096 bytes (csta.limits.max_frame_bytes)"},
		{name: "text header over max_frame_bytes", cfg: func(c *Config) { c.MaxFrameBytes = 4096 }, send: []msg{{typ: websocket.TextMessage, data: []byte(unpaddedBig)}},
			code: websocket.CloseMessageTooBig, reason: "message of 4097 bytes over 4096 (csta.limits.max_frame_bytes)"},
		{name: "authentication failed", cfg: func(c *Config) { c.WebSocketAuth = Auth{Mode: "password", UserName: "web", Password: "pw"} },
			send: []msg{{typ: websocket.TextMessage, data: zultysMessage(1, login("web", "wrong"))}},
			code: websocket.ClosePolicyViolation, reason: "authentication failed"},
		{name: "no session in time", cfg: func(c *Config) { c.RequireSession, c.SessionStartTimeout = true, 50*time.Millisecond },
			code: websocket.ClosePolicyViolation, reason: "session start timeout"},
		{name: "idle", cfg: func(c *Config) { c.IdleTimeout = 50 * time.Millisecond },
			send: []msg{{typ: websocket.TextMessage, data: zultysMessage(1, status), answered: true}},
			code: websocket.ClosePolicyViolation, reason: "idle timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			s := NewServer(cfg, newFakeService("4711"), testLogger(t))
			url := wsServer(t, s)
			t.Cleanup(func() { s.Shutdown(t.Context()) })
			ws := wsDial(t, url)
			for _, m := range tc.send {
				if err := ws.WriteMessage(m.typ, m.data); err != nil {
					t.Fatal(err)
				}
				if m.answered {
					ws.SetReadDeadline(time.Now().Add(5 * time.Second))
					if typ, _, err := ws.ReadMessage(); err != nil || typ != m.typ {
						t.Fatalf("answer: type %d, %v; want type %d", typ, err, m.typ)
					}
				}
			}
			wsClosedWith(t, ws, tc.code, tc.reason)
		})
	}
}

// TestWebSocketShutdownGoingAway: a server shutdown ends a session with
// ApplicationSessionTerminated, then 1001.
func TestWebSocketShutdownGoingAway(t *testing.T) {
	s := NewServer(testConfig(), newFakeService("4711"), testLogger(t))
	url := wsServer(t, s)
	ws := wsDial(t, url)
	if f := zultysRequest(t, ws, 1, startEd6); parseRoot(t, f.XML).Tag != "StartApplicationSessionPosResponse" {
		t.Fatalf("session answered %s", f.XML)
	}
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(t.Context()) }()
	if f := zultysRead(t, ws); f.InvokeID != EventInvokeID || parseRoot(t, f.XML).Tag != "ApplicationSessionTerminated" {
		t.Fatalf("at shutdown got %04d %s", f.InvokeID, f.XML)
	}
	wsClosedWith(t, ws, websocket.CloseGoingAway, "server shutdown")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
