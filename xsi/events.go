package xsi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
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

// ParseEvent parses one complete document from an event channel.
func ParseEvent(doc []byte) (Event, error) {
	d := etree.NewDocument()
	d.ReadSettings.CharsetReader = charsetReader
	if err := d.ReadFromBytes(doc); err != nil {
		return nil, fmt.Errorf("xsi: event document: %w", err)
	}
	root := d.Root()
	if root == nil {
		return nil, errors.New("xsi: event document: no root element")
	}
	if ns := root.NamespaceURI(); ns != NS {
		return nil, fmt.Errorf("xsi: event document: root <%s> in namespace %q, want %q", root.Tag, ns, NS)
	}
	switch {
	case root.Tag == "Channel":
		c := &Channel{ChannelID: evText(root, "channelId")}
		if v := evText(root, "expires"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("xsi: Channel: bad expires %q", v)
			}
			c.Expires = time.Duration(n) * time.Second
		}
		if c.ChannelID == "" {
			return nil, errors.New("xsi: Channel: missing channelId")
		}
		return c, nil
	case strings.EqualFold(root.Tag, "ChannelHeartBeat"): // §4.6.3.4 prose writes ChannelHeartbeat
		return &ChannelHeartBeat{}, nil
	case root.Tag == "Event":
		ns, typ := evXSIType(root)
		if ns != NS {
			return nil, fmt.Errorf("xsi: Event: unknown type {%s}%s", ns, typ)
		}
		switch typ {
		case "SubscriptionEvent":
			ev, err := evParseSubscriptionEvent(root)
			if err != nil {
				return nil, err // not a typed nil in a non-nil Event
			}
			return ev, nil
		case "ChannelTerminatedEvent":
			return &ChannelTerminatedEvent{ChannelID: evText(root, "channelId"), Reason: evText(root, "reason")}, nil
		case "ErrorEvent":
			return evParseErrorEvent(root), nil
		}
		return nil, fmt.Errorf("xsi: Event: unknown type %q", typ)
	}
	return nil, fmt.Errorf("xsi: event document: unexpected root <%s>", root.Tag)
}

func evParseSubscriptionEvent(root *etree.Element) (*SubscriptionEvent, error) {
	ev := &SubscriptionEvent{
		EventID:               evText(root, "eventID"),
		UserID:                evText(root, "userId"),
		ClientID:              evText(root, "clientId"),
		ExternalApplicationID: evText(root, "externalApplicationId"),
		SubscriptionID:        evText(root, "subscriptionId"),
		SharedSubscriptionID:  evText(root, "sharedSubscriptionId"),
		ChannelID:             evText(root, "channelId"),
		TargetID:              evText(root, "targetId"),
		TargetSubID:           evText(root, "targetSubId"),
	}
	if hc := evChild(root, "httpContact"); hc != nil {
		ev.HTTPContact = evText(hc, "uri")
	}
	if ev.EventID == "" {
		return nil, errors.New("xsi: SubscriptionEvent: missing eventID")
	}
	if ev.SubscriptionID == "" {
		return nil, errors.New("xsi: SubscriptionEvent: missing subscriptionId")
	}
	if v := evText(root, "sequenceNumber"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("xsi: SubscriptionEvent %s: bad sequenceNumber %q", ev.EventID, v)
		}
		ev.SequenceNumber = n
	}
	data := evChild(root, "eventData")
	if data == nil {
		return nil, fmt.Errorf("xsi: SubscriptionEvent %s: missing eventData", ev.EventID)
	}
	d, err := evParseEventData(data)
	if err != nil {
		return nil, fmt.Errorf("xsi: SubscriptionEvent %s: %w", ev.EventID, err)
	}
	ev.Data = d
	return ev, nil
}

