package config_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/xsi"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// Where the configuration overlaps the XSI link's, its defaults are
// xsi.DefaultConfig(); servers, credentials and targets are the example's.
func TestDefaultIsXSIDefault(t *testing.T) {
	got := config.Default().XSI()
	if !slices.Equal(got.Servers, []string{"http://127.0.0.1:8090"}) || got.Username != "connector@example.com" ||
		!reflect.DeepEqual(got.Targets, []xsi.Target{
			{Kind: "user", ID: "agent1@example.com"}, {Kind: "user", ID: "agent2@example.com"},
			{Kind: "user", ID: "agent3@example.com"}, {Kind: "user", ID: "agent4@example.com"},
			{Kind: "user", ID: "desk1@example.com"}, {Kind: "user", ID: "desk2@example.com"},
		}) {
		t.Errorf("Default().XSI() servers, username or targets = %v %q %+v", got.Servers, got.Username, got.Targets)
	}
	got.Servers, got.Username, got.Password, got.Targets = nil, "", "", nil
	if want := xsi.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default().XSI() = %+v\nwant xsi.DefaultConfig() = %+v", got, want)
	}
	if !config.Default().XSILink.Simulate {
		t.Error("xsi.simulate should default to true")
	}
}

func TestXSIConversion(t *testing.T) {
	got := mustLoad(t, fixture("good.yaml")).XSI()
	if got.RateLimit != 20 || got.ProtocolVersion != "22.0" || got.Password != "xsi-secret" ||
		!slices.Equal(got.EventPackages, []string{"Call Forwarding Busy", "Call Forwarding No Answer"}) {
		t.Errorf("XSI() = %+v", got)
	}
	wantTargets := []xsi.Target{
		{Kind: "user", ID: "agent1@example.com"},
		{Kind: "group", ID: "sales", ParentID: "acme"},
		{Kind: "enterprise", ID: "acme"},
	}
	if !reflect.DeepEqual(got.Targets, wantTargets) {
		t.Errorf("XSI().Targets = %+v, want %+v", got.Targets, wantTargets)
	}
}

// The simulator accepts exactly xsi.username / xsi.password, and seeds the
// users with the services the subsets name.
func TestSimulatorConversion(t *testing.T) {
	cfg := mustLoad(t, fixture("good.yaml"))
	got := cfg.Simulator()
	if got.Listen != "127.0.0.1:18090" || got.EnterpriseID != "acme" || got.GroupID != "sales" ||
		got.Username != "gw-admin@example.com" || got.Password != "xsi-secret" || got.EventAckTimeout != 0 {
		t.Errorf("Simulator() = %+v", got)
	}
	var ids []string
	for _, u := range got.Users {
		ids = append(ids, u.ID)
		if u.CallCenter != (u.ID != "h1@example.net") || u.HotelingHost != (u.ID == "h1@example.net") {
			t.Errorf("user %s: CallCenter %v, HotelingHost %v", u.ID, u.CallCenter, u.HotelingHost)
		}
	}
	if !slices.Equal(ids, cfg.XSPSimulator.Users) {
		t.Errorf("simulator users %v, want %v", ids, cfg.XSPSimulator.Users)
	}
	if want := []xspsim.UnavailableCode{{Code: "BREAK", Description: "Coffee break", Active: true, Default: true}}; !reflect.DeepEqual(got.UnavailableCodes, want) {
		t.Errorf("UnavailableCodes = %+v, want %+v", got.UnavailableCodes, want)
	}

	def := config.Default().Simulator()
	if len(def.Users) != 6 || len(def.UnavailableCodes) != 3 || !def.UnavailableCodes[0].Default || def.UnavailableCodes[1].Default {
		t.Errorf("Default().Simulator() = %+v", def)
	}
}
