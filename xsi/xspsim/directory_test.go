package xspsim

import (
	"context"
	"strings"
	"testing"
	"time"
)

// dirConfig: two groups of ent1 (grp1, the default, and grp2) and a group
// grp1 of ent2 (group IDs are unique within an enterprise only).
func dirConfig() Config {
	cfg := baseConfig()
	cfg.Users = append(cfg.Users,
		User{ID: "g2a@example.com", FirstName: "Gina", LastName: "Two", GroupID: "grp2", CallCenter: true},
		User{ID: "g2desk@example.com", GroupID: "grp2", HotelingHost: true},
		User{ID: "e2a@example.org", FirstName: "Eve", LastName: "Other", EnterpriseID: "ent2", GroupID: "grp1", CallCenter: true},
		User{ID: "e2b@example.org", EnterpriseID: "ent2", GroupID: "grpB"},
	)
	return cfg
}

func subBody(inner string) string {
	return body("Subscription", inner+"<channelSetId>set-d</channelSetId><applicationId>csta-gw</applicationId>")
}

// TestGroupAndEnterpriseMembers proves a group subscription delivers the
// events of every user of its group, and only those; an enterprise one
// every user of the enterprise; one eventPackageList subscription every
// listed package; and neither gets initial events.
func TestGroupAndEnterpriseMembers(t *testing.T) {
	h := newHarness(t, dirConfig())
	ch := h.openChannel("set-d", "csta-gw")
	grp := h.subscribe("enterprise/ent1/group/grp1", "set-d", PkgDoNotDisturb, PkgCallForwardingAlways, PkgCallCenterAgent)
	ent := h.subscribe("serviceprovider/ent1", "set-d", PkgDoNotDisturb)
	ent2 := h.subscribe("enterprise/ent2/group/grp1", "set-d", PkgDoNotDisturb)

	// want is one event: its subscription, target and kind.
	type want struct{ sub, target, kind string }
	expect := func(ws ...want) {
		t.Helper()
		for _, w := range ws {
			d := ch.next("SubscriptionEvent:" + w.kind)
			if got := text(d.root, "subscriptionId"); got != w.sub {
				t.Errorf("%s of %s: subscription %s, want %s", w.kind, w.target, got, w.sub)
			}
			if got := text(d.root, "targetId"); got != w.target {
				t.Errorf("%s: targetId %s, want %s", w.kind, got, w.target)
			}
			ch.ack(d)
		}
	}
	// Both wide subscriptions see a DND change of a grp1 user, in
	// subscription ID order; no initial event came before (the stream is
	// ordered, so the first document is the change).
	h.mustStatus(200, "PUT", actions("plain@example.com", "DoNotDisturb"), body("DoNotDisturb", "<active>true</active>"))
	first, second := grp, ent
	if ent < grp {
		first, second = ent, grp
	}
	expect(want{first, "plain@example.com", "DoNotDisturbEvent"}, want{second, "plain@example.com", "DoNotDisturbEvent"})

	// Another package of the list: the group subscription only.
	h.mustStatus(200, "PUT", actions("desk2@example.com", "CallForwardingAlways"),
		body("CallForwardingAlways", "<active>true</active><forwardToPhoneNumber>4001</forwardToPhoneNumber>"))
	expect(want{grp, "desk2@example.com", "CallForwardingAlwaysEvent"})
	if err := h.s.PortalSetAgentState("agent2@example.com", StateAvailable, ""); err != nil {
		t.Fatal(err)
	}
	expect(want{grp, "agent2@example.com", "AgentStateEvent"})

	// grp2 of ent1: the enterprise subscription only; ent2's grp1: its own.
	h.mustStatus(200, "PUT", actions("g2a@example.com", "DoNotDisturb"), body("DoNotDisturb", "<active>true</active>"))
	expect(want{ent, "g2a@example.com", "DoNotDisturbEvent"})
	h.mustStatus(200, "PUT", actions("e2a@example.org", "DoNotDisturb"), body("DoNotDisturb", "<active>true</active>"))
	expect(want{ent2, "e2a@example.org", "DoNotDisturbEvent"})
	// ent2's grpB: nobody's (the next event proves nothing came before it).
	h.mustStatus(200, "PUT", actions("e2b@example.org", "DoNotDisturb"), body("DoNotDisturb", "<active>true</active>"))
	h.mustStatus(200, "PUT", actions("plain@example.com", "CallForwardingAlways"),
		body("CallForwardingAlways", "<active>true</active><forwardToPhoneNumber>4002</forwardToPhoneNumber>"))
	expect(want{grp, "plain@example.com", "CallForwardingAlwaysEvent"})

	// Unknown group or enterprise: 404 ErrorInfo.
	for _, path := range []string{"enterprise/ent1/group/nope", "enterprise/ent2/group/grp2", "serviceprovider/ent3/group/grp1", "enterprise/ent3"} {
		b := h.mustStatus(404, "POST", EventsPrefix+"/"+path, subBody("<event>Do Not Disturb</event>"))
		if errorCode(t, b) != "4004" {
			t.Errorf("%s: %s", path, b)
		}
	}
	// The group subscription is listed with its package list and parent.
	b := h.mustStatus(200, "GET", EventsPrefix+"/subscription/"+grp, "")
	r := parse(t, b)
	if text(r, "targetIdType") != "Group" || text(r, "targetGrpParentId") != "ent1" || text(r, "targetId") != "grp1" ||
		len(r.FindElements("eventPackageList/event")) != 3 {
		t.Errorf("group subscription: %s", b)
	}
}

