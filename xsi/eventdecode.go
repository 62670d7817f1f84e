package xsi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/encoding/charmap"

	"github.com/broadworks-connector/connector/internal/xmlscan"
)

// ParseEvent parses one complete document from an event channel.
//
// It reads the document once with xmlscan, keeping only the elements the
// event types below read (no DOM): the first child of each local name
// under an element it keeps (any prefix, as BroadWorks' prefixes vary),
// and every joinInfo of a join list. The text of an element is its
// leading character data (CDATA included, comments skipped), trimmed. The
// whole document must be well-formed, as encoding/xml strictly reads it.
func ParseEvent(doc []byte) (Event, error) {
	d := evDecoders.Get().(*evDecoder)
	ev, err := d.decode(doc)
	d.reset()
	// A large document leaves large buffers (the scanner's too): let
	// them go rather than keep them in the pool.
	if len(doc) <= 64<<10 && cap(d.tbuf) <= 64<<10 && cap(d.arena) <= 64<<10 && cap(d.joins) <= 1024 {
		evDecoders.Put(d)
	}
	return ev, err
}

var evDecoders = sync.Pool{New: func() any { return &evDecoder{} }}

// evSlot names an element the decoder keeps.
type evSlot uint8

const (
	slNone evSlot = iota
	// children of the root
	slChannelID
	slExpires
	slEventID
	slSequenceNumber
	slUserID
	slClientID
	slExternalApplicationID
	slSubscriptionID
	slSharedSubscriptionID
	slTargetID
	slTargetSubID
	slHTTPContact
	slHTTPContactURI
	slReason
	slErrorCode
	slErrorMessage
	slEventData
	// children of eventData
	slDataErrorCode
	slDataErrorMessage
	slAgentStateInfo
	slJoinData
	slJoinInfos
	slStateInfo
	slJoinUpdateData
	slUnassigned
	slInfo
	// children of eventData/info
	slActive
	slForwardToPhoneNumber
	slRingSplash
	slNumberOfRings
	slEnableAssociationLimit
	slAssociationLimitHours
	slHostUserID
	slHostLastName
	slHostFirstName
	slHostAssociationDateTime
	slHostEnforcesAssociationLimit
	slHostAssociationLimitHours
	// agentStateInfo's block of agent-state slots, then stateInfo's
	slAgentState
)

// Offsets in a block of agent-state slots (AgentStateInformation).
const (
	asState evSlot = iota
	asUnavailableCode
	asWrapUpCallID
	asWrapUpCallCenterUserID
	asSignInTimestamp
	asTotalAvailableTime
	asStateTimestamp
	asStateTimestampValue
	asStateTimestampSeverity
	asAverageWrapUpTime
	asAverageWrapUpTimeValue
	asAverageWrapUpTimeSeverity
	asCount
)

const (
	slStateInfoState = slAgentState + asCount
	slCount          = slStateInfoState + asCount
)

// evElemKind is what the decoder does with a kept element.
type evElemKind uint8

const (
	evKept      evElemKind = iota // first of its name: a slot
	evJoinInfo                    // every joinInfo of a join list: a record
	evJoinField                   // a child of a joinInfo: a field of its record
)

// evElem is one node of the tree of elements the decoder keeps.
type evElem struct {
	name     string
	kind     evElemKind
	slot     evSlot // evKept: its slot; evJoinField: 0 acdUserId, 1 joined, 2 skillLevel
	children []*evElem
}

func evLeaf(name string, slot evSlot) *evElem { return &evElem{name: name, slot: slot} }

func evNode(name string, slot evSlot, children ...*evElem) *evElem {
	return &evElem{name: name, slot: slot, children: children}
}

func evAgentState(name string, slot, base evSlot) *evElem {
	return evNode(name, slot,
		evLeaf("state", base+asState),
		evLeaf("unavailableCode", base+asUnavailableCode),
		evLeaf("wrapUpCallId", base+asWrapUpCallID),
		evLeaf("wrapUpCallCenterUserId", base+asWrapUpCallCenterUserID),
		evLeaf("signInTimestamp", base+asSignInTimestamp),
		evLeaf("totalAvailableTime", base+asTotalAvailableTime),
		evNode("stateTimestamp", base+asStateTimestamp,
			evLeaf("value", base+asStateTimestampValue),
			evLeaf("severity", base+asStateTimestampSeverity)),
		evNode("averageWrapUpTime", base+asAverageWrapUpTime,
			evLeaf("value", base+asAverageWrapUpTimeValue),
			evLeaf("severity", base+asAverageWrapUpTimeSeverity)),
	)
}

