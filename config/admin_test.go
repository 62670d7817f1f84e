package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/broadworks-connector/connector/config"
)

func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("0123456789abcdef-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	shortFile := filepath.Join(dir, "short")
	if err := os.WriteFile(shortFile, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, yaml string
		token      string // want, when no problem
		problem    string // want "key: text" substring
	}{
		{"none", "", "", ""},
		{"inline", "admin:\n  token: 0123456789abcdef\n", "0123456789abcdef", ""},
		{"from file, newline dropped", "admin:\n  token_file: " + tokenFile + "\n", "0123456789abcdef-from-file", ""},
		{"too short", "admin:\n  token: abc\n", "", "admin.token: must be at least 16 characters"},
		{"too short from file", "admin:\n  token_file: " + shortFile + "\n", "", "admin.token_file: must be at least 16 characters"},
		{"both", "admin:\n  token: 0123456789abcdef\n  token_file: " + tokenFile + "\n", "", "admin.token_file: cannot be set together with admin.token"},
		{"missing file", "admin:\n  token_file: " + filepath.Join(dir, "nope") + "\n", "", "admin.token_file: cannot read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(writeConfig(t, tt.yaml))
			if tt.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tt.problem) {
					t.Fatalf("err %v, want %q", err, tt.problem)
				}
				if strings.Contains(err.Error(), "0123456789abcdef") {
					t.Errorf("the error shows the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Admin.Token != tt.token {
				t.Errorf("token %q, want %q", cfg.Admin.Token, tt.token)
			}
			out, err := cfg.Masked().YAML()
			if err != nil {
				t.Fatal(err)
			}
			if tt.token != "" && strings.Contains(string(out), tt.token) {
				t.Errorf("masked output shows the token:\n%s", out)
			}
		})
	}
}
