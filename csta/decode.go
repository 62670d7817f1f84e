package csta

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/broadworks-connector/connector/internal/xmlscan"
)

// Decoded is one decoded inbound message.
type Decoded struct {
	Message Message
	// Edition is the ECMA-323 edition of the root namespace. EditionKnown is
	// false for ECMA-354 roots and unrecognised namespaces, whose replies use
	// the connection's edition instead.
	Edition      Edition
	EditionKnown bool
}

// DecodeError is a message that cannot be served as sent. Answer is what the
// client gets: a CSTAErrorCode, or an ECMA-354 negative response for session
// requests. Root is "" when the XML could not be parsed at all.
type DecodeError struct {
	Root   string
	Answer Message
	Reason string
	// Edition of the root namespace, when it could be read.
	Edition      Edition
	EditionKnown bool
}

func (e *DecodeError) Error() string {
	if e.Root == "" {
		return "csta: " + e.Reason
	}
	return fmt.Sprintf("csta: %s: %s", e.Root, e.Reason)
}

// clientResponse is a response or error the client sent us, for example the
// SystemStatusResponse to our SystemStatus. It gets no answer.
type clientResponse struct{ root string }

func (c clientResponse) Name() string { return c.root }

// Decode reads one XML document in one pass (internal/xmlscan) and decodes
// the request it carries: children are found by local name, in any order, as
// the first child of that name. maxDepth bounds element nesting (0 = the
// default bound of 1024 levels). The error, if any, is a *DecodeError.
//
// The whole document is read before a request is judged, so a document that
// is not well-formed is refused as malformed whatever it asks for; an element
// nested too deep ends the read there and is answered like any over-limit
// request.
func Decode(doc []byte, maxDepth int) (Decoded, error) {
	r := requestReaders.Get().(*requestReader)
	d, err := r.decode(latin1ToUTF8(doc), maxDepth)
	r.release()
	requestReaders.Put(r)
	return d, err
}

var requestReaders = sync.Pool{New: func() any {
	r := &requestReader{}
	r.sc.Charset = transcode
	return r
}}

// transcode is the scanner's Charset: the encodings CTI clients declare.
// BroadWorks-style clients write ISO-8859-1 (research/csta.md §1.1); a
// declaration at the very start is handled by latin1ToUTF8 before scanning,
// this serves one anywhere else.
func transcode(label string, rest []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return rest, nil
	}
	if isLatin1Label(label) {
		return latin1AsUTF8(rest), nil
	}
	return nil, fmt.Errorf("unsupported encoding %q (UTF-8 and ISO-8859-1 are)", label)
}

// slot is the text of one element the decoders read: the character data
// before its first child element or processing instruction (comments do not
// count), as a DOM's Text() gives it. Only the first element of a name gets
// the slot.
type slot struct {
	present bool
	done    bool // a child element or processing instruction ended the text
	inArena bool // text is the tail of requestReader.arena
	text    []byte
}

// Slots of the elements the decoders read. The first group are children of
// the root; the others are named by their parent.
const (
	sDevice = iota
	sRequestedAgentState
	sAgentID
	sPassword
	sGroup
	sACDGroup
	sForwardingType
	sActivateForward
	sForwardDN
	sRingCount
	sDoNotDisturbOn
	sMonitorCrossRefID
	sMonitorType
	sDeviceObject
	sCallObject
	sSysStatRegisterID
	sSystemStatus
	sSessionID
	sRequestedSessionDuration
	sApplicationID      // applicationInfo/applicationID
	sASIUser            // applicationInfo/applicationSpecificInfo/user
	sASIUserName        // .../userName
	sASIPassword        // .../password
	sChildUser          // applicationSpecificInfo/*/user of the child being read
	sChildUserName      // .../userName
	sChildPassword      // .../password
	sNestedUser         // the first child of applicationSpecificInfo with credentials: its user
	sNestedUserName     // ...
	sNestedPassword     // ...
	sDefinedEndReason   // sessionEndReason/definedEndReason
	sAppEndReason       // sessionEndReason/appEndReason
	sRequestTypesStatus // requestTypes/systemStatus
	sObjectDeviceObject // monitorObject/deviceObject
	sObjectCallObject   // monitorObject/callObject
	sFlag               // requestedMonitorFilter/*/* being read
	sInvertFilter       // extensions//invertFilter
	sNotReadyReason     // extensions//AgentNotReadyReasonValue
	staticSlots
	noSlot = -1
)