var evJoinInfoElem = &evElem{name: "joinInfo", kind: evJoinInfo, children: []*evElem{
	{name: "acdUserId", kind: evJoinField, slot: 0},
	{name: "joined", kind: evJoinField, slot: 1},
	{name: "skillLevel", kind: evJoinField, slot: 2},
}}

// evRoot is the tree under the root element, whatever its name.
var evRoot = evNode("", slNone,
	evLeaf("channelId", slChannelID),
	evLeaf("expires", slExpires),
	evLeaf("eventID", slEventID),
	evLeaf("sequenceNumber", slSequenceNumber),
	evLeaf("userId", slUserID),
	evLeaf("clientId", slClientID),
	evLeaf("externalApplicationId", slExternalApplicationID),
	evLeaf("subscriptionId", slSubscriptionID),
	evLeaf("sharedSubscriptionId", slSharedSubscriptionID),
	evLeaf("targetId", slTargetID),
	evLeaf("targetSubId", slTargetSubID),
	evNode("httpContact", slHTTPContact, evLeaf("uri", slHTTPContactURI)),
	evLeaf("reason", slReason),
	evLeaf("errorCode", slErrorCode),
	evLeaf("errorMessage", slErrorMessage),
	evNode("eventData", slEventData,
		evLeaf("errorCode", slDataErrorCode),
		evLeaf("errorMessage", slDataErrorMessage),
		evAgentState("agentStateInfo", slAgentStateInfo, slAgentState),
		evNode("joinData", slJoinData, evNode("joinInfos", slJoinInfos, evJoinInfoElem)),
		evAgentState("stateInfo", slStateInfo, slStateInfoState),
		evNode("ccAgentJoinUpdateData", slJoinUpdateData, evJoinInfoElem),
		evLeaf("unassigned", slUnassigned),
		evNode("info", slInfo,
			evLeaf("active", slActive),
			evLeaf("forwardToPhoneNumber", slForwardToPhoneNumber),
			evLeaf("ringSplash", slRingSplash),
			evLeaf("numberOfRings", slNumberOfRings),
			evLeaf("enableAssociationLimit", slEnableAssociationLimit),
			evLeaf("associationLimitHours", slAssociationLimitHours),
			evLeaf("hostUserId", slHostUserID),
			evLeaf("hostLastName", slHostLastName),
			evLeaf("hostFirstName", slHostFirstName),
			evLeaf("hostAssociationDateTime", slHostAssociationDateTime),
			evLeaf("hostEnforcesAssociationLimit", slHostEnforcesAssociationLimit),
			evLeaf("hostAssociationLimitHours", slHostAssociationLimitHours),
		),
	),
)

// evField is the leading text of a kept element.
type evField struct {
	present bool
	done    bool // a child element, PI or directive ended the leading text
	pieces  int
	text    []byte // valid until the scanner's next Reset
	a, b    int32  // the trimmed text in the arena string
}

// evJoin is one joinInfo of a join list.
type evJoin struct {
	list   evSlot // slJoinInfos or slJoinUpdateData
	seen   uint8
	joined bool
	acd    evField
	skill  evField
}

// evFrame is an open element.
type evFrame struct {
	elem *evElem // nil: not kept (its subtree is only checked)
	seen uint64  // children of elem met so far
	text *evField
	rec  int // evJoinInfo: index in joins
}

type evDecoder struct {
	sc     xmlscan.Scanner
	frames []evFrame
	fields [slCount]evField
	joins  []evJoin
	tbuf   []byte // concatenated text pieces
	arena  []byte
	all    string // the arena as a string: every string of the event

	rootSeen               bool
	rootLocal, rootNS      []byte
	rootTypeNS, rootType   []byte
	dataTypeNS, dataType   []byte
	dataTypeA, dataTypeB   int32
	dataTypeNA, dataTypeNB int32
}

