package xspsim

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestActionsRoundTrip proves each service's PUT is applied and visible in
// the GET body (namespace, element names, ISO-8859-1 charset).
func TestActionsRoundTrip(t *testing.T) {
	h := newHarness(t, baseConfig())
	tests := []struct {
		name, user, service, put string
		want                     map[string]string // path → text in GET body
	}{
		{"agent sign-in", "agent1@example.com", "CallCenter", "<agentACDState>Sign-In</agentACDState>",
			map[string]string{"agentACDState": "Available"}},
		{"agent unavailable with code", "agent1@example.com", "CallCenter", "<agentACDState>Unavailable</agentACDState><agentUnavailableCode>MEETING</agentUnavailableCode>",
			map[string]string{"agentACDState": "Unavailable", "agentUnavailableCode": "MEETING"}},
		{"agent unavailable default code", "agent2@example.com", "CallCenter", "<agentACDState>Unavailable</agentACDState>",
			map[string]string{"agentACDState": "Unavailable", "agentUnavailableCode": "LUNCH"}},
		{"agent wrap-up", "agent1@example.com", "callcenter", "<agentACDState>Wrap-Up</agentACDState>",
			map[string]string{"agentACDState": "Wrap-Up", "agentUnavailableCode": "<missing>"}},
		{"agent unjoin queue", "agent1@example.com", "CallCenter", "<callCenterList><callCenterDetails><serviceUserId>support@example.com</serviceUserId><available>false</available></callCenterDetails></callCenterList>",
			map[string]string{"callCenterList/callCenterDetails/serviceUserId": "sales@example.com", "callCenterList/callCenterDetails/available": "true"}},
		{"agent sign-out", "agent1@example.com", "CallCenter", "<agentACDState>Sign-Out</agentACDState>",
			map[string]string{"agentACDState": "Sign-Out"}},
		{"cfa on", "plain@example.com", "CallForwardingAlways", "<active>true</active><forwardToPhoneNumber>+12025550123</forwardToPhoneNumber><ringSplash>true</ringSplash>",
			map[string]string{"active": "true", "forwardToPhoneNumber": "+12025550123", "ringSplash": "true"}},
		{"cfa off keeps number", "plain@example.com", "callforwardingalways", "<active>false</active>",
			map[string]string{"active": "false", "forwardToPhoneNumber": "+12025550123"}},
		{"cfb on", "plain@example.com", "CallForwardingBusy", "<active>true</active><forwardToPhoneNumber>1020</forwardToPhoneNumber>",
			map[string]string{"active": "true", "forwardToPhoneNumber": "1020"}},
		{"cfna rings", "plain@example.com", "CallForwardingNoAnswer", "<active>true</active><forwardToPhoneNumber>1021</forwardToPhoneNumber><numberOfRings>5</numberOfRings>",
			map[string]string{"active": "true", "numberOfRings": "5"}},
		{"dnd on", "plain@example.com", "DoNotDisturb", "<active>true</active><ringSplash>false</ringSplash>",
			map[string]string{"active": "true", "ringSplash": "false"}},
		{"guest associate", "agent1@example.com", "HotelingGuest", "<active>true</active><enableAssociationLimit>true</enableAssociationLimit><associationLimitHours>12</associationLimitHours><hostUserId>desk1@example.com</hostUserId>",
			map[string]string{"active": "true", "hostUserId": "desk1@example.com", "hostLastName": "One", "hostEnforcesAssociationLimit": "true", "hostAssociationLimitHours": "24"}},
		{"host shows guest", "desk1@example.com", "HotelingHost", "<enforceAssociationLimit>true</enforceAssociationLimit>",
			map[string]string{"active": "true", "guestLastName": "Müller", "guestPhoneNumber": "2025550101", "accessLevel": "Group"}},
		{"guest nil ends", "agent1@example.com", "HotelingGuest", `<hostUserId xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>`,
			map[string]string{"active": "true", "hostUserId": "<missing>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.mustStatus(200, "PUT", actions(tc.user, tc.service), body(strings.Split(canonicalRoot(tc.service), "/")[0], tc.put))
			st, b, hdr := h.req("GET", actions(tc.user, tc.service), "")
			if st != 200 {
				t.Fatalf("GET: %d %s", st, b)
			}
			if !bytes.Contains(b, []byte(`encoding="ISO-8859-1"`)) || !strings.Contains(hdr.Get("Content-Type"), "ISO-8859-1") {
				t.Errorf("GET body not ISO-8859-1: %s / %s", hdr.Get("Content-Type"), b)
			}
			root := parse(t, b)
			if root.NamespaceURI() != NS {
				t.Errorf("namespace %q", root.NamespaceURI())
			}
			for p, want := range tc.want {
				if got := text(root, p); got != want {
					t.Errorf("%s = %q, want %q\n%s", p, got, want, b)
				}
			}
		})
	}
}