// rootFields maps the root's children the decoders read to their slots.
func rootField(name []byte) int {
	switch string(name) {
	case "device":
		return sDevice
	case "requestedAgentState":
		return sRequestedAgentState
	case "agentID":
		return sAgentID
	case "password":
		return sPassword
	case "group":
		return sGroup
	case "acdGroup":
		return sACDGroup
	case "forwardingType":
		return sForwardingType
	case "activateForward":
		return sActivateForward
	case "forwardDN":
		return sForwardDN
	case "ringCount":
		return sRingCount
	case "doNotDisturbOn":
		return sDoNotDisturbOn
	case "monitorCrossRefID":
		return sMonitorCrossRefID
	case "monitorType":
		return sMonitorType
	case "deviceObject":
		return sDeviceObject
	case "callObject":
		return sCallObject
	case "sysStatRegisterID":
		return sSysStatRegisterID
	case "systemStatus":
		return sSystemStatus
	case "sessionID":
		return sSessionID
	case "requestedSessionDuration":
		return sRequestedSessionDuration
	}
	return noSlot
}

// role is what an open element is to the decoders.
type role uint8

const (
	roleNone role = iota
	roleRoot
	roleAppInfo       // applicationInfo
	roleASI           // applicationInfo/applicationSpecificInfo
	roleASIChild      // a child of applicationSpecificInfo
	roleVersions      // requestedProtocolVersions
	roleEndReason     // sessionEndReason
	roleRequestTypes  // requestTypes
	roleMonitorObject // monitorObject
	roleFilter        // requestedMonitorFilter
	roleCategory      // requestedMonitorFilter/*
	roleFlag          // requestedMonitorFilter/*/*
	roleExtension     // extensions and everything below it
)

// Containers of the root: only the first of each name is read.
const (
	seenAppInfo = 1 << iota
	seenVersions
	seenEndReason
	seenRequestTypes
	seenMonitorObject
	seenFilter
	seenExtensions
	seenASI // applicationInfo/applicationSpecificInfo
)

type frame struct {
	role     role
	slot     int // noSlot, or the slot this element's text goes to
	children int // element children so far (paths below extensions)
}

// candidate is the element a depth-first search below extensions would find
// first, as the DOM decoder searched: a node's children are looked at in
// order, then their subtrees, the last child's first.
type candidate struct {
	found bool
	path  []int // child indexes from extensions down
	nsOK  bool  // AgentNotReadyReasonValue: a namespace the decoder accepts
}

// precedes reports whether the element at path p is found before the one at
// q by that search.
func precedes(p, q []int) bool {
	l := 0
	for l < len(p) && l < len(q) && p[l] == q[l] {
		l++
	}
	switch {
	case l == len(p):
		return true // p is an ancestor of q
	case l == len(q):
		return false
	case len(p) == l+1 && len(q) == l+1:
		return p[l] < q[l] // siblings
	case len(p) == l+1:
		return true // children are looked at before any subtree
	case len(q) == l+1:
		return false
	}
	return p[l] > q[l] // subtrees: the last child's first
}

// requestReader holds the state of one decode; it is pooled.
type requestReader struct {
	sc       xmlscan.Scanner
	frames   []frame
	slots    []slot
	arena    []byte // text gathered from several tokens
	path     []int  // child indexes from extensions to the open element
	versions []int  // slots of requestedProtocolVersions/protocolVersion
	seen     uint

	haveRoot  bool
	rootLocal []byte
	rootNS    []byte

	category    []byte // the open requestedMonitorFilter/* element
	flagName    []byte
	filter      MonitorFilter
	listed      MonitorFilter
	filterErr   error
	invert      candidate
	reason      candidate
	haveNested  bool // sNested* hold the first child of applicationSpecificInfo with credentials
	childHasAny bool
}

func (r *requestReader) release() {
	r.sc.Reset(nil)
	r.rootLocal, r.rootNS, r.category, r.flagName = nil, nil, nil, nil
	for i := range r.slots {
		r.slots[i] = slot{}
	}
	r.filterErr = nil
}

