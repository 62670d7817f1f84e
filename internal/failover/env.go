package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/internal/stack"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// Env is what the instances share: the connector binary, a folder, the
// simulator with agents 1..n and desks 1..n, and one PostgreSQL database.
type Env struct {
	Binary string
	Dir    string
	DSN    string // the database, reached directly
	Sim    *stack.Stack
	procs  procs
}

// EnvConfig sizes an Env.
type EnvConfig struct {
	Agents int // agents and desks; default 1
	Groups int // the simulator's groups (stack.Config.Groups); default 1
}

// NewEnv seeds and starts the simulator. Close stops every instance
// started through the Env and the simulator.
func NewEnv(binary, dir, dsn string, cfg EnvConfig) (*Env, error) {
	sim, err := stack.New(stack.Config{Agents: cfg.Agents, Desks: cfg.Agents, Groups: cfg.Groups, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	return &Env{Binary: binary, Dir: dir, DSN: dsn, Sim: sim}, nil
}

// Start starts an instance on the Env's simulator (and, unless cfg.DSN is
// set, on its database, as application cfg.ID).
func (e *Env) Start(cfg InstanceConfig) (*Instance, error) {
	if cfg.DSN == "" {
		cfg.DSN = WithApplicationName(e.DSN, cfg.ID)
	}
	cfg.SimURL = e.Sim.Sim.URL()
	cfg.Desks = e.Sim.Config().Desks
	in, err := StartInstance(e.Binary, e.Dir, cfg)
	if err != nil {
		return nil, err
	}
	e.procs.add(in)
	return in, nil
}

// Close kills every instance still running and stops the simulator.
func (e *Env) Close() error {
	e.procs.stop()
	return e.Sim.Close()
}

// Snapshots reads users from the simulator.
func (e *Env) Snapshots(ids []string) (map[string]xspsim.UserSnapshot, error) {
	out := make(map[string]xspsim.UserSnapshot, len(ids))
	for _, id := range ids {
		s, err := e.Sim.Sim.Snapshot(id)
		if err != nil {
			return nil, err
		}
		out[id] = s
	}
	return out, nil
}

// OwnCFA is desk i's own forwarding as seeded.
func (e *Env) OwnCFA(i int) string { return e.Sim.Config().DeskCFA(i) }

// WithApplicationName sets application_name in a URL DSN: PostgreSQL then
// tells the instances' sessions apart (the split-brain test's audit).
func WithApplicationName(dsn, name string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// WithHost replaces host:port in a URL DSN (to go through a proxy).
func WithHost(dsn, hostport string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	u.Host = hostport
	return u.String()
}

// FirstAnswer dials addr from now on, every 10 ms, and asks the state of
// device until an answer is a success; it returns when that request was
// sent and when its answer came.
func FirstAnswer(ctx context.Context, addr, device string) (sent, answered time.Time, err error) {
	for {
		if ctx.Err() != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("failover: no successful answer from %s: %w", addr, ctx.Err())
		}
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		cl, derr := cticlient.Dial(dctx, addr, cticlient.WithTimeout(2*time.Second))
		cancel()
		if derr != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for ctx.Err() == nil {
			sent = time.Now()
			_, err := cl.GetAgentState(ctx, device)
			if err == nil {
				cl.Close()
				return sent, time.Now(), nil
			}
			select {
			case <-cl.Done():
			case <-time.After(10 * time.Millisecond):
				continue
			}
			break
		}
		cl.Close()
	}
}

// Watch asks one instance the state of a device every 10 ms, on one
// connection kept while it lasts, and records when it served last and when
// it was first seen not serving (its connection ended, its port refused,
// or it answered an error).
type Watch struct {
	mu          sync.Mutex
	lastOK      time.Time // when the last successful answer came
	firstFailed time.Time // when not serving was first seen
	failedHow   string
	stop        chan struct{}
	done        chan struct{}
}

// StartWatch starts watching addr.
func StartWatch(addr, device string) *Watch {
	w := &Watch{stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(addr, device)
	return w
}

func (w *Watch) run(addr, device string) {
	defer close(w.done)
	var cl *cticlient.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	for {
		select {
		case <-w.stop:
			return
		case <-time.After(10 * time.Millisecond):
		}
		if cl == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c, err := cticlient.Dial(ctx, addr, cticlient.WithTimeout(2*time.Second))
			cancel()
			if err != nil {
				w.failed("dial: " + err.Error())
				continue
			}
			cl = c
		}
		_, err := cl.GetAgentState(context.Background(), device)
		switch {
		case err == nil:
			w.mu.Lock()
			w.lastOK = time.Now()
			w.mu.Unlock()
			continue
		case errors.As(err, new(*cticlient.Error)):
			w.failed("answered " + err.Error())
			continue
		}
		select {
		case <-cl.Done():
			w.failed("connection ended: " + fmt.Sprint(cl.Err()))
		default:
			w.failed("no answer: " + err.Error())
		}
		cl.Close()
		cl = nil
	}
}

func (w *Watch) failed(how string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.firstFailed.IsZero() {
		w.firstFailed, w.failedHow = time.Now(), how
	}
}

// Stop ends the watch.
func (w *Watch) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// Result is when the instance served last and when it was first seen not
// serving (zero: never), and how.
func (w *Watch) Result() (lastOK, firstFailed time.Time, how string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastOK, w.firstFailed, w.failedHow
}

// Audit records, in the database, every committed change to the tables an
// instance writes under its fence, with the writer's application_name, the
// commit time (deferred constraint triggers fire at COMMIT: a write held by
// a partition and delivered later shows when it really landed) and the
// lease as it stood then: a change by an instance that did not hold the
// lease when it committed is a write under an old fencing token.
type Audit struct{ dsn string }

// auditedTables are the store's fenced tables (store/postgres migrations).
var auditedTables = []string{"journal_associations", "remembered", "intents", "sip_dialogs", "lease"}

// InstallAudit creates the audit table and triggers in the database at dsn
// (after the store's migrations ran: an instance has started); lease is
// the channel set whose lease is recorded with each change.
func InstallAudit(ctx context.Context, dsn, lease string) (*Audit, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("failover: audit: %w", err)
	}
	defer conn.Close(context.Background())
	stmts := []string{
		`CREATE TABLE failover_audit (app text NOT NULL, tbl text NOT NULL, op text NOT NULL, at timestamptz NOT NULL,
			lease_holder text, lease_token bigint)`,
		fmt.Sprintf(`CREATE FUNCTION failover_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO failover_audit SELECT current_setting('application_name'), TG_TABLE_NAME, TG_OP, clock_timestamp(), l.holder, l.token
    FROM (SELECT 1) AS one LEFT JOIN lease l ON l.name = %s;
  RETURN NULL;
END $$`, quoteLiteral(lease)),
	}
	for _, t := range auditedTables {
		stmts = append(stmts, fmt.Sprintf(`CREATE CONSTRAINT TRIGGER failover_audit AFTER INSERT OR UPDATE OR DELETE ON %s
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION failover_audit()`, t))
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return nil, fmt.Errorf("failover: audit: %s: %w", s, err)
		}
	}
	return &Audit{dsn: dsn}, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Write is one audited change and the lease when it committed.
type Write struct {
	App, Table, Op string
	At             time.Time
	LeaseHolder    string
	LeaseToken     int64
}

func (w Write) String() string {
	return fmt.Sprintf("%s %s by %s at %s (lease: %s, token %d)", w.Op, w.Table, w.App, w.At.Format(time.StampMicro), w.LeaseHolder, w.LeaseToken)
}

// Writes lists the changes app committed after t; unfenced only those it
// committed while another instance held the lease.
func (a *Audit) Writes(ctx context.Context, app string, t time.Time, unfenced bool) ([]Write, error) {
	conn, err := pgx.Connect(ctx, a.dsn)
	if err != nil {
		return nil, fmt.Errorf("failover: audit: %w", err)
	}
	defer conn.Close(context.Background())
	q := `SELECT app, tbl, op, at, coalesce(lease_holder, ''), coalesce(lease_token, 0) FROM failover_audit WHERE app = $1 AND at > $2`
	if unfenced {
		q += ` AND lease_holder IS DISTINCT FROM app`
	}
	rows, err := conn.Query(ctx, q+` ORDER BY at`, app, t)
	if err != nil {
		return nil, fmt.Errorf("failover: audit: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Write, error) {
		var w Write
		err := r.Scan(&w.App, &w.Table, &w.Op, &w.At, &w.LeaseHolder, &w.LeaseToken)
		return w, err
	})
}

// Count is how many changes app committed in all.
func (a *Audit) Count(ctx context.Context, app string) (int, error) {
	conn, err := pgx.Connect(ctx, a.dsn)
	if err != nil {
		return 0, fmt.Errorf("failover: audit: %w", err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM failover_audit WHERE app = $1`, app).Scan(&n)
	return n, err
}

// LeaseRow is the lease of a channel set as the database has it.
func LeaseRow(ctx context.Context, dsn, name string) (holder string, token int64, err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", 0, fmt.Errorf("failover: lease: %w", err)
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(ctx, `SELECT holder, token FROM lease WHERE name = $1`, name).Scan(&holder, &token)
	if err != nil {
		return "", 0, fmt.Errorf("failover: lease %s: %w", name, err)
	}
	return holder, token, nil
}
