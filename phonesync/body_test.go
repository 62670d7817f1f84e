package phonesync

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/broadworks-connector/connector/internal/xmlcheck"
)

const sipFixtureDir = "../testdata/xml/sip"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sipFixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtures lists the fixture files whose names start with prefix.
func fixtures(t testing.TB, prefix string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(sipFixtureDir, prefix+"*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures %s*.xml in %s: %v", prefix, sipFixtureDir, err)
	}
	out := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// fixtureCase is one body fixture of testdata/xml/sip and what parsing it
// must give: want, or an ErrBadBody whose text contains wantErr.
type fixtureCase[T any] struct {
	file    string
	want    T
	wantErr string // substring of the error; ErrBadBody is always checked
}

// runFixtures parses each fixture, checks the error or, with check, the
// result, and that every fixture named prefix* has a table entry.
func runFixtures[T any](t *testing.T, prefix string, tests []fixtureCase[T], parse func([]byte) (T, error), check func(t *testing.T, got, want T)) {
	t.Helper()
	seen := map[string]bool{}
	for _, tc := range tests {
		seen[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			got, err := parse(readFixture(t, tc.file))
			if tc.wantErr != "" {
				if !errors.Is(err, ErrBadBody) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want ErrBadBody containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			check(t, got, tc.want)
		})
	}
	for name := range fixtures(t, prefix) {
		if !seen[name] {
			t.Errorf("fixture %s has no table entry", name)
		}
	}
}

