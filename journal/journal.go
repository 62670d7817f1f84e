// Package journal is the hoteling association journal: every association of
// an agent with a desk, from its start to its end and who ended it, kept in an
// embedded bbolt file (pure Go) so that "who was at desk X at time T" and
// "where was agent A between T1 and T2" can be answered after restarts and
// crashes (issue 6, "Association journal").
//
// Durability: Begin and End return only after their bbolt transaction has
// committed, and a bbolt commit writes and fsyncs before it returns, so an
// association whose Begin (or End) returned nil survives a crash of the
// process or the machine. Concurrent Begins and Ends share transactions
// (group commit, commit.go). That is what lets the gateway write the journal
// before it acknowledges a login or logout.
//
// Invariants the journal keeps (Begin and End refuse what would break them,
// with the sentinel errors in errors.go):
//   - an agent has at most one open association, and so does a desk;
//   - the associations of one agent, and those of one desk, do not overlap:
//     a new one starts no earlier than the previous one ended.
//
// Because of the second, "who was at desk X at T" is one index seek (the
// latest association at X that started at or before T either covers T or
// nothing does), and so is the start of an agent's range.
//
// Times are stored in nanoseconds since 1970 (UTC), so they must lie between
// the years 1678 and 2262; intervals are half open: an association covers
// [Start, End), so at its End the desk is already free.
package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/broadworks-connector/connector/internal/groupcommit"
)

// ID identifies one association in one journal file. IDs grow in the order
// associations were begun.
type ID uint64

func (id ID) String() string { return strconv.FormatUint(uint64(id), 10) }

// EndReason says who or what ended an association.
type EndReason string

// The reasons an association ends, one per line.
const (
	EndLogout           EndReason = "logout"            // the agent logged out (CTI or phone)
	EndForced           EndReason = "forced"            // a supervisor forced the logout (admin API)
	EndStale            EndReason = "stale"             // stale-login cleanup after the CTI session vanished
	EndAssociationLimit EndReason = "association-limit" // BroadWorks dropped the guest association (association limit)
	EndRecovery         EndReason = "recovery"          // the connector repaired a half-done sequence
	EndPortal           EndReason = "portal"            // ended outside the connector (BroadWorks portal, another system)
	EndUnknown          EndReason = "unknown"           // found ended, cause unknown (e.g. at start-up reconciliation)
)

// Valid reports whether r is one of the reasons above.
func (r EndReason) Valid() bool {
	switch r {
	case EndLogout, EndForced, EndStale, EndAssociationLimit, EndRecovery, EndPortal, EndUnknown:
		return true
	}
	return false
}

// Association is one hoteling association: an agent (a BroadWorks hoteling
// guest) at a desk (a hoteling host).
type Association struct {
	ID          ID        // set by Begin; ignored when passed to Begin
	AgentID     string    // the CSTA agent ID
	AgentUserID string    // the agent's BroadWorks user ID (the hoteling guest); the agent index key
	DeviceID    string    // the desk's CSTA device ID; the desk index key
	DeskUserID  string    // the desk's BroadWorks user ID (the hoteling host)
	Start       time.Time // when the association began (inclusive)
	End         time.Time // when it ended (exclusive); zero while open
	EndedBy     EndReason // empty while open
	Detail      string    // free text; Begin stores it, a non-empty End detail replaces it
}

// Open reports whether the association has not ended.
func (a Association) Open() bool { return a.End.IsZero() }

// covers reports whether the association covers the instant t.
func (a Association) covers(t time.Time) bool {
	return !t.Before(a.Start) && (a.End.IsZero() || t.Before(a.End))
}

