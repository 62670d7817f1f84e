package config_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/xsi"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// Where the configuration overlaps the XSI link's, its defaults are
// xsi.DefaultConfig(); servers, credentials, scope and (no) targets are the
// example's.
func TestDefaultIsXSIDefault(t *testing.T) {
	got := config.Default().XSI()
	if !slices.Equal(got.Servers, []string{"http://127.0.0.1:8090"}) || got.Username != "connector@example.com" ||
		len(got.Targets) != 0 {
		t.Errorf("Default().XSI() servers, username or targets = %v %q %+v", got.Servers, got.Username, got.Targets)
	}
	if want := []xsi.Target{{Kind: "group", ID: "grp1", ParentID: "ent1"}}; !reflect.DeepEqual(got.Scopes, want) {
		t.Errorf("Default().XSI().Scopes = %+v, want the simulator's group %+v", got.Scopes, want)
	}
	got.Servers, got.Username, got.Password, got.Targets, got.Scopes = nil, "", "", nil, nil
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

// xsi.scope: the three forms, from the file and from the environment
// (comma-separated); each malformed, repeated or overlapping item is named
// by its index with the accepted forms; a change takes a restart.
func TestXSIScope(t *testing.T) {
	if got := config.Default().XSI().Scopes; !reflect.DeepEqual(got, []xsi.Target{{Kind: "group", ID: "grp1", ParentID: "ent1"}}) {
		t.Errorf("default scopes %+v", got)
	}
	got := mustLoad(t, fixture("good.yaml")).XSI()
	if want := []xsi.Target{{Kind: "group", ID: "sales", ParentID: "acme"}, {Kind: "serviceprovider", ID: "sp2"}}; !reflect.DeepEqual(got.Scopes, want) {
		t.Errorf("scopes %+v, want %+v", got.Scopes, want)
	}
	if got.MaxWatchedUsers != 500 {
		t.Errorf("MaxWatchedUsers %d", got.MaxWatchedUsers)
	}

	t.Setenv("CONNECTOR_XSI_SCOPE", "enterprise:acme, group:g1@other,serviceprovider:sp9")
	t.Setenv("CONNECTOR_XSI_MAX_WATCHED_USERS", "1000000")
	env := mustLoad(t, fixture("minimal.yaml"))
	if want := []xsi.Target{{Kind: "enterprise", ID: "acme"}, {Kind: "group", ID: "g1", ParentID: "other"}, {Kind: "serviceprovider", ID: "sp9"}}; !reflect.DeepEqual(env.XSI().Scopes, want) {
		t.Errorf("scopes from the environment %+v, want %+v", env.XSI().Scopes, want)
	}
	if env.XSI().MaxWatchedUsers != 1_000_000 {
		t.Errorf("max_watched_users from the environment %d", env.XSI().MaxWatchedUsers)
	}

	forms := `must be "group:<groupId>@<enterpriseId>", "enterprise:<enterpriseId>" or "serviceprovider:<serviceProviderId>"`
	for _, tt := range []struct {
		scope, key, reason string
	}{
		{"group:grp1@ent1,grp1", "xsi.scope[1]", `"grp1" ` + forms},
		{"group:grp1", "xsi.scope[0]", `"group:grp1" ` + forms},
		{"group:@ent1", "xsi.scope[0]", `"group:@ent1" ` + forms},
		{"user:agent1@example.com", "xsi.scope[0]", `"user:agent1@example.com" ` + forms},
		{"enterprise:a@b", "xsi.scope[0]", `"enterprise:a@b" ` + forms},
		{"enterprise:", "xsi.scope[0]", `"enterprise:" ` + forms},
		{"serviceprovider:a/b", "xsi.scope[0]", `"serviceprovider:a/b" ` + forms},
		{"group:g@e,enterprise:x,group:g@e", "xsi.scope[2]", `"group:g@e" is listed twice (also xsi.scope[0])`},
		{"enterprise:e,serviceprovider:e", "xsi.scope[1]", `"serviceprovider:e" overlaps xsi.scope[0] "enterprise:e" (the same users: their events would arrive twice)`},
		{"group:g@e,enterprise:e", "xsi.scope[1]", `"enterprise:e" overlaps xsi.scope[0] "group:g@e" (the same users: their events would arrive twice)`},
	} {
		t.Run(tt.scope, func(t *testing.T) {
			t.Setenv("CONNECTOR_XSI_SCOPE", tt.scope)
			_, err := config.Load(fixture("minimal.yaml"))
			var problems *config.Errors
			if !errors.As(err, &problems) || len(problems.Problems) != 1 {
				t.Fatalf("Load: %v, want one problem", err)
			}
			if p := problems.Problems[0]; p.Key != tt.key || p.Reason != tt.reason {
				t.Errorf("problem %s: %s\nwant      %s: %s", p.Key, p.Reason, tt.key, tt.reason)
			}
		})
	}

	next := config.Default()
	next.XSILink.Scope = []string{"enterprise:ent1"}
	next.XSILink.MaxWatchedUsers = 5
	if plan := config.PlanReload(config.Default(), next); !slices.Equal(plan.Refused, []string{"xsi.scope", "xsi.max_watched_users"}) {
		t.Errorf("reload refused %v, want xsi.scope and xsi.max_watched_users (restart)", plan.Refused)
	}
}
