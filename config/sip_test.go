package config_test

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/phonesync"
)

// writeConfig writes a YAML configuration to a temporary file and returns
// its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "connector.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var demoPhones = map[string]string{
	"4001": "phone4001", "4002": "phone4002", "4003": "phone4003", "4004": "phone4004",
	"desk1": "phonedesk1", "desk2": "phonedesk2",
}

// Where the configuration overlaps phonesync's, its defaults are
// phonesync.DefaultConfig(); the credentials are the demo's.
func TestSIPDefaults(t *testing.T) {
	c := config.Default()
	got := c.PhoneSync()
	if !maps.Equal(got.Credentials, demoPhones) {
		t.Errorf("Default().PhoneSync().Credentials = %v, want %v", got.Credentials, demoPhones)
	}
	got.Credentials = nil
	if want := phonesync.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default().PhoneSync() = %+v\nwant phonesync.DefaultConfig() = %+v", got, want)
	}
	if c.SIP.Listen != "127.0.0.1:5060" {
		t.Errorf("sip.listen = %q, want the CONTRACT's 127.0.0.1:5060", c.SIP.Listen)
	}
	g := c.Gateway()
	if g.ConflictWindow != 2*time.Second {
		t.Errorf("Gateway().ConflictWindow = %v, want 2s", g.ConflictWindow)
	}
	// Every demo agent has a password, and every password is a demo agent's.
	var agents []string
	for _, a := range g.AgentPasswords {
		agents = append(agents, a.AgentID)
	}
	var directory []string
	for _, a := range g.Agents {
		directory = append(directory, a.AgentID)
	}
	if !slices.Equal(agents, directory) {
		t.Errorf("agent passwords for %v, want one for each directory agent %v", agents, directory)
	}
	if got := mustLoad(t, ""); !reflect.DeepEqual(got.SIP, c.SIP) {
		t.Errorf("Load(\"\").SIP = %+v, want Default().SIP", got.SIP)
	}
}

func TestSIPEnvOverride(t *testing.T) {
	tests := []envCase{{
		name:  "listen",
		env:   map[string]string{"CONNECTOR_SIP_LISTEN": "0.0.0.0:15060"},
		check: func(c *config.Config) bool { return c.PhoneSync().Listen == "0.0.0.0:15060" },
	}, {
		name: "phones comma-separated, case-sensitive users, \"=\" in a password",
		env:  map[string]string{"CONNECTOR_SIP_AUTH_PHONES": "Alice=pw1, alice=p=w2 ,4001=x"},
		check: func(c *config.Config) bool {
			return maps.Equal(c.PhoneSync().Credentials, map[string]string{"Alice": "pw1", "alice": "p=w2", "4001": "x"})
		},
	}, {
		name: "agent passwords",
		env:  map[string]string{"CONNECTOR_SIP_AUTH_AGENT_PASSWORDS": "agent1=one,agent9@example.com=nine"},
		check: func(c *config.Config) bool {
			return reflect.DeepEqual(c.Gateway().AgentPasswords, []gateway.AgentPassword{
				{AgentID: "agent1", Password: "one"}, {AgentID: "agent9@example.com", Password: "nine"},
			})
		},
	}, {
		name: "numbers, booleans and durations from strings",
		env: map[string]string{
			"CONNECTOR_SIP_AUTH_REQUIRED":                "false",
			"CONNECTOR_SIP_LIMITS_SUBSCRIBE_RATE":        "2.5",
			"CONNECTOR_SIP_LIMITS_SUBSCRIBE_BURST":       "3",
			"CONNECTOR_SIP_NOTIFY_PER_FEATURE":           "true",
			"CONNECTOR_SIP_LIVENESS_OPTIONS_INTERVAL":    "0s",
			"CONNECTOR_SIP_SUBSCRIPTION_MAX_EXPIRES":     "2h",
			"CONNECTOR_GATEWAY_CONFLICT_WINDOW":          "0s",
			"CONNECTOR_SIP_SUBSCRIPTION_DEFAULT_EXPIRES": "90m",
		},
		check: func(c *config.Config) bool {
			p := c.PhoneSync()
			return !p.RequireAuth && p.SubscribeRate == 2.5 && p.SubscribeBurst == 3 && p.NotifyPerFeature &&
				p.OptionsInterval == 0 && p.MaxExpires == 2*time.Hour && p.DefaultExpires == 90*time.Minute &&
				c.Gateway().ConflictWindow == 0
		},
	}, {
		name: "presence",
		env: map[string]string{
			"CONNECTOR_SIP_PRESENCE_PBX":     "cucm.example.com:5060",
			"CONNECTOR_SIP_PRESENCE_DNS":     "4001, 4002",
			"CONNECTOR_SIP_PRESENCE_EXPIRES": "10m",
		},
		check: func(c *config.Config) bool {
			return reflect.DeepEqual(c.PhoneSync().Presence, phonesync.PresenceConfig{
				PBX: "cucm.example.com:5060", DNs: []string{"4001", "4002"}, Expires: 10 * time.Minute,
			})
		},
	}}
	runEnvCases(t, tests)
}

