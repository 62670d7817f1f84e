package config

import (
	"path/filepath"
)

// StoreSettings configures where durable state lives: the association
// journal, the desks' remembered forwarding, the intents and the SIP
// dialogs, in one store (package store).
type StoreSettings struct {
	// Driver: bbolt (an embedded file). postgres arrives with issue 18.
	Driver string `mapstructure:"driver"`
	// Path is the bbolt file; empty: nothing is kept across a restart (no
	// journal, remembered forwarding and SIP dialogs in memory only).
	Path string `mapstructure:"path"`
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
		ps.add("store.driver", "postgres is not available until the PostgreSQL store is built; use bbolt")
	default:
		ps.add("store.driver", "must be bbolt, got %q", s.Driver)
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

// PersistSIPDialogs reports whether phonesync keeps its UDP dialogs in the
// store: sip.persist_dialogs, or sip.state_file set (the older way to ask).
func (c *Config) PersistSIPDialogs() bool {
	return c.Store.Path != "" && (c.SIP.PersistDialogs || c.SIP.StateFile != "")
}
