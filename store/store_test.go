package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/internal/promtest"
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

// TestUnitOfWork: what one Update writes commits together — the journal
// record, the remembered desk forwarding and an intent — or, when fn fails
// anywhere (its own error, a journal refusal, bad input), not at all.
func TestUnitOfWork(t *testing.T) {
	boom := errors.New("boom")
	login := func(tx Tx) error {
		if err := tx.PutIntent("a1@example.com", "association", []byte("d1")); err != nil {
			return err
		}
		if err := tx.PutRemembered(rem("d1@example.com", "a1@example.com")); err != nil {
			return err
		}
		_, err := tx.JournalBegin(assoc("a1", "d1", t0))
		return err
	}
	all := snapshot{open: []string{"a1@example.com"}, remembered: []string{"d1@example.com"},
		intents: []string{"a1@example.com/association=d1"}}
	tests := []struct {
		name    string
		prepare func(Tx) error // committed first, on its own
		fn      func(Tx) error
		wantErr error
		want    snapshot
	}{
		{"login commits all three", nil, login, nil, all},
		{"own error after the writes undoes them", nil,
			func(tx Tx) error {
				if err := login(tx); err != nil {
					return err
				}
				return boom
			}, boom, snapshot{}},
		{"journal refusal undoes the other writes",
			func(tx Tx) error { _, err := tx.JournalBegin(assoc("a1", "d9", t0)); return err },
			login, journal.ErrAgentAssociated, snapshot{open: []string{"a1@example.com"}}},
		{"invalid intent undoes the journal record", nil,
			func(tx Tx) error {
				if _, err := tx.JournalBegin(assoc("a1", "d1", t0)); err != nil {
					return err
				}
				return tx.PutIntent("a1@example.com", strings.Repeat("f", MaxFacetLen+1), nil)
			}, ErrInvalid, snapshot{}},
		{"logout: end and forget together",
			func(tx Tx) error { return login(tx) },
			func(tx Tx) error {
				if _, err := tx.JournalEnd("a1@example.com", t0.Add(time.Hour), journal.EndLogout, ""); err != nil {
					return err
				}
				if err := tx.DeleteIntent("a1@example.com", "association"); err != nil {
					return err
				}
				return tx.DeleteRemembered("d1@example.com")
			}, nil, snapshot{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, "")
			if tc.prepare != nil {
				if err := s.Update(t.Context(), tc.prepare); err != nil {
					t.Fatal(err)
				}
			}
			before := s.Commits()
			err := s.Update(t.Context(), tc.fn)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Update: %v, want %v", err, tc.wantErr)
			}
			if got := take(t, s); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("store holds %+v, want %+v", got, tc.want)
			}
			if tc.wantErr == nil && s.Commits()-before != 1 {
				t.Errorf("%d commits for one unit, want 1", s.Commits()-before)
			}
		})
	}
}

// TestRememberedStore: the store as hoteling.Store — save, replace,
// delete, load sorted by host — kept across a reopen.
func TestRememberedStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "connector.db")
	s := openStore(t, path)
	var hs hoteling.Store = s.Remembered()
	steps := []struct {
		name string
		do   func() error
		want []hoteling.Remembered
	}{
		{"empty", func() error { return nil }, nil},
		{"save two", func() error {
			if err := hs.Save(rem("d2", "a2")); err != nil {
				return err
			}
			return hs.Save(rem("d1", "a1"))
		}, []hoteling.Remembered{rem("d1", "a1"), rem("d2", "a2")}},
		{"replace", func() error {
			r := rem("d2", "a3")
			r.HostAgentState, r.HostUnavailableCode = xsi.ACDUnavailable, "7"
			return hs.Save(r)
		}, func() []hoteling.Remembered {
			r := rem("d2", "a3")
			r.HostAgentState, r.HostUnavailableCode = xsi.ACDUnavailable, "7"
			return []hoteling.Remembered{rem("d1", "a1"), r}
		}()},
		{"delete, and delete again", func() error {
			if err := hs.Delete("d1"); err != nil {
				return err
			}
			return hs.Delete("d1")
		}, []hoteling.Remembered{func() hoteling.Remembered {
			r := rem("d2", "a3")
			r.HostAgentState, r.HostUnavailableCode = xsi.ACDUnavailable, "7"
			return r
		}()}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got, err := hs.Load()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s: Load = %+v, want %+v", st.name, got, st.want)
		}
	}
	want, _ := hs.Load()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := hs.Save(rem("d3", "a3")); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close: %v, want ErrClosed", err)
	}
	got, err := openStore(t, path).Remembered().Load()
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: %+v, %v; want %+v", got, err, want)
	}
	if err := hs.Save(hoteling.Remembered{}); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrInvalid) {
		t.Errorf("Save of an empty host: %v", err)
	}
}

