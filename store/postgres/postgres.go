// Package postgres is the connector's store on PostgreSQL (issue 18): the
// same store.Store as the embedded bbolt file (journal, remembered desk
// forwarding, intents, SIP dialogs) in a database several instances share,
// and the store.Cluster that coordinates them (a lease per channel set with
// a fencing token, instance heartbeats).
//
// Every Update is one PostgreSQL transaction; it returns once committed
// (durable as the server's synchronous_commit makes it). When a fence is
// set (SetFence), every write transaction first checks, and share-locks,
// the lease row it names: a takeover's UPDATE of that row waits for the
// writes already past the check to commit, and a write that comes after
// the takeover finds no matching row and fails with store.ErrFenced,
// writing nothing. Expiry is measured on the database's clock only.
//
// The schema is embedded (migrations/*.sql) and applied at Open in one
// transaction under an advisory lock, so instances starting together do
// not race. Every call has a deadline: the caller's, or Options.Timeout.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/store"
)

// Options configure a PostgreSQL store.
type Options struct {
	// ChannelSet is the channel set (xsi.channel_set_id) this instance
	// serves. Its promises belong to it, shared by an active/standby pair
	// and apart from other channel sets' (scale-out shards): the intents,
	// the remembered desk forwarding, the SIP dialog snapshot, and the
	// open journal associations it reconciles. The journal's queries
	// read every channel set's.
	ChannelSet string
	// Journal: Retention and PruneInterval (and Now, for the pruner) as
	// for the bbolt journal; LockTimeout is not used.
	Journal journal.Options
	// Timeout bounds every call whose context has no deadline; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// MaxConns is the connection pool's size; 0 means DefaultMaxConns.
	MaxConns int32
	// Logger receives the pruning and migration reports; nil means
	// slog.Default().
	Logger *slog.Logger
}

// IdleInTransactionTimeout is how long the server lets a transaction wait
// for its client before ending it (idle_in_transaction_session_timeout,
// unless the DSN sets it): a takeover waits at most this long for the
// writes of an active cut off from the database. Within ha.lease_ttl's
// default (3 s), it costs a takeover nothing.
const IdleInTransactionTimeout = 3 * time.Second

var idleInTransactionMillis = strconv.FormatInt(IdleInTransactionTimeout.Milliseconds(), 10)

// Defaults for Options.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultMaxConns = 10
)

// pruneBatch is how many associations Prune deletes per transaction.
const pruneBatch = 1000

// Store is the store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool       *pgxpool.Pool
	opts       Options
	log        *slog.Logger
	fence      atomic.Pointer[store.Fence]
	closed     atomic.Bool
	metrics    *metrics
	dsnMasked  string
	stopPruner context.CancelFunc
	pruned     chan struct{}
	closeOnce  sync.Once
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Cluster = (*Store)(nil)
)

// Open connects to the database dsn names, applies the schema migrations
// it lacks and, with a journal retention, starts the pruner Close stops.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if dsn == "" {
		return nil, fmt.Errorf("%w: empty PostgreSQL DSN", store.ErrInvalid)
	}
	if opts.Timeout < 0 || opts.MaxConns < 0 || opts.Journal.Retention < 0 || opts.Journal.PruneInterval < 0 {
		return nil, fmt.Errorf("%w: negative timeout, pool size or journal duration", store.ErrInvalid)
	}
	if len(opts.ChannelSet) > store.MaxKeyLen {
		return nil, fmt.Errorf("%w: channel set longer than %d bytes", store.ErrInvalid, store.MaxKeyLen)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Journal.Now == nil {
		opts.Journal.Now = time.Now
	}
	if opts.Journal.PruneInterval == 0 {
		opts.Journal.PruneInterval = min(max(opts.Journal.Retention/10, time.Minute), time.Hour)
	}
	masked := MaskDSN(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors may quote the DSN: name only the masked one.
		return nil, fmt.Errorf("%w: PostgreSQL DSN %s does not parse", store.ErrInvalid, masked)
	}
	cfg.MaxConns = opts.MaxConns
	// A fenced write holds the lease row FOR SHARE until it commits, so a
	// takeover waits for it. A writer cut off mid-transaction (a silent
	// partition: the server never hears of it again) would hold that lock
	// until TCP gives up, hours later, and no standby could take the lease:
	// the server ends such a transaction (rolled back) once it has waited
	// this long for the client.
	if _, set := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !set {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = idleInTransactionMillis
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > opts.Timeout {
		cfg.ConnConfig.ConnectTimeout = opts.Timeout
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: open %s: %w", masked, err)
	}
	s := &Store{pool: pool, opts: opts, log: opts.Logger, dsnMasked: masked}
	s.metrics = newMetrics(s)
	octx, cancel := s.deadline(ctx)
	defer cancel()
	if err := s.migrate(octx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres: open %s: %w", masked, err)
	}
	if opts.Journal.Retention > 0 {
		pctx, stop := context.WithCancel(context.Background())
		s.stopPruner, s.pruned = stop, make(chan struct{})
		go s.pruneLoop(pctx)
	}
	return s, nil
}

// DSN is the database's DSN with its password masked, for logs.
func (s *Store) DSN() string { return s.dsnMasked }

// Close stops the pruner and closes the pool; later calls fail with
// store.ErrClosed (the journal's also with journal.ErrClosed).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.stopPruner != nil {
			s.stopPruner()
			<-s.pruned
		}
		s.pool.Close()
	})
	return nil
}