func (r *requestReader) reset(doc []byte, maxDepth int) {
	r.sc.MaxDepth = maxDepth
	r.sc.Reset(doc)
	r.frames = r.frames[:0]
	if cap(r.slots) < staticSlots {
		r.slots = make([]slot, staticSlots, staticSlots+8)
	}
	r.slots = r.slots[:staticSlots]
	for i := range r.slots {
		r.slots[i] = slot{}
	}
	r.arena = r.arena[:0]
	r.path = r.path[:0]
	r.versions = r.versions[:0]
	r.seen = 0
	r.haveRoot = false
	r.rootLocal, r.rootNS = nil, nil
	r.category, r.flagName = nil, nil
	r.filter, r.listed, r.filterErr = MonitorFilter{}, MonitorFilter{}, nil
	r.invert = candidate{path: r.invert.path[:0]}
	r.reason = candidate{path: r.reason.path[:0]}
	r.haveNested, r.childHasAny = false, false
}

// open gives the element starting under parent its role and slot.
func (r *requestReader) open(parent *frame, local []byte) frame {
	f := frame{slot: noSlot}
	take := func(s int) {
		if !r.slots[s].present {
			r.slots[s].present = true
			f.slot = s
		}
	}
	first := func(bit uint, ro role) {
		if r.seen&bit == 0 {
			r.seen |= bit
			f.role = ro
		}
	}
	if parent == nil {
		if !r.haveRoot {
			r.haveRoot = true
			r.rootLocal = local
			r.rootNS, _ = r.sc.Namespace()
			f.role = roleRoot
		}
		return f
	}
	switch parent.role {
	case roleRoot:
		switch string(local) {
		case "applicationInfo":
			first(seenAppInfo, roleAppInfo)
		case "requestedProtocolVersions":
			first(seenVersions, roleVersions)
		case "sessionEndReason":
			first(seenEndReason, roleEndReason)
		case "requestTypes":
			first(seenRequestTypes, roleRequestTypes)
		case "monitorObject":
			first(seenMonitorObject, roleMonitorObject)
		case "requestedMonitorFilter":
			first(seenFilter, roleFilter)
		case "extensions":
			first(seenExtensions, roleExtension)
		default:
			if s := rootField(local); s != noSlot {
				take(s)
			}
		}
	case roleAppInfo:
		switch string(local) {
		case "applicationID":
			take(sApplicationID)
		case "applicationSpecificInfo":
			first(seenASI, roleASI)
		}
	case roleASI:
		switch string(local) {
		case "user":
			take(sASIUser)
		case "userName":
			take(sASIUserName)
		case "password":
			take(sASIPassword)
		default:
			f.role = roleASIChild
			r.slots[sChildUser], r.slots[sChildUserName], r.slots[sChildPassword] = slot{}, slot{}, slot{}
			r.childHasAny = false
		}
	case roleASIChild:
		switch string(local) {
		case "user":
			take(sChildUser)
			r.childHasAny = true
		case "userName":
			take(sChildUserName)
			r.childHasAny = true
		case "password":
			take(sChildPassword)
			r.childHasAny = true
		}
	case roleVersions:
		if string(local) == "protocolVersion" {
			r.versions = append(r.versions, len(r.slots))
			f.slot = len(r.slots)
			r.slots = append(r.slots, slot{present: true})
		}
	case roleEndReason:
		switch string(local) {
		case "definedEndReason":
			take(sDefinedEndReason)
		case "appEndReason":
			take(sAppEndReason)
		}
	case roleRequestTypes:
		if string(local) == "systemStatus" {
			take(sRequestTypesStatus)
		}
	case roleMonitorObject:
		switch string(local) {
		case "deviceObject":
			take(sObjectDeviceObject)
		case "callObject":
			take(sObjectCallObject)
		}
	case roleFilter:
		f.role = roleCategory
		r.category = local
	case roleCategory:
		f.role = roleFlag
		r.flagName = local
		r.slots[sFlag] = slot{present: true}
		f.slot = sFlag
	case roleExtension:
		f.role = roleExtension
		r.path = append(r.path, parent.children)
		switch string(local) {
		case "invertFilter":
			if r.offer(&r.invert) {
				r.slots[sInvertFilter] = slot{present: true}
				f.slot = sInvertFilter
			}
		case "AgentNotReadyReasonValue":
			if r.offer(&r.reason) {
				ns, _ := r.sc.Namespace()
				r.reason.nsOK = len(ns) == 0 || string(ns) == NSBroadSoftPrivate || bytes.Equal(ns, r.rootNS)
				r.slots[sNotReadyReason] = slot{present: true}
				f.slot = sNotReadyReason
			}
		}
	}
	return f
}

