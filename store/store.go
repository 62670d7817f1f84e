// Package store is the connector's durable state in one place: the
// hoteling association journal, the remembered desk forwarding, the intents
// (what the connector last promised a client, per user and facet) and the
// persisted SIP dialogs, each behind a small interface its consumer uses,
// and a unit of work (Update) that writes any of them in one transaction.
//
// Bolt implements it with one embedded bbolt file, a bucket per concern:
//
//	store       meta: format version, migrations done
//	journal     the journal's buckets (package journal, Attach)
//	remembered  desk (host) user ID            -> hoteling.Remembered (JSON)
//	intents     len16(user) user facet         -> opaque (the reconciler's encoding)
//	sipdialogs  "dialogs"                      -> phonesync's dialog snapshot (JSON)
//
// Every write goes through one group committer (internal/groupcommit):
// writes made at the same time, of any concern, share one bbolt commit and
// so its two fsyncs; a lone write commits at once. Every write returns once
// it is on disk. A networked database (issue 18, PostgreSQL) implements
// Store with the same interfaces.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/internal/groupcommit"
	"github.com/broadworks-connector/connector/journal"
)

// Store is what the connector keeps across restarts, whatever keeps it.
type Store interface {
	// Update runs fn in one transaction, committed once (and shared with
	// concurrent writers); it returns once the transaction is durable. An
	// error from fn rolls back everything fn wrote.
	Update(ctx context.Context, fn func(Tx) error) error
	// Journal is the association journal (who sat at which desk when).
	Journal() Journal
	// Remembered keeps the desks' own forwarding while a guest sits there.
	Remembered() hoteling.Store
	// Intents keeps what the connector last promised, per user and facet.
	Intents() Intents
	// SIPDialogs keeps the UDP subscription dialogs across restarts.
	SIPDialogs() DialogStore
	Close() error
}

// Tx is one unit of work: what it writes commits together or not at all.
type Tx interface {
	JournalBegin(a journal.Association) (journal.ID, error)
	JournalEnd(agentUserID string, at time.Time, by journal.EndReason, detail string) (journal.Association, error)
	PutRemembered(r hoteling.Remembered) error
	DeleteRemembered(hostUserID string) error
	PutIntent(userID, facet string, value []byte) error
	DeleteIntent(userID, facet string) error
}

// Journal is the association journal's interface (package journal's
// Journal implements it on bbolt).
type Journal interface {
	Begin(ctx context.Context, a journal.Association) (journal.ID, error)
	End(ctx context.Context, agentUserID string, at time.Time, by journal.EndReason, detail string) (journal.Association, error)
	AtDesk(ctx context.Context, deviceID string, at time.Time) (journal.Association, bool, error)
	AgentBetween(ctx context.Context, agentUserID string, from, to time.Time) ([]journal.Association, error)
	DeskBetween(ctx context.Context, deviceID string, from, to time.Time) ([]journal.Association, error)
	// OpenAssociations lists the associations not ended that this
	// instance's channel set began (a shared database holds other
	// shards' too).
	OpenAssociations(ctx context.Context) ([]journal.Association, error)
}

// Intent is one stored intent: a user's facet and its encoded value.
type Intent struct {
	UserID, Facet string
	Value         []byte
}

// Intents keeps the reconciler's intents; each call is its own transaction
// (use Update to write intents with other records).
type Intents interface {
	Put(userID, facet string, value []byte) error
	Delete(userID, facet string) error
	Load() ([]Intent, error)
}

// DialogStore keeps phonesync's snapshot of its UDP dialogs (phonesync
// encodes it); LoadDialogs returns nil when none was saved.
type DialogStore interface {
	SaveDialogs(snapshot []byte) error
	LoadDialogs() ([]byte, error)
}

