package xspsim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawChunks opens a channel over a plain TCP connection and returns every
// HTTP chunk of the streaming response (so chunk boundaries are visible).
func rawChunks(t *testing.T, h *harness, setID string, chunks chan<- []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", h.s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	b := body("Channel", "<channelSetId>"+setID+"</channelSetId><expires>3600</expires><applicationId>chunk-app</applicationId>")
	auth := base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPass))
	fmt.Fprintf(conn, "POST %s/channel HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s",
		AsyncEventsPrefix, h.s.Addr(), auth, len(b), b)
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("status %q %v", status, err)
	}
	chunked := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.EqualFold(strings.TrimSpace(line), "Transfer-Encoding: chunked") {
			chunked = true
		}
		if line == "\r\n" {
			break
		}
	}
	if !chunked {
		t.Fatal("channel response is not chunked")
	}
	go func() {
		defer close(chunks)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			n, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(line, ";", 2)[0]), 16, 64)
			if err != nil || n == 0 {
				return
			}
			c := make([]byte, n)
			if _, err := io.ReadFull(br, c); err != nil {
				return
			}
			if _, err := br.Discard(2); err != nil {
				return
			}
			chunks <- c
		}
	}()
	return conn
}

// TestChunking proves the stream framing knobs: one document per chunk,
// documents split over chunks, several documents in one chunk, and seeded
// random framing — and that the de-chunked stream always splits back into
// the same well-formed documents.
func TestChunking(t *testing.T) {
	tests := []struct {
		name  string
		mode  ChunkMode
		check func(t *testing.T, chunks [][]byte, docs int)
	}{
		{"whole", ChunkWhole, func(t *testing.T, chunks [][]byte, docs int) {
			for _, c := range chunks {
				if bytes.Count(c, []byte("<?xml")) != 1 || !bytes.HasPrefix(c, []byte("<?xml")) {
					t.Errorf("chunk is not exactly one document: %q", c)
				}
			}
		}},
		{"split", ChunkSplit, func(t *testing.T, chunks [][]byte, docs int) {
			if len(chunks) < 2*docs {
				t.Errorf("%d chunks for %d documents", len(chunks), docs)
			}
		}},
		{"coalesce", ChunkCoalesce, func(t *testing.T, chunks [][]byte, docs int) {
			multi := false
			for _, c := range chunks {
				if bytes.Count(c, []byte("<?xml")) > 1 {
					multi = true
				}
			}
			if !multi {
				t.Errorf("no chunk carries several documents (%d chunks)", len(chunks))
			}
		}},
		{"random", ChunkRandom, func(t *testing.T, chunks [][]byte, docs int) {}},
		{"random-newline", ChunkRandom + 100, func(t *testing.T, chunks [][]byte, docs int) {
			if !bytes.Contains(bytes.Join(chunks, nil), []byte("</Channel>\n<?xml")) {
				t.Error("separator missing")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			cfg.Chunking = Chunking{Mode: tc.mode, Seed: 42, MaxPieces: 5, CoalesceWindow: 20 * time.Millisecond}
			if tc.mode >= 100 {
				cfg.Chunking.Mode, cfg.Chunking.Separator = tc.mode-100, "\n"
			}
			h := newHarness(t, cfg)
			chunks := make(chan []byte, 1000)
			conn := rawChunks(t, h, "set-c", chunks)
			defer conn.Close()
			h.subscribe("user/agent1@example.com", "set-c", PkgCallCenterAgent, PkgDoNotDisturb, PkgHotelingGuest,
				PkgCallForwardingAlways, PkgCallForwardingBusy, PkgCallForwardingNoAnswer)
			const wantDocs = 7 // Channel + 6 initial events
			var got [][]byte
			var all []byte
			deadline := time.After(5 * time.Second)
			for {
				var docs [][]byte
				_ = splitDocs(bytes.NewReader(all), func(d []byte) { docs = append(docs, d) })
				if len(docs) >= wantDocs {
					if !bytes.Contains(docs[0], []byte("<Channel ")) {
						t.Errorf("first document: %s", docs[0])
					}
					break
				}
				select {
				case c, ok := <-chunks:
					if !ok {
						t.Fatal("stream closed")
					}
					got = append(got, c)
					all = append(all, c...)
				case <-deadline:
					t.Fatalf("timeout: %d chunks, %q", len(got), all)
				}
			}
			tc.check(t, got, wantDocs)
		})
	}
}

// TestFaultLatencyAndErrors proves the Actions latency distribution, per-path
// error rates and 503 + Retry-After overload.
func TestFaultLatencyAndErrors(t *testing.T) {
	cfg := baseConfig()
	cfg.Seed = 7
	h := newHarness(t, cfg)
	dnd := actions("plain@example.com", "DoNotDisturb")

	h.s.SetActionsLatency(Latency{Min: 60 * time.Millisecond, Max: 80 * time.Millisecond})
	start := time.Now()
	h.mustStatus(200, "GET", dnd, "")
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("latency %v", d)
	}
	h.s.ClearFaults()
	start = time.Now()
	h.mustStatus(200, "GET", dnd, "")
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("latency after clear %v", d)
	}

	h.s.SetErrorRate("services/donotdisturb", 1, http.StatusInternalServerError)
	if b := h.mustStatus(500, "GET", dnd, ""); errorCode(t, b) != "5000" {
		t.Errorf("%s", b)
	}
	h.mustStatus(200, "GET", actions("plain@example.com", "CallForwardingAlways"), "")
	h.s.ClearFaults()
	h.s.SetErrorRate("", 0.5, http.StatusServiceUnavailable)
	fails := 0
	for i := 0; i < 40; i++ {
		st, _, hdr := h.req("GET", dnd, "")
		if st == 503 {
			fails++
			if hdr.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		}
	}
	if fails < 5 || fails > 35 {
		t.Errorf("rate 0.5 gave %d/40 failures", fails)
	}
	h.s.ClearFaults()

	h.s.SetOverload(2, 3*time.Second)
	for i := 0; i < 2; i++ {
		st, b, hdr := h.req("GET", dnd, "")
		if st != 503 || hdr.Get("Retry-After") != "3" || errorCode(t, b) != "5030" {
			t.Errorf("overload %d: %d %q %s", i, st, hdr.Get("Retry-After"), b)
		}
	}
	h.mustStatus(200, "GET", dnd, "")
}