// offer makes the element at r.path the candidate if the search finds it
// before the current one.
func (r *requestReader) offer(c *candidate) bool {
	if c.found && !precedes(r.path, c.path) {
		return false
	}
	c.found = true
	c.path = append(c.path[:0], r.path...)
	return true
}

// close ends the element of frame f.
func (r *requestReader) close(f *frame) {
	switch f.role {
	case roleASIChild:
		if r.childHasAny && !r.haveNested {
			r.haveNested = true
			r.slots[sNestedUser] = r.slots[sChildUser]
			r.slots[sNestedUserName] = r.slots[sChildUserName]
			r.slots[sNestedPassword] = r.slots[sChildPassword]
		}
	case roleFlag:
		if r.filterErr != nil {
			break
		}
		v := strings.TrimSpace(string(r.slots[sFlag].text))
		on, ok := parseBool(v)
		if !ok {
			r.filterErr = bad(ErrInvalidMonitorFilter, "%s/%s %q is not a boolean", r.category, r.flagName, v)
			break
		}
		if k, known := filterKindByFlag(string(r.category), string(r.flagName)); known {
			r.filter = r.filter.Suppress(k, on)
			r.listed = r.listed.Suppress(k, on)
		}
	}
}

// addText appends character data to the open element's slot.
func (r *requestReader) addText(t []byte) {
	f := &r.frames[len(r.frames)-1]
	if f.slot == noSlot {
		return
	}
	s := &r.slots[f.slot]
	if s.done || len(t) == 0 {
		return
	}
	switch {
	case len(s.text) == 0:
		s.text = t // the scanner's slices stay valid until its next Reset
	case s.inArena:
		r.arena = append(r.arena, t...)
		s.text = r.arena[len(r.arena)-len(s.text)-len(t):]
	default:
		start := len(r.arena)
		r.arena = append(append(r.arena, s.text...), t...)
		s.text = r.arena[start:]
		s.inArena = true
	}
}

// endText marks the open element's text as ended by a child.
func (r *requestReader) endText() {
	if n := len(r.frames); n > 0 && r.frames[n-1].slot != noSlot {
		r.slots[r.frames[n-1].slot].done = true
	}
}

func (r *requestReader) decode(doc []byte, maxDepth int) (Decoded, error) {
	r.reset(doc, maxDepth)
	var scanErr error
	for scanErr == nil {
		kind, err := r.sc.Next()
		if err != nil {
			if err != io.EOF {
				scanErr = err
			}
			break
		}
		switch kind {
		case xmlscan.StartElement:
			r.endText()
			var parent *frame
			if n := len(r.frames); n > 0 {
				parent = &r.frames[n-1]
			}
			_, local := r.sc.Name()
			f := r.open(parent, local)
			if parent != nil {
				parent.children++
			}
			r.frames = append(r.frames, f)
		case xmlscan.EndElement:
			n := len(r.frames) - 1
			r.close(&r.frames[n])
			if r.frames[n].role == roleExtension && n > 0 && r.frames[n-1].role == roleExtension {
				r.path = r.path[:len(r.path)-1]
			}
			r.frames = r.frames[:n]
		case xmlscan.CharData:
			if len(r.frames) > 0 {
				r.addText(r.sc.Text())
			}
		case xmlscan.ProcInst, xmlscan.Directive:
			r.endText()
		}
	}
	// Too deep is answered like any over-limit request: the root element was
	// read before the scanner gave up, so its name and namespace are known.
	tooDeep := errors.Is(scanErr, xmlscan.ErrMaxDepth) && r.haveRoot
	if scanErr != nil && !tooDeep {
		return Decoded{}, &DecodeError{Answer: ErrGeneric, Reason: "malformed XML: " + trimXMLError(scanErr)}
	}
	if !r.haveRoot {
		return Decoded{}, &DecodeError{Answer: ErrGeneric, Reason: "no root element"}
	}
	ed, isSessionNS, known := editionOfNamespace(string(r.rootNS))
	known = known && !isSessionNS
	fail := func(answer Message, reason string) (Decoded, error) {
		return Decoded{}, &DecodeError{Root: string(r.rootLocal), Answer: answer, Reason: reason, Edition: ed, EditionKnown: known}
	}
	if tooDeep {
		limit := "the default of 1024"
		if maxDepth > 0 {
			limit = strconv.Itoa(maxDepth)
		}
		return fail(depthAnswer(string(r.rootLocal)), "element nesting deeper than "+limit)
	}
	decode, ok := decoders[string(r.rootLocal)]
	if !ok {
		root := string(r.rootLocal)
		if root == "CSTAErrorCode" || strings.HasSuffix(root, "Response") {
			return Decoded{Message: clientResponse{root}, Edition: ed, EditionKnown: known}, nil
		}
		return fail(ErrServiceNotSupported, "unknown request")
	}
	msg, err := decode(r)
	if err != nil {
		var pe *paramError
		if errors.As(err, &pe) {
			return fail(pe.answer, pe.reason)
		}
		return fail(ErrInvalidParameterValue, err.Error())
	}
	return Decoded{Message: msg, Edition: ed, EditionKnown: known}, nil
}