// Limits on what the store accepts, so one bad caller cannot fill the file.
const (
	MaxKeyLen        = 1024     // user IDs, host user IDs
	MaxFacetLen      = 64       // intent facet names
	MaxIntentLen     = 64 << 10 // one intent's value
	MaxDialogsLen    = 64 << 20 // the SIP dialog snapshot
	maxRememberedLen = 64 << 10
)

// The kinds of failure callers tell apart; match with errors.Is.
var (
	ErrInvalid = errors.New("store: invalid input")                  // empty or oversized keys or values
	ErrClosed  = errors.New("store: closed")                         // the store was closed
	ErrLocked  = errors.New("store: file in use by another process") // Open could not lock the file in time
	ErrFormat  = errors.New("store: unsupported file format")        // a file this build cannot read
)

var (
	bucketMeta       = []byte("store")
	bucketRemembered = []byte("remembered")
	bucketIntents    = []byte("intents")
	bucketSIPDialogs = []byte("sipdialogs")

	metaVersionKey = []byte("version")
	formatVersion  = []byte("1")
	dialogsKey     = []byte("dialogs")
)

// Options configure a Bolt store.
type Options struct {
	// Journal configures the journal part (retention, pruning); its
	// LockTimeout and Logger are taken from here.
	Journal journal.Options
	// LockTimeout: how long Open waits for the file lock another process
	// (or store) holds. 0 means one second.
	LockTimeout time.Duration
	// Logger receives the journal's pruning reports and the migration
	// reports; nil means slog.Default().
	Logger *slog.Logger
}

// Bolt is the store in one bbolt file. It is safe for concurrent use.
type Bolt struct {
	db      *bolt.DB
	gc      *groupcommit.Committer
	journal *journal.Journal
	path    string
	log     *slog.Logger
	metrics *metrics

	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*Bolt)(nil)

// Open opens (creating it when missing) the store file at path. A file
// another store holds makes Open fail with ErrLocked after the lock timeout.
func Open(path string, opts Options) (*Bolt, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrInvalid)
	}
	if opts.LockTimeout < 0 {
		return nil, fmt.Errorf("%w: negative lock timeout", ErrInvalid)
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, opts.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := db.Update(initBuckets); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Bolt{db: db, gc: groupcommit.New(db), path: path, log: opts.Logger}
	s.metrics = newMetrics(s)
	s.gc.SetObserver(s.metrics.observe)
	jopts := opts.Journal
	jopts.LockTimeout, jopts.Logger = opts.LockTimeout, opts.Logger
	if s.journal, err = journal.Attach(db, s.gc, journal.Root, jopts); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
}

func initBuckets(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil && !emptyFile(tx) {
		// Not a store: most likely an old journal file given as store.path.
		return fmt.Errorf("%w: not a connector store (no %q bucket); an old journal file is migrated from journal.path, not opened as store.path", ErrFormat, bucketMeta)
	}
	for _, name := range [][]byte{bucketMeta, bucketRemembered, bucketIntents, bucketSIPDialogs} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta = tx.Bucket(bucketMeta)
	switch v := meta.Get(metaVersionKey); {
	case v == nil:
		return meta.Put(metaVersionKey, formatVersion)
	case !bytes.Equal(v, formatVersion):
		return fmt.Errorf("%w: format %q (this build reads %q)", ErrFormat, v, formatVersion)
	}
	return nil
}

func emptyFile(tx *bolt.Tx) bool {
	k, _ := tx.Cursor().First()
	return k == nil
}