// TestPackageListTargets proves a user-target eventPackageList subscription
// gets one initial event per package, and that RejectPackageLists answers
// 400 to any list (a pre-R23 XSP) while single-event subscriptions work.
func TestPackageListTargets(t *testing.T) {
	h := newHarness(t, dirConfig())
	ch := h.openChannel("set-d", "csta-gw")
	h.subscribe("user/g2a@example.com", "set-d", PkgCallCenterAgent, PkgDoNotDisturb, PkgHotelingGuest)
	for _, kind := range []string{"AgentSubscriptionEvent", "DoNotDisturbEvent", "HotelingGuestEvent"} {
		ch.ack(ch.next("SubscriptionEvent:" + kind))
	}

	cfg := dirConfig()
	cfg.RejectPackageLists = true
	old := newHarness(t, cfg)
	list := "<eventPackageList><event>Do Not Disturb</event><event>Hoteling Guest</event></eventPackageList>"
	for _, path := range []string{"user/plain@example.com", "enterprise/ent1/group/grp1", "enterprise/ent1"} {
		st, b, _ := old.req("POST", EventsPrefix+"/"+path, subBody(list))
		if st != 400 || !strings.Contains(string(b), "eventPackageList") {
			t.Errorf("%s with a list: %d %s, want 400 naming eventPackageList", path, st, b)
		}
		old.mustStatus(200, "POST", EventsPrefix+"/"+path, subBody("<event>Do Not Disturb</event>"))
	}
}

