package csta

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/broadworks-connector/connector/internal/xmlcheck"
)

// Codec tests straight against Decode / Encode / AppendEvent, no server.

const (
	codecNS2  = "http://www.ecma.ch/standards/ecma-323/csta/ed2"
	codecNS3  = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
	codecNS4  = "http://www.ecma-international.org/standards/ecma-323/csta/ed4"
	codecNS5  = "http://www.ecma-international.org/standards/ecma-323/csta/ed5"
	codecNS6  = "http://www.ecma-international.org/standards/ecma-323/csta/ed6"
	codecNSS  = "http://www.ecma-international.org/standards/ecma-354/appl_session"
	codecNSB  = "http://schema.broadsoft.com/CSTAPrivateData"
	codecDecl = `<?xml version="1.0" encoding="UTF-8"?>`
)

// codecDoc builds <root xmlns="ns">inner</root>; ns "" writes no xmlns.
func codecDoc(ns, root, inner string) string {
	if ns == "" {
		return "<" + root + ">" + inner + "</" + root + ">"
	}
	return `<` + root + ` xmlns="` + ns + `">` + inner + `</` + root + `>`
}

func codecFilter(kinds ...EventKind) MonitorFilter {
	var f MonitorFilter
	for _, k := range kinds {
		f = f.Suppress(k, true)
	}
	return f
}

// codecAllBut suppresses every kind except the given ones.
func codecAllBut(kinds ...EventKind) MonitorFilter {
	var f MonitorFilter
	for k := EventKind(1); k < eventKindCount; k++ {
		f = f.Suppress(k, true)
	}
	for _, k := range kinds {
		f = f.Suppress(k, false)
	}
	return f
}

type codecDecodeCase struct {
	name  string
	doc   string
	want  Message
	ed    Edition
	known bool
}

