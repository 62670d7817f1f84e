package gateway

import (
	"slices"
	"testing"

	"github.com/broadworks-connector/connector/csta"
)

func TestDirectoryDevice(t *testing.T) {
	d := NewDirectory(testConfig)
	tests := []struct {
		id      csta.DeviceID
		user    string
		hotDesk bool
		ok      bool
	}{
		{"1001", "1001@example.com", false, true},
		{"bob@other.org", "bob@other.org", false, true},
		{"desk1", "host1@example.com", true, true},
		{"host1@example.com", "host1@example.com", true, true}, // marked by its user ID too
		{"host1", "host1@example.com", true, true},
		{"+15550001", "alice@example.com", false, true}, // explicit overrides the rule
		{"", "", false, false},
		{"  ", "", false, false},
	}
	for _, tt := range tests {
		u, hd, ok := d.Device(tt.id)
		if u != tt.user || hd != tt.hotDesk || ok != tt.ok {
			t.Errorf("Device(%q) = %q, %v, %v; want %q, %v, %v", tt.id, u, hd, ok, tt.user, tt.hotDesk, tt.ok)
		}
	}
	noDomain := NewDirectory(Config{})
	if _, _, ok := noDomain.Device("1001"); ok {
		t.Error("without a domain, an ID without @ must be unknown")
	}
}

func TestDirectoryAgent(t *testing.T) {
	d := NewDirectory(testConfig)
	tests := []struct {
		id, user, number string
		ok               bool
	}{
		{"A1", "alice@example.com", "+15550001", true},
		{"B2", "bob@example.com", "B2", true}, // no Number: the agent ID
		{"carol", "carol@example.com", "carol", true},
		{"dave@x.org", "dave@x.org", "dave@x.org", true},
		{"", "", "", false},
	}
	for _, tt := range tests {
		u, n, ok := d.Agent(tt.id)
		if u != tt.user || n != tt.number || ok != tt.ok {
			t.Errorf("Agent(%q) = %q, %q, %v; want %q, %q, %v", tt.id, u, n, ok, tt.user, tt.number, tt.ok)
		}
	}
}

func TestDirectoryReverse(t *testing.T) {
	d := NewDirectory(testConfig)
	tests := []struct {
		user    string
		agentID string
		devices []csta.DeviceID
	}{
		{"alice@example.com", "A1", []csta.DeviceID{"+15550001", "alice", "alice@example.com"}},
		{"host1@example.com", "host1", []csta.DeviceID{"desk1", "host1", "host1@example.com"}},
		{"carol@example.com", "carol", []csta.DeviceID{"carol", "carol@example.com"}},
		{"dave@x.org", "dave@x.org", []csta.DeviceID{"dave@x.org"}},
	}
	for _, tt := range tests {
		if got := d.AgentID(tt.user); got != tt.agentID {
			t.Errorf("AgentID(%q) = %q, want %q", tt.user, got, tt.agentID)
		}
		if got := d.Devices(tt.user); !slices.Equal(got, tt.devices) {
			t.Errorf("Devices(%q) = %q, want %q", tt.user, got, tt.devices)
		}
	}
}

func TestDirectoryReasons(t *testing.T) {
	d := NewDirectory(testConfig)
	tests := []struct{ reason, code string }{
		{"lunch", "100"},
		{"meeting", "200"},
		{"", "999"},                      // none: default
		{"42", "42"},                     // a BroadWorks code as is
		{"a-reason-far-too-long", "999"}, // cannot be a code: default
	}
	for _, tt := range tests {
		if got := d.UnavailableCode(tt.reason, "999"); got != tt.code {
			t.Errorf("UnavailableCode(%q) = %q, want %q", tt.reason, got, tt.code)
		}
	}
	if got := d.Reason("100"); got != "lunch" {
		t.Errorf("Reason(100) = %q", got)
	}
	if got := d.Reason("7"); got != "7" {
		t.Errorf("Reason(7) = %q", got)
	}
}