// Options configure a Journal. The zero value keeps everything forever.
type Options struct {
	// Retention: associations that ended more than Retention ago are pruned.
	// 0 keeps them forever. Open associations are never pruned.
	Retention time.Duration
	// PruneInterval: how often the background pruner runs when Retention > 0.
	// 0 means Retention/10, but at least a minute and at most an hour.
	PruneInterval time.Duration
	// LockTimeout: how long Open waits for the file lock held by another
	// Journal (this process or another). 0 means one second.
	LockTimeout time.Duration
	// Now is the clock the background pruner uses; nil means time.Now.
	Now func() time.Time
	// Logger receives background pruning failures and counts; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Limits on what Begin and End accept, so that one bad caller cannot fill
// the file with megabyte keys.
const (
	maxIDLen     = 1024
	maxDetailLen = 4096
)

// pruneBatch is how many associations Prune deletes per transaction, so a
// first prune of a year's backlog does not build one huge transaction.
// A variable for the tests.
var pruneBatch = 1000

// Journal is an open journal: a file of its own (Open) or a bucket of the
// connector's store (Attach). It is safe for concurrent use: writes (Begin,
// End) are grouped into shared transactions (internal/groupcommit), reads
// run concurrently with them on bbolt snapshots.
type Journal struct {
	db   *bolt.DB
	gc   *groupcommit.Committer
	root []byte // the bucket holding the journal's buckets; nil: the file's top level
	own  bool   // Close closes db
	path string
	opts Options
	log  *slog.Logger

	closeOnce sync.Once
	closeErr  error
	stop      context.CancelFunc // stops the pruner; nil without one
	pruned    chan struct{}      // closed when the pruner has returned
}

// Open opens (creating it when missing) the journal file at path and, when
// opts.Retention > 0, starts the background pruner, which Close stops.
// A file already opened by another Journal, in this process or another,
// makes Open fail with ErrLocked after opts.LockTimeout.
func Open(path string, opts Options) (*Journal, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrInvalid)
	}
	if err := opts.fill(); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, opts.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return initBuckets(tx) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("journal: open %s: %w", path, err)
	}
	j := &Journal{db: db, gc: groupcommit.New(db), own: true, path: path, opts: opts}
	j.start()
	return j, nil
}

// Attach keeps the journal in the bucket root of db, a file the caller
// owns (the connector's store), writing through gc, which the caller's
// other writers share so that their commits are shared too. Close stops
// the pruner and leaves db open.
func Attach(db *bolt.DB, gc *groupcommit.Committer, root []byte, opts Options) (*Journal, error) {
	if len(root) == 0 {
		return nil, fmt.Errorf("%w: empty root bucket", ErrInvalid)
	}
	if err := opts.fill(); err != nil {
		return nil, err
	}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(root)
		if err != nil {
			return err
		}
		return initBuckets(b)
	})
	if err != nil {
		return nil, fmt.Errorf("journal: %s: %w", db.Path(), err)
	}
	j := &Journal{db: db, gc: gc, root: root, path: db.Path(), opts: opts}
	j.start()
	return j, nil
}

// Root is the bucket name under which Attach keeps a journal's buckets;
// a journal file of its own (Open) has them at the top level.
var Root = []byte("journal")

func (o *Options) fill() error {
	if o.Retention < 0 || o.PruneInterval < 0 || o.LockTimeout < 0 {
		return fmt.Errorf("%w: negative duration in options", ErrInvalid)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = time.Second
	}
	if o.PruneInterval == 0 {
		o.PruneInterval = min(max(o.Retention/10, time.Minute), time.Hour)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// start starts the pruner when a retention is set.
func (j *Journal) start() {
	j.log = j.opts.Logger
	if j.opts.Retention > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		j.stop = cancel
		j.pruned = make(chan struct{})
		go j.pruneLoop(ctx)
	}
}

// buckets are the journal's buckets in tx.
func (j *Journal) buckets(tx *bolt.Tx) txBuckets {
	if j.root == nil {
		return buckets(tx)
	}
	return buckets(tx.Bucket(j.root))
}

// write runs fn in a shared read-write transaction (group commit) and
// returns once it is on disk; the journal's own errors are refusals, which
// fn returns before writing anything.
func (j *Journal) write(fn func(txBuckets) error) error {
	return j.gc.Write(func(tx *bolt.Tx) error { return fn(j.buckets(tx)) }, isOurs)
}

// Close stops the pruner and closes the file (one Open opened; an
// attached journal's file stays open). It waits for running calls to
// finish; later calls return ErrClosed. Closing again returns the first
// Close's result.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() {
		if j.stop != nil {
			j.stop()
			<-j.pruned
		}
		if !j.own {
			return
		}
		if err := j.db.Close(); err != nil {
			j.closeErr = fmt.Errorf("journal: close: %w", err)
		}
	})
	return j.closeErr
}

// Path is the journal file's path.
func (j *Journal) Path() string { return j.path }

