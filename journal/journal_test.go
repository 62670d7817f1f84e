package journal

import (
	"context"
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

func TestAtDesk(t *testing.T) {
	j := openTest(t, Options{})
	setup(t, j, day)
	tests := []struct {
		name      string
		desk      string
		at        time.Time
		wantAgent string // "" = nobody
	}{
		{"before anyone", "d1", at("09:59"), ""},
		{"one ns before first start", "d1", at("10:00").Add(-1), ""},
		{"exactly at start (inclusive)", "d1", at("10:00"), "a1"},
		{"inside", "d1", at("10:30"), "a1"},
		{"one ns before end", "d1", at("11:00").Add(-1), "a1"},
		{"end is exclusive, next starts there", "d1", at("11:00"), "a2"},
		{"exactly at end, nobody next", "d1", at("12:30"), ""},
		{"zero-length association covers nothing", "d1", at("12:45"), ""},
		{"gap", "d1", at("12:59"), ""},
		{"open association at its start", "d1", at("13:00"), "a1"},
		{"open association far in the future", "d1", at("13:00").Add(10 * 365 * 24 * time.Hour), "a1"},
		{"longer desk with same prefix", "d10", at("12:30"), "a2"},
		{"longer desk before its start", "d10", at("12:29"), ""},
		{"shorter desk with same prefix", "d", at("09:15"), "a4"},
		{"shorter desk after its end", "d", at("10:30"), ""},
		{"unknown desk", "d2", at("10:30"), ""},
		{"before 1970", "d1", time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, ok, err := j.AtDesk(t.Context(), tt.desk, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSuffix(a.AgentUserID, "@example.com"); got != tt.wantAgent || ok != (tt.wantAgent != "") {
				t.Fatalf("AtDesk(%s, %v) = %q, %v; want %q", tt.desk, tt.at, got, ok, tt.wantAgent)
			}
			if ok && (a.DeviceID != tt.desk || !a.covers(tt.at)) {
				t.Fatalf("AtDesk returned %+v", a)
			}
		})
	}
}

func TestAgentBetween(t *testing.T) {
	j := openTest(t, Options{})
	setup(t, j, day)
	tests := []struct {
		name     string
		agent    string
		from, to string
		want     []string // desk/start of each association, oldest first
	}{
		{"before everything", "a1", "08:00", "10:00", nil},
		{"range ends at a start (exclusive)", "a1", "09:00", "10:00", nil},
		{"range starts at an end (exclusive)", "a1", "11:00", "12:00", nil},
		{"partial overlap at the start", "a1", "09:00", "10:01", []string{"d1/10:00"}},
		{"partial overlap at the end", "a1", "10:59", "12:00", []string{"d1/10:00"}},
		{"inside one association", "a1", "10:15", "10:45", []string{"d1/10:00"}},
		{"spanning both, the second open", "a1", "09:00", "23:00", []string{"d1/10:00", "d1/13:00"}},
		{"only the open one", "a1", "14:00", "15:00", []string{"d1/13:00"}},
		{"the open one from its start", "a1", "13:00", "13:01", []string{"d1/13:00"}},
		{"two desks in a row", "a2", "10:00", "13:00", []string{"d1/11:00", "d10/12:30"}},
		{"zero-length association inside the range is listed", "a3", "12:00", "13:00", []string{"d1/12:45"}},
		{"zero-length association at the range's start is not", "a3", "12:45", "13:00", nil},
		{"unknown agent", "a9", "00:00", "23:00", nil},
		{"an instant: the association starting then", "a2", "11:00", "11:00", []string{"d1/11:00"}},
		{"an instant: the one ending then is over", "a1", "11:00", "11:00", nil},
		{"an instant inside an open one", "a1", "18:00", "18:00", []string{"d1/13:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as, err := j.AgentBetween(t.Context(), tt.agent+"@example.com", at(tt.from), at(tt.to))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range as {
				got = append(got, a.DeviceID+"/"+a.Start.Format("15:04"))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("AgentBetween(%s, %s, %s) = %v; want %v", tt.agent, tt.from, tt.to, got, tt.want)
			}
		})
	}
}