func canonicalRoot(service string) string {
	for _, r := range []string{"CallCenter", "CallForwardingAlways", "CallForwardingBusy", "CallForwardingNoAnswer", "DoNotDisturb", "HotelingGuest", "HotelingHost"} {
		if strings.EqualFold(r, service) {
			return r
		}
	}
	return service
}

// TestActionsErrors proves the status/ErrorInfo mapping for invalid input,
// unknown users and credentials.
func TestActionsErrors(t *testing.T) {
	cfg := baseConfig()
	cfg.ForceUnavailableCodes = true
	cfg.UnavailableCodes[0].Default = false
	h := newHarness(t, cfg)
	cc := actions("agent1@example.com", "CallCenter")
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown user GET", "GET", actions("nobody@example.com", "DoNotDisturb"), "", 404, "4008"},
		{"unknown user PUT", "PUT", actions("nobody@example.com", "DoNotDisturb"), body("DoNotDisturb", "<active>true</active>"), 404, "4008"},
		{"unknown service", "GET", actions("plain@example.com", "Nope"), "", 404, "4004"},
		{"malformed xml", "PUT", cc, "<CallCenter", 400, "4000"},
		{"wrong namespace", "PUT", cc, `<CallCenter xmlns="urn:other"><agentACDState>Available</agentACDState></CallCenter>`, 400, "4000"},
		{"wrong root", "PUT", cc, body("DoNotDisturb", "<active>true</active>"), 400, "4000"},
		{"element order", "PUT", cc, body("CallCenter", "<agentUnavailableCode>LUNCH</agentUnavailableCode><agentACDState>Unavailable</agentACDState>"), 400, "4000"},
		{"unknown element", "PUT", cc, body("CallCenter", "<agentState>Available</agentState>"), 400, "4000"},
		{"invalid state", "PUT", cc, body("CallCenter", "<agentACDState>Busy</agentACDState>"), 400, "4001"},
		{"inactive code", "PUT", cc, body("CallCenter", "<agentACDState>Unavailable</agentACDState><agentUnavailableCode>OLD</agentUnavailableCode>"), 400, "4001"},
		{"unknown code", "PUT", cc, body("CallCenter", "<agentACDState>Unavailable</agentACDState><agentUnavailableCode>NOPE</agentUnavailableCode>"), 400, "4001"},
		{"code without unavailable", "PUT", cc, body("CallCenter", "<agentACDState>Available</agentACDState><agentUnavailableCode>LUNCH</agentUnavailableCode>"), 400, "4001"},
		{"forced code missing", "PUT", cc, body("CallCenter", "<agentACDState>Unavailable</agentACDState>"), 400, "4001"},
		{"validateSignOut extra", "PUT", cc + "?validateSignOut=true", body("CallCenter", "<agentACDState>Available</agentACDState>"), 400, "4001"},
		{"not an agent", "GET", actions("plain@example.com", "CallCenter"), "", 400, "4410"},
		{"not a host", "GET", actions("plain@example.com", "HotelingHost"), "", 400, "4410"},
		{"bad boolean", "PUT", actions("plain@example.com", "DoNotDisturb"), body("DoNotDisturb", "<active>yes</active>"), 400, "4001"},
		{"cfa active without number", "PUT", actions("plain@example.com", "CallForwardingAlways"), body("CallForwardingAlways", "<active>true</active>"), 400, "4001"},
		{"cfna one ring", "PUT", actions("plain@example.com", "CallForwardingNoAnswer"), body("CallForwardingNoAnswer", "<numberOfRings>1</numberOfRings>"), 400, "4001"},
		{"guest limit hours", "PUT", actions("plain@example.com", "HotelingGuest"), body("HotelingGuest", "<associationLimitHours>1000</associationLimitHours>"), 400, "4001"},
		{"host access level", "PUT", actions("desk1@example.com", "HotelingHost"), body("HotelingHost", "<accessLevel>World</accessLevel>"), 400, "4001"},
		{"unknown group", "GET", ActionsPrefix + "/group/other/services/CallCenter/UnavailableCodes", "", 404, "4004"},
		{"unknown path", "GET", ActionsPrefix + "/system/foo", "", 404, "4004"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, b, _ := h.req(tc.method, tc.path, tc.body)
			if st != tc.status {
				t.Fatalf("status %d, want %d: %s", st, tc.status, b)
			}
			if got := errorCode(t, b); got != tc.code {
				t.Errorf("errorCode %s, want %s: %s", got, tc.code, b)
			}
		})
	}
	// State unchanged by the failed PUTs.
	snap, _ := h.s.Snapshot("agent1@example.com")
	if snap.AgentState != StateSignOut {
		t.Errorf("agent state %s after failed PUTs", snap.AgentState)
	}

	t.Run("credentials", func(t *testing.T) {
		for _, c := range []struct{ user, pass string }{{"", ""}, {testUser, "wrong"}, {"other@example.com", testPass}} {
			st, b, hdr := h.reqAuth("GET", actions("plain@example.com", "DoNotDisturb"), "", c.user, c.pass)
			if st != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") == "" {
				t.Errorf("%q/%q: status %d, WWW-Authenticate %q", c.user, c.pass, st, hdr.Get("WWW-Authenticate"))
			}
			if errorCode(t, b) != "4003" {
				t.Errorf("errorCode: %s", b)
			}
		}
	})
}

