package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/csta"
)

// The tests run from the repository root, so fixture paths and the
// password_file paths inside fixtures read the way an operator writes them.
func TestMain(m *testing.M) {
	if err := os.Chdir(".."); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

func fixture(name string) string { return filepath.Join("testdata", "config", name) }

func mustLoad(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return cfg
}

func TestDefaultIsFrontEndDefault(t *testing.T) {
	if got, want := config.Default().CSTA(), csta.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default().CSTA() = %+v\nwant csta.DefaultConfig() = %+v", got, want)
	}
}

// config.example.yaml documents every key with its default value.
func TestExampleDocumentsEveryDefault(t *testing.T) {
	const example = "config.example.yaml"
	if got := mustLoad(t, example); !reflect.DeepEqual(got, config.Default()) {
		t.Errorf("%s differs from Default() at %v", example, config.Diff(config.Default(), got))
	}
	v := viper.New()
	v.SetConfigFile(example)
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	fileKeys, keys := v.AllKeys(), config.Keys()
	slices.Sort(fileKeys)
	slices.Sort(keys)
	if !slices.Equal(fileKeys, keys) {
		t.Errorf("%s keys = %v\nwant %v", example, fileKeys, keys)
	}
}

func TestLoadGood(t *testing.T) {
	want := config.Default()
	want.Log = config.Log{Level: "debug", Format: "json"}
	f := &want.CSTAFrontEnd
	f.Listen = "127.0.0.1:18800"
	f.Auth = config.Auth{Mode: "password", Username: "cti-app", Password: "s3cret", PasswordFile: "testdata/config/password.txt", Users: []string{}}
	f.RequireSession = true
	f.DefaultEdition = "ed6"
	f.Session = config.Session{DefaultDuration: 5 * time.Minute, MinDuration: 30 * time.Second, MaxDuration: 2 * time.Hour}
	// Keys good.yaml does not set keep their defaults.
	f.Limits.MaxConnections, f.Limits.MaxOutstandingRequests, f.Limits.MaxMonitorsPerConnection = 10, 8, 50
	f.Limits.MaxFrameBytes, f.Limits.MaxXMLDepth, f.Limits.WriteQueueLength = 4096, 16, 64
	f.Limits.WriteTimeout, f.Limits.RequestTimeout = 2*time.Second, 3*time.Second
	f.Limits.HandshakeTimeout, f.Limits.IdleTimeout = 4*time.Second, time.Minute
	f.WebSocket = config.WebSocket{Enabled: false, Auth: config.Auth{Mode: "password", Username: "web-app", Password: "inline-secret", Users: []string{}}}
	want.Admin.Listen = "127.0.0.1:18080"
	want.XSILink = config.XSI{
		Simulate:        false,
		Servers:         []string{"https://xsp1.example.com", "https://xsp2.example.com:8443/"},
		Username:        "gw-admin@example.com",
		Password:        "xsi-secret",
		ChannelSetID:    "connector-7",
		ApplicationID:   "cti-gateway",
		ProtocolVersion: "22.0",
		RequestTimeout:  5 * time.Second, MaxInFlight: 8, RateLimit: 20, RateBurst: 5, MaxRetries: 0,
		HeartbeatInterval: 10 * time.Second, ChannelExpires: 2 * time.Hour, SubscriptionExpires: 30 * time.Minute,
		ReconnectMin: 500 * time.Millisecond, ReconnectMax: 30 * time.Second,
		Scope:           []string{"group:sales@acme", "serviceprovider:sp2"},
		Targets:         []string{"user:agent1@example.com", "group:sales@acme", "enterprise:acme"},
		EventPackages:   []string{"Call Forwarding Busy", "Call Forwarding No Answer"},
		MaxWatchedUsers: 500,
	}
	want.XSPSimulator = config.Simulator{
		Listen:           "127.0.0.1:18090",
		Users:            []string{"a1@example.net", "a2@example.net", "h1@example.net"},
		HotelingHosts:    []string{"h1@example.net"},
		CallCenterAgents: []string{"a1@example.net", "a2@example.net"},
		SignedInAgents:   []string{},
		EnterpriseID:     "acme",
		GroupID:          "sales",
		UnavailableCodes: []string{"BREAK:Coffee break"},
		EventAckTimeout:  0,
	}
	want.Directory = config.Directory{
		Domain:      "example.net",
		Devices:     []string{"+1555=a1@example.net", "Desk-A=h1@example.net,hotdesk"},
		Agents:      []string{"A1=a1@example.net", "A2=a2@example.net,+1556"},
		ReasonCodes: []string{"Coffee=BREAK"},
		IdleTTL:     10 * time.Minute, MaxConcurrentLoads: 16, // defaults
	}
	want.GatewayCore = config.GatewaySettings{RequestTimeout: 0, ConflictWindow: 2 * time.Second}
	want.HotDesks = config.HotelingSettings{
		StepTimeout: 2 * time.Second, QueueLength: 0, RefuseOccupiedHost: true, RecoverMode: "complete",
		Admission: true, // default
	}

	got := mustLoad(t, fixture("good.yaml"))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(good.yaml) differs at %v\ngot  %+v\nwant %+v", config.Diff(want, got), got, want)
	}
	if front := got.CSTA(); front.DefaultEdition != csta.Edition6 || front.TCPAuth.UserName != "cti-app" ||
		front.TCPAuth.Password != "s3cret" || front.MaxMonitorsPerConn != 50 {
		t.Errorf("CSTA() = %+v", front)
	}
}

