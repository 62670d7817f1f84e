package phonesync

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Content types of the two BroadSoft access-side packages (sip.md §1.1).
const (
	FeatureEventContentType = "application/x-as-feature-event+xml"
	HotelingContentType     = "application/x-broadworks-hoteling+xml"
)

// ErrBadBody is wrapped by every body parse error; the wrapping error says
// what was wrong. A SUBSCRIBE or NOTIFY with such a body is answered 400 and
// changes nothing.
var ErrBadBody = errors.New("phonesync: malformed body")

// Limits on a parsed body: phones send a few hundred bytes, a CUCM PIDF about
// one kilobyte (sip.md §3.2). Anything far beyond is refused before decoding.
const (
	maxParsedBodyBytes = 16 << 10
	maxXMLDepth        = 32
)

// Namespaces the encoders write and the decoders recognise.
const (
	cstaNamespace        = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
	privateDataNamespace = "http://schema.broadsoft.com/CSTAPrivateData"
)

func badBody(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadBody, fmt.Sprintf(format, args...))
}

// FeatureRequest is a CSTA request a phone put in the body of an
// as-feature-event re-SUBSCRIBE (sip.md §1.2): SetDoNotDisturb,
// SetForwarding or SetAgentState.
type FeatureRequest struct {
	Kind         ChangeKind // ChangeDoNotDisturb, ChangeForwarding or ChangeAgent
	Device       string     // <device>, informational only (sip.md §1 "What matters most" 4)
	DoNotDisturb bool       // SetDoNotDisturb/doNotDisturbOn
	Forwarding   Forwarding // SetForwarding
	AgentID      string     // SetAgentState/agentID; "" = the agent at the device
	AgentState   AgentStateName
	Reason       string // AgentNotReadyReasonValue, kept for notReady only
}

// ParseFeatureRequest decodes a SetDoNotDisturb, SetForwarding or
// SetAgentState body. Elements are matched by local name whatever their
// namespace (ECMA-323 ed3, another edition, or none), because phones differ;
// the private-data reason is found by local name under <extensions>, so any
// prefix (or an undeclared one) works. UTF-8 and ISO-8859-1 are accepted.
func ParseFeatureRequest(body []byte) (FeatureRequest, error) {
	root, err := parseXML(body)
	if err != nil {
		return FeatureRequest{}, err
	}
	req := FeatureRequest{Device: root.childText("device")}
	switch root.local {
	case "SetDoNotDisturb":
		req.Kind = ChangeDoNotDisturb
		on, err := requiredBool(root, "doNotDisturbOn")
		if err != nil {
			return FeatureRequest{}, err
		}
		req.DoNotDisturb = on
	case "SetForwarding":
		req.Kind = ChangeForwarding
		f, err := parseSetForwarding(root)
		if err != nil {
			return FeatureRequest{}, err
		}
		req.Forwarding = f
	case "SetAgentState":
		req.Kind = ChangeAgent
		st := root.child("requestedAgentState")
		if st == nil {
			return FeatureRequest{}, badBody("SetAgentState without requestedAgentState")
		}
		name := AgentStateName(st.trimmedText())
		switch name {
		case AgentLoggedOn, AgentLoggedOff, AgentReady, AgentNotReady, AgentWorkingAfterCall:
		default:
			return FeatureRequest{}, badBody("SetAgentState: requestedAgentState %q is not loggedOn, loggedOff, ready, notReady or workingAfterCall", clipForError(string(name)))
		}
		req.AgentState = name
		req.AgentID = root.childText("agentID")
		if name == AgentNotReady {
			if ext := root.child("extensions"); ext != nil {
				if r := ext.find("AgentNotReadyReasonValue"); r != nil {
					req.Reason = r.trimmedText()
				}
			}
		}
	default:
		return FeatureRequest{}, badBody("root element %q is not SetDoNotDisturb, SetForwarding or SetAgentState", clipForError(root.local))
	}
	for _, text := range []string{req.Device, req.AgentID, req.Reason, req.Forwarding.Number} {
		if strings.ContainsFunc(text, unicode.IsControl) {
			// No device, agent ID, reason code or number has one; XML
			// allows DEL and C1, which the answer could only write back
			// as U+FFFD.
			return FeatureRequest{}, badBody("%s: device, agentID, reason or forwardDN with a control character", root.local)
		}
	}
	return req, nil
}