// TestHotelingRules proves the association rules: active free host only, one
// guest per host, the xsi:nil prefix trap, removeGuestAssociation, host
// deactivation, directory of available hosts, and the association limit.
func TestHotelingRules(t *testing.T) {
	cfg := baseConfig()
	cfg.HourUnit = 50 * time.Millisecond
	h := newHarness(t, cfg)
	guest := func(u, inner string) (int, []byte) {
		st, b, _ := h.req("PUT", actions(u, "HotelingGuest"), body("HotelingGuest", inner))
		return st, b
	}
	assoc := func(host string) string {
		return "<active>true</active><hostUserId>" + host + "</hostUserId>"
	}
	dir := h.hotelingHosts

	if got := dir("agent1@example.com"); got != "desk1@example.com,desk2@example.com" {
		t.Fatalf("directory %q", got)
	}
	steps := []struct {
		name   string
		user   string
		inner  string
		status int
		code   string
	}{
		{"host not a host", "agent1@example.com", assoc("plain@example.com"), 400, "4411"},
		{"unknown host", "agent1@example.com", assoc("ghost@example.com"), 400, "4411"},
		{"own host", "desk1@example.com", assoc("desk1@example.com"), 400, "4411"},
		{"guest inactive", "agent1@example.com", "<active>false</active><hostUserId>desk1@example.com</hostUserId>", 400, "4413"},
		{"empty hostUserId", "agent1@example.com", "<active>true</active><hostUserId/>", 400, "4001"},
		{"associate", "agent1@example.com", assoc("desk1@example.com"), 200, ""},
		{"host busy", "agent2@example.com", assoc("desk1@example.com"), 400, "4412"},
		{"nil trap: xsi bound to BroadSoft ns", "agent1@example.com", `<hostUserId xmlns:xsi="http://schema.broadsoft.com/xsi" xsi:nil="true"/>`, 400, "4000"},
		{"nil without prefix", "agent1@example.com", `<hostUserId nil="true"/>`, 400, "4000"},
	}
	for _, s := range steps {
		st, b := guest(s.user, s.inner)
		if st != s.status || (s.code != "" && errorCode(t, b) != s.code) {
			t.Fatalf("%s: status %d body %s, want %d/%s", s.name, st, b, s.status, s.code)
		}
	}
	if snap, _ := h.s.Snapshot("desk1@example.com"); snap.HostGuestID != "agent1@example.com" {
		t.Fatalf("host guest %q", snap.HostGuestID)
	}
	if got := dir("agent2@example.com"); got != "desk2@example.com" {
		t.Errorf("directory while desk1 busy: %q", got)
	}
	if got := dir("agent1@example.com"); got != "desk1@example.com,desk2@example.com" {
		t.Errorf("directory for desk1's own guest: %q", got)
	}
	// Moving to another host frees the first one.
	if st, b := guest("agent1@example.com", assoc("desk2@example.com")); st != 200 {
		t.Fatalf("move: %d %s", st, b)
	}
	if snap, _ := h.s.Snapshot("desk1@example.com"); snap.HostGuestID != "" {
		t.Errorf("desk1 still carries %q", snap.HostGuestID)
	}
	// Host removes the guest.
	h.mustStatus(200, "PUT", actions("desk2@example.com", "HotelingHost"), body("HotelingHost", "<removeGuestAssociation>true</removeGuestAssociation>"))
	if snap, _ := h.s.Snapshot("agent1@example.com"); snap.GuestHostID != "" {
		t.Errorf("guest still associated with %q", snap.GuestHostID)
	}
	// Deactivated host: no association possible, and deactivation ends one.
	if st, _ := guest("agent2@example.com", assoc("desk2@example.com")); st != 200 {
		t.Fatal("associate agent2")
	}
	h.mustStatus(200, "PUT", actions("desk2@example.com", "HotelingHost"), body("HotelingHost", "<active>false</active>"))
	if snap, _ := h.s.Snapshot("agent2@example.com"); snap.GuestHostID != "" {
		t.Errorf("deactivated host kept guest")
	}
	if st, b := guest("agent2@example.com", assoc("desk2@example.com")); st != 400 || errorCode(t, b) != "4411" {
		t.Errorf("inactive host: %d %s", st, b)
	}
	// Association limit: guest limit 1 "hour" (50ms) ends the association.
	if st, b := guest("agent2@example.com", "<active>true</active><enableAssociationLimit>true</enableAssociationLimit><associationLimitHours>1</associationLimitHours><hostUserId>desk1@example.com</hostUserId>"); st != 200 {
		t.Fatalf("limit assoc: %d %s", st, b)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		snap, _ := h.s.Snapshot("agent2@example.com")
		if snap.GuestHostID == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("association limit did not end the association")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUnavailableCodes proves the group unavailable-code listing.
func TestUnavailableCodes(t *testing.T) {
	h := newHarness(t, baseConfig())
	b := h.mustStatus(200, "GET", ActionsPrefix+"/group/grp1/services/CallCenter/UnavailableCodes?enterpriseId=ent1", "")
	r := parse(t, b)
	if text(r, "enableAgentUnavailableCodes") != "true" {
		t.Errorf("%s", b)
	}
	ds := r.FindElements("./unavailableCodes/unavailableCodeDetail")
	if len(ds) != 3 || text(ds[0], "code") != "LUNCH" || ds[0].SelectAttrValue("isDefault", "") != "true" || text(ds[2], "active") != "false" {
		t.Errorf("codes: %s", b)
	}
}

// TestUTF8Charset proves ActionsCharset UTF-8 switches the Actions encoding.
func TestUTF8Charset(t *testing.T) {
	cfg := baseConfig()
	cfg.ActionsCharset = "UTF-8"
	h := newHarness(t, cfg)
	h.mustStatus(200, "PUT", actions("agent1@example.com", "HotelingGuest"), body("HotelingGuest", "<active>true</active><hostUserId>desk1@example.com</hostUserId>"))
	b := h.mustStatus(200, "GET", actions("desk1@example.com", "HotelingHost"), "")
	if !bytes.Contains(b, []byte(`encoding="UTF-8"`)) || !bytes.Contains(b, []byte("Müller")) {
		t.Errorf("%s", b)
	}
}