var codecDecodeCases = []codecDecodeCase{
	// ---- ECMA-354 ----
	{name: "start session schema order, OpenScape credentials",
		doc: codecDoc(codecNSS, "StartApplicationSession", `<applicationInfo><applicationID>app</applicationID><applicationSpecificInfo><user>u</user><password>p</password></applicationSpecificInfo></applicationInfo><requestedProtocolVersions><protocolVersion>`+codecNS4+`</protocolVersion><protocolVersion> `+codecNS3+`/priv5 </protocolVersion></requestedProtocolVersions><requestedSessionDuration>300</requestedSessionDuration><extensions/>`),
		want: StartApplicationSession{ApplicationID: "app", UserName: "u", Password: "p", HasCredentials: true,
			ProtocolVersions: []string{codecNS4, codecNS3 + "/priv5"}, RequestedSessionDuration: 300}},
	{name: "start session reversed order, Avaya SessionLoginInfo",
		doc: codecDoc(codecNSS, "StartApplicationSession", `<requestedSessionDuration> 60 </requestedSessionDuration><requestedProtocolVersions><protocolVersion>`+codecNS6+`</protocolVersion></requestedProtocolVersions><applicationInfo><applicationSpecificInfo><SessionLoginInfo xmlns="http://www.avaya.com/csta"><sessionID></sessionID><password>pw</password><userName>avaya</userName></SessionLoginInfo></applicationSpecificInfo><applicationID>aes</applicationID></applicationInfo>`),
		want: StartApplicationSession{ApplicationID: "aes", UserName: "avaya", Password: "pw", HasCredentials: true,
			ProtocolVersions: []string{codecNS6}, RequestedSessionDuration: 60}},
	{name: "start session password only",
		doc:  codecDoc(codecNSS, "StartApplicationSession", `<applicationInfo><applicationID>a</applicationID><applicationSpecificInfo><password>p</password></applicationSpecificInfo></applicationInfo>`),
		want: StartApplicationSession{ApplicationID: "a", Password: "p", HasCredentials: true}},
	{name: "start session credentials are not hex-decoded",
		doc:  codecDoc(codecNSS, "StartApplicationSession", `<applicationInfo><applicationSpecificInfo><user>31323334</user><password>31323334</password></applicationSpecificInfo></applicationInfo>`),
		want: StartApplicationSession{UserName: "31323334", Password: "31323334", HasCredentials: true}},
	{name: "start session minimal, empty versions skipped",
		doc:  codecDoc(codecNSS, "StartApplicationSession", `<applicationInfo><applicationID>x</applicationID><applicationSpecificInfo><other>1</other></applicationSpecificInfo></applicationInfo><requestedProtocolVersions><protocolVersion/><protocolVersion>  </protocolVersion></requestedProtocolVersions><requestedSessionDuration></requestedSessionDuration>`),
		want: StartApplicationSession{ApplicationID: "x"}},
	{name: "start session latin1",
		doc:  "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>" + codecDoc(codecNSS, "StartApplicationSession", "<applicationInfo><applicationID>Zentrale M\xfcnchen</applicationID></applicationInfo>"),
		want: StartApplicationSession{ApplicationID: "Zentrale München"}},
	{name: "stop session defined reason",
		doc:  codecDoc(codecNSS, "StopApplicationSession", `<sessionEndReason><definedEndReason>normal</definedEndReason></sessionEndReason><sessionID> 7F3A0C21 </sessionID>`),
		want: StopApplicationSession{SessionID: "7F3A0C21", DefinedEndReason: "normal"}},
	{name: "stop session app reason in the ed3 namespace",
		doc:  codecDoc(codecNS3, "StopApplicationSession", `<sessionID>s</sessionID><sessionEndReason><appEndReason>Application Request</appEndReason></sessionEndReason>`),
		want: StopApplicationSession{SessionID: "s", AppEndReason: "Application Request"}, ed: Edition3, known: true},
	{name: "stop session bare",
		doc:  codecDoc(codecNSS, "StopApplicationSession", ``),
		want: StopApplicationSession{}},
	{name: "reset timer",
		doc:  codecDoc(codecNSS, "ResetApplicationSessionTimer", `<requestedSessionDuration>60</requestedSessionDuration><sessionID>s1</sessionID>`),
		want: ResetApplicationSessionTimer{SessionID: "s1", RequestedSessionDuration: 60}},
	{name: "reset timer without duration",
		doc:  codecDoc(codecNSS, "ResetApplicationSessionTimer", `<sessionID>s1</sessionID>`),
		want: ResetApplicationSessionTimer{SessionID: "s1"}},

	// ---- system services ----
	{name: "system status reversed",
		doc:  codecDoc(codecNS6, "SystemStatus", `<systemStatus>overloadImminent</systemStatus><sysStatRegisterID>7</sysStatRegisterID><extensions/>`),
		want: SystemStatus{SysStatRegisterID: "7", SystemStatus: SystemOverloadImminent}, ed: Edition6, known: true},
	{name: "system status empty",
		doc:  codecDoc(codecNS4, "SystemStatus", ``),
		want: SystemStatus{}, ed: Edition4, known: true},
	{name: "system register without requestTypes",
		doc:  codecDoc(codecNS6, "SystemRegister", ``),
		want: SystemRegister{SystemStatusRequested: true}, ed: Edition6, known: true},
	{name: "system register requestTypes without systemStatus",
		doc:  codecDoc(codecNS6, "SystemRegister", `<requestTypes><requestSystemStatus>true</requestSystemStatus></requestTypes>`),
		want: SystemRegister{SystemStatusRequested: true}, ed: Edition6, known: true},
	{name: "system register systemStatus false",
		doc:  codecDoc(codecNS6, "SystemRegister", `<requestedStatusFilter><normal>true</normal></requestedStatusFilter><requestTypes><systemStatus>false</systemStatus></requestTypes>`),
		want: SystemRegister{}, ed: Edition6, known: true},
	{name: "system register systemStatus 0",
		doc:  codecDoc(codecNS6, "SystemRegister", `<requestTypes><systemStatus>0</systemStatus></requestTypes>`),
		want: SystemRegister{}, ed: Edition6, known: true},
	{name: "request system status",
		doc:  codecDoc(codecNS5, "RequestSystemStatus", `<extensions/><sysStatRegisterID>3</sysStatRegisterID>`),
		want: RequestSystemStatus{SysStatRegisterID: "3"}, ed: Edition5, known: true},

	// ---- monitoring ----
	{name: "monitor start psco",
		doc:  codecDoc(codecNS4, "MonitorStart", `<monitorObject><deviceObject typeOfNumber="dialingNumber">212700</deviceObject></monitorObject><monitorType>device</monitorType>`),
		want: MonitorStart{Device: "212700"}, ed: Edition4, known: true},
	{name: "monitor start deviceObject under the root, empty monitorType",
		doc:  codecDoc("", "MonitorStart", `<monitorType/><deviceObject>4711</deviceObject>`),
		want: MonitorStart{Device: "4711"}, known: true},
	{name: "monitor start filter in any order, unknown flags ignored",
		doc:  codecDoc(codecNS6, "MonitorStart", `<requestedMonitorFilter><maintenance><outOfService>1</outOfService><backInService>0</backInService></maintenance><callcontrol><delivered>true</delivered></callcontrol><logicalDeviceFeature><forwarding>true</forwarding><callBack>true</callBack><agentLoggedOn>true</agentLoggedOn><agentReady>false</agentReady></logicalDeviceFeature></requestedMonitorFilter><monitorType>device</monitorType><monitorObject><deviceObject>4711</deviceObject></monitorObject>`),
		want: MonitorStart{Device: "4711", HasFilter: true, Filter: codecFilter(EventOutOfService, EventForwarding, EventAgentLoggedOn)},
		ed:   Edition6, known: true},
	{name: "monitor start filter all false",
		doc:  codecDoc(codecNS6, "MonitorStart", `<monitorObject><deviceObject>4711</deviceObject></monitorObject><requestedMonitorFilter><logicalDeviceFeature><agentBusy>false</agentBusy></logicalDeviceFeature></requestedMonitorFilter>`),
		want: MonitorStart{Device: "4711", HasFilter: true}, ed: Edition6, known: true},
	{name: "monitor start empty filter",
		doc:  codecDoc(codecNS6, "MonitorStart", `<monitorObject><deviceObject>4711</deviceObject></monitorObject><requestedMonitorFilter/>`),
		want: MonitorStart{Device: "4711", HasFilter: true}, ed: Edition6, known: true},
	{name: "monitor start Avaya invertFilter",
		doc:  codecDoc(codecNS3, "MonitorStart", `<extensions><privateData><private><AvayaEvents><invertFilter>true</invertFilter></AvayaEvents></private></privateData></extensions><monitorObject><deviceObject>4711:CM::0</deviceObject></monitorObject><requestedMonitorFilter><logicalDeviceFeature><agentReady>true</agentReady><agentWorkingAfterCall>false</agentWorkingAfterCall><agentNotReady>true</agentNotReady></logicalDeviceFeature></requestedMonitorFilter>`),
		want: MonitorStart{Device: "4711:CM::0", HasFilter: true, FilterInverted: true, Filter: codecAllBut(EventAgentReady, EventAgentNotReady)},
		ed:   Edition3, known: true},
	{name: "monitor start invertFilter false",
		doc:  codecDoc(codecNS3, "MonitorStart", `<monitorObject><deviceObject>4711</deviceObject></monitorObject><requestedMonitorFilter><logicalDeviceFeature><agentReady>true</agentReady></logicalDeviceFeature></requestedMonitorFilter><extensions><privateData><private><AvayaEvents><invertFilter>false</invertFilter></AvayaEvents></private></privateData></extensions>`),
		want: MonitorStart{Device: "4711", HasFilter: true, Filter: codecFilter(EventAgentReady)}, ed: Edition3, known: true},
	{name: "monitor start invertFilter without a filter",
		doc:  codecDoc(codecNS3, "MonitorStart", `<monitorObject><deviceObject>4711</deviceObject></monitorObject><extensions><privateData><private><AvayaEvents><invertFilter>true</invertFilter></AvayaEvents></private></privateData></extensions>`),
		want: MonitorStart{Device: "4711"}, ed: Edition3, known: true},
	{name: "monitor stop",
		doc:  codecDoc(codecNS3, "MonitorStop", `<extensions/><monitorCrossRefID> 99fda87c </monitorCrossRefID>`),
		want: MonitorStop{MonitorCrossRefID: "99fda87c"}, ed: Edition3, known: true},

	// ---- agent ----
	{name: "set agent state schema order, every field",
		doc:  codecDoc(codecNS6, "SetAgentState", `<device>4711</device><requestedAgentState>notReady</requestedAgentState><agentID>agent-4711</agentID><password>secret</password><group>5000</group><extensions><privateData><private xmlns:pri="`+codecNSB+`"><pri:AgentNotReadyReasonValue> 3 </pri:AgentNotReadyReasonValue></private></privateData></extensions>`),
		want: SetAgentState{Device: "4711", RequestedState: ReqNotReady, AgentID: "agent-4711", Password: "secret", Group: "5000", ReasonCode: "3"},
		ed:   Edition6, known: true},
	{name: "set agent state reversed order",
		doc:  codecDoc(codecNS6, "SetAgentState", `<extensions><privateData><private xmlns:pri="`+codecNSB+`"><pri:AgentNotReadyReasonValue>7</pri:AgentNotReadyReasonValue></private></privateData></extensions><group>5000</group><password>1234</password><agentID>a</agentID><requestedAgentState>loggedOn</requestedAgentState><device typeOfNumber="dialingNumber">4711</device>`),
		want: SetAgentState{Device: "4711", RequestedState: ReqLoggedOn, AgentID: "a", Password: "1234", Group: "5000", ReasonCode: "7"},
		ed:   Edition6, known: true},
	{name: "set agent state BroadWorks order",
		doc:  "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n" + codecDoc(codecNS3, "SetAgentState", "\n<device>7659366</device>\n<requestedAgentState>notReady</requestedAgentState>\n<extensions>\n<privateData>\n<private xmlns:pri=\""+codecNSB+"\">\n<pri:AgentNotReadyReasonValue>3</pri:AgentNotReadyReasonValue>\n</private>\n</privateData>\n</extensions>\n<agentID>j\xfcrgen</agentID>\n<password></password>\n"),
		want: SetAgentState{Device: "7659366", RequestedState: ReqNotReady, AgentID: "jürgen", ReasonCode: "3"},
		ed:   Edition3, known: true},
	{name: "set agent state loggedOff", doc: codecDoc("", "SetAgentState", `<device>1</device><requestedAgentState>loggedOff</requestedAgentState>`),
		want: SetAgentState{Device: "1", RequestedState: ReqLoggedOff}, known: true},
	{name: "set agent state ready", doc: codecDoc("", "SetAgentState", `<device>1</device><requestedAgentState>ready</requestedAgentState>`),
		want: SetAgentState{Device: "1", RequestedState: ReqReady}, known: true},
	{name: "set agent state workingAfterCall", doc: codecDoc("", "SetAgentState", `<device>1</device><requestedAgentState> workingAfterCall </requestedAgentState>`),
		want: SetAgentState{Device: "1", RequestedState: ReqWorkingAfterCall}, known: true},
	{name: "set agent state hex password",
		doc:  codecDoc(codecNS4, "SetAgentState", `<device>4711</device><requestedAgentState>loggedOn</requestedAgentState><password>31323334</password>`),
		want: SetAgentState{Device: "4711", RequestedState: ReqLoggedOn, Password: "1234"}, ed: Edition4, known: true},
	{name: "reason code unprefixed, no namespace document",
		doc:  codecDoc("", "SetAgentState", `<device>4711</device><requestedAgentState>notReady</requestedAgentState><extensions><privateData><private><AgentNotReadyReasonValue>5</AgentNotReadyReasonValue></private></privateData></extensions>`),
		want: SetAgentState{Device: "4711", RequestedState: ReqNotReady, ReasonCode: "5"}, known: true},
	{name: "reason code unprefixed in the document's CSTA namespace",
		doc:  codecDoc(codecNS3, "SetAgentState", `<device>4711</device><requestedAgentState>notReady</requestedAgentState><extensions><privateData><private><AgentNotReadyReasonValue>5</AgentNotReadyReasonValue></private></privateData></extensions>`),
		want: SetAgentState{Device: "4711", RequestedState: ReqNotReady, ReasonCode: "5"}, ed: Edition3, known: true},
	{name: "reason code BroadSoft default namespace",
		doc:  codecDoc(codecNS3, "SetAgentState", `<device>4711</device><requestedAgentState>notReady</requestedAgentState><extensions><privateData><private><AgentNotReadyReasonValue xmlns="`+codecNSB+`">6</AgentNotReadyReasonValue></private></privateData></extensions>`),
		want: SetAgentState{Device: "4711", RequestedState: ReqNotReady, ReasonCode: "6"}, ed: Edition3, known: true},
	{name: "reason code in another vendor's namespace is ignored",
		doc:  codecDoc(codecNS3, "SetAgentState", `<device>4711</device><requestedAgentState>notReady</requestedAgentState><extensions><privateData><private xmlns:x="urn:other"><x:AgentNotReadyReasonValue>9</x:AgentNotReadyReasonValue></private></privateData></extensions>`),
		want: SetAgentState{Device: "4711", RequestedState: ReqNotReady}, ed: Edition3, known: true},
	{name: "reason code under another vendor's default namespace is ignored",
		doc:  codecDoc(codecNS3, "SetAgentState", `<device>4711</device><requestedAgentState>notReady</requestedAgentState><extensions><privateData><private xmlns="http://www.avaya.com/csta"><AgentNotReadyReasonValue>9</AgentNotReadyReasonValue></private></privateData></extensions>`),
		want: SetAgentState{Device: "4711", RequestedState: ReqNotReady}, ed: Edition3, known: true},
	{name: "reason code outside extensions is ignored",
		doc:  codecDoc("", "SetAgentState", `<device>4711</device><requestedAgentState>notReady</requestedAgentState><AgentNotReadyReasonValue>9</AgentNotReadyReasonValue>`),
		want: SetAgentState{Device: "4711", RequestedState: ReqNotReady}, known: true},
	{name: "get agent state",
		doc:  codecDoc(codecNS6, "GetAgentState", `<acdGroup>5000</acdGroup><device>4711</device>`),
		want: GetAgentState{Device: "4711", ACDGroup: "5000"}, ed: Edition6, known: true},

	// ---- forwarding and DND ----
	{name: "set forwarding schema order",
		doc:  codecDoc(codecNS6, "SetForwarding", `<device>4711</device><forwardingType>forwardNoAns</forwardingType><activateForward>true</activateForward><forwardDN>+4930123456</forwardDN><ringCount>4</ringCount><ringDuration>20</ringDuration>`),
		want: SetForwarding{Device: "4711", ForwardingType: ForwardNoAns, ActivateForward: true, ForwardDN: "+4930123456", RingCount: 4},
		ed:   Edition6, known: true},
	{name: "set forwarding BroadWorks order, empty ringCount",
		doc:  codecDoc(codecNS3, "SetForwarding", "\n   <device>7659366</device>\n   <activateForward>true</activateForward>\n   <forwardingType>forwardImmediate</forwardingType>\n   <forwardDN>2424</forwardDN>\n   <ringCount></ringCount>\n"),
		want: SetForwarding{Device: "7659366", ForwardingType: ForwardImmediate, ActivateForward: true, ForwardDN: "2424"},
		ed:   Edition3, known: true},
	{name: "set forwarding off, no DN, ringCount bounds 1",
		doc:  codecDoc("", "SetForwarding", `<ringCount>1</ringCount><activateForward>0</activateForward><forwardingType>forwardBusy</forwardingType><device>4711</device>`),
		want: SetForwarding{Device: "4711", ForwardingType: ForwardBusy, RingCount: 1}, known: true},
	{name: "set forwarding ringCount 100",
		doc:  codecDoc("", "SetForwarding", `<device>4711</device><forwardingType>forwardNoAnsExt</forwardingType><activateForward>1</activateForward><ringCount>100</ringCount>`),
		want: SetForwarding{Device: "4711", ForwardingType: ForwardNoAnsExt, ActivateForward: true, RingCount: 100}, known: true},
	{name: "get forwarding",
		doc:  codecDoc(codecNS2, "GetForwarding", `<device>4711</device>`),
		want: GetForwarding{Device: "4711"}, ed: Edition2, known: true},
	{name: "set do not disturb 1",
		doc:  codecDoc(codecNS3, "SetDoNotDisturb", `<doNotDisturbOn>1</doNotDisturbOn><device>7659366</device>`),
		want: SetDoNotDisturb{Device: "7659366", DoNotDisturbOn: true}, ed: Edition3, known: true},
	{name: "set do not disturb false",
		doc:  codecDoc(codecNS3, "SetDoNotDisturb", `<device>7659366</device><doNotDisturbOn> false </doNotDisturbOn>`),
		want: SetDoNotDisturb{Device: "7659366"}, ed: Edition3, known: true},
	{name: "get do not disturb",
		doc:  codecDoc(codecNS5, "GetDoNotDisturb", `<device>4711</device>`),
		want: GetDoNotDisturb{Device: "4711"}, ed: Edition5, known: true},

	// ---- namespaces and roots ----
	{name: "Avaya private protocol string as namespace",
		doc:  codecDoc(codecNS3+"/priv5", "GetDoNotDisturb", `<device>4711</device>`),
		want: GetDoNotDisturb{Device: "4711"}, ed: Edition3, known: true},
	{name: "unknown namespace",
		doc:  codecDoc("urn:example:other", "GetDoNotDisturb", `<device>4711</device>`),
		want: GetDoNotDisturb{Device: "4711"}},
	{name: "CSTA request in the session namespace",
		doc:  codecDoc(codecNSS, "GetDoNotDisturb", `<device>4711</device>`),
		want: GetDoNotDisturb{Device: "4711"}},
	{name: "prefixed root",
		doc:  `<csta:GetDoNotDisturb xmlns:csta="` + codecNS6 + `"><csta:device>4711</csta:device></csta:GetDoNotDisturb>`,
		want: GetDoNotDisturb{Device: "4711"}, ed: Edition6, known: true},
	{name: "UTF-8 byte order mark",
		doc:  "\xef\xbb\xbf" + codecDoc(codecNS6, "GetDoNotDisturb", `<device>4711</device>`),
		want: GetDoNotDisturb{Device: "4711"}, ed: Edition6, known: true},
	{name: "client's SystemStatusResponse",
		doc:  codecDoc(codecNS6, "SystemStatusResponse", ``),
		want: clientResponse{"SystemStatusResponse"}, ed: Edition6, known: true},
	{name: "client's CSTAErrorCode",
		doc:  codecDoc(codecNS4, "CSTAErrorCode", `<operation>generic</operation>`),
		want: clientResponse{"CSTAErrorCode"}, ed: Edition4, known: true},
}