func parseSetForwarding(root *xmlNode) (Forwarding, error) {
	var f Forwarding
	t := root.child("forwardingType")
	if t == nil {
		return f, badBody("SetForwarding without forwardingType")
	}
	f.Type = ForwardingType(t.trimmedText())
	switch f.Type {
	case ForwardImmediate, ForwardBusy, ForwardNoAns:
	default:
		return f, badBody("SetForwarding: forwardingType %q is not forwardImmediate, forwardBusy or forwardNoAns", clipForError(string(f.Type)))
	}
	active, err := requiredBool(root, "activateForward")
	if err != nil {
		return f, err
	}
	f.Active = active
	f.Number = root.childText("forwardDN")
	// Phones send <ringCount></ringCount> when they have none (sip.md §1.2).
	if rc := root.childText("ringCount"); rc != "" {
		n, err := strconv.Atoi(rc)
		if err != nil || n < 0 || n > 999 {
			return f, badBody("SetForwarding: ringCount %q is not a number of rings", clipForError(rc))
		}
		f.RingCount = n
	}
	return f, nil
}

func requiredBool(root *xmlNode, name string) (bool, error) {
	n := root.child(name)
	if n == nil {
		return false, badBody("%s without %s", root.local, name)
	}
	// xsd:boolean, plus the capitalised spellings some firmware writes.
	switch v := n.trimmedText(); strings.ToLower(v) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	default:
		return false, badBody("%s: %s %q is not a boolean", root.local, name, clipForError(v))
	}
}

// clipForError keeps error messages short whatever a peer sent.
func clipForError(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return s
}

// FeatureEventDocs is the full state of a device as as-feature-event
// documents, one per feature: DoNotDisturbEvent, one ForwardingEvent per
// entry of st.Forwarding (the gateway always gives all three types), and the
// agent event when st.Agent is set. Multipart puts them in one NOTIFY.
func FeatureEventDocs(device string, st FeatureState) [][]byte {
	docs := make([][]byte, 0, 2+len(st.Forwarding))
	docs = append(docs, dndEventDoc(device, st.DoNotDisturb))
	for _, f := range st.Forwarding {
		docs = append(docs, forwardingEventDoc(device, f))
	}
	if st.Agent != nil {
		if doc := agentEventDoc(device, *st.Agent); doc != nil {
			docs = append(docs, doc)
		}
	}
	return docs
}

// ChangeEventDoc is the as-feature-event document NOTIFYing one change. It
// is nil for ChangeHoteling (see HotelingEventDoc), an unknown kind, or an
// agent state without an ECMA-323 event.
func ChangeEventDoc(device string, c Change) []byte {
	switch c.Kind {
	case ChangeDoNotDisturb:
		return dndEventDoc(device, c.DoNotDisturb)
	case ChangeForwarding:
		return forwardingEventDoc(device, c.Forwarding)
	case ChangeAgent:
		return agentEventDoc(device, c.Agent)
	}
	return nil
}

// The encoders below append to one preallocated buffer: NOTIFY latency at
// hundreds of changes per second is a target (issue 5), and the documents are
// small and fixed in shape. Every root carries the ed3 namespace, because
// Polycom phones reboot on a root without it (sip.md §1.2, Asterisk's
// body generator); the declaration and layout follow Asterisk, FreeSWITCH and
// Kamailio. Text is written as ASCII with character references, so the
// ISO-8859-1 declaration all three servers use is true for any content.
const cstaDecl = `<?xml version="1.0" encoding="ISO-8859-1"?>` + "\n"

