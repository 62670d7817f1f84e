package config

import (
	"path/filepath"
	"time"
)

// StoreSettings configures where durable state lives: the association
// journal, the desks' remembered forwarding, the intents and the SIP
// dialogs, in one store (package store): an embedded bbolt file (the
// default: no server needed) or a PostgreSQL database several instances
// share (store/postgres).
type StoreSettings struct {
	// Driver: bbolt (an embedded file, store.path) or postgres
	// (store.postgres).
	Driver string `mapstructure:"driver"`
	// Path is the bbolt file; empty: nothing is kept across a restart (no
	// journal, remembered forwarding and SIP dialogs in memory only). Not
	// used by the postgres driver.
	Path string `mapstructure:"path"`
	// Postgres configures the postgres driver.
	Postgres PostgresSettings `mapstructure:"postgres"`
}

// PostgresSettings is the PostgreSQL store: the database to connect to
// (exactly one of DSN and DSNFile), the pool and the per-call deadline.
type PostgresSettings struct {
	// DSN is the connection string (postgres://user:password@host/db or
	// "host=… user=… password=…"): a secret, masked when printed.
	DSN string `mapstructure:"dsn"`
	// DSNFile holds the DSN instead (read at load, trailing newline
	// dropped), so that the password stays out of the configuration.
	DSNFile string `mapstructure:"dsn_file"`
	// MaxConns is the connection pool's size.
	MaxConns int `mapstructure:"max_conns"`
	// Timeout bounds every store call (a write waits at most this long
	// for its commit before failing).
	Timeout time.Duration `mapstructure:"timeout"`
}

// Store drivers.
const (
	StoreBolt     = "bbolt"
	StorePostgres = "postgres"
)

func defaultStore() StoreSettings {
	return StoreSettings{Driver: StoreBolt, Path: "connector.db",
		Postgres: PostgresSettings{MaxConns: 10, Timeout: 5 * time.Second}}
}

// Limits on store.postgres settings.
const (
	maxStoreConns   = 1000
	maxStoreTimeout = time.Minute
)

func validateStore(ps *problems, c *Config) {
	s := c.Store
	pg := s.Postgres
	switch s.Driver {
	case StoreBolt:
		if pg.DSN != "" || pg.DSNFile != "" {
			key := "store.postgres.dsn"
			if pg.DSNFile != "" {
				key = "store.postgres.dsn_file"
			}
			ps.add(key, "is for store.driver postgres; store.driver is bbolt")
		}
	case StorePostgres:
		if pg.DSN == "" && pg.DSNFile == "" {
			ps.add("store.postgres.dsn", "required with store.driver postgres (or store.postgres.dsn_file)")
		}
		if pg.MaxConns < 1 || pg.MaxConns > maxStoreConns {
			ps.add("store.postgres.max_conns", "must be 1..%d, got %d", maxStoreConns, pg.MaxConns)
		}
		if pg.Timeout <= 0 || pg.Timeout > maxStoreTimeout {
			ps.add("store.postgres.timeout", "must be positive and at most %s, got %s", formatDuration(maxStoreTimeout), formatDuration(pg.Timeout))
		}
		return // store.path is the bbolt file: not used
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

// StoreEnabled reports whether anything is kept across a restart: a
// PostgreSQL store, or a bbolt file (store.path set).
func (c *Config) StoreEnabled() bool {
	return c.Store.Driver == StorePostgres || c.Store.Path != ""
}

// PersistSIPDialogs reports whether phonesync keeps its UDP dialogs in the
// store: sip.persist_dialogs, or sip.state_file set (the older way to ask).
func (c *Config) PersistSIPDialogs() bool {
	return c.StoreEnabled() && (c.SIP.PersistDialogs || c.SIP.StateFile != "")
}