func TestCodecDecode(t *testing.T) {
	for _, tc := range codecDecodeCases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decode([]byte(tc.doc), 32)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(d.Message, tc.want) {
				t.Errorf("message\n got %#v\nwant %#v", d.Message, tc.want)
			}
			if d.Edition != tc.ed || d.EditionKnown != tc.known {
				t.Errorf("edition %v known=%v, want %v known=%v", d.Edition, d.EditionKnown, tc.ed, tc.known)
			}
		})
	}
}

// Every ForwardingType and every SystemStatusValue is accepted as sent.
func TestCodecDecodeEnumerations(t *testing.T) {
	for _, ft := range []ForwardingType{ForwardImmediate, ForwardBusy, ForwardNoAns, ForwardDND, ForwardBusyInt,
		ForwardBusyExt, ForwardNoAnsInt, ForwardNoAnsExt, ForwardImmInt, ForwardImmExt, ForwardDNDInt, ForwardDNDExt} {
		d, err := Decode([]byte(codecDoc(codecNS6, "SetForwarding", `<device>1</device><forwardingType>`+string(ft)+`</forwardingType><activateForward>true</activateForward>`)), 32)
		if err != nil || d.Message.(SetForwarding).ForwardingType != ft {
			t.Errorf("%s: %v %#v", ft, err, d.Message)
		}
	}
	for _, v := range []SystemStatusValue{SystemDisabled, SystemPartiallyDisabled, SystemEnabled, SystemInitializing,
		SystemMessagesLost, SystemNormal, SystemOverloadImminent, SystemOverloadReached, SystemOverloadRelieved} {
		d, err := Decode([]byte(codecDoc(codecNS6, "SystemStatus", `<systemStatus>`+string(v)+`</systemStatus>`)), 32)
		if err != nil || d.Message.(SystemStatus).SystemStatus != v {
			t.Errorf("%s: %v %#v", v, err, d.Message)
		}
	}
}

type codecDecodeErrorCase struct {
	name     string
	doc      string
	maxDepth int // 0 means 32
	answer   Message
	root     string
	ed       Edition
	known    bool
}

func codecNest(depth int) string {
	var b strings.Builder
	for i := range depth {
		fmt.Fprintf(&b, "<n%d>", i)
	}
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "</n%d>", i)
	}
	return b.String()
}

var (
	codecInvalidInfo = StartApplicationSessionNegResponse{ErrorCode: SessionError{DefinedError: SessionErrInvalidApplicationInfo}}
	codecCannotReset = ResetApplicationSessionTimerNegResponse{ErrorCode: SessionError{DefinedError: SessionErrServerCannotResetSessionTimer}}
)