// Close stops the journal's pruner and closes the file; later calls fail
// with ErrClosed (the journal's with journal.ErrClosed). Closing again
// returns the first Close's result.
func (s *Bolt) Close() error {
	s.closeOnce.Do(func() {
		s.journal.Close()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return s.closeErr
}

// Path is the store file's path.
func (s *Bolt) Path() string { return s.path }

// Commits is how many bbolt transactions have been committed through the
// group committer since Open (each costs two fsyncs): with concurrent
// writers, fewer than the writes.
func (s *Bolt) Commits() uint64 { return s.gc.Commits() }

// Journal is the association journal in the store's journal bucket.
func (s *Bolt) Journal() Journal { return s.journal }

// JournalFile is Journal as package journal's type (with Prune and Path).
func (s *Bolt) JournalFile() *journal.Journal { return s.journal }

// Update runs fn in a read-write transaction shared with concurrent
// writers (group commit) and returns once it is on disk. Whatever fn
// returns as an error undoes all fn wrote (the group it shared is rolled
// back and the other writes are retried alone).
func (s *Bolt) Update(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: update: %w", err)
	}
	err := s.gc.Write(func(tx *bolt.Tx) error { return fn(boltTx{tx: tx, s: s}) }, nil)
	return wrapDB("update", err)
}

// wrapDB maps bbolt's closed database to ErrClosed and gives bbolt's
// errors the package prefix.
func wrapDB(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bolt.ErrDatabaseNotOpen):
		return fmt.Errorf("%w (%s)", ErrClosed, op)
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrClosed), errors.Is(err, ErrFormat):
		return err
	}
	for _, s := range []error{journal.ErrInvalid, journal.ErrClosed, journal.ErrNoOpenAssociation, journal.ErrAgentAssociated,
		journal.ErrDeskOccupied, journal.ErrOverlap, journal.ErrCorrupt} {
		if errors.Is(err, s) {
			return err
		}
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// boltTx is Tx on a bbolt read-write transaction.
type boltTx struct {
	tx *bolt.Tx
	s  *Bolt
}

func (t boltTx) JournalBegin(a journal.Association) (journal.ID, error) {
	return t.s.journal.BeginTx(t.tx, a)
}

func (t boltTx) JournalEnd(agentUserID string, at time.Time, by journal.EndReason, detail string) (journal.Association, error) {
	return t.s.journal.EndTx(t.tx, agentUserID, at, by, detail)
}

func (t boltTx) PutRemembered(r hoteling.Remembered) error {
	if err := validKey("host user ID", r.HostUserID, MaxKeyLen); err != nil {
		return err
	}
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: remembered %s: %w", r.HostUserID, err)
	}
	if len(v) > maxRememberedLen {
		return fmt.Errorf("%w: remembered forwarding of %s is %d bytes (limit %d)", ErrInvalid, r.HostUserID, len(v), maxRememberedLen)
	}
	return t.tx.Bucket(bucketRemembered).Put([]byte(r.HostUserID), v)
}

func (t boltTx) DeleteRemembered(hostUserID string) error {
	if err := validKey("host user ID", hostUserID, MaxKeyLen); err != nil {
		return err
	}
	return t.tx.Bucket(bucketRemembered).Delete([]byte(hostUserID))
}

func (t boltTx) PutIntent(userID, facet string, value []byte) error {
	k, err := intentKey(userID, facet)
	if err != nil {
		return err
	}
	if len(value) > MaxIntentLen {
		return fmt.Errorf("%w: intent %s/%s is %d bytes (limit %d)", ErrInvalid, userID, facet, len(value), MaxIntentLen)
	}
	return t.tx.Bucket(bucketIntents).Put(k, value)
}

func (t boltTx) DeleteIntent(userID, facet string) error {
	k, err := intentKey(userID, facet)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketIntents).Delete(k)
}

func validKey(name, s string, limit int) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalid, name)
	case len(s) > limit:
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, name, limit)
	}
	return nil
}

// intentKey is len16(user) user facet: the length keeps "u1"+"x" and
// "u1x"+"" apart, and one user's intents are one prefix.
func intentKey(userID, facet string) ([]byte, error) {
	if err := validKey("user ID", userID, MaxKeyLen); err != nil {
		return nil, err
	}
	if err := validKey("facet", facet, MaxFacetLen); err != nil {
		return nil, err
	}
	k := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(userID)+len(facet)), uint16(len(userID)))
	return append(append(k, userID...), facet...), nil
}