// Phone sync is switched off in the file with an empty sip.listen; the
// phone list may then be empty even with sip.auth.required.
func TestSIPOff(t *testing.T) {
	c := mustLoad(t, writeConfig(t, "sip:\n  listen: \"\"\n  auth:\n    phones: []\n"))
	if got := c.PhoneSync(); got.Listen != "" || got.Credentials != nil {
		t.Errorf("PhoneSync() = %+v, want Listen and Credentials empty", got)
	}
}

// The subscribe rate is a float: a YAML float, a YAML integer, and printed
// back so that it loads again.
func TestSIPSubscribeRateFromFile(t *testing.T) {
	for content, want := range map[string]float64{
		"sip:\n  limits:\n    subscribe_rate: 2.5\n": 2.5,
		"sip:\n  limits:\n    subscribe_rate: 7\n":   7,
	} {
		c := mustLoad(t, writeConfig(t, content))
		if c.SIP.Limits.SubscribeRate != want {
			t.Errorf("%q: subscribe_rate = %v, want %v", content, c.SIP.Limits.SubscribeRate, want)
		}
		out, err := c.YAML()
		if err != nil {
			t.Fatal(err)
		}
		if again := mustLoad(t, writeConfig(t, string(out))); again.SIP.Limits.SubscribeRate != want {
			t.Errorf("printed %v loads as %v:\n%s", want, again.SIP.Limits.SubscribeRate, out)
		}
	}
}

