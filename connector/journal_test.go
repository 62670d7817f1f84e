package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/gateway"
	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/store"
)

// outageJournal is a store.Journal whose database does not answer for
// the first failures writes, then takes them.
type outageJournal struct {
	store.Journal // nil: only Begin and End are called
	failures      int
	err           error // what a failed write returns
	writes        int
}

func (j *outageJournal) write() error {
	j.writes++
	if j.writes <= j.failures {
		return j.err
	}
	return nil
}

func (j *outageJournal) Begin(context.Context, journal.Association) (journal.ID, error) {
	return 1, j.write()
}

func (j *outageJournal) End(context.Context, string, time.Time, journal.EndReason, string) (journal.Association, error) {
	return journal.Association{}, j.write()
}

// TestJournalHoldsOnOutage: an active of a pair (holdOnOutage) writes a
// record again while the database does not answer, until it takes it or
// the caller's deadline passes; any other refusal, and a standalone
// instance, give up at once.
func TestJournalHoldsOnOutage(t *testing.T) {
	unavailable := fmt.Errorf("store: postgres: journal begin: %w: conn closed", store.ErrUnavailable)
	refused := fmt.Errorf("%w: detail too long", journal.ErrInvalid)
	tests := []struct {
		name       string
		hold       bool
		failures   int
		err        error
		deadline   time.Duration
		wantErr    error
		wantWrites int
	}{
		{"pair, database back", true, 3, unavailable, time.Minute, nil, 4},
		{"pair, deadline first", true, 1000, unavailable, time.Second, store.ErrUnavailable, -1},
		{"pair, refused", true, 3, refused, time.Minute, journal.ErrInvalid, 1},
		{"standalone", false, 3, unavailable, time.Minute, store.ErrUnavailable, 1},
	}
	for _, tt := range tests {
		for _, op := range []string{"begin", "end"} {
			t.Run(tt.name+"/"+op, func(t *testing.T) {
				j := &outageJournal{failures: tt.failures, err: tt.err}
				a := journalAdapter{j: j, log: slog.New(slog.DiscardHandler), holdOnOutage: tt.hold}
				ctx, cancel := context.WithTimeout(t.Context(), tt.deadline)
				defer cancel()
				var err error
				if op == "begin" {
					err = a.Begin(ctx, gateway.Association{AgentID: "agent1", AgentUserID: "agent1@example.com",
						DeskDeviceID: "desk1", DeskUserID: "desk1@example.com", Start: time.Now()})
				} else {
					err = a.End(ctx, "agent1@example.com", time.Now(), gateway.EndLogout, "")
				}
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
					t.Errorf("%s = %v, want %v", op, err, tt.wantErr)
				}
				if tt.wantWrites >= 0 && j.writes != tt.wantWrites {
					t.Errorf("%d writes, want %d", j.writes, tt.wantWrites)
				}
				if tt.wantWrites < 0 && j.writes < 2 {
					t.Errorf("%d writes before the deadline, want it tried again", j.writes)
				}
			})
		}
	}
}

// TestJournalReconcileReads: a connector starts on a store whose journal
// has two associations open: agent3 at desk1, which BroadWorks no longer
// shows, and agent4 at desk2, which it still does. Nothing else names those
// agents at start-up (no promise, no remembered desk, no request): the
// reconciliation reads both from BroadWorks, closes agent3's record as
// ended unseen and leaves agent4's open.
func TestJournalReconcileReads(t *testing.T) {
	sim := sharedSimulator(t)
	if err := sim.PortalAssociateGuest("agent4@example.com", "desk2@example.com"); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t.TempDir())
	cfg.XSILink.Simulate = false
	cfg.XSILink.Servers = []string{sim.URL()}
	st, err := store.Open(cfg.Store.Path, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []journal.Association{
		{AgentID: "agent3", AgentUserID: "agent3@example.com", DeviceID: "desk1", DeskUserID: "desk1@example.com"},
		{AgentID: "agent4", AgentUserID: "agent4@example.com", DeviceID: "desk2", DeskUserID: "desk2@example.com"},
	} {
		a.Start = time.Now().Add(-time.Hour)
		if _, err := st.Journal().Begin(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	c := start(t, cfg)
	select {
	case <-c.StartupRepaired():
	case <-time.After(30 * time.Second): // a deadline for a hang, not a timing check
		t.Fatal("no start-up repair pass")
	}
	// The end goes on agent3's journal writer: it lands soon after.
	waitUntil(t, "agent3's record ended", func() bool {
		ended, err := c.journal.j.AgentBetween(t.Context(), "agent3@example.com", time.Now().Add(-2*time.Hour), time.Now())
		return err == nil && len(ended) == 1 && !ended[0].Open()
	})
	ended, err := c.journal.j.AgentBetween(t.Context(), "agent3@example.com", time.Now().Add(-2*time.Hour), time.Now())
	if err != nil || len(ended) != 1 || ended[0].EndedBy != journal.EndUnknown {
		t.Errorf("agent3's records: %+v (%v), want one ended %q", ended, err, journal.EndUnknown)
	}
	open, err := c.journal.j.OpenAssociations(t.Context())
	if err != nil || len(open) != 1 || open[0].AgentUserID != "agent4@example.com" {
		t.Errorf("open after start-up: %+v (%v), want agent4's alone", open, err)
	}
}
