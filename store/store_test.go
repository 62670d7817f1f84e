package store

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/xsi"
)

var bgCtx = context.Background()

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

func openStore(t testing.TB, path string) *Bolt {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "connector.db")
	}
	s, err := Open(path, Options{LockTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func assoc(agent, desk string, start time.Time) journal.Association {
	return journal.Association{AgentID: agent, AgentUserID: agent + "@example.com", DeviceID: desk,
		DeskUserID: desk + "@example.com", Start: start}
}

func rem(host, guest string) hoteling.Remembered {
	return hoteling.Remembered{HostUserID: host, GuestUserID: guest, ForwardTo: "+1555" + guest,
		PreviousCFA: xsi.Forwarding{Active: true, ForwardToPhoneNumber: "+1999"}}
}

// snapshot is everything the store holds for the agents and desks tests use.
type snapshot struct {
	open       []string // agent user IDs with an open association
	remembered []string // hosts
	intents    []string // user/facet=value
}

func take(t *testing.T, s *Bolt) snapshot {
	t.Helper()
	var snap snapshot
	open, err := s.Journal().OpenAssociations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range open {
		snap.open = append(snap.open, a.AgentUserID)
	}
	rs, err := s.Remembered().Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		snap.remembered = append(snap.remembered, r.HostUserID)
	}
	is, err := s.Intents().Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range is {
		snap.intents = append(snap.intents, i.UserID+"/"+i.Facet+"="+string(i.Value))
	}
	return snap
}

// TestOpen: the file's lock, what is not a store, reopen keeps everything,
// calls after Close fail with ErrClosed.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	oldJournal := filepath.Join(dir, "connector-journal.db")
	j, err := journal.Open(oldJournal, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	path := filepath.Join(dir, "connector.db")
	s := openStore(t, path)
	tests := []struct {
		name    string
		path    string
		opts    Options
		wantErr error
	}{
		{"empty path", "", Options{}, ErrInvalid},
		{"locked by another store", path, Options{LockTimeout: 50 * time.Millisecond}, ErrLocked},
		{"an old journal file", oldJournal, Options{}, ErrFormat},
		{"no such directory", filepath.Join(dir, "no", "such", "c.db"), Options{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s2, err := Open(tc.path, tc.opts)
			if err == nil {
				s2.Close()
				t.Fatal("Open succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open: %v, want %v", err, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "store: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	if err := s.Update(t.Context(), func(tx Tx) error {
		if _, err := tx.JournalBegin(assoc("a1", "d1", t0)); err != nil {
			return err
		}
		return tx.PutIntent("a1@example.com", "dnd", []byte("on"))
	}); err != nil {
		t.Fatal(err)
	}
	want := take(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Update(t.Context(), func(Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Journal().Begin(t.Context(), assoc("a2", "d2", t0)); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("journal Begin after Close: %v, want journal.ErrClosed", err)
	}
	if got := take(t, openStore(t, path)); !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen: %+v, want %+v", got, want)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := openStore(t, "").Update(ctx, func(Tx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Update with a cancelled context: %v", err)
	}
}