var codecDecodeErrorCases = []codecDecodeErrorCase{
	{name: "malformed", doc: `<SetDoNotDisturb><device>4711</SetDoNotDisturb>`, answer: ErrGeneric},
	{name: "empty document", doc: ``, answer: ErrGeneric},
	{name: "whitespace only", doc: " \n ", answer: ErrGeneric},
	{name: "text only", doc: "hello", answer: ErrGeneric},
	{name: "trailing NUL", doc: codecDoc(codecNS6, "GetDoNotDisturb", `<device>4711</device>`) + "\x00", answer: ErrGeneric},
	{name: "unsupported encoding", doc: `<?xml version="1.0" encoding="windows-1252"?><GetDoNotDisturb><device>4711</device></GetDoNotDisturb>`, answer: ErrGeneric},
	{name: "unknown request", doc: codecDoc(codecNS6, "MakeCall", `<callingDevice>4711</callingDevice>`), answer: ErrServiceNotSupported, root: "MakeCall", ed: Edition6, known: true},
	{name: "unknown request without namespace", doc: `<Foo/>`, answer: ErrServiceNotSupported, root: "Foo", known: true},

	{name: "start session without applicationInfo", doc: codecDoc(codecNSS, "StartApplicationSession", `<requestedSessionDuration>60</requestedSessionDuration>`), answer: codecInvalidInfo, root: "StartApplicationSession"},
	{name: "start session duration not a number", doc: codecDoc(codecNSS, "StartApplicationSession", `<applicationInfo/><requestedSessionDuration>x</requestedSessionDuration>`), answer: codecInvalidInfo, root: "StartApplicationSession"},
	{name: "start session negative duration", doc: codecDoc(codecNSS, "StartApplicationSession", `<applicationInfo/><requestedSessionDuration>-5</requestedSessionDuration>`), answer: codecInvalidInfo, root: "StartApplicationSession"},
	{name: "reset timer duration not a number", doc: codecDoc(codecNSS, "ResetApplicationSessionTimer", `<sessionID>s</sessionID><requestedSessionDuration>1e3</requestedSessionDuration>`), answer: codecCannotReset, root: "ResetApplicationSessionTimer"},

	{name: "system status out of range", doc: codecDoc(codecNS6, "SystemStatus", `<systemStatus>sleepy</systemStatus>`), answer: ErrSystemStatusOutOfRange, root: "SystemStatus", ed: Edition6, known: true},
	{name: "system register flag not boolean", doc: codecDoc(codecNS6, "SystemRegister", `<requestTypes><systemStatus>maybe</systemStatus></requestTypes>`), answer: ErrInvalidParameterValue, root: "SystemRegister", ed: Edition6, known: true},

	{name: "monitor start without object", doc: codecDoc(codecNS6, "MonitorStart", `<monitorType>device</monitorType>`), answer: ErrInvalidMonitorObject, root: "MonitorStart", ed: Edition6, known: true},
	{name: "monitor start empty deviceObject", doc: codecDoc(codecNS6, "MonitorStart", `<monitorObject><deviceObject> </deviceObject></monitorObject>`), answer: ErrInvalidMonitorObject, root: "MonitorStart", ed: Edition6, known: true},
	{name: "monitor start callObject", doc: codecDoc(codecNS6, "MonitorStart", `<monitorObject><callObject><callID>1</callID></callObject></monitorObject>`), answer: ErrInvalidMonitorObject, root: "MonitorStart", ed: Edition6, known: true},
	{name: "monitor start type call", doc: codecDoc(codecNS6, "MonitorStart", `<monitorObject><deviceObject>4711</deviceObject></monitorObject><monitorType>call</monitorType>`), answer: ErrInvalidMonitorType, root: "MonitorStart", ed: Edition6, known: true},
	{name: "monitor start known flag not boolean", doc: codecDoc(codecNS6, "MonitorStart", `<monitorObject><deviceObject>4711</deviceObject></monitorObject><requestedMonitorFilter><logicalDeviceFeature><agentReady>yes</agentReady></logicalDeviceFeature></requestedMonitorFilter>`), answer: ErrInvalidMonitorFilter, root: "MonitorStart", ed: Edition6, known: true},
	{name: "monitor start unknown flag not boolean", doc: codecDoc(codecNS6, "MonitorStart", `<monitorObject><deviceObject>4711</deviceObject></monitorObject><requestedMonitorFilter><callcontrol><delivered></delivered></callcontrol></requestedMonitorFilter>`), answer: ErrInvalidMonitorFilter, root: "MonitorStart", ed: Edition6, known: true},
	{name: "monitor stop without id", doc: codecDoc(codecNS3, "MonitorStop", ``), answer: ErrInvalidMonitorCrossRefID, root: "MonitorStop", ed: Edition3, known: true},
	{name: "monitor stop empty id", doc: codecDoc(codecNS3, "MonitorStop", `<monitorCrossRefID/>`), answer: ErrInvalidMonitorCrossRefID, root: "MonitorStop", ed: Edition3, known: true},

	{name: "set agent state without device", doc: codecDoc(codecNS6, "SetAgentState", `<requestedAgentState>ready</requestedAgentState>`), answer: ErrInvalidDeviceID, root: "SetAgentState", ed: Edition6, known: true},
	{name: "set agent state empty device", doc: codecDoc(codecNS3, "SetAgentState", `<device></device><requestedAgentState>notReady</requestedAgentState>`), answer: ErrInvalidDeviceID, root: "SetAgentState", ed: Edition3, known: true},
	{name: "set agent state without state", doc: codecDoc(codecNS6, "SetAgentState", `<device>4711</device>`), answer: ErrInvalidAgentState, root: "SetAgentState", ed: Edition6, known: true},
	{name: "set agent state unknown state", doc: codecDoc(codecNS6, "SetAgentState", `<device>4711</device><requestedAgentState>agentReady</requestedAgentState>`), answer: ErrInvalidAgentState, root: "SetAgentState", ed: Edition6, known: true},
	{name: "get agent state without device", doc: codecDoc(codecNS6, "GetAgentState", ``), answer: ErrInvalidDeviceID, root: "GetAgentState", ed: Edition6, known: true},

	{name: "set forwarding without device", doc: codecDoc(codecNS6, "SetForwarding", `<forwardingType>forwardBusy</forwardingType><activateForward>true</activateForward>`), answer: ErrInvalidDeviceID, root: "SetForwarding", ed: Edition6, known: true},
	{name: "set forwarding without type", doc: codecDoc(codecNS6, "SetForwarding", `<device>4711</device><activateForward>true</activateForward>`), answer: ErrInvalidForwardingType, root: "SetForwarding", ed: Edition6, known: true},
	{name: "set forwarding unknown type", doc: codecDoc(codecNS6, "SetForwarding", `<device>4711</device><forwardingType>forwardAlways</forwardingType><activateForward>true</activateForward>`), answer: ErrInvalidForwardingType, root: "SetForwarding", ed: Edition6, known: true},
	{name: "set forwarding without flag", doc: codecDoc(codecNS6, "SetForwarding", `<device>4711</device><forwardingType>forwardBusy</forwardingType>`), answer: ErrInvalidForwardingFlag, root: "SetForwarding", ed: Edition6, known: true},
	{name: "set forwarding flag yes", doc: codecDoc(codecNS6, "SetForwarding", `<device>4711</device><forwardingType>forwardBusy</forwardingType><activateForward>yes</activateForward>`), answer: ErrInvalidForwardingFlag, root: "SetForwarding", ed: Edition6, known: true},
	{name: "set forwarding ringCount 0", doc: codecDoc(codecNS6, "SetForwarding", `<device>4711</device><forwardingType>forwardNoAns</forwardingType><activateForward>true</activateForward><ringCount>0</ringCount>`), answer: ErrRingCountOutOfRange, root: "SetForwarding", ed: Edition6, known: true},
	{name: "set forwarding ringCount 101", doc: codecDoc(codecNS6, "SetForwarding", `<device>4711</device><forwardingType>forwardNoAns</forwardingType><activateForward>true</activateForward><ringCount>101</ringCount>`), answer: ErrRingCountOutOfRange, root: "SetForwarding", ed: Edition6, known: true},
	{name: "set forwarding ringCount -1", doc: codecDoc(codecNS6, "SetForwarding", `<device>4711</device><forwardingType>forwardNoAns</forwardingType><activateForward>true</activateForward><ringCount>-1</ringCount>`), answer: ErrRingCountOutOfRange, root: "SetForwarding", ed: Edition6, known: true},
	{name: "set forwarding ringCount x", doc: codecDoc(codecNS6, "SetForwarding", `<device>4711</device><forwardingType>forwardNoAns</forwardingType><activateForward>true</activateForward><ringCount>x</ringCount>`), answer: ErrInvalidRingCount, root: "SetForwarding", ed: Edition6, known: true},
	{name: "set forwarding ringCount huge", doc: codecDoc(codecNS6, "SetForwarding", `<device>4711</device><forwardingType>forwardNoAns</forwardingType><activateForward>true</activateForward><ringCount>99999999999999999999999</ringCount>`), answer: ErrInvalidRingCount, root: "SetForwarding", ed: Edition6, known: true},
	{name: "get forwarding without device", doc: codecDoc(codecNS6, "GetForwarding", ``), answer: ErrInvalidDeviceID, root: "GetForwarding", ed: Edition6, known: true},
	{name: "set dnd without flag", doc: codecDoc(codecNS3, "SetDoNotDisturb", `<device>4711</device>`), answer: ErrInvalidDoNotDisturb, root: "SetDoNotDisturb", ed: Edition3, known: true},
	{name: "set dnd flag on", doc: codecDoc(codecNS3, "SetDoNotDisturb", `<device>4711</device><doNotDisturbOn>on</doNotDisturbOn>`), answer: ErrInvalidDoNotDisturb, root: "SetDoNotDisturb", ed: Edition3, known: true},
	{name: "set dnd without device", doc: codecDoc(codecNS3, "SetDoNotDisturb", `<doNotDisturbOn>true</doNotDisturbOn>`), answer: ErrInvalidDeviceID, root: "SetDoNotDisturb", ed: Edition3, known: true},
	{name: "get dnd empty device", doc: codecDoc(codecNS3, "GetDoNotDisturb", `<device/>`), answer: ErrInvalidDeviceID, root: "GetDoNotDisturb", ed: Edition3, known: true},

	// maxDepth: the root is depth 1.
	{name: "too deep", maxDepth: 4, doc: codecDoc(codecNS6, "SetDoNotDisturb", `<device>4711</device><extensions>`+codecNest(3)+`</extensions>`), answer: ErrResourceLimitExceeded, root: "SetDoNotDisturb", ed: Edition6, known: true},
	{name: "too deep unknown root", maxDepth: 2, doc: codecDoc("", "Foo", codecNest(2)), answer: ErrResourceLimitExceeded, root: "Foo", known: true},
	{name: "too deep start session", maxDepth: 3, doc: codecDoc(codecNSS, "StartApplicationSession", `<applicationInfo><applicationSpecificInfo><SessionLoginInfo/></applicationSpecificInfo></applicationInfo>`), answer: codecInvalidInfo, root: "StartApplicationSession"},
	{name: "too deep stop session", maxDepth: 2, doc: codecDoc(codecNSS, "StopApplicationSession", `<sessionEndReason><definedEndReason>normal</definedEndReason></sessionEndReason>`),
		answer: StopApplicationSessionNegResponse{ErrorCode: SessionError{ApplError: "message too deeply nested"}}, root: "StopApplicationSession"},
	{name: "too deep reset timer", maxDepth: 2, doc: codecDoc(codecNSS, "ResetApplicationSessionTimer", `<sessionID><a/></sessionID>`),
		answer: ResetApplicationSessionTimerNegResponse{ErrorCode: SessionError{ApplError: "message too deeply nested"}}, root: "ResetApplicationSessionTimer"},
}

