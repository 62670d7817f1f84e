package xsi

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func parseFixture(t *testing.T, name string) Event {
	t.Helper()
	ev, err := ParseEvent(rootOf(readFixture(t, name)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ev
}

func subEvent(t *testing.T, name string) *SubscriptionEvent {
	t.Helper()
	ev, ok := parseFixture(t, name).(*SubscriptionEvent)
	if !ok {
		t.Fatalf("%s: not a SubscriptionEvent", name)
	}
	return ev
}

func TestParseEnvelope(t *testing.T) {
	ev := subEvent(t, "agent-state-r19.xml")
	want := SubscriptionEvent{
		EventID:               "0b6a4f0e-91d2-4c1e-8f3e-5a1d2c3b4a59",
		SequenceNumber:        7,
		UserID:                "gw-admin@example.com",
		ExternalApplicationID: "connector",
		SubscriptionID:        "7d1f0c42-6a55-4f37-9b54-0a8c2d3e4f51",
		ChannelID:             "4c2b9e3e-2f7e-4b0a-9d2e-1f3a5b6c7d8e",
		TargetID:              "agent1@example.com",
	}
	got := *ev
	got.Data = nil
	if got != want {
		t.Fatalf("envelope\n got %+v\nwant %+v", got, want)
	}
}

func TestParseEventTypes(t *testing.T) {
	ms := func(n int64) time.Time { return time.UnixMilli(n).UTC() }
	tests := []struct {
		file string
		want EventData
	}{
		{"agent-state-r19.xml", &AgentStateEvent{Info: AgentStateInfo{
			State: "Unavailable", StateTimestamp: ms(1714640000123), UnavailableCode: "LUNCH",
			SignInTimestamp: ms(1714630000000), TotalAvailableTime: 5400, AverageWrapUpTime: 12,
		}}},
		{"agent-state-flat.xml", &AgentStateEvent{Info: AgentStateInfo{
			State: "Wrap-Up", StateTimestamp: ms(1714640000456), WrapUpCallID: "callhalf-123:0",
			SignInTimestamp: ms(1714630000000), TotalAvailableTime: 5400, AverageWrapUpTime: 30,
			WrapUpCallCenterUserID: "sales-queue@example.com",
		}}},
		{"agent-subscription.xml", &AgentSubscriptionEvent{
			Joins: []ACDAgentJoinInfo{{ACDUserID: "sales-queue@example.com", Joined: true, SkillLevel: 1}, {ACDUserID: "support-queue@example.com"}},
			State: &AgentStateInfo{State: "Sign-Out", StateTimestamp: ms(1714620000000), TotalAvailableTime: -1, AverageWrapUpTime: -1},
		}},
		{"acd-join-update.xml", &ACDAgentJoinUpdateEvent{Joins: []ACDAgentJoinInfo{{ACDUserID: "sales-queue@example.com", Joined: true, SkillLevel: 1}}}},
		{"cfa-info.xml", &CallForwardingAlwaysEvent{Active: true, ForwardToPhoneNumber: "tel:+12025550123"}},
		{"cfa-unassigned.xml", &CallForwardingAlwaysEvent{Unassigned: true}},
		{"cfb-info.xml", &CallForwardingBusyEvent{Active: true, ForwardToPhoneNumber: "+12025550188"}},
		{"cfna-info.xml", &CallForwardingNoAnswerEvent{Active: true, ForwardToPhoneNumber: "tel:+12025550123", NumberOfRings: 4}},
		{"cfna-unassigned.xml", &CallForwardingNoAnswerEvent{Unassigned: true}},
		{"dnd-info.xml", &DoNotDisturbEvent{Active: true, RingSplash: true}},
		{"dnd-unassigned.xml", &DoNotDisturbEvent{Unassigned: true}},
		{"hoteling-info.xml", &HotelingGuestEvent{Active: true, EnableAssociationLimit: true, AssociationLimitHours: 12,
			HostUserID: "desk-204@example.com", HostAssociationDateTime: time.Date(2024, 5, 2, 8, 59, 1, 123e6, time.UTC)}},
		{"hoteling-unassigned.xml", &HotelingGuestEvent{Unassigned: true}},
		{"subscription-terminated.xml", &SubscriptionTerminatedEvent{}},
		{"unknown-data.xml", &UnknownEventData{Namespace: NS, Type: "AgentDispositionCodeAddedEvent"}},
		// xsi = XMLSchema-instance and xsi1 = BroadSoft, the payload type
		// through a third prefix: resolved by URI, not by prefix.
		{"prefix-swapped.xml", &DoNotDisturbEvent{}},
		// xsi1:type bound to another namespace is ignored; i:type wins.
		{"prefix-decoy.xml", &SubscriptionTerminatedEvent{}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ev := subEvent(t, tt.file)
			if !reflect.DeepEqual(ev.Data, tt.want) {
				t.Fatalf("data\n got %#v\nwant %#v", ev.Data, tt.want)
			}
		})
	}
}

func TestParseChannelDocuments(t *testing.T) {
	if got := parseFixture(t, "channel.xml"); !reflect.DeepEqual(got, &Channel{ChannelID: "4c2b9e3e-2f7e-4b0a-9d2e-1f3a5b6c7d8e", Expires: 86400 * time.Second}) {
		t.Errorf("channel: %#v", got)
	}
	for _, f := range []string{"heartbeat.xml", "heartbeat-prose-casing.xml"} {
		if _, ok := parseFixture(t, f).(*ChannelHeartBeat); !ok {
			t.Errorf("%s: not a heartbeat", f)
		}
	}
	if got := parseFixture(t, "channel-terminated.xml"); !reflect.DeepEqual(got, &ChannelTerminatedEvent{ChannelID: "4c2b9e3e-2f7e-4b0a-9d2e-1f3a5b6c7d8e", Reason: "Expired"}) {
		t.Errorf("terminated: %#v", got)
	}
	if got := parseFixture(t, "error-event.xml"); !reflect.DeepEqual(got, &ErrorEvent{ErrorCode: 110000, ErrorMessage: "Invalid content on channel"}) {
		t.Errorf("error event: %#v", got)
	}
}

func TestParseRejects(t *testing.T) {
	bad := map[string]string{
		"not xml":         `<Channel`,
		"foreign root ns": `<Channel xmlns="urn:other"><channelId>x</channelId></Channel>`,
		"unknown root":    `<Foo xmlns="http://schema.broadsoft.com/xsi"/>`,
		"no type":         `<Event xmlns="http://schema.broadsoft.com/xsi"/>`,
		// The classic mistake: xsi:type where xsi is the BroadSoft namespace.
		"type in wrong ns": `<xsi:Event xmlns:xsi="http://schema.broadsoft.com/xsi" xsi:type="xsi:SubscriptionEvent"><xsi:eventID>1</xsi:eventID></xsi:Event>`,
		"missing eventID":  `<Event xmlns="http://schema.broadsoft.com/xsi" xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:type="SubscriptionEvent"><subscriptionId>s</subscriptionId><eventData i:type="SubscriptionTerminatedEvent"/></Event>`,
		"bad sequence":     `<Event xmlns="http://schema.broadsoft.com/xsi" xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:type="SubscriptionEvent"><eventID>e</eventID><sequenceNumber>x</sequenceNumber><subscriptionId>s</subscriptionId><eventData i:type="SubscriptionTerminatedEvent"/></Event>`,
		"channel no id":    `<Channel xmlns="http://schema.broadsoft.com/xsi"><expires>10</expires></Channel>`,
	}
	for name, doc := range bad {
		if ev, err := ParseEvent([]byte(doc)); err == nil {
			t.Errorf("%s: parsed as %#v", name, ev)
		} else if !strings.HasPrefix(err.Error(), "xsi: ") {
			t.Errorf("%s: error %q lacks the xsi: prefix", name, err)
		}
	}
	// Unprefixed QName value resolves through the default namespace.
	ev, err := ParseEvent([]byte(`<Event xmlns="http://schema.broadsoft.com/xsi" xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:type="ChannelTerminatedEvent"><channelId>c</channelId><reason>UserDeleted</reason></Event>`))
	if err != nil || ev.(*ChannelTerminatedEvent).Reason != "UserDeleted" {
		t.Fatalf("default-namespace QName: %v %#v", err, ev)
	}
}
