package csta

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// Fuzz targets for the framing and the decoder. Both are seeded with every
// file in testdata/xml/csta; crashers found by `go test -fuzz` are kept
// under testdata/fuzz/<target>/ and run as regression seeds by `go test`.
//
//	go test -run='^$' -fuzz=FuzzFrameReader -fuzztime=30s ./csta/
//	go test -run='^$' -fuzz=FuzzDecode -fuzztime=30s ./csta/

func fuzzFixtureDocs(f *testing.F) [][]byte {
	f.Helper()
	files, err := filepath.Glob(filepath.Join(fixtureDir, "*.xml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures in %s: %v", fixtureDir, err)
	}
	var docs [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		docs = append(docs, b)
	}
	return docs
}

// chunkReader returns at most n bytes per Read, so frames arrive split.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.n, len(c.b))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

func FuzzFrameReader(f *testing.F) {
	for i, doc := range fuzzFixtureDocs(f) {
		frame, err := AppendFrame(nil, i, doc)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame, uint16(0), uint8(255))
		f.Add(frame, uint16(64), uint8(0))                               // over the limit: skipped and reported
		f.Add(frame[:len(frame)/2], uint16(0), uint8(7))                 // cut inside the body
		f.Add(frame[:5], uint16(0), uint8(1))                            // cut inside the header
		f.Add(append(bytes.Clone(frame), frame...), uint16(0), uint8(3)) // two frames in a row
		ascii := bytes.Clone(frame)
		ascii[0], ascii[1] = '0', '0'
		f.Add(ascii, uint16(0), uint8(16))
		garbled := bytes.Clone(frame)
		garbled[3] += 5 // the length claims 5 bytes more than there are
		f.Add(append(garbled, frame...), uint16(0), uint8(255))
		garbled = bytes.Clone(frame)
		garbled[6] = 'x' // not a digit
		f.Add(garbled, uint16(0), uint8(255))
		f.Add(doc, uint16(0), uint8(255)) // no header at all
	}
	f.Add([]byte{}, uint16(0), uint8(0))
	f.Add([]byte("\x00\x00\x00\x080001\x00\x00\x00\x089999"), uint16(9), uint8(0))
	f.Add([]byte("\x00\x00\xff\xff0001"), uint16(65535), uint8(255))

	f.Fuzz(func(t *testing.T, data []byte, limit uint16, chunk uint8) {
		lim := int(limit)
		if lim <= HeaderSize || lim > MaxFrameSize {
			lim = MaxFrameSize
		}
		fr := NewFrameReader(&chunkReader{b: data, n: int(chunk) + 1}, int(limit))
		off := 0 // where the next header starts in data
		for range len(data)/HeaderSize + 2 {
			fm, err := fr.ReadFrame()
			var tooLarge *FrameTooLargeError
			switch {
			case err == nil:
				if off+HeaderSize > len(data) {
					t.Fatalf("frame returned past the end of the input (offset %d of %d)", off, len(data))
				}
				length, invokeID, herr := parseHeader(data[off : off+HeaderSize])
				if herr != nil {
					t.Fatalf("frame returned for a bad header % x: %v", data[off:off+HeaderSize], herr)
				}
				if len(fm.XML) != length-HeaderSize {
					t.Fatalf("frame XML of %d bytes, header says %d-8", len(fm.XML), length)
				}
				if length > lim {
					t.Fatalf("frame of %d bytes returned, limit %d", length, lim)
				}
				if fm.InvokeID != invokeID || fm.InvokeID < 0 || fm.InvokeID > 9999 {
					t.Fatalf("invoke ID %d, header says %d", fm.InvokeID, invokeID)
				}
				if !bytes.Equal(fm.XML, data[off+HeaderSize:off+length]) {
					t.Fatal("frame XML differs from the input")
				}
				off += length
			case errors.As(err, &tooLarge):
				length, invokeID, herr := parseHeader(data[off : off+HeaderSize])
				if herr != nil || tooLarge.Length != length || tooLarge.InvokeID != invokeID || length <= lim || tooLarge.Limit != lim {
					t.Fatalf("%v for header % x (limit %d)", err, data[off:off+HeaderSize], lim)
				}
				off += length
				if off > len(data) {
					t.Fatalf("skipped past the end of the input")
				}
			case err == io.EOF:
				if off != len(data) {
					t.Fatalf("io.EOF at offset %d of %d", off, len(data))
				}
				return
			case err == io.ErrUnexpectedEOF:
				if off >= len(data) {
					t.Fatalf("io.ErrUnexpectedEOF at the end of the input")
				}
				return
			case errors.Is(err, ErrBadHeader):
				if off+HeaderSize > len(data) {
					t.Fatalf("bad header reported past the end of the input")
				}
				if _, _, herr := parseHeader(data[off : off+HeaderSize]); herr == nil {
					t.Fatalf("ErrBadHeader for the valid header % x", data[off:off+HeaderSize])
				}
				return
			default:
				t.Fatalf("unexpected error %v", err)
			}
		}
		t.Fatal("ReadFrame keeps returning frames beyond the input")
	})
}