func (d *evDecoder) reset() {
	d.frames = d.frames[:0]
	d.fields = [slCount]evField{}
	clear(d.joins)
	d.joins = d.joins[:0]
	d.tbuf = d.tbuf[:0]
	d.arena = d.arena[:0]
	d.all = ""
	d.rootSeen = false
	d.rootLocal, d.rootNS, d.rootTypeNS, d.rootType, d.dataTypeNS, d.dataType = nil, nil, nil, nil, nil, nil
	d.sc.Reset(nil)
}

func (d *evDecoder) decode(doc []byte) (Event, error) {
	d.sc.Charset = evCharset
	d.sc.Reset(doc)
	for {
		k, err := d.sc.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("xsi: event document: %w", err)
		}
		switch k {
		case xmlscan.StartElement:
			d.endText()
			d.start()
		case xmlscan.EndElement:
			d.endText()
			d.frames = d.frames[:len(d.frames)-1]
		case xmlscan.CharData:
			if n := len(d.frames); n > 0 {
				if f := d.frames[n-1].text; f != nil && !f.done {
					d.addText(f, d.sc.Text())
				}
			}
		case xmlscan.ProcInst, xmlscan.Directive:
			d.endText()
		}
	}
	return d.event()
}

// endText ends the leading text of the innermost open element.
func (d *evDecoder) endText() {
	if n := len(d.frames); n > 0 && d.frames[n-1].text != nil {
		d.frames[n-1].text.done = true
	}
}

func (d *evDecoder) addText(f *evField, t []byte) {
	f.pieces++
	if f.pieces == 1 {
		f.text = t
		return
	}
	// The scanner's slices stay valid until Reset and tbuf only grows, so
	// earlier fields keep pointing at unchanged bytes.
	start := len(d.tbuf)
	d.tbuf = append(d.tbuf, f.text...)
	d.tbuf = append(d.tbuf, t...)
	f.text = d.tbuf[start:len(d.tbuf):len(d.tbuf)]
}

// start opens an element: the root (the first top-level element), a kept
// element, or one only checked.
func (d *evDecoder) start() {
	_, local := d.sc.Name()
	var f evFrame
	if n := len(d.frames); n == 0 {
		if !d.rootSeen {
			d.rootSeen = true
			f.elem = evRoot
			d.rootLocal = local
			d.rootNS, _ = d.sc.Namespace()
			d.rootTypeNS, d.rootType = d.xsiType()
		}
	} else if p := &d.frames[n-1]; p.elem != nil {
		f = d.child(p, local)
	}
	d.frames = append(d.frames, f)
}

func (d *evDecoder) child(p *evFrame, local []byte) evFrame {
	for i, c := range p.elem.children {
		if c.name != string(local) {
			continue
		}
		if c.kind == evJoinInfo {
			// Appending never moves a record whose field is being
			// written: a joinInfo's children hold no joinInfo.
			d.joins = append(d.joins, evJoin{list: p.elem.slot})
			return evFrame{elem: c, rec: len(d.joins) - 1}
		}
		if p.seen&(1<<i) != 0 {
			return evFrame{}
		}
		p.seen |= 1 << i
		if c.kind == evJoinField {
			j := &d.joins[p.rec]
			switch c.slot {
			case 0:
				j.acd.present = true
				return evFrame{elem: c, text: &j.acd}
			case 1:
				j.joined = true
				return evFrame{elem: c}
			}
			j.skill.present = true
			return evFrame{elem: c, text: &j.skill}
		}
		fl := &d.fields[c.slot]
		fl.present = true
		if c.slot == slEventData {
			d.dataTypeNS, d.dataType = d.xsiType()
		}
		return evFrame{elem: c, text: fl}
	}
	return evFrame{}
}