// Begin records a new open association and returns its ID once it is on
// disk. a.ID, a.End and a.EndedBy must be unset. It fails with
// ErrAgentAssociated if the agent already has an open association, with
// ErrDeskOccupied if the desk has one, and with ErrOverlap if a.Start is
// before the end of the agent's or the desk's previous association (the
// caller ends the old one first, with one clock).
//
// ctx is checked before the write is queued (bbolt takes no context); once
// queued, Begin waits for the commit, a few milliseconds, so that the
// caller always knows whether the association was recorded. End likewise.
func (j *Journal) Begin(ctx context.Context, a Association) (ID, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("journal: begin: %w", err)
	}
	if err := validateBegin(a); err != nil {
		return 0, err
	}
	a.Start = a.Start.UTC()
	var id ID
	err := j.write(func(b txBuckets) error {
		var err error
		id, err = b.begin(a)
		return err
	})
	if err != nil {
		return 0, wrapDB("begin", err)
	}
	return id, nil
}

// BeginTx is Begin inside tx, a read-write transaction of the file the
// journal is attached to, so that the record commits with the caller's
// other writes (one transaction per login). A refusal leaves nothing
// written; the caller decides whether the rest of tx commits.
func (j *Journal) BeginTx(tx *bolt.Tx, a Association) (ID, error) {
	if err := validateBegin(a); err != nil {
		return 0, err
	}
	a.Start = a.Start.UTC()
	id, err := j.buckets(tx).begin(a)
	return id, wrapDB("begin", err)
}

// begin records a (validated, Start in UTC); refusals come before any write.
func (b txBuckets) begin(a Association) (ID, error) {
	if v := b.openAgent.Get([]byte(a.AgentUserID)); v != nil {
		return 0, fmt.Errorf("%w: agent %s in association %d", ErrAgentAssociated, a.AgentUserID, decodeID(v))
	}
	if v := b.openDesk.Get([]byte(a.DeviceID)); v != nil {
		return 0, fmt.Errorf("%w: desk %s in association %d", ErrDeskOccupied, a.DeviceID, decodeID(v))
	}
	if prev, ok, err := b.latest(b.desk, a.DeviceID); err != nil {
		return 0, err
	} else if ok && a.Start.Before(prev.End) {
		return 0, fmt.Errorf("%w: desk %s: start %v before the end of association %d (%v)", ErrOverlap, a.DeviceID, a.Start, prev.ID, prev.End)
	}
	if prev, ok, err := b.latest(b.agent, a.AgentUserID); err != nil {
		return 0, err
	} else if ok && a.Start.Before(prev.End) {
		return 0, fmt.Errorf("%w: agent %s: start %v before the end of association %d (%v)", ErrOverlap, a.AgentUserID, a.Start, prev.ID, prev.End)
	}
	seq, err := b.assoc.NextSequence()
	if err != nil {
		return 0, err
	}
	id := ID(seq)
	a.ID = id
	if err := b.put(a); err != nil {
		return 0, err
	}
	start := timeKey(a.Start)
	idk := encodeID(id)
	if err := b.desk.Put(indexKey(a.DeviceID, start, id), nil); err != nil {
		return 0, err
	}
	if err := b.agent.Put(indexKey(a.AgentUserID, start, id), nil); err != nil {
		return 0, err
	}
	if err := b.openAgent.Put([]byte(a.AgentUserID), idk); err != nil {
		return 0, err
	}
	return id, b.openDesk.Put([]byte(a.DeviceID), idk)
}

// End ends the open association of the agent (by BroadWorks user ID) at at,
// records who ended it and why, and returns the ended association once it
// is on disk. Without an open association it fails with
// ErrNoOpenAssociation; an end before the start is ErrInvalid.
func (j *Journal) End(ctx context.Context, agentUserID string, at time.Time, by EndReason, detail string) (Association, error) {
	if err := ctx.Err(); err != nil {
		return Association{}, fmt.Errorf("journal: end: %w", err)
	}
	if err := validateEnd(agentUserID, at, by, detail); err != nil {
		return Association{}, err
	}
	var a Association
	err := j.write(func(b txBuckets) error {
		var err error
		a, err = b.end(agentUserID, at, by, detail)
		return err
	})
	if err != nil {
		return Association{}, wrapDB("end", err)
	}
	return a, nil
}