func FuzzParseFrame(f *testing.F) {
	for i, doc := range fuzzFixtureDocs(f) {
		frame, _ := AppendFrame(nil, i, doc)
		f.Add(frame, uint16(0))
		f.Add(frame[:len(frame)-1], uint16(0))
		f.Add(frame, uint16(100))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		fm, err := ParseFrame(data, int(limit))
		if err != nil {
			return
		}
		if len(fm.XML) != len(data)-HeaderSize || int(data[2])<<8|int(data[3]) != len(data) {
			t.Fatalf("frame of %d XML bytes from %d input bytes", len(fm.XML), len(data))
		}
		if int(limit) > HeaderSize && len(data) > int(limit) {
			t.Fatalf("frame of %d bytes accepted, limit %d", len(data), limit)
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, doc := range fuzzFixtureDocs(f) {
		f.Add(doc)
	}
	f.Add([]byte("\xef\xbb\xbf<SystemStatus><systemStatus>normal</systemStatus></SystemStatus>"))
	f.Add([]byte(`<SetAgentState xmlns="` + codecNS3 + `"><device>a&#xD;b</device><requestedAgentState>notReady</requestedAgentState><extensions><private><AgentNotReadyReasonValue>&lt;&amp;</AgentNotReadyReasonValue></private></extensions></SetAgentState>`))
	f.Add([]byte(codecDoc("", "Foo", codecNest(40))))

	f.Fuzz(func(t *testing.T, doc []byte) {
		d, err := Decode(doc, 32)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			if de.Answer == nil {
				t.Fatalf("DecodeError without an answer: %v", de)
			}
			if de.EditionKnown && !de.Edition.Valid() {
				t.Fatalf("known edition %d is not valid", de.Edition)
			}
			fuzzEncode(t, de.Answer, de.Edition)
			return
		}
		if d.Message == nil {
			t.Fatal("no message and no error")
		}
		if d.EditionKnown && !d.Edition.Valid() {
			t.Fatalf("known edition %d is not valid", d.Edition)
		}
		fuzzAnswer(t, d)
	})
}

// fuzzEncode encodes msg, requires the result to be well-formed and returns
// its root element.
func fuzzEncode(t *testing.T, msg Message, ed Edition) *etree.Element {
	t.Helper()
	b, err := Encode(msg, ed)
	if err != nil {
		t.Fatalf("Encode(%#v): %v", msg, err)
	}
	return fuzzParse(t, b)
}

func fuzzEvent(t *testing.T, ev Event, crossRefID string, ed Edition) *etree.Element {
	t.Helper()
	b, err := AppendEvent(nil, &ev, crossRefID, ed)
	if err != nil {
		t.Fatalf("AppendEvent(%#v): %v", ev, err)
	}
	return fuzzParse(t, b)
}

func fuzzParse(t *testing.T, b []byte) *etree.Element {
	t.Helper()
	d := etree.NewDocument()
	d.ReadSettings = readSettings
	if err := d.ReadFromBytes(b); err != nil || d.Root() == nil {
		t.Fatalf("encoder output is not XML: %v\n%q", err, b)
	}
	return d.Root()
}

// fuzzText requires the element at path to carry exactly want.
func fuzzText(t *testing.T, root *etree.Element, path, want string) {
	t.Helper()
	el := root.FindElement(path)
	if el == nil {
		t.Fatalf("%s: no %s", root.Tag, path)
	}
	if got := el.Text(); got != want {
		t.Fatalf("%s/%s: read back %q, encoded %q", root.Tag, path, got, want)
	}
}

// fuzzAnswer builds the answers and events a decoded request can lead to,
// filled with the request's own (attacker-controlled) values, and checks
// that they encode to XML that reads back to the same values.
func fuzzAnswer(t *testing.T, d Decoded) {
	ed := d.Edition
	switch m := d.Message.(type) {
	case StartApplicationSession:
		version := ""
		if len(m.ProtocolVersions) > 0 {
			version = m.ProtocolVersions[0]
		}
		r := fuzzEncode(t, StartApplicationSessionPosResponse{SessionID: m.ApplicationID, ActualProtocolVersion: version, ActualSessionDuration: m.RequestedSessionDuration}, ed)
		fuzzText(t, r, "sessionID", m.ApplicationID)
		fuzzText(t, r, "actualProtocolVersion", version)
		fuzzText(t, r, "actualSessionDuration", strconv.Itoa(m.RequestedSessionDuration))
		r = fuzzEncode(t, StartApplicationSessionNegResponse{ErrorCode: SessionError{ApplError: m.UserName + m.Password}}, ed)
		fuzzText(t, r, "errorCode/applError", m.UserName+m.Password)
	case StopApplicationSession:
		reason := m.AppEndReason + m.DefinedEndReason
		r := fuzzEncode(t, ApplicationSessionTerminated{SessionID: m.SessionID, ServerTermReason: reason}, ed)
		fuzzText(t, r, "sessionID", m.SessionID)
		fuzzText(t, r, "sessionTermReason/serverTermReason", reason)
		fuzzEncode(t, StopApplicationSessionPosResponse{}, ed)
	case ResetApplicationSessionTimer:
		r := fuzzEncode(t, ResetApplicationSessionTimerPosResponse{ActualSessionDuration: m.RequestedSessionDuration}, ed)
		fuzzText(t, r, "actualSessionDuration", strconv.Itoa(m.RequestedSessionDuration))
		r = fuzzEncode(t, ResetApplicationSessionTimerNegResponse{ErrorCode: SessionError{ApplError: m.SessionID}}, ed)
		fuzzText(t, r, "errorCode/applError", m.SessionID)
	case SystemStatus:
		// Travels both ways: decode(encode(x)) == x.
		b, err := Encode(m, ed)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Decode(b, 32)
		if err != nil {
			t.Fatalf("re-decoding %q: %v", b, err)
		}
		if !reflect.DeepEqual(back.Message, m) {
			t.Fatalf("round trip %#v → %q → %#v", m, b, back.Message)
		}
		fuzzEncode(t, SystemStatusResponse{}, ed)
	case SystemRegister:
		fuzzEncode(t, SystemRegisterResponse{SysStatRegisterID: "1"}, ed)
	case RequestSystemStatus:
		r := fuzzEncode(t, RequestSystemStatusResponse{SystemStatus: SystemStatusValue(m.SysStatRegisterID)}, ed)
		fuzzText(t, r, "systemStatus", m.SysStatRegisterID)
	case MonitorStart:
		r := fuzzEncode(t, MonitorStartResponse{MonitorCrossRefID: string(m.Device), ActualFilter: m.Filter, HasFilter: m.HasFilter}, ed)
		fuzzText(t, r, "monitorCrossRefID", string(m.Device))
		if m.HasFilter {
			for k := EventKind(1); k < eventKindCount; k++ {
				fuzzText(t, r, "actualMonitorFilter/"+eventInfo[k].category+"/"+eventInfo[k].flag, strconv.FormatBool(m.Filter.Suppresses(k)))
			}
		}
	case MonitorStop:
		r := fuzzEvent(t, Event{Kind: EventBackInService, Device: "1"}, m.MonitorCrossRefID, ed)
		fuzzText(t, r, "monitorCrossRefID", m.MonitorCrossRefID)
		fuzzEncode(t, MonitorStopResponse{}, ed)
	case SetAgentState:
		fuzzEncode(t, SetAgentStateResponse{PendingAgentState: AgentState(m.RequestedState)}, ed)
		r := fuzzEvent(t, Event{Kind: EventAgentNotReady, Device: m.Device, AgentID: m.AgentID, ACDGroup: m.Group, ReasonCode: m.ReasonCode, Cause: m.Password}, "1", ed)
		fuzzText(t, r, "agentDevice/deviceIdentifier", string(m.Device))
		if m.AgentID != "" {
			fuzzText(t, r, "agentID", m.AgentID)
		}
		if m.Password != "" {
			fuzzText(t, r, "cause", m.Password)
		}
		if m.ReasonCode != "" {
			reason := r.FindElement("extensions/privateData/private/AgentNotReadyReasonValue")
			if reason == nil || reason.NamespaceURI() != NSBroadSoftPrivate || reason.Text() != m.ReasonCode {
				t.Fatalf("reason code %q not read back", m.ReasonCode)
			}
		}
	case GetAgentState:
		r := fuzzEncode(t, GetAgentStateResponse{AgentStateList: []AgentStateEntry{{AgentID: string(m.Device), LoggedOnState: true,
			AgentInfo: []AgentInfoItem{{ACDGroup: m.ACDGroup, AgentState: AgentReady}}}}}, ed)
		fuzzText(t, r, "agentStateList/agentStateEntry/agentID", string(m.Device))
	case SetForwarding:
		fuzzEncode(t, SetForwardingResponse{}, ed)
		r := fuzzEvent(t, Event{Kind: EventForwarding, Device: m.Device, ForwardingType: m.ForwardingType, ForwardStatus: m.ActivateForward, ForwardTo: m.ForwardDN, RingCount: m.RingCount}, "1", ed)
		fuzzText(t, r, "device/deviceIdentifier", string(m.Device))
		fuzzText(t, r, "forwardingType", string(m.ForwardingType))
		fuzzText(t, r, "forwardStatus", strconv.FormatBool(m.ActivateForward))
		if m.ForwardDN != "" {
			fuzzText(t, r, "forwardTo", string(m.ForwardDN))
		}
		if m.RingCount != 0 {
			fuzzText(t, r, "ringCount", strconv.Itoa(m.RingCount))
		}
	case GetForwarding:
		r := fuzzEncode(t, GetForwardingResponse{ForwardingList: []ForwardListItem{{ForwardingType: ForwardImmediate, ForwardDN: m.Device}}}, ed)
		fuzzText(t, r, "forwardingList/forwardListItem/forwardDN", string(m.Device))
	case SetDoNotDisturb:
		fuzzEncode(t, SetDoNotDisturbResponse{}, ed)
		r := fuzzEvent(t, Event{Kind: EventDoNotDisturb, Device: m.Device, DoNotDisturbOn: m.DoNotDisturbOn}, "1", ed)
		fuzzText(t, r, "device/deviceIdentifier", string(m.Device))
		fuzzText(t, r, "doNotDisturbOn", strconv.FormatBool(m.DoNotDisturbOn))
	case GetDoNotDisturb:
		fuzzEncode(t, GetDoNotDisturbResponse{DoNotDisturbOn: true}, ed)
		r := fuzzEvent(t, Event{Kind: EventOutOfService, Device: m.Device}, "1", ed)
		fuzzText(t, r, "device/deviceIdentifier", string(m.Device))
	case clientResponse:
		if m.root != "CSTAErrorCode" && !strings.HasSuffix(m.root, "Response") {
			t.Fatalf("client response with root %q", m.root)
		}
	default:
		t.Fatalf("Decode returned %T", d.Message)
	}
}

// fuzzSanitized is what text should read back as after encoding: characters
// XML 1.0 cannot carry (most C0 controls, U+FFFE, U+FFFF, invalid UTF-8)
// become U+FFFD; everything else, CR included, survives.
func fuzzSanitized(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && strings.HasPrefix(s[i:], "\uFFFD"):
			b.WriteRune(r) // a real U+FFFD
		case r == utf8.RuneError, r == 0xFFFE, r == 0xFFFF, r < 0x20 && r != '\t' && r != '\n' && r != '\r':
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// FuzzEncode puts arbitrary text into every free-text field the encoder
// writes: the output must be well-formed and read back as the text sent.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "4711", "a<b>&\"c'", "x\r\ny", "\x00\x01\x1f", "\xff\xfe", "\uFFFE\uFFFF", "]]>", "München", "\U0001F600", " lead and trail "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := fuzzSanitized(s)
		check := func(root *etree.Element, path string) {
			t.Helper()
			el := root.FindElement(path)
			if el == nil {
				t.Fatalf("%s: no %s", root.Tag, path)
			}
			if got := el.Text(); got != want {
				t.Fatalf("%s/%s: read back %q, want %q (sent %q)", root.Tag, path, got, want, s)
			}
		}
		r := fuzzEncode(t, StartApplicationSessionNegResponse{ErrorCode: SessionError{ApplError: s}}, Edition6)
		check(r, "errorCode/applError")
		r = fuzzEncode(t, &Error{Class: ErrPrivateErrorCode, Value: s}, EditionNone)
		check(r, "privateErrorCode")
		r = fuzzEncode(t, GetAgentStateResponse{AgentStateList: []AgentStateEntry{{AgentID: s}}, ReasonCode: s}, Edition3)
		check(r, "agentStateList/agentStateEntry/agentID")
		if s != "" {
			check(r, "extensions/privateData/private/AgentNotReadyReasonValue")
		}
		r = fuzzEvent(t, Event{Kind: EventAgentNotReady, Device: DeviceID(s) + "x", AgentID: s, ReasonCode: s}, s, Edition4)
		check(r, "monitorCrossRefID")
		if s != "" {
			check(r, "agentID")
		}
		r = fuzzEvent(t, Event{Kind: EventForwarding, Device: "1", ForwardingType: ForwardingType(s), ForwardTo: DeviceID(s)}, "1", Edition2)
		check(r, "forwardingType")
	})
}