// xsiType resolves the XMLSchema-instance type attribute of the current
// start element to a namespace URI and local name. The attribute is found
// by the namespace its prefix is bound to (never by the prefix itself), and
// so is the QName value's prefix, in the element's scope. Of an attribute
// given twice, the first place and the last value count.
func (d *evDecoder) xsiType() (ns, local []byte) {
	attrs := d.sc.Attrs()
	for i := range attrs {
		a := &attrs[i]
		if string(a.Local) != "type" || len(a.Prefix) == 0 || string(a.Prefix) == "xmlns" {
			continue
		}
		if string(d.lookupNS(a.Prefix)) != NSSchemaInstance {
			continue
		}
		v := a.Value
		for j := i + 1; j < len(attrs); j++ {
			if bytes.Equal(attrs[j].Local, a.Local) && bytes.Equal(attrs[j].Prefix, a.Prefix) {
				v = attrs[j].Value
			}
		}
		v = bytes.TrimSpace(v)
		prefix, name, ok := bytes.Cut(v, []byte(":"))
		if !ok {
			prefix, name = nil, v
		}
		return d.lookupNS(prefix), name
	}
	return nil, nil
}

var nsXML = []byte("http://www.w3.org/XML/1998/namespace")

func (d *evDecoder) lookupNS(prefix []byte) []byte {
	if string(prefix) == "xml" {
		return nsXML
	}
	uri, _ := d.sc.LookupPrefix(prefix)
	return uri
}

// evCharset: events are UTF-8, the ISO-8859-1 Xsi-Actions may send is
// accepted too (research/xsi.md §0.12).
func evCharset(label string, rest []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return rest, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1":
		return charmap.ISO8859_1.NewDecoder().Bytes(rest)
	}
	return nil, fmt.Errorf("xsi: unsupported charset %q", label)
}

// freeze copies every kept text, trimmed, and the eventData type into one
// string, so that an event costs one allocation for all its strings.
func (d *evDecoder) freeze() {
	put := func(f *evField) {
		if !f.present {
			return
		}
		t := bytes.TrimSpace(f.text)
		f.a = int32(len(d.arena))
		d.arena = append(d.arena, t...)
		f.b = int32(len(d.arena))
	}
	for i := range d.fields {
		put(&d.fields[i])
	}
	for i := range d.joins {
		put(&d.joins[i].acd)
		put(&d.joins[i].skill)
	}
	d.dataTypeNA = int32(len(d.arena))
	d.arena = append(d.arena, d.dataTypeNS...)
	d.dataTypeA = int32(len(d.arena))
	d.arena = append(d.arena, d.dataType...)
	d.dataTypeB = int32(len(d.arena))
	d.all = string(d.arena)
}

func (d *evDecoder) fstr(f *evField) string { return d.all[f.a:f.b] }

func (d *evDecoder) str(s evSlot) string { return d.fstr(&d.fields[s]) }

func (d *evDecoder) has(s evSlot) bool { return d.fields[s].present }

func (d *evDecoder) bool(s evSlot) bool {
	v := d.str(s)
	return v == "true" || v == "1"
}

func (d *evDecoder) atoi(s evSlot) int { return evAtoi(d.str(s)) }

// evAtoi is strconv.Atoi with its error dropped, as the etree parser did
// (0 for text that is not a number, the clamped value out of range),
// without the error's allocation for the common empty text.
func evAtoi(v string) int {
	if v == "" {
		return 0
	}
	n, _ := strconv.Atoi(v)
	return n
}