// EndTx is End inside tx (see BeginTx).
func (j *Journal) EndTx(tx *bolt.Tx, agentUserID string, at time.Time, by EndReason, detail string) (Association, error) {
	if err := validateEnd(agentUserID, at, by, detail); err != nil {
		return Association{}, err
	}
	a, err := j.buckets(tx).end(agentUserID, at, by, detail)
	return a, wrapDB("end", err)
}

// end ends the agent's open association (validated input); refusals come
// before any write.
func (b txBuckets) end(agentUserID string, at time.Time, by EndReason, detail string) (Association, error) {
	v := b.openAgent.Get([]byte(agentUserID))
	if v == nil {
		return Association{}, fmt.Errorf("%w: agent %s", ErrNoOpenAssociation, agentUserID)
	}
	a, err := b.get(decodeID(v))
	if err != nil {
		return Association{}, err
	}
	if at.Before(a.Start) {
		return Association{}, fmt.Errorf("%w: end %v before start %v of association %d", ErrInvalid, at.UTC(), a.Start, a.ID)
	}
	a.End, a.EndedBy = at.UTC(), by
	if detail != "" {
		a.Detail = detail
	}
	if err := b.put(a); err != nil {
		return Association{}, err
	}
	if err := b.ended.Put(endedKey(a.End, a.ID), nil); err != nil {
		return Association{}, err
	}
	if err := b.openAgent.Delete([]byte(a.AgentUserID)); err != nil {
		return Association{}, err
	}
	return a, b.openDesk.Delete([]byte(a.DeviceID))
}

// AtDesk answers "who was at desk deviceID at time at": the association
// covering at (Start <= at < End, or open), if any.
func (j *Journal) AtDesk(ctx context.Context, deviceID string, at time.Time) (Association, bool, error) {
	if err := ctx.Err(); err != nil {
		return Association{}, false, fmt.Errorf("journal: at desk: %w", err)
	}
	if err := validateQuery("device ID", deviceID, at); err != nil {
		return Association{}, false, err
	}
	var a Association
	var found bool
	err := j.db.View(func(tx *bolt.Tx) error {
		b := j.buckets(tx)
		id, ok := b.lastStartedBy(b.desk, deviceID, at)
		if !ok {
			return nil
		}
		var err error
		if a, err = b.get(id); err != nil {
			return err
		}
		found = a.covers(at)
		return nil
	})
	if err != nil || !found {
		return Association{}, false, wrapDB("at desk", err)
	}
	return a, true, nil
}

// AgentBetween answers "where was agent agentUserID between from and to":
// the agent's associations overlapping [from, to) (Start < to and End >
// from, or open), oldest first. A zero-length association (ended at its
// start: a login undone at once) is listed when it lies inside the range,
// though AtDesk never returns it. from == to asks about that instant: the
// association covering it, as AtDesk does for a desk.
func (j *Journal) AgentBetween(ctx context.Context, agentUserID string, from, to time.Time) ([]Association, error) {
	return j.between(ctx, "agent", "agent user ID", agentUserID, from, to)
}

// DeskBetween answers "who sat at desk deviceID between from and to", as
// AgentBetween does for an agent: the desk's associations overlapping
// [from, to), oldest first.
func (j *Journal) DeskBetween(ctx context.Context, deviceID string, from, to time.Time) ([]Association, error) {
	return j.between(ctx, "desk", "device ID", deviceID, from, to)
}

