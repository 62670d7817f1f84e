package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/journal"
)

// Legacy names the files of the three stores the connector kept before
// this one (the keys journal.path, hoteling.state_file, sip.state_file).
// Empty: none to migrate.
type Legacy struct {
	JournalPath  string // bbolt, journal buckets at the top level
	HotelingPath string // hoteling.FileStore (JSON log, or the older JSON object)
	SIPPath      string // phonesync's JSON dialog snapshot
}

// MigratedSuffix is appended to a legacy file's name once its content is
// in the store, so that it is migrated once and kept for the operator.
const MigratedSuffix = ".migrated"

// Migration is what one MigrateLegacy call did, for the log and the tests.
type Migration struct {
	Associations, OpenAssociations int // journal records copied
	Remembered                     int // remembered desk forwardings copied
	RememberedKept                 int // ... not copied: the store has a newer entry for that desk
	SIPDialogs                     int // SIP dialogs in the copied snapshot
	Renamed                        []string
}

// MigrateLegacy copies what the legacy files hold into the store, each in
// one transaction, then renames each file with MigratedSuffix; it logs one
// line per file migrated. A file missing is nothing to do. What is copied
// is marked in the store's meta bucket with the file's path in the same
// transaction, so a crash between the copy and the rename copies nothing
// twice: the next start only renames.
//
// The journal is copied only into an empty journal (association IDs are
// the journal's sequence); a store whose journal already has records keeps
// them, and the legacy file is left in place with an error naming it.
// Remembered forwarding already in the store wins over the file's (the
// store's is newer); so does a SIP dialog snapshot.
func (s *Bolt) MigrateLegacy(l Legacy) (Migration, error) {
	var m Migration
	var errs []error
	steps := []struct {
		key, path string
		copy      func(path, mark string) (string, error)
	}{
		{"journal.path", l.JournalPath, func(p, mark string) (string, error) { return s.migrateJournal(p, mark, &m) }},
		{"hoteling.state_file", l.HotelingPath, func(p, mark string) (string, error) { return s.migrateRemembered(p, mark, &m) }},
		{"sip.state_file", l.SIPPath, func(p, mark string) (string, error) { return s.migrateSIP(p, mark, &m) }},
	}
	for _, st := range steps {
		if st.path == "" {
			continue
		}
		ok, err := fileExists(st.path)
		if err != nil {
			errs = append(errs, fmt.Errorf("store: migrating %s: %w", st.key, err))
			continue
		}
		if !ok {
			continue
		}
		abs, err := filepath.Abs(st.path)
		if err != nil {
			errs = append(errs, fmt.Errorf("store: migrating %s: %w", st.key, err))
			continue
		}
		if same, _ := sameFile(abs, s.path); same {
			errs = append(errs, fmt.Errorf("store: %s %s is the store file itself; give store.path another file", st.key, st.path))
			continue
		}
		mark := "migrated:" + st.key + ":" + abs
		what, err := st.copy(st.path, mark)
		if err != nil {
			errs = append(errs, fmt.Errorf("store: migrating %s %s: %w", st.key, st.path, err))
			continue
		}
		to := st.path + MigratedSuffix
		if err := os.Rename(st.path, to); err != nil {
			errs = append(errs, fmt.Errorf("store: %s %s migrated but not renamed: %w", st.key, st.path, err))
			continue
		}
		syncDir(filepath.Dir(st.path))
		m.Renamed = append(m.Renamed, to)
		s.log.Info("store: migrated legacy file", "key", st.key, "from", st.path, "renamed_to", to, "store", s.path, "copied", what)
	}
	return m, errors.Join(errs...)
}

// migrated reports whether mark is in the meta bucket (an earlier start
// copied the file and crashed before the rename).
func migrated(tx *bolt.Tx, mark string) bool {
	return tx.Bucket(bucketMeta).Get([]byte(mark)) != nil
}

func markMigrated(tx *bolt.Tx, mark string) error {
	return tx.Bucket(bucketMeta).Put([]byte(mark), []byte(time.Now().UTC().Format(time.RFC3339)))
}

