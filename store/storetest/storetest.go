// Package storetest is the conformance suite every store driver passes
// (the embedded bbolt file, PostgreSQL): the unit of work, the journal's
// semantics (refusals, queries, open associations, pruning), remembered
// forwarding, intents, SIP dialogs, closing, concurrency and the metrics
// both drivers share. A driver's test runs it with Run.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/internal/promtest"
	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/store"
	"github.com/broadworks-connector/connector/xsi"
)

// Store is what the suite needs of a driver's store.
type Store interface {
	store.Store
	// Commits is how many write transactions committed since Open.
	Commits() uint64
	Collectors() []prometheus.Collector
}

// Options are what the suite opens a store with.
type Options struct {
	// Retention of ended journal associations (0: forever). The suite
	// prunes by calling Driver.Prune; a background pruner, if the driver
	// starts one, must not run within the test (PruneInterval an hour).
	Retention time.Duration
}

// Driver opens stores of one driver.
type Driver struct {
	// Open opens a fresh, empty store, closed at the test's end.
	Open func(t *testing.T, o Options) Store
	// Reopen opens again the store s is (s is closed first), closed at the
	// test's end: what s committed must be there.
	Reopen func(t *testing.T, s Store) Store
	// Prune prunes s's journal as of now (package journal's Prune).
	Prune func(ctx context.Context, s Store, now time.Time) (int, error)
}

// Run runs the suite.
func Run(t *testing.T, d Driver) {
	for _, tc := range []struct {
		name string
		run  func(*testing.T, Driver)
	}{
		{"UnitOfWork", testUnitOfWork},
		{"RememberedStore", testRememberedStore},
		{"Intents", testIntents},
		{"SIPDialogs", testSIPDialogs},
		{"Closed", testClosed},
		{"ConcurrentUnits", testConcurrentUnits},
		{"ConcurrentBeginsOneDesk", testConcurrentBeginsOneDesk},
		{"WriteMetrics", testWriteMetrics},
		{"JournalAtDesk", testAtDesk},
		{"JournalAgentBetween", testAgentBetween},
		{"JournalDeskBetween", testDeskBetween},
		{"JournalOpenAssociationsAndEnd", testOpenAssociationsAndEnd},
		{"JournalRefusals", testRefusals},
		{"JournalContextCancelled", testContextCancelled},
		{"JournalPrune", testPrune},
		{"JournalRoundTrip", testRoundTrip},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, d) })
	}
}

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

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

