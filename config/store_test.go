package config_test

import (
	"os"
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
	pg := "store:\n  driver: postgres\n  postgres:\n    dsn: postgres://c:pw@db/c\n"
	tests := []struct {
		name, yaml string
		problem    string // want "key: text" substring; "" valid
		persistSIP bool
	}{
		{"defaults", "", "", false},
		{"unknown driver", "store:\n  driver: sqlite\n", `store.driver: must be bbolt or postgres, got "sqlite"`, false},
		{"no such directory", "store:\n  path: " + filepath.Join(dir, "no", "c.db") + "\n", "store.path: directory", false},
		{"the old journal file", "store:\n  path: " + db + "\njournal:\n  path: " + db + "\n", "store.path: must differ from journal.path", false},
		{"the old hoteling file", "store:\n  path: " + db + "\nhoteling:\n  state_file: " + db + "\n", "store.path: must differ from hoteling.state_file", false},
		{"persist dialogs", "sip:\n  persist_dialogs: true\n", "", true},
		{"sip.state_file asks for it too", "sip:\n  state_file: " + filepath.Join(dir, "s.json") + "\n", "", true},
		{"nothing kept without a store", "store:\n  path: \"\"\nsip:\n  persist_dialogs: true\n", "", false},
		{"postgres", pg, "", false},
		{"postgres keeps dialogs without store.path", pg + "  path: \"\"\nsip:\n  persist_dialogs: true\n", "", true},
		{"postgres ignores store.path", pg + "  path: " + filepath.Join(dir, "no", "c.db") + "\n", "", false},
		{"postgres without a DSN", "store:\n  driver: postgres\n", "store.postgres.dsn: required with store.driver postgres", false},
		{"a DSN for bbolt", "store:\n  postgres:\n    dsn: postgres://db/c\n", "store.postgres.dsn: is for store.driver postgres", false},
		{"no pool", pg + "    max_conns: 0\n", "store.postgres.max_conns: must be 1..1000, got 0", false},
		{"pool too big", pg + "    max_conns: 5000\n", "store.postgres.max_conns: must be 1..1000, got 5000", false},
		{"no timeout", pg + "    timeout: 0s\n", "store.postgres.timeout: must be positive and at most 60s", false},
		{"timeout too long", pg + "    timeout: 2h\n", "store.postgres.timeout: must be positive and at most 60s", false},
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

// TestStorePostgresDSN: the DSN inline or from store.postgres.dsn_file
// (exactly one), read at load; a secret: masked when printed, never in an
// error.
func TestStorePostgresDSN(t *testing.T) {
	dir := t.TempDir()
	const dsn = "postgres://connector:s3cret@db.example.com/connector"
	file := filepath.Join(dir, "dsn")
	if err := os.WriteFile(file, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	head := "store:\n  driver: postgres\n  postgres:\n"
	tests := []struct {
		name, yaml string
		dsn        string // want after load
		problem    string
	}{
		{"inline", head + "    dsn: " + dsn + "\n", dsn, ""},
		{"from file, newline dropped", head + "    dsn_file: " + file + "\n", dsn, ""},
		{"both", head + "    dsn: " + dsn + "\n    dsn_file: " + file + "\n", "", "store.postgres.dsn_file: cannot be set together with store.postgres.dsn"},
		{"missing file", head + "    dsn_file: " + filepath.Join(dir, "nope") + "\n", "", "store.postgres.dsn_file: cannot read"},
		{"empty file", head + "    dsn_file: " + empty + "\n", "", "store.postgres.dsn_file: " + empty + " is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(writeConfig(t, tt.yaml))
			if tt.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tt.problem) {
					t.Fatalf("err %v, want %q", err, tt.problem)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Store.Postgres.DSN != tt.dsn {
				t.Errorf("DSN %q, want %q", cfg.Store.Postgres.DSN, tt.dsn)
			}
			out, err := cfg.Masked().YAML()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(out), "s3cret") {
				t.Errorf("masked output shows the DSN's password:\n%s", out)
			}
		})
	}
}