// TestAdminEnterprises proves a credential limited to some enterprises gets
// 403 for anything of another: subscriptions to it, its groups and users,
// and Actions on its users; its own enterprise works.
func TestAdminEnterprises(t *testing.T) {
	cfg := dirConfig()
	cfg.AdminEnterprises = []string{"ent1"}
	h := newHarness(t, cfg)
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", EventsPrefix + "/enterprise/ent2", subBody("<event>Do Not Disturb</event>"), 403},
		{"POST", EventsPrefix + "/serviceprovider/ent2/group/grp1", subBody("<event>Do Not Disturb</event>"), 403},
		{"POST", EventsPrefix + "/enterprise/unknown", subBody("<event>Do Not Disturb</event>"), 403},
		{"POST", EventsPrefix + "/user/e2a@example.org", subBody("<event>Do Not Disturb</event>"), 403},
		{"GET", actions("e2a@example.org", "DoNotDisturb"), "", 403},
		{"PUT", actions("e2a@example.org", "DoNotDisturb"), body("DoNotDisturb", "<active>true</active>"), 403},
		{"GET", ActionsPrefix + "/user/e2a@example.org/profile", "", 403},
		{"GET", ActionsPrefix + "/user/e2a@example.org/directories/HotelingHosts", "", 403},
		{"GET", ActionsPrefix + "/group/grpB/services/CallCenter/UnavailableCodes", "", 403},
		{"GET", ActionsPrefix + "/group/grp1/services/CallCenter/UnavailableCodes?enterpriseId=ent2", "", 403},
		{"GET", actions("nobody@example.org", "DoNotDisturb"), "", 404},
		{"POST", EventsPrefix + "/enterprise/ent1/group/grp2", subBody("<event>Do Not Disturb</event>"), 200},
		{"POST", EventsPrefix + "/enterprise/ent1", subBody("<event>Do Not Disturb</event>"), 200},
		{"GET", ActionsPrefix + "/group/grp1/services/CallCenter/UnavailableCodes", "", 200},
		{"GET", actions("g2a@example.com", "DoNotDisturb"), "", 200},
	} {
		st, b, _ := h.req(tc.method, tc.path, tc.body)
		if st != tc.status {
			t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.path, st, tc.status, b)
			continue
		}
		if st == 403 && errorCode(t, b) != "4030" {
			t.Errorf("%s %s: %s", tc.method, tc.path, b)
		}
	}
	if snap, _ := h.s.Snapshot("e2a@example.org"); snap.DND {
		t.Error("the refused PUT changed DND")
	}
}

// TestHostAccessLevel proves a host with access level Group serves guests
// of its group only, and with Enterprise those of its enterprise.
func TestHostAccessLevel(t *testing.T) {
	h := newHarness(t, dirConfig())
	hosts := h.hotelingHosts
	if got := hosts("g2a@example.com"); got != "g2desk@example.com" {
		t.Errorf("hosts of a grp2 guest: %q", got)
	}
	if got := hosts("plain@example.com"); got != "desk1@example.com,desk2@example.com" {
		t.Errorf("hosts of a grp1 guest: %q", got)
	}
	assoc := body("HotelingGuest", "<active>true</active><hostUserId>g2desk@example.com</hostUserId>")
	if b := h.mustStatus(400, "PUT", actions("plain@example.com", "HotelingGuest"), assoc); errorCode(t, b) != "4411" {
		t.Errorf("Group host, guest of another group: %s", b)
	}
	h.mustStatus(200, "PUT", actions("g2desk@example.com", "HotelingHost"), body("HotelingHost", "<accessLevel>Enterprise</accessLevel>"))
	h.mustStatus(200, "PUT", actions("plain@example.com", "HotelingGuest"), assoc)
	if h.mustStatus(400, "PUT", actions("e2b@example.org", "HotelingGuest"),
		body("HotelingGuest", "<active>true</active><hostUserId>desk1@example.com</hostUserId>")) == nil {
		t.Error("a guest of another enterprise was associated")
	}
}