func TestLoadEmptyFileAndNoFile(t *testing.T) {
	for _, path := range []string{fixture("empty.yaml"), ""} {
		if got := mustLoad(t, path); !reflect.DeepEqual(got, config.Default()) {
			t.Errorf("Load(%q) differs from Default() at %v", path, config.Diff(config.Default(), got))
		}
	}
}

func TestLoadUnreadableFile(t *testing.T) {
	for _, name := range []string{"no-such-file.yaml", "malformed.yaml"} {
		_, err := config.Load(fixture(name))
		var problems *config.Errors
		if err == nil || errors.As(err, &problems) {
			t.Errorf("Load(%s) = %v, want a plain read error", name, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "config: ") || !strings.Contains(err.Error(), name) {
			t.Errorf("Load(%s) error %q should start with config: and name the file", name, err)
		}
	}
}

// TestLoadProblems checks that every problem is reported, each by its key
// path, and nothing else.
func TestLoadProblems(t *testing.T) {
	tests := []struct {
		name    string
		fixture string
		env     map[string]string
		want    map[string]string // key path → part of the reason
	}{{
		name:    "wrong types",
		fixture: "wrong_type.yaml",
		want: map[string]string{
			"log.level":                   "must be a string",
			"csta.listen":                 "must be a string (quote it), got 8800",
			"csta.auth.username":          "must be a string, got a mapping",
			"csta.require_session":        `must be true or false, got "maybe"`,
			"csta.limits.max_connections": `must be an integer, got "lots"`,
			"csta.limits.max_xml_depth":   "must be an integer, got 3.5",
			"csta.limits.write_timeout":   "must be a duration with a unit",
			"csta.limits.idle_timeout":    `got "soon"`,
			"csta.websocket.enabled":      "must be true or false, got a list",
		},
	}, {
		name:    "out of range",
		fixture: "out_of_range.yaml",
		want: map[string]string{
			"log.level":                     `must be one of debug, info, warn, error, got "verbose"`,
			"log.format":                    `must be one of text, json, got "xml"`,
			"csta.listen":                   `port must be a number from 0 to 65535, got "70000"`,
			"csta.default_edition":          `got "ed7"`,
			"csta.session.default_duration": "must be between csta.session.min_duration (10s) and csta.session.max_duration (1h), got 5s",
			"csta.limits.max_connections":   "must be at least 1, got 0",
			"csta.limits.max_frame_bytes":   "must be between 64 and 65535, got 70000",
			"csta.limits.max_xml_depth":     "must be at least 1, got -1",
			"csta.limits.request_timeout":   "must be positive, got 0s",
			"admin.listen":                  `must be host:port, got "localhost"`,
		},
	}, {
		name:    "csta flood limits out of range",
		fixture: "minimal.yaml",
		env: map[string]string{
			"CONNECTOR_CSTA_LIMITS_MAX_CONNECTIONS_PER_SOURCE":    "0",
			"CONNECTOR_CSTA_LIMITS_MAX_MONITORS":                  "-5",
			"CONNECTOR_CSTA_LIMITS_SESSION_START_TIMEOUT":         "0s",
			"CONNECTOR_CSTA_LIMITS_LOGIN_FAILURES_BEFORE_BACKOFF": "0",
			"CONNECTOR_CSTA_LIMITS_LOGIN_LOCKOUT":                 "-1m",
		},
		want: map[string]string{
			"csta.limits.max_connections_per_source":    "must be at least 1, got 0",
			"csta.limits.max_monitors":                  "must be at least 1, got -5",
			"csta.limits.session_start_timeout":         "must be positive, got 0s",
			"csta.limits.login_failures_before_backoff": "must be at least 1, got 0",
			"csta.limits.login_lockout":                 "must be positive, got -60s",
		},
	}, {
		name:    "csta login lockout before the back-off",
		fixture: "minimal.yaml",
		env:     map[string]string{"CONNECTOR_CSTA_LIMITS_LOGIN_FAILURES_BEFORE_BACKOFF": "10", "CONNECTOR_CSTA_LIMITS_LOGIN_LOCKOUT_AFTER": "3"},
		want:    map[string]string{"csta.limits.login_lockout_after": "must be at least csta.limits.login_failures_before_backoff (10), got 3"},
	}, {
		name:    "session bounds inverted",
		fixture: "session_inverted.yaml",
		want:    map[string]string{"csta.session.max_duration": "must be at least csta.session.min_duration (2h), got 1h"},
	}, {
		name:    "unknown keys",
		fixture: "unknown_key.yaml",
		want: map[string]string{
			"csta.max_frame_bytes":   "unknown key (did you mean csta.limits.max_frame_bytes?)",
			"csta.limits.max_frames": "unknown key",
			"csta.tls":               `must be a mapping of keys, got "yes"`,
			"xsi.servers":            "must be a list of strings, got 8090",
		},
	}, {
		name:    "xsi values",
		fixture: "xsi_bad.yaml",
		want: map[string]string{
			"xsi.servers":           `item 1 "ftp://xsp.example.com": must be an http or https URL, got scheme "ftp"`,
			"xsi.username":          "required",
			"xsi.password":          "required when xsi.simulate is false (or set xsi.password_file)",
			"xsi.protocol_version":  `must be empty or a version like "22.0", got "v22"`,
			"xsi.rate_limit":        "must be at least 1, got 0",
			"xsi.max_retries":       "must be between 0 and 10, got 11",
			"xsi.reconnect_max":     "must be at least xsi.reconnect_min (120s), got 60s",
			"xsi.scope[1]":          `"grp1" must be "group:<groupId>@<enterpriseId>", "enterprise:<enterpriseId>" or "serviceprovider:<serviceProviderId>"`,
			"xsi.targets":           `"team:sales": kind must be user, group or enterprise, got "team"`,
			"xsi.event_packages":    `unknown package "Presence"`,
			"xsi.max_watched_users": "must be between 1 and 1000000, got 0",
		},
	}, {
		name:    "xsi password and password_file both set",
		fixture: "xsi_both_password.yaml",
		want:    map[string]string{"xsi.password_file": "cannot be set together with xsi.password"},
	}, {
		name:    "xsi servers required without the simulator",
		fixture: "minimal.yaml",
		env:     map[string]string{"CONNECTOR_XSI_SIMULATE": "false", "CONNECTOR_XSI_SERVERS": " , ", "CONNECTOR_XSI_PASSWORD": "pw"},
		want:    map[string]string{"xsi.servers": "at least one server is required when xsi.simulate is false"},
	}, {
		name:    "xsi group target without enterprise, server without host",
		fixture: "minimal.yaml",
		env:     map[string]string{"CONNECTOR_XSI_TARGETS": "group:sales", "CONNECTOR_XSI_SERVERS": "http://"},
		want: map[string]string{
			"xsi.targets": `"group:sales": a group target must be "group:<groupId>@<enterpriseId>"`,
			"xsi.servers": `item 0 "http://": must name a host`,
		},
	}, {
		name:    "simulator values",
		fixture: "simulator_bad.yaml",
		want: map[string]string{
			"simulator.listen":             `must be a loopback address (127.0.0.1, ::1 or localhost), got "192.0.2.1:8090"`,
			"simulator.users":              `item "nodomain": must be a user ID "user@domain"`,
			"simulator.hoteling_hosts":     `item "desk9@example.com" is not in simulator.users`,
			"simulator.call_center_agents": `item "agent7@example.com" is not in simulator.users`,
			"simulator.signed_in_agents":   `item "desk1@example.com" is not in simulator.call_center_agents`,
			"simulator.group_id":           "required",
			"simulator.unavailable_codes":  `item "WAYTOOLONGCODE:Too long": must be "code:description" with a code of 1 to 10 characters`,
			"simulator.event_ack_timeout":  "must be 0 (never) or positive, got -1s",
		},
	}, {
		name:    "directory, gateway and hoteling values",
		fixture: "directory_bad.yaml",
		want: map[string]string{
			"directory.domain":                   `must be a domain without "@", got "bad@domain"`,
			"directory.devices":                  `device "desk1" is listed twice`,
			"directory.agents":                   `item "agent9=agent9@example.com": user "agent9@example.com" is not in simulator.users (xsi.simulate is true)`,
			"directory.reason_codes":             `item "2": must be "reason=code"`,
			"directory.default_unavailable_code": `must be empty or a code of 1 to 10 characters without spaces, got "WAYTOOLONGCODE"`,
			"gateway.request_timeout":            "must be 0 (no bound of its own) or positive, got -1s",
			"hoteling.step_timeout":              "must be positive, got 0s",
			"hoteling.queue_length":              "must be between 0 and 1000, got -1",
			"hoteling.recover_mode":              `must be one of undo, complete, got "maybe"`,
			"hoteling.state_file":                `directory "/nonexistent-dir" of "/nonexistent-dir/hoteling.json" does not exist`,
		},
	}, {
		name:    "directory users missing from the simulator",
		fixture: "directory_sim.yaml",
		want: map[string]string{
			"directory.devices": `item "4001=agent1@example.com,hotdesk": hot desk "agent1@example.com" is not in simulator.hoteling_hosts (xsi.simulate is true)`,
			"directory.agents":  `item "agent9=agent9@example.com": user "agent9@example.com" is not in simulator.users (xsi.simulate is true)`,
		},
	}, {
		name:    "directory entry formats",
		fixture: "directory_format.yaml",
		want: map[string]string{
			"directory.devices":      `item "desk1": must be "deviceID=userID" or "deviceID=userID,hotdesk"`,
			"directory.agents":       `item "agent1=agent1": the user must be a user ID "user@domain", got "agent1"`,
			"directory.reason_codes": `item "2=": must be "reason=code"`,
		},
	}, {
		name:    "directory checked against the simulator only when simulating",
		fixture: "directory_sim.yaml",
		env:     map[string]string{"CONNECTOR_XSI_SIMULATE": "false", "CONNECTOR_XSI_PASSWORD": "x", "CONNECTOR_HOTELING_RECOVER_MODE": "sometimes"},
		want: map[string]string{
			"hoteling.recover_mode": `must be one of undo, complete, got "sometimes"`,
		},
	}, {
		name:    "simulator on the admin address",
		fixture: "minimal.yaml",
		env:     map[string]string{"CONNECTOR_SIMULATOR_LISTEN": "127.0.0.1:8080"},
		want:    map[string]string{"simulator.listen": `must differ from admin.listen, both are "127.0.0.1:8080"`},
	}, {
		name:    "simulator address unchecked without xsi.simulate",
		fixture: "minimal.yaml",
		env: map[string]string{
			"CONNECTOR_SIMULATOR_LISTEN": "127.0.0.1:8080", "CONNECTOR_XSI_SIMULATE": "false",
			"CONNECTOR_XSI_PASSWORD": "pw", "CONNECTOR_XSI_MAX_IN_FLIGHT": "0",
		},
		want: map[string]string{"xsi.max_in_flight": "must be at least 1, got 0"},
	}, {
		name:    "duplicates",
		fixture: "minimal.yaml",
		env: map[string]string{
			"CONNECTOR_XSI_EVENT_PACKAGES":          "Do Not Disturb,Do Not Disturb",
			"CONNECTOR_SIMULATOR_UNAVAILABLE_CODES": "LUNCH:Lunch,LUNCH:Late lunch",
		},
		want: map[string]string{
			"xsi.event_packages":          `"Do Not Disturb" is listed twice`,
			"simulator.unavailable_codes": `code "LUNCH" is listed twice`,
		},
	}, {
		name:    "password and password_file both set",
		fixture: "both_password.yaml",
		want: map[string]string{
			"csta.auth.password_file":           "cannot be set together with csta.auth.password",
			"csta.websocket.auth.password_file": "cannot be set together with csta.websocket.auth.password",
		},
	}, {
		name:    "password auth without require_session",
		fixture: "auth_without_session.yaml",
		want:    map[string]string{"csta.require_session": "must be true when csta.auth.mode is password"},
	}, {
		name:    "websocket password auth without require_session",
		fixture: "ws_auth_without_session.yaml",
		want:    map[string]string{"csta.require_session": "must be true when csta.websocket.auth.mode is password"},
	}, {
		name:    "password auth without credentials",
		fixture: "auth_incomplete.yaml",
		want: map[string]string{
			"csta.auth.username":       "required when csta.auth.mode is password",
			"csta.auth.password":       "required when csta.auth.mode is password (or set csta.auth.password_file)",
			"csta.websocket.auth.mode": `must be one of none, password, got "token"`,
		},
	}, {
		name:    "password_file unreadable",
		fixture: "password_file_missing.yaml",
		want:    map[string]string{"csta.auth.password_file": "cannot read: open testdata/config/no-such-password.txt"},
	}, {
		name:    "tls half configured and unreadable",
		fixture: "tls_half.yaml",
		want: map[string]string{
			"csta.tls.key_file":   "required when csta.tls.cert_file is set",
			"csta.tls.cert_file":  "cannot read",
			"admin.tls.cert_file": "required when admin.tls.key_file is set",
			"admin.tls.key_file":  "cannot read",
		},
	}, {
		name:    "admin and csta on the same address",
		fixture: "same_listen.yaml",
		want:    map[string]string{"admin.listen": `must differ from csta.listen, both are "127.0.0.1:9000"`},
	}, {
		name:    "bad values from the environment",
		fixture: "minimal.yaml",
		env: map[string]string{
			"CONNECTOR_CSTA_LISTEN":                 "bad",
			"CONNECTOR_CSTA_LIMITS_MAX_FRAME_BYTES": "70000",
			"CONNECTOR_CSTA_WEBSOCKET_ENABLED":      "yes please",
			"CONNECTOR_CSTA_SESSION_MAX_DURATION":   "3600",
		},
		want: map[string]string{
			"csta.listen":                 `must be host:port, got "bad"`,
			"csta.limits.max_frame_bytes": "must be between 64 and 65535, got 70000",
			"csta.websocket.enabled":      `must be true or false, got "yes please"`,
			"csta.session.max_duration":   `must be a duration with a unit like "180s" or "1h", got "3600"`,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, value := range tt.env {
				t.Setenv(name, value)
			}
			_, err := config.Load(fixture(tt.fixture))
			var problems *config.Errors
			if !errors.As(err, &problems) {
				t.Fatalf("Load(%s) = %v, want *config.Errors", tt.fixture, err)
			}
			got := make(map[string]string)
			for _, p := range problems.Problems {
				if _, dup := got[p.Key]; dup {
					t.Errorf("%s reported twice", p.Key)
				}
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
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "config: ") {
					t.Errorf("error line %q lacks the config: prefix", line)
				}
			}
		})
	}
}

