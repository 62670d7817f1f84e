package xspsim

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEventChannelEndToEnd drives the whole lifecycle with a raw client:
// channel, subscribe (initial event), Actions PUT → SubscriptionEvent, ack,
// heartbeat echo, refresh (full state again), listing for adoption, channel
// refresh, subscription delete (SubscriptionTerminatedEvent), channel delete
// (ChannelTerminatedEvent ExplicitDelete, clean end of stream).
func TestEventChannelEndToEnd(t *testing.T) {
	h := newHarness(t, baseConfig())
	ch := h.openChannel("set-1", "csta-gw")

	subID := h.subscribe("user/plain@example.com", "set-1", PkgCallForwardingAlways)
	ev := ch.next("SubscriptionEvent:CallForwardingAlwaysEvent")
	for path, want := range map[string]string{
		"sequenceNumber": "1", "userId": testUser, "externalApplicationId": "csta-gw",
		"subscriptionId": subID, "channelId": ch.id, "targetId": "plain@example.com", "eventData/info/active": "false",
	} {
		if got := text(ev.root, path); got != want {
			t.Errorf("initial event %s = %q, want %q", path, got, want)
		}
	}
	ch.ack(ev)

	h.mustStatus(200, "PUT", actions("plain@example.com", "CallForwardingAlways"),
		body("CallForwardingAlways", "<active>true</active><forwardToPhoneNumber>tel:+12025550123</forwardToPhoneNumber>"))
	ev2 := ch.next("SubscriptionEvent:CallForwardingAlwaysEvent")
	if text(ev2.root, "sequenceNumber") != "2" || text(ev2.root, "eventData/info/forwardToPhoneNumber") != "tel:+12025550123" {
		t.Errorf("change event:\n%s", ev2.raw)
	}
	if text(ev2.root, "eventID") == text(ev.root, "eventID") {
		t.Error("eventID reused")
	}
	ch.ack(ev2)
	// A second ack of the same event is unknown.
	h.mustStatus(404, "POST", EventsPrefix+"/channel/eventresponse",
		body("EventResponse", "<eventID>"+text(ev2.root, "eventID")+"</eventID><statusCode>200</statusCode><reason>OK</reason>"))

	ch.heartbeat()
	ch.next("ChannelHeartBeat")

	// Adopt: list the channel set's subscriptions.
	b := h.mustStatus(200, "GET", EventsPrefix+"/subscription?channelSetId=set-1&targetId=plain@example.com", "")
	l := parse(t, b)
	if subs := l.SelectElements("subscription"); len(subs) != 1 || text(subs[0], "subscriptionId") != subID ||
		text(subs[0], "event") != PkgCallForwardingAlways || text(subs[0], "targetIdType") != "User" {
		t.Errorf("subscription list: %s", b)
	}
	b = h.mustStatus(200, "GET", EventsPrefix+"/subscription?extAppId=other", "")
	if len(parse(t, b).SelectElements("subscription")) != 0 {
		t.Errorf("filter by extAppId: %s", b)
	}
	h.mustStatus(200, "GET", EventsPrefix+"/subscription/"+subID, "")

	// Refresh resends the full state.
	b = h.mustStatus(200, "PUT", EventsPrefix+"/subscription/"+subID, body("Subscription", "<expires>10</expires>"))
	if text(parse(t, b), "expires") != "3600" {
		t.Errorf("granted expires (min 3600): %s", b)
	}
	ev3 := ch.next("SubscriptionEvent:CallForwardingAlwaysEvent")
	if text(ev3.root, "sequenceNumber") != "3" || text(ev3.root, "eventData/info/active") != "true" {
		t.Errorf("refresh event:\n%s", ev3.raw)
	}
	ch.ack(ev3)

	// Channel refresh and channel set listing.
	b = h.mustStatus(200, "PUT", EventsPrefix+"/channel/"+ch.id, body("Channel", "<expires>7200</expires>"))
	if text(parse(t, b), "expires") != "7200" || text(parse(t, b), "channelId") != ch.id {
		t.Errorf("channel refresh: %s", b)
	}
	b = h.mustStatus(200, "GET", EventsPrefix+"/channelset/set-1", "")
	if text(parse(t, b), "channel/channelId") != ch.id {
		t.Errorf("channelset: %s", b)
	}

	// Unknown subscription → 403; duplicate → 409.
	h.mustStatus(403, "PUT", EventsPrefix+"/subscription/nope", body("Subscription", "<expires>3600</expires>"))
	h.mustStatus(403, "DELETE", EventsPrefix+"/subscription/nope", "")
	h.mustStatus(409, "POST", EventsPrefix+"/user/plain@example.com",
		body("Subscription", "<event>Call Forwarding Always</event><expires>3600</expires><channelSetId>set-1</channelSetId><applicationId>csta-gw</applicationId>"))

	h.mustStatus(200, "DELETE", EventsPrefix+"/subscription/"+subID, "")
	ev4 := ch.next("SubscriptionEvent:SubscriptionTerminatedEvent")
	ch.ack(ev4)
	if len(h.s.Subscriptions()) != 0 {
		t.Error("subscription not deleted")
	}

	h.mustStatus(200, "DELETE", EventsPrefix+"/channel/"+ch.id, "")
	term := ch.next("ChannelTerminatedEvent")
	if text(term.root, "reason") != ReasonExplicitDelete || text(term.root, "channelId") != ch.id {
		t.Errorf("terminated: %s", term.raw)
	}
	if err := ch.ended(); err != nil {
		t.Errorf("stream end: %v", err)
	}
	h.mustStatus(404, "PUT", EventsPrefix+"/channel/"+ch.id+"/heartbeat", "")
	h.mustStatus(404, "DELETE", EventsPrefix+"/channel/"+ch.id, "")
}

