package csta

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Per-device authorization (issue 6, security pass): a CTI user may be
// limited to a set of devices; any other device is answered
// operation/privilegeViolationSpecifiedDevice before the Service sees it.

// deviceRequests are the requests that name a device, as templates taking
// the device ID.
var deviceRequests = []struct{ root, xml string }{
	{"MonitorStart", `<MonitorStart ` + ns6 + `><monitorObject><deviceObject>%s</deviceObject></monitorObject></MonitorStart>`},
	{"SetAgentState", `<SetAgentState ` + ns6 + `><device>%s</device><requestedAgentState>ready</requestedAgentState></SetAgentState>`},
	{"GetAgentState", `<GetAgentState ` + ns6 + `><device>%s</device></GetAgentState>`},
	{"SetForwarding", `<SetForwarding ` + ns6 + `><device>%s</device><forwardingType>forwardImmediate</forwardingType><activateForward>true</activateForward><forwardDN>4999</forwardDN></SetForwarding>`},
	{"GetForwarding", `<GetForwarding ` + ns6 + `><device>%s</device></GetForwarding>`},
	{"SetDoNotDisturb", `<SetDoNotDisturb ` + ns6 + `><device>%s</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`},
	{"GetDoNotDisturb", `<GetDoNotDisturb ` + ns6 + `><device>%s</device></GetDoNotDisturb>`},
}

const privilegeViolation = "operation/privilegeViolationSpecifiedDevice"

// twoUsersConfig is one TCP listener with two users: alice limited to
// {4001, desk1}, bob unlimited.
func twoUsersConfig() Config {
	cfg := testConfig()
	cfg.RequireSession = true
	cfg.TCPAuth = Auth{Mode: "password", UserName: "alice", Password: "alice-pw", Users: map[string]string{"bob": "bob-pw"}}
	cfg.DeviceLimits = map[string][]DeviceID{"alice": {"4001", "desk1"}}
	return cfg
}

func login(user, password string) string { return fmt.Sprintf(loginPlain, user, password) }

// requestCount reads connector_cti_requests_total{request,result}.
func requestCount(t *testing.T, s *Server, request, result string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collectors()...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != "connector_cti_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["request"] == request && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func (f *fakeService) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func TestDeviceLimits(t *testing.T) {
	svc := newFakeService("4001", "4002", "desk1")
	s := startServer(t, twoUsersConfig(), svc)
	tests := []struct {
		user, password string
		device         string
		allowed        bool
	}{
		{"alice", "alice-pw", "4001", true},
		{"alice", "alice-pw", "desk1", true},
		{"alice", "alice-pw", "4002", false},
		{"alice", "alice-pw", "4001@example.com", false}, // compared as written
		{"alice", "alice-pw", "unknown", false},          // refused before the Service could say invalidDeviceID
		{"bob", "bob-pw", "4001", true},
		{"bob", "bob-pw", "4002", true},
	}
	for _, tt := range tests {
		t.Run(tt.user+" on "+tt.device, func(t *testing.T) {
			c := dial(t, s)
			c.openSession(1, login(tt.user, tt.password))
			for i, r := range deviceRequests {
				before, refusedBefore := svc.requestCount(), requestCount(t, s, r.root, "privilegeViolationSpecifiedDevice")
				name, root := c.request(10+i, fmt.Sprintf(r.xml, tt.device))
				got := errorOf(root)
				switch {
				case !tt.allowed && got != privilegeViolation:
					t.Errorf("%s answered %s %q, want %s", r.root, name, got, privilegeViolation)
				case !tt.allowed && svc.requestCount() != before:
					t.Errorf("%s on a refused device reached the Service", r.root)
				case !tt.allowed && requestCount(t, s, r.root, "privilegeViolationSpecifiedDevice") != refusedBefore+1:
					t.Errorf("%s refusal not counted as result=privilegeViolationSpecifiedDevice", r.root)
				case tt.allowed && (got != "" || name != r.root+"Response"):
					t.Errorf("%s answered %s %q, want %sResponse", r.root, name, got, r.root)
				case tt.allowed && svc.requestCount() != before+1:
					t.Errorf("%s on an allowed device did not reach the Service", r.root)
				}
			}
		})
	}
}

