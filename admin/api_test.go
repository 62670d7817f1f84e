package admin_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/broadworks-connector/connector/admin"
)

const testToken = "s3cret-token"

var since = time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC)

// fakeSource is a Source over fixed views; ForceLogout answers from
// logoutErrors and records what it was asked.
type fakeSource struct {
	mu           sync.Mutex
	agents       []admin.Agent
	devices      []admin.Device
	phones       []admin.Phone
	sessions     []admin.Session
	links        []admin.Link
	logoutErrors map[string]error
	loggedOut    []string
}

func (f *fakeSource) Agents() []admin.Agent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]admin.Agent(nil), f.agents...)
}

func (f *fakeSource) Devices() []admin.Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]admin.Device(nil), f.devices...)
}

func (f *fakeSource) Phones() []admin.Phone {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]admin.Phone(nil), f.phones...)
}

func (f *fakeSource) Sessions() []admin.Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]admin.Session(nil), f.sessions...)
}

func (f *fakeSource) Links() []admin.Link {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]admin.Link(nil), f.links...)
}

func (f *fakeSource) ForceLogout(ctx context.Context, agentID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.logoutErrors[agentID]; err != nil {
		return err
	}
	f.loggedOut = append(f.loggedOut, agentID)
	return nil
}

// demoSource: two agents (one at desk 2001), hot desks 2001 (taken) and 2002
// (free, phone up), a plain line 3001, one phone, one session, one link.
func demoSource() *fakeSource {
	return &fakeSource{
		agents: []admin.Agent{
			{AgentID: "7002", UserID: "agent7002@example.com", State: "loggedOff"},
			{AgentID: "7001", UserID: "agent7001@example.com", State: "notReady", Reason: "lunch", Desk: "2001", Since: since},
		},
		devices: []admin.Device{
			{DeviceID: "3001", UserID: "line3001@example.com"},
			{DeviceID: "2002", UserID: "desk2002@example.com", HotDesk: true},
			{DeviceID: "2001", UserID: "desk2001@example.com", HotDesk: true, GuestAgentID: "7001", GuestSince: since,
				Forwarding: []admin.Forward{{Type: "always", Active: true, Number: "5000"}}},
		},
		phones: []admin.Phone{
			{DN: "2002", Address: "127.0.0.1", Port: 5062, Transport: "udp", InService: true, Events: []string{"as-feature-event"}},
		},
		sessions: []admin.Session{{ID: "s1", Remote: "127.0.0.1:40000", User: "cti", Transport: "tcp", Since: since, Monitors: 2}},
		links:    []admin.Link{{Server: "http://127.0.0.1:8090", State: "up", Channel: "ch1", Since: since}},
		logoutErrors: map[string]error{
			"7002":   fmt.Errorf("gateway: %w", admin.ErrNotLoggedOn),
			"nobody": admin.ErrUnknownAgent,
			"7003":   errors.New("xsi: 500 from XSP"),
		},
	}
}

// fakeJournal echoes its inputs so the test sees what admin passed.
type fakeJournal struct{ err error }

func (j fakeJournal) AtDesk(ctx context.Context, desk string, at time.Time) (admin.Association, bool, error) {
	if _, ok := ctx.Deadline(); !ok {
		return admin.Association{}, false, errors.New("no deadline")
	}
	if j.err != nil || desk == "empty" {
		return admin.Association{}, false, j.err
	}
	return admin.Association{ID: "1", AgentID: "7001", AgentUserID: "agent7001@example.com", DeviceID: desk,
		DeskUserID: "desk" + desk + "@example.com", Start: at.Add(-time.Hour)}, true, nil
}

func (j fakeJournal) AgentBetween(ctx context.Context, agent string, from, to time.Time) ([]admin.Association, error) {
	if j.err != nil || agent == "nobody" {
		return nil, j.err
	}
	return []admin.Association{{AgentID: agent, DeviceID: "2001", Start: from, End: to, EndedBy: "forced", Detail: "supervisor"}}, nil
}

