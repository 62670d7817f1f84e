package csta

import "context"

// Requester says who sent a request, for the Service's checks and journal.
type Requester struct {
	ConnID        uint64
	RemoteAddr    string
	Transport     string // "tcp" or "websocket" ("sip" when the gateway acts for a phone)
	ApplicationID string // from StartApplicationSession, if any
	UserName      string // authenticated user, if any
	// Devices is what the requester may act on (csta.authorization.devices
	// of its authenticated user, from the configuration in force when the
	// request arrived). The front end has checked the request's device
	// against it; the Service must check any agent the request names
	// against it (ErrPrivilegeViolationSpecifiedDevice).
	Devices DeviceLimit
}

// Service is what the front end asks to carry out device requests. The
// gateway implements it; the front end knows nothing of BroadWorks.
//
// Every method is called with a context that carries the request deadline
// (csta.limits.request_timeout) and must return when it is done. A returned
// *Error is sent to the client as CSTAErrorCode; any other error becomes
// operation/generic, and a context error systemResourceAvailibility/resourceBusy.
// Methods are called concurrently, one goroutine per outstanding request.
// What must reach the client after the answer (the events the request
// causes) a method registers with AfterAnswer(ctx, f).
type Service interface {
	// MonitorStart is asked before a monitor is created, so the service can
	// refuse a device it does not know (ErrInvalidDeviceID).
	MonitorStart(ctx context.Context, who Requester, req *MonitorStart) error
	SetAgentState(ctx context.Context, who Requester, req *SetAgentState) (*SetAgentStateResponse, error)
	GetAgentState(ctx context.Context, who Requester, req *GetAgentState) (*GetAgentStateResponse, error)
	SetForwarding(ctx context.Context, who Requester, req *SetForwarding) error
	GetForwarding(ctx context.Context, who Requester, req *GetForwarding) (*GetForwardingResponse, error)
	SetDoNotDisturb(ctx context.Context, who Requester, req *SetDoNotDisturb) error
	GetDoNotDisturb(ctx context.Context, who Requester, req *GetDoNotDisturb) (*GetDoNotDisturbResponse, error)
}

// ConnectionObserver is implemented by a Service that wants to know when a
// CTI connection ends (e.g. to log out agents a vanished client left logged
// on). serverShutdown is true when the connector itself is stopping.
type ConnectionObserver interface {
	ConnectionClosed(who Requester, serverShutdown bool)
}