func TestDeviceLimitsNeedAnAuthenticatedUser(t *testing.T) {
	// With mode none the user name a client sends proves nothing: limits
	// configured for it do not apply, with or without a session.
	cfg := testConfig()
	cfg.DeviceLimits = map[string][]DeviceID{"alice": {"4001"}}
	s := startServer(t, cfg, newFakeService("4001", "4002"))
	c := dial(t, s)
	get := `<GetDoNotDisturb ` + ns6 + `><device>4002</device></GetDoNotDisturb>`
	if name, root := c.request(1, get); name != "GetDoNotDisturbResponse" {
		t.Fatalf("without a session answered %s %s", name, errorOf(root))
	}
	c.openSession(2, login("alice", "anything"))
	if name, root := c.request(3, get); name != "GetDoNotDisturbResponse" {
		t.Fatalf("mode none, session as alice, answered %s %s", name, errorOf(root))
	}
}

func TestSeveralUsersAuthentication(t *testing.T) {
	cfg := twoUsersConfig()
	s := startServer(t, cfg, newFakeService("4001"))
	tests := []struct {
		name, xml string
		accept    bool
	}{
		{"first user", login("alice", "alice-pw"), true},
		{"listed user", login("bob", "bob-pw"), true},
		{"listed user, Avaya form", fmt.Sprintf(loginAvaya, "bob", "bob-pw"), true},
		{"wrong password", login("bob", "guess"), false},
		{"another user's password", login("alice", "bob-pw"), false},
		{"unknown user", login("carol", "bob-pw"), false},
		{"no credentials", startEd6, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, s)
			name, root := c.request(1, tt.xml)
			if tt.accept {
				if name != "StartApplicationSessionPosResponse" {
					t.Fatalf("login answered %s", name)
				}
				return
			}
			if name != "StartApplicationSessionNegResponse" || root.FindElement("errorCode/definedError").Text() != "invalidApplicationInfo" {
				t.Fatalf("bad login answered %s", name)
			}
			c.expectClosed()
		})
	}
}

func TestEmptyUserNameIsNoUser(t *testing.T) {
	// Only csta.auth.users configured: the empty username/password pair
	// must not let a client in with empty credentials.
	cfg := testConfig()
	cfg.RequireSession = true
	cfg.TCPAuth = Auth{Mode: "password", Users: map[string]string{"bob": "bob-pw"}}
	s := startServer(t, cfg, newFakeService("4001"))
	c := dial(t, s)
	if name, _ := c.request(1, login("", "")); name != "StartApplicationSessionNegResponse" {
		t.Fatalf("empty credentials answered %s", name)
	}
	c.expectClosed()
	if name, _ := dial(t, s).request(1, login("bob", "bob-pw")); name != "StartApplicationSessionPosResponse" {
		t.Fatalf("bob answered %s", name)
	}
}

