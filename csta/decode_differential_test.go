package csta

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// sameDecode fails t when Decode and the etree oracle disagree on doc: the
// same message, edition and, for a refusal, the same root and answer. The
// reasons may be worded differently (the scanner's syntax errors are not
// encoding/xml's).
func sameDecode(t *testing.T, doc []byte, maxDepth int) {
	t.Helper()
	got, gotErr := Decode(doc, maxDepth)
	want, wantErr := oracleDecode(doc, maxDepth)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("depth %d %q:\nDecode: %#v %v\noracle: %#v %v", maxDepth, doc, got, gotErr, want, wantErr)
	}
	if gotErr != nil {
		var g, w *DecodeError
		if !errors.As(gotErr, &g) || !errors.As(wantErr, &w) {
			t.Fatalf("errors %T %T", gotErr, wantErr)
		}
		if g.Root != w.Root || !reflect.DeepEqual(g.Answer, w.Answer) || g.Edition != w.Edition || g.EditionKnown != w.EditionKnown {
			t.Fatalf("depth %d %q:\nDecode: %#v\noracle: %#v", maxDepth, doc, g, w)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("depth %d %q:\nDecode: %#v\noracle: %#v", maxDepth, doc, got, want)
	}
}

// oracleSeeds are documents aimed at the corners the one-pass decoder must
// get as the DOM decoder got them.
var oracleSeeds = []string{
	// text: entities, CDATA, comments and PIs inside, text after a child
	`<SetAgentState><device>a<!--c-->b<![CDATA[c]]>&amp;d</device><requestedAgentState>ready</requestedAgentState></SetAgentState>`,
	`<SetAgentState><device>a<?pi x?>b</device><requestedAgentState>ready</requestedAgentState></SetAgentState>`,
	`<SetAgentState><device>a<x/>b</device><requestedAgentState> ready </requestedAgentState></SetAgentState>`,
	`<SetAgentState><device>a<!DOCTYPE x>b</device><requestedAgentState>ready</requestedAgentState></SetAgentState>`,
	`<SetAgentState><device></device><device>b</device><requestedAgentState>ready</requestedAgentState></SetAgentState>`,
	"<SetAgentState><device>\r\n4711\r</device><requestedAgentState>ready</requestedAgentState></SetAgentState>",
	// the reason code: namespaces and the search order below extensions
	`<SetAgentState xmlns="urn:x"><device>1</device><requestedAgentState>notReady</requestedAgentState><extensions><a><AgentNotReadyReasonValue>1</AgentNotReadyReasonValue></a><b><c><AgentNotReadyReasonValue>2</AgentNotReadyReasonValue></c><AgentNotReadyReasonValue>3</AgentNotReadyReasonValue></b></extensions></SetAgentState>`,
	`<SetAgentState><device>1</device><requestedAgentState>notReady</requestedAgentState><extensions><a><b><AgentNotReadyReasonValue>1</AgentNotReadyReasonValue></b></a><a><AgentNotReadyReasonValue>2</AgentNotReadyReasonValue></a></extensions><extensions><AgentNotReadyReasonValue>3</AgentNotReadyReasonValue></extensions></SetAgentState>`,
	`<SetAgentState><device>1</device><requestedAgentState>notReady</requestedAgentState><extensions><p:AgentNotReadyReasonValue xmlns:p="urn:other">1</p:AgentNotReadyReasonValue><AgentNotReadyReasonValue>2</AgentNotReadyReasonValue></extensions></SetAgentState>`,
	`<SetAgentState><device>1</device><requestedAgentState>notReady</requestedAgentState><extensions><q:AgentNotReadyReasonValue>1<AgentNotReadyReasonValue>2</AgentNotReadyReasonValue></q:AgentNotReadyReasonValue></extensions></SetAgentState>`,
	// credentials
	`<StartApplicationSession xmlns="` + NSAppSession + `"><applicationInfo><applicationID>a</applicationID><applicationSpecificInfo><x/><SessionLoginInfo><userName>u</userName><password>p</password></SessionLoginInfo><y><user>v</user></y></applicationSpecificInfo></applicationInfo><requestedProtocolVersions><protocolVersion> v1 </protocolVersion><p:protocolVersion/><protocolVersion>v2</protocolVersion></requestedProtocolVersions><requestedSessionDuration>60</requestedSessionDuration></StartApplicationSession>`,
	`<StartApplicationSession><applicationInfo><applicationSpecificInfo><password>p</password><x><user>u</user></x></applicationSpecificInfo></applicationInfo><applicationInfo><applicationID>b</applicationID></applicationInfo></StartApplicationSession>`,
	`<StartApplicationSession><applicationInfo/><requestedSessionDuration>x</requestedSessionDuration></StartApplicationSession>`,
	// monitoring: lenient deviceObject, filters, Avaya's invertFilter
	`<MonitorStart><deviceObject>1</deviceObject><requestedMonitorFilter><callcontrol><delivered>true</delivered><bogus>x</bogus></callcontrol></requestedMonitorFilter><extensions><privateData><invertFilter>true</invertFilter></privateData></extensions></MonitorStart>`,
	`<MonitorStart><monitorObject><deviceObject>1</deviceObject></monitorObject><callObject/><requestedMonitorFilter><agentState><agentReady> 1 </agentReady></agentState><callcontrol/></requestedMonitorFilter></MonitorStart>`,
	`<MonitorStart><monitorObject><deviceObject>1</deviceObject><callObject/></monitorObject></MonitorStart>`,
	`<MonitorStart><monitorObject><deviceObject>1</deviceObject></monitorObject><monitorType>call</monitorType></MonitorStart>`,
	// structure: two roots, text around, depth, declarations
	`<GetForwarding><device>1</device></GetForwarding><GetForwarding/>`,
	` x <GetForwarding><device>1</device></GetForwarding> y `,
	`<?xml version="1.0" encoding="ISO-8859-1"?><GetForwarding><device>` + "\xe9" + `</device></GetForwarding>`,
	` <?xml version="1.0" encoding="ISO-8859-1"?><GetForwarding><device>` + "\xe9" + `</device></GetForwarding>`,
	`<GetForwarding><?xml version="1.0" encoding="latin1"?><device>` + "\xe9" + `</device></GetForwarding>`,
	`<?xml version="1.0" encoding="us-ascii"?><GetForwarding><device>1</device></GetForwarding>`,
	`<?xml version="1.0" encoding="UTF-16"?><GetForwarding><device>1</device></GetForwarding>`,
	`<?xml version="1.1"?><GetForwarding><device>1</device></GetForwarding>`,
	`<a><b><c><d><e/></d></c></b></a>`,
	`<StartApplicationSession><a><b><c/></b></a></StartApplicationSession>`,
	`<x:SetDoNotDisturb xmlns:x="` + nsEdPrefix + `5"><x:device>1</x:device><doNotDisturbOn>1</doNotDisturbOn></x:SetDoNotDisturb>`,
	`<SetForwarding><device>1</device><forwardingType>forwardImmediate</forwardingType><activateForward>true</activateForward><ringCount>99</ringCount></SetForwarding>`,
	`<FooResponse/>`, `<CSTAErrorCode/>`, ``, ` `, `<a>`, `<a></b>`,
}