// TestDeskBetween: who sat at a desk over a range, the desk's own index
// (desks whose IDs share a prefix kept apart).
func TestDeskBetween(t *testing.T) {
	j := openTest(t, Options{})
	setup(t, j, day)
	tests := []struct {
		name     string
		desk     string
		from, to string
		want     []string // agent/start of each association, oldest first
	}{
		{"the whole day, guests in turn", "d1", "08:00", "23:00", []string{"a1/10:00", "a2/11:00", "a3/12:45", "a1/13:00"}},
		{"range ends at a start (exclusive)", "d1", "09:00", "10:00", nil},
		{"range starts at an end: the next guest", "d1", "11:00", "11:30", []string{"a2/11:00"}},
		{"the gap", "d1", "12:30", "12:44", nil},
		{"zero-length guest at the range's start is not listed", "d1", "12:45", "12:50", nil},
		{"longer desk with the same prefix", "d10", "00:00", "23:00", []string{"a2/12:30"}},
		{"shorter desk with the same prefix", "d", "00:00", "23:00", []string{"a4/09:00"}},
		{"an instant inside an open one", "d1", "18:00", "18:00", []string{"a1/13:00"}},
		{"unknown desk", "d2", "00:00", "23:00", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as, err := j.DeskBetween(t.Context(), tt.desk, at(tt.from), at(tt.to))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range as {
				got = append(got, strings.TrimSuffix(a.AgentUserID, "@example.com")+"/"+a.Start.Format("15:04"))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("DeskBetween(%s, %s, %s) = %v; want %v", tt.desk, tt.from, tt.to, got, tt.want)
			}
		})
	}
	if _, err := j.DeskBetween(t.Context(), "d1", at("11:00"), at("10:00")); !errors.Is(err, ErrInvalid) {
		t.Errorf("reversed range: %v, want ErrInvalid", err)
	}
	if _, err := j.DeskBetween(t.Context(), "", at("10:00"), at("11:00")); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty desk: %v, want ErrInvalid", err)
	}
}

func TestOpenAssociationsAndEnd(t *testing.T) {
	j := openTest(t, Options{})
	setup(t, j, day)
	open, err := j.OpenAssociations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 2 || open[0].AgentID != "a1" || open[0].DeviceID != "d1" || open[1].AgentID != "a2" || open[1].DeviceID != "d10" || !open[0].Open() {
		t.Fatalf("open = %+v", open)
	}
	ended, err := j.End(t.Context(), "a1@example.com", at("15:00"), EndAssociationLimit, "BroadWorks dropped the guest")
	if err != nil {
		t.Fatal(err)
	}
	want := Association{ID: open[0].ID, AgentID: "a1", AgentUserID: "a1@example.com", DeviceID: "d1", DeskUserID: "d1@example.com",
		Start: at("13:00"), End: at("15:00"), EndedBy: EndAssociationLimit, Detail: "BroadWorks dropped the guest"}
	if ended != want {
		t.Fatalf("End = %+v\nwant %+v", ended, want)
	}
	if a, ok, _ := j.AtDesk(t.Context(), "d1", at("14:59")); !ok || a != want {
		t.Fatalf("AtDesk after End = %+v %v", a, ok)
	}
	if _, ok, _ := j.AtDesk(t.Context(), "d1", at("15:00")); ok {
		t.Fatal("desk still occupied at the end")
	}
	open, _ = j.OpenAssociations(t.Context())
	if len(open) != 1 || open[0].AgentID != "a2" {
		t.Fatalf("open after End = %+v", open)
	}
	// The desk is free again, for a1 too.
	if _, err := j.Begin(t.Context(), assoc("a5", "d1", at("15:00"))); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Begin(t.Context(), assoc("a1", "d2", at("15:00"))); err != nil {
		t.Fatal(err)
	}
}

func TestRefusals(t *testing.T) {
	j := openTest(t, Options{})
	setup(t, j, day) // open: a1 at d1 from 13:00, a2 at d10 from 12:30
	long := strings.Repeat("x", maxIDLen+1)
	withID := assoc("b1", "e1", at("10:00"))
	withID.ID = 7
	withEnd := assoc("b1", "e1", at("10:00"))
	withEnd.End = at("11:00")
	noAgentID := assoc("b1", "e1", at("10:00"))
	noAgentID.AgentID = ""
	noDeskUser := assoc("b1", "e1", at("10:00"))
	noDeskUser.DeskUserID = ""
	bigDetail := assoc("b1", "e1", at("10:00"))
	bigDetail.Detail = strings.Repeat("x", maxDetailLen+1)
	ctx := t.Context()
	begin := func(a Association) func() error {
		return func() error { _, err := j.Begin(ctx, a); return err }
	}
	end := func(agent string, t time.Time, by EndReason) func() error {
		return func() error { _, err := j.End(ctx, agent, t, by, ""); return err }
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"begin: empty agent user ID", begin(assoc("", "e1", at("10:00"))), ErrInvalid},
		{"begin: empty device ID", begin(Association{AgentID: "b1", AgentUserID: "b1", DeskUserID: "e1", Start: at("10:00")}), ErrInvalid},
		{"begin: empty agent ID", begin(noAgentID), ErrInvalid},
		{"begin: empty desk user ID", begin(noDeskUser), ErrInvalid},
		{"begin: oversized ID", begin(assoc(long, "e1", at("10:00"))), ErrInvalid},
		{"begin: oversized detail", begin(bigDetail), ErrInvalid},
		{"begin: zero start", begin(assoc("b1", "e1", time.Time{})), ErrInvalid},
		{"begin: start after 2262", begin(assoc("b1", "e1", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC))), ErrInvalid},
		{"begin: ID given", begin(withID), ErrInvalid},
		{"begin: end given", begin(withEnd), ErrInvalid},
		{"begin: agent already associated", begin(assoc("a1", "e1", at("14:00"))), ErrAgentAssociated},
		{"begin: desk occupied", begin(assoc("b1", "d1", at("14:00"))), ErrDeskOccupied},
		{"begin: desk overlap with an ended association", begin(assoc("b1", "d", at("09:29"))), ErrOverlap},
		{"begin: agent overlap with an ended association", begin(assoc("a3", "e1", at("12:44"))), ErrOverlap},
		{"end: no open association", end("a3@example.com", at("14:00"), EndLogout), ErrNoOpenAssociation},
		{"end: unknown agent", end("zz", at("14:00"), EndLogout), ErrNoOpenAssociation},
		{"end: before start", end("a1@example.com", at("12:59"), EndLogout), ErrInvalid},
		{"end: empty agent", end("", at("14:00"), EndLogout), ErrInvalid},
		{"end: zero time", end("a1@example.com", time.Time{}, EndLogout), ErrInvalid},
		{"end: unknown reason", end("a1@example.com", at("14:00"), "bored"), ErrInvalid},
		{"end: empty reason", end("a1@example.com", at("14:00"), ""), ErrInvalid},
		{"at desk: empty desk", func() error { _, _, err := j.AtDesk(ctx, "", at("10:00")); return err }, ErrInvalid},
		{"at desk: zero time", func() error { _, _, err := j.AtDesk(ctx, "d1", time.Time{}); return err }, ErrInvalid},
		{"agent between: reversed range", func() error { _, err := j.AgentBetween(ctx, "a1", at("11:00"), at("10:00")); return err }, ErrInvalid},
		{"agent between: empty agent", func() error { _, err := j.AgentBetween(ctx, "", at("10:00"), at("11:00")); return err }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v; want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "journal: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
	// Nothing refused was written.
	open, _ := j.OpenAssociations(ctx)
	if len(open) != 2 {
		t.Fatalf("open after refusals = %+v", open)
	}
	checkConsistent(t, j)
}