func TestParseFeatureRequestFixtures(t *testing.T) {
	tests := []fixtureCase[FeatureRequest]{
		{file: "feature_set_dnd_bd5196.xml", want: FeatureRequest{Kind: ChangeDoNotDisturb, Device: "7659366", DoNotDisturb: true}},
		{file: "feature_set_forwarding_bd5196.xml", want: FeatureRequest{Kind: ChangeForwarding, Device: "7659366",
			Forwarding: Forwarding{Type: ForwardImmediate, Active: true, Number: "2424"}}},
		{file: "feature_set_forwarding_noans_ringcount.xml", want: FeatureRequest{Kind: ChangeForwarding, Device: "1001",
			Forwarding: Forwarding{Type: ForwardNoAns, Active: true, Number: "sip:voicemail@example.com", RingCount: 4}}},
		{file: "feature_set_forwarding_busy_off.xml", want: FeatureRequest{Kind: ChangeForwarding, Device: "479",
			Forwarding: Forwarding{Type: ForwardBusy}}},
		{file: "feature_set_agent_state_audiocodes.xml", want: FeatureRequest{Kind: ChangeAgent, AgentState: AgentNotReady, Reason: "3"}},
		{file: "feature_set_agent_state_logon_latin1.xml", want: FeatureRequest{Kind: ChangeAgent, Device: "1001", AgentState: AgentLoggedOn, AgentID: "jürgen"}},
		{file: "feature_set_agent_state_ready_no_namespace.xml", want: FeatureRequest{Kind: ChangeAgent, Device: "1001", AgentState: AgentReady, AgentID: "agent1001"}},
		{file: "feature_set_agent_state_wrapup_prefixed.xml", want: FeatureRequest{Kind: ChangeAgent, Device: "1001", AgentState: AgentWorkingAfterCall}},
		{file: "feature_set_agent_state_notready_undeclared_prefix.xml", want: FeatureRequest{Kind: ChangeAgent, Device: "2002",
			AgentState: AgentNotReady, AgentID: "2002", Reason: "Lunch & break"}},
		// Phone 4001 naming other agents (issue 13): well-formed, refused by
		// authorization, not by the parser.
		{file: "feature_set_agent_state_other_agent.xml", want: FeatureRequest{Kind: ChangeAgent, Device: "4001", AgentState: AgentNotReady, AgentID: "agent4"}},
		{file: "feature_set_agent_state_logon_other_agent.xml", want: FeatureRequest{Kind: ChangeAgent, Device: "4001", AgentState: AgentLoggedOn, AgentID: "agent2"}},
		{file: "feature_bad_unclosed.xml", wantErr: "unexpected EOF"},
		{file: "feature_bad_unknown_root.xml", wantErr: `"SetMessageWaitingIndicator" is not`},
		{file: "feature_bad_boolean.xml", wantErr: `doNotDisturbOn "yes" is not a boolean`},
		{file: "feature_bad_forwarding_type.xml", wantErr: `forwardingType "forwardBusyInt"`},
		{file: "feature_bad_ring_count.xml", wantErr: `ringCount "-3"`},
		{file: "feature_bad_agent_control_char.xml", wantErr: "SetAgentState: device, agentID, reason or forwardDN with a control character"},
		{file: "feature_bad_device_control_char.xml", wantErr: "SetDoNotDisturb: device, agentID, reason or forwardDN with a control character"},
		{file: "feature_bad_forward_dn_control_char.xml", wantErr: "SetForwarding: device, agentID, reason or forwardDN with a control character"},
		{file: "feature_bad_agent_state.xml", wantErr: `requestedAgentState "agentBusy"`},
		{file: "feature_bad_missing_state.xml", wantErr: "SetDoNotDisturb without doNotDisturbOn"},
		{file: "feature_bad_doctype.xml", wantErr: "DTDs"},
		{file: "feature_bad_two_roots.xml", wantErr: "second root"},
		{file: "feature_bad_encoding.xml", wantErr: "EBCDIC-US"},
	}
	runFixtures(t, "feature_", tests, ParseFeatureRequest, func(t *testing.T, got, want FeatureRequest) {
		t.Helper()
		if got != want {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
	})
}

func TestParseFeatureRequestLimits(t *testing.T) {
	deep := strings.Repeat("<a>", maxXMLDepth) + strings.Repeat("</a>", maxXMLDepth)
	okDepth := strings.Repeat("<a>", maxXMLDepth-2) + strings.Repeat("</a>", maxXMLDepth-2)
	tests := []struct {
		name, body, wantErr string
	}{
		{"empty", "", "empty document"},
		{"whitespace", " \r\n", "empty document"},
		{"too big", `<SetDoNotDisturb><device>` + strings.Repeat("1", maxParsedBodyBytes) + `</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`, "byte limit"},
		{"too deep", `<SetDoNotDisturb><doNotDisturbOn>true</doNotDisturbOn>` + deep + `</SetDoNotDisturb>`, "deeper than 32"},
		{"text after root", `<SetDoNotDisturb><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>junk`, "outside the root"},
		{"not xml", `DND on please`, "outside the root"},
		{"undefined entity", `<SetDoNotDisturb><device>&foo;</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`, "entity"},
		{"invalid utf-8", "<SetDoNotDisturb><device>\xff\xfe</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>", "UTF-8"},
		{"deep but within limit", `<SetDoNotDisturb><doNotDisturbOn>1</doNotDisturbOn>` + okDepth + `</SetDoNotDisturb>`, ""},
		{"capitalised boolean", `<SetDoNotDisturb><doNotDisturbOn> False </doNotDisturbOn></SetDoNotDisturb>`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFeatureRequest([]byte(tc.body))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrBadBody) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want ErrBadBody containing %q", err, tc.wantErr)
			}
		})
	}
}

// The reason is only meaningful for notReady; other states drop it.
func TestParseFeatureRequestReasonOnlyForNotReady(t *testing.T) {
	body := `<SetAgentState><requestedAgentState>ready</requestedAgentState><extensions><privateData><private xmlns:p="` + privateDataNamespace + `"><p:AgentNotReadyReasonValue>7</p:AgentNotReadyReasonValue></private></privateData></extensions></SetAgentState>`
	got, err := ParseFeatureRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if got.AgentState != AgentReady || got.Reason != "" {
		t.Fatalf("got %+v", got)
	}
}

