package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/broadworks-connector/connector/admin"
	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/store"
	"github.com/broadworks-connector/connector/store/postgres"
)

// journalAdapter puts package journal behind the gateway (which records)
// and the admin API (which asks), and reconciles what the journal has with
// what BroadWorks shows after a restart.
type journalAdapter struct {
	j   store.Journal
	dir func() *gateway.Directory // the one in force
	log *slog.Logger
	// holdOnOutage: a record the store could not take because the
	// database did not answer (store.ErrUnavailable) is tried again until
	// the caller's deadline, so that the login or logout waiting for it is
	// not answered meanwhile. An active of a pair sets it: it loses its
	// lease within ha.lease_ttl when its database is gone, and is then
	// silenced (the crash gate) before it can answer what it did not
	// record; the standby, which reaches the database, takes over.
	// Standalone, the journal gives way: the login is answered, the record
	// is lost and logged.
	holdOnOutage bool
}

var (
	_ gateway.Journal = journalAdapter{}
	_ admin.Journal   = journalAdapter{}
)

// ended describes records closed because BroadWorks no longer shows them.
const endedUnseen = "ended while the connector was not watching"

// Begin records an association. The view reports every association it
// sees, also ones the journal already has (the snapshot after a restart);
// those are kept as they are. One the journal has at another desk, or
// another agent at this desk, ended while the connector was not watching:
// it is closed as "unknown" first.
func (a journalAdapter) Begin(ctx context.Context, as gateway.Association) error {
	return a.holding(ctx, func() error { return a.begin(ctx, as) })
}

