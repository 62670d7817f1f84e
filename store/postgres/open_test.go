package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/internal/pgtest"
	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/store"
)

// TestMigrations: Open applies the embedded schema once: reopening changes
// nothing, instances opening together take turns (none fails), and a
// database migrated by a newer build is refused with ErrFormat.
func TestMigrations(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	const n = 6
	errs := make([]error, n)
	stores := make([]*Store, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(context.Background(), dsn, Options{Logger: quiet}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d of %d at once: %v", i, n, err)
		}
		defer stores[i].Close()
	}
	s := openAt(t, dsn, Options{}) // and once more
	var versions []int32
	rows, err := s.pool.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err == nil {
		versions, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	}
	if err != nil || len(versions) != SchemaVersion() || int(versions[len(versions)-1]) != SchemaVersion() {
		t.Fatalf("schema_migrations = %v (%v), want 1..%d once each", versions, err, SchemaVersion())
	}
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.Context(), dsn, Options{Logger: quiet})
	if !errors.Is(err, store.ErrFormat) || !strings.Contains(err.Error(), fmt.Sprint(SchemaVersion()+1)) {
		t.Fatalf("Open on a newer schema: %v, want ErrFormat naming version %d", err, SchemaVersion()+1)
	}
}

// TestOpenRefusals: what Open refuses, with a clear error that never shows
// the password.
func TestOpenRefusals(t *testing.T) {
	c := pgtest.Shared(t)
	tests := []struct {
		name    string
		dsn     string
		opts    Options
		wantErr error  // nil: any error
		want    string // in the message
	}{
		{"empty DSN", "", Options{}, store.ErrInvalid, "empty PostgreSQL DSN"},
		{"unparsable DSN", "postgres://u:s3cret@host:notaport/db", Options{}, store.ErrInvalid, "does not parse"},
		{"negative timeout", c.DSN("postgres"), Options{Timeout: -1}, store.ErrInvalid, "negative"},
		{"no such database", strings.Replace(c.DSN("postgres"), "/postgres?", "/nosuchdb?", 1) + "&password=s3cret", Options{}, nil, "nosuchdb"},
		{"nothing listening", "postgres://u:s3cret@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", Options{}, nil, "store: postgres: open"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.dsn, tc.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open: %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "store: ") {
				t.Fatalf("Open: %q, want it to start with \"store: \" and say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error shows the password: %q", err)
			}
		})
	}
}

// TestDeadServer: with the server gone, every call fails with a clear
// error within its deadline (the store's timeout when the caller set none)
// instead of hanging; the store works again once the server is back.
func TestDeadServer(t *testing.T) {
	c := pgtest.Own(t)
	ctx := t.Context()
	dsn, err := c.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := openAt(t, dsn, Options{Timeout: 2 * time.Second})
	if err := s.Intents().Put("u", "f", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"Update": func() error {
			return s.Update(context.Background(), func(tx store.Tx) error { return tx.PutIntent("u", "g", nil) })
		},
		"Begin":   func() error { _, err := s.Journal().Begin(context.Background(), assoc("a", "d", t0)); return err },
		"AtDesk":  func() error { _, _, err := s.Journal().AtDesk(context.Background(), "d", t0); return err },
		"Load":    func() error { _, err := s.Intents().Load(); return err },
		"Acquire": func() error { _, err := s.AcquireLease(context.Background(), "cs", "A", time.Second); return err },
		"Renew": func() error {
			_, err := s.RenewLease(context.Background(), store.Lease{Name: "cs", Holder: "A", Token: 1}, time.Second)
			return err
		},
		"Heartbeat": func() error { return s.Heartbeat(context.Background(), store.Instance{ID: "a"}) },
	}
	for name, call := range calls {
		err := call()
		if err == nil || !strings.HasPrefix(err.Error(), "store: postgres: ") {
			t.Errorf("%s with the server down: %v, want a store: postgres: error", name, err)
		}
		if errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrLeaseHeld) || errors.Is(err, store.ErrFenced) {
			t.Errorf("%s with the server down: %v: a lease answer the database did not give", name, err)
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the server down: %v, want store.ErrUnavailable", name, err)
		}
	}
	// A second store cannot open.
	if _, err := Open(ctx, dsn, Options{Timeout: time.Second}); err == nil || !strings.HasPrefix(err.Error(), "store: postgres: open") {
		t.Errorf("Open with the server down: %v", err)
	}
	// The server back (crash recovery): the same store writes and reads
	// again, what it committed before is there.
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	for {
		err := s.Intents().Put("u", "h", []byte("w"))
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the store never wrote again after the server came back: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if in, err := s.Intents().Load(); err != nil || len(in) != 2 || in[0].Facet != "f" || in[1].Facet != "h" {
		t.Fatalf("intents after the restart = %q, %v; want f (before the crash) and h", in, err)
	}
}