func TestProblemsInKeyOrder(t *testing.T) {
	_, err := config.Load(fixture("out_of_range.yaml"))
	var problems *config.Errors
	if !errors.As(err, &problems) {
		t.Fatal(err)
	}
	keys := config.Keys()
	for i := 1; i < len(problems.Problems); i++ {
		if slices.Index(keys, problems.Problems[i-1].Key) > slices.Index(keys, problems.Problems[i].Key) {
			t.Errorf("problems out of key order: %v", problems.Problems)
		}
	}
}

// envCase is one environment override and what it must change.
type envCase struct {
	name  string
	env   map[string]string
	check func(*config.Config) bool
}

// runEnvCases loads the minimal fixture under each case's environment.
func runEnvCases(t *testing.T, tests []envCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, value := range tt.env {
				t.Setenv(name, value)
			}
			if cfg := mustLoad(t, fixture("minimal.yaml")); !tt.check(cfg) {
				t.Errorf("override not applied: %+v", cfg)
			}
		})
	}
}

func TestEnvOverride(t *testing.T) {
	tests := []envCase{{
		name:  "key present in the file",
		env:   map[string]string{"CONNECTOR_CSTA_LISTEN": "127.0.0.1:28800"},
		check: func(c *config.Config) bool { return c.CSTAFrontEnd.Listen == "127.0.0.1:28800" },
	}, {
		name:  "key absent from the file",
		env:   map[string]string{"CONNECTOR_ADMIN_LISTEN": "127.0.0.1:28080"},
		check: func(c *config.Config) bool { return c.Admin.Listen == "127.0.0.1:28080" },
	}, {
		name:  "an empty variable counts as unset",
		env:   map[string]string{"CONNECTOR_CSTA_LISTEN": ""},
		check: func(c *config.Config) bool { return c.CSTAFrontEnd.Listen == "127.0.0.1:18801" },
	}, {
		name: "integer, boolean and duration from strings",
		env: map[string]string{
			"CONNECTOR_CSTA_LIMITS_MAX_CONNECTIONS": "7",
			"CONNECTOR_CSTA_WEBSOCKET_ENABLED":      "false",
			"CONNECTOR_CSTA_SESSION_MAX_DURATION":   "90m",
		},
		check: func(c *config.Config) bool {
			return c.CSTAFrontEnd.Limits.MaxConnections == 7 && !c.CSTAFrontEnd.WebSocket.Enabled &&
				c.CSTAFrontEnd.Session.MaxDuration == 90*time.Minute
		},
	}, {
		name: "nested key and password file",
		env: map[string]string{
			"CONNECTOR_CSTA_REQUIRE_SESSION":              "true",
			"CONNECTOR_CSTA_WEBSOCKET_AUTH_MODE":          "password",
			"CONNECTOR_CSTA_WEBSOCKET_AUTH_USERNAME":      "web-app",
			"CONNECTOR_CSTA_WEBSOCKET_AUTH_PASSWORD_FILE": "testdata/config/password.txt",
		},
		check: func(c *config.Config) bool {
			return reflect.DeepEqual(c.CSTAFrontEnd.WebSocket.Auth, config.Auth{
				Mode: "password", Username: "web-app", Password: "s3cret", PasswordFile: "testdata/config/password.txt",
				Users: []string{},
			})
		},
	}, {
		name: "xsi.servers as a comma-separated list",
		env:  map[string]string{"CONNECTOR_XSI_SERVERS": "http://127.0.0.1:19090,http://127.0.0.1:19091"},
		check: func(c *config.Config) bool {
			return slices.Equal(c.XSILink.Servers, []string{"http://127.0.0.1:19090", "http://127.0.0.1:19091"}) &&
				slices.Equal(c.XSI().Servers, c.XSILink.Servers)
		},
	}, {
		name: "xsi password file and event packages with spaces",
		env: map[string]string{
			"CONNECTOR_XSI_SIMULATE":       "false",
			"CONNECTOR_XSI_PASSWORD_FILE":  "testdata/config/password.txt",
			"CONNECTOR_XSI_EVENT_PACKAGES": "Do Not Disturb, Hoteling Guest",
		},
		check: func(c *config.Config) bool {
			return !c.XSILink.Simulate && c.XSILink.Password == "s3cret" && c.XSI().Password == "s3cret" &&
				slices.Equal(c.XSILink.EventPackages, []string{"Do Not Disturb", "Hoteling Guest"})
		},
	}}
	runEnvCases(t, tests)
}

