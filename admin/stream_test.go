package admin_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/broadworks-connector/connector/admin"
)

type wsOptions struct {
	token      string // sent as a bearer header
	queryToken string // sent as ?token=
	origin     string
}

func dialStream(t *testing.T, s *admin.Server, o wsOptions) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	url := "ws://" + s.Addr().String() + "/api/v1/stream"
	if o.queryToken != "" {
		url += "?token=" + o.queryToken
	}
	header := http.Header{}
	if o.token != "" {
		header.Set("Authorization", "Bearer "+o.token)
	}
	if o.origin != "" {
		header.Set("Origin", o.origin)
	}
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, resp, err := dialer.Dial(url, header)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if conn != nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, resp, err
}

func mustDial(t *testing.T, s *admin.Server, o wsOptions) *websocket.Conn {
	t.Helper()
	conn, resp, err := dialStream(t, s, o)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	return conn
}

// message is the union of what the stream sends.
type message struct {
	Kind    string         `json:"kind"`
	Agents  []admin.Agent  `json:"agents"`
	Devices []admin.Device `json:"devices"`
	Phones  []admin.Phone  `json:"phones"`
	Links   []admin.Link   `json:"links"`
	Agent   *admin.Agent   `json:"agent"`
	Link    *admin.Link    `json:"link"`
}

func read(t *testing.T, conn *websocket.Conn) message {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	kind, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if kind != websocket.TextMessage {
		t.Fatalf("message type %d, want text", kind)
	}
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, data)
	}
	return m
}

func fastStream() admin.StreamLimits {
	limits := admin.DefaultStreamLimits()
	limits.WriteWait = time.Second
	return limits
}

// waitMetric polls /metrics until it holds line.
func waitMetric(t *testing.T, c *client, line string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := c.do("GET", "/metrics", testToken, "")
		if strings.Contains(body, line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %q:\n%s", line, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStreamSnapshotThenEventsInOrder(t *testing.T) {
	s, _ := startAPI(t, admin.WithSource(demoSource()))
	for _, tc := range []struct {
		name string
		opts wsOptions
	}{
		{"bearer header", wsOptions{token: testToken}},
		{"query token", wsOptions{queryToken: testToken}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := mustDial(t, s, tc.opts)
			snapshot := read(t, conn)
			if snapshot.Kind != "snapshot" || len(snapshot.Agents) != 2 || snapshot.Agents[0].AgentID != "7001" ||
				len(snapshot.Devices) != 3 || len(snapshot.Phones) != 1 || len(snapshot.Links) != 1 {
				t.Fatalf("snapshot = %+v", snapshot)
			}
			const events = 100
			for i := range events {
				s.Publish(admin.Event{Kind: admin.EventAgent, Agent: &admin.Agent{AgentID: fmt.Sprint(i), State: "ready"}})
			}
			s.Publish(admin.Event{Kind: admin.EventLink, Link: &admin.Link{Server: "x", State: "down"}})
			for i := range events {
				m := read(t, conn)
				if m.Kind != "agent" || m.Agent == nil || m.Agent.AgentID != fmt.Sprint(i) {
					t.Fatalf("event %d = %+v", i, m)
				}
			}
			if m := read(t, conn); m.Kind != "link" || m.Link == nil || m.Link.State != "down" {
				t.Errorf("last event = %+v", m)
			}
		})
	}
}

func TestStreamRefusals(t *testing.T) {
	s, _ := startAPI(t, admin.WithSource(demoSource()), admin.WithAllowedOrigins("https://ops.example.com"))
	host := "http://" + s.Addr().String()
	tests := []struct {
		name   string
		opts   wsOptions
		status int // 0: accepted
	}{
		{"no token", wsOptions{}, 401},
		{"wrong header token", wsOptions{token: "wrong"}, 401},
		{"wrong query token", wsOptions{queryToken: "wrong"}, 401},
		{"wrong header, right query: the header counts", wsOptions{token: "wrong", queryToken: testToken}, 401},
		{"other site's page", wsOptions{token: testToken, origin: "https://evil.example.com"}, 403},
		{"same host page", wsOptions{queryToken: testToken, origin: host}, 0},
		{"allowed origin", wsOptions{queryToken: testToken, origin: "https://ops.example.com"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, resp, err := dialStream(t, s, tt.opts)
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				if m := read(t, conn); m.Kind != "snapshot" {
					t.Errorf("first message %+v", m)
				}
				return
			}
			if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.StatusCode != tt.status {
				t.Errorf("dial = %v %v, want status %d", err, resp, tt.status)
			}
		})
	}
}

func TestStreamMaxClients(t *testing.T) {
	limits := fastStream()
	limits.MaxClients = 1
	s, c := startAPI(t, admin.WithSource(demoSource()), admin.WithStreamLimits(limits))
	first := mustDial(t, s, wsOptions{token: testToken})
	read(t, first)
	_, resp, err := dialStream(t, s, wsOptions{token: testToken})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second client: %v %v, want 503", err, resp)
	}
	waitMetric(t, c, "connector_admin_stream_clients_rejected_total 1")
	first.Close()
	waitMetric(t, c, "connector_admin_stream_clients 0")
	read(t, mustDial(t, s, wsOptions{token: testToken}))
}