func openCSTA(size int, root, device string) []byte {
	b := make([]byte, 0, size+len(device))
	b = append(b, cstaDecl...)
	b = append(b, '<')
	b = append(b, root...)
	b = append(b, ` xmlns="`+cstaNamespace+`">`+"\n"...)
	return appendElement(b, "device", device)
}

func closeRoot(b []byte, root string) []byte {
	b = append(b, "</"...)
	b = append(b, root...)
	return append(b, ">\n"...)
}

func dndEventDoc(device string, on bool) []byte {
	b := openCSTA(256, "DoNotDisturbEvent", device)
	b = append(b, "<doNotDisturbOn>"...)
	b = strconv.AppendBool(b, on)
	b = append(b, "</doNotDisturbOn>\n"...)
	return closeRoot(b, "DoNotDisturbEvent")
}

func forwardingEventDoc(device string, f Forwarding) []byte {
	b := openCSTA(384+len(f.Number), "ForwardingEvent", device)
	b = appendElement(b, "forwardingType", string(f.Type))
	b = append(b, "<forwardStatus>"...)
	b = strconv.AppendBool(b, f.Active)
	b = append(b, "</forwardStatus>\n"...)
	b = appendElement(b, "forwardTo", f.Number)
	if f.Type == ForwardNoAns && f.RingCount > 0 {
		b = append(b, "<ringCount>"...)
		b = strconv.AppendInt(b, int64(f.RingCount), 10)
		b = append(b, "</ringCount>\n"...)
	}
	return closeRoot(b, "ForwardingEvent")
}

// agentEventRoots maps an agent state to the root the AudioCodes and
// Yealink-style clients parse (sip.md §1.2).
func agentEventRoot(s AgentStateName) string {
	switch s {
	case AgentLoggedOn:
		return "AgentLoggedOnEvent"
	case AgentLoggedOff:
		return "AgentLoggedOffEvent"
	case AgentReady:
		return "AgentReadyEvent"
	case AgentNotReady:
		return "AgentNotReadyEvent"
	case AgentWorkingAfterCall:
		return "AgentWorkingAfterCallEvent"
	}
	return ""
}

func agentEventDoc(device string, a AgentState) []byte {
	root := agentEventRoot(a.State)
	if root == "" {
		return nil
	}
	b := openCSTA(400+len(a.AgentID)+len(a.Reason), root, device)
	b = appendElement(b, "agentID", a.AgentID)
	if a.State == AgentNotReady && a.Reason != "" {
		// Where clients read it: /AgentNotReadyEvent/extensions/privateData/
		// private/pri:AgentNotReadyReasonValue (sip.md §1.2).
		b = append(b, "<extensions>\n<privateData>\n<private xmlns:pri=\""+privateDataNamespace+"\">\n<pri:AgentNotReadyReasonValue>"...)
		b = appendEscaped(b, a.Reason)
		b = append(b, "</pri:AgentNotReadyReasonValue>\n</private>\n</privateData>\n</extensions>\n"...)
	}
	return closeRoot(b, root)
}

func appendElement(b []byte, name, text string) []byte {
	b = append(b, '<')
	b = append(b, name...)
	b = append(b, '>')
	b = appendEscaped(b, text)
	b = append(b, "</"...)
	b = append(b, name...)
	return append(b, ">\n"...)
}

// appendEscaped writes s as XML text in pure ASCII: markup characters as
// entities, anything beyond ASCII as a character reference, and what XML 1.0
// cannot carry at all (control characters, invalid UTF-8) as U+FFFD.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == '&':
				b = append(b, "&amp;"...)
			case c == '<':
				b = append(b, "&lt;"...)
			case c == '>':
				b = append(b, "&gt;"...)
			case c == '"':
				b = append(b, "&quot;"...)
			case c == '\'':
				b = append(b, "&apos;"...)
			case c == '\r':
				b = append(b, "&#xD;"...) // a literal CR would be read back as LF
			case c < 0x20 && c != '\t' && c != '\n', c == 0x7f:
				b = append(b, "&#xFFFD;"...)
			default:
				b = append(b, c)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError || r == 0xFFFE || r == 0xFFFF {
			r = utf8.RuneError
		}
		b = append(b, "&#x"...)
		b = strconv.AppendUint(b, uint64(r), 16)
		b = append(b, ';')
	}
	return b
}

