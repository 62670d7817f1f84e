package csta

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// The encoder writes compact UTF-8 XML with children in schema order
// (research/csta.md §1). It is hand-rolled rather than built on etree because
// every answer and event passes through it and the order must be exact.

const xmlDecl = `<?xml version="1.0" encoding="UTF-8"?>`

type xmlWriter struct{ b []byte }

func (w *xmlWriter) root(name, ns string) {
	w.b = append(w.b, xmlDecl...)
	w.b = append(w.b, '<')
	w.b = append(w.b, name...)
	if ns != "" {
		w.b = append(w.b, ` xmlns="`...)
		w.b = appendEscaped(w.b, ns)
		w.b = append(w.b, '"')
	}
	w.b = append(w.b, '>')
}

func (w *xmlWriter) open(name string) {
	w.b = append(w.b, '<')
	w.b = append(w.b, name...)
	w.b = append(w.b, '>')
}

func (w *xmlWriter) close(name string) {
	w.b = append(w.b, '<', '/')
	w.b = append(w.b, name...)
	w.b = append(w.b, '>')
}

func (w *xmlWriter) leaf(name, value string) {
	w.open(name)
	w.b = appendEscaped(w.b, value)
	w.close(name)
}

// opt writes the leaf only when value is not empty (optional elements).
func (w *xmlWriter) opt(name, value string) {
	if value != "" {
		w.leaf(name, value)
	}
}

func (w *xmlWriter) boolean(name string, v bool) {
	w.leaf(name, strconv.FormatBool(v))
}

func (w *xmlWriter) empty(name string) {
	w.b = append(w.b, '<')
	w.b = append(w.b, name...)
	w.b = append(w.b, '/', '>')
}

// subjectDevice writes a SubjectDeviceID: <name><deviceIdentifier>…</deviceIdentifier></name>.
func (w *xmlWriter) subjectDevice(name string, d DeviceID) {
	w.open(name)
	if d == "" {
		w.empty("notKnown")
	} else {
		w.leaf("deviceIdentifier", string(d))
	}
	w.close(name)
}

// reasonExtension writes BroadWorks' not-ready reason private data
// (research/csta.md §1.1, §5).
func (w *xmlWriter) reasonExtension(reason string) {
	if reason == "" {
		return
	}
	w.b = append(w.b, `<extensions><privateData><private xmlns:pri="`+NSBroadSoftPrivate+`"><pri:AgentNotReadyReasonValue>`...)
	w.b = appendEscaped(w.b, reason)
	w.b = append(w.b, `</pri:AgentNotReadyReasonValue></private></privateData></extensions>`...)
}

