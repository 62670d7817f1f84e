package csta

// The etree decoder that Decode replaced (issue 17), kept only as the oracle
// of FuzzDecodeAgainstOracle: every input must decode to the same message,
// edition and error answer through both. Its charset reader is also what the
// tests use to read encoded documents with etree.

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"
)

var readSettings = etree.ReadSettings{CharsetReader: charsetReader}

// oracleDecode is the etree Decode: it parses the document into a DOM and
// walks it. maxDepth bounds element nesting (0 =
// etree's default bound of 1024 levels). The error, if any, is a *DecodeError.
func oracleDecode(doc []byte, maxDepth int) (Decoded, error) {
	doc = latin1ToUTF8(doc)
	d := etree.NewDocument()
	d.ReadSettings = readSettings
	if maxDepth > 0 {
		// etree stops at the limit, before building the rest of the tree.
		d.ReadSettings.MaxDepth = maxDepth
	}
	err := d.ReadFromBytes(doc)
	// Too deep is answered like any over-limit request: the root element was
	// read before etree gave up, so its name and namespace are known.
	tooDeep := errors.Is(err, etree.ErrMaxDepth) && d.Root() != nil
	if err != nil && !tooDeep {
		return Decoded{}, &DecodeError{Answer: ErrGeneric, Reason: "malformed XML: " + trimXMLError(err)}
	}
	root := d.Root()
	if root == nil {
		return Decoded{}, &DecodeError{Answer: ErrGeneric, Reason: "no root element"}
	}
	ed, isSessionNS, known := editionOfNamespace(root.NamespaceURI())
	known = known && !isSessionNS
	fail := func(answer Message, reason string) (Decoded, error) {
		return Decoded{}, &DecodeError{Root: root.Tag, Answer: answer, Reason: reason, Edition: ed, EditionKnown: known}
	}
	if tooDeep {
		limit := "etree's default of 1024"
		if maxDepth > 0 {
			limit = strconv.Itoa(maxDepth)
		}
		return fail(depthAnswer(root.Tag), "element nesting deeper than "+limit)
	}
	decode, ok := oracleDecoders[root.Tag]
	if !ok {
		if root.Tag == "CSTAErrorCode" || strings.HasSuffix(root.Tag, "Response") {
			return Decoded{Message: clientResponse{root.Tag}, Edition: ed, EditionKnown: known}, nil
		}
		return fail(ErrServiceNotSupported, "unknown request")
	}
	msg, err := decode(root)
	if err != nil {
		var pe *paramError
		if errors.As(err, &pe) {
			return fail(pe.answer, pe.reason)
		}
		return fail(ErrInvalidParameterValue, err.Error())
	}
	return Decoded{Message: msg, Edition: ed, EditionKnown: known}, nil
}

var oracleDecoders map[string]func(*etree.Element) (Message, error)

func init() {
	oracleDecoders = map[string]func(*etree.Element) (Message, error){
		"StartApplicationSession":      oracleDecodeStartApplicationSession,
		"StopApplicationSession":       oracleDecodeStopApplicationSession,
		"ResetApplicationSessionTimer": oracleDecodeResetApplicationSessionTimer,
		"SystemStatus":                 oracleDecodeSystemStatus,
		"SystemRegister":               oracleDecodeSystemRegister,
		"RequestSystemStatus":          oracleDecodeRequestSystemStatus,
		"MonitorStart":                 oracleDecodeMonitorStart,
		"MonitorStop":                  oracleDecodeMonitorStop,
		"SetAgentState":                oracleDecodeSetAgentState,
		"GetAgentState":                oracleDecodeGetAgentState,
		"SetForwarding":                oracleDecodeSetForwarding,
		"GetForwarding":                oracleDecodeGetForwarding,
		"SetDoNotDisturb":              oracleDecodeSetDoNotDisturb,
		"GetDoNotDisturb":              oracleDecodeGetDoNotDisturb,
	}
}

// ---- tree helpers: children are found by local name, in any order ----

func oracleChild(el *etree.Element, name string) *etree.Element {
	for _, c := range el.Child {
		if ce, ok := c.(*etree.Element); ok && ce.Tag == name {
			return ce
		}
	}
	return nil
}

// text returns the trimmed character data of the named child and whether the
// child exists.
func oracleText(el *etree.Element, name string) (string, bool) {
	c := oracleChild(el, name)
	if c == nil {
		return "", false
	}
	return strings.TrimSpace(c.Text()), true
}