func TestFeatureEventDocsExact(t *testing.T) {
	docs := FeatureEventDocs("1001", FeatureState{
		DoNotDisturb: true,
		Forwarding: []Forwarding{
			{Type: ForwardImmediate, Active: true, Number: "2424"},
			{Type: ForwardBusy},
			{Type: ForwardNoAns, Active: true, Number: "2525", RingCount: 3},
		},
		Agent: &AgentState{AgentID: "agent1", State: AgentNotReady, Reason: "3"},
	})
	want := []string{
		`<?xml version="1.0" encoding="ISO-8859-1"?>
<DoNotDisturbEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
<device>1001</device>
<doNotDisturbOn>true</doNotDisturbOn>
</DoNotDisturbEvent>
`,
		`<?xml version="1.0" encoding="ISO-8859-1"?>
<ForwardingEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
<device>1001</device>
<forwardingType>forwardImmediate</forwardingType>
<forwardStatus>true</forwardStatus>
<forwardTo>2424</forwardTo>
</ForwardingEvent>
`,
		`<?xml version="1.0" encoding="ISO-8859-1"?>
<ForwardingEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
<device>1001</device>
<forwardingType>forwardBusy</forwardingType>
<forwardStatus>false</forwardStatus>
<forwardTo></forwardTo>
</ForwardingEvent>
`,
		`<?xml version="1.0" encoding="ISO-8859-1"?>
<ForwardingEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
<device>1001</device>
<forwardingType>forwardNoAns</forwardingType>
<forwardStatus>true</forwardStatus>
<forwardTo>2525</forwardTo>
<ringCount>3</ringCount>
</ForwardingEvent>
`,
		`<?xml version="1.0" encoding="ISO-8859-1"?>
<AgentNotReadyEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
<device>1001</device>
<agentID>agent1</agentID>
<extensions>
<privateData>
<private xmlns:pri="http://schema.broadsoft.com/CSTAPrivateData">
<pri:AgentNotReadyReasonValue>3</pri:AgentNotReadyReasonValue>
</private>
</privateData>
</extensions>
</AgentNotReadyEvent>
`,
	}
	if len(docs) != len(want) {
		t.Fatalf("%d docs, want %d", len(docs), len(want))
	}
	for i := range want {
		if string(docs[i]) != want[i] {
			t.Errorf("doc %d:\n%s\nwant:\n%s", i, docs[i], want[i])
		}
	}
	if got := FeatureEventDocs("1", FeatureState{}); len(got) != 1 {
		t.Errorf("no forwarding, no agent: %d docs, want the DND one", len(got))
	}
}

// parsedEvent is what a phone reads from an as-feature-event NOTIFY body;
// decodeEventDoc is the test's phone.
type parsedEvent struct {
	Device string
	Change Change
}

func decodeEventDoc(doc []byte) (parsedEvent, error) {
	if !bytes.HasPrefix(doc, []byte(`<?xml version="1.0" encoding="ISO-8859-1"?>`)) {
		return parsedEvent{}, errors.New("no XML declaration")
	}
	root, err := parseXML(doc)
	if err != nil {
		return parsedEvent{}, err
	}
	if root.space != cstaNamespace {
		return parsedEvent{}, fmt.Errorf("root namespace %q", root.space)
	}
	ev := parsedEvent{Device: root.childText("device")}
	parseBool := func(name string) (bool, error) {
		switch v := root.childText(name); v {
		case "true":
			return true, nil
		case "false":
			return false, nil
		default:
			return false, fmt.Errorf("%s %q is not a lowercase boolean", name, v)
		}
	}
	agent := func(s AgentStateName) {
		ev.Change = Change{Kind: ChangeAgent, Agent: AgentState{AgentID: root.childText("agentID"), State: s}}
		if r := root.find("AgentNotReadyReasonValue"); r != nil {
			if r.space != privateDataNamespace {
				err = fmt.Errorf("reason namespace %q", r.space)
			}
			ev.Change.Agent.Reason = r.trimmedText()
		}
	}
	switch root.local {
	case "DoNotDisturbEvent":
		ev.Change.Kind = ChangeDoNotDisturb
		ev.Change.DoNotDisturb, err = parseBool("doNotDisturbOn")
	case "ForwardingEvent":
		ev.Change.Kind = ChangeForwarding
		f := Forwarding{Type: ForwardingType(root.childText("forwardingType")), Number: root.childText("forwardTo")}
		f.Active, err = parseBool("forwardStatus")
		if rc := root.childText("ringCount"); rc != "" && err == nil {
			f.RingCount, err = strconv.Atoi(rc)
		}
		ev.Change.Forwarding = f
	case "AgentLoggedOnEvent":
		agent(AgentLoggedOn)
	case "AgentLoggedOffEvent":
		agent(AgentLoggedOff)
	case "AgentReadyEvent":
		agent(AgentReady)
	case "AgentNotReadyEvent":
		agent(AgentNotReady)
	case "AgentWorkingAfterCallEvent":
		agent(AgentWorkingAfterCall)
	default:
		err = fmt.Errorf("unknown root %q", root.local)
	}
	return ev, err
}

