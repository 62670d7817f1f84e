package admin_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/admin"
)

func TestFreeDesks(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	desk := func(id string) admin.Device { return admin.Device{DeviceID: id, HotDesk: true} }
	guest := func(id, agent string) admin.Device {
		return admin.Device{DeviceID: id, HotDesk: true, GuestAgentID: agent}
	}
	line := admin.Device{DeviceID: "3001"}
	up := func(dn string) admin.Phone { return admin.Phone{DN: dn, InService: true, Expires: now.Add(time.Hour)} }
	down := func(dn string) admin.Phone { return admin.Phone{DN: dn, InService: false, Expires: now.Add(time.Hour)} }
	expired := func(dn string) admin.Phone {
		return admin.Phone{DN: dn, InService: true, Expires: now.Add(-time.Second)}
	}

	tests := []struct {
		name    string
		devices []admin.Device
		phones  []admin.Phone
		agents  []admin.Agent
		want    []string
	}{
		{"nothing", nil, nil, nil, nil},
		{"no phones at all: every unheld hot desk", []admin.Device{desk("2001"), desk("2002"), guest("2003", "7001"), line}, nil, nil,
			[]string{"2001", "2002"}},
		{"only expired phones count as none", []admin.Device{desk("2001"), desk("2002")}, []admin.Phone{expired("2001")}, nil,
			[]string{"2001", "2002"}},
		{"phones registered: only desks whose phone is up", []admin.Device{desk("2001"), desk("2002"), desk("2003")},
			[]admin.Phone{up("2001"), down("2002")}, nil, []string{"2001"}},
		{"an expired phone does not make its desk free", []admin.Device{desk("2001"), desk("2002")},
			[]admin.Phone{up("2001"), expired("2002")}, nil, []string{"2001"}},
		{"a phone without Expires is registered", []admin.Device{desk("2001"), desk("2002")},
			[]admin.Phone{{DN: "2002", InService: true}}, nil, []string{"2002"}},
		{"a guest holds the desk even with its phone up", []admin.Device{guest("2001", "7001"), desk("2002")},
			[]admin.Phone{up("2001"), up("2002")}, nil, []string{"2002"}},
		{"a stale association (agent logged off, still guest) holds it", []admin.Device{guest("2001", "7009")},
			[]admin.Phone{up("2001")}, []admin.Agent{{AgentID: "7009", State: "loggedOff"}}, nil},
		{"an agent's desk holds it before the device shows the guest", []admin.Device{desk("2001"), desk("2002")},
			[]admin.Phone{up("2001"), up("2002")}, []admin.Agent{{AgentID: "7001", State: "ready", Desk: "2001"}}, []string{"2002"}},
		{"a line that is not a hot desk is never offered", []admin.Device{line}, []admin.Phone{up("3001")}, nil, nil},
		{"one of two phones on a DN up is enough", []admin.Device{desk("2001")}, []admin.Phone{down("2001"), up("2001")}, nil,
			[]string{"2001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, d := range admin.FreeDesks(tt.devices, tt.phones, tt.agents, now) {
				got = append(got, d.DeviceID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FreeDesks = %v, want %v", got, tt.want)
			}
		})
	}
}