// TestFaultCutChannel proves CutChannel truncates a document mid-stream and
// drops the connection; subscriptions survive.
func TestFaultCutChannel(t *testing.T) {
	h := newHarness(t, baseConfig())
	ch := h.openChannel("set-1", "app")
	h.subscribe("user/plain@example.com", "set-1", PkgDoNotDisturb)
	ch.ack(ch.next("SubscriptionEvent:DoNotDisturbEvent"))
	if err := h.s.CutChannel(ch.id); err != nil {
		t.Fatal(err)
	}
	err := ch.ended()
	if err == nil {
		t.Fatal("cut stream ended cleanly")
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "unexpected") {
		t.Logf("cut error: %v", err)
	}
	if len(h.s.Channels()) != 0 || len(h.s.Subscriptions()) != 1 {
		t.Errorf("channels %v subs %v", h.s.Channels(), h.s.Subscriptions())
	}
	if err := h.s.CutChannel("nope"); err == nil || !strings.HasPrefix(err.Error(), "xspsim: ") {
		t.Errorf("unknown channel: %v", err)
	}
	// The half-document that was cut is not a conformance sample.
	h.mu.Lock()
	h.docs = h.docs[:len(h.docs)-1]
	h.mu.Unlock()
}

// TestFaultKillRestart proves Kill drops connections abruptly, keeps
// AS state (subscriptions, service settings), and Restart serves again on
// the same address with backlogged events delivered to the new channel.
func TestFaultKillRestart(t *testing.T) {
	h := newHarness(t, baseConfig())
	addr := h.s.Addr()
	ch := h.openChannel("set-1", "app")
	h.subscribe("user/plain@example.com", "set-1", PkgDoNotDisturb)
	ch.ack(ch.next("SubscriptionEvent:DoNotDisturbEvent"))
	h.s.Kill()
	if err := ch.ended(); err == nil {
		t.Error("killed stream ended cleanly")
	}
	if _, err := h.c.Get(h.base + actions("plain@example.com", "DoNotDisturb")); err == nil {
		t.Error("request succeeded while killed")
	}
	_ = h.s.PortalSetDND("plain@example.com", true) // while down: goes to the backlog
	if err := h.s.Restart(); err != nil {
		t.Fatal(err)
	}
	if h.s.Addr() != addr {
		t.Errorf("address changed %s → %s", addr, h.s.Addr())
	}
	ch2 := h.openChannel("set-1", "app")
	d := ch2.next("SubscriptionEvent:DoNotDisturbEvent")
	if text(d.root, "eventData/info/active") != "true" || text(d.root, "channelId") != ch2.id {
		t.Errorf("%s", d.raw)
	}
	ch2.ack(d)
	if err := h.s.Restart(); err == nil {
		t.Error("restart without kill succeeded")
	}
}