// TestSIPProblems checks that each sip.* and gateway.conflict_window problem
// is reported by its key path, nothing else is, and no password appears in
// the error.
func TestSIPProblems(t *testing.T) {
	tests := []struct {
		name string
		file string            // YAML; "" is minimal.yaml
		env  map[string]string // CONNECTOR_* variables
		want map[string]string // key path → part of the reason
	}{{
		name: "listen not host:port",
		env:  map[string]string{"CONNECTOR_SIP_LISTEN": "5060"},
		want: map[string]string{"sip.listen": `must be host:port, got "5060"`},
	}, {
		name: "listen on csta.listen",
		env:  map[string]string{"CONNECTOR_SIP_LISTEN": "127.0.0.1:18801"},
		want: map[string]string{"sip.listen": `must differ from csta.listen, both are "127.0.0.1:18801"`},
	}, {
		name: "listen on the simulator's address",
		env:  map[string]string{"CONNECTOR_SIP_LISTEN": "127.0.0.1:8090"},
		want: map[string]string{"sip.listen": `must differ from simulator.listen, both are "127.0.0.1:8090"`},
	}, {
		name: "tls listen alone",
		env:  map[string]string{"CONNECTOR_SIP_TLS_LISTEN": "127.0.0.1:5061"},
		want: map[string]string{
			"sip.tls.cert_file": "required when sip.tls.listen is set",
			"sip.tls.key_file":  "required when sip.tls.listen is set",
		},
	}, {
		name: "tls files alone, unreadable",
		env: map[string]string{
			"CONNECTOR_SIP_TLS_CERT_FILE": "testdata/config/no-such-cert.pem",
			"CONNECTOR_SIP_TLS_KEY_FILE":  "testdata/config/no-such-key.pem",
		},
		want: map[string]string{
			"sip.tls.listen":    "required when sip.tls.cert_file and sip.tls.key_file are set",
			"sip.tls.cert_file": "cannot read",
			"sip.tls.key_file":  "cannot read",
		},
	}, {
		name: "tls listen on sip.listen",
		env: map[string]string{
			"CONNECTOR_SIP_TLS_LISTEN":    "127.0.0.1:5060",
			"CONNECTOR_SIP_TLS_CERT_FILE": "testdata/config/password.txt",
			"CONNECTOR_SIP_TLS_KEY_FILE":  "testdata/config/password.txt",
		},
		want: map[string]string{"sip.tls.listen": `must differ from sip.listen, both are "127.0.0.1:5060"`},
	}, {
		name: "tls and presence without sip.listen",
		file: "sip:\n  listen: \"\"\n  presence:\n    pbx: pbx.example.com:5060\n    dns: [\"4001\"]\n",
		env: map[string]string{
			"CONNECTOR_SIP_TLS_LISTEN":    "127.0.0.1:5061",
			"CONNECTOR_SIP_TLS_CERT_FILE": "testdata/config/password.txt",
			"CONNECTOR_SIP_TLS_KEY_FILE":  "testdata/config/password.txt",
		},
		want: map[string]string{
			"sip.tls.listen":   "needs sip.listen",
			"sip.presence.pbx": "needs sip.listen",
		},
	}, {
		name: "realm",
		env:  map[string]string{"CONNECTOR_SIP_AUTH_REALM": `Broad"Works`},
		want: map[string]string{"sip.auth.realm": "must be a non-empty realm without quotes"},
	}, {
		name: "item without password, agent without name",
		env: map[string]string{
			"CONNECTOR_SIP_AUTH_PHONES":          "4001=secret-one,4002=",
			"CONNECTOR_SIP_AUTH_AGENT_PASSWORDS": "=secret-two",
		},
		want: map[string]string{
			"sip.auth.phones":          `item 1: must be "user=password"`,
			"sip.auth.agent_passwords": `item 0: must be "agent=password"`,
		},
	}, {
		name: "item without \"=\", blank in a user name",
		file: "sip:\n  auth:\n    phones: [\"secret-one\"]\n    agent_passwords: [\"agent 1=secret-two\"]\n",
		want: map[string]string{
			"sip.auth.phones":          `item 0: must be "user=password"`,
			"sip.auth.agent_passwords": `item 0: must be "agent=password"`,
		},
	}, {
		name: "duplicates",
		env: map[string]string{
			"CONNECTOR_SIP_AUTH_PHONES":          "4001=secret-one,4001=secret-two",
			"CONNECTOR_SIP_AUTH_AGENT_PASSWORDS": "agent1=secret-three,agent1=secret-four",
			"CONNECTOR_SIP_PRESENCE_PBX":         "pbx.example.com:5060",
			"CONNECTOR_SIP_PRESENCE_DNS":         "4001,4001",
		},
		want: map[string]string{
			"sip.auth.phones":          `user "4001" is listed twice`,
			"sip.auth.agent_passwords": `agent "agent1" is listed twice`,
			"sip.presence.dns":         `"4001" is listed twice`,
		},
	}, {
		name: "no phones while authentication is required",
		file: "sip:\n  auth:\n    phones: []\n",
		want: map[string]string{"sip.auth.phones": "at least one phone is required when sip.auth.required is true"},
	}, {
		name: "agent that names no user",
		file: "directory:\n  domain: \"\"\n",
		env:  map[string]string{"CONNECTOR_SIP_AUTH_AGENT_PASSWORDS": "agent1=secret-one,agent9=secret-two,x@example.com=secret-three"},
		want: map[string]string{"sip.auth.agent_passwords": `agent "agent9" is not in directory.agents and directory.domain is empty`},
	}, {
		name: "two names for one agent",
		env:  map[string]string{"CONNECTOR_SIP_AUTH_AGENT_PASSWORDS": "agent1=secret-one,agent1@example.com=secret-two"},
		want: map[string]string{"sip.auth.agent_passwords": `agents "agent1" and "agent1@example.com" are the same user "agent1@example.com"`},
	}, {
		name: "two names for one agent by the domain rule",
		env:  map[string]string{"CONNECTOR_SIP_AUTH_AGENT_PASSWORDS": "bob=secret-one,bob@example.com=secret-two"},
		want: map[string]string{"sip.auth.agent_passwords": `agents "bob" and "bob@example.com" are the same user "bob@example.com"`},
	}, {
		name: "subscription minimum",
		env:  map[string]string{"CONNECTOR_SIP_SUBSCRIPTION_MIN_EXPIRES": "500ms"},
		want: map[string]string{"sip.subscription.min_expires": "must be at least 1s, got 500ms"},
	}, {
		name: "subscription bounds inverted",
		env:  map[string]string{"CONNECTOR_SIP_SUBSCRIPTION_MIN_EXPIRES": "2h"},
		want: map[string]string{"sip.subscription.max_expires": "must be at least sip.subscription.min_expires (2h), got 1h"},
	}, {
		name: "subscription default out of bounds",
		env:  map[string]string{"CONNECTOR_SIP_SUBSCRIPTION_DEFAULT_EXPIRES": "30s"},
		want: map[string]string{"sip.subscription.default_expires": "must be between sip.subscription.min_expires (60s) and sip.subscription.max_expires (1h), got 30s"},
	}, {
		name: "limits",
		env: map[string]string{
			"CONNECTOR_SIP_LIMITS_MAX_SUBSCRIPTIONS": "0",
			"CONNECTOR_SIP_LIMITS_SUBSCRIBE_RATE":    "0",
			"CONNECTOR_SIP_LIMITS_SUBSCRIBE_BURST":   "0",
			"CONNECTOR_SIP_LIMITS_MAX_BODY_BYTES":    "512",

			"CONNECTOR_SIP_LIMITS_TCP_MAX_CONNECTIONS":            "0",
			"CONNECTOR_SIP_LIMITS_TCP_MAX_CONNECTIONS_PER_SOURCE": "-1",
			"CONNECTOR_SIP_LIMITS_TCP_IDLE_TIMEOUT":               "500ms",
		},
		want: map[string]string{
			"sip.limits.max_subscriptions": "must be at least 1, got 0",
			"sip.limits.subscribe_rate":    "must be a positive number",
			"sip.limits.subscribe_burst":   "must be at least 1, got 0",
			"sip.limits.max_body_bytes":    "must be between 1024 and 1048576, got 512",

			"sip.limits.tcp_max_connections":            "must be at least 1, got 0",
			"sip.limits.tcp_max_connections_per_source": "must be at least 1, got -1",
			"sip.limits.tcp_idle_timeout":               "must be at least 1s, got 500ms",
		},
	}, {
		name: "limits: wrong types and too large",
		env: map[string]string{
			"CONNECTOR_SIP_LIMITS_SUBSCRIBE_RATE": "fast",
			"CONNECTOR_SIP_LIMITS_MAX_BODY_BYTES": "2000000",
			"CONNECTOR_SIP_AGENT_STATE":           "sometimes",
		},
		want: map[string]string{
			"sip.limits.subscribe_rate": `must be a number, got "fast"`,
			"sip.limits.max_body_bytes": "must be between 1024 and 1048576, got 2000000",
			"sip.agent_state":           `must be true or false, got "sometimes"`,
		},
	}, {
		name: "subscribe rate not finite",
		env:  map[string]string{"CONNECTOR_SIP_LIMITS_SUBSCRIBE_RATE": "NaN"},
		want: map[string]string{"sip.limits.subscribe_rate": `must be a finite number, got "NaN"`},
	}, {
		name: "negative options interval",
		env:  map[string]string{"CONNECTOR_SIP_LIVENESS_OPTIONS_INTERVAL": "-1s"},
		want: map[string]string{"sip.liveness.options_interval": "must be 0 (no OPTIONS pings) or positive, got -1s"},
	}, {
		name: "liveness timeout not above the interval",
		env:  map[string]string{"CONNECTOR_SIP_LIVENESS_TIMEOUT": "15s"},
		want: map[string]string{"sip.liveness.timeout": "must be longer than sip.liveness.options_interval (15s), got 15s"},
	}, {
		name: "liveness timeout not positive",
		env:  map[string]string{"CONNECTOR_SIP_LIVENESS_TIMEOUT": "0s", "CONNECTOR_SIP_LIVENESS_OPTIONS_INTERVAL": "0s"},
		want: map[string]string{"sip.liveness.timeout": "must be positive, got 0s"},
	}, {
		name: "state file, request timeout, conflict window",
		env: map[string]string{
			"CONNECTOR_SIP_STATE_FILE":          "/nonexistent-dir/sip.json",
			"CONNECTOR_SIP_REQUEST_TIMEOUT":     "0s",
			"CONNECTOR_GATEWAY_CONFLICT_WINDOW": "2m",
		},
		want: map[string]string{
			"sip.state_file":          `directory "/nonexistent-dir" of "/nonexistent-dir/sip.json" does not exist`,
			"sip.request_timeout":     "must be positive, got 0s",
			"gateway.conflict_window": "must be between 0s (off) and 1m, got 120s",
		},
	}, {
		name: "negative conflict window",
		env:  map[string]string{"CONNECTOR_GATEWAY_CONFLICT_WINDOW": "-1s"},
		want: map[string]string{"gateway.conflict_window": "must be between 0s (off) and 1m, got -1s"},
	}, {
		name: "presence without DNs, short expiry",
		env: map[string]string{
			"CONNECTOR_SIP_PRESENCE_PBX":     "pbx.example.com:5060",
			"CONNECTOR_SIP_PRESENCE_EXPIRES": "30s",
		},
		want: map[string]string{
			"sip.presence.dns":     "at least one DN is required when sip.presence.pbx is set",
			"sip.presence.expires": "must be at least 60s, got 30s",
		},
	}, {
		name: "presence PBX without port, DN with a domain",
		env: map[string]string{
			"CONNECTOR_SIP_PRESENCE_PBX": "pbx.example.com",
			"CONNECTOR_SIP_PRESENCE_DNS": "4001@pbx.example.com",
		},
		want: map[string]string{
			"sip.presence.pbx": `must be empty or host:port, got "pbx.example.com"`,
			"sip.presence.dns": `item "4001@pbx.example.com": must be a DN`,
		},
	}, {
		name: "presence PBX port 0",
		env:  map[string]string{"CONNECTOR_SIP_PRESENCE_PBX": "pbx.example.com:0", "CONNECTOR_SIP_PRESENCE_DNS": "4001"},
		want: map[string]string{"sip.presence.pbx": `port must be a number from 1 to 65535, got "0"`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, value := range tt.env {
				t.Setenv(name, value)
			}
			path := fixture("minimal.yaml")
			if tt.file != "" {
				path = writeConfig(t, tt.file)
			}
			_, err := config.Load(path)
			var problems *config.Errors
			if !errors.As(err, &problems) {
				t.Fatalf("Load = %v, want *config.Errors", err)
			}
			got := make(map[string]string)
			for _, p := range problems.Problems {
				got[p.Key] = p.Reason
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
			}
			if strings.Contains(err.Error(), "secret-") {
				t.Errorf("the error shows a password:\n%v", err)
			}
		})
	}
}

