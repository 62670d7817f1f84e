package csta

// EventKind names the device events the front end can deliver to monitors.
type EventKind uint8

const (
	EventAgentLoggedOn EventKind = iota + 1
	EventAgentLoggedOff
	EventAgentReady
	EventAgentNotReady
	EventAgentWorkingAfterCall
	EventAgentBusy
	EventForwarding
	EventDoNotDisturb
	EventOutOfService
	EventBackInService
	eventKindCount
)

// eventInfo ties each kind to its root element, its MonitorFilter category
// and the flag that suppresses it (ECMA-269 MonitorFilter, research/csta.md §1.5).
var eventInfo = [eventKindCount]struct {
	root, category, flag string
}{
	EventAgentLoggedOn:         {"AgentLoggedOnEvent", "logicalDeviceFeature", "agentLoggedOn"},
	EventAgentLoggedOff:        {"AgentLoggedOffEvent", "logicalDeviceFeature", "agentLoggedOff"},
	EventAgentReady:            {"AgentReadyEvent", "logicalDeviceFeature", "agentReady"},
	EventAgentNotReady:         {"AgentNotReadyEvent", "logicalDeviceFeature", "agentNotReady"},
	EventAgentWorkingAfterCall: {"AgentWorkingAfterCallEvent", "logicalDeviceFeature", "agentWorkingAfterCall"},
	EventAgentBusy:             {"AgentBusyEvent", "logicalDeviceFeature", "agentBusy"},
	EventForwarding:            {"ForwardingEvent", "logicalDeviceFeature", "forwarding"},
	EventDoNotDisturb:          {"DoNotDisturbEvent", "logicalDeviceFeature", "doNotDisturb"},
	EventOutOfService:          {"OutOfServiceEvent", "maintenance", "outOfService"},
	EventBackInService:         {"BackInServiceEvent", "maintenance", "backInService"},
}

func (k EventKind) valid() bool { return k > 0 && k < eventKindCount }

// String is the event's root element name.
func (k EventKind) String() string {
	if !k.valid() {
		return "unknownEvent"
	}
	return eventInfo[k].root
}

// Event is one device event to fan out to the monitors of Device.
type Event struct {
	Kind   EventKind
	Device DeviceID

	// Agent events.
	AgentID           string
	ACDGroup          DeviceID
	ReasonCode        string // AgentNotReady: BroadWorks AgentNotReadyReasonValue
	PendingAgentState string // AgentBusy (agent* values) / AgentWorkingAfterCall (notReady, ready, null)
	Cause             string // EventCause, e.g. normal, keyOperation

	// ForwardingEvent.
	ForwardingType ForwardingType
	ForwardStatus  bool
	ForwardTo      DeviceID
	RingCount      int

	// DoNotDisturbEvent.
	DoNotDisturbOn bool
}

// MonitorFilter is the set of event kinds a monitor suppresses. The zero
// value suppresses nothing, matching an omitted requestedMonitorFilter.
type MonitorFilter struct{ suppressed uint32 }

// Suppresses reports whether events of kind k are filtered out.
func (f MonitorFilter) Suppresses(k EventKind) bool { return f.suppressed&(1<<k) != 0 }

// Suppress returns f with kind k filtered out (or let through, if on is false).
func (f MonitorFilter) Suppress(k EventKind, on bool) MonitorFilter {
	if on {
		f.suppressed |= 1 << k
	} else {
		f.suppressed &^= 1 << k
	}
	return f
}

func filterKindByFlag(category, flag string) (EventKind, bool) {
	for k := EventKind(1); k < eventKindCount; k++ {
		if eventInfo[k].category == category && eventInfo[k].flag == flag {
			return k, true
		}
	}
	return 0, false
}
