package xspsim

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestRequestLog proves Requests returns what clients sent, in order, with
// the answer's status: unauthenticated requests are not logged, bodies are
// cut at 4 KiB, the ring keeps the newest RequestLogSize requests, and
// ClearRequests empties it.
func TestRequestLog(t *testing.T) {
	cfg := baseConfig()
	cfg.RequestLogSize = 4
	h := newHarness(t, cfg)
	h.reqAuth("GET", actions("plain@example.com", "DoNotDisturb"), "", "intruder", "x") // 401, not logged
	dnd := body("DoNotDisturb", "<active>true</active>")
	h.mustStatus(200, "PUT", actions("plain@example.com", "DoNotDisturb"), dnd)
	h.mustStatus(200, "GET", ActionsPrefix+"/group/grp1/services/CallCenter/UnavailableCodes?enterpriseId=ent1", "")
	big := body("DoNotDisturb", "<active>true</active><!--"+strings.Repeat("x", 5000)+"-->")
	h.mustStatus(200, "PUT", actions("plain@example.com", "DoNotDisturb"), big)
	h.mustStatus(404, "GET", actions("ghost@example.com", "DoNotDisturb"), "")

	got := h.s.Requests()
	want := []string{
		"PUT " + actions("plain@example.com", "DoNotDisturb") + " ? 200",
		"GET " + ActionsPrefix + "/group/grp1/services/CallCenter/UnavailableCodes ?enterpriseId=ent1 200",
		"PUT " + actions("plain@example.com", "DoNotDisturb") + " ? 200",
		"GET " + actions("ghost@example.com", "DoNotDisturb") + " ? 404",
	}
	if len(got) != len(want) {
		t.Fatalf("%d requests logged, want %d: %+v", len(got), len(want), got)
	}
	for i, r := range got {
		if s := fmt.Sprintf("%s %s ?%s %d", r.Method, r.Path, r.Query, r.Status); s != want[i] {
			t.Errorf("request %d: %s, want %s", i, s, want[i])
		}
		if i > 0 && r.Time.Before(got[i-1].Time) {
			t.Errorf("request %d logged before the one it follows", i)
		}
	}
	if string(got[0].Body) != dnd || got[0].BodyTruncated {
		t.Errorf("body %q (truncated %v), want %q", got[0].Body, got[0].BodyTruncated, dnd)
	}
	if len(got[2].Body) != requestLogBodyMax || !got[2].BodyTruncated || !strings.HasPrefix(big, string(got[2].Body)) {
		t.Errorf("big body: %d bytes, truncated %v", len(got[2].Body), got[2].BodyTruncated)
	}
	got[0].Body[0] = 'X' // a copy: the log is unchanged
	if h.s.Requests()[0].Body[0] != '<' {
		t.Error("Requests returned the log's own body")
	}

	// One more: the oldest goes.
	h.mustStatus(200, "GET", ActionsPrefix+"/user/plain@example.com/profile", "")
	got = h.s.Requests()
	if len(got) != 4 || got[0].Path != want[1][4:strings.Index(want[1], " ?")] || got[3].Path != ActionsPrefix+"/user/plain@example.com/profile" {
		t.Errorf("after wrapping: %+v", got)
	}

	h.s.ClearRequests()
	if n := len(h.s.Requests()); n != 0 {
		t.Errorf("%d requests after ClearRequests", n)
	}
	for i := 0; i < 6; i++ { // fills and wraps again after the clear
		h.mustStatus(200, "GET", actions("agent1@example.com", "DoNotDisturb")+fmt.Sprintf("?n=%d", i), "")
	}
	got = h.s.Requests()
	if len(got) != 4 || got[0].Query != "n=2" || got[3].Query != "n=5" || got[3].Status != 200 {
		t.Errorf("after clear and wrap: %+v", got)
	}

	// A stream's status is there while it runs; negative size logs nothing.
	ch := h.openChannel("set-r", "csta-gw")
	ch.heartbeat()
	ch.next("ChannelHeartBeat")
	got = h.s.Requests()
	if r := got[len(got)-2]; r.Method != "POST" || r.Path != AsyncEventsPrefix+"/channel" || r.Status != 200 || !strings.Contains(string(r.Body), "set-r") {
		t.Errorf("channel request: %+v", r)
	}
	cfg.RequestLogSize = -1
	off := newHarness(t, cfg)
	off.mustStatus(200, "PUT", actions("plain@example.com", "DoNotDisturb"), dnd)
	if n := len(off.s.Requests()); n != 0 {
		t.Errorf("RequestLogSize -1 logged %d", n)
	}
}

// TestRequestChange: an Actions service PUT reads as "<user> <service>
// <what it asks>", from the log of real requests; anything else is "".
func TestRequestChange(t *testing.T) {
	h := newHarness(t, baseConfig())
	nilHost := `<hostUserId xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>`
	for _, tt := range []struct {
		method, path, body string
		want               string
	}{
		{"PUT", actions("agent1@example.com", "CallCenter"), body("CallCenter", "<agentACDState>Unavailable</agentACDState><agentUnavailableCode>LUNCH</agentUnavailableCode>"),
			"agent1@example.com CallCenter Unavailable"},
		{"PUT", actions("desk1@example.com", "CallForwardingAlways"), body("CallForwardingAlways", "<active>true</active><forwardToPhoneNumber>+12025550101</forwardToPhoneNumber>"),
			"desk1@example.com CallForwardingAlways true +12025550101"},
		{"PUT", actions("desk1@example.com", "CallForwardingAlways"), body("CallForwardingAlways", "<active>false</active>"),
			"desk1@example.com CallForwardingAlways false"},
		{"PUT", actions("agent1@example.com", "HotelingGuest"), body("HotelingGuest", "<active>true</active><hostUserId>desk1@example.com</hostUserId>"),
			"agent1@example.com HotelingGuest desk1@example.com"},
		{"PUT", actions("agent1@example.com", "HotelingGuest"), body("HotelingGuest", nilHost),
			"agent1@example.com HotelingGuest nil"},
		{"PUT", actions("desk1@example.com", "HotelingHost"), body("HotelingHost", "<removeGuestAssociation>true</removeGuestAssociation>"),
			"desk1@example.com HotelingHost"},
		{"PUT", actions("plain@example.com", "DoNotDisturb"), "not xml", // refused, still a PUT the client sent
			"plain@example.com DoNotDisturb"},
		{"GET", actions("plain@example.com", "DoNotDisturb"), "", ""},
		{"PUT", ActionsPrefix + "/user/plain@example.com/profile", "", ""},
	} {
		h.s.ClearRequests()
		h.req(tt.method, tt.path, tt.body)
		reqs := h.s.Requests()
		if len(reqs) != 1 {
			t.Fatalf("%s %s: %d requests logged", tt.method, tt.path, len(reqs))
		}
		if got := reqs[0].Change(); got != tt.want {
			t.Errorf("%s %s %s: Change %q, want %q", tt.method, tt.path, tt.body, got, tt.want)
		}
		wantChanges := []string{tt.want}
		if tt.want == "" {
			wantChanges = nil
		}
		if got := Changes(reqs); !slices.Equal(got, wantChanges) {
			t.Errorf("Changes %q, want %q", got, wantChanges)
		}
	}

	// An Events PUT (a heartbeat) is no change.
	h.s.ClearRequests()
	ch := h.openChannel("set-c", "csta-gw")
	ch.heartbeat()
	ch.next("ChannelHeartBeat")
	if got := Changes(h.s.Requests()); got != nil {
		t.Errorf("channel and heartbeat read as changes %q", got)
	}
}