func TestSIPMasked(t *testing.T) {
	t.Setenv("CONNECTOR_SIP_AUTH_PHONES", "Alice=phone-secret-1,4001=phone-secret-2")
	t.Setenv("CONNECTOR_SIP_AUTH_AGENT_PASSWORDS", "agent1=agent-secret-1,agent2=agent-secret-2")
	cfg := mustLoad(t, "")
	masked := cfg.Masked()
	if want := []string{"Alice=***", "4001=***"}; !slices.Equal(masked.SIP.Auth.Phones, want) {
		t.Errorf("masked sip.auth.phones = %q, want %q", masked.SIP.Auth.Phones, want)
	}
	if want := []string{"agent1=***", "agent2=***"}; !slices.Equal(masked.SIP.Auth.AgentPasswords, want) {
		t.Errorf("masked sip.auth.agent_passwords = %q, want %q", masked.SIP.Auth.AgentPasswords, want)
	}
	if cfg.SIP.Auth.Phones[0] != "Alice=phone-secret-1" || cfg.SIP.Auth.AgentPasswords[1] != "agent2=agent-secret-2" {
		t.Error("Masked changed the original")
	}
	out, err := masked.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"phone-secret", "agent-secret"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("masked YAML shows %q:\n%s", secret, out)
		}
	}
	// What check-config prints loads again, names intact.
	t.Setenv("CONNECTOR_SIP_AUTH_PHONES", "")
	t.Setenv("CONNECTOR_SIP_AUTH_AGENT_PASSWORDS", "")
	again := mustLoad(t, writeConfig(t, string(out)))
	if !slices.Equal(again.SIP.Auth.Phones, masked.SIP.Auth.Phones) ||
		!slices.Equal(again.SIP.Auth.AgentPasswords, masked.SIP.Auth.AgentPasswords) {
		t.Errorf("printed lists load as %q %q", again.SIP.Auth.Phones, again.SIP.Auth.AgentPasswords)
	}
	// The demo defaults are masked too.
	out, err = config.Default().Masked().YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"phone4001", "phonedesk2", "agent1pw", "agent4pw"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("masked default YAML shows %q", secret)
		}
	}
}