func changeSamples() []Change {
	return []Change{
		{Kind: ChangeDoNotDisturb, DoNotDisturb: true},
		{Kind: ChangeDoNotDisturb},
		{Kind: ChangeForwarding, Forwarding: Forwarding{Type: ForwardImmediate, Active: true, Number: "+49 89 1234"}},
		{Kind: ChangeForwarding, Forwarding: Forwarding{Type: ForwardBusy, Number: "sip:a&b@example.com"}},
		{Kind: ChangeForwarding, Forwarding: Forwarding{Type: ForwardNoAns, Active: true, Number: "2424", RingCount: 5}},
		{Kind: ChangeAgent, Agent: AgentState{AgentID: "agent1", State: AgentLoggedOn}},
		{Kind: ChangeAgent, Agent: AgentState{AgentID: "agent1", State: AgentLoggedOff}},
		{Kind: ChangeAgent, Agent: AgentState{State: AgentReady}},
		{Kind: ChangeAgent, Agent: AgentState{AgentID: "jürgen", State: AgentNotReady, Reason: "Mittagspause <außer Haus>"}},
		{Kind: ChangeAgent, Agent: AgentState{AgentID: "a'\"b", State: AgentWorkingAfterCall}},
	}
}

func TestChangeEventDocRoundTrip(t *testing.T) {
	for i, c := range changeSamples() {
		for _, device := range []string{"1001", "", "dev<&>\"'ü€😀"} {
			doc := ChangeEventDoc(device, c)
			for _, b := range doc {
				if b >= 0x80 {
					t.Fatalf("sample %d: non-ASCII byte in %q", i, doc)
				}
			}
			got, err := decodeEventDoc(doc)
			if err != nil {
				t.Fatalf("sample %d: %v\n%s", i, err, doc)
			}
			if got.Device != device || got.Change != c {
				t.Fatalf("sample %d: got %+v, want device %q change %+v\n%s", i, got, device, c, doc)
			}
		}
	}
}

func TestChangeEventDocNil(t *testing.T) {
	for _, c := range []Change{
		{Kind: ChangeHoteling, Hoteling: Hoteling{GuestAddress: "x"}},
		{},
		{Kind: ChangeAgent, Agent: AgentState{State: "agentBusy"}},
	} {
		if doc := ChangeEventDoc("1001", c); doc != nil {
			t.Errorf("%+v: got %s, want nil", c, doc)
		}
	}
}

// Control characters and invalid UTF-8 cannot be carried by XML 1.0 at all;
// they become U+FFFD rather than a document phones refuse.
func TestChangeEventDocUnencodableText(t *testing.T) {
	doc := ChangeEventDoc("a\x00b\x1bc\xffd\ue000", Change{Kind: ChangeDoNotDisturb})
	got, err := decodeEventDoc(doc)
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	if want := "a\ufffdb\ufffdc\ufffdd\ue000"; got.Device != want {
		t.Fatalf("device %q, want %q", got.Device, want)
	}
}

// TestBodyDocsWellFormed runs xmllint over every document the encoders
// produce (CI fails without xmllint; elsewhere the test skips).
func TestBodyDocsWellFormed(t *testing.T) {
	docs := map[string][]byte{}
	for i, c := range changeSamples() {
		docs[fmt.Sprintf("change%02d.xml", i)] = ChangeEventDoc("dev<&>ü", c)
	}
	full := FeatureEventDocs("1001", FeatureState{
		DoNotDisturb: true,
		Forwarding:   []Forwarding{{Type: ForwardImmediate}, {Type: ForwardBusy, Active: true, Number: "1"}, {Type: ForwardNoAns, RingCount: 2}},
		Agent:        &AgentState{State: AgentNotReady, Reason: "&<>"},
	})
	for i, d := range full {
		docs[fmt.Sprintf("full%02d.xml", i)] = d
	}
	docs["hoteling_guest.xml"] = HotelingEventDoc(Hoteling{GuestAddress: "agent<1>@example.com", Expires: 3424 * 1e9}, "nonce&1")
	docs["hoteling_none.xml"] = HotelingEventDoc(Hoteling{}, "")
	xmlcheck.WellFormed(t, docs)
	// The parts of a multipart body are the same documents.
	_, body := Multipart(full, FeatureEventContentType)
	if len(body) == 0 {
		t.Fatal("empty multipart body")
	}
}

