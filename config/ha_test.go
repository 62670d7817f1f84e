package config_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/config"
)

// TestHASettings: ha.mode, ha.instance_id, ha.lease_ttl and
// ha.heartbeat_interval, each problem by its key. store.driver: postgres may
// still be refused by its own key; only the ha.* problems are looked at.
func TestHASettings(t *testing.T) {
	const pg = "store:\n  driver: postgres\n"
	tests := []struct {
		name, yaml string
		problem    string // want "key: text" substring; "" no ha.* problem
	}{
		{"defaults", "", ""},
		{"standalone with an id", "ha:\n  instance_id: a-1\n", ""},
		{"active-standby on postgres", pg + "ha:\n  mode: active-standby\n  instance_id: pbx-a.dc1\n", ""},
		{"active-standby on bbolt", "ha:\n  mode: active-standby\n  instance_id: a\n", `ha.mode: active-standby needs store.driver: postgres`},
		{"active-standby without an id", pg + "ha:\n  mode: active-standby\n", "ha.instance_id: required when ha.mode is active-standby"},
		{"unknown mode", "ha:\n  mode: active-active\n", `ha.mode: must be one of standalone, active-standby, got "active-active"`},
		{"id with a blank", "ha:\n  instance_id: a b\n", `ha.instance_id: must be 1 to 128 letters`},
		{"id too long", "ha:\n  instance_id: " + strings.Repeat("a", 129) + "\n", `ha.instance_id: must be 1 to 128 letters`},
		{"ttl too short", "ha:\n  lease_ttl: 500ms\n", "ha.lease_ttl: must be from 1s to 1m0s, got 500ms"},
		{"ttl too long", "ha:\n  lease_ttl: 2m\n", "ha.lease_ttl: must be from 1s to 1m0s, got 2m0s"},
		{"ttl not a duration", "ha:\n  lease_ttl: soon\n", "ha.lease_ttl"},
		{"heartbeat too often", "ha:\n  heartbeat_interval: 10ms\n", "ha.heartbeat_interval: must be from 100ms to 1m0s, got 10ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(writeConfig(t, tt.yaml))
			if tt.problem == "" {
				if err != nil && strings.Contains(err.Error(), "ha.") {
					t.Fatalf("err %v, want no ha.* problem", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.problem) {
				t.Fatalf("err %v, want %q", err, tt.problem)
			}
		})
	}
}

func TestHADefaultsAndEnvironment(t *testing.T) {
	cfg, err := config.Load(writeConfig(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HA.Mode != config.HAStandalone || cfg.HA.LeaseTTL != 3*time.Second || cfg.HA.HeartbeatInterval != time.Second || cfg.ActiveStandby() {
		t.Errorf("defaults %+v", cfg.HA)
	}
	host, _ := os.Hostname()
	if got := cfg.InstanceName(); host != "" && got != host+"-8080" {
		t.Errorf("InstanceName() = %q, want %q", got, host+"-8080")
	}
	t.Setenv("CONNECTOR_HA_INSTANCE_ID", "from-env")
	t.Setenv("CONNECTOR_HA_LEASE_TTL", "5s")
	cfg, err = config.Load(writeConfig(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.InstanceName() != "from-env" || cfg.HA.LeaseTTL != 5*time.Second {
		t.Errorf("from the environment: %+v", cfg.HA)
	}
}