func TestDecodeAgainstOracle(t *testing.T) {
	for _, doc := range oracleSeeds {
		for _, depth := range []int{0, 3, 4} {
			sameDecode(t, []byte(doc), depth)
		}
	}
	for _, tc := range codecDecodeCases {
		sameDecode(t, []byte(tc.doc), 0)
	}
	for _, tc := range codecDecodeErrorCases {
		sameDecode(t, []byte(tc.doc), tc.maxDepth)
	}
}

func FuzzDecodeAgainstOracle(f *testing.F) {
	for _, doc := range fuzzFixtureDocs(f) {
		f.Add(doc, uint8(0))
		f.Add(doc, uint8(3))
	}
	for _, doc := range oracleSeeds {
		f.Add([]byte(doc), uint8(4))
	}
	for _, tc := range codecDecodeCases {
		f.Add([]byte(tc.doc), uint8(0))
	}
	for _, tc := range codecDecodeErrorCases {
		f.Add([]byte(tc.doc), uint8(tc.maxDepth))
	}
	f.Add([]byte("\xef\xbb\xbf<SystemStatus><systemStatus>normal</systemStatus></SystemStatus>"), uint8(0))
	f.Add(setAgentState600, uint8(32))
	f.Add([]byte(codecDoc("", "Foo", codecNest(40))), uint8(32))
	f.Fuzz(func(t *testing.T, doc []byte, depth uint8) {
		if strings.Count(string(doc), "<") > 2000 {
			return // the oracle's DOM would dominate the run
		}
		sameDecode(t, doc, int(depth%40))
	})
}

// TestDecodeCopiesWhatItKeeps holds Decode to owning its result: the reader
// and its buffers go back to a pool and the frame buffer is reused, so a
// message must not point into either.
func TestDecodeCopiesWhatItKeeps(t *testing.T) {
	docs := append([]string{string(setAgentState600)}, oracleSeeds...)
	for _, doc := range docs {
		buf := []byte(doc)
		got, gotErr := Decode(buf, 0)
		for i := range buf {
			buf[i] = 'x'
		}
		Decode([]byte(oracleSeeds[0]), 0) // reuses the pooled reader
		want, wantErr := Decode([]byte(doc), 0)
		if !reflect.DeepEqual(got, want) || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%q: decoded %#v, after the buffer changed it reads %#v", doc, got, want)
		}
	}
}

// TestDecodeConcurrently runs Decode from several goroutines over pooled
// readers; run with -race.
func TestDecodeConcurrently(t *testing.T) {
	docs := append([]string{string(setAgentState600)}, oracleSeeds...)
	want := make([]Decoded, len(docs))
	for i, doc := range docs {
		want[i], _ = oracleDecode([]byte(doc), 0)
	}
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range docs {
				j := (i + g) % len(docs)
				if got, _ := Decode([]byte(docs[j]), 0); !reflect.DeepEqual(got, want[j]) {
					t.Errorf("%q: %#v, want %#v", docs[j], got, want[j])
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}