// TestEventPayloads proves the initial events per package and the change
// events from Actions and from portal changes, including agent state,
// queue join, DND, CFB/CFNA and hoteling.
func TestEventPayloads(t *testing.T) {
	h := newHarness(t, baseConfig())
	ch := h.openChannel("set-1", "csta-gw")
	h.subscribe("user/agent1@example.com", "set-1", PkgCallCenterAgent, PkgDoNotDisturb, PkgHotelingGuest,
		PkgCallForwardingAlways, PkgCallForwardingBusy, PkgCallForwardingNoAnswer)
	seq := 0
	expect := func(kind string, checks map[string]string) streamDoc {
		t.Helper()
		d := ch.next("SubscriptionEvent:" + kind)
		seq++
		if got := text(d.root, "sequenceNumber"); got != strconv.Itoa(seq) {
			t.Errorf("%s sequenceNumber %s, want %d", kind, got, seq)
		}
		for p, want := range checks {
			if got := text(d.root, "eventData/"+p); got != want {
				t.Errorf("%s %s = %q, want %q\n%s", kind, p, got, want, d.raw)
			}
		}
		ch.ack(d)
		return d
	}
	expect("AgentSubscriptionEvent", map[string]string{"stateInfo/state": "Sign-Out", "joinData/joinInfos/joinInfo/acdUserId": "sales@example.com"})
	expect("DoNotDisturbEvent", map[string]string{"info/active": "false"})
	expect("HotelingGuestEvent", map[string]string{"info/active": "false"})
	expect("CallForwardingAlwaysEvent", nil)
	expect("CallForwardingBusyEvent", nil)
	expect("CallForwardingNoAnswerEvent", map[string]string{"info/numberOfRings": "3"})

	cc := actions("agent1@example.com", "CallCenter")
	h.mustStatus(200, "PUT", cc, body("CallCenter", "<agentACDState>Sign-In</agentACDState>"))
	expect("AgentStateEvent", map[string]string{"agentStateInfo/state": "Available"})
	h.mustStatus(200, "PUT", cc, body("CallCenter", "<agentACDState>Unavailable</agentACDState><agentUnavailableCode>MEETING</agentUnavailableCode>"))
	expect("AgentStateEvent", map[string]string{"agentStateInfo/state": "Unavailable", "agentStateInfo/unavailableCode": "MEETING"})
	// Same state again: no event.
	h.mustStatus(200, "PUT", cc, body("CallCenter", "<agentACDState>Unavailable</agentACDState><agentUnavailableCode>MEETING</agentUnavailableCode>"))
	if err := h.s.PortalSetAgentState("agent1@example.com", StateWrapUp, ""); err != nil {
		t.Fatal(err)
	}
	expect("AgentStateEvent", map[string]string{"agentStateInfo/state": "Wrap-Up", "agentStateInfo/unavailableCode": "<missing>"})
	if err := h.s.PortalSetCallCenterJoin("agent1@example.com", "support@example.com", false); err != nil {
		t.Fatal(err)
	}
	d := expect("ACDAgentJoinUpdateEvent", map[string]string{"ccAgentJoinUpdateData/joinInfo/acdUserId": "support@example.com"})
	if strings.Contains(string(d.raw), "joined") {
		t.Errorf("unjoin must omit <joined/>: %s", d.raw)
	}
	if err := h.s.PortalSetDND("agent1@example.com", true); err != nil {
		t.Fatal(err)
	}
	expect("DoNotDisturbEvent", map[string]string{"info/active": "true"})
	if err := h.s.PortalSetCFA("agent1@example.com", true, "+12025550199"); err != nil {
		t.Fatal(err)
	}
	expect("CallForwardingAlwaysEvent", map[string]string{"info/forwardToPhoneNumber": "+12025550199"})
	h.mustStatus(200, "PUT", actions("agent1@example.com", "CallForwardingBusy"), body("CallForwardingBusy", "<active>true</active><forwardToPhoneNumber>1020</forwardToPhoneNumber>"))
	expect("CallForwardingBusyEvent", map[string]string{"info/active": "true"})
	h.mustStatus(200, "PUT", actions("agent1@example.com", "CallForwardingNoAnswer"), body("CallForwardingNoAnswer", "<numberOfRings>6</numberOfRings>"))
	expect("CallForwardingNoAnswerEvent", map[string]string{"info/numberOfRings": "6"})
	if err := h.s.PortalAssociateGuest("agent1@example.com", "desk1@example.com"); err != nil {
		t.Fatal(err)
	}
	expect("HotelingGuestEvent", map[string]string{"info/hostUserId": "desk1@example.com", "info/active": "true"})
	if err := h.s.PortalAssociateGuest("agent2@example.com", "desk1@example.com"); err == nil || !strings.HasPrefix(err.Error(), "xspsim: ") {
		t.Errorf("busy host via portal: %v", err)
	}
	h.mustStatus(200, "PUT", actions("desk1@example.com", "HotelingHost"), body("HotelingHost", "<removeGuestAssociation>true</removeGuestAssociation>"))
	expect("HotelingGuestEvent", map[string]string{"info/hostUserId": "<missing>"})
	if err := h.s.PortalSetAgentState("agent1@example.com", StateSignOut, ""); err != nil {
		t.Fatal(err)
	}
	expect("AgentStateEvent", map[string]string{"agentStateInfo/state": "Sign-Out", "agentStateInfo/signInTimestamp": "<missing>"})
	ch.none(50 * time.Millisecond)

	// Other users' changes do not reach this user-target subscription.
	_ = h.s.PortalSetDND("plain@example.com", true)
	ch.none(50 * time.Millisecond)
}