func TestReloadAppliesUsersAndDeviceLimits(t *testing.T) {
	cfg := twoUsersConfig()
	s := startServer(t, cfg, newFakeService("4001", "4002", "desk1"))
	alice := dial(t, s)
	alice.openSession(1, login("alice", "alice-pw"))
	bob := dial(t, s)
	bob.openSession(1, login("bob", "bob-pw"))
	get := func(c *client, invokeID int, device string) string {
		t.Helper()
		name, root := c.request(invokeID, `<GetDoNotDisturb `+ns6+`><device>`+device+`</device></GetDoNotDisturb>`)
		if e := errorOf(root); e != "" {
			return e
		}
		return name
	}
	if got := get(alice, 2, "4002"); got != privilegeViolation {
		t.Fatalf("before the reload alice on 4002 got %s", got)
	}
	if name, _ := alice.request(3, fmt.Sprintf(deviceRequests[0].xml, "desk1")); name != "MonitorStartResponse" {
		t.Fatalf("alice's MonitorStart on desk1 answered %s", name)
	}

	// 4002 added for alice, desk1 taken away: the open session follows.
	next := twoUsersConfig()
	next.DeviceLimits = map[string][]DeviceID{"alice": {"4001", "4002"}}
	if err := s.Reload(next); err != nil {
		t.Fatal(err)
	}
	if got := get(alice, 4, "4002"); got != "GetDoNotDisturbResponse" {
		t.Fatalf("after adding 4002 alice on it got %s", got)
	}
	if got := get(alice, 5, "desk1"); got != privilegeViolation {
		t.Fatalf("after taking desk1 away alice on it got %s", got)
	}
	if n := s.Stats().Monitors; n != 0 {
		t.Fatalf("alice's monitor on desk1 survived the reload (%d monitors)", n)
	}

	// bob removed: his session ends; alice's stays.
	next.TCPAuth.Users = nil
	if err := s.Reload(next); err != nil {
		t.Fatal(err)
	}
	f := bob.read()
	if root := parseRoot(t, f.XML); f.InvokeID != EventInvokeID || root.Tag != "ApplicationSessionTerminated" ||
		root.FindElement("sessionTermReason/serverTermReason").Text() != "userNotAuthorized" {
		t.Fatalf("bob's session after his removal got %04d %s", f.InvokeID, f.XML)
	}
	bob.expectClosed()
	if got := get(alice, 6, "4001"); got != "GetDoNotDisturbResponse" {
		t.Fatalf("alice after bob's removal got %s", got)
	}
	if name, _ := dial(t, s).request(1, login("bob", "bob-pw")); name != "StartApplicationSessionNegResponse" {
		t.Fatalf("removed bob logged in again: %s", name)
	}
}

func TestReloadKeepsOrEndsSessions(t *testing.T) {
	tests := []struct {
		name   string
		before func(*Config)
		after  func(*Config)
		ends   bool
	}{
		{"password changed", nil, func(c *Config) { c.TCPAuth.Users["bob"] = "new-pw" }, false},
		{"bob moved to username", nil, func(c *Config) { c.TCPAuth = Auth{Mode: "password", UserName: "bob", Password: "bob-pw"} }, false},
		{"switched to mode none", nil, func(c *Config) { c.TCPAuth.Mode = "none" }, false},
		{"bob removed", nil, func(c *Config) { delete(c.TCPAuth.Users, "bob") }, true},
		{"switched from none to password", func(c *Config) { c.TCPAuth.Mode = "none" }, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := twoUsersConfig()
			if tt.before != nil {
				tt.before(&cfg)
			}
			s := startServer(t, cfg, newFakeService("4001"))
			c := dial(t, s)
			c.openSession(1, login("bob", "bob-pw"))
			next := twoUsersConfig()
			if tt.after != nil {
				tt.after(&next)
			}
			if err := s.Reload(next); err != nil {
				t.Fatal(err)
			}
			if tt.ends {
				f := c.read()
				if root := parseRoot(t, f.XML); f.InvokeID != EventInvokeID || root.Tag != "ApplicationSessionTerminated" {
					t.Fatalf("got %04d %s, want ApplicationSessionTerminated", f.InvokeID, f.XML)
				}
				c.expectClosed()
				return
			}
			// The next answer is the request's: nothing ended the session.
			if name, root := c.request(2, fmt.Sprintf(deviceRequests[6].xml, "4001")); name != "GetDoNotDisturbResponse" {
				t.Fatalf("after the reload the session got %s %s", name, errorOf(root))
			}
		})
	}
}