func TestPhoneSyncConversion(t *testing.T) {
	c := config.Default()
	c.SIP = config.SIP{
		Listen: "0.0.0.0:5070",
		TLS:    config.SIPTLS{Listen: "0.0.0.0:5071", CertFile: "sip.crt", KeyFile: "sip.key"},
		Auth: config.SIPAuth{
			Realm: "acme", Required: false,
			Phones:         []string{"Desk-A=a", "desk-a=b=c"},
			AgentPasswords: []string{"A1=x"},
		},
		Subscription: config.SIPSubscription{MinExpires: 30 * time.Second, MaxExpires: 2 * time.Hour, DefaultExpires: 20 * time.Minute},
		Limits: config.SIPLimits{MaxSubscriptions: 10, SubscribeRate: 0.5, SubscribeBurst: 2, MaxBodyBytes: 4096,
			TCPMaxConnections: 300, TCPMaxConnectionsPerSource: 30, TCPIdleTimeout: 90 * time.Second},
		NotifyPerFeature: true,
		AgentState:       false,
		Liveness:         config.SIPLiveness{OptionsInterval: 0, Timeout: 45 * time.Second},
		StateFile:        "sip.json",
		RequestTimeout:   time.Second,
		Presence:         config.SIPPresence{PBX: "cucm:5060", DNs: []string{"4001", "4002"}, Expires: 10 * time.Minute},
	}
	want := phonesync.Config{
		Listen:    "0.0.0.0:5070",
		TLSListen: "0.0.0.0:5071", TLSCertFile: "sip.crt", TLSKeyFile: "sip.key",
		Realm:       "acme",
		Credentials: map[string]string{"Desk-A": "a", "desk-a": "b=c"},
		RequireAuth: false,
		MinExpires:  30 * time.Second, MaxExpires: 2 * time.Hour, DefaultExpires: 20 * time.Minute,
		MaxSubscriptions: 10, SubscribeRate: 0.5, SubscribeBurst: 2, MaxBodyBytes: 4096,
		TCPMaxConnections: 300, TCPMaxConnectionsPerSource: 30, TCPIdleTimeout: 90 * time.Second,
		NotifyPerFeature: true, AgentState: false,
		OptionsInterval: 0, LivenessTimeout: 45 * time.Second,
		StateFile:      "", // migrated into the store, not written
		RequestTimeout: time.Second,
		Presence:       phonesync.PresenceConfig{PBX: "cucm:5060", DNs: []string{"4001", "4002"}, Expires: 10 * time.Minute},
	}
	got := c.PhoneSync()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PhoneSync() = %+v\nwant %+v", got, want)
	}
	got.Presence.DNs[0] = "changed"
	if c.SIP.Presence.DNs[0] != "4001" {
		t.Error("PhoneSync() shares sip.presence.dns with the Config")
	}
	if got := c.Gateway().AgentPasswords; !reflect.DeepEqual(got, []gateway.AgentPassword{{AgentID: "A1", Password: "x"}}) {
		t.Errorf("Gateway().AgentPasswords = %+v", got)
	}
}

