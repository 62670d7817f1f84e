package store

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/journal"
)

// legacyFiles writes the three old stores with the old code: a journal file
// of its own (journal.Open: its buckets at the top level) with one ended and
// one open association, the hoteling FileStore's log with a save, a
// replace and a delete (or the older whole-object format), and phonesync's
// dialog snapshot (testdata, persist.go's format).
func legacyFiles(t *testing.T, dir string, oldHotelingFormat bool) Legacy {
	t.Helper()
	l := Legacy{
		JournalPath:  filepath.Join(dir, "connector-journal.db"),
		HotelingPath: filepath.Join(dir, "connector-hoteling.json"),
		SIPPath:      filepath.Join(dir, "sip-state.json"),
	}
	j, err := journal.Open(l.JournalPath, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := j.Begin(ctx, assoc("a1", "d1", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := j.End(ctx, "a1@example.com", t0.Add(time.Hour), journal.EndLogout, "bye"); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Begin(ctx, assoc("a2", "d2", t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if oldHotelingFormat {
		// The format before the log: one JSON object of entries by host.
		data := `{"d2@example.com":{"HostUserID":"d2@example.com","GuestUserID":"a2@example.com","ForwardTo":"+1555a2@example.com","PreviousCFA":{"Active":true,"ForwardToPhoneNumber":"+1999"}}}`
		if err := os.WriteFile(l.HotelingPath, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	} else {
		fs := &hoteling.FileStore{Path: l.HotelingPath}
		for _, r := range []hoteling.Remembered{rem("d1@example.com", "a1@example.com"), rem("d2@example.com", "a9"), rem("d2@example.com", "a2@example.com")} {
			if err := fs.Save(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := fs.Delete("d1@example.com"); err != nil {
			t.Fatal(err)
		}
		if err := fs.Close(); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile("testdata/sip-state.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.SIPPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestMigrateLegacy: the three old files are copied into a new store, each
// renamed with MigratedSuffix, and the store answers as the old files did;
// a second start finds nothing to migrate. Reopening the store keeps it.
func TestMigrateLegacy(t *testing.T) {
	for _, oldFormat := range []bool{false, true} {
		name := "hoteling log"
		if oldFormat {
			name = "hoteling whole-object file"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := legacyFiles(t, dir, oldFormat)
			path := filepath.Join(dir, "connector.db")
			s := openStore(t, path)
			m, err := s.MigrateLegacy(l)
			if err != nil {
				t.Fatal(err)
			}
			wantM := Migration{Associations: 2, OpenAssociations: 1, Remembered: 1, SIPDialogs: 2,
				Renamed: []string{l.JournalPath + MigratedSuffix, l.HotelingPath + MigratedSuffix, l.SIPPath + MigratedSuffix}}
			if !reflect.DeepEqual(m, wantM) {
				t.Errorf("migration %+v, want %+v", m, wantM)
			}
			for _, p := range []string{l.JournalPath, l.HotelingPath, l.SIPPath} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s still there: %v", p, err)
				}
				if _, err := os.Stat(p + MigratedSuffix); err != nil {
					t.Errorf("%s not renamed: %v", p, err)
				}
			}
			check := func(s *Bolt) {
				t.Helper()
				ctx := t.Context()
				a, ok, err := s.Journal().AtDesk(ctx, "d1", t0.Add(30*time.Minute))
				if err != nil || !ok || a.AgentUserID != "a1@example.com" || a.EndedBy != journal.EndLogout || a.Detail != "bye" || a.ID != 1 {
					t.Errorf("who was at d1: %+v %v %v", a, ok, err)
				}
				open, err := s.Journal().OpenAssociations(ctx)
				if err != nil || len(open) != 1 || open[0].AgentUserID != "a2@example.com" || open[0].ID != 2 {
					t.Errorf("open associations: %+v %v", open, err)
				}
				// The journal's sequence came along: the next ID follows.
				if id, err := s.Journal().Begin(ctx, assoc("a3", "d3", t0.Add(2*time.Hour))); err != nil || id != 3 {
					t.Errorf("next Begin: ID %d, %v; want 3", id, err)
				}
				rs, err := s.Remembered().Load()
				if err != nil || len(rs) != 1 || rs[0] != rem("d2@example.com", "a2@example.com") {
					t.Errorf("remembered: %+v %v", rs, err)
				}
				d, err := s.SIPDialogs().LoadDialogs()
				want, _ := os.ReadFile("testdata/sip-state.json")
				if err != nil || string(d) != string(want) {
					t.Errorf("SIP dialogs: %d bytes, %v", len(d), err)
				}
			}
			check(s)
			// A second start: nothing left to migrate.
			if m, err := s.MigrateLegacy(l); err != nil || !reflect.DeepEqual(m, Migration{}) {
				t.Errorf("second migration: %+v, %v", m, err)
			}
			s.Close()
			s = openStore(t, path)
			open, err := s.Journal().OpenAssociations(t.Context())
			if err != nil || len(open) != 2 {
				t.Errorf("after reopen: %d open associations (%v), want 2", len(open), err)
			}
		})
	}
}

// TestMigrateCrashBeforeRename: a start that copied a file and died before
// renaming it copies nothing twice; the next start only renames.
func TestMigrateCrashBeforeRename(t *testing.T) {
	dir := t.TempDir()
	l := legacyFiles(t, dir, false)
	s := openStore(t, filepath.Join(dir, "connector.db"))
	if _, err := s.MigrateLegacy(l); err != nil {
		t.Fatal(err)
	}
	// Put the files back, as if the renames had not happened.
	for _, p := range []string{l.JournalPath, l.HotelingPath, l.SIPPath} {
		if err := os.Rename(p+MigratedSuffix, p); err != nil {
			t.Fatal(err)
		}
	}
	// Changes made since: a later logout forgot d2; the next start must
	// not bring it back.
	if err := s.Remembered().Delete("d2@example.com"); err != nil {
		t.Fatal(err)
	}
	m, err := s.MigrateLegacy(l)
	if err != nil {
		t.Fatal(err)
	}
	if m.Associations != 0 || m.Remembered != 0 || m.SIPDialogs != 0 || len(m.Renamed) != 3 {
		t.Errorf("migration after a crash before the rename: %+v", m)
	}
	if rs, _ := s.Remembered().Load(); len(rs) != 0 {
		t.Errorf("remembered after: %+v, want none", rs)
	}
	if open, _ := s.Journal().OpenAssociations(t.Context()); len(open) != 1 {
		t.Errorf("open associations: %d, want 1 (not copied twice)", len(open))
	}
}

// TestMigrateRefusals: what is not migrated, and why, by the key's name;
// the file stays where it was.
func TestMigrateRefusals(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, s *Bolt, l *Legacy)
		key     string
		left    func(l Legacy) string
		wantErr string
	}{
		{"journal into a store that has one", func(t *testing.T, s *Bolt, l *Legacy) {
			if _, err := s.Journal().Begin(t.Context(), assoc("a7", "d7", t0)); err != nil {
				t.Fatal(err)
			}
		}, "journal.path", func(l Legacy) string { return l.JournalPath }, "already has associations"},
		{"journal.path not a journal", func(t *testing.T, s *Bolt, l *Legacy) {
			db, err := bolt.Open(l.JournalPath+".other", 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			l.JournalPath += ".other"
		}, "journal.path", func(l Legacy) string { return l.JournalPath }, "not a journal file"},
		{"hoteling file corrupt", func(t *testing.T, s *Bolt, l *Legacy) {
			os.WriteFile(l.HotelingPath, []byte("{not json"), 0o600)
		}, "hoteling.state_file", func(l Legacy) string { return l.HotelingPath }, "invalid character"},
		{"SIP file of another version", func(t *testing.T, s *Bolt, l *Legacy) {
			os.WriteFile(l.SIPPath, []byte(`{"version":2,"dialogs":[]}`), 0o600)
		}, "sip.state_file", func(l Legacy) string { return l.SIPPath }, "version 2"},
		{"the store file itself", func(t *testing.T, s *Bolt, l *Legacy) {
			l.SIPPath = s.Path()
		}, "sip.state_file", func(l Legacy) string { return l.SIPPath }, "store file itself"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := legacyFiles(t, dir, false)
			s := openStore(t, filepath.Join(dir, "connector.db"))
			tc.prepare(t, s, &l)
			_, err := s.MigrateLegacy(l)
			if err == nil || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("MigrateLegacy: %v; want an error naming %s and %q", err, tc.key, tc.wantErr)
			}
			if _, err := os.Stat(tc.left(l)); err != nil {
				t.Errorf("the file was not left in place: %v", err)
			}
		})
	}
}

// TestMigrateNothing: no legacy files (or none configured) is nothing to do.
func TestMigrateNothing(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, filepath.Join(dir, "connector.db"))
	for _, l := range []Legacy{{}, {JournalPath: filepath.Join(dir, "j.db"), HotelingPath: filepath.Join(dir, "h.json"), SIPPath: filepath.Join(dir, "s.json")}} {
		if m, err := s.MigrateLegacy(l); err != nil || !reflect.DeepEqual(m, Migration{}) {
			t.Errorf("%+v: %+v, %v", l, m, err)
		}
	}
}
