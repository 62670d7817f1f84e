package csta

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/broadworks-connector/connector/internal/testtool"
)

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) != "" {
		os.Exit(runBenchServer())
	}
	goleak.VerifyTestMain(m)
}

const (
	ns6      = `xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed6"`
	ns3      = `xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3"`
	nsSess   = `xmlns="http://www.ecma-international.org/standards/ecma-354/appl_session"`
	startEd6 = `<StartApplicationSession ` + nsSess + `><applicationInfo><applicationID>test</applicationID></applicationInfo><requestedProtocolVersions><protocolVersion>http://www.ecma-international.org/standards/ecma-323/csta/ed6</protocolVersion></requestedProtocolVersions><requestedSessionDuration>60</requestedSessionDuration></StartApplicationSession>`
)

func (c *client) openSession(invokeID int, xml string) string {
	c.t.Helper()
	name, root := c.request(invokeID, xml)
	if name != "StartApplicationSessionPosResponse" {
		c.t.Fatalf("StartApplicationSession answered %s", name)
	}
	return root.FindElement("sessionID").Text()
}

// jitterService delays each answer randomly so answers complete out of order.
type jitterService struct{ *fakeService }

func (j jitterService) GetForwarding(ctx context.Context, who Requester, r *GetForwarding) (*GetForwardingResponse, error) {
	time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	return j.fakeService.GetForwarding(ctx, who, r)
}

func TestPipelinedRequestsArePairedByInvokeID(t *testing.T) {
	const n = 1000
	svc := newFakeService()
	for i := 1; i <= n; i++ {
		d := DeviceID(fmt.Sprintf("dev%04d", i))
		svc.devices[d] = true
		svc.forwards[d] = []ForwardListItem{{ForwardingType: ForwardImmediate, ForwardStatus: true, ForwardDN: DeviceID(fmt.Sprint(i))}}
	}
	cfg := testConfig()
	cfg.MaxOutstandingRequests = n
	s := startServer(t, cfg, jitterService{svc})
	c := dial(t, s)

	// Everything is written before anything is read.
	var stream []byte
	for i := 1; i <= n; i++ {
		xml := fmt.Sprintf(`<GetForwarding %s><device>dev%04d</device></GetForwarding>`, ns6, i)
		stream, _ = AppendFrame(stream, i, []byte(xml))
	}
	go c.nc.Write(stream)

	seen := make(map[int]bool, n)
	inOrder := true
	for k := 1; k <= n; k++ {
		f := c.read()
		if f.InvokeID != k {
			inOrder = false
		}
		if seen[f.InvokeID] {
			t.Fatalf("invoke ID %d answered twice", f.InvokeID)
		}
		seen[f.InvokeID] = true
		root := parseRoot(t, f.XML)
		dn := root.FindElement("forwardingList/forwardListItem/forwardDN")
		if root.Tag != "GetForwardingResponse" || dn == nil || dn.Text() != fmt.Sprint(f.InvokeID) {
			t.Fatalf("invoke %d got the wrong answer: %s", f.InvokeID, f.XML)
		}
	}
	t.Logf("%d answers paired; completed in request order: %v", n, inOrder)
}

func TestBadMessagesAreAnsweredAndConnectionStays(t *testing.T) {
	s := startServer(t, testConfig(), newFakeService("4711"))
	c := dial(t, s)
	tests := []struct {
		name, xml, want string
	}{
		{"garbage inside a good frame", "this is <<< not XML", "operation/generic"},
		{"truncated XML", "<GetDoNotDisturb><device>4711", "operation/generic"},
		{"empty document", "", "operation/generic"},
		{"unknown request", `<MakeCall ` + ns6 + `><callingDevice>4711</callingDevice><calledDirectoryNumber>1</calledDirectoryNumber></MakeCall>`, "operation/serviceNotSupported"},
		{"unknown device", `<GetDoNotDisturb ` + ns6 + `><device>999</device></GetDoNotDisturb>`, "operation/invalidDeviceID"},
		{"bad agent state", `<SetAgentState ` + ns6 + `><device>4711</device><requestedAgentState>sleeping</requestedAgentState></SetAgentState>`, "operation/invalidAgentState"},
		{"unsupported encoding", `<?xml version="1.0" encoding="EBCDIC"?><GetDoNotDisturb/>`, "operation/generic"},
		{"too deep", strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40), "systemResourceAvailibility/resourceLimitExceeded"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.t = t
			name, root := c.request(100+i, tt.xml)
			if got := errorOf(root); got != tt.want {
				t.Fatalf("answer %s %q, want CSTAErrorCode %s", name, got, tt.want)
			}
		})
	}
	c.t = t
	if name, _ := c.request(1, `<GetDoNotDisturb `+ns6+`><device>4711</device></GetDoNotDisturb>`); name != "GetDoNotDisturbResponse" {
		t.Fatalf("after bad messages, a good request got %s", name)
	}
}

