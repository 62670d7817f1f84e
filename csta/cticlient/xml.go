package cticlient

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// xmlBuilder writes the small request documents the client sends.
type xmlBuilder struct{ b bytes.Buffer }

func (w *xmlBuilder) root(name, ns string) {
	w.b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><`)
	w.b.WriteString(name)
	if ns != "" {
		w.b.WriteString(` xmlns="`)
		w.text(ns)
		w.b.WriteByte('"')
	}
	w.b.WriteByte('>')
}

func (w *xmlBuilder) open(name string)  { w.b.WriteString("<" + name + ">") }
func (w *xmlBuilder) close(name string) { w.b.WriteString("</" + name + ">") }
func (w *xmlBuilder) raw(s string)      { w.b.WriteString(s) }
func (w *xmlBuilder) text(s string)     { xml.EscapeText(&w.b, []byte(s)) }

func (w *xmlBuilder) leaf(name, value string) {
	w.open(name)
	w.text(value)
	w.close(name)
}

func (w *xmlBuilder) opt(name, value string) {
	if value != "" {
		w.leaf(name, value)
	}
}

func (w *xmlBuilder) bytes() []byte { return w.b.Bytes() }

// ---- reading answers ----

func parseXML(b []byte) (*etree.Element, error) {
	d := etree.NewDocument()
	if err := d.ReadFromBytes(b); err != nil {
		return nil, err
	}
	root := d.Root()
	if root == nil {
		return nil, errNoRoot
	}
	return root, nil
}

var errNoRoot = &xml.SyntaxError{Msg: "no root element"}

func childText(el *etree.Element, name string) string {
	if c := el.SelectElement(name); c != nil {
		return strings.TrimSpace(c.Text())
	}
	return ""
}

// descendant finds the first element with the local name anywhere below el.
func descendant(el *etree.Element, name string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == name {
			return c
		}
		if d := descendant(c, name); d != nil {
			return d
		}
	}
	return nil
}

func reasonOf(el *etree.Element) string {
	ext := el.SelectElement("extensions")
	if ext == nil {
		return ""
	}
	if r := descendant(ext, "AgentNotReadyReasonValue"); r != nil {
		return strings.TrimSpace(r.Text())
	}
	return ""
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func isTrue(s string) bool { return s == "true" || s == "1" }

func parseCSTAError(root *etree.Element) *Error {
	kids := root.ChildElements()
	if len(kids) == 0 {
		return &Error{Class: "unspecified"}
	}
	return &Error{Class: kids[0].Tag, Value: strings.TrimSpace(kids[0].Text())}
}

func parseSessionError(root *etree.Element) *SessionError {
	op := strings.TrimSuffix(root.Tag, "NegResponse")
	e := &SessionError{Operation: op}
	if ec := root.SelectElement("errorCode"); ec != nil {
		e.DefinedError = childText(ec, "definedError")
		e.ApplError = childText(ec, "applError")
	}
	return e
}

// ---- events ----

// Event is one unsolicited message (invoke ID 9999): a monitor event such as
// AgentLoggedOnEvent, ApplicationSessionTerminated, or the connector's
// SystemStatus. Fields that the message does not carry are empty.
type Event struct {
	Name       string // root element, e.g. "AgentLoggedOnEvent"
	CrossRefID string // monitorCrossRefID
	Device     string // agentDevice or device

	// Agent events.
	AgentID           string
	ACDGroup          string
	ReasonCode        string // BroadWorks AgentNotReadyReasonValue
	PendingAgentState string
	Cause             string

	// ForwardingEvent.
	ForwardingType string
	ForwardStatus  bool
	ForwardTo      string
	RingCount      int

	// DoNotDisturbEvent.
	DoNotDisturbOn bool

	// ApplicationSessionTerminated.
	SessionID  string
	TermReason string

	// SystemStatus.
	SystemStatus string

	// XML is the document as received.
	XML []byte
}

func deviceOf(el *etree.Element, name string) string {
	d := el.SelectElement(name)
	if d == nil {
		return ""
	}
	if id := d.SelectElement("deviceIdentifier"); id != nil {
		return strings.TrimSpace(id.Text())
	}
	return strings.TrimSpace(d.Text())
}

func parseEvent(root *etree.Element, raw []byte) Event {
	ev := Event{
		Name:              root.Tag,
		CrossRefID:        childText(root, "monitorCrossRefID"),
		AgentID:           childText(root, "agentID"),
		ACDGroup:          childText(root, "acdGroup"),
		PendingAgentState: childText(root, "pendingAgentState"),
		Cause:             childText(root, "cause"),
		ReasonCode:        reasonOf(root),
		ForwardingType:    childText(root, "forwardingType"),
		ForwardStatus:     isTrue(childText(root, "forwardStatus")),
		ForwardTo:         childText(root, "forwardTo"),
		RingCount:         atoi(childText(root, "ringCount")),
		DoNotDisturbOn:    isTrue(childText(root, "doNotDisturbOn")),
		SessionID:         childText(root, "sessionID"),
		SystemStatus:      childText(root, "systemStatus"),
		XML:               raw,
	}
	ev.Device = deviceOf(root, "agentDevice")
	if ev.Device == "" {
		ev.Device = deviceOf(root, "device")
	}
	if r := root.SelectElement("sessionTermReason"); r != nil {
		ev.TermReason = childText(r, "definedTermReason")
		if ev.TermReason == "" {
			ev.TermReason = childText(r, "serverTermReason")
		}
	}
	return ev
}

// Fields are the event's attributes in a stable order, only those it carries.
func (e Event) Fields() [][2]string {
	var out [][2]string
	add := func(k, v string) {
		if v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	add("device", e.Device)
	add("agent", e.AgentID)
	add("group", e.ACDGroup)
	add("reason", e.ReasonCode)
	add("pending", e.PendingAgentState)
	switch e.Name {
	case "ForwardingEvent":
		add("type", e.ForwardingType)
		add("on", strconv.FormatBool(e.ForwardStatus))
		add("to", e.ForwardTo)
		if e.RingCount > 0 {
			add("rings", strconv.Itoa(e.RingCount))
		}
	case "DoNotDisturbEvent":
		add("on", strconv.FormatBool(e.DoNotDisturbOn))
	case "ApplicationSessionTerminated":
		add("session", e.SessionID)
		add("reason", e.TermReason)
	case "SystemStatus":
		add("status", e.SystemStatus)
	}
	add("cause", e.Cause)
	add("monitor", e.CrossRefID)
	return out
}

// String is one readable line: "AgentLoggedOnEvent device=desk1 agent=agent1 monitor=1".
func (e Event) String() string {
	var b strings.Builder
	b.WriteString(e.Name)
	for _, f := range e.Fields() {
		b.WriteString(" " + f[0] + "=" + quoteIfNeeded(f[1]))
	}
	return b.String()
}

func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n\"=") {
		return strconv.Quote(s)
	}
	return s
}