func splitIntentKey(k []byte) (user, facet string, ok bool) {
	if len(k) < 2 {
		return "", "", false
	}
	n := int(binary.BigEndian.Uint16(k))
	if len(k) < 2+n {
		return "", "", false
	}
	return string(k[2 : 2+n]), string(k[2+n:]), true
}

// ---- the consumers' interfaces ----

// Remembered is the store as hoteling.Store: each Save or Delete is its
// own transaction (shared with concurrent writers).
func (s *Bolt) Remembered() hoteling.Store { return rememberedStore{s} }

type rememberedStore struct{ s *Bolt }

func (r rememberedStore) Save(rem hoteling.Remembered) error {
	return r.s.Update(context.Background(), func(tx Tx) error { return tx.PutRemembered(rem) })
}

func (r rememberedStore) Delete(hostUserID string) error {
	return r.s.Update(context.Background(), func(tx Tx) error { return tx.DeleteRemembered(hostUserID) })
}

// Load returns the entries sorted by host.
func (r rememberedStore) Load() ([]hoteling.Remembered, error) {
	var out []hoteling.Remembered
	err := r.s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRemembered).ForEach(func(k, v []byte) error {
			var rem hoteling.Remembered
			if err := json.Unmarshal(v, &rem); err != nil {
				return fmt.Errorf("store: remembered %q: %w", k, err)
			}
			if rem.HostUserID != string(k) {
				return fmt.Errorf("store: remembered %q holds host %q", k, rem.HostUserID)
			}
			out = append(out, rem)
			return nil
		})
	})
	if err != nil {
		return nil, wrapDB("load remembered", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].HostUserID < out[j].HostUserID })
	return out, nil
}

// Intents is the store's intents bucket.
func (s *Bolt) Intents() Intents { return intentStore{s} }

type intentStore struct{ s *Bolt }

func (i intentStore) Put(userID, facet string, value []byte) error {
	return i.s.Update(context.Background(), func(tx Tx) error { return tx.PutIntent(userID, facet, value) })
}

func (i intentStore) Delete(userID, facet string) error {
	return i.s.Update(context.Background(), func(tx Tx) error { return tx.DeleteIntent(userID, facet) })
}

// Load returns every intent, by user then facet.
func (i intentStore) Load() ([]Intent, error) {
	var out []Intent
	err := i.s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIntents).ForEach(func(k, v []byte) error {
			user, facet, ok := splitIntentKey(k)
			if !ok {
				return fmt.Errorf("store: intent key %x malformed", k)
			}
			out = append(out, Intent{UserID: user, Facet: facet, Value: bytes.Clone(v)})
			return nil
		})
	})
	if err != nil {
		return nil, wrapDB("load intents", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].UserID != out[j].UserID {
			return out[i].UserID < out[j].UserID
		}
		return out[i].Facet < out[j].Facet
	})
	return out, nil
}

// SIPDialogs is the store's sipdialogs bucket.
func (s *Bolt) SIPDialogs() DialogStore { return dialogStore{s} }

type dialogStore struct{ s *Bolt }

func (d dialogStore) SaveDialogs(snapshot []byte) error {
	if len(snapshot) > MaxDialogsLen {
		return fmt.Errorf("%w: SIP dialog snapshot is %d bytes (limit %d)", ErrInvalid, len(snapshot), MaxDialogsLen)
	}
	err := d.s.gc.Write(func(tx *bolt.Tx) error { return tx.Bucket(bucketSIPDialogs).Put(dialogsKey, snapshot) }, nil)
	return wrapDB("save SIP dialogs", err)
}

func (d dialogStore) LoadDialogs() ([]byte, error) {
	var out []byte
	err := d.s.db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucketSIPDialogs).Get(dialogsKey))
		return nil
	})
	return out, wrapDB("load SIP dialogs", err)
}

// fileExists reports whether path names an existing regular file.
func fileExists(path string) (bool, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("%s is not a regular file", path)
	}
	return true, nil
}
