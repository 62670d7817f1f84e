package config_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/broadworks-connector/connector/config"
)

// TestStoreSettings: store.driver and store.path, each problem by its key;
// the legacy keys are migration sources and may not be the store itself.
func TestStoreSettings(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "c.db")
	tests := []struct {
		name, yaml string
		problem    string // want "key: text" substring; "" valid
		persistSIP bool
	}{
		{"defaults", "", "", false},
		{"postgres not yet", "store:\n  driver: postgres\n", "store.driver: postgres is not available until the PostgreSQL store is built", false},
		{"unknown driver", "store:\n  driver: sqlite\n", `store.driver: must be bbolt, got "sqlite"`, false},
		{"no such directory", "store:\n  path: " + filepath.Join(dir, "no", "c.db") + "\n", "store.path: directory", false},
		{"the old journal file", "store:\n  path: " + db + "\njournal:\n  path: " + db + "\n", "store.path: must differ from journal.path", false},
		{"the old hoteling file", "store:\n  path: " + db + "\nhoteling:\n  state_file: " + db + "\n", "store.path: must differ from hoteling.state_file", false},
		{"persist dialogs", "sip:\n  persist_dialogs: true\n", "", true},
		{"sip.state_file asks for it too", "sip:\n  state_file: " + filepath.Join(dir, "s.json") + "\n", "", true},
		{"nothing kept without a store", "store:\n  path: \"\"\nsip:\n  persist_dialogs: true\n", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(writeConfig(t, tt.yaml))
			if tt.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tt.problem) {
					t.Fatalf("err %v, want %q", err, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.PersistSIPDialogs(); got != tt.persistSIP {
				t.Errorf("PersistSIPDialogs() = %v, want %v", got, tt.persistSIP)
			}
		})
	}
}