func TestGatewayConflictWindowAndAgentPasswords(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		window    time.Duration
		passwords []gateway.AgentPassword
	}{{
		name:   "defaults",
		window: 2 * time.Second,
		passwords: []gateway.AgentPassword{
			{AgentID: "agent1", Password: "agent1pw"}, {AgentID: "agent2", Password: "agent2pw"},
			{AgentID: "agent3", Password: "agent3pw"}, {AgentID: "agent4", Password: "agent4pw"},
		},
	}, {
		name: "from the environment",
		env: map[string]string{
			"CONNECTOR_GATEWAY_CONFLICT_WINDOW":  "500ms",
			"CONNECTOR_SIP_AUTH_AGENT_PASSWORDS": "Agent1=s=cret,agent2@example.com=pw2",
		},
		window: 500 * time.Millisecond,
		passwords: []gateway.AgentPassword{
			{AgentID: "Agent1", Password: "s=cret"}, {AgentID: "agent2@example.com", Password: "pw2"},
		},
	}, {
		name:      "window off",
		env:       map[string]string{"CONNECTOR_GATEWAY_CONFLICT_WINDOW": "0s", "CONNECTOR_SIP_AUTH_AGENT_PASSWORDS": "agent3=x"},
		window:    0,
		passwords: []gateway.AgentPassword{{AgentID: "agent3", Password: "x"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, value := range tt.env {
				t.Setenv(name, value)
			}
			g := mustLoad(t, "").Gateway()
			if g.ConflictWindow != tt.window || !reflect.DeepEqual(g.AgentPasswords, tt.passwords) {
				t.Errorf("Gateway() conflict window %v, agent passwords %+v; want %v, %+v",
					g.ConflictWindow, g.AgentPasswords, tt.window, tt.passwords)
			}
		})
	}
}