func TestDeviceLimitsOverWebSocket(t *testing.T) {
	cfg := testConfig()
	cfg.RequireSession = true
	cfg.WebSocketAuth = Auth{Mode: "password", UserName: "web", Password: "pw"}
	cfg.DeviceLimits = map[string][]DeviceID{"web": {"4001"}}
	s := NewServer(cfg, newFakeService("4001", "4002"), testLogger(t))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	url := wsServer(t, s)
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	ws := wsDial(t, url)
	if f := wsRequest(t, ws, 1, login("web", "pw")); parseRoot(t, f.XML).Tag != "StartApplicationSessionPosResponse" {
		t.Fatalf("login answered %s", f.XML)
	}
	for i, device := range []string{"4001", "4002"} {
		f := wsRequest(t, ws, 2+i, fmt.Sprintf(deviceRequests[1].xml, device))
		got := errorOf(parseRoot(t, f.XML))
		if want := map[string]string{"4001": "", "4002": privilegeViolation}[device]; got != want {
			t.Errorf("SetAgentState on %s answered %q, want %q", device, got, want)
		}
	}
}

// Every request the decoder knows is either checked against the device
// limits or listed here as naming no device: a new request type cannot slip
// past the check unnoticed.
func TestEveryDeviceRequestIsChecked(t *testing.T) {
	namesNoDevice := []string{
		"StartApplicationSession", "StopApplicationSession", "ResetApplicationSessionTimer",
		"SystemStatus", "SystemRegister", "RequestSystemStatus",
		"MonitorStop", // names a monitor of the connection's own, started under the check
	}
	samples := map[string]Message{
		"MonitorStart": MonitorStart{}, "SetAgentState": SetAgentState{}, "GetAgentState": GetAgentState{},
		"SetForwarding": SetForwarding{}, "GetForwarding": GetForwarding{},
		"SetDoNotDisturb": SetDoNotDisturb{}, "GetDoNotDisturb": GetDoNotDisturb{},
	}
	for _, root := range slices.Sorted(maps.Keys(decoders)) {
		if slices.Contains(namesNoDevice, root) {
			continue
		}
		m, ok := samples[root]
		if !ok {
			t.Errorf("request %s: add it to the samples (and give it subjectDevice) or to namesNoDevice", root)
			continue
		}
		if _, ok := m.(deviceRequest); !ok {
			t.Errorf("request %s names a device but is not a deviceRequest", root)
		}
	}
	for _, r := range deviceRequests {
		if _, ok := samples[r.root]; !ok || !strings.HasPrefix(r.xml, "<"+r.root+" ") {
			t.Errorf("deviceRequests entry %s does not match the samples", r.root)
		}
	}
}