// TestHandlerWithHTTPTest proves Handler() works under httptest and that
// Shutdown stops the simulator's goroutines (goleak in TestMain).
func TestHandlerWithHTTPTest(t *testing.T) {
	s := New(Config{Users: baseUsers()}, nil)
	ts := httptest.NewServer(s.Handler())
	defer func() {
		ts.Close()
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	resp, err := http.Get(ts.URL + actions("plain@example.com", "DoNotDisturb"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d (no auth configured)", resp.StatusCode)
	}
	bad := New(Config{Listen: "0.0.0.0:0"}, nil)
	if err := bad.Start(); err == nil || !strings.HasPrefix(err.Error(), "xspsim: ") {
		t.Errorf("non-loopback listen: %v", err)
	}
	if err := bad.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestRequestReadTimeout proves a stalled request body is cut off, while a
// channel stream outlives the read timeout.
func TestRequestReadTimeout(t *testing.T) {
	cfg := baseConfig()
	cfg.RequestReadTimeout = 100 * time.Millisecond
	h := newHarness(t, cfg)
	ch := h.openChannel("set-1", "app")

	conn, err := net.Dial("tcp", h.s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	auth := base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPass))
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\nContent-Length: 100\r\n\r\n<DoNot", actions("plain@example.com", "DoNotDisturb"), auth)
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(status, " 400 ") {
		t.Errorf("stalled body: %q %v", status, err)
	}

	time.Sleep(300 * time.Millisecond)
	ch.heartbeat()
	ch.next("ChannelHeartBeat")
}

// TestMultiXSPAffinity proves XSPs share AS state but a channel's heartbeats
// and event responses are 404 on any XSP other than the one holding the
// stream, and that killing one XSP leaves the others serving.
func TestMultiXSPAffinity(t *testing.T) {
	h := newHarness(t, baseConfig())
	x1, err := h.s.AddXSP()
	if err != nil || x1 != 1 {
		t.Fatalf("AddXSP: %d %v", x1, err)
	}
	on := func(i int) { h.base = h.s.URLOf(i) }

	on(0)
	ch := h.openChannel("set-1", "app")
	h.subscribe("user/plain@example.com", "set-1", PkgDoNotDisturb)
	ev := ch.next("SubscriptionEvent:DoNotDisturbEvent")

	on(1)
	h.mustStatus(404, "PUT", EventsPrefix+"/channel/"+ch.id+"/heartbeat", "")
	h.mustStatus(404, "PUT", EventsPrefix+"/channel/"+ch.id, body("Channel", "<expires>3600</expires>"))
	h.mustStatus(404, "POST", EventsPrefix+"/channel/eventresponse",
		body("EventResponse", "<eventID>"+text(ev.root, "eventID")+"</eventID><statusCode>200</statusCode><reason>OK</reason>"))
	// Actions on XSP 1 reach the channel on XSP 0.
	h.mustStatus(200, "PUT", actions("plain@example.com", "DoNotDisturb"), body("DoNotDisturb", "<active>true</active>"))
	on(0)
	ch.ack(ev)
	ch.ack(ch.next("SubscriptionEvent:DoNotDisturbEvent"))
	ch.heartbeat()
	ch.next("ChannelHeartBeat")

	if err := h.s.KillXSP(0); err != nil {
		t.Fatal(err)
	}
	if err := ch.ended(); err == nil {
		t.Error("killed XSP ended the stream cleanly")
	}
	_ = h.s.PortalSetDND("plain@example.com", false)
	on(1)
	ch1 := h.openChannel("set-1", "app")
	if d := ch1.next("SubscriptionEvent:DoNotDisturbEvent"); text(d.root, "eventData/info/active") != "false" {
		t.Errorf("%s", d.raw)
	} else {
		ch1.ack(d)
	}
	if got := h.s.Channels(); len(got) != 1 || got[0].XSP != 1 {
		t.Errorf("channels %+v", got)
	}
	if err := h.s.RestartXSP(0); err != nil {
		t.Fatal(err)
	}
	on(0)
	h.mustStatus(200, "GET", actions("plain@example.com", "DoNotDisturb"), "")
	if err := h.s.RestartXSP(1); err == nil {
		t.Error("restart of a live XSP succeeded")
	}
}

// TestFaultKillAfter: an armed KillAfter lets other requests through, then
// applies the matching one and kills every XSP instead of answering it;
// Restart serves again.
func TestFaultKillAfter(t *testing.T) {
	h := newHarness(t, baseConfig())
	dnd := actions("plain@example.com", "DoNotDisturb")
	killed := h.s.KillAfter("PUT", "services/donotdisturb")
	h.mustStatus(200, "GET", dnd, "") // not the method: served, no kill
	select {
	case <-killed:
		t.Fatal("killed by a GET")
	default:
	}
	r, _ := http.NewRequest("PUT", h.base+dnd, strings.NewReader(`<DoNotDisturb xmlns="http://schema.broadsoft.com/xsi"><active>true</active></DoNotDisturb>`))
	r.SetBasicAuth(testUser, testPass)
	if resp, err := h.c.Do(r); err == nil {
		resp.Body.Close()
		t.Errorf("the matching request was answered %d", resp.StatusCode)
	}
	select {
	case <-killed:
	case <-time.After(10 * time.Second):
		t.Fatal("not killed 10 s after the matching request")
	}
	if snap, err := h.s.Snapshot("plain@example.com"); err != nil || !snap.DND {
		t.Fatalf("the matching request was not applied: %+v %v", snap, err)
	}
	if _, err := h.c.Get(h.base + dnd); err == nil {
		t.Error("request succeeded after the kill")
	}
	if err := h.s.Restart(); err != nil {
		t.Fatal(err)
	}
	h.mustStatus(200, "PUT", dnd, `<DoNotDisturb xmlns="http://schema.broadsoft.com/xsi"><active>false</active></DoNotDisturb>`) // disarmed
	if err := h.s.Restart(); err == nil {
		t.Error("a second kill after one arming")
	}
}