func TestCodecDecodeErrors(t *testing.T) {
	for _, tc := range codecDecodeErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			maxDepth := tc.maxDepth
			if maxDepth == 0 {
				maxDepth = 32
			}
			d, err := Decode([]byte(tc.doc), maxDepth)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode = %#v, %v; want a *DecodeError", d.Message, err)
			}
			if !reflect.DeepEqual(de.Answer, tc.answer) {
				t.Errorf("answer %#v, want %#v", de.Answer, tc.answer)
			}
			if de.Root != tc.root {
				t.Errorf("root %q, want %q", de.Root, tc.root)
			}
			if de.Edition != tc.ed || de.EditionKnown != tc.known {
				t.Errorf("edition %v known=%v, want %v known=%v", de.Edition, de.EditionKnown, tc.ed, tc.known)
			}
			if de.Reason == "" || !strings.Contains(de.Error(), de.Reason) {
				t.Errorf("Error() %q lacks the reason %q", de.Error(), de.Reason)
			}
			if _, err := Encode(de.Answer, de.Edition); err != nil {
				t.Errorf("the answer does not encode: %v", err)
			}
		})
	}
}

func TestCodecMaxDepthBoundary(t *testing.T) {
	doc := []byte(codecDoc("", "SetDoNotDisturb", `<device>4711</device><doNotDisturbOn>true</doNotDisturbOn><extensions>`+codecNest(2)+`</extensions>`))
	// Depths: root 1, extensions 2, n0 3, n1 4.
	if _, err := Decode(doc, 4); err != nil {
		t.Errorf("depth 4 with maxDepth 4: %v", err)
	}
	if _, err := Decode(doc, 3); err == nil {
		t.Error("depth 4 with maxDepth 3 was accepted")
	}
	// maxDepth 0 leaves etree's own bound of 1024 levels.
	if _, err := Decode([]byte(codecDoc("", "Foo", codecNest(1000))), 0); err == nil || err.(*DecodeError).Answer != ErrServiceNotSupported {
		t.Errorf("1001 levels with maxDepth 0: %v, want serviceNotSupported", err)
	}
	// Far too deep is still a resource limit, with the root's name and
	// namespace known, whichever bound caught it.
	deep := []byte(codecDoc(codecNS6, "SetDoNotDisturb", `<device>4711</device><doNotDisturbOn>true</doNotDisturbOn><extensions>`+codecNest(5000)+`</extensions>`))
	for _, maxDepth := range []int{0, 32, 2000} {
		_, err := Decode(deep, maxDepth)
		var de *DecodeError
		if !errors.As(err, &de) || de.Answer != ErrResourceLimitExceeded || de.Root != "SetDoNotDisturb" || de.Edition != Edition6 || !de.EditionKnown {
			t.Errorf("5000 levels with maxDepth %d: %#v", maxDepth, err)
		}
	}
}

func TestCodecDecodeAgentPassword(t *testing.T) {
	for in, want := range map[string]string{
		"31323334":         "1234",   // hexBinary, as the schema says
		"1234":             "1234",   // plain PIN; as hex it would be 0x12 0x34, not printable
		"secret":           "secret", // not hex
		"":                 "",
		"123":              "123", // odd length
		"7365637265742d31": "secret-1",
		"0a0b":             "0a0b", // hex of control characters: taken as sent
		"4142zz":           "4142zz",
		"7E20":             "~ ", // upper-case hex, printable edge values
		"7f":               "7f", // DEL is not printable
	} {
		if got := decodeAgentPassword(in); got != want {
			t.Errorf("decodeAgentPassword(%q) = %q, want %q", in, got, want)
		}
	}
}

// The latin1 reader must carry multi-byte output across small reads.
func TestCodecLatin1LongDocument(t *testing.T) {
	id := strings.Repeat("\xfc\xe4\xdf", 3000) // üäß in ISO-8859-1
	doc := "<?xml version=\"1.0\" encoding=\"latin1\"?>" + codecDoc(codecNSS, "StartApplicationSession", "<applicationInfo><applicationID>"+id+"</applicationID></applicationInfo>")
	d, err := Decode([]byte(doc), 32)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Message.(StartApplicationSession).ApplicationID, strings.Repeat("üäß", 3000); got != want {
		t.Errorf("applicationID of %d bytes, want %d", len(got), len(want))
	}
}

// TestCodecDecodeFixtures decodes the requests of testdata/xml/csta: real
// client forms, every field checked.
func TestCodecDecodeFixtures(t *testing.T) {
	avaya := func(app, user, pw, version string, d int) StartApplicationSession {
		return StartApplicationSession{ApplicationID: app, UserName: user, Password: pw, HasCredentials: user != "",
			ProtocolVersions: []string{version}, RequestedSessionDuration: d}
	}
	want := map[string]Message{
		"start_session_psco_ed4":            avaya("testApplicationId", "", "", codecNS4, 300),
		"start_session_avaya_login_ed4":     avaya("testApplicationId", "username", "password", codecNS4, 300),
		"start_session_ed6":                 avaya("wallboard", "", "", codecNS6, 180),
		"start_session_avaya_ed3_priv5":     avaya("AvayaAES", "cti", "cti", codecNS3+"/priv5", 60),
		"start_session_php_ascii_header":    avaya("PHP", "user", "pass", codecNS3+"/priv2", 180),
		"start_session_osbiz_credentials":   avaya("osbiz", "cti", "geheim", codecNS4, 300),
		"start_session_latin1_appid":        StartApplicationSession{ApplicationID: "Zentrale München"},
		"start_session_unsupported_version": StartApplicationSession{ApplicationID: "future", ProtocolVersions: []string{"http://www.ecma-international.org/standards/ecma-323/csta/ed7", "urn:example:csta"}},
		"start_session_version_preference": StartApplicationSession{ApplicationID: "order", RequestedSessionDuration: 120,
			ProtocolVersions: []string{"http://www.ecma-international.org/standards/ecma-323/csta/ed7", codecNS5, codecNS4}},
		"stop_session":                      StopApplicationSession{SessionID: "{{sessionID}}", DefinedEndReason: "normal"},
		"stop_session_ed3_namespace":        StopApplicationSession{SessionID: "{{sessionID}}", AppEndReason: "Application Request"},
		"reset_timer":                       ResetApplicationSessionTimer{SessionID: "{{sessionID}}", RequestedSessionDuration: 180},
		"system_status_ed6":                 SystemStatus{SystemStatus: SystemNormal},
		"system_register_ed6":               SystemRegister{SystemStatusRequested: true},
		"request_system_status_sipe_ed3":    RequestSystemStatus{},
		"monitor_start_psco_ed4":            MonitorStart{Device: "212700"},
		"monitor_start_avaya_invert_filter": MonitorStart{Device: "4711", HasFilter: true, FilterInverted: true, Filter: codecAllBut(EventAgentReady, EventAgentNotReady)},
		"monitor_start_filter_ed6":          MonitorStart{Device: "4711", HasFilter: true, Filter: codecFilter(EventOutOfService, EventForwarding, EventAgentBusy)},
		"monitor_stop_sipe_unknown":         MonitorStop{MonitorCrossRefID: "99fda87c"},
		"set_agent_state_broadworks_latin1": SetAgentState{Device: "7659366", RequestedState: ReqNotReady, AgentID: "jürgen", ReasonCode: "3"},
		"set_agent_state_ed6":               SetAgentState{Device: "4711", RequestedState: ReqNotReady, AgentID: "agent-4711"},
		"set_agent_state_no_namespace":      SetAgentState{Device: "4711", RequestedState: ReqReady},
		"set_agent_state_hex_password":      SetAgentState{Device: "4711", RequestedState: ReqLoggedOn, AgentID: "4711", Password: "1234", Group: "5000"},
		"get_agent_state_after_not_ready":   GetAgentState{Device: "7659366"},
		"set_forwarding_broadworks":         SetForwarding{Device: "7659366", ForwardingType: ForwardImmediate, ActivateForward: true, ForwardDN: "2424"},
		"set_forwarding_ed6":                SetForwarding{Device: "4711", ForwardingType: ForwardNoAns, ActivateForward: true, ForwardDN: "+4930123456", RingCount: 4},
		"set_dnd_broadworks":                SetDoNotDisturb{Device: "7659366", DoNotDisturbOn: true},
		"get_dnd_ed2":                       GetDoNotDisturb{Device: "4711"},
	}
	for name, w := range want {
		doc := readFixture(t, name, "req")
		d, err := Decode(doc, 32)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(d.Message, w) {
			t.Errorf("%s:\n got %#v\nwant %#v", name, d.Message, w)
		}
	}
	// The Avaya one is byte-exact from psco-tech: 663 XML bytes, header 00 00 02 9F.
	doc := readFixture(t, "start_session_avaya_login_ed4", "req")
	if f, _ := AppendFrame(nil, 2, doc); !bytes.Equal(f[:8], []byte("\x00\x00\x02\x9f0002")) {
		t.Errorf("Avaya fixture header % x, want 00 00 02 9f 30 30 30 32", f[:8])
	}
	doc = readFixture(t, "start_session_psco_ed4", "req")
	if f, _ := AppendFrame(nil, 1, doc); !bytes.Equal(f[:8], []byte("\x00\x00\x01\xa70001")) {
		t.Errorf("psco-tech fixture header % x, want 00 00 01 a7 30 30 30 31", f[:8])
	}
}

// ---- encoding ----

type codecEncodeCase struct {
	name string
	msg  Message
	ed   Edition
	want string // without the XML declaration
}