// decoders are the requests served, by root element.
var decoders map[string]func(*requestReader) (Message, error)

func init() {
	decoders = map[string]func(*requestReader) (Message, error){
		"StartApplicationSession":      (*requestReader).startApplicationSession,
		"StopApplicationSession":       (*requestReader).stopApplicationSession,
		"ResetApplicationSessionTimer": (*requestReader).resetApplicationSessionTimer,
		"SystemStatus":                 (*requestReader).systemStatus,
		"SystemRegister":               (*requestReader).systemRegister,
		"RequestSystemStatus":          (*requestReader).requestSystemStatus,
		"MonitorStart":                 (*requestReader).monitorStart,
		"MonitorStop":                  (*requestReader).monitorStop,
		"SetAgentState":                (*requestReader).setAgentState,
		"GetAgentState":                (*requestReader).getAgentState,
		"SetForwarding":                (*requestReader).setForwarding,
		"GetForwarding":                (*requestReader).getForwarding,
		"SetDoNotDisturb":              (*requestReader).setDoNotDisturb,
		"GetDoNotDisturb":              (*requestReader).getDoNotDisturb,
	}
}

// ---- reading the slots ----

// text returns the trimmed text of a slot ("" when the element is absent).
func (r *requestReader) text(s int) string {
	return string(bytes.TrimSpace(r.slots[s].text))
}

// textOK is text and whether the element exists.
func (r *requestReader) textOK(s int) (string, bool) {
	return r.text(s), r.slots[s].present
}

func (r *requestReader) device(s int, name string) (DeviceID, error) {
	v := r.text(s)
	if v == "" {
		return "", bad(ErrInvalidDeviceID, "%s missing or empty", name)
	}
	return DeviceID(v), nil
}

// duration reads a session duration in seconds; empty or absent is 0.
func (r *requestReader) duration(s int, name string) (int, error) {
	v := r.text(s)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q is not a number of seconds", name, v)
	}
	return n, nil
}

// ---- ECMA-354 ----

func (r *requestReader) startApplicationSession() (Message, error) {
	invalidInfo := StartApplicationSessionNegResponse{ErrorCode: SessionError{DefinedError: SessionErrInvalidApplicationInfo}}
	var m StartApplicationSession
	if r.seen&seenAppInfo == 0 {
		return nil, bad(invalidInfo, "applicationInfo missing")
	}
	m.ApplicationID = r.text(sApplicationID)
	if r.seen&seenASI != 0 {
		m.UserName, m.Password, m.HasCredentials = r.credentials()
	}
	for _, s := range r.versions {
		if v := r.text(s); v != "" {
			m.ProtocolVersions = append(m.ProtocolVersions, v)
		}
	}
	d, err := r.duration(sRequestedSessionDuration, "requestedSessionDuration")
	if err != nil {
		return nil, bad(invalidInfo, "%v", err)
	}
	m.RequestedSessionDuration = d
	return m, nil
}

