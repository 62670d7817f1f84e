package csta

// Typed CSTA (ECMA-323) and application-session (ECMA-354) messages. Field
// names keep the standard's spelling; shapes follow research/csta.md §1.
// The codec reads them in any child order and writes them in schema order.

// DeviceID is a CSTA device identifier as the client wrote it (a dialing
// number, an extension, or a user ID); the gateway maps it to BroadWorks.
type DeviceID string

// deviceRequest is a request that acts on one device: the front end checks
// that device against the user's device limits (Config.DeviceLimits) before
// the Service sees the request. Other devices a request carries (an ACD
// group, a forwarding destination) are not the device acted on and are not
// checked. An agent a request names is checked by the Service, which knows
// where the agent sits (Requester.Devices).
type deviceRequest interface {
	Message
	subjectDevice() DeviceID
}

func (m MonitorStart) subjectDevice() DeviceID    { return m.Device }
func (m SetAgentState) subjectDevice() DeviceID   { return m.Device }
func (m GetAgentState) subjectDevice() DeviceID   { return m.Device }
func (m SetForwarding) subjectDevice() DeviceID   { return m.Device }
func (m GetForwarding) subjectDevice() DeviceID   { return m.Device }
func (m SetDoNotDisturb) subjectDevice() DeviceID { return m.Device }
func (m GetDoNotDisturb) subjectDevice() DeviceID { return m.Device }

// Message is any message the codec can encode or decode.
type Message interface {
	// Name is the root element's local name.
	Name() string
}

// ---- ECMA-354 application session (research/csta.md §1.8) ----

type StartApplicationSession struct {
	ApplicationID string
	// UserName and Password come from applicationSpecificInfo, in either the
	// <user>/<password> form (OpenScape) or Avaya's SessionLoginInfo
	// <userName>/<password>. HasCredentials is false when neither was sent.
	UserName       string
	Password       string
	HasCredentials bool
	// ProtocolVersions are the requestedProtocolVersions in client order.
	ProtocolVersions []string
	// RequestedSessionDuration in seconds; 0 when absent.
	RequestedSessionDuration int
}

type StartApplicationSessionPosResponse struct {
	SessionID             string
	ActualProtocolVersion string
	ActualSessionDuration int
}

// Session error values (ECMA-354 definedError).
const (
	SessionErrInvalidApplicationInfo        = "invalidApplicationInfo"
	SessionErrProtocolVersionNotSupported   = "requestedProtocolVersionNotSupported"
	SessionErrServerResourcesBusy           = "serverResourcesBusy"
	SessionErrMaxNumberSessions             = "maxNumberSessions"
	SessionErrInvalidSessionID              = "invalidSessionID"
	SessionErrServerCannotResetSessionTimer = "serverCannotResetSessionTimer"
	SessionTermReasonResourceLimitation     = "resourceLimitation"
	SessionTermReasonSessionTimerExpired    = "sessionTimerExpired"
	sessionServerTermReasonShutdown         = "serverShutdown"
	sessionServerTermReasonUserRevoked      = "userNotAuthorized"
)

// SessionError is the errorCode of the ECMA-354 negative responses: either a
// definedError or a free-text applError.
type SessionError struct {
	DefinedError string
	ApplError    string
}

type StartApplicationSessionNegResponse struct{ ErrorCode SessionError }

type StopApplicationSession struct {
	SessionID        string
	DefinedEndReason string
	AppEndReason     string
}

type StopApplicationSessionPosResponse struct{}

type StopApplicationSessionNegResponse struct{ ErrorCode SessionError }

type ResetApplicationSessionTimer struct {
	SessionID                string
	RequestedSessionDuration int // seconds; 0 when absent
}

type ResetApplicationSessionTimerPosResponse struct{ ActualSessionDuration int }

type ResetApplicationSessionTimerNegResponse struct{ ErrorCode SessionError }

type ApplicationSessionTerminated struct {
	SessionID         string
	DefinedTermReason string // resourceLimitation | sessionTimerExpired
	ServerTermReason  string // free text, used when DefinedTermReason is empty
}

