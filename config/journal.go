package config

import "time"

// JournalSettings configures the hoteling association journal: who sat at
// which desk when, kept across restarts and crashes.
type JournalSettings struct {
	// Path is the journal file of connectors before the store (bbolt): a
	// file there is migrated into store.path on first start and renamed
	// *.migrated. Empty: none to migrate. The journal itself is in the store.
	Path string `mapstructure:"path"`
	// Retention drops associations that ended longer ago; 0 keeps them all.
	Retention time.Duration `mapstructure:"retention"`
}

func defaultJournal() JournalSettings {
	return JournalSettings{Path: "connector-journal.db", Retention: 90 * 24 * time.Hour}
}

func validateJournal(ps *problems, j JournalSettings) {
	stateFileDirectory(ps, "journal.path", j.Path)
	if j.Retention < 0 {
		ps.add("journal.retention", "must be 0 (keep all) or positive, got %s", formatDuration(j.Retention))
	} else if j.Retention > 0 && j.Retention < time.Hour {
		ps.add("journal.retention", "must be 0 (keep all) or at least 1h, got %s", formatDuration(j.Retention))
	}
}