func (s *Bolt) migrateJournal(path, mark string, m *Migration) (string, error) {
	old, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return "", err
	}
	defer old.Close()
	var what string
	err = old.View(func(otx *bolt.Tx) error {
		meta := otx.Bucket([]byte("meta"))
		if meta == nil || otx.Bucket([]byte("assoc")) == nil {
			return fmt.Errorf("%w: not a journal file (no meta or assoc bucket)", ErrFormat)
		}
		if v := meta.Get([]byte("version")); !bytes.Equal(v, []byte("1")) {
			return fmt.Errorf("%w: journal format %q (this build reads \"1\")", ErrFormat, v)
		}
		return s.gc.Write(func(tx *bolt.Tx) error {
			if migrated(tx, mark) {
				what = "nothing (copied before the last restart)"
				return nil
			}
			root := tx.Bucket(journal.Root)
			if k, _ := root.Bucket([]byte("assoc")).Cursor().First(); k != nil {
				return fmt.Errorf("the store's journal already has associations; this file is left in place (move it away, or query it with an older build)")
			}
			for _, name := range journal.Buckets() {
				src := otx.Bucket(name)
				if src == nil {
					continue
				}
				if err := root.DeleteBucket(name); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
					return err
				}
				dst, err := root.CreateBucket(name)
				if err != nil {
					return err
				}
				// Keys are copied in order: bbolt fills pages fully then.
				dst.FillPercent = 1
				if err := src.ForEach(func(k, v []byte) error {
					if v == nil {
						return fmt.Errorf("%w: nested bucket %q in journal bucket %q", ErrFormat, k, name)
					}
					return dst.Put(k, v)
				}); err != nil {
					return err
				}
				if err := dst.SetSequence(src.Sequence()); err != nil {
					return err
				}
			}
			m.Associations = otx.Bucket([]byte("assoc")).Stats().KeyN
			if oa := otx.Bucket([]byte("open-agent")); oa != nil {
				m.OpenAssociations = oa.Stats().KeyN
			}
			what = fmt.Sprintf("%d associations (%d open)", m.Associations, m.OpenAssociations)
			return markMigrated(tx, mark)
		}, nil)
	})
	return what, err
}

func (s *Bolt) migrateRemembered(path, mark string, m *Migration) (string, error) {
	fs := &hoteling.FileStore{Path: path}
	entries, err := fs.Load()
	if cerr := fs.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	var what string
	err = s.gc.Write(func(tx *bolt.Tx) error {
		if migrated(tx, mark) {
			what = "nothing (copied before the last restart)"
			return nil
		}
		t := boltTx{tx: tx, s: s}
		for _, r := range entries {
			if tx.Bucket(bucketRemembered).Get([]byte(r.HostUserID)) != nil {
				m.RememberedKept++
				continue
			}
			if err := t.PutRemembered(r); err != nil {
				return err
			}
			m.Remembered++
		}
		what = fmt.Sprintf("%d remembered desk forwardings (%d kept from the store, newer)", m.Remembered, m.RememberedKept)
		return markMigrated(tx, mark)
	}, nil)
	return what, err
}

func (s *Bolt) migrateSIP(path, mark string, m *Migration) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxDialogsLen+1))
	f.Close()
	if err != nil {
		return "", err
	}
	if len(data) > MaxDialogsLen {
		return "", fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxDialogsLen)
	}
	// phonesync's format (persist.go): {"version":1,"saved":...,"dialogs":[...]};
	// phonesync checks the rest when it loads the snapshot.
	var snap struct {
		Version int               `json:"version"`
		Dialogs []json.RawMessage `json:"dialogs"`
	}
	if err := json.Unmarshal(data, &snap); err != nil {
		return "", fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if snap.Version != 1 {
		return "", fmt.Errorf("%w: SIP state version %d (this build reads 1)", ErrFormat, snap.Version)
	}
	var what string
	err = s.gc.Write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSIPDialogs)
		switch {
		case migrated(tx, mark):
			what = "nothing (copied before the last restart)"
			return nil
		case b.Get(dialogsKey) != nil:
			what = "nothing (the store's dialogs are newer)"
		default:
			if err := b.Put(dialogsKey, data); err != nil {
				return err
			}
			m.SIPDialogs = len(snap.Dialogs)
			what = fmt.Sprintf("%d SIP dialogs", m.SIPDialogs)
		}
		return markMigrated(tx, mark)
	}, nil)
	return what, err
}

func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}

// syncDir makes a rename in dir durable; a failure leaves the rename to
// the file system's own schedule (the copy is marked, so it is harmless).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