// The configuration section of the README names every key and its variable.
func TestReadmeDocumentsEveryKey(t *testing.T) {
	var section string
	for _, name := range []string{"README.config.md", "README.md"} {
		content, err := os.ReadFile(name)
		if err == nil && strings.Contains(string(content), "## Configuration") {
			section = string(content)
			break
		}
	}
	if section == "" {
		t.Fatal("neither README.config.md nor README.md has a ## Configuration section")
	}
	for _, key := range config.Keys() {
		row := "| `" + key + "` |"
		if !strings.Contains(section, row) || !strings.Contains(section, "`"+config.EnvVar(key)+"`") {
			t.Errorf("README configuration table lacks %s or %s", key, config.EnvVar(key))
		}
	}
}

func TestEnvVar(t *testing.T) {
	for key, want := range map[string]string{
		"csta.listen":                       "CONNECTOR_CSTA_LISTEN",
		"csta.limits.max_frame_bytes":       "CONNECTOR_CSTA_LIMITS_MAX_FRAME_BYTES",
		"csta.websocket.auth.password_file": "CONNECTOR_CSTA_WEBSOCKET_AUTH_PASSWORD_FILE",
	} {
		if got := config.EnvVar(key); got != want {
			t.Errorf("EnvVar(%s) = %s, want %s", key, got, want)
		}
	}
}

