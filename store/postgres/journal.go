package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/store"
)

// The association journal in table journal_associations, with package
// journal's semantics and errors: an agent and a desk have at most one open
// association (unique partial indexes), and the associations of one agent,
// and those of one desk, do not overlap (Begin checks the latest one).

// Journal is the association journal.
func (s *Store) Journal() store.Journal { return journalView{s} }

// Prune deletes the associations that ended before now minus the journal
// retention, in batches of their own transactions (each fenced), and
// returns how many it deleted. Without a retention it does nothing.
func (s *Store) Prune(ctx context.Context, now time.Time) (int, error) {
	if s.opts.Journal.Retention == 0 {
		return 0, nil
	}
	cutoff := now.Add(-s.opts.Journal.Retention)
	if err := journal.ValidTime("cutoff", cutoff); err != nil {
		return 0, err
	}
	total := 0
	for {
		var n int64
		err := s.write(ctx, "prune", true, func(t *pgTx) error {
			tag, err := t.tx.Exec(t.ctx, `DELETE FROM journal_associations WHERE id IN (
				SELECT id FROM journal_associations WHERE end_ns IS NOT NULL AND end_ns < $1 ORDER BY end_ns, id LIMIT $2)`,
				cutoff.UnixNano(), pruneBatch)
			n = tag.RowsAffected()
			return err
		})
		total += int(n)
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}

// pruneLoop runs Prune every PruneInterval until ctx is cancelled (Close).
func (s *Store) pruneLoop(ctx context.Context) {
	defer close(s.pruned)
	t := time.NewTicker(s.opts.Journal.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.Prune(ctx, s.opts.Journal.Now())
		switch {
		case errors.Is(err, store.ErrFenced):
			// Not this instance's turn: the lease holder prunes.
		case err != nil && ctx.Err() == nil:
			s.log.Error("journal: prune failed", "dsn", s.dsnMasked, "pruned", n, "err", err)
		case n > 0:
			s.log.Info("journal: pruned ended associations", "dsn", s.dsnMasked, "pruned", n, "retention", s.opts.Journal.Retention)
		}
	}
}

type journalView struct{ s *Store }

func (j journalView) Begin(ctx context.Context, a journal.Association) (journal.ID, error) {
	if err := validateBegin(a); err != nil {
		return 0, err
	}
	var id journal.ID
	err := j.s.write(ctx, "journal begin", true, func(t *pgTx) error {
		var err error
		id, err = beginAssociation(t.ctx, t.tx, t.s.opts.ChannelSet, a)
		return err
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

func (j journalView) End(ctx context.Context, agentUserID string, at time.Time, by journal.EndReason, detail string) (journal.Association, error) {
	if err := validateEnd(agentUserID, at, by, detail); err != nil {
		return journal.Association{}, err
	}
	var a journal.Association
	err := j.s.write(ctx, "journal end", true, func(t *pgTx) error {
		var err error
		a, err = endAssociation(t.ctx, t.tx, agentUserID, at, by, detail)
		return err
	})
	if err != nil {
		return journal.Association{}, err
	}
	return a, nil
}

func validateBegin(a journal.Association) error {
	if err := journal.ValidateBegin(a); err != nil {
		return err
	}
	return journalText(a.AgentID, a.AgentUserID, a.DeviceID, a.DeskUserID, a.Detail)
}

func validateEnd(agentUserID string, at time.Time, by journal.EndReason, detail string) error {
	if err := journal.ValidateEnd(agentUserID, at, by, detail); err != nil {
		return err
	}
	return journalText(agentUserID, detail)
}

func validateQuery(what, key string, at time.Time) error {
	if err := journal.ValidateQuery(what, key, at); err != nil {
		return err
	}
	return journalText(key)
}

// beginAssociation records a (validated): refusals come before any write.
// A Begin racing another for the same agent or desk is refused by the
// unique index (ON CONFLICT DO NOTHING waits for the other to commit), and
// then classified like the sequential case.
func beginAssociation(ctx context.Context, tx pgx.Tx, channelSet string, a journal.Association) (journal.ID, error) {
	start := a.Start.UnixNano()
	if err := beginRefusal(ctx, tx, a, start); err != nil {
		return 0, err
	}
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO journal_associations (agent_id, agent_user_id, device_id, desk_user_id, start_ns, detail, channel_set)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id`,
		a.AgentID, a.AgentUserID, a.DeviceID, a.DeskUserID, start, a.Detail, channelSet).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		// Another transaction opened one for this agent or desk meanwhile.
		if err := beginRefusal(ctx, tx, a, start); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("%w: agent %s or desk %s (a concurrent Begin)", journal.ErrAgentAssociated, a.AgentUserID, a.DeviceID)
	}
	if err != nil {
		return 0, err
	}
	return journal.ID(id), nil
}

// beginRefusal is why a cannot begin, as package journal checks it: an open
// association of the agent, then of the desk, then an overlap with the
// desk's latest association, then with the agent's.
func beginRefusal(ctx context.Context, tx pgx.Tx, a journal.Association, start int64) error {
	var openAgent, openDesk, deskID, deskEnd, agentID, agentEnd *int64
	err := tx.QueryRow(ctx, `SELECT
		(SELECT id FROM journal_associations WHERE agent_user_id = $1 AND end_ns IS NULL),
		(SELECT id FROM journal_associations WHERE device_id = $2 AND end_ns IS NULL),
		d.id, d.end_ns, g.id, g.end_ns
		FROM (SELECT 1) one
		LEFT JOIN LATERAL (SELECT id, end_ns FROM journal_associations WHERE device_id = $2
			ORDER BY start_ns DESC, id DESC LIMIT 1) d ON true
		LEFT JOIN LATERAL (SELECT id, end_ns FROM journal_associations WHERE agent_user_id = $1
			ORDER BY start_ns DESC, id DESC LIMIT 1) g ON true`,
		a.AgentUserID, a.DeviceID).Scan(&openAgent, &openDesk, &deskID, &deskEnd, &agentID, &agentEnd)
	if err != nil {
		return err
	}
	switch {
	case openAgent != nil:
		return fmt.Errorf("%w: agent %s in association %d", journal.ErrAgentAssociated, a.AgentUserID, *openAgent)
	case openDesk != nil:
		return fmt.Errorf("%w: desk %s in association %d", journal.ErrDeskOccupied, a.DeviceID, *openDesk)
	case deskEnd != nil && start < *deskEnd:
		return fmt.Errorf("%w: desk %s: start %v before the end of association %d (%v)", journal.ErrOverlap, a.DeviceID,
			a.Start.UTC(), *deskID, nsTime(*deskEnd))
	case agentEnd != nil && start < *agentEnd:
		return fmt.Errorf("%w: agent %s: start %v before the end of association %d (%v)", journal.ErrOverlap, a.AgentUserID,
			a.Start.UTC(), *agentID, nsTime(*agentEnd))
	}
	return nil
}

const assocColumns = `id, agent_id, agent_user_id, device_id, desk_user_id, start_ns, end_ns, ended_by, detail`

func scanAssociation(row pgx.Row) (journal.Association, error) {
	var a journal.Association
	var id, start int64
	var end *int64
	var by string
	if err := row.Scan(&id, &a.AgentID, &a.AgentUserID, &a.DeviceID, &a.DeskUserID, &start, &end, &by, &a.Detail); err != nil {
		return journal.Association{}, err
	}
	a.ID, a.Start, a.EndedBy = journal.ID(id), nsTime(start), journal.EndReason(by)
	if end != nil {
		a.End = nsTime(*end)
	}
	return a, nil
}

func nsTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// endAssociation ends the agent's open association (validated input):
// one UPDATE; when it changes nothing, why (none open, or at before its
// start) is looked up.
func endAssociation(ctx context.Context, tx pgx.Tx, agentUserID string, at time.Time, by journal.EndReason, detail string) (journal.Association, error) {
	a, err := scanAssociation(tx.QueryRow(ctx, `UPDATE journal_associations
		SET end_ns = $2, ended_by = $3, detail = CASE WHEN $4 = '' THEN detail ELSE $4 END
		WHERE agent_user_id = $1 AND end_ns IS NULL AND start_ns <= $2
		RETURNING `+assocColumns, agentUserID, at.UnixNano(), string(by), detail))
	if err == nil || !errors.Is(err, pgx.ErrNoRows) {
		return a, err
	}
	open, err := scanAssociation(tx.QueryRow(ctx, `SELECT `+assocColumns+` FROM journal_associations
		WHERE agent_user_id = $1 AND end_ns IS NULL`, agentUserID))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return journal.Association{}, fmt.Errorf("%w: agent %s", journal.ErrNoOpenAssociation, agentUserID)
	case err != nil:
		return journal.Association{}, err
	}
	return journal.Association{}, fmt.Errorf("%w: end %v before start %v of association %d", journal.ErrInvalid, at.UTC(), open.Start, open.ID)
}

// AtDesk: the desk's association that started last at or before at, if it
// covers at.
func (j journalView) AtDesk(ctx context.Context, deviceID string, at time.Time) (journal.Association, bool, error) {
	if err := validateQuery("device ID", deviceID, at); err != nil {
		return journal.Association{}, false, err
	}
	var a journal.Association
	found := false
	err := j.s.read(ctx, "journal at desk", true, func(ctx context.Context) error {
		var err error
		a, err = scanAssociation(j.s.pool.QueryRow(ctx, `SELECT `+assocColumns+` FROM journal_associations
			WHERE device_id = $1 AND start_ns <= $2 ORDER BY start_ns DESC, id DESC LIMIT 1`, deviceID, at.UnixNano()))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil && !at.Before(a.Start) && (a.End.IsZero() || at.Before(a.End))
		return err
	})
	if err != nil || !found {
		return journal.Association{}, false, err
	}
	return a, true, nil
}

func (j journalView) AgentBetween(ctx context.Context, agentUserID string, from, to time.Time) ([]journal.Association, error) {
	return j.between(ctx, "agent_user_id", "agent user ID", agentUserID, from, to)
}

func (j journalView) DeskBetween(ctx context.Context, deviceID string, from, to time.Time) ([]journal.Association, error) {
	return j.between(ctx, "device_id", "device ID", deviceID, from, to)
}

// between lists key's associations overlapping [from, to) (an instant when
// from == to), oldest first, as package journal does.
func (j journalView) between(ctx context.Context, column, what, key string, from, to time.Time) ([]journal.Association, error) {
	if err := validateQuery(what, key, from); err != nil {
		return nil, err
	}
	if err := journal.ValidTime("to", to); err != nil {
		return nil, err
	}
	switch {
	case to.Before(from):
		return nil, fmt.Errorf("%w: range %v to %v ends before it starts", journal.ErrInvalid, from.UTC(), to.UTC())
	case to.Equal(from):
		to = from.Add(1)
	}
	var out []journal.Association
	err := j.s.read(ctx, "journal between", true, func(ctx context.Context) error {
		rows, err := j.s.pool.Query(ctx, `SELECT `+assocColumns+` FROM journal_associations
			WHERE `+column+` = $1 AND start_ns < $3 AND (end_ns IS NULL OR end_ns > $2)
			ORDER BY start_ns, id`, key, from.UnixNano(), to.UnixNano())
		if err != nil {
			return err
		}
		out, err = collectAssociations(rows)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// OpenAssociations lists the open associations this channel set began
// (Options.ChannelSet): the ones it reconciles. Another shard's are its own.
func (j journalView) OpenAssociations(ctx context.Context) ([]journal.Association, error) {
	var out []journal.Association
	err := j.s.read(ctx, "journal open associations", true, func(ctx context.Context) error {
		rows, err := j.s.pool.Query(ctx, `SELECT `+assocColumns+` FROM journal_associations
			WHERE end_ns IS NULL AND channel_set = $1 ORDER BY id`, j.s.opts.ChannelSet)
		if err != nil {
			return err
		}
		out, err = collectAssociations(rows)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// collectAssociations reads rows of assocColumns; none is nil, as the
// bbolt journal answers.
func collectAssociations(rows pgx.Rows) ([]journal.Association, error) {
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (journal.Association, error) { return scanAssociation(row) })
	if len(out) == 0 {
		out = nil
	}
	return out, err
}
