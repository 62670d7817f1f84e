package phonesync

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParsePIDFFixtures(t *testing.T) {
	tests := []fixtureCase[Presence]{
		{file: "pidf_cucm7_on_the_phone.xml", want: Presence{Entity: "sip:8001@192.168.13.198", Open: true, Activities: []string{"on-the-phone"}}},
		{file: "pidf_cucm7_idle.xml", want: Presence{Entity: "sip:8001@192.168.13.198", Open: true}},
		{file: "pidf_imp_busy_closed.xml", want: Presence{Entity: "sip:1001@cucm.example.com", Activities: []string{"busy"}}},
		{file: "pidf_rfc4480_away_note.xml", want: Presence{Entity: "pres:2002@pbx.example.com", Open: true, Activities: []string{"away", "meeting"}, Note: "Back at 14:00"}},
		// First tuple decides; the old and the RFC namespace both count; "unknown" is no activity.
		{file: "pidf_both_namespaces.xml", want: Presence{Entity: "sip:3003@pbx", Open: true, Activities: []string{"on-the-phone", "busy"}}},
		{file: "pidf_person_only_open.xml", want: Presence{Entity: "sip:4004@pbx", Open: true}},
		{file: "pidf_closed_offline.xml", want: Presence{Entity: "sip:8001@192.168.13.198"}},
		{file: "pidf_bad_basic.xml", wantErr: `basic status "busy"`},
		{file: "pidf_bad_no_basic.xml", wantErr: "without a basic status"},
		{file: "pidf_bad_truncated.xml", wantErr: "unexpected EOF"},
		{file: "pidf_bad_root.xml", wantErr: `"dialog-info" is not presence`},
	}
	runFixtures(t, "pidf_", tests, ParsePIDF, func(t *testing.T, got, want Presence) {
		t.Helper()
		if got.Entity != want.Entity || got.Open != want.Open || got.Note != want.Note || !slices.Equal(got.Activities, want.Activities) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
	})
}

func TestParsePIDFLimits(t *testing.T) {
	big := `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:1@x"><tuple id="a"><status><basic>open</basic></status><note>` +
		strings.Repeat("x", maxParsedBodyBytes) + `</note></tuple></presence>`
	deep := `<presence><tuple><status><basic>open</basic></status>` + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + `</tuple></presence>`
	for name, body := range map[string]string{"too big": big, "too deep": deep, "empty": ""} {
		if _, err := ParsePIDF([]byte(body)); !errors.Is(err, ErrBadBody) {
			t.Errorf("%s: err = %v, want ErrBadBody", name, err)
		}
	}
}

func FuzzParsePIDF(f *testing.F) {
	for _, b := range fixtures(f, "pidf_") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParsePIDF(body)
		if err != nil {
			if !errors.Is(err, ErrBadBody) {
				t.Fatalf("error %v does not wrap ErrBadBody", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, a := range p.Activities {
			if a == "" || a == "unknown" || seen[a] {
				t.Fatalf("activities %q", p.Activities)
			}
			seen[a] = true
		}
		// Whatever was accepted maps to a state the Service knows.
		switch st, reason := presenceAgentState(p); st {
		case AgentLoggedOff, AgentReady:
			if reason != "" {
				t.Fatalf("%s with reason %q", st, reason)
			}
		case AgentNotReady:
			if reason == "" {
				t.Fatal("notReady without a reason")
			}
		default:
			t.Fatalf("state %q", st)
		}
	})
}