func TestPasswordFileLineEndings(t *testing.T) {
	for _, content := range []string{"s3cret", "s3cret\n", "s3cret\r\n", "s3cret\n\n"} {
		path := filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("CONNECTOR_CSTA_REQUIRE_SESSION", "true")
		t.Setenv("CONNECTOR_CSTA_AUTH_MODE", "password")
		t.Setenv("CONNECTOR_CSTA_AUTH_USERNAME", "cti-app")
		t.Setenv("CONNECTOR_CSTA_AUTH_PASSWORD_FILE", path)
		if got := mustLoad(t, "").CSTAFrontEnd.Auth.Password; got != "s3cret" {
			t.Errorf("password from %q = %q, want s3cret", content, got)
		}
	}
}

func TestMasked(t *testing.T) {
	cfg := mustLoad(t, fixture("good.yaml"))
	masked := cfg.Masked()
	if got := masked.CSTAFrontEnd.WebSocket.Auth.Password; got != config.MaskedSecret {
		t.Errorf("inline password masked as %q, want %q", got, config.MaskedSecret)
	}
	if got := masked.CSTAFrontEnd.Auth; got.Password != "" || got.PasswordFile != "testdata/config/password.txt" {
		t.Errorf("password from file masked as %+v, want it dropped and the file kept", got)
	}
	if cfg.CSTAFrontEnd.WebSocket.Auth.Password != "inline-secret" || cfg.CSTAFrontEnd.Auth.Password != "s3cret" {
		t.Error("Masked changed the original")
	}
	out, err := masked.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if got := masked.XSILink.Password; got != config.MaskedSecret {
		t.Errorf("xsi.password masked as %q, want %q", got, config.MaskedSecret)
	}
	if cfg.XSILink.Password != "xsi-secret" {
		t.Error("Masked changed the original xsi.password")
	}
	for _, secret := range []string{"inline-secret", "s3cret", "xsi-secret"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("masked YAML shows %q:\n%s", secret, out)
		}
	}
}