// holding runs write, and again while the database does not answer and
// holdOnOutage is set, until ctx ends.
func (a journalAdapter) holding(ctx context.Context, write func() error) error {
	wait := 20 * time.Millisecond
	for {
		err := write()
		if err == nil || !a.holdOnOutage || !errors.Is(err, store.ErrUnavailable) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

func (a journalAdapter) begin(ctx context.Context, as gateway.Association) error {
	rec := journal.Association{AgentID: as.AgentID, AgentUserID: as.AgentUserID, DeviceID: as.DeskDeviceID,
		DeskUserID: as.DeskUserID, Start: as.Start}
	movedStart := false
	for range 3 {
		_, err := a.j.Begin(ctx, rec)
		switch {
		case errors.Is(err, journal.ErrAgentAssociated):
			open, err := a.j.AgentBetween(ctx, as.AgentUserID, time.Now(), time.Now())
			if err != nil {
				return err
			}
			for _, o := range open {
				if o.Open() && o.DeviceID == rec.DeviceID {
					return nil // already on record
				}
				if o.Open() {
					if _, err := a.j.End(ctx, o.AgentUserID, endAt(o.Start, rec.Start), journal.EndUnknown, endedUnseen); err != nil {
						return err
					}
				}
			}
		case errors.Is(err, journal.ErrDeskOccupied):
			o, found, err := a.j.AtDesk(ctx, rec.DeviceID, time.Now())
			if err != nil {
				return err
			}
			if found && o.Open() {
				if _, err := a.j.End(ctx, o.AgentUserID, endAt(o.Start, rec.Start), journal.EndUnknown, endedUnseen); err != nil {
					return err
				}
			}
		case errors.Is(err, journal.ErrOverlap):
			// The clock went back since the previous association ended:
			// start this one now rather than lose it.
			if movedStart {
				return err
			}
			rec.Start, movedStart = time.Now(), true
		default:
			return err
		}
	}
	return fmt.Errorf("journal: cannot record %s at %s", as.AgentID, as.DeskDeviceID)
}

// endAt is when to close a record found stale: at the new start, or just
// after the old start when the clocks disagree.
func endAt(oldStart, newStart time.Time) time.Time {
	if newStart.After(oldStart) {
		return newStart
	}
	return oldStart.Add(time.Millisecond)
}

// End records the end of an agent's open association; none on record (the
// journal is younger than the association) is not an error.
func (a journalAdapter) End(ctx context.Context, agentUserID string, at time.Time, reason, detail string) error {
	return a.holding(ctx, func() error {
		_, err := a.j.End(ctx, agentUserID, at, journal.EndReason(reason), detail)
		if errors.Is(err, journal.ErrNoOpenAssociation) {
			return nil // none on record, or an earlier try that landed unanswered
		}
		return err
	})
}

// reconcile closes associations the journal has open but BroadWorks no
// longer shows (ended while the connector was down); call it once the
// snapshots are in.
func (a journalAdapter) reconcile(ctx context.Context, g *gateway.Gateway) {
	open, err := a.j.OpenAssociations(ctx)
	if err != nil {
		a.log.Error("journal: reconciliation failed", "err", err)
		return
	}
	// The view must know an agent before it can show it at no desk: with
	// BroadWorks as the directory an agent is read on first use, and the
	// agents the journal has at desks are read now.
	agents := make([]string, 0, len(open))
	for _, o := range open {
		agents = append(agents, o.AgentUserID)
	}
	lctx, cancel := context.WithTimeout(ctx, recoverSnapshotWait)
	g.Load(lctx, agents)
	cancel()
	closed := 0
	for _, o := range open {
		// Through the gateway: ordered with the agent's own records (a
		// login that lands meanwhile is a new record, not this one).
		if g.EndUnseen(o.AgentUserID, string(journal.EndUnknown), endedUnseen) {
			closed++
		}
	}
	a.log.Info("journal: reconciled with BroadWorks", "open", len(open), "closed_as_ended_unseen", closed)
}

// ---- admin.Journal ----

func adminAssociation(o journal.Association) admin.Association {
	return admin.Association{ID: o.ID.String(), AgentID: o.AgentID, AgentUserID: o.AgentUserID, DeviceID: o.DeviceID,
		DeskUserID: o.DeskUserID, Start: o.Start, End: o.End, EndedBy: string(o.EndedBy), Detail: o.Detail}
}

func (a journalAdapter) AtDesk(ctx context.Context, desk string, at time.Time) (admin.Association, bool, error) {
	o, found, err := a.j.AtDesk(ctx, desk, at)
	if err != nil || !found {
		return admin.Association{}, false, err
	}
	return adminAssociation(o), true, nil
}

// AgentBetween takes the CSTA agent ID (the journal keys agents by their
// BroadWorks user).
func (a journalAdapter) AgentBetween(ctx context.Context, agent string, from, to time.Time) ([]admin.Association, error) {
	user, _, ok := a.dir().Agent(agent)
	if !ok {
		return nil, nil
	}
	return adminAssociations(a.j.AgentBetween(ctx, user, from, to))
}

// DeskBetween takes the desk's device ID, which the journal keys desks by.
func (a journalAdapter) DeskBetween(ctx context.Context, desk string, from, to time.Time) ([]admin.Association, error) {
	return adminAssociations(a.j.DeskBetween(ctx, desk, from, to))
}

func adminAssociations(list []journal.Association, err error) ([]admin.Association, error) {
	if err != nil {
		return nil, err
	}
	out := make([]admin.Association, 0, len(list))
	for _, o := range list {
		out = append(out, adminAssociation(o))
	}
	return out, nil
}

// durableStore is the store whichever driver keeps it (store.driver):
// what the connector reads and writes, and its metrics.
type durableStore interface {
	store.Store
	Collectors() []prometheus.Collector
}

// openStore opens the store of store.driver: the bbolt file (store.path),
// into which it migrates the files of the three stores connectors kept
// before (journal.path, hoteling.state_file, sip.state_file), or the
// PostgreSQL database (store.postgres), whose schema it migrates and which
// nothing is copied into. A store that cannot open, or a file that cannot
// be migrated, stops the start, named by its key: the file stays in place,
// so nothing is lost. The gateway, built next, records every association
// in the store's journal from the first XSI event on; the sequencer
// remembers desks' own forwarding in it, and phone sync its UDP dialogs
// (sip.persist_dialogs).
func (c *Connector) openStore() error {
	cfg := c.Config()
	sc := cfg.Store
	log := c.logger.With("component", "store")
	var st durableStore
	switch {
	case sc.Driver == config.StorePostgres:
		ctx, cancel := context.WithTimeout(context.Background(), 2*sc.Postgres.Timeout)
		defer cancel()
		pg, err := postgres.Open(ctx, sc.Postgres.DSN, postgres.Options{
			ChannelSet: cfg.XSILink.ChannelSetID, Journal: journal.Options{Retention: cfg.Journal.Retention},
			Timeout: sc.Postgres.Timeout, MaxConns: int32(sc.Postgres.MaxConns), Logger: log})
		if err != nil {
			return fmt.Errorf("store.postgres: %w", err)
		}
		st = pg
		// The old files are bbolt's migration sources: say so once if
		// one is there, so that nobody believes it was copied.
		for _, legacy := range []struct{ key, path string }{
			{"journal.path", cfg.Journal.Path}, {"hoteling.state_file", cfg.HotDesks.StateFile}, {"sip.state_file", cfg.SIP.StateFile},
		} {
			if _, err := os.Stat(legacy.path); legacy.path != "" && err == nil {
				log.Warn("store: an old file is not migrated into PostgreSQL (only the bbolt store migrates them)", "key", legacy.key, "path", legacy.path)
			}
		}
		log.Info("store open", "driver", sc.Driver, "dsn", pg.DSN(), "channel_set", cfg.XSILink.ChannelSetID,
			"journal_retention", cfg.Journal.Retention, "schema_version", postgres.SchemaVersion())
	case sc.Path == "":
		c.logger.Warn("store off (store.path is empty): no association journal; remembered desk forwarding and SIP dialogs are lost on restart")
		return nil
	default:
		b, err := store.Open(sc.Path, store.Options{Journal: journal.Options{Retention: cfg.Journal.Retention}, Logger: log})
		if err != nil {
			return fmt.Errorf("store.path: %w", err)
		}
		legacy := store.Legacy{JournalPath: cfg.Journal.Path, HotelingPath: cfg.HotDesks.StateFile, SIPPath: cfg.SIP.StateFile}
		if _, err := b.MigrateLegacy(legacy); err != nil {
			b.Close()
			return err
		}
		st = b
		log.Info("store open", "driver", sc.Driver, "path", sc.Path, "journal_retention", cfg.Journal.Retention)
	}
	c.store = st
	// The directory is the gateway's, built after the journal (it records
	// from its first event): asked for when an admin request needs it.
	c.journal = &journalAdapter{j: c.gatedJournal(st.Journal()), dir: func() *gateway.Directory { return c.gateway.Directory() },
		log: c.logger.With("component", "journal"), holdOnOutage: cfg.ActiveStandby()}
	return nil
}

// closeStore stops recording (the gateway has stopped) and closes the store.
func (c *Connector) closeStore() error {
	if c.store == nil {
		return nil
	}
	if c.gateway != nil {
		c.gateway.CloseJournal()
	}
	err := c.store.Close()
	c.store = nil
	return err
}