// TestGroupAndEnterpriseTargets proves group/enterprise subscriptions get no
// initial event and receive every member's changes with targetId set.
func TestGroupAndEnterpriseTargets(t *testing.T) {
	h := newHarness(t, baseConfig())
	ch := h.openChannel("set-g", "csta-gw")
	h.subscribe("enterprise/ent1/group/grp1", "set-g", PkgDoNotDisturb)
	h.subscribe("serviceprovider/ent1", "set-g", PkgCallCenterAgent)
	ch.none(80 * time.Millisecond)
	h.mustStatus(404, "POST", EventsPrefix+"/enterprise/ent1/group/nope",
		body("Subscription", "<event>Do Not Disturb</event><channelSetId>set-g</channelSetId>"))
	h.mustStatus(404, "POST", EventsPrefix+"/enterprise/other",
		body("Subscription", "<event>Do Not Disturb</event><channelSetId>set-g</channelSetId>"))

	_ = h.s.PortalSetDND("plain@example.com", true)
	d := ch.next("SubscriptionEvent:DoNotDisturbEvent")
	if text(d.root, "targetId") != "plain@example.com" || text(d.root, "sequenceNumber") != "1" {
		t.Errorf("%s", d.raw)
	}
	ch.ack(d)
	_ = h.s.PortalSetAgentState("agent2@example.com", StateAvailable, "")
	d = ch.next("SubscriptionEvent:AgentStateEvent")
	if text(d.root, "targetId") != "agent2@example.com" {
		t.Errorf("%s", d.raw)
	}
	ch.ack(d)
	b := h.mustStatus(200, "GET", EventsPrefix+"/subscription?targetEntityType=Group", "")
	if subs := parse(t, b).SelectElements("subscription"); len(subs) != 1 || text(subs[0], "targetGrpParentId") != "ent1" {
		t.Errorf("group listing: %s", b)
	}
}

