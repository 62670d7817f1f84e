package xsi

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/xmlcheck"
)

// TestEventsBodiesConform validates every body the channel manager sends
// (channel add and refresh, subscription add and refresh, EventResponse)
// against the XSI schema with xmllint.
func TestEventsBodiesConform(t *testing.T) {
	cfg := testEventsConfig("http://x")
	cfg.ChannelSetID = `set<&>"1'`
	xmlcheck.ValidXSI(t, map[string][]byte{
		"channel-add.xml":          evChannelAddBody(&cfg),
		"channel-refresh.xml":      evChannelRefreshBody(3600 * time.Second),
		"channel-refresh-max.xml":  evChannelRefreshBody(100 * 365 * 24 * time.Hour),
		"subscription-add.xml":     evSubscriptionAddBody(&cfg, "Call Center Agent"),
		"subscription-list.xml":    evSubscriptionListBody(&cfg, []string{"Call Center Agent", "Do Not Disturb", "Hoteling Guest"}),
		"subscription-refresh.xml": evSubscriptionRefreshBody(86400 * time.Second),
		"event-response.xml":       evEventResponseBody("0b6a4f0e-91d2-4c1e-8f3e-5a1d2c3b4a59", 200, "OK"),
	})
}

// TestEventFixturesConform keeps the event fixtures honest: every one but
// the deliberately off-schema documents (listed in their README) validates
// against BroadWorks' XSD.
func TestEventFixturesConform(t *testing.T) {
	offSchema := map[string]bool{
		"agent-state-flat.xml":       true, // pre-R19 shape
		"heartbeat-prose-casing.xml": true, // spec prose spelling
		"prefix-decoy.xml":           true, // foreign namespace on purpose
		"unknown-data.xml":           true, // type the XSD does not have
	}
	files, err := filepath.Glob("../testdata/xml/xsi/events/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no event fixtures found: %v", err)
	}
	var valid []string
	for _, f := range files {
		if !offSchema[filepath.Base(f)] {
			valid = append(valid, f)
		}
	}
	xmlcheck.ValidXSIFiles(t, valid...)
}