// credentials reads the two forms seen in the wild (research/csta.md §1.8):
// <user>/<password> directly in applicationSpecificInfo (OpenScape Business),
// and Avaya's <SessionLoginInfo><userName/><password/></SessionLoginInfo>.
// The first element of the two that holds any of them gives both.
func (r *requestReader) credentials() (user, password string, ok bool) {
	look := func(userSlot, userNameSlot, passwordSlot int) bool {
		u, hasUser := r.textOK(userSlot)
		if !hasUser {
			u, hasUser = r.textOK(userNameSlot)
		}
		p, hasPass := r.textOK(passwordSlot)
		if hasUser || hasPass {
			user, password, ok = u, p, true
		}
		return ok
	}
	if !look(sASIUser, sASIUserName, sASIPassword) && r.haveNested {
		look(sNestedUser, sNestedUserName, sNestedPassword)
	}
	return
}

func (r *requestReader) stopApplicationSession() (Message, error) {
	return StopApplicationSession{
		SessionID:        r.text(sSessionID),
		DefinedEndReason: r.text(sDefinedEndReason),
		AppEndReason:     r.text(sAppEndReason),
	}, nil
}

func (r *requestReader) resetApplicationSessionTimer() (Message, error) {
	m := ResetApplicationSessionTimer{SessionID: r.text(sSessionID)}
	d, err := r.duration(sRequestedSessionDuration, "requestedSessionDuration")
	if err != nil {
		return nil, bad(ResetApplicationSessionTimerNegResponse{ErrorCode: SessionError{DefinedError: SessionErrServerCannotResetSessionTimer}}, "%v", err)
	}
	m.RequestedSessionDuration = d
	return m, nil
}

// ---- system services ----

func (r *requestReader) systemStatus() (Message, error) {
	m := SystemStatus{SysStatRegisterID: r.text(sSysStatRegisterID)}
	v := r.text(sSystemStatus)
	m.SystemStatus = SystemStatusValue(v)
	if v != "" && !validSystemStatus(m.SystemStatus) {
		return nil, bad(ErrSystemStatusOutOfRange, "systemStatus %q unknown", v)
	}
	return m, nil
}

func (r *requestReader) systemRegister() (Message, error) {
	m := SystemRegister{SystemStatusRequested: true}
	if v, ok := r.textOK(sRequestTypesStatus); ok {
		b, valid := parseBool(v)
		if !valid {
			return nil, bad(ErrInvalidParameterValue, "requestTypes/systemStatus %q is not a boolean", v)
		}
		m.SystemStatusRequested = b
	}
	return m, nil
}

// ---- monitoring ----

func (r *requestReader) monitorStart() (Message, error) {
	var m MonitorStart
	// Lenient: without monitorObject, deviceObject straight under the root.
	callObject, deviceObject := sCallObject, sDeviceObject
	if r.seen&seenMonitorObject != 0 {
		callObject, deviceObject = sObjectCallObject, sObjectDeviceObject
	}
	if r.slots[callObject].present {
		return nil, bad(ErrInvalidMonitorObject, "call monitors are not supported, only deviceObject")
	}
	dev := r.text(deviceObject)
	if dev == "" {
		return nil, bad(ErrInvalidMonitorObject, "monitorObject/deviceObject missing or empty")
	}
	m.Device = DeviceID(dev)
	if t, ok := r.textOK(sMonitorType); ok && t != "" && t != "device" {
		return nil, bad(ErrInvalidMonitorType, "monitorType %q: only device monitors are supported", t)
	}
	if r.seen&seenFilter != 0 {
		// Avaya's private invertFilter flag: with it, the listed true flags
		// are the events wanted (research/csta.md §1.5).
		if r.seen&seenExtensions != 0 && r.invert.found {
			m.FilterInverted, _ = parseBool(r.text(sInvertFilter))
		}
		if r.filterErr != nil {
			return nil, r.filterErr
		}
		// ECMA-269's meaning: a flag set to true suppresses that event
		// (research/csta.md §0.8).
		filter := r.filter
		if m.FilterInverted {
			filter = MonitorFilter{}
			for k := EventKind(1); k < eventKindCount; k++ {
				filter = filter.Suppress(k, !r.listed.Suppresses(k))
			}
		}
		m.Filter, m.HasFilter = filter, true
	}
	return m, nil
}

func (r *requestReader) requestSystemStatus() (Message, error) {
	return RequestSystemStatus{SysStatRegisterID: r.text(sSysStatRegisterID)}, nil
}