func TestContextCancelled(t *testing.T) {
	j := openTest(t, Options{Retention: time.Hour})
	setup(t, j, day)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]func() error{
		"Begin":            func() error { _, err := j.Begin(ctx, assoc("b1", "e1", at("14:00"))); return err },
		"End":              func() error { _, err := j.End(ctx, "a1@example.com", at("14:00"), EndLogout, ""); return err },
		"AtDesk":           func() error { _, _, err := j.AtDesk(ctx, "d1", at("14:00")); return err },
		"AgentBetween":     func() error { _, err := j.AgentBetween(ctx, "a1@example.com", at("9:00"), at("14:00")); return err },
		"OpenAssociations": func() error { _, err := j.OpenAssociations(ctx); return err },
		"Prune":            func() error { _, err := j.Prune(ctx, at("23:00")); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v", name, err)
		}
	}
	if open, _ := j.OpenAssociations(t.Context()); len(open) != 2 {
		t.Fatalf("a cancelled call changed the journal: %+v", open)
	}
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

func TestPrune(t *testing.T) {
	tests := []struct {
		name      string
		retention time.Duration
		now       string
		wantN     int
		left      []string // agent/desk/start still in the journal
	}{
		{"keep forever", 0, "23:59", 0, []string{"a1/d1/10:00", "a2/d1/11:00", "a3/d1/12:45", "a1/d1/13:00", "a2/d10/12:30", "a4/d/09:00"}},
		{"nothing old enough", 10 * time.Hour, "19:00", 0, []string{"a1/d1/10:00", "a2/d1/11:00", "a3/d1/12:45", "a1/d1/13:00", "a2/d10/12:30", "a4/d/09:00"}},
		{"cutoff exactly at an end keeps it", time.Hour, "10:30", 0, []string{"a1/d1/10:00", "a2/d1/11:00", "a3/d1/12:45", "a1/d1/13:00", "a2/d10/12:30", "a4/d/09:00"}},
		{"one ended before the cutoff", time.Hour, "10:31", 1, []string{"a1/d1/10:00", "a2/d1/11:00", "a3/d1/12:45", "a1/d1/13:00", "a2/d10/12:30"}},
		{"all ended, open ones kept", time.Hour, "23:00", 4, []string{"a1/d1/13:00", "a2/d10/12:30"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := openTest(t, Options{Retention: tt.retention, PruneInterval: time.Hour})
			ids := setup(t, j, day)
			n, err := j.Prune(t.Context(), at(tt.now))
			if err != nil || n != tt.wantN {
				t.Fatalf("Prune = %d, %v; want %d", n, err, tt.wantN)
			}
			left := map[string]bool{}
			for _, k := range tt.left {
				left[k] = true
			}
			for _, s := range day {
				key := s.agent + "/" + s.desk + "/" + s.start
				as, err := j.AgentBetween(t.Context(), s.agent+"@example.com", at(s.start).Add(-time.Minute), at(s.start).Add(time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, a := range as {
					found = found || a.ID == ids[key]
				}
				if found != left[key] {
					t.Errorf("%s: found %v, want %v", key, found, left[key])
				}
			}
			checkConsistent(t, j)
		})
	}
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