// TestSubscribeErrors proves subscription validation.
func TestSubscribeErrors(t *testing.T) {
	h := newHarness(t, baseConfig())
	tests := []struct {
		name, path, inner string
		status            int
	}{
		{"unknown user", "user/ghost@example.com", "<event>Do Not Disturb</event><channelSetId>s</channelSetId>", 404},
		{"no channel set", "user/plain@example.com", "<event>Do Not Disturb</event>", 400},
		{"unsupported package", "user/plain@example.com", "<event>Basic Call</event><channelSetId>s</channelSetId>", 400},
		{"agent package for non-agent", "user/plain@example.com", "<event>Call Center Agent</event><channelSetId>s</channelSetId>", 400},
		{"channelSetId before expires", "user/plain@example.com", "<event>Do Not Disturb</event><channelSetId>s</channelSetId><expires>3600</expires>", 400},
		{"no event", "user/plain@example.com", "<channelSetId>s</channelSetId>", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.mustStatus(tc.status, "POST", EventsPrefix+"/"+tc.path, body("Subscription", tc.inner))
		})
	}
	// The R21-figure path form is accepted too.
	h.mustStatus(200, "POST", EventsPrefix+"/user/plain@example.com/subscription",
		body("Subscription", "<event>Do Not Disturb</event><channelSetId>s</channelSetId>"))
}

// TestChannelSets proves shared subscriptions across channels of a set,
// backlog delivery after channel loss, DuplicateChannelSet and priority.
func TestChannelSets(t *testing.T) {
	h := newHarness(t, baseConfig())
	a := h.openChannel("set-A", "app-1")
	h.subscribe("user/plain@example.com", "set-A", PkgDoNotDisturb)
	a.ack(a.next("SubscriptionEvent:DoNotDisturbEvent"))

	// Channel lost (client closes): subscription survives, events wait.
	a.close()
	deadline := time.Now().Add(2 * time.Second)
	for len(h.s.Channels()) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_ = h.s.PortalSetDND("plain@example.com", true)
	a2 := h.openChannel("set-A", "app-1")
	d := a2.next("SubscriptionEvent:DoNotDisturbEvent")
	if text(d.root, "channelId") != a2.id || text(d.root, "sequenceNumber") != "2" {
		t.Errorf("backlog event: %s", d.raw)
	}
	a2.ack(d)

	// Second channel in the same set shares the subscriptions.
	a3 := h.openChannel("set-A", "app-1")
	if n := len(h.s.Channels()); n != 2 {
		t.Fatalf("%d channels", n)
	}
	// New set with the same applicationId: old set's channels terminated.
	b := h.openChannel("set-B", "app-1")
	for _, c := range []*rawChannel{a2, a3} {
		term := c.next("ChannelTerminatedEvent")
		if text(term.root, "reason") != ReasonDuplicateChannelSet {
			t.Errorf("%s", term.raw)
		}
		if err := c.ended(); err != nil {
			t.Error(err)
		}
	}
	// The old set's subscription is not moved to the new set.
	_ = h.s.PortalSetDND("plain@example.com", false)
	b.none(50 * time.Millisecond)
	if subs := h.s.Subscriptions(); len(subs) != 1 || subs[0].ChannelSetID != "set-A" {
		t.Errorf("subscriptions %+v", subs)
	}
}