func (j fakeJournal) DeskBetween(ctx context.Context, desk string, from, to time.Time) ([]admin.Association, error) {
	if j.err != nil || desk == "empty" {
		return nil, j.err
	}
	return []admin.Association{{AgentID: "7001", DeviceID: desk, Start: from, End: from.Add(time.Hour), EndedBy: "logout"},
		{AgentID: "7002", DeviceID: desk, Start: from.Add(2 * time.Hour)}}, nil
}

type client struct {
	t    *testing.T
	http *http.Client
	base string
}

func newClient(t *testing.T, s *admin.Server) *client {
	c := &client{t: t, http: &http.Client{Transport: &http.Transport{}}, base: "http://" + s.Addr().String()}
	t.Cleanup(c.http.CloseIdleConnections)
	return c
}

// do sends method path with token ("" for none) and body.
func (c *client) do(method, path, token, body string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func startAPI(t *testing.T, opts ...admin.Option) (*admin.Server, *client) {
	t.Helper()
	s := startServer(t, append([]admin.Option{admin.WithToken(testToken)}, opts...)...)
	return s, newClient(t, s)
}

// jsonEqual compares JSON documents by value.
func jsonEqual(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Errorf("response is not JSON: %v: %q", err, got)
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %q: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

// apiRoutes is every route admin serves behind the token, with a request
// that succeeds given demoSource and a journal.
var apiRoutes = []struct{ method, path string }{
	{"GET", "/readyz"},
	{"GET", "/metrics"},
	{"GET", "/api/v1/agents"},
	{"GET", "/api/v1/agents/7001"},
	{"POST", "/api/v1/agents/7001/logout"},
	{"GET", "/api/v1/devices"},
	{"GET", "/api/v1/devices/2001"},
	{"GET", "/api/v1/phones"},
	{"GET", "/api/v1/sessions"},
	{"GET", "/api/v1/links"},
	{"GET", "/api/v1/desks/free"},
	{"GET", "/api/v1/history"},
	{"GET", "/api/v1/cluster"},
	{"GET", "/api/v1/journal/desk/2001?at=2026-11-21T10:00:00Z"},
	{"GET", "/api/v1/journal/agent/7001?from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z"},
	{"GET", "/api/v1/stream"}, // the upgrade fails later without WebSocket headers; auth comes first
	{"GET", "/api/v1/nonexistent"},
	{"DELETE", "/api/v1/agents"},
}

func TestAuthMatrix(t *testing.T) {
	configured, withToken := startAPI(t, admin.WithSource(demoSource()), admin.WithJournal(fakeJournal{}))
	configured.Handle("/csta", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "csta") }))
	unset := startServer(t, admin.WithSource(demoSource()), admin.WithJournal(fakeJournal{}))
	withoutToken := newClient(t, unset)

	for _, route := range apiRoutes {
		for _, tc := range []struct {
			name   string
			client *client
			token  string
			want   bool // let in
		}{
			{"no token", withToken, "", false},
			{"wrong token", withToken, "wrong", false},
			{"token prefix", withToken, testToken[:4], false},
			{"token longer", withToken, testToken + "x", false},
			{"right token", withToken, testToken, true},
			{"server without a token, none sent", withoutToken, "", false},
			{"server without a token, one sent", withoutToken, testToken, false},
		} {
			t.Run(route.method+" "+route.path+"/"+tc.name, func(t *testing.T) {
				resp, body := tc.client.do(route.method, route.path, tc.token, "")
				if !tc.want {
					if resp.StatusCode != http.StatusUnauthorized {
						t.Fatalf("status = %d, want 401", resp.StatusCode)
					}
					if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
						t.Errorf("WWW-Authenticate = %q, want Bearer", got)
					}
					if body != "Unauthorized\n" {
						t.Errorf("body = %q, want no detail", body)
					}
					return
				}
				if resp.StatusCode == http.StatusUnauthorized {
					t.Errorf("status = 401 with the right token: %q", body)
				}
			})
		}
	}

	t.Run("healthz is open", func(t *testing.T) {
		for _, c := range []*client{withToken, withoutToken} {
			for _, token := range []string{"", "wrong", testToken} {
				if resp, body := c.do("GET", "/healthz", token, ""); resp.StatusCode != 200 || body != "ok\n" {
					t.Errorf("GET /healthz (token %q) = %d %q", token, resp.StatusCode, body)
				}
			}
		}
	})
	t.Run("handlers from Handle bring their own auth", func(t *testing.T) {
		if resp, body := withToken.do("GET", "/csta", "", ""); resp.StatusCode != 200 || body != "csta" {
			t.Errorf("GET /csta = %d %q", resp.StatusCode, body)
		}
	})
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		req, _ := http.NewRequest("GET", withToken.base+"/api/v1/links", nil)
		req.Header.Set("Authorization", "bearer "+testToken)
		resp, err := withToken.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status = %d", resp.StatusCode)
		}
	})
	t.Run("no query token except on the stream", func(t *testing.T) {
		if resp, _ := withToken.do("GET", "/api/v1/agents?token="+testToken, "", ""); resp.StatusCode != 401 {
			t.Errorf("status = %d, want 401", resp.StatusCode)
		}
	})
}