// TestInitialACDState proves User.ACDState seeds the agent state: GET and
// the initial AgentSubscriptionEvent show it, Unavailable with the group's
// default code; and that a bad seed fails Start with the user named.
func TestInitialACDState(t *testing.T) {
	cfg := baseConfig()
	cfg.Users = append(cfg.Users,
		User{ID: "on@example.com", CallCenter: true, ACDState: StateAvailable},
		User{ID: "signin@example.com", CallCenter: true, ACDState: StateSignIn},
		User{ID: "away@example.com", CallCenter: true, ACDState: StateUnavailable},
		User{ID: "wrap@example.com", CallCenter: true, ACDState: StateWrapUp},
	)
	h := newHarness(t, cfg)
	for user, want := range map[string][2]string{
		"on@example.com": {"Available", "<missing>"}, "signin@example.com": {"Available", "<missing>"},
		"away@example.com": {"Unavailable", "LUNCH"}, "wrap@example.com": {"Wrap-Up", "<missing>"},
		"agent2@example.com": {"Sign-Out", "<missing>"},
	} {
		r := parse(t, h.mustStatus(200, "GET", actions(user, "CallCenter"), ""))
		if got := [2]string{text(r, "agentACDState"), text(r, "agentUnavailableCode")}; got != want {
			t.Errorf("%s: %v, want %v", user, got, want)
		}
	}
	ch := h.openChannel("set-a", "csta-gw")
	h.subscribe("user/on@example.com", "set-a", PkgCallCenterAgent)
	d := ch.next("SubscriptionEvent:AgentSubscriptionEvent")
	if text(d.root, "eventData/stateInfo/state") != "Available" || text(d.root, "eventData/stateInfo/signInTimestamp") == "<missing>" {
		t.Errorf("initial event of a signed-in agent: %s", d.raw)
	}
	ch.ack(d)

	for _, tc := range []struct {
		user User
		want string
	}{
		{User{ID: "x@example.com", ACDState: StateAvailable}, `user x@example.com: ACDState "Available" without the Call Center agent service`},
		{User{ID: "x@example.com", CallCenter: true, ACDState: "Ready"}, `user x@example.com: ACDState "Ready" is not one of`},
		{User{ID: "plain@example.com"}, "user plain@example.com exists already"},
		{User{ID: "x@example.com", Extension: "1"}, `Extension "1" must be 2 to 20 characters`},
		{User{ID: "bad/id@example.com"}, `user ID "bad/id@example.com"`},
	} {
		cfg := baseConfig()
		cfg.Users = append(cfg.Users, tc.user)
		s := New(cfg, nil)
		err := s.Start()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("seed %+v: Start %v, want an error containing %q", tc.user, err, tc.want)
		}
		shutdown(t, s)
	}
}

// TestAddUsers proves users added while running are served at once and
// their events reach the subscriptions to their group and enterprise
// (existing ones, and a new group's once it exists), and that a batch
// with an existing or repeated ID is refused whole, naming it.
func TestAddUsers(t *testing.T) {
	h := newHarness(t, baseConfig())
	ch := h.openChannel("set-n", "csta-gw")
	grp := h.subscribe("enterprise/ent1/group/grp1", "set-n", PkgDoNotDisturb, PkgCallCenterAgent)
	h.mustStatus(404, "GET", actions("new1@example.com", "DoNotDisturb"), "")
	h.mustStatus(404, "POST", EventsPrefix+"/enterprise/ent1/group/grp9", subBody("<event>Do Not Disturb</event>"))

	for _, tc := range []struct {
		batch []User
		want  string
	}{
		{[]User{{ID: "new1@example.com"}, {ID: "agent1@example.com"}}, "user agent1@example.com exists already"},
		{[]User{{ID: "new1@example.com"}, {ID: "new1@example.com"}}, "user new1@example.com exists already"},
		{[]User{{ID: "new1@example.com", ACDState: StateAvailable}}, "without the Call Center agent service"},
	} {
		if err := h.s.AddUsers(tc.batch...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddUsers(%v): %v, want %q", tc.batch, err, tc.want)
		}
	}
	if h.s.HasUser("new1@example.com") {
		t.Fatal("a refused batch added a user")
	}
	n := h.s.UserCount()
	if err := h.s.AddUsers(
		User{ID: "new1@example.com", FirstName: "New", LastName: "One", CallCenter: true, ACDState: StateAvailable, Extension: "4101"},
		User{ID: "new2@example.com", GroupID: "grp9"},
	); err != nil {
		t.Fatal(err)
	}
	if got := h.s.UserCount(); got != n+2 {
		t.Errorf("UserCount %d, want %d", got, n+2)
	}
	r := parse(t, h.mustStatus(200, "GET", actions("new1@example.com", "CallCenter"), ""))
	if text(r, "agentACDState") != "Available" {
		t.Errorf("added agent: %s", text(r, "agentACDState"))
	}
	h.mustStatus(200, "PUT", actions("new1@example.com", "DoNotDisturb"), body("DoNotDisturb", "<active>true</active>"))
	d := ch.next("SubscriptionEvent:DoNotDisturbEvent")
	if text(d.root, "targetId") != "new1@example.com" || text(d.root, "subscriptionId") != grp {
		t.Errorf("event of an added user: %s", d.raw)
	}
	ch.ack(d)
	// The added user's new group exists now.
	grp9 := h.subscribe("enterprise/ent1/group/grp9", "set-n", PkgDoNotDisturb)
	h.mustStatus(200, "PUT", actions("new2@example.com", "DoNotDisturb"), body("DoNotDisturb", "<active>true</active>"))
	d = ch.next("SubscriptionEvent:DoNotDisturbEvent")
	if text(d.root, "targetId") != "new2@example.com" || text(d.root, "subscriptionId") != grp9 {
		t.Errorf("event of an added user in a new group: %s", d.raw)
	}
	ch.ack(d)
}

