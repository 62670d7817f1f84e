package config_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/csta"
)

// CTI users (csta.auth.users, csta.websocket.auth.users) and their device
// limits (csta.authorization.devices).

const twoListenersWithUsers = `
csta:
  require_session: true
  auth:
    mode: password
    username: alice
    password: alice-secret
    users: ["bob=bob-secret", "Carol=c=3"]
  websocket:
    auth:
      mode: password
      users: ["web=web-secret"]
  authorization:
    devices: ["alice=4001 desk1", "web=4002", "Carol=4003"]
`

func TestCSTAUsersAndDeviceLimits(t *testing.T) {
	front := mustLoad(t, writeConfig(t, twoListenersWithUsers)).CSTA()
	want := csta.Config{
		TCPAuth: csta.Auth{Mode: "password", UserName: "alice", Password: "alice-secret",
			Users: map[string]string{"bob": "bob-secret", "Carol": "c=3"}}, // the password is all after the first "="
		WebSocketAuth: csta.Auth{Mode: "password", Users: map[string]string{"web": "web-secret"}},
		DeviceLimits:  map[string][]csta.DeviceID{"alice": {"4001", "desk1"}, "web": {"4002"}, "Carol": {"4003"}},
	}
	if !reflect.DeepEqual(front.TCPAuth, want.TCPAuth) || !reflect.DeepEqual(front.WebSocketAuth, want.WebSocketAuth) ||
		!reflect.DeepEqual(front.DeviceLimits, want.DeviceLimits) {
		t.Errorf("CSTA() = %+v / %+v / %v\nwant %+v / %+v / %v", front.TCPAuth, front.WebSocketAuth, front.DeviceLimits,
			want.TCPAuth, want.WebSocketAuth, want.DeviceLimits)
	}
}

func TestCSTAUsersProblems(t *testing.T) {
	const passwordAuth = "csta:\n  require_session: true\n  auth:\n    mode: password\n"
	tests := []struct {
		name string
		yaml string
		want map[string]string // key path → part of the reason
	}{{
		name: "users alone are enough",
		yaml: passwordAuth + `    users: ["bob=pw"]` + "\n",
	}, {
		name: "a user without a password",
		yaml: passwordAuth + `    users: ["bob=pw", "carol-secret"]` + "\n",
		want: map[string]string{"csta.auth.users": `item 1: must be "user=password"`},
	}, {
		name: "a user twice",
		yaml: passwordAuth + `    users: ["bob=pw", "bob=other"]` + "\n",
		want: map[string]string{"csta.auth.users": `user "bob" is listed twice`},
	}, {
		name: "username repeated in users",
		yaml: passwordAuth + "    username: bob\n    password: pw\n" + `    users: ["bob=other"]` + "\n",
		want: map[string]string{"csta.auth.users": `user "bob" is also csta.auth.username`},
	}, {
		name: "a username without a password beside users",
		yaml: passwordAuth + "    username: alice\n" + `    users: ["bob=pw"]` + "\n",
		want: map[string]string{"csta.auth.password": "required when csta.auth.mode is password"},
	}, {
		name: "no user at all",
		yaml: passwordAuth,
		want: map[string]string{
			"csta.auth.username": "required when csta.auth.mode is password (or list users in csta.auth.users)",
			"csta.auth.password": "required when csta.auth.mode is password",
		},
	}, {
		name: "websocket users",
		yaml: "csta:\n  require_session: true\n  websocket:\n    auth:\n      mode: password\n" + `      users: ["=pw"]` + "\n",
		want: map[string]string{"csta.websocket.auth.users": `item 0: must be "user=password"`},
	}, {
		name: "limits for a user no listener has",
		yaml: passwordAuth + `    users: ["bob=pw"]` + "\n  authorization:\n" + `    devices: ["bob=4001", "carol=4002"]` + "\n",
		want: map[string]string{"csta.authorization.devices": `item 1: user "carol" is not a user of csta.auth.username or csta.auth.users`},
	}, {
		name: "limits without authentication",
		yaml: "csta:\n  authorization:\n" + `    devices: ["bob=4001"]` + "\n",
		want: map[string]string{"csta.authorization.devices": "no user is authenticated"},
	}, {
		name: "limits for a user of a listener whose mode is none",
		yaml: "csta:\n  auth:\n" + `    users: ["bob=pw"]` + "\n  authorization:\n" + `    devices: ["bob=4001"]` + "\n",
		want: map[string]string{"csta.authorization.devices": `user "bob" is not a user of any listener`},
	}, {
		name: "devices separated by commas",
		yaml: passwordAuth + `    users: ["bob=pw"]` + "\n  authorization:\n" + `    devices: ["bob=4001,4002"]` + "\n",
		want: map[string]string{"csta.authorization.devices": "devices are separated by blanks, not commas"},
	}, {
		name: "a user without devices",
		yaml: passwordAuth + `    users: ["bob=pw"]` + "\n  authorization:\n" + `    devices: ["bob=  "]` + "\n",
		want: map[string]string{"csta.authorization.devices": `must be "user=device device …"`},
	}, {
		name: "limits for a user twice",
		yaml: passwordAuth + `    users: ["bob=pw"]` + "\n  authorization:\n" + `    devices: ["bob=4001", "bob=4002"]` + "\n",
		want: map[string]string{"csta.authorization.devices": `user "bob" is listed twice`},
	}, {
		name: "limits are not a list",
		yaml: "csta:\n  authorization:\n    devices: {bob: 4001}\n",
		want: map[string]string{"csta.authorization.devices": "must be a list of strings"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(writeConfig(t, tt.yaml))
			got := map[string]string{}
			var problems *config.Errors
			if errors.As(err, &problems) {
				for _, p := range problems.Problems {
					got[p.Key] = p.Reason
				}
			} else if err != nil {
				t.Fatal(err)
			}
			for key, reason := range tt.want {
				if !strings.Contains(got[key], reason) {
					t.Errorf("problem for %s = %q, want it to contain %q", key, got[key], reason)
				}
			}
			for key, reason := range got {
				if _, ok := tt.want[key]; !ok {
					t.Errorf("unexpected problem %s: %s", key, reason)
				}
				if strings.Contains(reason, "secret") || strings.Contains(reason, "pw") {
					t.Errorf("problem for %s shows a password: %s", key, reason)
				}
			}
		})
	}
}