func (r *requestReader) monitorStop() (Message, error) {
	id := r.text(sMonitorCrossRefID)
	if id == "" {
		return nil, bad(ErrInvalidMonitorCrossRefID, "monitorCrossRefID missing or empty")
	}
	return MonitorStop{MonitorCrossRefID: id}, nil
}

// ---- agent ----

func (r *requestReader) setAgentState() (Message, error) {
	var m SetAgentState
	var err error
	if m.Device, err = r.device(sDevice, "device"); err != nil {
		return nil, err
	}
	s := bytes.TrimSpace(r.slots[sRequestedAgentState].text)
	switch ReqAgentState(s) {
	case ReqLoggedOn, ReqLoggedOff, ReqNotReady, ReqReady, ReqWorkingAfterCall:
		m.RequestedState = ReqAgentState(s)
	case "":
		return nil, bad(ErrInvalidAgentState, "requestedAgentState missing")
	default:
		return nil, bad(ErrInvalidAgentState, "requestedAgentState %q unknown", s)
	}
	m.AgentID = r.text(sAgentID)
	if p, ok := r.textOK(sPassword); ok {
		m.Password = decodeAgentPassword(p)
	}
	m.Group = DeviceID(r.text(sGroup))
	// BroadWorks' not-ready reason from
	// extensions/privateData/private/AgentNotReadyReasonValue
	// (research/csta.md §1.1), in the BroadSoft namespace, no namespace, or
	// the request's own (an unprefixed element under a default xmlns).
	if r.seen&seenExtensions != 0 && r.reason.found && r.reason.nsOK {
		m.ReasonCode = r.text(sNotReadyReason)
	}
	return m, nil
}

func (r *requestReader) getAgentState() (Message, error) {
	d, err := r.device(sDevice, "device")
	if err != nil {
		return nil, err
	}
	return GetAgentState{Device: d, ACDGroup: DeviceID(r.text(sACDGroup))}, nil
}

// ---- forwarding and DND ----

func (r *requestReader) setForwarding() (Message, error) {
	var m SetForwarding
	var err error
	if m.Device, err = r.device(sDevice, "device"); err != nil {
		return nil, err
	}
	t := r.text(sForwardingType)
	m.ForwardingType = ForwardingType(t)
	if !validForwardingType(m.ForwardingType) {
		return nil, bad(ErrInvalidForwardingType, "forwardingType %q missing or unknown", t)
	}
	a := r.text(sActivateForward)
	on, ok := parseBool(a)
	if !ok {
		return nil, bad(ErrInvalidForwardingFlag, "activateForward %q missing or not a boolean", a)
	}
	m.ActivateForward = on
	m.ForwardDN = DeviceID(r.text(sForwardDN))
	// BroadWorks clients send an empty <ringCount></ringCount> (research/csta.md §1.3).
	if rc := r.text(sRingCount); rc != "" {
		n, err := strconv.Atoi(rc)
		if err != nil {
			return nil, bad(ErrInvalidRingCount, "ringCount %q is not an integer", rc)
		}
		if n < MinRingCount || n > MaxRingCount {
			return nil, bad(ErrRingCountOutOfRange, "ringCount %d outside %d..%d", n, MinRingCount, MaxRingCount)
		}
		m.RingCount = n
	}
	return m, nil
}

func (r *requestReader) setDoNotDisturb() (Message, error) {
	d, err := r.device(sDevice, "device")
	if err != nil {
		return nil, err
	}
	v := r.text(sDoNotDisturbOn)
	on, ok := parseBool(v)
	if !ok {
		return nil, bad(ErrInvalidDoNotDisturb, "doNotDisturbOn %q missing or not a boolean", v)
	}
	return SetDoNotDisturb{Device: d, DoNotDisturbOn: on}, nil
}

// depthAnswer picks the error answer for a document refused before decoding.
func depthAnswer(root string) Message {
	switch root {
	case "StartApplicationSession":
		return StartApplicationSessionNegResponse{ErrorCode: SessionError{DefinedError: SessionErrInvalidApplicationInfo}}
	case "StopApplicationSession":
		return StopApplicationSessionNegResponse{ErrorCode: SessionError{ApplError: "message too deeply nested"}}
	case "ResetApplicationSessionTimer":
		return ResetApplicationSessionTimerNegResponse{ErrorCode: SessionError{ApplError: "message too deeply nested"}}
	}
	return ErrResourceLimitExceeded
}