// TestProfile proves GET .../profile: the details of the user (XSD-valid:
// the harness validates every emitted document), 404 for an unknown user.
func TestProfile(t *testing.T) {
	h := newHarness(t, dirConfig())
	r := parse(t, h.mustStatus(200, "GET", ActionsPrefix+"/user/agent1@example.com/profile", ""))
	for path, want := range map[string]string{
		"details/userId": "agent1@example.com", "details/firstName": "Anna", "details/lastName": "Müller",
		"details/groupId": "grp1", "details/serviceProvider": "ent1", "details/number": "2025550101",
		"details/extension": "0101",
	} {
		if got := text(r, path); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	if r.FindElement("additionalDetails") == nil {
		t.Error("no additionalDetails (required by the XSD)")
	}
	r = parse(t, h.mustStatus(200, "GET", ActionsPrefix+"/user/e2b@example.org/profile", ""))
	if text(r, "details/groupId") != "grpB" || text(r, "details/serviceProvider") != "ent2" ||
		text(r, "details/firstName") != "<missing>" || text(r, "details/number") != "<missing>" {
		t.Errorf("profile without names and number: %s", text(r, "details"))
	}
	if b := h.mustStatus(404, "GET", ActionsPrefix+"/user/ghost@example.com/profile", ""); errorCode(t, b) != "4008" {
		t.Errorf("unknown user: %s", b)
	}
}

// TestServiceNotAssigned proves what BroadWorks answers for a service the
// user does not have: 400 with ErrorInfo errorCode 4410 (the OCI error
// "Service is not assigned to this subscriber"), for GET and PUT alike.
func TestServiceNotAssigned(t *testing.T) {
	h := newHarness(t, baseConfig())
	for _, tc := range []struct{ method, user, service, body string }{
		{"GET", "plain@example.com", "CallCenter", ""},
		{"PUT", "plain@example.com", "CallCenter", body("CallCenter", "<agentACDState>Available</agentACDState>")},
		{"GET", "agent1@example.com", "HotelingHost", ""},
		{"PUT", "agent1@example.com", "HotelingHost", body("HotelingHost", "<active>true</active>")},
	} {
		b := h.mustStatus(400, tc.method, actions(tc.user, tc.service), tc.body)
		if errorCode(t, b) != "4410" || !strings.Contains(string(b), "Service is not assigned to this subscriber") {
			t.Errorf("%s %s of %s: %s", tc.method, tc.service, tc.user, b)
		}
	}
}

func shutdown(t testing.TB, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}