// descendant finds the first element with the local name anywhere below el.
func oracleDescendant(el *etree.Element, name string) *etree.Element {
	stack := []*etree.Element{el}
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range e.ChildElements() {
			if c.Tag == name {
				return c
			}
			stack = append(stack, c)
		}
	}
	return nil
}

func oracleDeviceText(el *etree.Element, name string) (DeviceID, error) {
	v, _ := oracleText(el, name)
	if v == "" {
		return "", bad(ErrInvalidDeviceID, "%s missing or empty", name)
	}
	return DeviceID(v), nil
}

// duration reads a session duration in seconds; empty or absent is 0.
func oracleDuration(el *etree.Element, name string) (int, error) {
	v, ok := oracleText(el, name)
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q is not a number of seconds", name, v)
	}
	return n, nil
}

// ---- ECMA-354 ----

func oracleDecodeStartApplicationSession(el *etree.Element) (Message, error) {
	invalidInfo := StartApplicationSessionNegResponse{ErrorCode: SessionError{DefinedError: SessionErrInvalidApplicationInfo}}
	var m StartApplicationSession
	info := oracleChild(el, "applicationInfo")
	if info == nil {
		return nil, bad(invalidInfo, "applicationInfo missing")
	}
	m.ApplicationID, _ = oracleText(info, "applicationID")
	if asi := oracleChild(info, "applicationSpecificInfo"); asi != nil {
		m.UserName, m.Password, m.HasCredentials = oracleCredentials(asi)
	}
	if versions := oracleChild(el, "requestedProtocolVersions"); versions != nil {
		for _, v := range versions.SelectElements("protocolVersion") {
			if s := strings.TrimSpace(v.Text()); s != "" {
				m.ProtocolVersions = append(m.ProtocolVersions, s)
			}
		}
	}
	d, err := oracleDuration(el, "requestedSessionDuration")
	if err != nil {
		return nil, bad(invalidInfo, "%v", err)
	}
	m.RequestedSessionDuration = d
	return m, nil
}

// credentials reads the two forms seen in the wild (research/csta.md §1.8):
// <user>/<password> directly in applicationSpecificInfo (OpenScape Business),
// and Avaya's <SessionLoginInfo><userName/><password/></SessionLoginInfo>.
func oracleCredentials(asi *etree.Element) (user, password string, ok bool) {
	look := func(el *etree.Element) bool {
		u, hasUser := oracleText(el, "user")
		if !hasUser {
			u, hasUser = oracleText(el, "userName")
		}
		p, hasPass := oracleText(el, "password")
		if hasUser || hasPass {
			user, password, ok = u, p, true
		}
		return ok
	}
	if look(asi) {
		return
	}
	for _, c := range asi.ChildElements() {
		if look(c) {
			return
		}
	}
	return
}

func oracleDecodeStopApplicationSession(el *etree.Element) (Message, error) {
	var m StopApplicationSession
	m.SessionID, _ = oracleText(el, "sessionID")
	if r := oracleChild(el, "sessionEndReason"); r != nil {
		m.DefinedEndReason, _ = oracleText(r, "definedEndReason")
		m.AppEndReason, _ = oracleText(r, "appEndReason")
	}
	return m, nil
}

func oracleDecodeResetApplicationSessionTimer(el *etree.Element) (Message, error) {
	var m ResetApplicationSessionTimer
	m.SessionID, _ = oracleText(el, "sessionID")
	d, err := oracleDuration(el, "requestedSessionDuration")
	if err != nil {
		return nil, bad(ResetApplicationSessionTimerNegResponse{ErrorCode: SessionError{DefinedError: SessionErrServerCannotResetSessionTimer}}, "%v", err)
	}
	m.RequestedSessionDuration = d
	return m, nil
}

// ---- system services ----

func oracleDecodeSystemStatus(el *etree.Element) (Message, error) {
	var m SystemStatus
	m.SysStatRegisterID, _ = oracleText(el, "sysStatRegisterID")
	v, _ := oracleText(el, "systemStatus")
	m.SystemStatus = SystemStatusValue(v)
	if v != "" && !validSystemStatus(m.SystemStatus) {
		return nil, bad(ErrSystemStatusOutOfRange, "systemStatus %q unknown", v)
	}
	return m, nil
}

func oracleDecodeSystemRegister(el *etree.Element) (Message, error) {
	m := SystemRegister{SystemStatusRequested: true}
	if rt := oracleChild(el, "requestTypes"); rt != nil {
		if v, ok := oracleText(rt, "systemStatus"); ok {
			b, valid := parseBool(v)
			if !valid {
				return nil, bad(ErrInvalidParameterValue, "requestTypes/systemStatus %q is not a boolean", v)
			}
			m.SystemStatusRequested = b
		}
	}
	return m, nil
}