func (StartApplicationSession) Name() string            { return "StartApplicationSession" }
func (StartApplicationSessionPosResponse) Name() string { return "StartApplicationSessionPosResponse" }
func (StartApplicationSessionNegResponse) Name() string { return "StartApplicationSessionNegResponse" }
func (StopApplicationSession) Name() string             { return "StopApplicationSession" }
func (StopApplicationSessionPosResponse) Name() string  { return "StopApplicationSessionPosResponse" }
func (StopApplicationSessionNegResponse) Name() string  { return "StopApplicationSessionNegResponse" }
func (ResetApplicationSessionTimer) Name() string       { return "ResetApplicationSessionTimer" }
func (ResetApplicationSessionTimerPosResponse) Name() string {
	return "ResetApplicationSessionTimerPosResponse"
}
func (ResetApplicationSessionTimerNegResponse) Name() string {
	return "ResetApplicationSessionTimerNegResponse"
}
func (ApplicationSessionTerminated) Name() string { return "ApplicationSessionTerminated" }

// ---- System services (research/csta.md §1.7) ----

// SystemStatusValue is ECMA-269's SystemStatus enumeration.
type SystemStatusValue string

const (
	SystemDisabled          SystemStatusValue = "disabled"
	SystemPartiallyDisabled SystemStatusValue = "partiallyDisabled"
	SystemEnabled           SystemStatusValue = "enabled"
	SystemInitializing      SystemStatusValue = "initializing"
	SystemMessagesLost      SystemStatusValue = "messagesLost"
	SystemNormal            SystemStatusValue = "normal"
	SystemOverloadImminent  SystemStatusValue = "overloadImminent"
	SystemOverloadReached   SystemStatusValue = "overloadReached"
	SystemOverloadRelieved  SystemStatusValue = "overloadRelieved"
)

func validSystemStatus(v SystemStatusValue) bool {
	switch v {
	case SystemDisabled, SystemPartiallyDisabled, SystemEnabled, SystemInitializing,
		SystemMessagesLost, SystemNormal, SystemOverloadImminent, SystemOverloadReached,
		SystemOverloadRelieved:
		return true
	}
	return false
}

// SystemStatus travels both ways: clients send it (answered with
// SystemStatusResponse), and the connector sends it on link changes.
type SystemStatus struct {
	SysStatRegisterID string
	SystemStatus      SystemStatusValue
}

type SystemStatusResponse struct{}

type SystemRegister struct {
	// RequestTypes as sent; absent means the client wants systemStatus.
	SystemStatusRequested bool
}

type SystemRegisterResponse struct{ SysStatRegisterID string }

type RequestSystemStatus struct{ SysStatRegisterID string }

type RequestSystemStatusResponse struct{ SystemStatus SystemStatusValue }

func (SystemStatus) Name() string                { return "SystemStatus" }
func (SystemStatusResponse) Name() string        { return "SystemStatusResponse" }
func (SystemRegister) Name() string              { return "SystemRegister" }
func (SystemRegisterResponse) Name() string      { return "SystemRegisterResponse" }
func (RequestSystemStatus) Name() string         { return "RequestSystemStatus" }
func (RequestSystemStatusResponse) Name() string { return "RequestSystemStatusResponse" }

// ---- Monitoring (research/csta.md §1.5) ----

type MonitorStart struct {
	Device DeviceID
	// Filter holds the events the client asked to suppress (ECMA-269: in
	// requestedMonitorFilter, true means "do not send").
	Filter    MonitorFilter
	HasFilter bool
	// FilterInverted records Avaya's invertFilter private data: that client
	// lists the events it wants, so its actualMonitorFilter is echoed the same way.
	FilterInverted bool
}

type MonitorStartResponse struct {
	MonitorCrossRefID string
	ActualFilter      MonitorFilter
	HasFilter         bool
	FilterInverted    bool // write true for delivered events (Avaya invertFilter)
}

type MonitorStop struct{ MonitorCrossRefID string }

type MonitorStopResponse struct{}

func (MonitorStart) Name() string         { return "MonitorStart" }
func (MonitorStartResponse) Name() string { return "MonitorStartResponse" }
func (MonitorStop) Name() string          { return "MonitorStop" }
func (MonitorStopResponse) Name() string  { return "MonitorStopResponse" }

// ---- Agent services (research/csta.md §1.1, §1.2, §1.6) ----

// ReqAgentState is the requested state vocabulary of SetAgentState.
type ReqAgentState string

const (
	ReqLoggedOn         ReqAgentState = "loggedOn"
	ReqLoggedOff        ReqAgentState = "loggedOff"
	ReqNotReady         ReqAgentState = "notReady"
	ReqReady            ReqAgentState = "ready"
	ReqWorkingAfterCall ReqAgentState = "workingAfterCall"
)

// AgentState is the reported state vocabulary of responses.
type AgentState string

const (
	AgentNotReady         AgentState = "agentNotReady"
	AgentNull             AgentState = "agentNull"
	AgentReady            AgentState = "agentReady"
	AgentBusy             AgentState = "agentBusy"
	AgentWorkingAfterCall AgentState = "agentWorkingAfterCall"
)