func TestUntrustworthyHeaderClosesConnection(t *testing.T) {
	s := startServer(t, testConfig(), newFakeService())
	for name, raw := range map[string]string{
		"HTTP request":       "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"length below 8":     "\x00\x00\x00\x040001",
		"non-digit invoke":   "\x00\x00\x00\x0c00x1<a/>",
		"unknown format hdr": "\x01\x02\x00\x0c0001<a/>",
	} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, s)
			c.sendRaw([]byte(raw))
			c.expectClosed()
		})
	}
}

func TestOversizeFrameIsAnsweredAndSkipped(t *testing.T) {
	cfg := testConfig()
	cfg.MaxFrameBytes = 200
	s := startServer(t, cfg, newFakeService("4711"))
	c := dial(t, s)
	big := `<GetDoNotDisturb ` + ns6 + `><device>4711</device><extensions>` + strings.Repeat("x", 300) + `</extensions></GetDoNotDisturb>`
	if _, root := c.request(5, big); errorOf(root) != "systemResourceAvailibility/resourceLimitExceeded" {
		t.Fatalf("oversize frame answered %s", errorOf(root))
	}
	if name, _ := c.request(6, `<GetDoNotDisturb `+ns6+`><device>4711</device></GetDoNotDisturb>`); name != "GetDoNotDisturbResponse" {
		t.Fatalf("next request answered %s", name)
	}
}

func TestOutstandingRequestLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxOutstandingRequests = 2
	svc := newFakeService()
	svc.stall = make(chan struct{})
	s := startServer(t, cfg, svc)
	c := dial(t, s)
	for i := 1; i <= 2; i++ {
		c.send(i, `<GetDoNotDisturb `+ns6+`><device>stall</device></GetDoNotDisturb>`)
	}
	_, root := c.request(3, `<GetDoNotDisturb `+ns6+`><device>stall</device></GetDoNotDisturb>`)
	if got := errorOf(root); got != "subscribedResourceAvailability/outstandingReqLimitExceeded" {
		t.Fatalf("third request answered %q", got)
	}
	close(svc.stall)
	got := map[int]string{}
	for range 2 {
		f := c.read()
		got[f.InvokeID] = parseRoot(t, f.XML).Tag
	}
	if got[1] != "GetDoNotDisturbResponse" || got[2] != "GetDoNotDisturbResponse" {
		t.Fatalf("stalled requests answered %v", got)
	}
}

func TestRequestDeadlineAnswersResourceBusy(t *testing.T) {
	cfg := testConfig()
	cfg.RequestTimeout = 50 * time.Millisecond
	svc := newFakeService()
	svc.stall = make(chan struct{}) // never released: only the deadline ends it
	s := startServer(t, cfg, svc)
	c := dial(t, s)
	_, root := c.request(7, `<SetDoNotDisturb `+ns6+`><device>stall</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`)
	if got := errorOf(root); got != "systemResourceAvailibility/resourceBusy" {
		t.Fatalf("stalled request answered %q", got)
	}
	// Exactly one answer: the next frame belongs to the next request.
	if name, _ := c.request(8, `<RequestSystemStatus `+ns6+`/>`); name != "RequestSystemStatusResponse" {
		t.Fatalf("next answer %s", name)
	}
}