func TestStreamDropsSlowClientWithoutBlockingPublish(t *testing.T) {
	limits := fastStream()
	limits.Queue = 4
	limits.WriteWait = 300 * time.Millisecond
	s, c := startAPI(t, admin.WithSource(demoSource()), admin.WithStreamLimits(limits))
	slow := mustDial(t, s, wsOptions{token: testToken}) // never reads
	fast := mustDial(t, s, wsOptions{token: testToken})
	read(t, fast)
	waitMetric(t, c, "connector_admin_stream_clients 2")

	// Far more than loopback socket buffers hold (tcp_rmem and tcp_wmem
	// maxima are a few MiB; a small SO_RCVBUF would stall the drain below on
	// silly-window avoidance, the MSS being 64 KiB): the slow client's writer blocks and
	// its queue fills. The fast one is dropped too, since nobody reads it here.
	big := strings.Repeat("x", 128<<10)
	published := make(chan struct{})
	go func() {
		defer close(published)
		for range 400 {
			s.Publish(admin.Event{Kind: admin.EventAgent, Agent: &admin.Agent{AgentID: "7001", Reason: big}})
		}
	}()
	select {
	case <-published:
	case <-time.After(20 * time.Second):
		t.Fatal("Publish blocked on a slow client")
	}
	waitMetric(t, c, "connector_admin_stream_slow_clients_dropped_total 2")
	waitMetric(t, c, "connector_admin_stream_clients 0")

	// The dropped connection ends.
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	for n := 0; ; n++ {
		if _, _, err := slow.ReadMessage(); err != nil {
			t.Logf("read %d then %v", n, err)
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				t.Fatalf("slow client still connected: %v", err)
			}
			break
		}
	}

	// A client that keeps up is served as before.
	next := mustDial(t, s, wsOptions{token: testToken})
	read(t, next)
	for i := range 20 {
		s.Publish(admin.Event{Kind: admin.EventAgent, Agent: &admin.Agent{AgentID: fmt.Sprint(i)}})
		if m := read(t, next); m.Agent == nil || m.Agent.AgentID != fmt.Sprint(i) {
			t.Fatalf("event %d = %+v", i, m)
		}
	}
}

func TestStreamPingPong(t *testing.T) {
	limits := fastStream()
	limits.PingInterval = 50 * time.Millisecond
	limits.PongWait = 500 * time.Millisecond
	s, c := startAPI(t, admin.WithSource(demoSource()), admin.WithStreamLimits(limits))

	// A client reading (and so answering pings) outlives several PongWaits.
	alive := mustDial(t, s, wsOptions{token: testToken})
	pongs := make(chan string, 1)
	alive.SetPongHandler(func(data string) error {
		select {
		case pongs <- data:
		default:
		}
		return nil
	})
	messages := make(chan message, 10)
	readErr := make(chan error, 1)
	go func() {
		for {
			_, data, err := alive.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			var m message
			json.Unmarshal(data, &m)
			messages <- m
		}
	}()
	if m := <-messages; m.Kind != "snapshot" {
		t.Fatalf("first message %+v", m)
	}
	// The server answers the client's pings too.
	if err := alive.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case data := <-pongs:
		if data != "hello" {
			t.Errorf("pong %q", data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
	// A client that never reads never pongs and is dropped.
	silent := mustDial(t, s, wsOptions{token: testToken})
	waitMetric(t, c, "connector_admin_stream_clients 2")
	waitMetric(t, c, "connector_admin_stream_clients 1")
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := silent.ReadMessage(); err != nil {
			break
		}
	}

	time.Sleep(2 * limits.PongWait) // the reading client outlives several
	s.Publish(admin.Event{Kind: admin.EventLink, Link: &admin.Link{Server: "x", State: "up"}})
	select {
	case m := <-messages:
		if m.Kind != "link" {
			t.Errorf("event %+v", m)
		}
	case err := <-readErr:
		t.Fatalf("reading client dropped: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	alive.Close()
	<-readErr
}

func TestStreamShutdownClosesClients(t *testing.T) {
	s := startServer(t, admin.WithToken(testToken), admin.WithSource(demoSource()))
	conn := mustDial(t, s, wsOptions{token: testToken})
	read(t, conn)
	shutdown(t, s)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("after Shutdown: %v, want close 1001", err)
	}
	s.Publish(admin.Event{Kind: admin.EventAgent}) // harmless after Shutdown
}

func TestPublishWithoutClients(t *testing.T) {
	s := admin.New("127.0.0.1:0", admin.WithToken(testToken))
	s.Publish(admin.Event{Kind: admin.EventAgent, Agent: &admin.Agent{AgentID: "1"}})
}
