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
