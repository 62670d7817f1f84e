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
	tests := []struct {
		name, yaml string
		problem    string // want "key: text" substring; "" valid
		persistSIP bool
	}{
		{"defaults", "", "", false},
		{"postgres without a dsn", "store:\n  driver: postgres\n", "store.postgres.dsn: required when store.driver is postgres", false},
		{"postgres", "store:\n  driver: postgres\n  postgres:\n    dsn: postgres://connector@db1:5432/connector\n", "", false},
		{"postgres, key=value", "store:\n  driver: postgres\n  postgres:\n    dsn: host=db1 user=connector\n", "", false},
		{"postgres, no directory needed", "store:\n  driver: postgres\n  path: " + filepath.Join(dir, "no", "c.db") + "\n  postgres:\n    dsn: postgres://db1/c\n", "", false},
		{"postgres keeps dialogs", "store:\n  driver: postgres\n  path: \"\"\n  postgres:\n    dsn: postgres://db1/c\nsip:\n  persist_dialogs: true\n", "", true},
		{"not a dsn", "store:\n  driver: postgres\n  postgres:\n    dsn: db1:5432\n", "store.postgres.dsn: must be a PostgreSQL connection string", false},
		{"dsn and dsn_file", "store:\n  driver: postgres\n  postgres:\n    dsn: postgres://db1/c\n    dsn_file: " + filepath.Join(dir, "dsn") + "\n", "store.postgres.dsn_file: cannot be set together with store.postgres.dsn", false},
		{"dsn_file missing", "store:\n  driver: postgres\n  postgres:\n    dsn_file: " + filepath.Join(dir, "nothing") + "\n", "store.postgres.dsn_file: cannot read", false},
		{"unknown driver", "store:\n  driver: sqlite\n", `store.driver: must be bbolt or postgres, got "sqlite"`, false},
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

// TestPostgresDSNFile: the connection string from a file, without its
// trailing newline, and never printed (it may hold a password).
func TestPostgresDSNFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "dsn")
	const dsn = "postgres://connector:s3cret@db1:5432/connector"
	if err := os.WriteFile(file, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(writeConfig(t, "store:\n  driver: postgres\n  postgres:\n    dsn_file: "+file+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Postgres.DSN != dsn {
		t.Errorf("dsn %q", cfg.Store.Postgres.DSN)
	}
	if m := cfg.Masked(); m.Store.Postgres.DSN != "" || m.Store.Postgres.DSNFile != file {
		t.Errorf("masked %+v", m.Store.Postgres)
	}
	inline, err := config.Load(writeConfig(t, "store:\n  driver: postgres\n  postgres:\n    dsn: "+dsn+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m := inline.Masked(); m.Store.Postgres.DSN != config.MaskedSecret {
		t.Errorf("masked inline dsn %q", m.Store.Postgres.DSN)
	}
}