// TestHungServer: a server that accepts nothing more and answers nothing
// (every process stopped) makes calls fail at their deadline, not hang:
// the caller's, or the store's timeout; once it answers again, so does the
// store.
func TestHungServer(t *testing.T) {
	c := pgtest.Own(t)
	ctx := t.Context()
	dsn, err := c.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := openAt(t, dsn, Options{Timeout: time.Second})
	if err := s.Intents().Put("u", "f", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := c.Freeze(); err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			c.Thaw() //nolint:errcheck // the cleanup's Stop thaws too
		}
	}()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	calls := map[string]func() error{
		"Put (store timeout)":  func() error { return s.Intents().Put("u", "g", nil) },
		"Load (store timeout)": func() error { _, err := s.Intents().Load(); return err },
		"Update (caller's deadline)": func() error {
			return s.Update(short, func(tx store.Tx) error { return tx.PutIntent("u", "h", nil) })
		},
		"Renew (caller's deadline)": func() error {
			_, err := s.RenewLease(short, store.Lease{Name: "cs", Holder: "A", Token: 1}, time.Second)
			return err
		},
	}
	for name, call := range calls {
		err := call()
		if err == nil || !strings.HasPrefix(err.Error(), "store: postgres: ") || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
			t.Errorf("%s with the server hung: %v, want a store: postgres: deadline error", name, err)
		}
		// (A caller's deadline may have passed before the call went out:
		// that is the caller's, not the database's.)
		if strings.Contains(name, "store timeout") && !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the server hung: %v, want store.ErrUnavailable", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	if err := c.Thaw(); err != nil {
		t.Fatal(err)
	}
	thawed = true
	for {
		err := s.Intents().Put("u", "i", nil)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the store never wrote again after the server answered again: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestSharedDatabase: instances of different channel sets share one
// database: either answers for the journal; each keeps its own SIP
// dialogs, intents and remembered desks, and reconciles only the open
// associations it began.
func TestSharedDatabase(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	a := openAt(t, dsn, Options{ChannelSet: "cs-a"})
	b := openAt(t, dsn, Options{ChannelSet: "cs-b"})
	if _, err := a.Journal().Begin(t.Context(), assoc("a1", "d1", t0)); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := b.Journal().AtDesk(t.Context(), "d1", t0.Add(time.Minute)); err != nil || !ok || got.AgentID != "a1" {
		t.Fatalf("the other instance's AtDesk = %+v, %v, %v", got, ok, err)
	}
	if _, err := b.Journal().Begin(t.Context(), assoc("a1", "d2", t0.Add(time.Minute))); !errors.Is(err, journal.ErrAgentAssociated) {
		t.Fatalf("the other instance's Begin of the same agent: %v, want ErrAgentAssociated", err)
	}
	for _, s := range []*Store{a, b} {
		if err := s.SIPDialogs().SaveDialogs([]byte(s.opts.ChannelSet)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*Store{a, b} {
		if got, err := s.SIPDialogs().LoadDialogs(); err != nil || string(got) != s.opts.ChannelSet {
			t.Errorf("%s's dialogs = %q, %v", s.opts.ChannelSet, got, err)
		}
	}
	// The same user and desk in both: each channel set keeps its own.
	for _, s := range []*Store{a, b} {
		if err := s.Intents().Put("u1", "acd", []byte(s.opts.ChannelSet)); err != nil {
			t.Fatal(err)
		}
		if err := s.Remembered().Save(hoteling.Remembered{HostUserID: "desk1", GuestUserID: s.opts.ChannelSet}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Intents().Put("u2", "dnd", []byte("on")); err != nil {
		t.Fatal(err)
	}
	if err := a.Intents().Delete("u1", "acd"); err != nil {
		t.Fatal(err)
	}
	if err := a.Remembered().Delete("desk1"); err != nil {
		t.Fatal(err)
	}
	if in, err := a.Intents().Load(); err != nil || len(in) != 0 {
		t.Errorf("cs-a's intents after its delete = %q, %v; want none (cs-b's are cs-b's)", in, err)
	}
	if rem, err := a.Remembered().Load(); err != nil || len(rem) != 0 {
		t.Errorf("cs-a's remembered desks after its delete = %+v, %v; want none", rem, err)
	}
	if in, err := b.Intents().Load(); err != nil || len(in) != 2 || string(in[0].Value) != "cs-b" {
		t.Errorf("cs-b's intents = %q, %v; want its u1 and u2", in, err)
	}
	if rem, err := b.Remembered().Load(); err != nil || len(rem) != 1 || rem[0].GuestUserID != "cs-b" {
		t.Errorf("cs-b's remembered desks = %+v, %v; want its desk1", rem, err)
	}
	if _, err := b.Journal().Begin(t.Context(), assoc("b1", "d3", t0)); err != nil {
		t.Fatal(err)
	}
	for s, want := range map[*Store]string{a: "a1", b: "b1"} {
		open, err := s.Journal().OpenAssociations(t.Context())
		if err != nil || len(open) != 1 || open[0].AgentID != want {
			t.Errorf("%s's open associations = %+v, %v; want only %s's, which it began", s.opts.ChannelSet, open, err, want)
		}
	}
}

// TestMigrationClaimsVersion1Rows: the promises in a database from before
// channel sets (schema version 1) go to the instance that migrates it,
// which keeps them; another channel set gets none of them.
func TestMigrationClaimsVersion1Rows(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	ms, err := migrations()
	if err != nil || ms[0].version != 1 {
		t.Fatalf("migrations: %v, %v", ms, err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
		ms[0].sql,
		`INSERT INTO schema_migrations (version, name) VALUES (1, 'initial')`,
		`INSERT INTO intents (user_id, facet, value) VALUES ('u1', 'acd', 'v1')`,
		`INSERT INTO remembered (host_user_id, value) VALUES ('desk1', '{"HostUserID":"desk1","GuestUserID":"u1"}')`,
		`INSERT INTO journal_associations (agent_id, agent_user_id, device_id, desk_user_id, start_ns) VALUES ('1', 'u1', 'desk1', 'desk1', 1)`,
		`INSERT INTO journal_associations (agent_id, agent_user_id, device_id, desk_user_id, start_ns, end_ns, ended_by) VALUES ('2', 'u2', 'desk2', 'desk2', 1, 2, 'logout')`,
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	a := openAt(t, dsn, Options{ChannelSet: "pair-1"})
	b := openAt(t, dsn, Options{ChannelSet: "shard-2"})
	if in, err := a.Intents().Load(); err != nil || len(in) != 1 || string(in[0].Value) != "v1" {
		t.Errorf("the migrating instance's intents = %q, %v; want version 1's", in, err)
	}
	if rem, err := a.Remembered().Load(); err != nil || len(rem) != 1 || rem[0].GuestUserID != "u1" {
		t.Errorf("the migrating instance's remembered desks = %+v, %v; want version 1's", rem, err)
	}
	if open, err := a.Journal().OpenAssociations(t.Context()); err != nil || len(open) != 1 {
		t.Errorf("the migrating instance's open associations = %+v, %v; want version 1's", open, err)
	}
	if in, _ := b.Intents().Load(); len(in) != 0 {
		t.Errorf("another channel set's intents = %q, want none", in)
	}
	if open, _ := b.Journal().OpenAssociations(t.Context()); len(open) != 0 {
		t.Errorf("another channel set's open associations = %+v, want none", open)
	}
	// An ended record is not rewritten, and every channel set reads it.
	var claimedEnded int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM journal_associations WHERE end_ns IS NOT NULL AND channel_set <> ''`).Scan(&claimedEnded); err != nil || claimedEnded != 0 {
		t.Errorf("ended records given a channel set: %d (%v), want 0", claimedEnded, err)
	}
	if ended, err := b.Journal().AgentBetween(t.Context(), "u2", time.Unix(0, 0), time.Unix(0, 3)); err != nil || len(ended) != 1 {
		t.Errorf("another channel set's query of an ended version 1 record = %+v, %v; want it", ended, err)
	}
}

func TestMaskDSN(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://connector:s3cret@db.example.com:5432/connector?sslmode=require",
			"postgres://connector:***@db.example.com:5432/connector?sslmode=require"},
		{"postgresql://connector@db/connector", "postgresql://connector@db/connector"},
		{"postgres://db/connector?user=c&password=s3cret", "postgres://db/connector?password=***&user=c"},
		{"host=db user=connector password=s3cret dbname=connector", "host=db user=connector password=*** dbname=connector"},
		{"host=db password = 's3 cr\\'et' dbname=x", "host=db password = *** dbname=x"},
		{"host=db dbname=x", "host=db dbname=x"},
		{"postgres://u:s3cret@host:notaport/db", "(unparsable DSN)"},
	}
	for _, tc := range tests {
		got := MaskDSN(tc.dsn)
		if got != tc.want {
			t.Errorf("MaskDSN(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
		if strings.Contains(got, "s3") {
			t.Errorf("MaskDSN(%q) = %q shows the password", tc.dsn, got)
		}
	}
}

// TestPruner: with a journal retention, the store prunes by itself every
// PruneInterval (by Options.Journal.Now), and Close stops it.
func TestPruner(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	s := openAt(t, dsn, Options{Journal: journal.Options{Retention: time.Hour, PruneInterval: 20 * time.Millisecond,
		Now: func() time.Time { return t0.Add(48 * time.Hour) }}})
	j := s.Journal()
	for i, agent := range []string{"a1", "a2"} {
		if _, err := j.Begin(t.Context(), assoc(agent, fmt.Sprint("d", i), t0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.End(t.Context(), "a1@example.com", t0.Add(time.Minute), journal.EndLogout, ""); err != nil {
		t.Fatal(err)
	}
	for {
		as, err := j.AgentBetween(t.Context(), "a1@example.com", t0, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(as) == 0 {
			break
		}
		select {
		case <-t.Context().Done():
			t.Fatal("the pruner never pruned the ended association")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if open, err := j.OpenAssociations(t.Context()); err != nil || len(open) != 1 || open[0].AgentID != "a2" {
		t.Fatalf("open after pruning = %+v, %v; want a2's kept", open, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