func TestNoServiceAnswersOutOfService(t *testing.T) {
	s := startServer(t, testConfig(), nil)
	c := dial(t, s)
	for i, req := range []string{
		`<SetAgentState ` + ns6 + `><device>4711</device><requestedAgentState>ready</requestedAgentState></SetAgentState>`,
		`<MonitorStart ` + ns6 + `><monitorObject><deviceObject>4711</deviceObject></monitorObject></MonitorStart>`,
	} {
		if _, root := c.request(i+1, req); errorOf(root) != "systemResourceAvailibility/resourceOutOfService" {
			t.Fatalf("request %d answered %q", i+1, errorOf(root))
		}
	}
}

func TestSessionLifecycle(t *testing.T) {
	s := startServer(t, testConfig(), newFakeService("4711"))
	c := dial(t, s)
	id := c.openSession(1, startEd6)
	if name, _ := c.request(2, startEd6); name != "StartApplicationSessionNegResponse" {
		t.Fatalf("second session on one connection answered %s", name)
	}
	name, root := c.request(3, `<ResetApplicationSessionTimer `+nsSess+`><sessionID>`+id+`</sessionID><requestedSessionDuration>5</requestedSessionDuration></ResetApplicationSessionTimer>`)
	if name != "ResetApplicationSessionTimerPosResponse" || root.FindElement("actualSessionDuration").Text() != "10" {
		t.Fatalf("reset answered %s, duration should be clamped to the 10 s minimum", name)
	}
	if name, root := c.request(4, `<ResetApplicationSessionTimer `+nsSess+`><sessionID>nope</sessionID></ResetApplicationSessionTimer>`); name != "ResetApplicationSessionTimerNegResponse" || root.FindElement("errorCode/definedError").Text() != "invalidSessionID" {
		t.Fatalf("reset of a wrong session answered %s", name)
	}
	if name, _ := c.request(5, `<StopApplicationSession `+nsSess+`><sessionID>`+id+`</sessionID><sessionEndReason><definedEndReason>normal</definedEndReason></sessionEndReason></StopApplicationSession>`); name != "StopApplicationSessionPosResponse" {
		t.Fatalf("stop answered %s", name)
	}
	if name, _ := c.request(6, `<StopApplicationSession `+nsSess+`><sessionID>`+id+`</sessionID></StopApplicationSession>`); name != "StopApplicationSessionNegResponse" {
		t.Fatalf("second stop answered %s", name)
	}
}

func TestEditionNegotiatedAndMirrored(t *testing.T) {
	s := startServer(t, testConfig(), newFakeService("4711"))
	c := dial(t, s)
	// Before a session: the request's namespace is mirrored, none included.
	for i, tc := range []struct{ reqNS, wantNS string }{
		{ns3, "http://www.ecma-international.org/standards/ecma-323/csta/ed3"},
		{`xmlns="http://www.ecma.ch/standards/ecma-323/csta/ed2"`, "http://www.ecma.ch/standards/ecma-323/csta/ed2"},
		{"", ""},
	} {
		_, root := c.request(i+1, `<GetDoNotDisturb `+tc.reqNS+`><device>4711</device></GetDoNotDisturb>`)
		if got := root.NamespaceURI(); got != tc.wantNS {
			t.Errorf("request in %q answered in %q", tc.reqNS, got)
		}
	}
	// Avaya asks for ed3/priv5 and gets its own string back; answers use ed3
	// even when a request arrives without a namespace.
	name, root := c.request(10, `<StartApplicationSession `+nsSess+`><applicationInfo><applicationID>a</applicationID></applicationInfo><requestedProtocolVersions><protocolVersion>urn:unknown</protocolVersion><protocolVersion>http://www.ecma-international.org/standards/ecma-323/csta/ed3/priv5</protocolVersion></requestedProtocolVersions></StartApplicationSession>`)
	if name != "StartApplicationSessionPosResponse" || root.FindElement("actualProtocolVersion").Text() != "http://www.ecma-international.org/standards/ecma-323/csta/ed3/priv5" {
		t.Fatalf("negotiation answered %s", name)
	}
	_, root = c.request(11, `<GetDoNotDisturb><device>4711</device></GetDoNotDisturb>`)
	if got := root.NamespaceURI(); got != "http://www.ecma-international.org/standards/ecma-323/csta/ed3" {
		t.Fatalf("after negotiating ed3, answered in %q", got)
	}
	c2 := dial(t, s)
	name, root = c2.request(1, `<StartApplicationSession `+nsSess+`><applicationInfo><applicationID>a</applicationID></applicationInfo><requestedProtocolVersions><protocolVersion>http://www.ecma-international.org/standards/ecma-323/csta/ed9</protocolVersion></requestedProtocolVersions></StartApplicationSession>`)
	if name != "StartApplicationSessionNegResponse" || root.FindElement("errorCode/definedError").Text() != "requestedProtocolVersionNotSupported" {
		t.Fatalf("unsupported version answered %s", name)
	}
}