func trimXMLError(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// paramError carries the specific CSTA answer for a bad parameter.
type paramError struct {
	answer Message
	reason string
}

func (p *paramError) Error() string { return p.reason }

func bad(answer Message, format string, args ...any) error {
	return &paramError{answer: answer, reason: fmt.Sprintf(format, args...)}
}

// parseBool reads xs:boolean.
func parseBool(s string) (bool, bool) {
	switch s {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return false, false
}

// decodeAgentPassword accepts both forms clients send. The schema types the
// password as hexBinary, but many clients send the PIN as plain text, and
// "1234" is valid hex too. A hex string whose bytes are printable ASCII is
// taken as hexBinary ("31323334" → "1234"); anything else is taken as sent.
func decodeAgentPassword(s string) string {
	if len(s) == 0 || len(s)%2 != 0 {
		return s
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return s
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return s
		}
	}
	return string(b)
}

// ---- character sets ----

// latin1ToUTF8 handles the ISO-8859-1 documents BroadWorks-style clients send
// (research/csta.md §1.1) before the scanner sees them: the declaration is
// dropped and the rest transcoded. A pure-ASCII body is only re-sliced.
// Anything else is returned unchanged (the scanner's Charset, transcode,
// serves a declaration this does not recognise).
func latin1ToUTF8(doc []byte) []byte {
	if !bytes.HasPrefix(doc, []byte("<?xml")) {
		return doc
	}
	end := bytes.Index(doc, []byte("?>"))
	if end < 0 {
		return doc
	}
	label, ok := declaredEncoding(doc[:end])
	if !ok || !isLatin1Label(label) {
		return doc
	}
	body := doc[end+2:]
	if isASCII(body) {
		return body
	}
	return latin1AsUTF8(body)
}

// isASCII tests eight bytes at a time.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// declaredEncoding finds encoding="..." (or '...') in an XML declaration.
func declaredEncoding(decl []byte) ([]byte, bool) {
	i := bytes.Index(decl, []byte("encoding"))
	if i < 0 {
		return nil, false
	}
	rest := bytes.TrimLeft(decl[i+len("encoding"):], " \t\r\n")
	if len(rest) == 0 || rest[0] != '=' {
		return nil, false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) < 2 || (rest[0] != '"' && rest[0] != '\'') {
		return nil, false
	}
	q := rest[0]
	j := bytes.IndexByte(rest[1:], q)
	if j < 0 {
		return nil, false
	}
	return rest[1 : 1+j], true
}

var latin1Labels = []string{"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "iso_8859-1", "cp819", "iso-ir-100"}

// isLatin1Label compares the trimmed label case-insensitively with the names
// of ISO-8859-1, without allocating for an ASCII label.
func isLatin1Label[T ~string | ~[]byte](label T) bool {
	for i := 0; i < len(label); i++ {
		if label[i] >= utf8.RuneSelf {
			// Unicode lower-casing, as strings.ToLower does it ("İ" is "i").
			return slices.Contains(latin1Labels, strings.ToLower(strings.TrimSpace(string(label))))
		}
	}
	i, j := 0, len(label)
	for i < j && isASCIISpace(label[i]) {
		i++
	}
	for j > i && isASCIISpace(label[j-1]) {
		j--
	}
	for _, name := range latin1Labels {
		if j-i != len(name) {
			continue
		}
		k := 0
		for k < len(name) && lowerASCII(label[i+k]) == name[k] {
			k++
		}
		if k == len(name) {
			return true
		}
	}
	return false
}

func isASCIISpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func (r *requestReader) getForwarding() (Message, error) {
	d, err := r.device(sDevice, "device")
	if err != nil {
		return nil, err
	}
	return GetForwarding{Device: d}, nil
}

func (r *requestReader) getDoNotDisturb() (Message, error) {
	d, err := r.device(sDevice, "device")
	if err != nil {
		return nil, err
	}
	return GetDoNotDisturb{Device: d}, nil
}

// latin1AsUTF8 is ISO-8859-1 text in UTF-8 (each byte its own code point).
func latin1AsUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/8)
	for _, c := range b {
		if c < utf8.RuneSelf {
			out = append(out, c)
		} else {
			out = utf8.AppendRune(out, rune(c))
		}
	}
	return out
}
