package csta

import (
	"crypto/tls"
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
