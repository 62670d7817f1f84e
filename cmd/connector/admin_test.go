package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/broadworks-connector/connector/admin"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/internal/testcert"
)

const testAdminToken = "test-admin-token-0123456789" // startRun's admin.token

func adminGet(t *testing.T, addr, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, body
}

// TestAdminAPI: the admin surface of `connector run` on the demo
// directory: nothing but /healthz without the token; agents, devices and
// the free-desk picker from the live view; a forced logout; and the live
// stream showing an agent log in at a hot desk from a CTI client.
func TestAdminAPI(t *testing.T) {
	addrs := startRun(t, "", "", "")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	for _, path := range []string{"/readyz", "/metrics", "/api/v1/agents", "/api/v1/devices", "/api/v1/desks/free", "/api/v1/links"} {
		if code, _ := adminGet(t, addrs.admin, path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", path, code)
		}
		if code, _ := adminGet(t, addrs.admin, path, "wrong-token-0123456789"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, code)
		}
	}
	if code, _ := adminGet(t, addrs.admin, "/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	// Ready once the scope's subscription is in place too (it may come
	// after the start-up recovery).
	waitFor(t, "/readyz 200", func() bool {
		code, _ := adminGet(t, addrs.admin, "/readyz", testAdminToken)
		return code == http.StatusOK
	})
	if code, body := adminGet(t, addrs.admin, "/metrics", testAdminToken); code != http.StatusOK || !strings.Contains(string(body), "connector_xsi_links_up 1") {
		t.Errorf("/metrics: %d, connector_xsi_links_up 1 missing", code)
	}

	var agents []admin.Agent
	code, body := adminGet(t, addrs.admin, "/api/v1/agents", testAdminToken)
	if err := json.Unmarshal(body, &agents); code != http.StatusOK || err != nil || len(agents) != 4 {
		t.Fatalf("agents: %d %v %s", code, err, body)
	}
	for _, a := range agents {
		if a.State != "loggedOff" || a.Desk != "" {
			t.Errorf("demo agent at the start: %+v", a)
		}
	}
	var free []admin.Device
	if _, body := adminGet(t, addrs.admin, "/api/v1/desks/free", testAdminToken); json.Unmarshal(body, &free) != nil || len(free) != 2 {
		t.Errorf("free desks at the start (no phone registered: every desk without a guest): %s", body)
	}

	// The live stream, then a hot-desk login from a CTI client.
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, _, err := dialer.DialContext(ctx, "ws://"+addrs.admin+"/api/v1/stream?token="+testAdminToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var snap struct {
		Kind   string
		Agents []admin.Agent
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := ws.ReadJSON(&snap); err != nil || snap.Kind != "snapshot" || len(snap.Agents) != 4 {
		t.Fatalf("first stream message: %+v %v", snap, err)
	}
	cti, err := cticlient.Dial(ctx, addrs.csta)
	if err != nil {
		t.Fatal(err)
	}
	defer cti.Close()
	if _, err := cti.SetAgentState(ctx, "desk1", csta.ReqLoggedOn, "agent1", ""); err != nil {
		t.Fatal(err)
	}
	sawAgent, sawDesk := false, false
	for !sawAgent || !sawDesk {
		var ev admin.Event
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := ws.ReadJSON(&ev); err != nil {
			t.Fatalf("stream: %v (agent seen %v, desk seen %v)", err, sawAgent, sawDesk)
		}
		switch {
		case ev.Kind == admin.EventAgent && ev.Agent.AgentID == "agent1" && ev.Agent.Desk == "desk1":
			sawAgent = true
		case ev.Kind == admin.EventDevice && ev.Device.DeviceID == "desk1" && ev.Device.GuestAgentID == "agent1":
			sawDesk = true
		}
	}
	if _, body := adminGet(t, addrs.admin, "/api/v1/desks/free", testAdminToken); json.Unmarshal(body, &free) != nil || len(free) != 1 || free[0].DeviceID != "desk2" {
		t.Errorf("free desks with agent1 at desk1: %s", body)
	}
	// The CTI request is counted, with its result.
	if _, body := adminGet(t, addrs.admin, "/metrics", testAdminToken); !strings.Contains(string(body), `connector_cti_requests_total{request="SetAgentState",result="ok"} 1`) ||
		!strings.Contains(string(body), `connector_cti_request_seconds_count{request="SetAgentState"} 1`) {
		t.Errorf("/metrics lacks the login request:\n%s", grepLines(string(body), "connector_cti_"))
	}
	// Every part's families, after that hot-desk login.
	if _, body := adminGet(t, addrs.admin, "/metrics", testAdminToken); !checkMetrics(t, string(body), []string{
		`connector_hotdesk_sequences_total\{op="login",result="ok"\} 1`,
		`connector_hotdesk_steps_total\{result="ok",step="associate"\} 1`,
		`connector_hotdesk_step_seconds_count\{step="associate"\} 1`,
		`connector_hotdesk_sequence_seconds_count\{op="login"\} 1`,
		`connector_hotdesk_sequences_waiting 0`,
		`connector_hotdesk_sequences_running 0`,
		`connector_xsi_actions_requests_total\{method="PUT",operation="services/HotelingGuest",status="2xx"\} [1-9]`,
		`connector_xsi_actions_request_seconds_count\{method="PUT",operation="services/CallCenter"\} [1-9]`,
		`connector_xsi_actions_in_flight\{xsp="http://[^"]+"\} 0`,
		`connector_xsi_actions_failovers_total\{xsp="http://[^"]+"\} 0`,
		`connector_xsi_events_received_total\{xsp="http://[^"]+"\} [1-9]`,
		`connector_xsi_events_acked_total\{xsp="http://[^"]+"\} [1-9]`,
		`connector_xsi_events_duplicates_total\{xsp="http://[^"]+"\} \d`,
		`connector_xsi_events_ack_queue\{xsp="http://[^"]+"\} \d`,
		`connector_xsi_events_buffer \d`,
		`connector_xsi_channel_state\{state="up",xsp="http://[^"]+"\} 1`,
		`connector_gateway_hotdesk_guests 1`,
		`connector_gateway_agents\{state="Unavailable"\} 1`,
		`connector_gateway_journal_queue \d`,
		`connector_gateway_journal_write_failures_total 0`,
		`connector_sip_subscriptions\{event="as-feature-event"\} 0`,
		`connector_sip_notify_queue 0`,
		`connector_sip_notifies_total`,
		`connector_sip_subscribes_refused_total`,
		`connector_cti_write_queue_frames \d`,
		`connector_cti_write_queue_max_frames \d`,
	}) {
		t.Logf("/metrics:\n%s", grepLines(string(body), "connector_"))
	}

	// A supervisor logs agent1 out; logging out again is a conflict.
	post := func() int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addrs.admin+"/api/v1/agents/agent1/logout", nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := post(); code != http.StatusOK {
		t.Fatalf("forced logout: %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := adminGet(t, addrs.admin, "/api/v1/agents/agent1", testAdminToken)
		var a admin.Agent
		if json.Unmarshal(body, &a) == nil && a.State == "loggedOff" && a.Desk == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent1 after the forced logout: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := post(); code != http.StatusConflict {
		t.Errorf("second forced logout: %d, want 409", code)
	}
}

// TestJournalAcrossACrash: an agent logs in at a desk, the connector is
// killed (SIGKILL, no clean shutdown), and the restarted connector's
// journal still answers who was at the desk then; the association, which
// BroadWorks (the embedded simulator, restarted with it) no longer shows,
// is closed as ended while the connector was not watching.
func TestJournalAcrossACrash(t *testing.T) {
	dir := t.TempDir()
	first := startRunIn(t, dir, "", "", "")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cti, err := cticlient.Dial(ctx, first.csta)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cti.SetAgentState(ctx, "desk1", csta.ReqLoggedOn, "agent1", ""); err != nil {
		t.Fatal(err)
	}
	at := time.Now() // the login is answered: its association is on record
	cti.Close()
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.exited

	second := startRunIn(t, dir, "", "", "")
	code, body := adminGet(t, second.admin, "/api/v1/journal/desk/desk1?at="+at.UTC().Format(time.RFC3339Nano), testAdminToken)
	var a admin.Association
	if err := json.Unmarshal(body, &a); code != http.StatusOK || err != nil || a.AgentID != "agent1" || a.DeviceID != "desk1" {
		t.Fatalf("who was at desk1 at %s: %d %s", at.Format(time.RFC3339Nano), code, body)
	}
	if a.End.IsZero() || a.EndedBy != "unknown" {
		t.Errorf("the association after the crash: %+v, want ended as unknown (BroadWorks no longer shows it)", a)
	}
	from, to := at.Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	code, body = adminGet(t, second.admin, "/api/v1/journal/agent/agent1?from="+from+"&to="+to, testAdminToken)
	var list []admin.Association
	if err := json.Unmarshal(body, &list); code != http.StatusOK || err != nil || len(list) != 1 || list[0].DeviceID != "desk1" {
		t.Errorf("where was agent1: %d %s", code, body)
	}
}

// checkMetrics reports each of patterns (a regexp anchored at a line's
// start) that matches no line of a /metrics body.
func checkMetrics(t *testing.T, body string, patterns []string) bool {
	t.Helper()
	ok := true
	for _, p := range patterns {
		if !regexp.MustCompile(`(?m)^` + p).MatchString(body) {
			t.Errorf("/metrics: no line matches %s", p)
			ok = false
		}
	}
	return ok
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAdminOverTLS: with admin.tls the admin server speaks HTTPS only, and
// the token is still required.
func TestAdminOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := testcert.Write(t)
	content := strings.Replace(runConfig(dir, "", "", ""), "admin:\n",
		"admin:\n  tls:\n    cert_file: "+certFile+"\n    key_file: "+keyFile+"\n", 1)
	addrs := startRunConfig(t, dir, content)
	if !strings.Contains(addrs.stderr.String(), "admin_url=https://"+addrs.admin+"/") ||
		!strings.Contains(addrs.stderr.String(), "csta_websocket=wss://"+addrs.admin+"/csta") {
		t.Errorf("the running line should give the https and wss URLs:\n%s", grepLines(addrs.stderr.String(), "time"))
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(url, token string) (int, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	base := "https://" + addrs.admin
	for _, tt := range []struct {
		path, token string
		want        int
	}{
		{"/healthz", "", http.StatusOK},
		{"/api/v1/agents", "", http.StatusUnauthorized},
		{"/api/v1/agents", testAdminToken, http.StatusOK},
		{"/metrics", testAdminToken, http.StatusOK},
	} {
		if code, err := get(base+tt.path, tt.token); err != nil || code != tt.want {
			t.Errorf("GET %s (token %v): %d %v, want %d", tt.path, tt.token != "", code, err, tt.want)
		}
	}
	// Plain HTTP on the HTTPS port gets no API.
	if code, err := get("http://"+addrs.admin+"/api/v1/agents", testAdminToken); err == nil && code == http.StatusOK {
		t.Error("plain HTTP answered the API on the TLS port")
	}
}