// TestEventResponseCodes proves 481 deletes the subscription, 404 ends the
// channel with UnknownChannel and resends on another channel, and bad acks
// are rejected.
func TestEventResponseCodes(t *testing.T) {
	h := newHarness(t, baseConfig())
	c1 := h.openChannel("set-1", "app")
	c2 := h.openChannel("set-1", "app")
	h.subscribe("user/plain@example.com", "set-1", PkgDoNotDisturb)
	var first, other *rawChannel
	var d streamDoc
	select {
	case d = <-c1.docs:
		first, other = c1, c2
	case d = <-c2.docs:
		first, other = c2, c1
	case <-time.After(3 * time.Second):
		t.Fatal("no initial event")
	}
	h.mustStatus(200, "POST", EventsPrefix+"/channel/eventresponse",
		body("EventResponse", "<eventID>"+text(d.root, "eventID")+"</eventID><statusCode>404</statusCode><reason>unknown channel</reason>"))
	if term := first.next("ChannelTerminatedEvent"); text(term.root, "reason") != ReasonUnknownChannel {
		t.Errorf("%s", term.raw)
	}
	re := other.next("SubscriptionEvent:DoNotDisturbEvent")
	if text(re.root, "eventID") != text(d.root, "eventID") || text(re.root, "channelId") != other.id {
		t.Errorf("resent: %s", re.raw)
	}
	h.mustStatus(200, "POST", EventsPrefix+"/channel/eventresponse",
		body("EventResponse", "<eventID>"+text(re.root, "eventID")+"</eventID><statusCode>481</statusCode><reason>unknown subscription</reason>"))
	if len(h.s.Subscriptions()) != 0 {
		t.Error("481 did not delete the subscription")
	}
	h.mustStatus(400, "POST", EventsPrefix+"/channel/eventresponse",
		body("EventResponse", "<eventID>x</eventID><statusCode>201</statusCode><reason>x</reason>"))
	h.mustStatus(400, "POST", EventsPrefix+"/channel/eventresponse", body("EventResponse", "<eventID>x</eventID>"))
}

// TestAckTimeout proves un-acked events end the channel with
// NonResponsiveChannel.
func TestAckTimeout(t *testing.T) {
	cfg := baseConfig()
	cfg.EventAckTimeout = 100 * time.Millisecond
	h := newHarness(t, cfg)
	ch := h.openChannel("set-1", "app")
	h.subscribe("user/plain@example.com", "set-1", PkgDoNotDisturb)
	ch.next("SubscriptionEvent:DoNotDisturbEvent") // not acked
	term := ch.next("ChannelTerminatedEvent")
	if text(term.root, "reason") != ReasonNonResponsiveChannel {
		t.Errorf("%s", term.raw)
	}
	if err := ch.ended(); err != nil {
		t.Error(err)
	}
}