func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '<':
				dst = append(dst, "&lt;"...)
			case '>':
				dst = append(dst, "&gt;"...)
			case '&':
				dst = append(dst, "&amp;"...)
			case '"':
				dst = append(dst, "&quot;"...)
			case '\'':
				dst = append(dst, "&apos;"...)
			case '\t', '\n':
				dst = append(dst, c)
			case '\r':
				// A raw CR would be read back as LF (XML end-of-line handling).
				dst = append(dst, "&#xD;"...)
			default:
				if c < 0x20 {
					dst = append(dst, "\uFFFD"...) // not allowed in XML 1.0
				} else {
					dst = append(dst, c)
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		// Invalid UTF-8, and U+FFFE/U+FFFF, which XML 1.0 does not allow.
		if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// Encode writes msg as an XML document. CSTA messages use the namespace of
// ed; ECMA-354 messages always use the application-session namespace.
func Encode(msg Message, ed Edition) ([]byte, error) {
	return AppendEncode(make([]byte, 0, 256), msg, ed)
}

// AppendEncode is Encode appending to dst.
func AppendEncode(dst []byte, msg Message, ed Edition) ([]byte, error) {
	w := xmlWriter{b: dst}
	ns := ed.Namespace()
	name := msg.Name()
	switch m := msg.(type) {
	case StartApplicationSessionPosResponse:
		w.root(name, NSAppSession)
		w.leaf("sessionID", m.SessionID)
		w.leaf("actualProtocolVersion", m.ActualProtocolVersion)
		w.leaf("actualSessionDuration", strconv.Itoa(m.ActualSessionDuration))
	case StartApplicationSessionNegResponse:
		w.root(name, NSAppSession)
		w.sessionError(m.ErrorCode)
	case StopApplicationSessionPosResponse:
		w.root(name, NSAppSession)
	case StopApplicationSessionNegResponse:
		w.root(name, NSAppSession)
		w.sessionError(m.ErrorCode)
	case ResetApplicationSessionTimerPosResponse:
		w.root(name, NSAppSession)
		w.leaf("actualSessionDuration", strconv.Itoa(m.ActualSessionDuration))
	case ResetApplicationSessionTimerNegResponse:
		w.root(name, NSAppSession)
		w.sessionError(m.ErrorCode)
	case ApplicationSessionTerminated:
		w.root(name, NSAppSession)
		w.leaf("sessionID", m.SessionID)
		w.open("sessionTermReason")
		w.choice("definedTermReason", m.DefinedTermReason, "serverTermReason", m.ServerTermReason)
		w.close("sessionTermReason")

	case SystemStatus:
		w.root(name, ns)
		w.opt("sysStatRegisterID", m.SysStatRegisterID)
		w.leaf("systemStatus", string(m.SystemStatus))
	case SystemStatusResponse:
		w.root(name, ns)
	case SystemRegisterResponse:
		w.root(name, ns)
		w.leaf("sysStatRegisterID", m.SysStatRegisterID)
	case RequestSystemStatusResponse:
		w.root(name, ns)
		w.leaf("systemStatus", string(m.SystemStatus))

	case MonitorStartResponse:
		w.root(name, ns)
		w.leaf("monitorCrossRefID", m.MonitorCrossRefID)
		if m.HasFilter {
			w.monitorFilter("actualMonitorFilter", m.ActualFilter, m.FilterInverted)
		}
	case MonitorStopResponse:
		w.root(name, ns)

	case SetAgentStateResponse:
		w.root(name, ns)
		w.opt("pendingAgentState", string(m.PendingAgentState))
	case GetAgentStateResponse:
		w.root(name, ns)
		w.open("agentStateList")
		for _, e := range m.AgentStateList {
			w.open("agentStateEntry")
			w.leaf("agentID", e.AgentID)
			w.boolean("loggedOnState", e.LoggedOnState)
			if len(e.AgentInfo) > 0 {
				w.open("agentInfo")
				for _, it := range e.AgentInfo {
					w.open("agentInfoItem")
					w.opt("acdGroup", string(it.ACDGroup))
					w.opt("agentState", string(it.AgentState))
					w.opt("pendingAgentState", string(it.PendingAgentState))
					w.close("agentInfoItem")
				}
				w.close("agentInfo")
			}
			w.close("agentStateEntry")
		}
		w.close("agentStateList")
		w.reasonExtension(m.ReasonCode)

	case SetForwardingResponse, SetDoNotDisturbResponse:
		w.root(name, ns)
	case GetForwardingResponse:
		w.root(name, ns)
		w.open("forwardingList")
		for _, it := range m.ForwardingList {
			w.open("forwardListItem")
			w.leaf("forwardingType", string(it.ForwardingType))
			w.boolean("forwardStatus", it.ForwardStatus)
			w.opt("forwardDN", string(it.ForwardDN))
			if it.RingCount > 0 {
				w.leaf("ringCount", strconv.Itoa(it.RingCount))
			}
			w.close("forwardListItem")
		}
		w.close("forwardingList")
	case GetDoNotDisturbResponse:
		w.root(name, ns)
		w.boolean("doNotDisturbOn", m.DoNotDisturbOn)

	case *Error:
		// The class becomes an element name: only the schema's are written.
		if m == nil || !m.Class.valid() {
			return dst, fmt.Errorf("csta: cannot encode CSTAErrorCode %#v", m)
		}
		w.root(name, ns)
		if m.Class == ErrUnspecified {
			w.empty(string(ErrUnspecified))
		} else {
			w.leaf(string(m.Class), m.Value)
		}
	default:
		return dst, fmt.Errorf("csta: cannot encode %s", name)
	}
	w.close(name)
	return w.b, nil
}

func (w *xmlWriter) sessionError(e SessionError) {
	w.open("errorCode")
	w.choice("definedError", e.DefinedError, "applError", e.ApplError)
	w.close("errorCode")
}

// choice writes ECMA-354's "defined value or free text" choice: the defined
// element when it is set, the free-text one otherwise.
func (w *xmlWriter) choice(definedName, defined, textName, text string) {
	if defined != "" {
		w.leaf(definedName, defined)
	} else {
		w.leaf(textName, text)
	}
}

// Filter flags in schema order per category (research/csta.md §1.5).
var filterOrder = []struct {
	category string
	kinds    []EventKind
}{
	{"logicalDeviceFeature", []EventKind{EventAgentBusy, EventAgentLoggedOn, EventAgentLoggedOff,
		EventAgentNotReady, EventAgentReady, EventAgentWorkingAfterCall, EventDoNotDisturb, EventForwarding}},
	{"maintenance", []EventKind{EventBackInService, EventOutOfService}},
}

func (w *xmlWriter) monitorFilter(name string, f MonitorFilter, inverted bool) {
	w.open(name)
	for _, cat := range filterOrder {
		w.open(cat.category)
		for _, k := range cat.kinds {
			w.boolean(eventInfo[k].flag, f.Suppresses(k) != inverted)
		}
		w.close(cat.category)
	}
	w.close(name)
}

// AppendEvent writes ev as the event document a monitor with crossRefID gets.
func AppendEvent(dst []byte, ev *Event, crossRefID string, ed Edition) ([]byte, error) {
	b, _, err := appendEventDoc(dst, ev, crossRefID, ed)
	return b, err
}

// appendEventDoc writes ev's document for the monitor crossRefID and
// returns where in the result the crossRefID's text starts. With an empty
// crossRefID it is the document every monitor of one edition gets, with
// its own crossRefID put in there (eventFrames).
func appendEventDoc(dst []byte, ev *Event, crossRefID string, ed Edition) (b []byte, at int, err error) {
	if !ev.Kind.valid() {
		return dst, 0, fmt.Errorf("csta: cannot encode event kind %d", ev.Kind)
	}
	name := eventInfo[ev.Kind].root
	w := xmlWriter{b: dst}
	w.root(name, ed.Namespace())
	w.open("monitorCrossRefID")
	at = len(w.b)
	w.b = appendEscaped(w.b, crossRefID)
	w.close("monitorCrossRefID")
	switch ev.Kind {
	case EventAgentLoggedOn, EventAgentLoggedOff, EventAgentReady, EventAgentNotReady,
		EventAgentWorkingAfterCall, EventAgentBusy:
		w.subjectDevice("agentDevice", ev.Device)
		w.opt("agentID", ev.AgentID)
		w.opt("acdGroup", string(ev.ACDGroup))
		if ev.Kind == EventAgentBusy || ev.Kind == EventAgentWorkingAfterCall {
			w.opt("pendingAgentState", ev.PendingAgentState)
		}
		w.opt("cause", ev.Cause)
		if ev.Kind == EventAgentNotReady {
			w.reasonExtension(ev.ReasonCode)
		}
	case EventForwarding:
		w.subjectDevice("device", ev.Device)
		w.leaf("forwardingType", string(ev.ForwardingType))
		w.boolean("forwardStatus", ev.ForwardStatus)
		w.opt("forwardTo", string(ev.ForwardTo))
		if ev.RingCount > 0 {
			w.leaf("ringCount", strconv.Itoa(ev.RingCount))
		}
	case EventDoNotDisturb:
		w.subjectDevice("device", ev.Device)
		w.boolean("doNotDisturbOn", ev.DoNotDisturbOn)
	case EventOutOfService, EventBackInService:
		w.subjectDevice("device", ev.Device)
		w.opt("cause", ev.Cause)
	}
	w.close(name)
	return w.b, at, nil
}

// valid reports whether c is one of the CSTAErrorCode choices the encoder writes.
func (c ErrorClass) valid() bool {
	switch c {
	case ErrOperation, ErrSecurity, ErrStateIncompatibility, ErrSystemResourceAvailability,
		ErrSubscribedResourceAvailability, ErrPerformanceManagement, ErrPrivateErrorCode, ErrUnspecified:
		return true
	}
	return false
}