func TestCSTAUsersFromTheEnvironment(t *testing.T) {
	runEnvCases(t, []envCase{{
		name: "users and device limits as comma-separated lists",
		env: map[string]string{
			"CONNECTOR_CSTA_REQUIRE_SESSION":       "true",
			"CONNECTOR_CSTA_AUTH_MODE":             "password",
			"CONNECTOR_CSTA_AUTH_USERS":            "bob=pw1, carol=pw2",
			"CONNECTOR_CSTA_WEBSOCKET_AUTH_MODE":   "password",
			"CONNECTOR_CSTA_WEBSOCKET_AUTH_USERS":  "web=pw3",
			"CONNECTOR_CSTA_AUTHORIZATION_DEVICES": "bob=4001 desk1,web=4002",
		},
		check: func(c *config.Config) bool {
			f := c.CSTA()
			return slices.Equal(c.CSTAFrontEnd.Auth.Users, []string{"bob=pw1", "carol=pw2"}) &&
				reflect.DeepEqual(f.TCPAuth.Users, map[string]string{"bob": "pw1", "carol": "pw2"}) &&
				reflect.DeepEqual(f.WebSocketAuth.Users, map[string]string{"web": "pw3"}) &&
				reflect.DeepEqual(f.DeviceLimits, map[string][]csta.DeviceID{"bob": {"4001", "desk1"}, "web": {"4002"}})
		},
	}})
}

// check-config prints Masked().YAML(): user names stay, passwords do not,
// and the printed file loads again.
func TestCSTAUsersMasked(t *testing.T) {
	cfg := mustLoad(t, writeConfig(t, twoListenersWithUsers))
	masked := cfg.Masked()
	if got, want := masked.CSTAFrontEnd.Auth.Users, []string{"bob=***", "Carol=***"}; !slices.Equal(got, want) {
		t.Errorf("csta.auth.users masked as %v, want %v", got, want)
	}
	if got, want := masked.CSTAFrontEnd.WebSocket.Auth.Users, []string{"web=***"}; !slices.Equal(got, want) {
		t.Errorf("csta.websocket.auth.users masked as %v, want %v", got, want)
	}
	if !slices.Equal(cfg.CSTAFrontEnd.Auth.Users, []string{"bob=bob-secret", "Carol=c=3"}) {
		t.Errorf("Masked changed the original: %v", cfg.CSTAFrontEnd.Auth.Users)
	}
	out, err := masked.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"alice-secret", "bob-secret", "c=3", "web-secret"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("masked YAML shows %q:\n%s", secret, out)
		}
	}
	for _, shown := range []string{"bob=***", "web=***", "alice=4001 desk1"} {
		if !strings.Contains(string(out), shown) {
			t.Errorf("masked YAML lacks %q:\n%s", shown, out)
		}
	}
	again := mustLoad(t, writeConfig(t, string(out)))
	if got, want := config.Diff(cfg, again), []string{
		"csta.auth.password", "csta.auth.users", "csta.websocket.auth.users", "sip.auth.phones", "sip.auth.agent_passwords",
	}; !slices.Equal(got, want) {
		t.Errorf("round trip changed %v, want %v", got, want)
	}
}

// Users and device limits apply live: a reload does not refuse them.
func TestCSTAUsersReloadLive(t *testing.T) {
	running := mustLoad(t, writeConfig(t, twoListenersWithUsers))
	next := mustLoad(t, writeConfig(t, strings.NewReplacer(
		`"alice=4001 desk1"`, `"alice=4001 4002 desk1"`,
		`"bob=bob-secret", `, ``,
		`"web=web-secret"`, `"web=web-secret", "kiosk=k"`,
	).Replace(twoListenersWithUsers)))
	plan := config.PlanReload(running, next)
	if want := []string{"csta.auth.users", "csta.websocket.auth.users", "csta.authorization.devices"}; !slices.Equal(plan.Changed, want) || len(plan.Refused) != 0 {
		t.Fatalf("reload changed %v, refused %v; want %v changed, none refused", plan.Changed, plan.Refused, want)
	}
	front := plan.Apply.CSTA()
	if got := front.DeviceLimits["alice"]; !slices.Equal(got, []csta.DeviceID{"4001", "4002", "desk1"}) {
		t.Errorf("applied limits of alice = %v", got)
	}
	if _, ok := front.TCPAuth.Users["bob"]; ok || front.WebSocketAuth.Users["kiosk"] != "k" {
		t.Errorf("applied users = %v / %v", front.TCPAuth.Users, front.WebSocketAuth.Users)
	}
}