func oracleDecodeRequestSystemStatus(el *etree.Element) (Message, error) {
	var m RequestSystemStatus
	m.SysStatRegisterID, _ = oracleText(el, "sysStatRegisterID")
	return m, nil
}

// ---- monitoring ----

func oracleDecodeMonitorStart(el *etree.Element) (Message, error) {
	var m MonitorStart
	obj := oracleChild(el, "monitorObject")
	if obj == nil {
		obj = el // lenient: deviceObject straight under the root
	}
	if oracleChild(obj, "callObject") != nil {
		return nil, bad(ErrInvalidMonitorObject, "call monitors are not supported, only deviceObject")
	}
	dev, _ := oracleText(obj, "deviceObject")
	if dev == "" {
		return nil, bad(ErrInvalidMonitorObject, "monitorObject/deviceObject missing or empty")
	}
	m.Device = DeviceID(dev)
	if t, ok := oracleText(el, "monitorType"); ok && t != "" && t != "device" {
		return nil, bad(ErrInvalidMonitorType, "monitorType %q: only device monitors are supported", t)
	}
	if f := oracleChild(el, "requestedMonitorFilter"); f != nil {
		m.FilterInverted = oracleAvayaInvertFilter(el)
		filter, err := oracleDecodeMonitorFilter(f, m.FilterInverted)
		if err != nil {
			return nil, err
		}
		m.Filter, m.HasFilter = filter, true
	}
	return m, nil
}

// avayaInvertFilter reads Avaya's private invertFilter flag: with it, the
// listed true flags are the events wanted (research/csta.md §1.5).
func oracleAvayaInvertFilter(el *etree.Element) bool {
	ext := oracleChild(el, "extensions")
	if ext == nil {
		return false
	}
	inv := oracleDescendant(ext, "invertFilter")
	if inv == nil {
		return false
	}
	b, _ := parseBool(strings.TrimSpace(inv.Text()))
	return b
}

// decodeMonitorFilter applies ECMA-269's meaning: a flag set to true
// suppresses that event (research/csta.md §0.8).
func oracleDecodeMonitorFilter(f *etree.Element, invert bool) (MonitorFilter, error) {
	var filter MonitorFilter
	listed := MonitorFilter{}
	for _, category := range f.ChildElements() {
		for _, flag := range category.ChildElements() {
			v := strings.TrimSpace(flag.Text())
			on, ok := parseBool(v)
			if !ok {
				return MonitorFilter{}, bad(ErrInvalidMonitorFilter, "%s/%s %q is not a boolean", category.Tag, flag.Tag, v)
			}
			if k, known := filterKindByFlag(category.Tag, flag.Tag); known {
				filter = filter.Suppress(k, on)
				listed = listed.Suppress(k, on)
			}
		}
	}
	if invert {
		filter = MonitorFilter{}
		for k := EventKind(1); k < eventKindCount; k++ {
			filter = filter.Suppress(k, !listed.Suppresses(k))
		}
	}
	return filter, nil
}

func oracleDecodeMonitorStop(el *etree.Element) (Message, error) {
	id, _ := oracleText(el, "monitorCrossRefID")
	if id == "" {
		return nil, bad(ErrInvalidMonitorCrossRefID, "monitorCrossRefID missing or empty")
	}
	return MonitorStop{MonitorCrossRefID: id}, nil
}

// ---- agent ----

func oracleDecodeSetAgentState(el *etree.Element) (Message, error) {
	var m SetAgentState
	var err error
	if m.Device, err = oracleDeviceText(el, "device"); err != nil {
		return nil, err
	}
	s, _ := oracleText(el, "requestedAgentState")
	switch ReqAgentState(s) {
	case ReqLoggedOn, ReqLoggedOff, ReqNotReady, ReqReady, ReqWorkingAfterCall:
		m.RequestedState = ReqAgentState(s)
	case "":
		return nil, bad(ErrInvalidAgentState, "requestedAgentState missing")
	default:
		return nil, bad(ErrInvalidAgentState, "requestedAgentState %q unknown", s)
	}
	m.AgentID, _ = oracleText(el, "agentID")
	if p, ok := oracleText(el, "password"); ok {
		m.Password = decodeAgentPassword(p)
	}
	g, _ := oracleText(el, "group")
	m.Group = DeviceID(g)
	m.ReasonCode = oracleBroadSoftReason(el)
	return m, nil
}