// FuzzParseTextFrame: any text message either fails with ErrBadHeader or a
// *FrameTooLargeError, or gives a frame whose XML is the message's tail,
// within the limit, that AppendTextFrame writes back as a message parsing
// to the same frame.
func FuzzParseTextFrame(f *testing.F) {
	for i, doc := range fuzzFixtureDocs(f) {
		frame, _ := AppendFrame(nil, i, doc)
		msg, _ := AppendTextFrame(nil, frame)
		f.Add(msg, uint16(0))
		f.Add(msg[:len(msg)-1], uint16(0))
		f.Add(msg[:7], uint16(0))
		f.Add(msg, uint16(100))
	}
	for _, name := range []string{"monitor_start.msg", "monitor_start_unpadded.msg", "monitor_start_ascii_format.msg", "set_dnd_utf8.msg", "set_dnd_length_in_chars.msg"} {
		f.Add(zultysFixture(f, name), uint16(0))
	}
	f.Add([]byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		fm, err := ParseTextFrame(data, int(limit))
		if err != nil {
			var tooLarge *FrameTooLargeError
			if !errors.Is(err, ErrBadHeader) && !errors.As(err, &tooLarge) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		if !bytes.HasSuffix(data, fm.XML) || len(data) != 1+int(data[0])+len(fm.XML) {
			t.Fatalf("XML of %d bytes from a message of %d", len(fm.XML), len(data))
		}
		if int(limit) > HeaderSize && HeaderSize+len(fm.XML) > int(limit) {
			t.Fatalf("frame of %d bytes accepted, limit %d", HeaderSize+len(fm.XML), limit)
		}
		frame, err := AppendFrame(nil, fm.InvokeID, fm.XML)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := AppendTextFrame(nil, frame)
		again, err := ParseTextFrame(msg, int(limit))
		if err != nil || again.InvokeID != fm.InvokeID || !bytes.Equal(again.XML, fm.XML) {
			t.Fatalf("re-encoded %q parsed to %04d, %v", msg, again.InvokeID, err)
		}
	})
}
