package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/broadworks-connector/connector/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the advisory lock key Open holds while migrating
// ("cstaconn" in ASCII), so that instances starting together take turns.
const migrationLock int64 = 0x637374_61636f6e6e

type migration struct {
	version int
	name    string
	sql     string
}

// migrations are the embedded files NNNN_name.sql, by version.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s is not NNNN_name.sql", e.Name())
		}
		sql, err := fs.ReadFile(migrationFiles, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(sql)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// SchemaVersion is the newest embedded migration: the schema this build
// writes.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// migrate applies the migrations the database lacks, all in one
// transaction under the advisory lock. A database migrated by a newer build
// (a version this one does not know) is store.ErrFormat.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("embedded migrations: %w", err)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("schema_migrations: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("schema_migrations: %w", err)
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return fmt.Errorf("schema_migrations: %w", err)
		}
		done := map[int]bool{}
		for _, v := range applied {
			done[int(v)] = true
			if int(v) > ms[len(ms)-1].version {
				return fmt.Errorf("%w: database schema version %d is newer than this build's %d", store.ErrFormat, v, ms[len(ms)-1].version)
			}
		}
		for _, m := range ms {
			if done[m.version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
			}
			if after := afterMigration[m.version]; after != nil {
				if err := after(ctx, tx, s); err != nil {
					return fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
			}
			s.log.Info("store: postgres: schema migrated", "version", m.version, "name", m.name, "dsn", s.dsnMasked)
		}
		return nil
	})
}

// afterMigration are the steps a migration needs that its SQL cannot do,
// run in its transaction right after it.
var afterMigration = map[int]func(ctx context.Context, tx pgx.Tx, s *Store) error{
	2: claimUnpartitioned,
}

// claimUnpartitioned gives the rows written before channel sets partitioned
// the database (migration 2) — intents, remembered desks and open journal
// associations — to the channel set of the instance migrating it: with one
// active/standby pair, the only one there is. Shards that shared a version
// 1 database had their promises mixed already; the first to start takes
// them all, and says so.
func claimUnpartitioned(ctx context.Context, tx pgx.Tx, s *Store) error {
	if s.opts.ChannelSet == "" {
		return nil
	}
	var claimed []any
	for _, c := range []struct{ table, which string }{
		{"intents", ""}, {"remembered", ""},
		// The open associations only: the start-up reconcile reads
		// those, and a journal of months is not rewritten at start.
		{"journal_associations", " AND end_ns IS NULL"},
	} {
		tag, err := tx.Exec(ctx, `UPDATE `+c.table+` SET channel_set = $1 WHERE channel_set = ''`+c.which, s.opts.ChannelSet)
		if err != nil {
			return fmt.Errorf("claiming %s: %w", c.table, err)
		}
		claimed = append(claimed, c.table, tag.RowsAffected())
	}
	s.log.Info("store: postgres: rows from before channel sets given to this one",
		append([]any{"component", "store", "channel_set", s.opts.ChannelSet}, claimed...)...)
	return nil
}