// TestHeartbeatTimeoutAndIgnore proves IgnoreHeartbeats suppresses the echo
// and that HeartbeatTimeout ends a channel without heartbeats.
func TestHeartbeatTimeoutAndIgnore(t *testing.T) {
	cfg := baseConfig()
	cfg.HeartbeatTimeout = 150 * time.Millisecond
	h := newHarness(t, cfg)
	ch := h.openChannel("set-1", "app")
	for i := 0; i < 3; i++ { // heartbeats keep it alive past the timeout
		time.Sleep(60 * time.Millisecond)
		ch.heartbeat()
		ch.next("ChannelHeartBeat")
	}
	h.s.IgnoreHeartbeats(true)
	ch.heartbeat() // 200 but no echo, not counted
	term := ch.next("ChannelTerminatedEvent")
	if text(term.root, "reason") != ReasonNonResponsiveChannel {
		t.Errorf("%s", term.raw)
	}
}

// TestExpiry proves channel expiry (ChannelTerminatedEvent Expired) and
// subscription expiry (SubscriptionTerminatedEvent), with scaled time.
func TestExpiry(t *testing.T) {
	cfg := baseConfig()
	cfg.MinExpires = 1
	cfg.ExpiresUnit = time.Millisecond
	h := newHarness(t, cfg)
	ch := h.openChannel("set-1", "app") // expires 3600 → 3.6 s
	b := h.mustStatus(200, "POST", EventsPrefix+"/user/plain@example.com",
		body("Subscription", "<event>Do Not Disturb</event><expires>150</expires><channelSetId>set-1</channelSetId>"))
	if text(parse(t, b), "expires") != "150" {
		t.Errorf("%s", b)
	}
	ch.ack(ch.next("SubscriptionEvent:DoNotDisturbEvent"))
	d := ch.next("SubscriptionEvent:SubscriptionTerminatedEvent")
	if text(d.root, "externalApplicationId") != "xspsim-default-app" {
		t.Errorf("%s", d.raw)
	}
	ch.ack(d)
	h.mustStatus(200, "PUT", EventsPrefix+"/channel/"+ch.id, body("Channel", "<expires>100</expires>"))
	if term := ch.next("ChannelTerminatedEvent"); text(term.root, "reason") != ReasonExpired {
		t.Errorf("%s", term.raw)
	}
}

// TestUnackedBound proves the per-channel bound on un-acknowledged events
// (4 × QueueSize) ends the channel with NonResponsiveChannel.
func TestUnackedBound(t *testing.T) {
	cfg := baseConfig()
	cfg.QueueSize = 2
	h := newHarness(t, cfg)
	ch := h.openChannel("set-1", "app")
	h.subscribe("user/plain@example.com", "set-1", PkgDoNotDisturb)
	for i := 0; i < 8; i++ { // initial event + 8 changes = 9 > 4×2
		ch.next("SubscriptionEvent:DoNotDisturbEvent") // read but never acked
		_ = h.s.PortalSetDND("plain@example.com", i%2 == 0)
	}
	term := ch.next("ChannelTerminatedEvent")
	if text(term.root, "reason") != ReasonNonResponsiveChannel {
		t.Errorf("%s", term.raw)
	}
}

// TestTerminateChannelAndStats proves the admin-style termination and the
// counters.
func TestTerminateChannelAndStats(t *testing.T) {
	h := newHarness(t, baseConfig())
	ch := h.openChannel("set-1", "app")
	h.subscribe("user/plain@example.com", "set-1", PkgDoNotDisturb)
	ch.ack(ch.next("SubscriptionEvent:DoNotDisturbEvent"))
	ch.heartbeat()
	ch.next("ChannelHeartBeat")
	if st := h.s.Stats(); st.EventsSent != 1 || st.EventsAcked != 1 || st.Heartbeats != 1 || st.ChannelsOpen != 1 {
		t.Errorf("stats %+v", st)
	}
	if err := h.s.TerminateChannel(ch.id, ReasonUserDeleted); err != nil {
		t.Fatal(err)
	}
	if term := ch.next("ChannelTerminatedEvent"); text(term.root, "reason") != ReasonUserDeleted {
		t.Errorf("%s", term.raw)
	}
	if err := ch.ended(); err != nil {
		t.Error(err)
	}
	if err := h.s.TerminateChannel(ch.id, ReasonUserDeleted); err == nil {
		t.Error("terminating a gone channel succeeded")
	}
}