// BenchmarkDeviceAllowed is the check every device request of a limited
// user pays before dispatch: the session's user under conn.mu, then map
// lookups in the configuration in force.
func BenchmarkDeviceAllowed(b *testing.B) {
	cfg := twoUsersConfig()
	devices := make([]DeviceID, 1000)
	for i := range devices {
		devices[i] = DeviceID(fmt.Sprintf("%d", 4000+i))
	}
	cfg.DeviceLimits = map[string][]DeviceID{"alice": devices}
	s := NewServer(cfg, nil, nil)
	c := &conn{srv: s, transportKind: "tcp", session: &session{id: "s", authUser: "alice"}}
	for _, tt := range []struct {
		name   string
		device DeviceID
		want   bool
	}{{"allowed", "4999", true}, {"refused", "5999", false}} {
		b.Run(tt.name, func(b *testing.B) {
			for b.Loop() {
				if c.deviceAllowed(s.config(), tt.device) != tt.want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}

// Authorization by what a request touches (issue 13, attack 3): the front
// end checks the device a request names; an agent it names is the
// Service's to check, against the limit the Requester carries. The fake
// service plays the gateway's part (seats).

// limitRecorder is a fakeService that keeps the Requester.Devices of every
// SetAgentState.
type limitRecorder struct {
	*fakeService
	mu     sync.Mutex
	limits []DeviceLimit
}

func (l *limitRecorder) SetAgentState(ctx context.Context, who Requester, r *SetAgentState) (*SetAgentStateResponse, error) {
	l.mu.Lock()
	l.limits = append(l.limits, who.Devices)
	l.mu.Unlock()
	return l.fakeService.SetAgentState(ctx, who, r)
}

func (l *limitRecorder) last(t *testing.T) DeviceLimit {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.limits) == 0 {
		t.Fatal("no SetAgentState reached the Service")
	}
	return l.limits[len(l.limits)-1]
}

func seatedService() *limitRecorder {
	f := newFakeService("4001", "4002", "desk1", "desk2")
	// agent1 at its own line 4001, agent2 a guest at desk1, agent3 a guest
	// at desk2.
	f.seats = map[string]DeviceID{"agent1": "4001", "agent2": "desk1", "agent3": "desk2"}
	return &limitRecorder{fakeService: f}
}

func setAgentXML(device, state, agent string) string {
	return `<SetAgentState ` + ns6 + `><device>` + device + `</device><requestedAgentState>` + state +
		`</requestedAgentState><agentID>` + agent + `</agentID></SetAgentState>`
}

func TestServiceSeesDeviceLimit(t *testing.T) {
	svc := seatedService()
	s := startServer(t, twoUsersConfig(), svc) // alice limited to {4001, desk1}, bob unlimited
	tests := []struct {
		user, password, device, agent string
		want                          string // "" = SetAgentStateResponse
		limited                       bool
	}{
		{"alice", "alice-pw", "4001", "agent3", privilegeViolation, true}, // the attack: logs agent3 off desk2
		{"alice", "alice-pw", "desk1", "agent3", privilegeViolation, true},
		{"alice", "alice-pw", "4001", "agent1", "", true},
		{"alice", "alice-pw", "4001", "agent2", "", true},
		{"bob", "bob-pw", "4001", "agent3", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.user+" "+tt.agent+" at "+tt.device, func(t *testing.T) {
			c := dial(t, s)
			c.openSession(1, login(tt.user, tt.password))
			refusedBefore := requestCount(t, s, "SetAgentState", "privilegeViolationSpecifiedDevice")
			okBefore := requestCount(t, s, "SetAgentState", "ok")
			name, root := c.request(2, setAgentXML(tt.device, "loggedOff", tt.agent))
			if got := errorOf(root); got != tt.want || (tt.want == "" && name != "SetAgentStateResponse") {
				t.Fatalf("answered %s %q, want %q", name, got, tt.want)
			}
			lim := svc.last(t)
			if lim.Limited != tt.limited {
				t.Errorf("Requester.Devices.Limited = %v, want %v", lim.Limited, tt.limited)
			}
			for _, d := range []DeviceID{"4001", "desk1", "4002", "desk2"} {
				if want := !tt.limited || d == "4001" || d == "desk1"; lim.Allows(d) != want {
					t.Errorf("Requester.Devices.Allows(%s) = %v, want %v", d, lim.Allows(d), want)
				}
			}
			// Counted by the request metrics like the front end's own refusals.
			refused, ok := requestCount(t, s, "SetAgentState", "privilegeViolationSpecifiedDevice")-refusedBefore, requestCount(t, s, "SetAgentState", "ok")-okBefore
			if wantRefused := tt.want != ""; refused != map[bool]float64{true: 1}[wantRefused] || ok != map[bool]float64{false: 1}[wantRefused] {
				t.Errorf("counted refused %v ok %v", refused, ok)
			}
		})
	}
	svc.mu.Lock()
	agents := maps.Clone(svc.agents)
	svc.mu.Unlock()
	if _, changed := agents["desk2"]; changed {
		t.Error("a refused request changed agent state at desk2")
	}
}

// The limit the Service sees is the one in force when the request arrives:
// a reload that gives alice desk2 lets her act on agent3 from her next
// request on; one that takes it away refuses again.
func TestServiceSeesReloadedDeviceLimit(t *testing.T) {
	svc := seatedService()
	cfg := twoUsersConfig()
	s := startServer(t, cfg, svc)
	c := dial(t, s)
	c.openSession(1, login("alice", "alice-pw"))
	for i, step := range []struct {
		devices []DeviceID
		want    string
	}{
		{[]DeviceID{"4001", "desk1"}, privilegeViolation},
		{[]DeviceID{"4001", "desk1", "desk2"}, ""},
		{[]DeviceID{"4001"}, privilegeViolation},
	} {
		next := twoUsersConfig()
		next.DeviceLimits = map[string][]DeviceID{"alice": step.devices}
		if err := s.Reload(next); err != nil {
			t.Fatal(err)
		}
		if _, root := c.request(10+i, setAgentXML("4001", "ready", "agent3")); errorOf(root) != step.want {
			t.Errorf("with %v: answered %q, want %q", step.devices, errorOf(root), step.want)
		}
	}
}

// Over WebSocket the limit of the WebSocket listener's user arrives too.
func TestServiceSeesDeviceLimitOverWebSocket(t *testing.T) {
	cfg := testConfig()
	cfg.RequireSession = true
	cfg.WebSocketAuth = Auth{Mode: "password", UserName: "web", Password: "pw"}
	cfg.DeviceLimits = map[string][]DeviceID{"web": {"4001"}}
	svc := seatedService()
	s := NewServer(cfg, svc, testLogger(t))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	url := wsServer(t, s)
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	ws := wsDial(t, url)
	if f := wsRequest(t, ws, 1, login("web", "pw")); parseRoot(t, f.XML).Tag != "StartApplicationSessionPosResponse" {
		t.Fatalf("login answered %s", f.XML)
	}
	for i, agent := range []string{"agent1", "agent2"} {
		f := wsRequest(t, ws, 2+i, setAgentXML("4001", "ready", agent))
		if got, want := errorOf(parseRoot(t, f.XML)), map[string]string{"agent1": "", "agent2": privilegeViolation}[agent]; got != want {
			t.Errorf("%s answered %q, want %q", agent, got, want)
		}
	}
	if lim := svc.last(t); !lim.Limited || !lim.Allows("4001") || lim.Allows("desk1") {
		t.Errorf("Requester.Devices %+v", lim)
	}
}

// levelCounter counts log records by level and message.
type levelCounter struct {
	mu     sync.Mutex
	counts map[string]int // "LEVEL message"
}

func (h *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[r.Level.String()+" "+r.Message]++
	return nil
}
func (h *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelCounter) WithGroup(string) slog.Handler      { return h }

func (h *levelCounter) above(level slog.Level) map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for k, n := range h.counts {
		var l slog.Level
		if err := l.UnmarshalText([]byte(strings.Fields(k)[0])); err == nil && l >= level {
			out[k] = n
		}
	}
	return out
}

// A prober naming agent after agent fills no log: the Service's refusals
// are logged at debug, like the front end's own, and counted.
func TestAgentRefusalsLoggedAtDebug(t *testing.T) {
	logs := &levelCounter{counts: map[string]int{}}
	s := NewServer(twoUsersConfig(), seatedService(), slog.New(logs))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	c := dial(t, s)
	c.openSession(1, login("alice", "alice-pw"))
	before := logs.above(slog.LevelInfo)
	const n = 50
	for i := range n {
		if _, root := c.request(2+i, setAgentXML("4001", "notReady", "agent3")); errorOf(root) != privilegeViolation {
			t.Fatalf("request %d answered %q", i, errorOf(root))
		}
	}
	if after := logs.above(slog.LevelInfo); !maps.Equal(before, after) {
		t.Errorf("refusals logged at info or above: before %v, after %v", before, after)
	}
	logs.mu.Lock()
	debug := logs.counts["DEBUG CSTA request failed"]
	logs.mu.Unlock()
	if debug != n {
		t.Errorf("%d refusals logged at debug, want %d", debug, n)
	}
	if got := requestCount(t, s, "SetAgentState", "privilegeViolationSpecifiedDevice"); got != n {
		t.Errorf("counted %v refusals, want %d", got, n)
	}
}