var codecEncodeCases = []codecEncodeCase{
	{"start pos", StartApplicationSessionPosResponse{SessionID: "7F3A0C21", ActualProtocolVersion: codecNS3 + "/priv5", ActualSessionDuration: 180}, Edition6,
		`<StartApplicationSessionPosResponse xmlns="` + codecNSS + `"><sessionID>7F3A0C21</sessionID><actualProtocolVersion>` + codecNS3 + `/priv5</actualProtocolVersion><actualSessionDuration>180</actualSessionDuration></StartApplicationSessionPosResponse>`},
	{"start neg defined", StartApplicationSessionNegResponse{ErrorCode: SessionError{DefinedError: SessionErrProtocolVersionNotSupported}}, EditionNone,
		`<StartApplicationSessionNegResponse xmlns="` + codecNSS + `"><errorCode><definedError>requestedProtocolVersionNotSupported</definedError></errorCode></StartApplicationSessionNegResponse>`},
	{"start neg appl", StartApplicationSessionNegResponse{ErrorCode: SessionError{ApplError: "busy"}}, Edition3,
		`<StartApplicationSessionNegResponse xmlns="` + codecNSS + `"><errorCode><applError>busy</applError></errorCode></StartApplicationSessionNegResponse>`},
	{"stop pos", StopApplicationSessionPosResponse{}, Edition4,
		`<StopApplicationSessionPosResponse xmlns="` + codecNSS + `"></StopApplicationSessionPosResponse>`},
	{"stop neg", StopApplicationSessionNegResponse{ErrorCode: SessionError{DefinedError: SessionErrInvalidSessionID}}, Edition4,
		`<StopApplicationSessionNegResponse xmlns="` + codecNSS + `"><errorCode><definedError>invalidSessionID</definedError></errorCode></StopApplicationSessionNegResponse>`},
	{"reset pos", ResetApplicationSessionTimerPosResponse{ActualSessionDuration: 180}, Edition5,
		`<ResetApplicationSessionTimerPosResponse xmlns="` + codecNSS + `"><actualSessionDuration>180</actualSessionDuration></ResetApplicationSessionTimerPosResponse>`},
	{"reset neg defined", ResetApplicationSessionTimerNegResponse{ErrorCode: SessionError{DefinedError: SessionErrServerCannotResetSessionTimer}}, Edition5,
		`<ResetApplicationSessionTimerNegResponse xmlns="` + codecNSS + `"><errorCode><definedError>serverCannotResetSessionTimer</definedError></errorCode></ResetApplicationSessionTimerNegResponse>`},
	{"reset neg appl", ResetApplicationSessionTimerNegResponse{ErrorCode: SessionError{ApplError: "no"}}, Edition5,
		`<ResetApplicationSessionTimerNegResponse xmlns="` + codecNSS + `"><errorCode><applError>no</applError></errorCode></ResetApplicationSessionTimerNegResponse>`},
	{"terminated defined", ApplicationSessionTerminated{SessionID: "s1", DefinedTermReason: SessionTermReasonSessionTimerExpired, ServerTermReason: "ignored"}, Edition6,
		`<ApplicationSessionTerminated xmlns="` + codecNSS + `"><sessionID>s1</sessionID><sessionTermReason><definedTermReason>sessionTimerExpired</definedTermReason></sessionTermReason></ApplicationSessionTerminated>`},
	{"terminated server", ApplicationSessionTerminated{SessionID: "s1", ServerTermReason: "serverShutdown"}, Edition6,
		`<ApplicationSessionTerminated xmlns="` + codecNSS + `"><sessionID>s1</sessionID><sessionTermReason><serverTermReason>serverShutdown</serverTermReason></sessionTermReason></ApplicationSessionTerminated>`},

	{"system status", SystemStatus{SysStatRegisterID: "4", SystemStatus: SystemDisabled}, Edition6,
		`<SystemStatus xmlns="` + codecNS6 + `"><sysStatRegisterID>4</sysStatRegisterID><systemStatus>disabled</systemStatus></SystemStatus>`},
	{"system status unregistered", SystemStatus{SystemStatus: SystemNormal}, Edition3,
		`<SystemStatus xmlns="` + codecNS3 + `"><systemStatus>normal</systemStatus></SystemStatus>`},
	{"system status response", SystemStatusResponse{}, Edition6,
		`<SystemStatusResponse xmlns="` + codecNS6 + `"></SystemStatusResponse>`},
	{"system register response", SystemRegisterResponse{SysStatRegisterID: "12"}, Edition6,
		`<SystemRegisterResponse xmlns="` + codecNS6 + `"><sysStatRegisterID>12</sysStatRegisterID></SystemRegisterResponse>`},
	{"request system status response", RequestSystemStatusResponse{SystemStatus: SystemNormal}, Edition5,
		`<RequestSystemStatusResponse xmlns="` + codecNS5 + `"><systemStatus>normal</systemStatus></RequestSystemStatusResponse>`},

	{"monitor start response", MonitorStartResponse{MonitorCrossRefID: "1"}, Edition6,
		`<MonitorStartResponse xmlns="` + codecNS6 + `"><monitorCrossRefID>1</monitorCrossRefID></MonitorStartResponse>`},
	{"monitor start response with filter", MonitorStartResponse{MonitorCrossRefID: "2", HasFilter: true, ActualFilter: codecFilter(EventAgentBusy, EventForwarding, EventOutOfService)}, Edition3,
		`<MonitorStartResponse xmlns="` + codecNS3 + `"><monitorCrossRefID>2</monitorCrossRefID><actualMonitorFilter>` +
			`<logicalDeviceFeature><agentBusy>true</agentBusy><agentLoggedOn>false</agentLoggedOn><agentLoggedOff>false</agentLoggedOff><agentNotReady>false</agentNotReady><agentReady>false</agentReady><agentWorkingAfterCall>false</agentWorkingAfterCall><doNotDisturb>false</doNotDisturb><forwarding>true</forwarding></logicalDeviceFeature>` +
			`<maintenance><backInService>false</backInService><outOfService>true</outOfService></maintenance></actualMonitorFilter></MonitorStartResponse>`},
	{"monitor start response filter ignored without HasFilter", MonitorStartResponse{MonitorCrossRefID: "3", ActualFilter: codecFilter(EventAgentBusy)}, Edition3,
		`<MonitorStartResponse xmlns="` + codecNS3 + `"><monitorCrossRefID>3</monitorCrossRefID></MonitorStartResponse>`},
	{"monitor stop response", MonitorStopResponse{}, Edition3,
		`<MonitorStopResponse xmlns="` + codecNS3 + `"></MonitorStopResponse>`},

	{"set agent state response", SetAgentStateResponse{}, Edition6,
		`<SetAgentStateResponse xmlns="` + codecNS6 + `"></SetAgentStateResponse>`},
	{"set agent state response pending", SetAgentStateResponse{PendingAgentState: AgentNotReady}, Edition6,
		`<SetAgentStateResponse xmlns="` + codecNS6 + `"><pendingAgentState>agentNotReady</pendingAgentState></SetAgentStateResponse>`},
	{"get agent state response", GetAgentStateResponse{
		AgentStateList: []AgentStateEntry{
			{AgentID: "a1", LoggedOnState: true, AgentInfo: []AgentInfoItem{
				{ACDGroup: "5000", AgentState: AgentBusy, PendingAgentState: AgentNotReady},
				{AgentState: AgentReady},
			}},
			{AgentID: "a2"},
		},
		ReasonCode: "3",
	}, Edition4,
		`<GetAgentStateResponse xmlns="` + codecNS4 + `"><agentStateList>` +
			`<agentStateEntry><agentID>a1</agentID><loggedOnState>true</loggedOnState><agentInfo>` +
			`<agentInfoItem><acdGroup>5000</acdGroup><agentState>agentBusy</agentState><pendingAgentState>agentNotReady</pendingAgentState></agentInfoItem>` +
			`<agentInfoItem><agentState>agentReady</agentState></agentInfoItem></agentInfo></agentStateEntry>` +
			`<agentStateEntry><agentID>a2</agentID><loggedOnState>false</loggedOnState></agentStateEntry>` +
			`</agentStateList><extensions><privateData><private xmlns:pri="` + codecNSB + `"><pri:AgentNotReadyReasonValue>3</pri:AgentNotReadyReasonValue></private></privateData></extensions></GetAgentStateResponse>`},
	{"get agent state response empty", GetAgentStateResponse{}, Edition4,
		`<GetAgentStateResponse xmlns="` + codecNS4 + `"><agentStateList></agentStateList></GetAgentStateResponse>`},

	{"set forwarding response", SetForwardingResponse{}, Edition3,
		`<SetForwardingResponse xmlns="` + codecNS3 + `"></SetForwardingResponse>`},
	{"get forwarding response", GetForwardingResponse{ForwardingList: []ForwardListItem{
		{ForwardingType: ForwardImmediate, ForwardStatus: true, ForwardDN: "2424", RingCount: 3},
		{ForwardingType: ForwardBusy},
	}}, Edition6,
		`<GetForwardingResponse xmlns="` + codecNS6 + `"><forwardingList>` +
			`<forwardListItem><forwardingType>forwardImmediate</forwardingType><forwardStatus>true</forwardStatus><forwardDN>2424</forwardDN><ringCount>3</ringCount></forwardListItem>` +
			`<forwardListItem><forwardingType>forwardBusy</forwardingType><forwardStatus>false</forwardStatus></forwardListItem>` +
			`</forwardingList></GetForwardingResponse>`},
	{"get forwarding response empty", GetForwardingResponse{}, Edition6,
		`<GetForwardingResponse xmlns="` + codecNS6 + `"><forwardingList></forwardingList></GetForwardingResponse>`},
	{"set dnd response", SetDoNotDisturbResponse{}, Edition2,
		`<SetDoNotDisturbResponse xmlns="` + codecNS2 + `"></SetDoNotDisturbResponse>`},
	{"get dnd response", GetDoNotDisturbResponse{DoNotDisturbOn: true}, Edition2,
		`<GetDoNotDisturbResponse xmlns="` + codecNS2 + `"><doNotDisturbOn>true</doNotDisturbOn></GetDoNotDisturbResponse>`},

	{"error operation", ErrInvalidDeviceID, Edition6,
		`<CSTAErrorCode xmlns="` + codecNS6 + `"><operation>invalidDeviceID</operation></CSTAErrorCode>`},
	{"error security", ErrSessionRequired, Edition6,
		`<CSTAErrorCode xmlns="` + codecNS6 + `"><security>securityInfoViolated</security></CSTAErrorCode>`},
	{"error state", &Error{Class: ErrStateIncompatibility, Value: "invalidDeviceState"}, Edition6,
		`<CSTAErrorCode xmlns="` + codecNS6 + `"><stateIncompatibility>invalidDeviceState</stateIncompatibility></CSTAErrorCode>`},
	{"error system resource (schema spelling)", ErrResourceOutOfService, Edition6,
		`<CSTAErrorCode xmlns="` + codecNS6 + `"><systemResourceAvailibility>resourceOutOfService</systemResourceAvailibility></CSTAErrorCode>`},
	{"error subscribed resource", ErrOutstandingReqLimitExceeded, Edition6,
		`<CSTAErrorCode xmlns="` + codecNS6 + `"><subscribedResourceAvailability>outstandingReqLimitExceeded</subscribedResourceAvailability></CSTAErrorCode>`},
	{"error performance", &Error{Class: ErrPerformanceManagement, Value: "performanceLimitExceeded"}, Edition6,
		`<CSTAErrorCode xmlns="` + codecNS6 + `"><performanceManagement>performanceLimitExceeded</performanceManagement></CSTAErrorCode>`},
	{"error private", &Error{Class: ErrPrivateErrorCode, Value: "URM Denied"}, EditionNone,
		`<CSTAErrorCode><privateErrorCode>URM Denied</privateErrorCode></CSTAErrorCode>`},
	{"error unspecified", &Error{Class: ErrUnspecified, Value: "ignored"}, Edition3,
		`<CSTAErrorCode xmlns="` + codecNS3 + `"><unspecified/></CSTAErrorCode>`},
}