func TestRESTRoutes(t *testing.T) {
	_, c := startAPI(t, admin.WithSource(demoSource()))
	tests := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/api/v1/agents", 200, `[
			{"agentId":"7001","userId":"agent7001@example.com","state":"notReady","reason":"lunch","desk":"2001","since":"2026-11-21T09:30:00Z"},
			{"agentId":"7002","userId":"agent7002@example.com","state":"loggedOff"}]`},
		{"GET", "/api/v1/agents/7002", 200, `{"agentId":"7002","userId":"agent7002@example.com","state":"loggedOff"}`},
		{"GET", "/api/v1/agents/9999", 404, `{"error":"unknown agent","parameter":"id"}`},
		{"GET", "/api/v1/devices", 200, `[
			{"deviceId":"2001","userId":"desk2001@example.com","hotDesk":true,"doNotDisturb":false,
			 "forwarding":[{"type":"always","active":true,"number":"5000"}],"guestAgentId":"7001","guestSince":"2026-11-21T09:30:00Z"},
			{"deviceId":"2002","userId":"desk2002@example.com","hotDesk":true,"doNotDisturb":false,"forwarding":[]},
			{"deviceId":"3001","userId":"line3001@example.com","hotDesk":false,"doNotDisturb":false,"forwarding":[]}]`},
		{"GET", "/api/v1/devices/3001", 200, `{"deviceId":"3001","userId":"line3001@example.com","hotDesk":false,"doNotDisturb":false,"forwarding":[]}`},
		{"GET", "/api/v1/devices/nope", 404, `{"error":"unknown device","parameter":"id"}`},
		{"GET", "/api/v1/phones", 200, `[{"dn":"2002","address":"127.0.0.1","port":5062,"transport":"udp","inService":true,"events":["as-feature-event"]}]`},
		{"GET", "/api/v1/sessions", 200, `[{"id":"s1","remote":"127.0.0.1:40000","user":"cti","transport":"tcp","since":"2026-11-21T09:30:00Z","monitors":2}]`},
		{"GET", "/api/v1/links", 200, `[{"server":"http://127.0.0.1:8090","state":"up","channel":"ch1","since":"2026-11-21T09:30:00Z"}]`},
		{"GET", "/api/v1/desks/free", 200, `[{"deviceId":"2002","userId":"desk2002@example.com","hotDesk":true,"doNotDisturb":false,"forwarding":[]}]`},
		{"GET", "/api/v1/journal/desk/2001?at=2026-11-21T10:00:00Z", 501, `{"error":"no journal configured"}`},
		{"GET", "/api/v1/journal/agent/7001?from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z", 501, `{"error":"no journal configured"}`},
		{"GET", "/api/v1/nothing/here", 404, `{"error":"no such route"}`},
		{"POST", "/api/v1/agents", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := c.do(tt.method, tt.path, testToken, "")
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.body == "" {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if !jsonEqual(t, body, tt.body) {
				t.Errorf("body = %s\nwant %s", body, tt.body)
			}
		})
	}
}

func TestEmptyListsAreArrays(t *testing.T) {
	_, c := startAPI(t, admin.WithSource(&fakeSource{}))
	for _, path := range []string{"/api/v1/agents", "/api/v1/devices", "/api/v1/phones", "/api/v1/sessions", "/api/v1/links", "/api/v1/desks/free"} {
		if resp, body := c.do("GET", path, testToken, ""); resp.StatusCode != 200 || body != "[]\n" {
			t.Errorf("GET %s = %d %q, want []", path, resp.StatusCode, body)
		}
	}
}

func TestNoSource(t *testing.T) {
	_, c := startAPI(t)
	for _, path := range []string{"/api/v1/agents", "/api/v1/desks/free", "/api/v1/stream"} {
		if resp, body := c.do("GET", path, testToken, ""); resp.StatusCode != 503 || !jsonEqual(t, body, `{"error":"no source configured"}`) {
			t.Errorf("GET %s = %d %q, want 503", path, resp.StatusCode, body)
		}
	}
}

func TestForceLogout(t *testing.T) {
	source := demoSource()
	_, c := startAPI(t, admin.WithSource(source))
	tests := []struct {
		agent  string
		body   string
		status int
		want   string
	}{
		{"7001", "", 200, `{"agentId":"7001","result":"loggedOff"}`},
		{"7001", `{"reason":"left without logging out"}`, 200, `{"agentId":"7001","result":"loggedOff"}`},
		{"nobody", "", 404, `{"error":"unknown agent","parameter":"id"}`},
		{"7002", "", 409, `{"error":"agent not logged on","parameter":"id"}`},
		{"7003", "", 502, `{"error":"xsi: 500 from XSP"}`},
		{"7001", strings.Repeat("x", 2<<10), 413, `{"error":"request body too large"}`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.agent, tt.status), func(t *testing.T) {
			resp, body := c.do("POST", "/api/v1/agents/"+tt.agent+"/logout", testToken, tt.body)
			if resp.StatusCode != tt.status || !jsonEqual(t, body, tt.want) {
				t.Errorf("= %d %s, want %d %s", resp.StatusCode, body, tt.status, tt.want)
			}
		})
	}
	source.mu.Lock()
	defer source.mu.Unlock()
	if want := []string{"7001", "7001"}; !reflect.DeepEqual(source.loggedOut, want) {
		t.Errorf("ForceLogout called for %v, want %v (not for the oversized body)", source.loggedOut, want)
	}
	if resp, _ := c.do("GET", "/api/v1/agents/7001/logout", testToken, ""); resp.StatusCode != 405 {
		t.Errorf("GET logout = %d, want 405", resp.StatusCode)
	}
}

func TestJournalRoutes(t *testing.T) {
	_, c := startAPI(t, admin.WithSource(demoSource()), admin.WithJournal(fakeJournal{}))
	_, failing := startAPI(t, admin.WithSource(demoSource()), admin.WithJournal(fakeJournal{err: errors.New("journal: disk on fire")}))
	tests := []struct {
		client *client
		path   string
		status int
		want   string
	}{
		{c, "/api/v1/journal/desk/2001?at=2026-11-21T10:00:00Z", 200, `{"id":"1","agentId":"7001","agentUserId":"agent7001@example.com",
			"deviceId":"2001","deskUserId":"desk2001@example.com","start":"2026-11-21T09:00:00Z"}`},
		{c, "/api/v1/journal/desk/2001?at=2026-11-21T11:00:00%2B01:00", 200, `{"id":"1","agentId":"7001","agentUserId":"agent7001@example.com",
			"deviceId":"2001","deskUserId":"desk2001@example.com","start":"2026-11-21T10:00:00+01:00"}`},
		{c, "/api/v1/journal/desk/empty?at=2026-11-21T10:00:00Z", 404, `{"error":"no association at that desk at that time"}`},
		{c, "/api/v1/journal/desk/2001", 400, `{"error":"at is required once, as an RFC 3339 time","parameter":"at"}`},
		{c, "/api/v1/journal/desk/2001?at=yesterday", 400, `{"error":"at is not an RFC 3339 time","parameter":"at"}`},
		{c, "/api/v1/journal/desk/2001?at=2026-11-21T10:00:00Z&at=2026-11-21T11:00:00Z", 400, `{"error":"at is required once, as an RFC 3339 time","parameter":"at"}`},
		{c, "/api/v1/journal/agent/7001?from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z", 200,
			`[{"agentId":"7001","agentUserId":"","deviceId":"2001","deskUserId":"","start":"2026-11-21T00:00:00Z",
			  "end":"2026-11-22T00:00:00Z","endedBy":"forced","detail":"supervisor"}]`},
		{c, "/api/v1/journal/agent/nobody?from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z", 200, `[]`},
		{c, "/api/v1/journal/agent/7001?to=2026-11-22T00:00:00Z", 400, `{"error":"from is required once, as an RFC 3339 time","parameter":"from"}`},
		{c, "/api/v1/journal/agent/7001?from=2026-11-21T00:00:00Z&to=tomorrow", 400, `{"error":"to is not an RFC 3339 time","parameter":"to"}`},
		{c, "/api/v1/journal/agent/7001?from=2026-11-22T00:00:00Z&to=2026-11-21T00:00:00Z", 400, `{"error":"to is before from","parameter":"to"}`},
		{c, "/api/v1/journal/desk/2001?from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z", 200,
			`[{"agentId":"7001","agentUserId":"","deviceId":"2001","deskUserId":"","start":"2026-11-21T00:00:00Z",
			  "end":"2026-11-21T01:00:00Z","endedBy":"logout"},
			  {"agentId":"7002","agentUserId":"","deviceId":"2001","deskUserId":"","start":"2026-11-21T02:00:00Z"}]`},
		{c, "/api/v1/journal/desk/empty?from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z", 200, `[]`},
		{c, "/api/v1/journal/desk/2001?from=2026-11-21T00:00:00Z", 400, `{"error":"to is required once, as an RFC 3339 time","parameter":"to"}`},
		{c, "/api/v1/journal/desk/2001?from=2026-11-22T00:00:00Z&to=2026-11-21T00:00:00Z", 400, `{"error":"to is before from","parameter":"to"}`},
		{failing, "/api/v1/journal/desk/2001?at=2026-11-21T10:00:00Z", 500, `{"error":"journal query failed"}`},
		{failing, "/api/v1/journal/desk/2001?from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z", 500, `{"error":"journal query failed"}`},
		{failing, "/api/v1/journal/agent/7001?from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z", 500, `{"error":"journal query failed"}`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := tt.client.do("GET", tt.path, testToken, "")
			if resp.StatusCode != tt.status || !jsonEqual(t, body, tt.want) {
				t.Errorf("= %d %s, want %d %s", resp.StatusCode, body, tt.status, tt.want)
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	var mu sync.Mutex
	ready, reason := false, "no XSI channel up"
	_, c := startAPI(t, admin.WithReadiness(func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return ready, reason
	}))
	_, unchecked := startAPI(t)

	if resp, body := c.do("GET", "/readyz", testToken, ""); resp.StatusCode != 503 || body != "no XSI channel up\n" {
		t.Errorf("not ready: %d %q", resp.StatusCode, body)
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	if resp, body := c.do("GET", "/readyz", testToken, ""); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("ready: %d %q", resp.StatusCode, body)
	}
	if resp, body := unchecked.do("GET", "/readyz", testToken, ""); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("without a check: %d %q", resp.StatusCode, body)
	}
	if resp, _ := c.do("POST", "/readyz", testToken, ""); resp.StatusCode != 405 {
		t.Errorf("POST /readyz = %d, want 405", resp.StatusCode)
	}
}

func TestMetrics(t *testing.T) {
	registry := prometheus.NewRegistry()
	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "connector_test_things_total", Help: "Things."})
	registry.MustRegister(counter)
	counter.Add(3)
	_, c := startAPI(t, admin.WithMetrics(registry), admin.WithSource(demoSource()))
	c.do("GET", "/api/v1/agents", testToken, "")
	c.do("GET", "/api/v1/agents", "wrong", "")

	resp, body := c.do("GET", "/metrics", testToken, "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		"connector_test_things_total 3\n",
		`connector_admin_requests_total{code="200",route="GET /api/v1/agents"} 1` + "\n",
		"connector_admin_stream_clients 0\n",
		"connector_admin_unauthorized_total 1\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}

	t.Run("without a registry admin's own are served", func(t *testing.T) {
		_, c := startAPI(t)
		if resp, body := c.do("GET", "/metrics", testToken, ""); resp.StatusCode != 200 || !strings.Contains(body, "connector_admin_stream_clients 0") {
			t.Errorf("= %d %s", resp.StatusCode, body)
		}
	})
	t.Run("a second server on the same registry still starts", func(t *testing.T) {
		_, c := startAPI(t, admin.WithMetrics(registry))
		if resp, _ := c.do("GET", "/metrics", testToken, ""); resp.StatusCode != 200 {
			t.Errorf("= %d", resp.StatusCode)
		}
	})
}

func TestRequestLimits(t *testing.T) {
	limits := admin.DefaultLimits()
	if limits.WriteTimeout <= 0 || limits.ReadTimeout <= 0 || limits.ReadHeaderTimeout <= 0 || limits.MaxHeaderBytes <= 0 {
		t.Errorf("DefaultLimits leave something unbounded: %+v", limits)
	}
	stream := admin.DefaultStreamLimits()
	if stream.MaxClients <= 0 || stream.Queue <= 0 || stream.PongWait <= stream.PingInterval || stream.WriteWait <= 0 {
		t.Errorf("DefaultStreamLimits: %+v", stream)
	}
}

func TestTLS(t *testing.T) {
	// httptest's server brings a certificate for 127.0.0.1 and a client that trusts it.
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	certificates, httpsClient := ts.TLS.Certificates, ts.Client()
	ts.Close()
	defer httpsClient.CloseIdleConnections()

	s, plain := startAPI(t, admin.WithTLS(&tls.Config{Certificates: certificates}), admin.WithSource(demoSource()))
	c := &client{t: t, http: httpsClient, base: "https://" + s.Addr().String()}
	if resp, body := c.do("GET", "/healthz", "", ""); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("GET /healthz over TLS = %d %q", resp.StatusCode, body)
	}
	if resp, _ := c.do("GET", "/api/v1/links", testToken, ""); resp.StatusCode != 200 {
		t.Errorf("GET /api/v1/links over TLS = %d", resp.StatusCode)
	}
	if resp, _ := plain.do("GET", "/healthz", "", ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS port = %d, want 400", resp.StatusCode)
	}

	dialer := websocket.Dialer{TLSClientConfig: httpsClient.Transport.(*http.Transport).TLSClientConfig, HandshakeTimeout: 5 * time.Second}
	conn, _, err := dialer.Dial("wss://"+s.Addr().String()+"/api/v1/stream?token="+testToken, nil)
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer conn.Close()
	if m := read(t, conn); m.Kind != "snapshot" {
		t.Errorf("first message %+v", m)
	}
}