type SetAgentState struct {
	Device         DeviceID
	RequestedState ReqAgentState
	AgentID        string
	// Password is the agent password as text. The schema says hexBinary, real
	// clients send plain text; see decodeAgentPassword.
	Password string
	Group    DeviceID
	// ReasonCode is BroadWorks' AgentNotReadyReasonValue private data.
	ReasonCode string
}

type SetAgentStateResponse struct {
	// PendingAgentState is empty when the change took effect at once.
	PendingAgentState AgentState
}

type GetAgentState struct {
	Device   DeviceID
	ACDGroup DeviceID
}

type AgentInfoItem struct {
	ACDGroup          DeviceID
	AgentState        AgentState
	PendingAgentState AgentState
}

type AgentStateEntry struct {
	AgentID       string
	LoggedOnState bool
	AgentInfo     []AgentInfoItem
}

type GetAgentStateResponse struct {
	AgentStateList []AgentStateEntry
	// ReasonCode is the not-ready reason, carried in BroadWorks private data.
	ReasonCode string
}

func (SetAgentState) Name() string         { return "SetAgentState" }
func (SetAgentStateResponse) Name() string { return "SetAgentStateResponse" }
func (GetAgentState) Name() string         { return "GetAgentState" }
func (GetAgentStateResponse) Name() string { return "GetAgentStateResponse" }

// ---- Forwarding and Do Not Disturb (research/csta.md §1.3, §1.4) ----

// ForwardingType is ECMA-269's ForwardingType enumeration.
type ForwardingType string

const (
	ForwardImmediate ForwardingType = "forwardImmediate"
	ForwardBusy      ForwardingType = "forwardBusy"
	ForwardNoAns     ForwardingType = "forwardNoAns"
	ForwardDND       ForwardingType = "forwardDND"
	ForwardBusyInt   ForwardingType = "forwardBusyInt"
	ForwardBusyExt   ForwardingType = "forwardBusyExt"
	ForwardNoAnsInt  ForwardingType = "forwardNoAnsInt"
	ForwardNoAnsExt  ForwardingType = "forwardNoAnsExt"
	ForwardImmInt    ForwardingType = "forwardImmInt"
	ForwardImmExt    ForwardingType = "forwardImmExt"
	ForwardDNDInt    ForwardingType = "forwardDNDInt"
	ForwardDNDExt    ForwardingType = "forwardDNDExt"
)

func validForwardingType(t ForwardingType) bool {
	switch t {
	case ForwardImmediate, ForwardBusy, ForwardNoAns, ForwardDND, ForwardBusyInt,
		ForwardBusyExt, ForwardNoAnsInt, ForwardNoAnsExt, ForwardImmInt, ForwardImmExt,
		ForwardDNDInt, ForwardDNDExt:
		return true
	}
	return false
}

// Ring count bounds used by BroadWorks-style clients (research/csta.md §5).
const (
	MinRingCount = 1
	MaxRingCount = 100
)

type SetForwarding struct {
	Device          DeviceID
	ForwardingType  ForwardingType
	ActivateForward bool
	ForwardDN       DeviceID
	RingCount       int // 0 when absent or empty
}

type SetForwardingResponse struct{}

type GetForwarding struct{ Device DeviceID }

type ForwardListItem struct {
	ForwardingType ForwardingType
	ForwardStatus  bool
	ForwardDN      DeviceID
	RingCount      int // 0 = not reported
}

type GetForwardingResponse struct{ ForwardingList []ForwardListItem }

type SetDoNotDisturb struct {
	Device         DeviceID
	DoNotDisturbOn bool
}

type SetDoNotDisturbResponse struct{}

type GetDoNotDisturb struct{ Device DeviceID }

type GetDoNotDisturbResponse struct{ DoNotDisturbOn bool }

func (SetForwarding) Name() string           { return "SetForwarding" }
func (SetForwardingResponse) Name() string   { return "SetForwardingResponse" }
func (GetForwarding) Name() string           { return "GetForwarding" }
func (GetForwardingResponse) Name() string   { return "GetForwardingResponse" }
func (SetDoNotDisturb) Name() string         { return "SetDoNotDisturb" }
func (SetDoNotDisturbResponse) Name() string { return "SetDoNotDisturbResponse" }
func (GetDoNotDisturb) Name() string         { return "GetDoNotDisturb" }
func (GetDoNotDisturbResponse) Name() string { return "GetDoNotDisturbResponse" }