func evParseEventData(e *etree.Element) (EventData, error) {
	ns, typ := evXSIType(e)
	if ns != NS {
		return &UnknownEventData{Namespace: ns, Type: typ}, nil
	}
	switch typ {
	case "AgentStateEvent":
		info := evChild(e, "agentStateInfo")
		if info == nil {
			return nil, errors.New("AgentStateEvent: missing agentStateInfo")
		}
		si, err := evParseAgentState(info)
		if err != nil {
			return nil, err
		}
		return &AgentStateEvent{Info: *si}, nil
	case "AgentSubscriptionEvent":
		ev := &AgentSubscriptionEvent{}
		if jd := evChild(e, "joinData"); jd != nil {
			if jis := evChild(jd, "joinInfos"); jis != nil {
				ev.Joins = evParseJoins(jis)
			}
		}
		if si := evChild(e, "stateInfo"); si != nil {
			st, err := evParseAgentState(si)
			if err != nil {
				return nil, err
			}
			ev.State = st
		}
		return ev, nil
	case "ACDAgentJoinUpdateEvent":
		ev := &ACDAgentJoinUpdateEvent{}
		if u := evChild(e, "ccAgentJoinUpdateData"); u != nil {
			ev.Joins = evParseJoins(u)
		}
		return ev, nil
	case "CallForwardingAlwaysEvent":
		ev := &CallForwardingAlwaysEvent{Unassigned: evChild(e, "unassigned") != nil}
		if info := evChild(e, "info"); info != nil {
			ev.Active = evBool(info, "active")
			ev.ForwardToPhoneNumber = evText(info, "forwardToPhoneNumber")
			ev.RingSplash = evBool(info, "ringSplash")
		}
		return ev, nil
	case "CallForwardingBusyEvent":
		ev := &CallForwardingBusyEvent{Unassigned: evChild(e, "unassigned") != nil}
		if info := evChild(e, "info"); info != nil {
			ev.Active = evBool(info, "active")
			ev.ForwardToPhoneNumber = evText(info, "forwardToPhoneNumber")
		}
		return ev, nil
	case "CallForwardingNoAnswerEvent":
		ev := &CallForwardingNoAnswerEvent{Unassigned: evChild(e, "unassigned") != nil}
		if info := evChild(e, "info"); info != nil {
			ev.Active = evBool(info, "active")
			ev.ForwardToPhoneNumber = evText(info, "forwardToPhoneNumber")
			ev.NumberOfRings, _ = strconv.Atoi(evText(info, "numberOfRings"))
		}
		return ev, nil
	case "DoNotDisturbEvent":
		ev := &DoNotDisturbEvent{Unassigned: evChild(e, "unassigned") != nil}
		if info := evChild(e, "info"); info != nil {
			ev.Active = evBool(info, "active")
			ev.RingSplash = evBool(info, "ringSplash")
		}
		return ev, nil
	case "HotelingGuestEvent":
		ev := &HotelingGuestEvent{Unassigned: evChild(e, "unassigned") != nil}
		if info := evChild(e, "info"); info != nil {
			ev.Active = evBool(info, "active")
			ev.EnableAssociationLimit = evBool(info, "enableAssociationLimit")
			ev.AssociationLimitHours, _ = strconv.Atoi(evText(info, "associationLimitHours"))
			ev.HostUserID = evText(info, "hostUserId")
			ev.HostLastName = evText(info, "hostLastName")
			ev.HostFirstName = evText(info, "hostFirstName")
			if v := evText(info, "hostAssociationDateTime"); v != "" {
				t, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					return nil, fmt.Errorf("HotelingGuestEvent: bad hostAssociationDateTime %q", v)
				}
				ev.HostAssociationDateTime = t
			}
			ev.HostEnforcesAssociationLimit = evBool(info, "hostEnforcesAssociationLimit")
			ev.HostAssociationLimitHours, _ = strconv.Atoi(evText(info, "hostAssociationLimitHours"))
		}
		return ev, nil
	case "SubscriptionTerminatedEvent":
		return &SubscriptionTerminatedEvent{}, nil
	case "ErrorEvent":
		return evParseErrorEvent(e), nil
	}
	return &UnknownEventData{Namespace: ns, Type: typ}, nil
}

func evParseErrorEvent(e *etree.Element) *ErrorEvent {
	code, _ := strconv.Atoi(evText(e, "errorCode"))
	return &ErrorEvent{ErrorCode: code, ErrorMessage: evText(e, "errorMessage")}
}

func evParseJoins(parent *etree.Element) []ACDAgentJoinInfo {
	var out []ACDAgentJoinInfo
	for _, ji := range parent.ChildElements() {
		if ji.Tag != "joinInfo" {
			continue
		}
		j := ACDAgentJoinInfo{ACDUserID: evText(ji, "acdUserId"), Joined: evChild(ji, "joined") != nil}
		j.SkillLevel, _ = strconv.Atoi(evText(ji, "skillLevel"))
		out = append(out, j)
	}
	return out
}