func (d *evDecoder) event() (Event, error) {
	if !d.rootSeen {
		return nil, errors.New("xsi: event document: no root element")
	}
	if string(d.rootNS) != NS {
		return nil, fmt.Errorf("xsi: event document: root <%s> in namespace %q, want %q", d.rootLocal, d.rootNS, NS)
	}
	d.freeze()
	switch {
	case string(d.rootLocal) == "Channel":
		c := &Channel{ChannelID: d.str(slChannelID)}
		if v := d.str(slExpires); v != "" {
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
	case bytes.EqualFold(d.rootLocal, []byte("ChannelHeartBeat")): // §4.6.3.4 prose writes ChannelHeartbeat
		return &ChannelHeartBeat{}, nil
	case string(d.rootLocal) == "Event":
		if string(d.rootTypeNS) != NS {
			return nil, fmt.Errorf("xsi: Event: unknown type {%s}%s", d.rootTypeNS, d.rootType)
		}
		switch string(d.rootType) {
		case "SubscriptionEvent":
			ev, err := d.subscriptionEvent()
			if err != nil {
				return nil, err // not a typed nil in a non-nil Event
			}
			return ev, nil
		case "ChannelTerminatedEvent":
			return &ChannelTerminatedEvent{ChannelID: d.str(slChannelID), Reason: d.str(slReason)}, nil
		case "ErrorEvent":
			return &ErrorEvent{ErrorCode: d.atoi(slErrorCode), ErrorMessage: d.str(slErrorMessage)}, nil
		}
		return nil, fmt.Errorf("xsi: Event: unknown type %q", d.rootType)
	}
	return nil, fmt.Errorf("xsi: event document: unexpected root <%s>", d.rootLocal)
}

func (d *evDecoder) subscriptionEvent() (*SubscriptionEvent, error) {
	ev := &SubscriptionEvent{
		EventID:               d.str(slEventID),
		UserID:                d.str(slUserID),
		ClientID:              d.str(slClientID),
		ExternalApplicationID: d.str(slExternalApplicationID),
		SubscriptionID:        d.str(slSubscriptionID),
		SharedSubscriptionID:  d.str(slSharedSubscriptionID),
		ChannelID:             d.str(slChannelID),
		HTTPContact:           d.str(slHTTPContactURI),
		TargetID:              d.str(slTargetID),
		TargetSubID:           d.str(slTargetSubID),
	}
	if ev.EventID == "" {
		return nil, errors.New("xsi: SubscriptionEvent: missing eventID")
	}
	if ev.SubscriptionID == "" {
		return nil, errors.New("xsi: SubscriptionEvent: missing subscriptionId")
	}
	if v := d.str(slSequenceNumber); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("xsi: SubscriptionEvent %s: bad sequenceNumber %q", ev.EventID, v)
		}
		ev.SequenceNumber = n
	}
	if !d.has(slEventData) {
		return nil, fmt.Errorf("xsi: SubscriptionEvent %s: missing eventData", ev.EventID)
	}
	data, err := d.eventData()
	if err != nil {
		return nil, fmt.Errorf("xsi: SubscriptionEvent %s: %w", ev.EventID, err)
	}
	ev.Data = data
	return ev, nil
}

func (d *evDecoder) eventData() (EventData, error) {
	ns, typ := d.all[d.dataTypeNA:d.dataTypeA], d.all[d.dataTypeA:d.dataTypeB]
	if ns != NS {
		return &UnknownEventData{Namespace: ns, Type: typ}, nil
	}
	switch typ {
	case "AgentStateEvent":
		if !d.has(slAgentStateInfo) {
			return nil, errors.New("AgentStateEvent: missing agentStateInfo")
		}
		ev := &AgentStateEvent{}
		if err := d.agentState(slAgentState, &ev.Info); err != nil {
			return nil, err
		}
		return ev, nil
	case "AgentSubscriptionEvent":
		ev := &AgentSubscriptionEvent{Joins: d.joinList(slJoinInfos)}
		if d.has(slStateInfo) {
			ev.State = &AgentStateInfo{}
			if err := d.agentState(slStateInfoState, ev.State); err != nil {
				return nil, err
			}
		}
		return ev, nil
	case "ACDAgentJoinUpdateEvent":
		return &ACDAgentJoinUpdateEvent{Joins: d.joinList(slJoinUpdateData)}, nil
	case "CallForwardingAlwaysEvent":
		return &CallForwardingAlwaysEvent{
			Unassigned:           d.has(slUnassigned),
			Active:               d.bool(slActive),
			ForwardToPhoneNumber: d.str(slForwardToPhoneNumber),
			RingSplash:           d.bool(slRingSplash),
		}, nil
	case "CallForwardingBusyEvent":
		return &CallForwardingBusyEvent{
			Unassigned:           d.has(slUnassigned),
			Active:               d.bool(slActive),
			ForwardToPhoneNumber: d.str(slForwardToPhoneNumber),
		}, nil
	case "CallForwardingNoAnswerEvent":
		return &CallForwardingNoAnswerEvent{
			Unassigned:           d.has(slUnassigned),
			Active:               d.bool(slActive),
			ForwardToPhoneNumber: d.str(slForwardToPhoneNumber),
			NumberOfRings:        d.atoi(slNumberOfRings),
		}, nil
	case "DoNotDisturbEvent":
		return &DoNotDisturbEvent{
			Unassigned: d.has(slUnassigned),
			Active:     d.bool(slActive),
			RingSplash: d.bool(slRingSplash),
		}, nil
	case "HotelingGuestEvent":
		ev := &HotelingGuestEvent{
			Unassigned:                   d.has(slUnassigned),
			Active:                       d.bool(slActive),
			EnableAssociationLimit:       d.bool(slEnableAssociationLimit),
			AssociationLimitHours:        d.atoi(slAssociationLimitHours),
			HostUserID:                   d.str(slHostUserID),
			HostLastName:                 d.str(slHostLastName),
			HostFirstName:                d.str(slHostFirstName),
			HostEnforcesAssociationLimit: d.bool(slHostEnforcesAssociationLimit),
			HostAssociationLimitHours:    d.atoi(slHostAssociationLimitHours),
		}
		if v := d.str(slHostAssociationDateTime); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, fmt.Errorf("HotelingGuestEvent: bad hostAssociationDateTime %q", v)
			}
			ev.HostAssociationDateTime = t
		}
		return ev, nil
	case "SubscriptionTerminatedEvent":
		return &SubscriptionTerminatedEvent{}, nil
	case "ErrorEvent":
		return &ErrorEvent{ErrorCode: d.atoi(slDataErrorCode), ErrorMessage: d.str(slDataErrorMessage)}, nil
	}
	return &UnknownEventData{Namespace: ns, Type: typ}, nil
}