// deadline bounds ctx by the store's timeout when it has no deadline.
func (s *Store) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.opts.Timeout)
}

// ---- errors ----

// ours are the errors callers tell apart (store and journal sentinels):
// returned as they are, without another prefix.
var ours = []error{store.ErrInvalid, store.ErrClosed, store.ErrFenced, store.ErrLeaseHeld, store.ErrLeaseLost, store.ErrFormat,
	journal.ErrInvalid, journal.ErrClosed, journal.ErrNoOpenAssociation, journal.ErrAgentAssociated,
	journal.ErrDeskOccupied, journal.ErrOverlap, journal.ErrCorrupt}

// wrap gives a database error the package prefix and the operation.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, o := range ours {
		if errors.Is(err, o) {
			return err
		}
	}
	if s.closed.Load() {
		return fmt.Errorf("%w (%s)", store.ErrClosed, op)
	}
	if unavailable(err) {
		return fmt.Errorf("store: postgres: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("store: postgres: %s: %w", op, err)
}

// unavailable reports whether err says the database did not answer: no
// connection, a connection lost, the deadline passed.
func unavailable(err error) bool {
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.As(err, &ne) || errors.As(err, &ce) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// closedErr is what a call on a closed store returns; journal calls also
// match journal.ErrClosed.
func closedErr(op string, isJournal bool) error {
	if isJournal {
		return fmt.Errorf("%w (%w, %s)", store.ErrClosed, journal.ErrClosed, op)
	}
	return fmt.Errorf("%w (%s)", store.ErrClosed, op)
}

// ---- the unit of work ----

// SetFence makes every later write check f in its own transaction.
func (s *Store) SetFence(f store.Fence) {
	if f == (store.Fence{}) {
		s.fence.Store(nil)
		return
	}
	s.fence.Store(&f)
}

// Update runs fn in one PostgreSQL transaction (after the fence check) and
// returns once it has committed.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.write(ctx, "update", false, func(t *pgTx) error { return fn(t) })
}

// write runs fn in a fenced write transaction, timed for the metrics.
func (s *Store) write(ctx context.Context, op string, isJournal bool, fn func(*pgTx) error) error {
	if s.closed.Load() {
		return closedErr(op, isJournal)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: postgres: %s: %w", op, err)
	}
	start := time.Now()
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if f := s.fence.Load(); f != nil {
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM lease WHERE name = $1 AND holder = $2 AND token = $3
				AND expires_at > clock_timestamp() FOR SHARE`, f.Name, f.Holder, f.Token).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w (lease %s, holder %s, token %d)", store.ErrFenced, f.Name, f.Holder, f.Token)
			}
			if err != nil {
				return err
			}
		}
		return fn(&pgTx{ctx: ctx, tx: tx, s: s})
	})
	s.metrics.observeWrite(time.Since(start), err)
	return s.wrap(op, err)
}

// read runs fn with a deadline, timed for the metrics.
func (s *Store) read(ctx context.Context, op string, isJournal bool, fn func(context.Context) error) error {
	if s.closed.Load() {
		return closedErr(op, isJournal)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: postgres: %s: %w", op, err)
	}
	start := time.Now()
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	err := fn(ctx)
	s.metrics.observeRead(time.Since(start))
	return s.wrap(op, err)
}

// pgTx is store.Tx on a PostgreSQL transaction.
type pgTx struct {
	ctx context.Context
	tx  pgx.Tx
	s   *Store
}

func (t *pgTx) JournalBegin(a journal.Association) (journal.ID, error) {
	if err := validateBegin(a); err != nil {
		return 0, err
	}
	return beginAssociation(t.ctx, t.tx, t.s.opts.ChannelSet, a)
}

func (t *pgTx) JournalEnd(agentUserID string, at time.Time, by journal.EndReason, detail string) (journal.Association, error) {
	if err := validateEnd(agentUserID, at, by, detail); err != nil {
		return journal.Association{}, err
	}
	return endAssociation(t.ctx, t.tx, agentUserID, at, by, detail)
}

func (t *pgTx) PutRemembered(r hoteling.Remembered) error {
	if err := validKey("host user ID", r.HostUserID, store.MaxKeyLen); err != nil {
		return err
	}
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: postgres: remembered %s: %w", r.HostUserID, err)
	}
	if len(v) > maxRememberedLen {
		return fmt.Errorf("%w: remembered forwarding of %s is %d bytes (limit %d)", store.ErrInvalid, r.HostUserID, len(v), maxRememberedLen)
	}
	_, err = t.tx.Exec(t.ctx, `INSERT INTO remembered (channel_set, host_user_id, value) VALUES ($1, $2, $3)
		ON CONFLICT (channel_set, host_user_id) DO UPDATE SET value = EXCLUDED.value`, t.s.opts.ChannelSet, r.HostUserID, string(v))
	return err
}

func (t *pgTx) DeleteRemembered(hostUserID string) error {
	if err := validKey("host user ID", hostUserID, store.MaxKeyLen); err != nil {
		return err
	}
	_, err := t.tx.Exec(t.ctx, `DELETE FROM remembered WHERE channel_set = $1 AND host_user_id = $2`, t.s.opts.ChannelSet, hostUserID)
	return err
}

func (t *pgTx) PutIntent(userID, facet string, value []byte) error {
	if err := validIntentKey(userID, facet); err != nil {
		return err
	}
	if len(value) > store.MaxIntentLen {
		return fmt.Errorf("%w: intent %s/%s is %d bytes (limit %d)", store.ErrInvalid, userID, facet, len(value), store.MaxIntentLen)
	}
	if value == nil {
		value = []byte{} // bbolt stores nil as empty too
	}
	_, err := t.tx.Exec(t.ctx, `INSERT INTO intents (channel_set, user_id, facet, value) VALUES ($1, $2, $3, $4)
		ON CONFLICT (channel_set, user_id, facet) DO UPDATE SET value = EXCLUDED.value`, t.s.opts.ChannelSet, userID, facet, value)
	return err
}

func (t *pgTx) DeleteIntent(userID, facet string) error {
	if err := validIntentKey(userID, facet); err != nil {
		return err
	}
	_, err := t.tx.Exec(t.ctx, `DELETE FROM intents WHERE channel_set = $1 AND user_id = $2 AND facet = $3`, t.s.opts.ChannelSet, userID, facet)
	return err
}

// maxRememberedLen is store's limit on one remembered entry's JSON.
const maxRememberedLen = 64 << 10

func validKey(name, s string, limit int) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", store.ErrInvalid, name)
	case len(s) > limit:
		return fmt.Errorf("%w: %s longer than %d bytes", store.ErrInvalid, name, limit)
	case !textOK(s):
		return fmt.Errorf("%w: %s is not UTF-8 text without NUL bytes (PostgreSQL text cannot hold it)", store.ErrInvalid, name)
	}
	return nil
}

// textOK: PostgreSQL text holds valid UTF-8 without NUL bytes only.
func textOK(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// journalText refuses, as journal.ErrInvalid, what package journal accepts
// but PostgreSQL text cannot hold (the bbolt journal stores bytes).
func journalText(fields ...string) error {
	for _, f := range fields {
		if !textOK(f) {
			return fmt.Errorf("%w: %q is not UTF-8 text without NUL bytes (PostgreSQL text cannot hold it)", journal.ErrInvalid, f)
		}
	}
	return nil
}

func validIntentKey(userID, facet string) error {
	if err := validKey("user ID", userID, store.MaxKeyLen); err != nil {
		return err
	}
	return validKey("facet", facet, store.MaxFacetLen)
}

// ---- remembered, intents, SIP dialogs ----

// Remembered is the store as hoteling.Store: each Save or Delete is its
// own transaction.
func (s *Store) Remembered() hoteling.Store { return rememberedStore{s} }

type rememberedStore struct{ s *Store }

func (r rememberedStore) Save(rem hoteling.Remembered) error {
	return r.s.write(context.Background(), "save remembered", false, func(t *pgTx) error { return t.PutRemembered(rem) })
}

func (r rememberedStore) Delete(hostUserID string) error {
	return r.s.write(context.Background(), "delete remembered", false, func(t *pgTx) error { return t.DeleteRemembered(hostUserID) })
}

// Load returns the entries sorted by host (byte order, as bbolt's).
func (r rememberedStore) Load() ([]hoteling.Remembered, error) {
	var out []hoteling.Remembered
	err := r.s.read(context.Background(), "load remembered", false, func(ctx context.Context) error {
		rows, err := r.s.pool.Query(ctx, `SELECT host_user_id, value::text FROM remembered WHERE channel_set = $1`, r.s.opts.ChannelSet)
		if err != nil {
			return err
		}
		var host, v string
		_, err = pgx.ForEachRow(rows, []any{&host, &v}, func() error {
			var rem hoteling.Remembered
			if err := json.Unmarshal([]byte(v), &rem); err != nil {
				return fmt.Errorf("remembered %q: %w", host, err)
			}
			if rem.HostUserID != host {
				return fmt.Errorf("remembered %q holds host %q", host, rem.HostUserID)
			}
			out = append(out, rem)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].HostUserID < out[j].HostUserID })
	return out, nil
}

// Intents is the intents table.
func (s *Store) Intents() store.Intents { return intentStore{s} }

type intentStore struct{ s *Store }

func (i intentStore) Put(userID, facet string, value []byte) error {
	return i.s.write(context.Background(), "put intent", false, func(t *pgTx) error { return t.PutIntent(userID, facet, value) })
}

func (i intentStore) Delete(userID, facet string) error {
	return i.s.write(context.Background(), "delete intent", false, func(t *pgTx) error { return t.DeleteIntent(userID, facet) })
}

// Load returns every intent, by user then facet (byte order, as bbolt's).
func (i intentStore) Load() ([]store.Intent, error) {
	var out []store.Intent
	err := i.s.read(context.Background(), "load intents", false, func(ctx context.Context) error {
		rows, err := i.s.pool.Query(ctx, `SELECT user_id, facet, value FROM intents WHERE channel_set = $1`, i.s.opts.ChannelSet)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Intent, error) {
			var in store.Intent
			err := row.Scan(&in.UserID, &in.Facet, &in.Value)
			if in.Value == nil {
				in.Value = []byte{}
			}
			return in, err
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].UserID != out[b].UserID {
			return out[a].UserID < out[b].UserID
		}
		return out[a].Facet < out[b].Facet
	})
	return out, nil
}

// SIPDialogs is the channel set's dialog snapshot (Options.ChannelSet).
func (s *Store) SIPDialogs() store.DialogStore { return dialogStore{s} }

type dialogStore struct{ s *Store }

func (d dialogStore) SaveDialogs(snapshot []byte) error {
	if len(snapshot) > store.MaxDialogsLen {
		return fmt.Errorf("%w: SIP dialog snapshot is %d bytes (limit %d)", store.ErrInvalid, len(snapshot), store.MaxDialogsLen)
	}
	if snapshot == nil {
		snapshot = []byte{}
	}
	return d.s.write(context.Background(), "save SIP dialogs", false, func(t *pgTx) error {
		_, err := t.tx.Exec(t.ctx, `INSERT INTO sip_dialogs (channel_set, snapshot) VALUES ($1, $2)
			ON CONFLICT (channel_set) DO UPDATE SET snapshot = EXCLUDED.snapshot`, d.s.opts.ChannelSet, snapshot)
		return err
	})
}

func (d dialogStore) LoadDialogs() ([]byte, error) {
	var out []byte
	err := d.s.read(context.Background(), "load SIP dialogs", false, func(ctx context.Context) error {
		err := d.s.pool.QueryRow(ctx, `SELECT snapshot FROM sip_dialogs WHERE channel_set = $1`, d.s.opts.ChannelSet).Scan(&out)
		if errors.Is(err, pgx.ErrNoRows) {
			out = nil
			return nil
		}
		return err
	})
	return out, err
}

// ---- DSN masking ----

var keywordPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]*)`)

// MaskDSN returns dsn with its password replaced by "***", in URL form
// (postgres://user:secret@host/db, or ?password=secret) and in keyword
// form (password=secret); a DSN without a password comes back unchanged.
func MaskDSN(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "(unparsable DSN)"
		}
		const sentinel = "MASKEDxPASSWORD"
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), sentinel)
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", sentinel)
			u.RawQuery = q.Encode()
		}
		return strings.ReplaceAll(u.String(), sentinel, "***")
	}
	return keywordPassword.ReplaceAllString(dsn, "${1}***")
}
