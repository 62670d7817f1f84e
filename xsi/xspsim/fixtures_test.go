package xspsim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/xmlcheck"
)

// TestFixtures validates the sample documents in testdata/xml/xsi/sim/ with
// xmllint. With XSPSIM_WRITE_FIXTURES=1 it first regenerates them from a
// scripted simulator run (one sample per document kind, plus a raw chunked
// stream body captured in ChunkRandom mode).
func TestFixtures(t *testing.T) {
	dir := filepath.Join(xmlcheck.RepoRoot(t), "testdata", "xml", "xsi", "sim")
	if os.Getenv("XSPSIM_WRITE_FIXTURES") == "1" {
		writeFixtures(t, dir)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.xml"))
	if len(files) == 0 {
		t.Fatal("no fixtures in " + dir + " (generate with XSPSIM_WRITE_FIXTURES=1)")
	}
	var docs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	validateDocs(t, docs)
	// The chunked capture must de-chunk into well-formed documents.
	if raw, err := os.ReadFile(filepath.Join(dir, "stream-random-chunks.http")); err == nil {
		n := 0
		if err := splitDocs(dechunk(t, raw), func([]byte) { n++ }); err != nil || n < 5 {
			t.Errorf("stream capture: %d documents, %v", n, err)
		}
	}
}

func dechunk(t *testing.T, raw []byte) *bytes.Reader {
	t.Helper()
	var out []byte
	for len(raw) > 0 {
		i := bytes.Index(raw, []byte("\r\n"))
		if i < 0 {
			t.Fatal("bad chunk framing")
		}
		var n int
		if _, err := fmt.Sscanf(string(raw[:i]), "%x", &n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		out = append(out, raw[i+2:i+2+n]...)
		raw = raw[i+2+n+2:]
	}
	return bytes.NewReader(out)
}

func writeFixtures(t *testing.T, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	cfg.Chunking = Chunking{Mode: ChunkRandom, Seed: 1, MaxPieces: 4, CoalesceWindow: 20 * time.Millisecond}
	h := newHarness(t, cfg)

	// Chunked stream capture.
	chunks := make(chan []byte, 1000)
	conn := rawChunks(t, h, "fixture-raw", chunks)
	h.subscribe("user/agent1@example.com", "fixture-raw", PkgCallCenterAgent, PkgDoNotDisturb, PkgHotelingGuest,
		PkgCallForwardingAlways, PkgCallForwardingBusy, PkgCallForwardingNoAnswer)
	var framed bytes.Buffer
	var all []byte
	for n := 0; n < 7; {
		select {
		case c := <-chunks:
			fmt.Fprintf(&framed, "%x\r\n%s\r\n", len(c), c)
			all = append(all, c...)
			n = 0
			_ = splitDocs(bytes.NewReader(all), func([]byte) { n++ })
		case <-time.After(5 * time.Second):
			t.Fatal("timeout capturing stream")
		}
	}
	framed.WriteString("0\r\n\r\n")
	conn.Close()
	if err := os.WriteFile(filepath.Join(dir, "stream-random-chunks.http"), framed.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// Scripted scenario over a normal channel.
	ch := h.openChannel("fixture-set", "fixture-app")
	h.subscribe("user/agent2@example.com", "fixture-set", PkgCallCenterAgent)
	ch.ack(ch.next(""))
	plainSub := h.subscribe("user/plain@example.com", "fixture-set", PkgDoNotDisturb, PkgCallForwardingAlways, PkgHotelingGuest)
	for i := 0; i < 3; i++ {
		ch.ack(ch.next(""))
	}
	h.mustStatus(200, "PUT", actions("agent2@example.com", "CallCenter"), body("CallCenter", "<agentACDState>Unavailable</agentACDState><agentUnavailableCode>LUNCH</agentUnavailableCode>"))
	h.mustStatus(200, "PUT", actions("plain@example.com", "CallForwardingAlways"), body("CallForwardingAlways", "<active>true</active><forwardToPhoneNumber>tel:+12025550123</forwardToPhoneNumber>"))
	h.mustStatus(200, "PUT", actions("plain@example.com", "DoNotDisturb"), body("DoNotDisturb", "<active>true</active>"))
	h.mustStatus(200, "PUT", actions("plain@example.com", "HotelingGuest"), body("HotelingGuest", "<active>true</active><hostUserId>desk1@example.com</hostUserId>"))
	for i := 0; i < 4; i++ {
		ch.ack(ch.next(""))
	}
	for _, svc := range []string{"DoNotDisturb", "CallForwardingAlways", "CallForwardingBusy", "CallForwardingNoAnswer", "HotelingGuest"} {
		h.mustStatus(200, "GET", actions("plain@example.com", svc), "")
	}
	h.mustStatus(200, "GET", actions("agent1@example.com", "CallCenter"), "")
	h.mustStatus(200, "GET", actions("desk1@example.com", "HotelingHost"), "")
	h.mustStatus(200, "GET", ActionsPrefix+"/user/agent1@example.com/directories/HotelingHosts", "")
	h.mustStatus(200, "GET", ActionsPrefix+"/user/plain@example.com/directories/Enterprise?firstName=*&results=2", "")
	h.mustStatus(200, "GET", ActionsPrefix+"/group/grp1/services/CallCenter/UnavailableCodes", "")
	h.mustStatus(404, "GET", actions("nobody@example.com", "DoNotDisturb"), "")
	h.mustStatus(200, "GET", ActionsPrefix+"/user/agent1@example.com/profile", "")
	h.mustStatus(400, "GET", actions("plain@example.com", "CallCenter"), "")
	h.mustStatus(200, "GET", EventsPrefix+"/subscription?channelSetId=fixture-set", "")
	ch.heartbeat()
	ch.next("ChannelHeartBeat")
	// A subscription of fixture-set: its SubscriptionTerminatedEvent comes
	// on ch (one of fixture-raw's would wait for a channel of that set).
	h.mustStatus(200, "DELETE", EventsPrefix+"/subscription/"+plainSub, "")
	ch.ack(ch.next("SubscriptionEvent:SubscriptionTerminatedEvent"))
	h.mustStatus(200, "DELETE", EventsPrefix+"/channel/"+ch.id, "")
	ch.next("ChannelTerminatedEvent")
	_ = ch.ended()

	h.mu.Lock()
	docs := append([][]byte(nil), h.docs...)
	h.mu.Unlock()
	written := map[string]bool{}
	for _, d := range docs {
		name := fixtureName(t, d)
		if name == "" || written[name] {
			continue
		}
		written[name] = true
		if err := os.WriteFile(filepath.Join(dir, name+".xml"), d, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names := make([]string, 0, len(written))
	for n := range written {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("wrote %d fixtures to %s: %s", len(names), dir, strings.Join(names, ", "))
}

func fixtureName(t *testing.T, d []byte) string {
	r := parse(t, d)
	switch r.Tag {
	case "Event":
		sd := streamDoc{raw: d, root: r}
		k := strings.ReplaceAll(sd.kind(), ":", "-")
		if k == "ChannelTerminatedEvent" {
			k += "-" + text(r, "reason")
		}
		return "event-" + k
	case "Channel", "ChannelHeartBeat", "Subscription", "SubscriptionList", "ChannelSet":
		return "events-" + r.Tag
	case "ErrorInfo":
		return "actions-ErrorInfo-" + text(r, "errorCode")
	default:
		return "actions-" + r.Tag
	}
}