func TestCodecEncode(t *testing.T) {
	for _, tc := range codecEncodeCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Encode(tc.msg, tc.ed)
			if err != nil {
				t.Fatal(err)
			}
			if want := codecDecl + tc.want; string(got) != want {
				t.Errorf("\n got %s\nwant %s", got, want)
			}
		})
	}
}

// codecFullEvent sets every Event field, so the test sees that each kind
// writes only its own elements.
func codecFullEvent(k EventKind) *Event {
	return &Event{Kind: k, Device: "4711", AgentID: "agent-4711", ACDGroup: "5000", ReasonCode: "3",
		PendingAgentState: "ready", Cause: "keyOperation", ForwardingType: ForwardNoAns, ForwardStatus: true,
		ForwardTo: "2424", RingCount: 4, DoNotDisturbOn: true}
}

var codecEventWant = map[EventKind]string{
	EventAgentLoggedOn:         `<AgentLoggedOnEvent xmlns="` + codecNS6 + `"><monitorCrossRefID>17</monitorCrossRefID><agentDevice><deviceIdentifier>4711</deviceIdentifier></agentDevice><agentID>agent-4711</agentID><acdGroup>5000</acdGroup><cause>keyOperation</cause></AgentLoggedOnEvent>`,
	EventAgentLoggedOff:        `<AgentLoggedOffEvent xmlns="` + codecNS6 + `"><monitorCrossRefID>17</monitorCrossRefID><agentDevice><deviceIdentifier>4711</deviceIdentifier></agentDevice><agentID>agent-4711</agentID><acdGroup>5000</acdGroup><cause>keyOperation</cause></AgentLoggedOffEvent>`,
	EventAgentReady:            `<AgentReadyEvent xmlns="` + codecNS6 + `"><monitorCrossRefID>17</monitorCrossRefID><agentDevice><deviceIdentifier>4711</deviceIdentifier></agentDevice><agentID>agent-4711</agentID><acdGroup>5000</acdGroup><cause>keyOperation</cause></AgentReadyEvent>`,
	EventAgentNotReady:         `<AgentNotReadyEvent xmlns="` + codecNS6 + `"><monitorCrossRefID>17</monitorCrossRefID><agentDevice><deviceIdentifier>4711</deviceIdentifier></agentDevice><agentID>agent-4711</agentID><acdGroup>5000</acdGroup><cause>keyOperation</cause><extensions><privateData><private xmlns:pri="` + codecNSB + `"><pri:AgentNotReadyReasonValue>3</pri:AgentNotReadyReasonValue></private></privateData></extensions></AgentNotReadyEvent>`,
	EventAgentWorkingAfterCall: `<AgentWorkingAfterCallEvent xmlns="` + codecNS6 + `"><monitorCrossRefID>17</monitorCrossRefID><agentDevice><deviceIdentifier>4711</deviceIdentifier></agentDevice><agentID>agent-4711</agentID><acdGroup>5000</acdGroup><pendingAgentState>ready</pendingAgentState><cause>keyOperation</cause></AgentWorkingAfterCallEvent>`,
	EventAgentBusy:             `<AgentBusyEvent xmlns="` + codecNS6 + `"><monitorCrossRefID>17</monitorCrossRefID><agentDevice><deviceIdentifier>4711</deviceIdentifier></agentDevice><agentID>agent-4711</agentID><acdGroup>5000</acdGroup><pendingAgentState>ready</pendingAgentState><cause>keyOperation</cause></AgentBusyEvent>`,
	EventForwarding:            `<ForwardingEvent xmlns="` + codecNS6 + `"><monitorCrossRefID>17</monitorCrossRefID><device><deviceIdentifier>4711</deviceIdentifier></device><forwardingType>forwardNoAns</forwardingType><forwardStatus>true</forwardStatus><forwardTo>2424</forwardTo><ringCount>4</ringCount></ForwardingEvent>`,
	EventDoNotDisturb:          `<DoNotDisturbEvent xmlns="` + codecNS6 + `"><monitorCrossRefID>17</monitorCrossRefID><device><deviceIdentifier>4711</deviceIdentifier></device><doNotDisturbOn>true</doNotDisturbOn></DoNotDisturbEvent>`,
	EventOutOfService:          `<OutOfServiceEvent xmlns="` + codecNS6 + `"><monitorCrossRefID>17</monitorCrossRefID><device><deviceIdentifier>4711</deviceIdentifier></device><cause>keyOperation</cause></OutOfServiceEvent>`,
	EventBackInService:         `<BackInServiceEvent xmlns="` + codecNS6 + `"><monitorCrossRefID>17</monitorCrossRefID><device><deviceIdentifier>4711</deviceIdentifier></device><cause>keyOperation</cause></BackInServiceEvent>`,
}

func TestCodecAppendEvent(t *testing.T) {
	for k := EventKind(1); k < eventKindCount; k++ {
		want, ok := codecEventWant[k]
		if !ok {
			t.Errorf("%v: no expected document", k)
			continue
		}
		got, err := AppendEvent([]byte("prefix"), codecFullEvent(k), "17", Edition6)
		if err != nil {
			t.Errorf("%v: %v", k, err)
			continue
		}
		if w := "prefix" + codecDecl + want; string(got) != w {
			t.Errorf("%v\n got %s\nwant %s", k, got, w)
		}
	}
	// Minimal events: optional elements left out, an unknown device is notKnown.
	minimal := map[EventKind]string{
		EventAgentReady:            `<AgentReadyEvent><monitorCrossRefID>1</monitorCrossRefID><agentDevice><notKnown/></agentDevice></AgentReadyEvent>`,
		EventAgentNotReady:         `<AgentNotReadyEvent><monitorCrossRefID>1</monitorCrossRefID><agentDevice><notKnown/></agentDevice></AgentNotReadyEvent>`,
		EventAgentWorkingAfterCall: `<AgentWorkingAfterCallEvent><monitorCrossRefID>1</monitorCrossRefID><agentDevice><notKnown/></agentDevice></AgentWorkingAfterCallEvent>`,
		EventForwarding:            `<ForwardingEvent><monitorCrossRefID>1</monitorCrossRefID><device><notKnown/></device><forwardingType></forwardingType><forwardStatus>false</forwardStatus></ForwardingEvent>`,
		EventDoNotDisturb:          `<DoNotDisturbEvent><monitorCrossRefID>1</monitorCrossRefID><device><notKnown/></device><doNotDisturbOn>false</doNotDisturbOn></DoNotDisturbEvent>`,
		EventBackInService:         `<BackInServiceEvent><monitorCrossRefID>1</monitorCrossRefID><device><notKnown/></device></BackInServiceEvent>`,
	}
	for k, want := range minimal {
		got, err := AppendEvent(nil, &Event{Kind: k}, "1", EditionNone)
		if err != nil || string(got) != codecDecl+want {
			t.Errorf("%v minimal: %v\n got %s\nwant %s", k, err, got, codecDecl+want)
		}
	}
	for _, k := range []EventKind{0, eventKindCount, 255} {
		if got, err := AppendEvent([]byte("x"), &Event{Kind: k}, "1", Edition6); err == nil || string(got) != "x" {
			t.Errorf("kind %d: got %q, %v; want an error and dst unchanged", k, got, err)
		}
	}
}