// TestIntents: keys of one user and facet are apart from every other
// (length-prefixed), values come back as stored, limits are refused.
func TestIntents(t *testing.T) {
	s := openStore(t, "")
	in := s.Intents()
	puts := []Intent{
		{"u1", "x", []byte("1")}, {"u1x", "", nil}, // "" facet is refused below
		{"u1x", "y", []byte("2")}, {"u1", "xy", []byte("3")}, {"u2", "acd", []byte(`{"state":"Available"}`)},
	}
	for _, p := range puts {
		err := in.Put(p.UserID, p.Facet, p.Value)
		if p.Facet == "" {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Put with an empty facet: %v, want ErrInvalid", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Delete("u1", "xy"); err != nil {
		t.Fatal(err)
	}
	got, err := in.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := []Intent{{"u1", "x", []byte("1")}, {"u1x", "y", []byte("2")}, {"u2", "acd", []byte(`{"state":"Available"}`)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %q, want %q", got, want)
	}
	for _, bad := range []struct {
		name        string
		user, facet string
		value       []byte
	}{
		{"empty user", "", "f", nil},
		{"long user", strings.Repeat("u", MaxKeyLen+1), "f", nil},
		{"long facet", "u", strings.Repeat("f", MaxFacetLen+1), nil},
		{"long value", "u", "f", make([]byte, MaxIntentLen+1)},
	} {
		if err := in.Put(bad.user, bad.facet, bad.value); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", bad.name, err)
		}
	}
}

// TestSIPDialogs: nothing saved is nil; the last snapshot saved comes back.
func TestSIPDialogs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "connector.db")
	s := openStore(t, path)
	d := s.SIPDialogs()
	if got, err := d.LoadDialogs(); err != nil || got != nil {
		t.Fatalf("LoadDialogs on a new store = %q, %v", got, err)
	}
	for _, snap := range []string{`{"version":1,"dialogs":[]}`, `{"version":1,"dialogs":[{"dn":"1001"}]}`} {
		if err := d.SaveDialogs([]byte(snap)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	got, err := openStore(t, path).SIPDialogs().LoadDialogs()
	if err != nil || string(got) != `{"version":1,"dialogs":[{"dn":"1001"}]}` {
		t.Fatalf("after reopen: %q, %v", got, err)
	}
	if err := d.SaveDialogs(make([]byte, MaxDialogsLen+1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized snapshot: %v, want ErrInvalid", err)
	}
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

// TestConcurrentUnits: logins and logouts of many agents at once, each one
// unit; every unit is wholly in the store, and they shared commits (never
// more commits than units).
func TestConcurrentUnits(t *testing.T) {
	s := openStore(t, "")
	const agents, rounds = 16, 10
	var wg sync.WaitGroup
	for g := range agents {
		wg.Go(func() {
			agent, desk := fmt.Sprint("a", g), fmt.Sprint("d", g)
			for r := range rounds {
				start := t0.Add(time.Duration(2*r) * time.Minute)
				err := s.Update(t.Context(), func(tx Tx) error {
					if _, err := tx.JournalBegin(assoc(agent, desk, start)); err != nil {
						return err
					}
					return tx.PutRemembered(rem(desk+"@example.com", agent+"@example.com"))
				})
				if err != nil {
					t.Error(err)
					return
				}
				if r == rounds-1 {
					return // the last login stays
				}
				err = s.Update(t.Context(), func(tx Tx) error {
					if _, err := tx.JournalEnd(agent+"@example.com", start.Add(time.Minute), journal.EndLogout, ""); err != nil {
						return err
					}
					return tx.DeleteRemembered(desk + "@example.com")
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	snap := take(t, s)
	if len(snap.open) != agents || len(snap.remembered) != agents {
		t.Fatalf("%d open associations, %d remembered; want %d each", len(snap.open), len(snap.remembered), agents)
	}
	for g := range agents {
		as, err := s.Journal().AgentBetween(t.Context(), fmt.Sprint("a", g, "@example.com"), t0, t0.Add(time.Hour))
		if err != nil || len(as) != rounds {
			t.Fatalf("agent a%d: %d associations (%v), want %d", g, len(as), err, rounds)
		}
	}
	units := uint64(agents * (2*rounds - 1))
	if c := s.Commits(); c > units {
		t.Errorf("%d commits for %d units", c, units)
	}
}

// TestWriteMetrics: every write is timed, whichever way it reaches the
// file (Update, the journal's own, a refused one), and the transactions
// that carried them counted.
func TestWriteMetrics(t *testing.T) {
	s := openStore(t, "")
	before := promtest.Scrape(t, s.Collectors()...)
	for i := range 3 {
		if err := s.Intents().Put(fmt.Sprintf("a%d@example.com", i), "association", []byte("d1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(t.Context(), func(tx Tx) error { return errors.New("refused") }); err == nil {
		t.Fatal("a failing write succeeded")
	}
	if _, err := s.Journal().Begin(t.Context(), assoc("a1", "d1", t0)); err != nil {
		t.Fatal(err)
	}
	got := promtest.Scrape(t, s.Collectors()...)
	promtest.WantSample(t, got, "connector_store_write_seconds_count", before["connector_store_write_seconds_count"]+5)
	if c := got["connector_store_commits_total"] - before["connector_store_commits_total"]; c < 4 {
		t.Errorf("%v transactions for 5 writes one after another, want at least 4 (the refused one may be retried)", c)
	}
	if got["connector_store_write_seconds_sum"] <= 0 {
		t.Error("writes timed at 0 s")
	}
}