// joinList returns the joinInfos of one list, nil when it has none.
func (d *evDecoder) joinList(list evSlot) []ACDAgentJoinInfo {
	n := 0
	for i := range d.joins {
		if d.joins[i].list == list {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]ACDAgentJoinInfo, 0, n)
	for i := range d.joins {
		j := &d.joins[i]
		if j.list != list {
			continue
		}
		out = append(out, ACDAgentJoinInfo{ACDUserID: d.fstr(&j.acd), Joined: j.joined, SkillLevel: evAtoi(d.fstr(&j.skill))})
	}
	return out
}

// agentState reads AgentStateInformation in either shape: R19+
// <stateTimestamp><value>ms</value><severity/></stateTimestamp> or the
// older <stateTimestamp>ms</stateTimestamp> (same for averageWrapUpTime).
func (d *evDecoder) agentState(b evSlot, si *AgentStateInfo) error {
	*si = AgentStateInfo{
		State:                  d.str(b + asState),
		UnavailableCode:        d.str(b + asUnavailableCode),
		WrapUpCallID:           d.str(b + asWrapUpCallID),
		WrapUpCallCenterUserID: d.str(b + asWrapUpCallCenterUserID),
		TotalAvailableTime:     -1,
		AverageWrapUpTime:      -1,
	}
	if si.State == "" {
		return errors.New("agent state: missing state")
	}
	if d.has(b + asStateTimestamp) {
		v, sev := d.valueWithSeverity(b + asStateTimestamp)
		t, err := evMillis(v)
		if err != nil {
			return fmt.Errorf("agent state: stateTimestamp: %w", err)
		}
		si.StateTimestamp, si.StateSeverity = t, sev
	}
	if v := d.str(b + asSignInTimestamp); v != "" {
		t, err := evMillis(v)
		if err != nil {
			return fmt.Errorf("agent state: signInTimestamp: %w", err)
		}
		si.SignInTimestamp = t
	}
	if v := d.str(b + asTotalAvailableTime); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("agent state: bad totalAvailableTime %q", v)
		}
		si.TotalAvailableTime = n
	}
	if d.has(b + asAverageWrapUpTime) {
		v, sev := d.valueWithSeverity(b + asAverageWrapUpTime)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("agent state: bad averageWrapUpTime %q", v)
		}
		si.AverageWrapUpTime, si.AverageWrapUpSeverity = n, sev
	}
	return nil
}

// valueWithSeverity returns the value of a *WithSeverity structure (its
// value and severity are the next two slots), or the element's own text in
// the pre-R19 flat shape.
func (d *evDecoder) valueWithSeverity(s evSlot) (value, severity string) {
	if d.has(s + 1) {
		return d.str(s + 1), d.str(s + 2)
	}
	return d.str(s), ""
}

func evMillis(v string) (time.Time, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q", v)
	}
	return time.UnixMilli(n).UTC(), nil
}