// The printed effective configuration loads back to the same values; only
// the masked inline secret differs.
func TestYAMLRoundTrip(t *testing.T) {
	cfg := mustLoad(t, fixture("good.yaml"))
	out, err := cfg.Masked().YAML()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "effective.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	again := mustLoad(t, path)
	if got, want := config.Diff(cfg, again), []string{
		"csta.websocket.auth.password", "xsi.password", "sip.auth.phones", "sip.auth.agent_passwords",
	}; !slices.Equal(got, want) {
		t.Errorf("round trip changed %v, want %v\n%s", got, want, out)
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name   string
		change func(*config.Config)
		want   []string
	}{
		{"nothing", func(*config.Config) {}, nil},
		{"one limit", func(c *config.Config) { c.CSTAFrontEnd.Limits.MaxFrameBytes = 4096 }, []string{"csta.limits.max_frame_bytes"}},
		{"several, in key order", func(c *config.Config) {
			c.Admin.Listen = "127.0.0.1:9"
			c.Log.Level = "debug"
			c.CSTAFrontEnd.WebSocket.Auth.Password = "new"
		}, []string{"log.level", "csta.websocket.auth.password", "admin.listen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := config.Default()
			tt.change(next)
			if got := config.Diff(config.Default(), next); !slices.Equal(got, tt.want) {
				t.Errorf("Diff = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlanReload(t *testing.T) {
	running := config.Default()
	next := config.Default()
	next.Log.Level = "debug"
	next.CSTAFrontEnd.Listen = "127.0.0.1:9800"
	next.CSTAFrontEnd.TLS.CertFile = "cert.pem"
	next.CSTAFrontEnd.Limits.MaxConnections = 5
	next.CSTAFrontEnd.WebSocket.Enabled = false
	next.Admin.Listen = "127.0.0.1:9080"

	plan := config.PlanReload(running, next)
	wantChanged := []string{"log.level", "csta.listen", "csta.tls.cert_file", "csta.limits.max_connections", "csta.websocket.enabled", "admin.listen"}
	wantRefused := []string{"csta.listen", "csta.tls.cert_file", "csta.websocket.enabled", "admin.listen"}
	if !slices.Equal(plan.Changed, wantChanged) {
		t.Errorf("Changed = %v, want %v", plan.Changed, wantChanged)
	}
	if !slices.Equal(plan.Refused, wantRefused) {
		t.Errorf("Refused = %v, want %v", plan.Refused, wantRefused)
	}
	if got, want := config.Diff(running, plan.Apply), []string{"log.level", "csta.limits.max_connections"}; !slices.Equal(got, want) {
		t.Errorf("Apply changes %v, want %v", got, want)
	}
	if next.CSTAFrontEnd.Listen != "127.0.0.1:9800" {
		t.Error("PlanReload changed next")
	}
	// The directory and the gateway settings apply live.
	live := config.Default()
	live.Directory.ReasonCodes = []string{"break=TRAINING"}
	live.GatewayCore.ConflictWindow = 0
	if plan := config.PlanReload(running, live); len(plan.Refused) != 0 ||
		!slices.Equal(plan.Changed, []string{"directory.reason_codes", "gateway.conflict_window"}) {
		t.Errorf("a directory and gateway reload: changed %v, refused %v", plan.Changed, plan.Refused)
	}
	for _, key := range config.Keys() {
		want := slices.Contains([]string{
			"log.format", "csta.listen", "csta.tls.cert_file", "csta.tls.key_file", "csta.websocket.enabled", "admin.listen", "admin.tls.cert_file", "admin.tls.key_file",
			"admin.token", "admin.token_file",
		}, key) || strings.HasPrefix(key, "xsi.") ||
			strings.HasPrefix(key, "simulator.") && !slices.Contains([]string{ // users added live
				"simulator.users", "simulator.hoteling_hosts", "simulator.call_center_agents", "simulator.signed_in_agents"}, key) ||
			strings.HasPrefix(key, "hoteling.") ||
			strings.HasPrefix(key, "sip.") && !strings.HasPrefix(key, "sip.limits.") || strings.HasPrefix(key, "journal.") ||
			strings.HasPrefix(key, "store.") || strings.HasPrefix(key, "ha.")
		if config.NeedsRestart(key) != want {
			t.Errorf("NeedsRestart(%s) = %v", key, config.NeedsRestart(key))
		}
	}
}

func TestSlogLevel(t *testing.T) {
	for level, want := range map[string]string{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR"} {
		if got := (config.Log{Level: level}).SlogLevel().String(); got != want {
			t.Errorf("SlogLevel(%s) = %s, want %s", level, got, want)
		}
	}
}
