package xsi

import (
	"time"
)

// NSSchemaInstance is the XMLSchema-instance namespace whose "type"
// attribute discriminates events. BroadWorks binds it to the prefix "xsi1"
// and binds "xsi" to NS (research/xsi.md §0.9); prefixes are resolved, never
// compared.
const NSSchemaInstance = "http://www.w3.org/2001/XMLSchema-instance"

// Event is one document read from an event channel: *Channel,
// *ChannelHeartBeat, *SubscriptionEvent, *ChannelTerminatedEvent or
// *ErrorEvent. The Events() stream of the channel manager carries only
// *SubscriptionEvent values.
type Event interface{ xsiEvent() }

// EventData is the payload of a SubscriptionEvent: *AgentStateEvent,
// *AgentSubscriptionEvent, *ACDAgentJoinUpdateEvent,
// *CallForwardingAlwaysEvent, *DoNotDisturbEvent, *HotelingGuestEvent,
// *SubscriptionTerminatedEvent, *ErrorEvent or *UnknownEventData.
type EventData interface{ xsiEventData() }

// Channel is the first document on a channel: its ID and granted expiry.
type Channel struct {
	ChannelID string
	Expires   time.Duration // as granted by the XSP, may differ from the request
}

// ChannelHeartBeat is the XSP's echo of a heartbeat PUT.
type ChannelHeartBeat struct{}

// ChannelTerminatedEvent ends a channel; it is never acknowledged.
type ChannelTerminatedEvent struct {
	ChannelID string
	Reason    string // DuplicateChannelSet, UserDeleted, NonResponsiveChannel, ExplicitDelete, Expired, UnknownChannel
}

// ErrorEvent is the XSP complaining about what the client wrote on the
// channel (XSIBaseEvent.xsd).
type ErrorEvent struct {
	ErrorCode    int
	ErrorMessage string
}

// SubscriptionEvent is an event of one subscription (XSD SubscriptionEvent).
type SubscriptionEvent struct {
	EventID               string
	SequenceNumber        int64 // per subscription, wraps 2147483647 → 1
	UserID                string
	ClientID              string // instead of UserID for system subscriptions (R23)
	ExternalApplicationID string
	SubscriptionID        string
	SharedSubscriptionID  string
	ChannelID             string
	HTTPContact           string // httpContact/uri, set only in HTTP-contact mode
	TargetID              string // may be empty
	TargetSubID           string
	Data                  EventData

	// Server is the XSP base URL whose channel delivered the event (set by
	// the channel manager, empty from ParseEvent).
	Server string
}

// AgentStateInfo is XSD AgentStateInformation, accepting both the R19+
// shape (stateTimestamp and averageWrapUpTime as value/severity
// structures) and the older flat one.
type AgentStateInfo struct {
	State                  string // Sign-In, Available, Unavailable, Wrap-Up, Sign-Out
	StateTimestamp         time.Time
	StateSeverity          string // R19+ only, may be empty
	UnavailableCode        string
	WrapUpCallID           string
	SignInTimestamp        time.Time // zero when absent (Sign-Out)
	TotalAvailableTime     int64     // seconds; -1 when absent
	AverageWrapUpTime      int64     // seconds; -1 when absent
	AverageWrapUpSeverity  string
	WrapUpCallCenterUserID string
}

// ACDAgentJoinInfo is one queue the agent is (or is not) joined to.
type ACDAgentJoinInfo struct {
	ACDUserID  string
	Joined     bool // false: the <joined/> element was absent (unjoin)
	SkillLevel int  // 0 when absent
}

// AgentStateEvent: an agent state change (Call Center Agent package).
type AgentStateEvent struct{ Info AgentStateInfo }

// AgentSubscriptionEvent: the initial agent snapshot after a subscription
// add or refresh.
type AgentSubscriptionEvent struct {
	Joins []ACDAgentJoinInfo
	State *AgentStateInfo // nil when absent
}

// ACDAgentJoinUpdateEvent: join/unjoin of queues or skill changes.
type ACDAgentJoinUpdateEvent struct{ Joins []ACDAgentJoinInfo }

// CallForwardingAlwaysEvent: CFA changed, or the service was unassigned.
type CallForwardingAlwaysEvent struct {
	Unassigned           bool
	Active               bool
	ForwardToPhoneNumber string // as sent, often a tel: URI; not normalised
	RingSplash           bool
}

// CallForwardingBusyEvent: CFB changed, or the service was unassigned.
type CallForwardingBusyEvent struct {
	Unassigned           bool
	Active               bool
	ForwardToPhoneNumber string
}

// CallForwardingNoAnswerEvent: CFNA changed, or the service was unassigned.
type CallForwardingNoAnswerEvent struct {
	Unassigned           bool
	Active               bool
	ForwardToPhoneNumber string
	NumberOfRings        int // 0 when absent
}

// DoNotDisturbEvent: DND changed, or the service was unassigned.
type DoNotDisturbEvent struct {
	Unassigned bool
	Active     bool
	RingSplash bool
}

// HotelingGuestEvent: hoteling guest association changed, or unassigned.
type HotelingGuestEvent struct {
	Unassigned                   bool
	Active                       bool
	EnableAssociationLimit       bool
	AssociationLimitHours        int
	HostUserID                   string // empty: no host
	HostLastName                 string
	HostFirstName                string
	HostAssociationDateTime      time.Time
	HostEnforcesAssociationLimit bool
	HostAssociationLimitHours    int
}

// SubscriptionTerminatedEvent: the subscription ended; the channel manager
// resubscribes on its own.
type SubscriptionTerminatedEvent struct{}

// UnknownEventData is a payload type this package does not model. Such
// events are still acknowledged and delivered.
type UnknownEventData struct {
	Namespace string
	Type      string
}

func (*Channel) xsiEvent()                {}
func (*ChannelHeartBeat) xsiEvent()       {}
func (*ChannelTerminatedEvent) xsiEvent() {}
func (*ErrorEvent) xsiEvent()             {}
func (*SubscriptionEvent) xsiEvent()      {}

func (*AgentStateEvent) xsiEventData()             {}
func (*AgentSubscriptionEvent) xsiEventData()      {}
func (*ACDAgentJoinUpdateEvent) xsiEventData()     {}
func (*CallForwardingAlwaysEvent) xsiEventData()   {}
func (*CallForwardingBusyEvent) xsiEventData()     {}
func (*CallForwardingNoAnswerEvent) xsiEventData() {}
func (*DoNotDisturbEvent) xsiEventData()           {}
func (*HotelingGuestEvent) xsiEventData()          {}
func (*SubscriptionTerminatedEvent) xsiEventData() {}
func (*ErrorEvent) xsiEventData()                  {}
func (*UnknownEventData) xsiEventData()            {}