// between is AgentBetween over the agent index, DeskBetween over the desk's.
func (j *Journal) between(ctx context.Context, index, what, key string, from, to time.Time) ([]Association, error) {
	op := index + " between"
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("journal: %s: %w", op, err)
	}
	if err := validateQuery(what, key, from); err != nil {
		return nil, err
	}
	if err := validTime("to", to); err != nil {
		return nil, err
	}
	switch {
	case to.Before(from):
		return nil, fmt.Errorf("%w: range %v to %v ends before it starts", ErrInvalid, from.UTC(), to.UTC())
	case to.Equal(from):
		to = from.Add(1) // the instant: what covers from
	}
	var out []Association
	err := j.db.View(func(tx *bolt.Tx) error {
		b := j.buckets(tx)
		idx := b.agent
		if index == "desk" {
			idx = b.desk
		}
		// An agent's (a desk's) associations do not overlap, so only the
		// last one that started at or before from can reach into the
		// range; then every one starting before to.
		c := idx.Cursor()
		prefix := keyPrefix(key)
		seek := indexKey(key, timeKey(from), 0) // IDs start at 1: before every key starting at from
		k, _ := c.Seek(seek)
		if pk, _ := prevKey(c, k); pk != nil && hasPrefix(pk, prefix) {
			k = pk
		} else {
			k, _ = c.Seek(seek) // back to the first key starting at or after from
		}
		for ; k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			start, id := splitIndexKey(k, len(prefix))
			if !start.Before(to) {
				break
			}
			a, err := b.get(id)
			if err != nil {
				return err
			}
			if a.End.IsZero() || a.End.After(from) {
				out = append(out, a)
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapDB(op, err)
	}
	return out, nil
}

// prevKey steps the cursor back from where Seek left it (k, nil when Seek
// ran off the end).
func prevKey(c *bolt.Cursor, k []byte) ([]byte, []byte) {
	if k == nil {
		return c.Last()
	}
	return c.Prev()
}

// OpenAssociations lists the associations not ended, oldest ID first: what the
// journal believes is logged in, to reconcile against BroadWorks at start-up
// (ending what BroadWorks no longer has with EndRecovery, EndPortal or
// EndUnknown).
func (j *Journal) OpenAssociations(ctx context.Context) ([]Association, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("journal: open associations: %w", err)
	}
	var out []Association
	err := j.db.View(func(tx *bolt.Tx) error {
		b := j.buckets(tx)
		return b.openAgent.ForEach(func(_, v []byte) error {
			a, err := b.get(decodeID(v))
			if err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	if err != nil {
		return nil, wrapDB("open associations", err)
	}
	sortByID(out)
	return out, nil
}

// Prune deletes the associations that ended before now minus
// Options.Retention and returns how many it deleted. With Retention 0 it
// does nothing. It deletes in batches of its own transactions, so a
// cancelled ctx leaves the batches done so far deleted.
func (j *Journal) Prune(ctx context.Context, now time.Time) (int, error) {
	if j.opts.Retention == 0 {
		return 0, nil
	}
	cutoff := now.Add(-j.opts.Retention)
	if err := validTime("cutoff", cutoff); err != nil {
		return 0, err
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("journal: prune: %w", err)
		}
		n := 0
		err := j.db.Update(func(tx *bolt.Tx) error {
			b := j.buckets(tx)
			c := b.ended.Cursor()
			limit := timeKey(cutoff)
			for k, _ := c.First(); k != nil && n < pruneBatch; k, _ = c.First() {
				if string(k[:8]) >= string(limit[:]) {
					break
				}
				a, err := b.get(decodeID(k[8:]))
				if err != nil {
					return err
				}
				if err := c.Delete(); err != nil {
					return err
				}
				if err := b.assoc.Delete(encodeID(a.ID)); err != nil {
					return err
				}
				start := timeKey(a.Start)
				if err := b.desk.Delete(indexKey(a.DeviceID, start, a.ID)); err != nil {
					return err
				}
				if err := b.agent.Delete(indexKey(a.AgentUserID, start, a.ID)); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		total += n
		if err != nil {
			return total, wrapDB("prune", err)
		}
		if n < pruneBatch {
			return total, nil
		}
	}
}

// pruneLoop runs Prune every PruneInterval until ctx is cancelled (by Close).
func (j *Journal) pruneLoop(ctx context.Context) {
	defer close(j.pruned)
	t := time.NewTicker(j.opts.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := j.Prune(ctx, j.opts.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			j.log.Error("journal: prune failed", "path", j.path, "pruned", n, "err", err)
		case n > 0:
			j.log.Info("journal: pruned ended associations", "path", j.path, "pruned", n, "retention", j.opts.Retention)
		}
	}
}

// wrapDB gives errors the package prefix once and maps bbolt's closed
// database to ErrClosed.
func wrapDB(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bolt.ErrDatabaseNotOpen):
		return fmt.Errorf("%w (%s)", ErrClosed, op)
	case isOurs(err):
		return err
	}
	return fmt.Errorf("journal: %s: %w", op, err)
}

func isOurs(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