// broadSoftReason reads BroadWorks' not-ready reason from
// extensions/privateData/private/AgentNotReadyReasonValue (research/csta.md §1.1).
func oracleBroadSoftReason(el *etree.Element) string {
	ext := oracleChild(el, "extensions")
	if ext == nil {
		return ""
	}
	r := oracleDescendant(ext, "AgentNotReadyReasonValue")
	if r == nil {
		return ""
	}
	// Accepted: the BroadSoft namespace, no namespace, or the request's own
	// namespace (an unprefixed element under a default xmlns).
	if ns := r.NamespaceURI(); ns != "" && ns != NSBroadSoftPrivate && ns != el.NamespaceURI() {
		return ""
	}
	return strings.TrimSpace(r.Text())
}

func oracleDecodeGetAgentState(el *etree.Element) (Message, error) {
	var m GetAgentState
	var err error
	if m.Device, err = oracleDeviceText(el, "device"); err != nil {
		return nil, err
	}
	g, _ := oracleText(el, "acdGroup")
	m.ACDGroup = DeviceID(g)
	return m, nil
}

// ---- forwarding and DND ----

func oracleDecodeSetForwarding(el *etree.Element) (Message, error) {
	var m SetForwarding
	var err error
	if m.Device, err = oracleDeviceText(el, "device"); err != nil {
		return nil, err
	}
	t, _ := oracleText(el, "forwardingType")
	m.ForwardingType = ForwardingType(t)
	if !validForwardingType(m.ForwardingType) {
		return nil, bad(ErrInvalidForwardingType, "forwardingType %q missing or unknown", t)
	}
	a, _ := oracleText(el, "activateForward")
	on, ok := parseBool(a)
	if !ok {
		return nil, bad(ErrInvalidForwardingFlag, "activateForward %q missing or not a boolean", a)
	}
	m.ActivateForward = on
	dn, _ := oracleText(el, "forwardDN")
	m.ForwardDN = DeviceID(dn)
	// BroadWorks clients send an empty <ringCount></ringCount> (research/csta.md §1.3).
	if rc, _ := oracleText(el, "ringCount"); rc != "" {
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

func oracleDecodeGetForwarding(el *etree.Element) (Message, error) {
	d, err := oracleDeviceText(el, "device")
	if err != nil {
		return nil, err
	}
	return GetForwarding{Device: d}, nil
}

func oracleDecodeSetDoNotDisturb(el *etree.Element) (Message, error) {
	d, err := oracleDeviceText(el, "device")
	if err != nil {
		return nil, err
	}
	v, _ := oracleText(el, "doNotDisturbOn")
	on, ok := parseBool(v)
	if !ok {
		return nil, bad(ErrInvalidDoNotDisturb, "doNotDisturbOn %q missing or not a boolean", v)
	}
	return SetDoNotDisturb{Device: d, DoNotDisturbOn: on}, nil
}

func oracleDecodeGetDoNotDisturb(el *etree.Element) (Message, error) {
	d, err := oracleDeviceText(el, "device")
	if err != nil {
		return nil, err
	}
	return GetDoNotDisturb{Device: d}, nil
}

// charsetReader lets encoding/xml read the encodings CTI clients declare:
// BroadWorks-style clients write ISO-8859-1 (research/csta.md §1.1).
func charsetReader(label string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return input, nil
	}
	if isLatin1Label(label) {
		return newLatin1Reader(input), nil
	}
	return nil, fmt.Errorf("unsupported encoding %q (UTF-8 and ISO-8859-1 are)", label)
}

// latin1Reader maps ISO-8859-1 bytes to UTF-8: each byte is the code point.
type latin1Reader struct {
	r       io.Reader
	pending []byte // encoded bytes that did not fit the caller's buffer
	buf     [512]byte
}

func newLatin1Reader(r io.Reader) *latin1Reader { return &latin1Reader{r: r} }

func (l *latin1Reader) Read(p []byte) (int, error) {
	if len(l.pending) > 0 {
		n := copy(p, l.pending)
		l.pending = l.pending[n:]
		return n, nil
	}
	n := len(p) / 2
	if n > len(l.buf) {
		n = len(l.buf)
	}
	if n == 0 {
		n = 1
	}
	m, err := l.r.Read(l.buf[:n])
	var out []byte
	for _, b := range l.buf[:m] {
		if b < utf8.RuneSelf {
			out = append(out, b)
		} else {
			out = utf8.AppendRune(out, rune(b))
		}
	}
	c := copy(p, out)
	l.pending = append(l.pending[:0], out[c:]...)
	if len(l.pending) > 0 {
		return c, nil // the error, if any, comes again on the next read
	}
	return c, err
}