// No sip.* key applies live yet (the phonesync server has no way to take
// new settings), and neither does gateway.conflict_window: each change is
// refused by its key and kept at the running value.
func TestSIPReload(t *testing.T) {
	tests := []struct {
		name   string
		change func(*config.Config)
		keys   []string
	}{
		{"listen", func(c *config.Config) { c.SIP.Listen = "127.0.0.1:5070" }, []string{"sip.listen"}},
		{"tls", func(c *config.Config) {
			c.SIP.TLS = config.SIPTLS{Listen: "127.0.0.1:5061", CertFile: "c.pem", KeyFile: "k.pem"}
		}, []string{"sip.tls.listen", "sip.tls.cert_file", "sip.tls.key_file"}},
		{"state file", func(c *config.Config) { c.SIP.StateFile = "sip.json" }, []string{"sip.state_file"}},
		{"presence", func(c *config.Config) {
			c.SIP.Presence.PBX = "pbx:5060"
			c.SIP.Presence.DNs = []string{"4001"}
			c.SIP.Presence.Expires = time.Minute
		}, []string{"sip.presence.pbx", "sip.presence.dns", "sip.presence.expires"}},
		{"credentials", func(c *config.Config) {
			c.SIP.Auth.Phones = []string{"4001=new"}
			c.SIP.Auth.AgentPasswords = nil
		}, []string{"sip.auth.phones", "sip.auth.agent_passwords"}},
		{"liveness", func(c *config.Config) { c.SIP.Liveness.Timeout = time.Minute }, []string{"sip.liveness.timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			running := config.Default()
			next := config.Default()
			tt.change(next)
			next.Log.Level = "debug" // a live change alongside
			plan := config.PlanReload(running, next)
			wantChanged := append([]string{"log.level"}, tt.keys...)
			if !slices.Equal(plan.Changed, wantChanged) {
				t.Errorf("Changed = %v, want %v", plan.Changed, wantChanged)
			}
			if !slices.Equal(plan.Refused, tt.keys) {
				t.Errorf("Refused = %v, want %v", plan.Refused, tt.keys)
			}
			if got := config.Diff(running, plan.Apply); !slices.Equal(got, []string{"log.level"}) {
				t.Errorf("Apply changes %v, want only log.level", got)
			}
			if !reflect.DeepEqual(plan.Apply.PhoneSync(), running.PhoneSync()) {
				t.Error("Apply's PhoneSync() differs from the running one")
			}
		})
	}
	for _, key := range config.Keys() {
		live := strings.HasPrefix(key, "sip.limits.")
		if strings.HasPrefix(key, "sip.") && config.NeedsRestart(key) == live {
			t.Errorf("NeedsRestart(%s) = %v", key, !live)
		}
	}
	// The limits apply live.
	next := config.Default()
	next.SIP.Limits.SubscribeRate = 1
	next.SIP.Limits.MaxSubscriptions = 10
	plan := config.PlanReload(config.Default(), next)
	if len(plan.Refused) != 0 || plan.Apply.PhoneSync().SubscribeRate != 1 || plan.Apply.PhoneSync().MaxSubscriptions != 10 {
		t.Errorf("a limits reload: refused %v, applied %+v", plan.Refused, plan.Apply.PhoneSync())
	}
}