// xmlNode is the small tree the decoders query: local names, resolved
// namespaces, direct text. Building it costs a few allocations per element,
// which is fine for bodies of at most 16 KiB.
type xmlNode struct {
	space, local string
	attrs        []xml.Attr
	text         []byte
	children     []*xmlNode
}

// parseXML reads one well-formed document within the size and depth limits.
// DTDs are refused (no phone sends one, and they only open doors).
func parseXML(body []byte) (*xmlNode, error) {
	if len(body) > maxParsedBodyBytes {
		return nil, badBody("%d bytes exceed the %d-byte limit", len(body), maxParsedBodyBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badBody("empty document")
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	d.CharsetReader = charsetReader
	var root *xmlNode
	stack := make([]*xmlNode, 0, 8)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, badBody("%s", clipError(err))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxXMLDepth {
				return nil, badBody("elements nested deeper than %d", maxXMLDepth)
			}
			n := &xmlNode{space: t.Name.Space, local: t.Name.Local}
			if len(t.Attr) > 0 {
				n.attrs = append([]xml.Attr(nil), t.Attr...)
			}
			if len(stack) == 0 {
				if root != nil {
					return nil, badBody("second root element %q", clipForError(t.Name.Local))
				}
				root = n
			} else {
				top := stack[len(stack)-1]
				top.children = append(top.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) != 0 {
					return nil, badBody("text outside the root element")
				}
				continue
			}
			top := stack[len(stack)-1]
			top.text = append(top.text, t...)
		case xml.Directive:
			return nil, badBody("DTDs and directives are not accepted")
		}
	}
	if root == nil {
		return nil, badBody("no root element")
	}
	if len(stack) != 0 {
		return nil, badBody("unclosed element %q", clipForError(stack[len(stack)-1].local))
	}
	return root, nil
}

func clipError(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// charsetReader lets encoding/xml read the declarations phones write:
// ISO-8859-1 (most as-feature-event bodies) and the ASCII/UTF-8 spellings it
// does not know itself. Input is at most maxParsedBodyBytes, so it is converted at
// once.
func charsetReader(label string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "cp819", "iso-ir-100":
		raw, err := io.ReadAll(input)
		if err != nil {
			return nil, err
		}
		out := make([]byte, 0, len(raw)+len(raw)/8)
		for _, c := range raw {
			out = utf8.AppendRune(out, rune(c))
		}
		return bytes.NewReader(out), nil
	case "utf8", "us-ascii", "ascii":
		return input, nil
	}
	return nil, fmt.Errorf("unsupported encoding %q", clipForError(label))
}

// child is the first direct child with the local name.
func (n *xmlNode) child(local string) *xmlNode {
	for _, c := range n.children {
		if c.local == local {
			return c
		}
	}
	return nil
}

// find is the first descendant with the local name, depth first.
func (n *xmlNode) find(local string) *xmlNode {
	for _, c := range n.children {
		if c.local == local {
			return c
		}
		if f := c.find(local); f != nil {
			return f
		}
	}
	return nil
}

func (n *xmlNode) trimmedText() string {
	return string(bytes.TrimSpace(n.text))
}

// childText is the trimmed text of the first child with the local name, ""
// when there is none.
func (n *xmlNode) childText(local string) string {
	if c := n.child(local); c != nil {
		return c.trimmedText()
	}
	return ""
}

func (n *xmlNode) attr(local string) string {
	for _, a := range n.attrs {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}