const (
	loginPlain = `<StartApplicationSession ` + nsSess + `><applicationInfo><applicationID>osbiz</applicationID><applicationSpecificInfo><user>%s</user><password>%s</password></applicationSpecificInfo></applicationInfo><requestedProtocolVersions><protocolVersion>http://www.ecma-international.org/standards/ecma-323/csta/ed4</protocolVersion></requestedProtocolVersions></StartApplicationSession>`
	loginAvaya = `<StartApplicationSession ` + nsSess + `><applicationInfo><applicationID>aes</applicationID><applicationSpecificInfo><SessionLoginInfo xmlns="http://www.avaya.com/csta"><userName>%s</userName><password>%s</password><sessionCleanupDelay>60</sessionCleanupDelay><sessionID></sessionID></SessionLoginInfo></applicationSpecificInfo></applicationInfo><requestedProtocolVersions><protocolVersion>http://www.ecma-international.org/standards/ecma-323/csta/ed3/priv5</protocolVersion></requestedProtocolVersions></StartApplicationSession>`
)

func TestAuthentication(t *testing.T) {
	cfg := testConfig()
	cfg.TCPAuth = Auth{Mode: "password", UserName: "cti", Password: "s3cret"}
	s := startServer(t, cfg, newFakeService("4711"))
	tests := []struct {
		name   string
		xml    string
		accept bool
	}{
		{"plain user/password", fmt.Sprintf(loginPlain, "cti", "s3cret"), true},
		{"Avaya SessionLoginInfo", fmt.Sprintf(loginAvaya, "cti", "s3cret"), true},
		{"wrong password", fmt.Sprintf(loginPlain, "cti", "guess"), false},
		{"wrong user", fmt.Sprintf(loginAvaya, "root", "s3cret"), false},
		{"no credentials", startEd6, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, s)
			// Before the session, device requests are refused.
			if _, root := c.request(1, `<GetDoNotDisturb `+ns6+`><device>4711</device></GetDoNotDisturb>`); errorOf(root) != "security/securityInfoViolated" {
				t.Fatalf("request before session answered %q", errorOf(root))
			}
			name, root := c.request(2, tt.xml)
			if tt.accept {
				if name != "StartApplicationSessionPosResponse" {
					t.Fatalf("login answered %s", name)
				}
				if name, _ := c.request(3, `<GetDoNotDisturb `+ns6+`><device>4711</device></GetDoNotDisturb>`); name != "GetDoNotDisturbResponse" {
					t.Fatalf("request in session answered %s", name)
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

func TestRequireSessionWithoutAuth(t *testing.T) {
	cfg := testConfig()
	cfg.RequireSession = true
	s := startServer(t, cfg, newFakeService("4711"))
	c := dial(t, s)
	if _, root := c.request(1, `<MonitorStart `+ns6+`><monitorObject><deviceObject>4711</deviceObject></monitorObject></MonitorStart>`); errorOf(root) != "security/securityInfoViolated" {
		t.Fatalf("MonitorStart before session answered %q", errorOf(root))
	}
	// System status is answered without a session: clients poll it as a keep-alive.
	if name, _ := c.request(2, `<SystemStatus `+ns6+`><systemStatus>normal</systemStatus></SystemStatus>`); name != "SystemStatusResponse" {
		t.Fatalf("SystemStatus answered %s", name)
	}
	c.openSession(3, startEd6)
	if name, _ := c.request(4, `<MonitorStart `+ns6+`><monitorObject><deviceObject>4711</deviceObject></monitorObject></MonitorStart>`); name != "MonitorStartResponse" {
		t.Fatalf("MonitorStart in session answered %s", name)
	}
}

func TestMonitorsReceiveFilteredEvents(t *testing.T) {
	svc := newFakeService("4711", "4712")
	s := startServer(t, testConfig(), svc)
	svc.publish = s.Publish

	watcher := dial(t, s)
	watcher.openSession(1, startEd6)
	// Suppress agentReady (true = filter out); let notReady through.
	name, root := watcher.request(2, `<MonitorStart `+ns6+`><monitorObject><deviceObject>4711</deviceObject></monitorObject><requestedMonitorFilter><logicalDeviceFeature><agentReady>true</agentReady><agentNotReady>false</agentNotReady></logicalDeviceFeature></requestedMonitorFilter><monitorType>device</monitorType></MonitorStart>`)
	if name != "MonitorStartResponse" {
		t.Fatalf("MonitorStart answered %s", name)
	}
	ref := root.FindElement("monitorCrossRefID").Text()
	if v := root.FindElement("actualMonitorFilter/logicalDeviceFeature/agentReady"); v == nil || v.Text() != "true" {
		t.Fatalf("actualMonitorFilter does not echo the suppressed agentReady")
	}
	_, root2 := watcher.request(3, `<MonitorStart `+ns6+`><monitorObject><deviceObject>4712</deviceObject></monitorObject></MonitorStart>`)
	if ref2 := root2.FindElement("monitorCrossRefID").Text(); ref2 == ref {
		t.Fatalf("two monitors share crossRefID %s", ref)
	}

	agent := dial(t, s)
	agent.request(1, `<SetAgentState `+ns3+`><device>4711</device><requestedAgentState>ready</requestedAgentState></SetAgentState>`)
	agent.request(2, `<SetAgentState `+ns3+`><device>4711</device><requestedAgentState>notReady</requestedAgentState><extensions><privateData><private xmlns:pri="http://schema.broadsoft.com/CSTAPrivateData"><pri:AgentNotReadyReasonValue>3</pri:AgentNotReadyReasonValue></private></privateData></extensions></SetAgentState>`)

	// The first event the watcher sees is AgentNotReady: AgentReady was filtered.
	ev := watcher.read()
	root = parseRoot(t, ev.XML)
	if ev.InvokeID != EventInvokeID || root.Tag != "AgentNotReadyEvent" {
		t.Fatalf("event %04d %s, want 9999 AgentNotReadyEvent", ev.InvokeID, root.Tag)
	}
	if root.NamespaceURI() != Edition6.Namespace() {
		t.Fatalf("event in %q, want the negotiated ed6", root.NamespaceURI())
	}
	if root.FindElement("monitorCrossRefID").Text() != ref || root.FindElement("agentDevice/deviceIdentifier").Text() != "4711" {
		t.Fatalf("event does not name the monitor and device: %s", ev.XML)
	}
	reason := root.FindElement("extensions/privateData/private/AgentNotReadyReasonValue")
	if reason == nil || reason.Text() != "3" || reason.NamespaceURI() != NSBroadSoftPrivate {
		t.Fatalf("reason code missing from event: %s", ev.XML)
	}

	if name, _ := watcher.request(4, `<MonitorStop `+ns6+`><monitorCrossRefID>`+ref+`</monitorCrossRefID></MonitorStop>`); name != "MonitorStopResponse" {
		t.Fatalf("MonitorStop answered %s", name)
	}
	if _, root := watcher.request(5, `<MonitorStop `+ns6+`><monitorCrossRefID>`+ref+`</monitorCrossRefID></MonitorStop>`); errorOf(root) != "operation/invalidMonitorCrossRefID" {
		t.Fatalf("second MonitorStop answered %q", errorOf(root))
	}
	// After MonitorStop, 4711's events no longer arrive; 4712's still do.
	agent.request(3, `<SetDoNotDisturb `+ns3+`><device>4711</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`)
	agent.request(4, `<SetDoNotDisturb `+ns3+`><device>4712</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`)
	ev = watcher.read()
	root = parseRoot(t, ev.XML)
	if root.Tag != "DoNotDisturbEvent" || root.FindElement("device/deviceIdentifier").Text() != "4712" {
		t.Fatalf("after MonitorStop got %s", ev.XML)
	}
	if s.Stats().Monitors != 1 {
		t.Fatalf("server holds %d monitors, want 1", s.Stats().Monitors)
	}
}

func TestMonitorStartRefusedDevice(t *testing.T) {
	s := startServer(t, testConfig(), newFakeService("4711"))
	c := dial(t, s)
	if _, root := c.request(1, `<MonitorStart `+ns6+`><monitorObject><deviceObject>0000</deviceObject></monitorObject></MonitorStart>`); errorOf(root) != "operation/invalidDeviceID" {
		t.Fatalf("unknown device answered %q", errorOf(root))
	}
	cfg := testConfig()
	cfg.MaxMonitorsPerConn = 1
	s2 := startServer(t, cfg, newFakeService("4711"))
	c2 := dial(t, s2)
	c2.request(1, `<MonitorStart `+ns6+`><monitorObject><deviceObject>4711</deviceObject></monitorObject></MonitorStart>`)
	if _, root := c2.request(2, `<MonitorStart `+ns6+`><monitorObject><deviceObject>4711</deviceObject></monitorObject></MonitorStart>`); errorOf(root) != "subscribedResourceAvailability/objectMonitorLimitExceeded" {
		t.Fatalf("monitor over the limit answered %q", errorOf(root))
	}
}

func TestMonitorsEndWithTheConnection(t *testing.T) {
	s := startServer(t, testConfig(), newFakeService("4711"))
	c := dial(t, s)
	c.request(1, `<MonitorStart `+ns6+`><monitorObject><deviceObject>4711</deviceObject></monitorObject></MonitorStart>`)
	c.nc.Close()
	waitFor(t, func() bool { return s.Stats().Monitors == 0 && s.Stats().Connections == 0 })
}

// waitFor polls a condition that a goroutine elsewhere will make true.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testtool.WaitFor(t, 5*time.Second, "the condition", cond)
}

func TestSystemStatusOnLinkChange(t *testing.T) {
	s := startServer(t, testConfig(), newFakeService())
	c := dial(t, s)
	name, root := c.request(1, `<SystemRegister `+ns6+`><requestTypes><systemStatus>true</systemStatus></requestTypes></SystemRegister>`)
	if name != "SystemRegisterResponse" {
		t.Fatalf("SystemRegister answered %s", name)
	}
	regID := root.FindElement("sysStatRegisterID").Text()
	s.SetSystemStatus(SystemDisabled)
	f := c.read()
	root = parseRoot(t, f.XML)
	if f.InvokeID != EventInvokeID || root.Tag != "SystemStatus" || root.FindElement("systemStatus").Text() != "disabled" || root.FindElement("sysStatRegisterID").Text() != regID {
		t.Fatalf("link change sent %04d %s", f.InvokeID, f.XML)
	}
	c.send(EventInvokeID, `<SystemStatusResponse `+ns6+`/>`) // the client's answer gets none
	if _, root := c.request(2, `<RequestSystemStatus `+ns6+`/>`); root.FindElement("systemStatus").Text() != "disabled" {
		t.Fatalf("RequestSystemStatus does not report the link state")
	}
}

func TestConnectionLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnections = 2
	s := startServer(t, cfg, newFakeService())
	a, b := dial(t, s), dial(t, s)
	a.request(1, `<RequestSystemStatus/>`)
	b.request(1, `<RequestSystemStatus/>`)
	dial(t, s).expectClosed()
	a.nc.Close()
	waitFor(t, func() bool { return s.Stats().Connections == 1 })
	if name, _ := dial(t, s).request(1, `<RequestSystemStatus/>`); name != "RequestSystemStatusResponse" {
		t.Fatalf("after a slot freed, a new client got %s", name)
	}
}

func TestSlowConsumerIsDisconnected(t *testing.T) {
	cfg := testConfig()
	cfg.WriteQueueLength = 256
	cfg.WriteTimeout = 200 * time.Millisecond
	svc := newFakeService("4711")
	s := startServer(t, cfg, svc)
	stalled := dial(t, s) // never reads after its MonitorStart answer
	stalled.request(1, `<MonitorStart `+ns6+`><monitorObject><deviceObject>4711</deviceObject></monitorObject></MonitorStart>`)
	healthy := dial(t, s)
	healthy.request(1, `<MonitorStart `+ns6+`><monitorObject><deviceObject>4711</deviceObject></monitorObject></MonitorStart>`)

	// Events go out in rounds of 100; the next round waits until the healthy
	// client has read the last one, so only the stalled client falls behind.
	const rounds, perRound = 200, 100
	read := make(chan struct{})
	go func() {
		defer close(read)
		for i := 0; i < rounds*perRound; i++ {
			if _, err := healthy.fr.ReadFrame(); err != nil {
				t.Errorf("healthy client after %d events: %v", i, err)
				return
			}
			if i%perRound == perRound-1 {
				read <- struct{}{}
			}
		}
	}()
	ev := Event{Kind: EventForwarding, Device: "4711", ForwardingType: ForwardImmediate, ForwardStatus: true, ForwardTo: DeviceID(strings.Repeat("9", 400))}
	for range rounds {
		for range perRound {
			s.Publish(ev) // never blocks, whatever the clients do
		}
		if _, ok := <-read; !ok {
			break
		}
	}
	waitFor(t, func() bool { return s.Stats().Connections == 1 })
}

func TestShutdownTerminatesSessions(t *testing.T) {
	s := NewServer(testConfig(), newFakeService(), testLogger(t))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	id := c.openSession(1, startEd6)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	f := c.read()
	root := parseRoot(t, f.XML)
	if root.Tag != "ApplicationSessionTerminated" || root.FindElement("sessionID").Text() != id || root.FindElement("sessionTermReason/serverTermReason") == nil {
		t.Fatalf("shutdown sent %s", f.XML)
	}
	c.expectClosed()
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Fatal("listener still accepts after shutdown")
	}
}

// Close is a crash as clients see it: the connection drops with no
// ApplicationSessionTerminated and no answer to the request in progress.
func TestCloseDropsWithoutAWord(t *testing.T) {
	svc := newFakeService()
	svc.stall = make(chan struct{}) // never released
	s := NewServer(testConfig(), svc, testLogger(t))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	c.openSession(1, startEd6)
	c.send(2, `<GetDoNotDisturb `+ns6+`><device>stall</device></GetDoNotDisturb>`)
	waitFor(t, func() bool { svc.mu.Lock(); defer svc.mu.Unlock(); return len(svc.requests) > 0 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if f, err := c.fr.ReadFrame(); err == nil {
		t.Fatalf("Close sent %s", f.XML)
	} else if err != io.EOF && !isConnReset(err) {
		t.Fatalf("expected the connection to drop, got %v", err)
	}
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Fatal("listener still accepts after Close")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown after Close: %v", err)
	}
}

func TestReloadRefusesListenChange(t *testing.T) {
	s := NewServer(testConfig(), nil, nil)
	cfg := testConfig()
	cfg.Listen = "127.0.0.1:1"
	if err := s.Reload(cfg); err == nil || !strings.Contains(err.Error(), "csta.listen") {
		t.Fatalf("Reload = %v, want a refusal naming csta.listen", err)
	}
	cfg = testConfig()
	cfg.MaxOutstandingRequests = 7
	if err := s.Reload(cfg); err != nil || s.config().MaxOutstandingRequests != 7 {
		t.Fatalf("Reload of a limit: %v", err)
	}
}
