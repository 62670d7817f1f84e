package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func at(hhmm string) time.Time {
	d, err := time.ParseDuration(strings.Replace(hhmm, ":", "h", 1) + "m")
	if err != nil {
		panic(err)
	}
	return t0.Truncate(24 * time.Hour).Add(d)
}

func openTest(t testing.TB, opts Options) *Journal {
	t.Helper()
	j, err := Open(filepath.Join(t.TempDir(), "journal.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func assoc(agent, desk string, start time.Time) Association {
	return Association{
		AgentID: agent, AgentUserID: agent + "@example.com",
		DeviceID: desk, DeskUserID: desk + "@example.com",
		Start: start,
	}
}

// span is one association to set up: agent at desk from start to end ("" = open).
type span struct {
	agent, desk, start, end string
	by                      EndReason
}

func setup(t testing.TB, j *Journal, spans []span) map[string]ID {
	t.Helper()
	ids := map[string]ID{}
	for _, s := range spans {
		id, err := j.Begin(t.Context(), assoc(s.agent, s.desk, at(s.start)))
		if err != nil {
			t.Fatalf("Begin %v: %v", s, err)
		}
		ids[s.agent+"/"+s.desk+"/"+s.start] = id
		if s.end != "" {
			by := s.by
			if by == "" {
				by = EndLogout
			}
			if _, err := j.End(t.Context(), s.agent+"@example.com", at(s.end), by, "test"); err != nil {
				t.Fatalf("End %v: %v", s, err)
			}
		}
	}
	return ids
}

// The desk d1 through a day: a1 10:00-11:00, a2 11:00-12:30 (forced), a
// zero-length a3 at 12:45, a1 again from 13:00, still there. d10 and d are
// other desks whose index keys share a prefix with d1.
var day = []span{
	{"a1", "d1", "10:00", "11:00", EndLogout},
	{"a2", "d1", "11:00", "12:30", EndForced},
	{"a3", "d1", "12:45", "12:45", EndStale},
	{"a1", "d1", "13:00", "", ""},
	{"a2", "d10", "12:30", "", ""},
	{"a4", "d", "09:00", "09:30", EndPortal},
}

func TestReopenPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := setup(t, j, day)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	a, ok, err := j.AtDesk(t.Context(), "d1", at("11:30"))
	if err != nil || !ok || a.ID != ids["a2/d1/11:00"] || a.EndedBy != EndForced || a.Detail != "test" || !a.End.Equal(at("12:30")) {
		t.Fatalf("after reopen AtDesk = %+v %v %v", a, ok, err)
	}
	open, err := j.OpenAssociations(t.Context())
	if err != nil || len(open) != 2 {
		t.Fatalf("after reopen open = %+v %v", open, err)
	}
	// IDs keep growing across reopen.
	id, err := j.Begin(t.Context(), assoc("b1", "e1", at("14:00")))
	if err != nil || id <= ids["a1/d1/13:00"] {
		t.Fatalf("Begin after reopen = %d, %v", id, err)
	}
	if _, err := j.End(t.Context(), "a1@example.com", at("16:00"), EndRecovery, "not on BroadWorks at start-up"); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, j)
}

func TestOpenTwiceFailsClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	start := time.Now()
	j2, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || j2 != nil {
		t.Fatalf("second Open: %v", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	t.Logf("second Open failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if _, err := Open("", Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Open(\"\"): %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir", "j.db"), Options{}); err == nil || !strings.HasPrefix(err.Error(), "journal: ") {
		t.Errorf("Open in a missing directory: %v", err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	j, err := Open(filepath.Join(t.TempDir(), "journal.db"), Options{Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := j.Begin(t.Context(), assoc("a1", "d1", at("10:00"))); !errors.Is(err, ErrClosed) {
		t.Fatalf("Begin after Close: %v", err)
	}
	if _, _, err := j.AtDesk(t.Context(), "d1", at("10:00")); !errors.Is(err, ErrClosed) {
		t.Fatalf("AtDesk after Close: %v", err)
	}
	if _, err := j.Prune(t.Context(), at("10:00")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Prune after Close: %v", err)
	}
	// The file lock is released: it opens again at once.
	j2, err := Open(j.Path(), Options{LockTimeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	j2.Close()
}

func TestPruneBatches(t *testing.T) {
	defer func(old int) { pruneBatch = old }(pruneBatch)
	pruneBatch = 10
	j := openTest(t, Options{Retention: time.Hour})
	n := pruneBatch*2 + 7
	for i := range n {
		start := t0.Add(time.Duration(i) * time.Minute)
		if _, err := j.Begin(t.Context(), assoc(fmt.Sprint("a", i%7), fmt.Sprint("d", i%5), start)); err != nil {
			t.Fatal(err)
		}
		if _, err := j.End(t.Context(), fmt.Sprint("a", i%7, "@example.com"), start.Add(time.Minute), EndLogout, ""); err != nil {
			t.Fatal(err)
		}
	}
	got, err := j.Prune(t.Context(), t0.Add(time.Duration(n)*time.Minute+2*time.Hour))
	if err != nil || got != n {
		t.Fatalf("Prune = %d, %v; want %d", got, err, n)
	}
	checkConsistent(t, j)
}

// TestPrunerRuns: the goroutine Open starts prunes every PruneInterval by
// Options.Now, and Close stops it (goleak in TestMain checks).
func TestPrunerRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	synctest.Test(t, func(t *testing.T) {
		// Inside the bubble time.Now is the fake clock, which starts at
		// 2000-01-01 and moves only when every goroutine waits.
		j, err := Open(path, Options{Retention: 24 * time.Hour, PruneInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		start := time.Now()
		if _, err := j.Begin(t.Context(), assoc("a1", "d1", start)); err != nil {
			t.Fatal(err)
		}
		if _, err := j.End(t.Context(), "a1@example.com", start.Add(time.Minute), EndLogout, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := j.Begin(t.Context(), assoc("a2", "d2", start)); err != nil {
			t.Fatal(err)
		}
		count := func() int {
			as, err := j.AgentBetween(t.Context(), "a1@example.com", start, start.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			return len(as)
		}
		time.Sleep(24*time.Hour + 30*time.Minute) // the pruner ran 24 times; at the last run the end was 23h59m ago
		synctest.Wait()
		if count() != 1 {
			t.Fatal("pruned too early")
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if count() != 0 {
			t.Fatal("not pruned by the background pruner")
		}
		if open, _ := j.OpenAssociations(t.Context()); len(open) != 1 {
			t.Fatalf("open association pruned: %+v", open)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// checkConsistent verifies bbolt's own page check and that every index
// entry points at its record and every record has its index entries.
func checkConsistent(t testing.TB, j *Journal) {
	t.Helper()
	err := j.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("bbolt check: %w", err)
		}
		b := buckets(tx)
		records, open := 0, 0
		err := b.assoc.ForEach(func(k, _ []byte) error {
			records++
			a, err := b.get(decodeID(k))
			if err != nil {
				return err
			}
			start := timeKey(a.Start)
			if b.desk.Get(indexKey(a.DeviceID, start, a.ID)) == nil && !keyExists(b.desk, indexKey(a.DeviceID, start, a.ID)) {
				return fmt.Errorf("association %d missing from the desk index", a.ID)
			}
			if !keyExists(b.agent, indexKey(a.AgentUserID, start, a.ID)) {
				return fmt.Errorf("association %d missing from the agent index", a.ID)
			}
			if a.Open() {
				open++
				if decodeID(b.openAgent.Get([]byte(a.AgentUserID))) != a.ID || decodeID(b.openDesk.Get([]byte(a.DeviceID))) != a.ID {
					return fmt.Errorf("open association %d missing from the open indexes", a.ID)
				}
			} else if !keyExists(b.ended, endedKey(a.End, a.ID)) {
				return fmt.Errorf("ended association %d missing from the ended index", a.ID)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for name, want := range map[string]int{"desk": records, "agent": records, "open-agent": open, "open-desk": open, "ended": records - open} {
			if got := tx.Bucket([]byte(name)).Stats().KeyN; got != want {
				return fmt.Errorf("bucket %s has %d keys, want %d", name, got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func keyExists(b *bolt.Bucket, k []byte) bool {
	got, _ := b.Cursor().Seek(k)
	return string(got) == string(k)
}

func TestOpenNotAJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a bbolt file\n", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := Open(path, Options{})
	if err == nil {
		j.Close()
		t.Fatal("opened a file that is not a journal")
	}
	if !strings.HasPrefix(err.Error(), "journal: open "+path) {
		t.Fatalf("error %q does not say what failed", err)
	}
	t.Log(err)
}