func take(t *testing.T, s store.Store) snapshot {
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

// testUnitOfWork: what one Update writes commits together — the journal
// record, the remembered desk forwarding and an intent — or, when fn fails
// anywhere (its own error, a journal refusal, bad input), not at all.
func testUnitOfWork(t *testing.T, d Driver) {
	boom := errors.New("boom")
	login := func(tx store.Tx) error {
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
		prepare func(store.Tx) error // committed first, on its own
		fn      func(store.Tx) error
		wantErr error
		want    snapshot
	}{
		{"login commits all three", nil, login, nil, all},
		{"own error after the writes undoes them", nil,
			func(tx store.Tx) error {
				if err := login(tx); err != nil {
					return err
				}
				return boom
			}, boom, snapshot{}},
		{"journal refusal undoes the other writes",
			func(tx store.Tx) error { _, err := tx.JournalBegin(assoc("a1", "d9", t0)); return err },
			login, journal.ErrAgentAssociated, snapshot{open: []string{"a1@example.com"}}},
		{"a refusal the unit survives: the rest commits",
			func(tx store.Tx) error { _, err := tx.JournalBegin(assoc("a1", "d9", t0)); return err },
			func(tx store.Tx) error {
				if _, err := tx.JournalBegin(assoc("a1", "d1", t0)); !errors.Is(err, journal.ErrAgentAssociated) {
					return fmt.Errorf("JournalBegin: %v, want ErrAgentAssociated", err)
				}
				if _, err := tx.JournalEnd("a7@example.com", t0, journal.EndLogout, ""); !errors.Is(err, journal.ErrNoOpenAssociation) {
					return fmt.Errorf("JournalEnd: %v, want ErrNoOpenAssociation", err)
				}
				return tx.PutIntent("a1@example.com", "dnd", []byte("on"))
			}, nil, snapshot{open: []string{"a1@example.com"}, intents: []string{"a1@example.com/dnd=on"}}},
		{"invalid intent undoes the journal record", nil,
			func(tx store.Tx) error {
				if _, err := tx.JournalBegin(assoc("a1", "d1", t0)); err != nil {
					return err
				}
				return tx.PutIntent("a1@example.com", strings.Repeat("f", store.MaxFacetLen+1), nil)
			}, store.ErrInvalid, snapshot{}},
		{"logout: end and forget together",
			func(tx store.Tx) error { return login(tx) },
			func(tx store.Tx) error {
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
			s := d.Open(t, Options{})
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

// testRememberedStore: the store as hoteling.Store — save, replace,
// delete, load sorted by host — kept across a reopen.
func testRememberedStore(t *testing.T, d Driver) {
	s := d.Open(t, Options{})
	hs := s.Remembered()
	replaced := rem("d2", "a3")
	replaced.HostAgentState, replaced.HostUnavailableCode = xsi.ACDUnavailable, "7"
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
		{"replace", func() error { return hs.Save(replaced) }, []hoteling.Remembered{rem("d1", "a1"), replaced}},
		{"byte order, not a collation", func() error {
			if err := hs.Save(rem("D0", "a0")); err != nil {
				return err
			}
			return hs.Save(rem("d1-é", "a4"))
		}, []hoteling.Remembered{rem("D0", "a0"), rem("d1", "a1"), rem("d1-é", "a4"), replaced}},
		{"delete, and delete again", func() error {
			for _, h := range []string{"d1", "d1", "D0", "d1-é"} {
				if err := hs.Delete(h); err != nil {
					return err
				}
			}
			return nil
		}, []hoteling.Remembered{replaced}},
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
	if err := hs.Save(hoteling.Remembered{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Save of an empty host: %v, want ErrInvalid", err)
	}
	want, _ := hs.Load()
	s2 := d.Reopen(t, s)
	if err := hs.Save(rem("d3", "a3")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Save after Close: %v, want ErrClosed", err)
	}
	got, err := s2.Remembered().Load()
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: %+v, %v; want %+v", got, err, want)
	}
}

// testIntents: keys of one user and facet are apart from every other,
// values come back as stored, limits are refused.
func testIntents(t *testing.T, d Driver) {
	s := d.Open(t, Options{})
	in := s.Intents()
	puts := []store.Intent{
		{UserID: "u1", Facet: "x", Value: []byte("1")}, {UserID: "u1x", Facet: "", Value: nil}, // "" facet is refused below
		{UserID: "u1x", Facet: "y", Value: []byte("2")}, {UserID: "u1", Facet: "xy", Value: []byte("3")},
		{UserID: "u2", Facet: "acd", Value: []byte(`{"state":"Available"}`)}, {UserID: "u3", Facet: "bin", Value: []byte{0, 0xff, 1}},
		{UserID: "U9", Facet: "x", Value: []byte{}},
	}
	for _, p := range puts {
		err := in.Put(p.UserID, p.Facet, p.Value)
		if p.Facet == "" {
			if !errors.Is(err, store.ErrInvalid) {
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
	want := []store.Intent{{UserID: "U9", Facet: "x", Value: []byte{}}, {UserID: "u1", Facet: "x", Value: []byte("1")},
		{UserID: "u1x", Facet: "y", Value: []byte("2")}, {UserID: "u2", Facet: "acd", Value: []byte(`{"state":"Available"}`)},
		{UserID: "u3", Facet: "bin", Value: []byte{0, 0xff, 1}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %q, want %q", got, want)
	}
	for _, bad := range []struct {
		name        string
		user, facet string
		value       []byte
	}{
		{"empty user", "", "f", nil},
		{"long user", strings.Repeat("u", store.MaxKeyLen+1), "f", nil},
		{"long facet", "u", strings.Repeat("f", store.MaxFacetLen+1), nil},
		{"long value", "u", "f", make([]byte, store.MaxIntentLen+1)},
	} {
		if err := in.Put(bad.user, bad.facet, bad.value); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", bad.name, err)
		}
	}
}

// testSIPDialogs: nothing saved is nil; the last snapshot saved comes back,
// also after a reopen.
func testSIPDialogs(t *testing.T, d Driver) {
	s := d.Open(t, Options{})
	ds := s.SIPDialogs()
	if got, err := ds.LoadDialogs(); err != nil || got != nil {
		t.Fatalf("LoadDialogs on a new store = %q, %v", got, err)
	}
	for _, snap := range []string{`{"version":1,"dialogs":[]}`, `{"version":1,"dialogs":[{"dn":"1001"}]}`} {
		if err := ds.SaveDialogs([]byte(snap)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ds.SaveDialogs(make([]byte, store.MaxDialogsLen+1)); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("oversized snapshot: %v, want ErrInvalid", err)
	}
	got, err := d.Reopen(t, s).SIPDialogs().LoadDialogs()
	if err != nil || string(got) != `{"version":1,"dialogs":[{"dn":"1001"}]}` {
		t.Fatalf("after reopen: %q, %v", got, err)
	}
}

// testClosed: Close twice is fine; every call after it fails with
// ErrClosed (the journal's with journal.ErrClosed); a cancelled context
// fails a write before it starts.
func testClosed(t *testing.T, d Driver) {
	s := d.Open(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Update(ctx, func(store.Tx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Update with a cancelled context: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	calls := []struct {
		name string
		call func() error
		want error
	}{
		{"Update", func() error { return s.Update(t.Context(), func(store.Tx) error { return nil }) }, store.ErrClosed},
		{"journal Begin", func() error { _, err := s.Journal().Begin(t.Context(), assoc("a2", "d2", t0)); return err }, journal.ErrClosed},
		{"journal OpenAssociations", func() error { _, err := s.Journal().OpenAssociations(t.Context()); return err }, journal.ErrClosed},
		{"intents Put", func() error { return s.Intents().Put("u", "f", nil) }, store.ErrClosed},
		{"intents Load", func() error { _, err := s.Intents().Load(); return err }, store.ErrClosed},
		{"SaveDialogs", func() error { return s.SIPDialogs().SaveDialogs([]byte("x")) }, store.ErrClosed},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, c.want) {
			t.Errorf("%s after Close: %v, want %v", c.name, err, c.want)
		}
	}
}

// testConcurrentUnits: logins and logouts of many agents at once, each one
// unit; every unit is wholly in the store, and never more commits than
// units.
func testConcurrentUnits(t *testing.T, d Driver) {
	s := d.Open(t, Options{})
	const agents, rounds = 16, 10
	var wg sync.WaitGroup
	for g := range agents {
		wg.Go(func() {
			agent, desk := fmt.Sprint("a", g), fmt.Sprint("d", g)
			for r := range rounds {
				start := t0.Add(time.Duration(2*r) * time.Minute)
				err := s.Update(t.Context(), func(tx store.Tx) error {
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
				err = s.Update(t.Context(), func(tx store.Tx) error {
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

// testConcurrentBeginsOneDesk: many agents log in at one free desk at
// once: exactly one gets it, every other is refused with ErrDeskOccupied
// (or ErrAgentAssociated: never a database error), and the journal holds
// one open association.
func testConcurrentBeginsOneDesk(t *testing.T, d Driver) {
	s := d.Open(t, Options{})
	const agents = 12
	var wg sync.WaitGroup
	errs := make([]error, agents)
	for g := range agents {
		wg.Go(func() { _, errs[g] = s.Journal().Begin(t.Context(), assoc(fmt.Sprint("a", g), "d1", t0)) })
	}
	wg.Wait()
	won := 0
	for g, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, journal.ErrDeskOccupied):
		default:
			t.Errorf("agent a%d: %v, want nil or ErrDeskOccupied", g, err)
		}
	}
	open, err := s.Journal().OpenAssociations(t.Context())
	if won != 1 || err != nil || len(open) != 1 {
		t.Fatalf("%d Begins won, %d open (%v); want 1 and 1", won, len(open), err)
	}
}

// testWriteMetrics: every write is timed (connector_store_write_seconds),
// whichever way it reaches the store, and the commits counted
// (connector_store_commits_total): the names both drivers share.
func testWriteMetrics(t *testing.T, d Driver) {
	s := d.Open(t, Options{})
	before := promtest.Scrape(t, s.Collectors()...)
	for i := range 3 {
		if err := s.Intents().Put(fmt.Sprintf("a%d@example.com", i), "association", []byte("d1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(t.Context(), func(tx store.Tx) error { return errors.New("refused") }); err == nil {
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