// The fixtures themselves: the good ones are well-formed for xmllint too
// (a check on the fixtures, not the code).
func TestSIPFixturesWellFormed(t *testing.T) {
	var files []string
	for _, prefix := range []string{"feature_set_", "hoteling_set_", "hoteling_event_", "event_", "pidf_cucm", "pidf_rfc", "pidf_imp", "pidf_both", "pidf_person", "pidf_closed"} {
		for name := range fixtures(t, prefix) {
			if name == "feature_set_agent_state_notready_undeclared_prefix.xml" {
				continue // well-formed XML 1.0, but a namespace error by design
			}
			files = append(files, filepath.Join(sipFixtureDir, name))
		}
	}
	xmlcheck.WellFormedFiles(t, files...)
}

func FuzzParseFeatureRequest(f *testing.F) {
	for _, b := range fixtures(f, "feature_") {
		f.Add(b)
	}
	for _, b := range fixtures(f, "event_") {
		f.Add(b)
	}
	f.Add([]byte(`<SetForwarding><forwardingType>forwardNoAns</forwardingType><activateForward>1</activateForward><ringCount>99</ringCount></SetForwarding>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseFeatureRequest(body)
		if err != nil {
			if !errors.Is(err, ErrBadBody) {
				t.Fatalf("error %v does not wrap ErrBadBody", err)
			}
			return
		}
		// What was accepted encodes to an event a phone reads back the same.
		var c Change
		switch req.Kind {
		case ChangeDoNotDisturb:
			c = Change{Kind: ChangeDoNotDisturb, DoNotDisturb: req.DoNotDisturb}
		case ChangeForwarding:
			c = Change{Kind: ChangeForwarding, Forwarding: req.Forwarding}
			if c.Forwarding.Type != ForwardNoAns {
				c.Forwarding.RingCount = 0 // only forwardNoAns carries it
			}
		case ChangeAgent:
			c = Change{Kind: ChangeAgent, Agent: AgentState{AgentID: req.AgentID, State: req.AgentState, Reason: req.Reason}}
		default:
			t.Fatalf("accepted with kind %d", req.Kind)
		}
		doc := ChangeEventDoc(req.Device, c)
		got, err := decodeEventDoc(doc)
		if err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		// Text parsed from XML is always text XML can carry, so all of it
		// must survive.
		if got.Device != req.Device || got.Change != c {
			t.Fatalf("round trip: got %+v %q, want %+v %q\n%s", got.Change, got.Device, c, req.Device, doc)
		}
	})
}

func BenchmarkChangeEventDoc(b *testing.B) {
	changes := []struct {
		name string
		c    Change
	}{
		{"DoNotDisturb", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true}},
		{"ForwardNoAns", Change{Kind: ChangeForwarding, Forwarding: Forwarding{Type: ForwardNoAns, Active: true, Number: "+4989123456", RingCount: 4}}},
		{"AgentNotReady", Change{Kind: ChangeAgent, Agent: AgentState{AgentID: "agent1001@example.com", State: AgentNotReady, Reason: "3"}}},
	}
	for _, tc := range changes {
		c := tc.c
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = ChangeEventDoc("1001", c)
			}
		})
	}
}

func BenchmarkFeatureEventDocsMultipart(b *testing.B) {
	st := FeatureState{
		DoNotDisturb: true,
		Forwarding:   []Forwarding{{Type: ForwardImmediate}, {Type: ForwardBusy, Active: true, Number: "2424"}, {Type: ForwardNoAns, RingCount: 3}},
		Agent:        &AgentState{AgentID: "agent1001", State: AgentReady},
	}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = Multipart(FeatureEventDocs("1001", st), FeatureEventContentType)
	}
}

func BenchmarkParseFeatureRequest(b *testing.B) {
	for _, name := range []string{"feature_set_dnd_bd5196.xml", "feature_set_agent_state_audiocodes.xml"} {
		body := readFixture(b, name)
		b.Run(strings.TrimSuffix(name, ".xml"), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := ParseFeatureRequest(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