// evparseAgentState reads AgentStateInformation in either shape: R19+
// <stateTimestamp><value>ms</value><severity/></stateTimestamp> or the
// older <stateTimestamp>ms</stateTimestamp> (same for averageWrapUpTime).
func evParseAgentState(e *etree.Element) (*AgentStateInfo, error) {
	si := &AgentStateInfo{
		State:                  evText(e, "state"),
		UnavailableCode:        evText(e, "unavailableCode"),
		WrapUpCallID:           evText(e, "wrapUpCallId"),
		WrapUpCallCenterUserID: evText(e, "wrapUpCallCenterUserId"),
		TotalAvailableTime:     -1,
		AverageWrapUpTime:      -1,
	}
	if si.State == "" {
		return nil, errors.New("agent state: missing state")
	}
	if ts := evChild(e, "stateTimestamp"); ts != nil {
		v, sev := evValueWithSeverity(ts)
		t, err := evMillis(v)
		if err != nil {
			return nil, fmt.Errorf("agent state: stateTimestamp: %w", err)
		}
		si.StateTimestamp, si.StateSeverity = t, sev
	}
	if v := evText(e, "signInTimestamp"); v != "" {
		t, err := evMillis(v)
		if err != nil {
			return nil, fmt.Errorf("agent state: signInTimestamp: %w", err)
		}
		si.SignInTimestamp = t
	}
	if v := evText(e, "totalAvailableTime"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("agent state: bad totalAvailableTime %q", v)
		}
		si.TotalAvailableTime = n
	}
	if w := evChild(e, "averageWrapUpTime"); w != nil {
		v, sev := evValueWithSeverity(w)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("agent state: bad averageWrapUpTime %q", v)
		}
		si.AverageWrapUpTime, si.AverageWrapUpSeverity = n, sev
	}
	return si, nil
}

// evvalueWithSeverity returns the value of a *WithSeverity structure, or the
// element's own text in the pre-R19 flat shape.
func evValueWithSeverity(e *etree.Element) (value, severity string) {
	if v := evChild(e, "value"); v != nil {
		return strings.TrimSpace(v.Text()), evText(e, "severity")
	}
	return strings.TrimSpace(e.Text()), ""
}

func evMillis(v string) (time.Time, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q", v)
	}
	return time.UnixMilli(n).UTC(), nil
}

// evxsiType resolves the XMLSchema-instance type attribute of e to a
// namespace URI and local name. The attribute is found by the namespace its
// prefix is bound to (never by the prefix itself), and so is the QName
// value's prefix, using e's in-scope declarations.
func evXSIType(e *etree.Element) (ns, local string) {
	for i := range e.Attr {
		a := &e.Attr[i]
		if a.Key != "type" || a.Space == "" || a.Space == "xmlns" {
			continue
		}
		if evLookupNS(e, a.Space) != NSSchemaInstance {
			continue
		}
		v := strings.TrimSpace(a.Value)
		prefix, name, ok := strings.Cut(v, ":")
		if !ok {
			prefix, name = "", v
		}
		return evLookupNS(e, prefix), name
	}
	return "", ""
}

// evlookupNS returns the namespace URI bound to prefix ("" = default) in e's
// scope, or "" when unbound.
func evLookupNS(e *etree.Element, prefix string) string {
	if prefix == "xml" {
		return "http://www.w3.org/XML/1998/namespace"
	}
	for el := e; el != nil; el = el.Parent() {
		for _, a := range el.Attr {
			if prefix == "" && a.Space == "" && a.Key == "xmlns" {
				return a.Value
			}
			if prefix != "" && a.Space == "xmlns" && a.Key == prefix {
				return a.Value
			}
		}
	}
	return ""
}

// evchild returns the first child element with local name tag (any prefix).
func evChild(e *etree.Element, tag string) *etree.Element {
	for _, c := range e.Child {
		if ce, ok := c.(*etree.Element); ok && ce.Tag == tag {
			return ce
		}
	}
	return nil
}

func evText(e *etree.Element, tag string) string {
	if c := evChild(e, tag); c != nil {
		return strings.TrimSpace(c.Text())
	}
	return ""
}

func evBool(e *etree.Element, tag string) bool {
	v := evText(e, tag)
	return v == "true" || v == "1"
}
