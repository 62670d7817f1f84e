package csta

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"
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

var readSettings = etree.ReadSettings{CharsetReader: charsetReader}

// Decode parses one XML document. maxDepth bounds element nesting (0 =
// etree's default bound of 1024 levels). The error, if any, is a *DecodeError.
func Decode(doc []byte, maxDepth int) (Decoded, error) {
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
	decode, ok := decoders[root.Tag]
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

var decoders map[string]func(*etree.Element) (Message, error)

func init() {
	decoders = map[string]func(*etree.Element) (Message, error){
		"StartApplicationSession":      decodeStartApplicationSession,
		"StopApplicationSession":       decodeStopApplicationSession,
		"ResetApplicationSessionTimer": decodeResetApplicationSessionTimer,
		"SystemStatus":                 decodeSystemStatus,
		"SystemRegister":               decodeSystemRegister,
		"RequestSystemStatus":          decodeRequestSystemStatus,
		"MonitorStart":                 decodeMonitorStart,
		"MonitorStop":                  decodeMonitorStop,
		"SetAgentState":                decodeSetAgentState,
		"GetAgentState":                decodeGetAgentState,
		"SetForwarding":                decodeSetForwarding,
		"GetForwarding":                decodeGetForwarding,
		"SetDoNotDisturb":              decodeSetDoNotDisturb,
		"GetDoNotDisturb":              decodeGetDoNotDisturb,
	}
}

// ---- tree helpers: children are found by local name, in any order ----

func child(el *etree.Element, name string) *etree.Element {
	for _, c := range el.Child {
		if ce, ok := c.(*etree.Element); ok && ce.Tag == name {
			return ce
		}
	}
	return nil
}

// text returns the trimmed character data of the named child and whether the
// child exists.
func text(el *etree.Element, name string) (string, bool) {
	c := child(el, name)
	if c == nil {
		return "", false
	}
	return strings.TrimSpace(c.Text()), true
}

// descendant finds the first element with the local name anywhere below el.
func descendant(el *etree.Element, name string) *etree.Element {
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

func deviceText(el *etree.Element, name string) (DeviceID, error) {
	v, _ := text(el, name)
	if v == "" {
		return "", bad(ErrInvalidDeviceID, "%s missing or empty", name)
	}
	return DeviceID(v), nil
}

// duration reads a session duration in seconds; empty or absent is 0.
func duration(el *etree.Element, name string) (int, error) {
	v, ok := text(el, name)
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

func decodeStartApplicationSession(el *etree.Element) (Message, error) {
	invalidInfo := StartApplicationSessionNegResponse{ErrorCode: SessionError{DefinedError: SessionErrInvalidApplicationInfo}}
	var m StartApplicationSession
	info := child(el, "applicationInfo")
	if info == nil {
		return nil, bad(invalidInfo, "applicationInfo missing")
	}
	m.ApplicationID, _ = text(info, "applicationID")
	if asi := child(info, "applicationSpecificInfo"); asi != nil {
		m.UserName, m.Password, m.HasCredentials = credentials(asi)
	}
	if versions := child(el, "requestedProtocolVersions"); versions != nil {
		for _, v := range versions.SelectElements("protocolVersion") {
			if s := strings.TrimSpace(v.Text()); s != "" {
				m.ProtocolVersions = append(m.ProtocolVersions, s)
			}
		}
	}
	d, err := duration(el, "requestedSessionDuration")
	if err != nil {
		return nil, bad(invalidInfo, "%v", err)
	}
	m.RequestedSessionDuration = d
	return m, nil
}

// credentials reads the two forms seen in the wild (research/csta.md §1.8):
// <user>/<password> directly in applicationSpecificInfo (OpenScape Business),
// and Avaya's <SessionLoginInfo><userName/><password/></SessionLoginInfo>.
func credentials(asi *etree.Element) (user, password string, ok bool) {
	look := func(el *etree.Element) bool {
		u, hasUser := text(el, "user")
		if !hasUser {
			u, hasUser = text(el, "userName")
		}
		p, hasPass := text(el, "password")
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

func decodeStopApplicationSession(el *etree.Element) (Message, error) {
	var m StopApplicationSession
	m.SessionID, _ = text(el, "sessionID")
	if r := child(el, "sessionEndReason"); r != nil {
		m.DefinedEndReason, _ = text(r, "definedEndReason")
		m.AppEndReason, _ = text(r, "appEndReason")
	}
	return m, nil
}

func decodeResetApplicationSessionTimer(el *etree.Element) (Message, error) {
	var m ResetApplicationSessionTimer
	m.SessionID, _ = text(el, "sessionID")
	d, err := duration(el, "requestedSessionDuration")
	if err != nil {
		return nil, bad(ResetApplicationSessionTimerNegResponse{ErrorCode: SessionError{DefinedError: SessionErrServerCannotResetSessionTimer}}, "%v", err)
	}
	m.RequestedSessionDuration = d
	return m, nil
}

// ---- system services ----

func decodeSystemStatus(el *etree.Element) (Message, error) {
	var m SystemStatus
	m.SysStatRegisterID, _ = text(el, "sysStatRegisterID")
	v, _ := text(el, "systemStatus")
	m.SystemStatus = SystemStatusValue(v)
	if v != "" && !validSystemStatus(m.SystemStatus) {
		return nil, bad(ErrSystemStatusOutOfRange, "systemStatus %q unknown", v)
	}
	return m, nil
}

func decodeSystemRegister(el *etree.Element) (Message, error) {
	m := SystemRegister{SystemStatusRequested: true}
	if rt := child(el, "requestTypes"); rt != nil {
		if v, ok := text(rt, "systemStatus"); ok {
			b, valid := parseBool(v)
			if !valid {
				return nil, bad(ErrInvalidParameterValue, "requestTypes/systemStatus %q is not a boolean", v)
			}
			m.SystemStatusRequested = b
		}
	}
	return m, nil
}

func decodeRequestSystemStatus(el *etree.Element) (Message, error) {
	var m RequestSystemStatus
	m.SysStatRegisterID, _ = text(el, "sysStatRegisterID")
	return m, nil
}

// ---- monitoring ----

func decodeMonitorStart(el *etree.Element) (Message, error) {
	var m MonitorStart
	obj := child(el, "monitorObject")
	if obj == nil {
		obj = el // lenient: deviceObject straight under the root
	}
	if child(obj, "callObject") != nil {
		return nil, bad(ErrInvalidMonitorObject, "call monitors are not supported, only deviceObject")
	}
	dev, _ := text(obj, "deviceObject")
	if dev == "" {
		return nil, bad(ErrInvalidMonitorObject, "monitorObject/deviceObject missing or empty")
	}
	m.Device = DeviceID(dev)
	if t, ok := text(el, "monitorType"); ok && t != "" && t != "device" {
		return nil, bad(ErrInvalidMonitorType, "monitorType %q: only device monitors are supported", t)
	}
	if f := child(el, "requestedMonitorFilter"); f != nil {
		m.FilterInverted = avayaInvertFilter(el)
		filter, err := decodeMonitorFilter(f, m.FilterInverted)
		if err != nil {
			return nil, err
		}
		m.Filter, m.HasFilter = filter, true
	}
	return m, nil
}

// avayaInvertFilter reads Avaya's private invertFilter flag: with it, the
// listed true flags are the events wanted (research/csta.md §1.5).
func avayaInvertFilter(el *etree.Element) bool {
	ext := child(el, "extensions")
	if ext == nil {
		return false
	}
	inv := descendant(ext, "invertFilter")
	if inv == nil {
		return false
	}
	b, _ := parseBool(strings.TrimSpace(inv.Text()))
	return b
}

// decodeMonitorFilter applies ECMA-269's meaning: a flag set to true
// suppresses that event (research/csta.md §0.8).
func decodeMonitorFilter(f *etree.Element, invert bool) (MonitorFilter, error) {
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

func decodeMonitorStop(el *etree.Element) (Message, error) {
	id, _ := text(el, "monitorCrossRefID")
	if id == "" {
		return nil, bad(ErrInvalidMonitorCrossRefID, "monitorCrossRefID missing or empty")
	}
	return MonitorStop{MonitorCrossRefID: id}, nil
}

// ---- agent ----

func decodeSetAgentState(el *etree.Element) (Message, error) {
	var m SetAgentState
	var err error
	if m.Device, err = deviceText(el, "device"); err != nil {
		return nil, err
	}
	s, _ := text(el, "requestedAgentState")
	switch ReqAgentState(s) {
	case ReqLoggedOn, ReqLoggedOff, ReqNotReady, ReqReady, ReqWorkingAfterCall:
		m.RequestedState = ReqAgentState(s)
	case "":
		return nil, bad(ErrInvalidAgentState, "requestedAgentState missing")
	default:
		return nil, bad(ErrInvalidAgentState, "requestedAgentState %q unknown", s)
	}
	m.AgentID, _ = text(el, "agentID")
	if p, ok := text(el, "password"); ok {
		m.Password = decodeAgentPassword(p)
	}
	g, _ := text(el, "group")
	m.Group = DeviceID(g)
	m.ReasonCode = broadSoftReason(el)
	return m, nil
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

// broadSoftReason reads BroadWorks' not-ready reason from
// extensions/privateData/private/AgentNotReadyReasonValue (research/csta.md §1.1).
func broadSoftReason(el *etree.Element) string {
	ext := child(el, "extensions")
	if ext == nil {
		return ""
	}
	r := descendant(ext, "AgentNotReadyReasonValue")
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

func decodeGetAgentState(el *etree.Element) (Message, error) {
	var m GetAgentState
	var err error
	if m.Device, err = deviceText(el, "device"); err != nil {
		return nil, err
	}
	g, _ := text(el, "acdGroup")
	m.ACDGroup = DeviceID(g)
	return m, nil
}

// ---- forwarding and DND ----

func decodeSetForwarding(el *etree.Element) (Message, error) {
	var m SetForwarding
	var err error
	if m.Device, err = deviceText(el, "device"); err != nil {
		return nil, err
	}
	t, _ := text(el, "forwardingType")
	m.ForwardingType = ForwardingType(t)
	if !validForwardingType(m.ForwardingType) {
		return nil, bad(ErrInvalidForwardingType, "forwardingType %q missing or unknown", t)
	}
	a, _ := text(el, "activateForward")
	on, ok := parseBool(a)
	if !ok {
		return nil, bad(ErrInvalidForwardingFlag, "activateForward %q missing or not a boolean", a)
	}
	m.ActivateForward = on
	dn, _ := text(el, "forwardDN")
	m.ForwardDN = DeviceID(dn)
	// BroadWorks clients send an empty <ringCount></ringCount> (research/csta.md §1.3).
	if rc, _ := text(el, "ringCount"); rc != "" {
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

func decodeGetForwarding(el *etree.Element) (Message, error) {
	d, err := deviceText(el, "device")
	if err != nil {
		return nil, err
	}
	return GetForwarding{Device: d}, nil
}

func decodeSetDoNotDisturb(el *etree.Element) (Message, error) {
	d, err := deviceText(el, "device")
	if err != nil {
		return nil, err
	}
	v, _ := text(el, "doNotDisturbOn")
	on, ok := parseBool(v)
	if !ok {
		return nil, bad(ErrInvalidDoNotDisturb, "doNotDisturbOn %q missing or not a boolean", v)
	}
	return SetDoNotDisturb{Device: d, DoNotDisturbOn: on}, nil
}

func decodeGetDoNotDisturb(el *etree.Element) (Message, error) {
	d, err := deviceText(el, "device")
	if err != nil {
		return nil, err
	}
	return GetDoNotDisturb{Device: d}, nil
}

// ---- character sets ----

// latin1ToUTF8 handles the ISO-8859-1 documents BroadWorks-style clients send
// (research/csta.md §1.1) before etree sees them: the declaration is dropped
// and the rest transcoded, so the parser reads UTF-8 without a second
// buffered reader per message. A pure-ASCII body is only re-sliced. Anything
// else is returned unchanged (charsetReader remains the fallback).
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
	ascii := true
	for _, b := range body {
		if b >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return body
	}
	out := make([]byte, 0, len(body)+len(body)/8)
	for _, b := range body {
		if b < utf8.RuneSelf {
			out = append(out, b)
		} else {
			out = utf8.AppendRune(out, rune(b))
		}
	}
	return out
}

// declaredEncoding finds encoding="..." (or '...') in an XML declaration.
func declaredEncoding(decl []byte) (string, bool) {
	i := bytes.Index(decl, []byte("encoding"))
	if i < 0 {
		return "", false
	}
	rest := bytes.TrimLeft(decl[i+len("encoding"):], " \t\r\n")
	if len(rest) == 0 || rest[0] != '=' {
		return "", false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) < 2 || (rest[0] != '"' && rest[0] != '\'') {
		return "", false
	}
	q := rest[0]
	j := bytes.IndexByte(rest[1:], q)
	if j < 0 {
		return "", false
	}
	return string(rest[1 : 1+j]), true
}

func isLatin1Label(label string) bool {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "iso_8859-1", "cp819", "iso-ir-100":
		return true
	}
	return false
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