// Each edition writes its own namespace; EditionNone writes none; ECMA-354
// messages always use the session namespace.
func TestCodecEncodeNamespacePerEdition(t *testing.T) {
	editions := map[Edition]string{EditionNone: "", Edition2: codecNS2, Edition3: codecNS3, Edition4: codecNS4, Edition5: codecNS5, Edition6: codecNS6}
	for ed, ns := range editions {
		csta := []func() ([]byte, error){
			func() ([]byte, error) { return Encode(GetDoNotDisturbResponse{}, ed) },
			func() ([]byte, error) { return Encode(ErrGeneric, ed) },
			func() ([]byte, error) { return Encode(SystemStatus{SystemStatus: SystemNormal}, ed) },
			func() ([]byte, error) { return AppendEvent(nil, codecFullEvent(EventAgentNotReady), "1", ed) },
		}
		for i, enc := range csta {
			b, err := enc()
			if err != nil {
				t.Fatal(err)
			}
			root := parseRoot(t, b)
			if root.NamespaceURI() != ns {
				t.Errorf("%v #%d: namespace %q, want %q", ed, i, root.NamespaceURI(), ns)
			}
			if ns == "" && root.SelectAttr("xmlns") != nil {
				t.Errorf("%v #%d: EditionNone wrote an xmlns attribute: %s", ed, i, b)
			}
		}
		for _, m := range []Message{StartApplicationSessionPosResponse{}, StopApplicationSessionPosResponse{},
			ResetApplicationSessionTimerNegResponse{}, ApplicationSessionTerminated{}} {
			b, err := Encode(m, ed)
			if err != nil {
				t.Fatal(err)
			}
			if got := parseRoot(t, b).NamespaceURI(); got != codecNSS {
				t.Errorf("%v %s: namespace %q, want the ECMA-354 one", ed, m.Name(), got)
			}
		}
	}
}

func TestCodecEncodeEscaping(t *testing.T) {
	in := "a<b>&\"c'\x01\x1f\t\n\r\xff\uFFFE\uFFFF€" + "\U0001F600"
	wantText := "a<b>&\"c'\uFFFD\uFFFD\t\n\r\uFFFD\uFFFD\uFFFD€" + "\U0001F600"
	b, err := Encode(StartApplicationSessionNegResponse{ErrorCode: SessionError{ApplError: in}}, EditionNone)
	if err != nil {
		t.Fatal(err)
	}
	wantEsc := "a&lt;b&gt;&amp;&quot;c&apos;\uFFFD\uFFFD\t\n&#xD;\uFFFD\uFFFD\uFFFD€\U0001F600"
	if !bytes.Contains(b, []byte("<applError>"+wantEsc+"</applError>")) {
		t.Errorf("escaped text:\n got %q\nwant %q", b, wantEsc)
	}
	root := parseRoot(t, b)
	if got := root.FindElement("errorCode/applError").Text(); got != wantText {
		t.Errorf("read back %q, want %q", got, wantText)
	}
	// Error classes are element names: unknown ones must not reach the wire.
	for _, e := range []*Error{nil, {}, {Class: "bad name"}, {Class: "x><y"}} {
		if b, err := Encode(e, Edition6); err == nil {
			t.Errorf("Encode(%#v) = %s, want an error", e, b)
		}
	}
}

// decode(encode(x)) == x for the message that travels both ways.
func TestCodecSystemStatusRoundTrip(t *testing.T) {
	for _, ed := range []Edition{EditionNone, Edition2, Edition3, Edition4, Edition5, Edition6} {
		for _, v := range []SystemStatusValue{SystemDisabled, SystemPartiallyDisabled, SystemEnabled, SystemInitializing,
			SystemMessagesLost, SystemNormal, SystemOverloadImminent, SystemOverloadReached, SystemOverloadRelieved} {
			for _, reg := range []string{"", "1", "a<&>\"'\tb\r\nc", "ünïcødé"} {
				x := SystemStatus{SysStatRegisterID: reg, SystemStatus: v}
				b, err := Encode(x, ed)
				if err != nil {
					t.Fatal(err)
				}
				d, err := Decode(b, 32)
				if err != nil {
					t.Fatalf("%v %+v: %v\n%s", ed, x, err, b)
				}
				if !reflect.DeepEqual(d.Message, x) || d.Edition != ed || !d.EditionKnown {
					t.Errorf("%v: round trip %+v → %s → %+v (edition %v)", ed, x, b, d.Message, d.Edition)
				}
			}
		}
	}
}

func TestCodecAppendEncode(t *testing.T) {
	b, err := AppendEncode([]byte("HEADER!!"), SystemStatusResponse{}, Edition6)
	if err != nil || !bytes.HasPrefix(b, []byte("HEADER!!"+codecDecl+"<SystemStatusResponse")) {
		t.Errorf("AppendEncode did not append: %q, %v", b, err)
	}
	for _, m := range []Message{clientResponse{"FooResponse"}, StartApplicationSession{}, SetAgentState{}, MonitorStart{}} {
		got, err := AppendEncode([]byte("x"), m, Edition6)
		if err == nil || string(got) != "x" {
			t.Errorf("%s: got %q, %v; want an error and dst unchanged", m.Name(), got, err)
		}
	}
}

func TestCodecAppendFrameInvokeIDs(t *testing.T) {
	for _, id := range []int{0, 1, 9999, 10000, 12345, -1, -10001, math.MaxInt, math.MinInt} {
		b, err := AppendFrame(nil, id, []byte("<a/>"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := ParseFrame(b, MaxFrameSize)
		if err != nil {
			t.Errorf("invoke ID %d: header % x does not parse: %v", id, b[:8], err)
			continue
		}
		want := id % 10000
		if want < 0 {
			want = -want
		}
		if f.InvokeID != want || string(f.XML) != "<a/>" {
			t.Errorf("invoke ID %d framed as %d", id, f.InvokeID)
		}
	}
}

// TestCodecEncoderOutputWellFormed runs xmllint over every document the
// encoder tests produce.
func TestCodecEncoderOutputWellFormed(t *testing.T) {
	docs := map[string][]byte{}
	for _, tc := range codecEncodeCases {
		b, err := Encode(tc.msg, tc.ed)
		if err != nil {
			t.Fatal(err)
		}
		docs["encode "+tc.name] = b
	}
	for k := EventKind(1); k < eventKindCount; k++ {
		for _, ed := range []Edition{EditionNone, Edition2, Edition6} {
			b, err := AppendEvent(nil, codecFullEvent(k), "17", ed)
			if err != nil {
				t.Fatal(err)
			}
			docs[fmt.Sprintf("event %v %v", k, ed)] = b
			b, err = AppendEvent(nil, &Event{Kind: k}, "", ed)
			if err != nil {
				t.Fatal(err)
			}
			docs[fmt.Sprintf("event %v %v minimal", k, ed)] = b
		}
	}
	nasty := "a<b>&\"c'\x01\x1f\t\n\r\xff\uFFFE\uFFFF\U0001F600]]>"
	for name, m := range map[string]Message{
		"escaping applError":  StartApplicationSessionNegResponse{ErrorCode: SessionError{ApplError: nasty}},
		"escaping session":    StartApplicationSessionPosResponse{SessionID: nasty, ActualProtocolVersion: nasty},
		"escaping error":      &Error{Class: ErrPrivateErrorCode, Value: nasty},
		"escaping forwarding": GetForwardingResponse{ForwardingList: []ForwardListItem{{ForwardingType: ForwardingType(nasty), ForwardDN: DeviceID(nasty)}}},
		"escaping agent": GetAgentStateResponse{AgentStateList: []AgentStateEntry{{AgentID: nasty,
			AgentInfo: []AgentInfoItem{{ACDGroup: DeviceID(nasty), AgentState: AgentState(nasty), PendingAgentState: AgentState(nasty)}}}}, ReasonCode: nasty},
	} {
		b, err := Encode(m, Edition6)
		if err != nil {
			t.Fatal(err)
		}
		docs[name] = b
	}
	ev := Event{Kind: EventAgentNotReady, Device: DeviceID(nasty), AgentID: nasty, ACDGroup: DeviceID(nasty), ReasonCode: nasty, Cause: nasty}
	b, err := AppendEvent(nil, &ev, nasty, Edition6)
	if err != nil {
		t.Fatal(err)
	}
	docs["escaping event"] = b
	xmlcheck.WellFormed(t, docs)
}

// The etree reader used by tests and the decoder agree on the encoder's output.
func TestCodecEncodedAnswersParse(t *testing.T) {
	for _, tc := range codecEncodeCases {
		b, err := Encode(tc.msg, tc.ed)
		if err != nil {
			t.Fatal(err)
		}
		d := etree.NewDocument()
		if err := d.ReadFromBytes(b); err != nil || d.Root() == nil || d.Root().Tag != tc.msg.Name() {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
