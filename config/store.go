package config

import (
	"path/filepath"
	"strings"
)

// StoreSettings configures where durable state lives: the association
// journal, the desks' remembered forwarding, the intents and the SIP
// dialogs, in one store (package store).
type StoreSettings struct {
	// Driver: bbolt (an embedded file) or postgres (a PostgreSQL database
	// several instances share: an active/standby pair, or instances
	// scaled out by scope).
	Driver string `mapstructure:"driver"`
	// Path is the bbolt file; empty: nothing is kept across a restart (no
	// journal, remembered forwarding and SIP dialogs in memory only).
	Path     string           `mapstructure:"path"`
	Postgres PostgresSettings `mapstructure:"postgres"`
}

// PostgresSettings is where the postgres driver connects. After Load, DSN
// holds the connection string whether it came inline or from DSNFile.
type PostgresSettings struct {
	DSN     string `mapstructure:"dsn"` // postgres://user:password@host:port/db?… or key=value pairs
	DSNFile string `mapstructure:"dsn_file"`
}

// Store drivers.
const (
	StoreBolt     = "bbolt"
	StorePostgres = "postgres"
)

func defaultStore() StoreSettings {
	return StoreSettings{Driver: StoreBolt, Path: "connector.db"}
}

func validateStore(ps *problems, c *Config) {
	s := c.Store
	switch s.Driver {
	case StoreBolt:
	case StorePostgres:
		validatePostgres(ps, s.Postgres)
		return // store.path and the legacy files are the embedded store's
	default:
		ps.add("store.driver", "must be bbolt or postgres, got %q", s.Driver)
	}
	stateFileDirectory(ps, "store.path", s.Path)
	if s.Path == "" {
		return
	}
	// The legacy files are migrated into the store: none may be the store.
	for _, legacy := range []struct{ key, path string }{
		{"journal.path", c.Journal.Path}, {"hoteling.state_file", c.HotDesks.StateFile}, {"sip.state_file", c.SIP.StateFile},
	} {
		if legacy.path != "" && filepath.Clean(legacy.path) == filepath.Clean(s.Path) {
			ps.add("store.path", "must differ from %s (%q), a file migrated into the store on first start", legacy.key, legacy.path)
		}
	}
}

func validatePostgres(ps *problems, p PostgresSettings) {
	switch dsn := p.DSN; {
	case ps.has("store.postgres.dsn_file"):
	case dsn == "":
		ps.add("store.postgres.dsn", "required when store.driver is postgres (or set store.postgres.dsn_file)")
	case !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") && !strings.Contains(dsn, "="):
		// The string may hold a password: it is not repeated here.
		key := "store.postgres.dsn"
		if p.DSNFile != "" {
			key = "store.postgres.dsn_file"
		}
		ps.add(key, "must be a PostgreSQL connection string: postgres://user@host:port/database?options or key=value pairs")
	}
}

// PersistSIPDialogs reports whether phonesync keeps its UDP dialogs in the
// store: sip.persist_dialogs, or sip.state_file set (the older way to ask).
func (c *Config) PersistSIPDialogs() bool {
	kept := c.Store.Path != "" || c.Store.Driver == StorePostgres
	return kept && (c.SIP.PersistDialogs || c.SIP.StateFile != "")
}
