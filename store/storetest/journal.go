package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/store"
)

// The journal's semantics as package journal defines them (its own tests
// hold the bbolt journal to them; these hold every store's journal).

var day0 = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)

func at(hhmm string) time.Time {
	d, err := time.ParseDuration(strings.Replace(hhmm, ":", "h", 1) + "m")
	if err != nil {
		panic(err)
	}
	return day0.Add(d)
}

// span is one association to set up: agent at desk from start to end ("" = open).
type span struct {
	agent, desk, start, end string
	by                      journal.EndReason
}

func setup(t testing.TB, j store.Journal, spans []span) map[string]journal.ID {
	t.Helper()
	ids := map[string]journal.ID{}
	for _, s := range spans {
		id, err := j.Begin(context.Background(), assoc(s.agent, s.desk, at(s.start)))
		if err != nil {
			t.Fatalf("Begin %v: %v", s, err)
		}
		ids[s.agent+"/"+s.desk+"/"+s.start] = id
		if s.end != "" {
			by := s.by
			if by == "" {
				by = journal.EndLogout
			}
			if _, err := j.End(context.Background(), s.agent+"@example.com", at(s.end), by, "test"); err != nil {
				t.Fatalf("End %v: %v", s, err)
			}
		}
	}
	return ids
}

// The desk d1 through a day: a1 10:00-11:00, a2 11:00-12:30 (forced), a
// zero-length a3 at 12:45, a1 again from 13:00, still there. d10 and d are
// other desks whose IDs share a prefix with d1.
var day = []span{
	{"a1", "d1", "10:00", "11:00", journal.EndLogout},
	{"a2", "d1", "11:00", "12:30", journal.EndForced},
	{"a3", "d1", "12:45", "12:45", journal.EndStale},
	{"a1", "d1", "13:00", "", ""},
	{"a2", "d10", "12:30", "", ""},
	{"a4", "d", "09:00", "09:30", journal.EndPortal},
}

func covers(a journal.Association, t time.Time) bool {
	return !t.Before(a.Start) && (a.End.IsZero() || t.Before(a.End))
}

func testAtDesk(t *testing.T, d Driver) {
	j := d.Open(t, Options{}).Journal()
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
			if ok && (a.DeviceID != tt.desk || !covers(a, tt.at)) {
				t.Fatalf("AtDesk returned %+v", a)
			}
		})
	}
}

func testAgentBetween(t *testing.T, d Driver) {
	j := d.Open(t, Options{}).Journal()
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

func testDeskBetween(t *testing.T, d Driver) {
	j := d.Open(t, Options{}).Journal()
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
}

func testOpenAssociationsAndEnd(t *testing.T, d Driver) {
	j := d.Open(t, Options{}).Journal()
	setup(t, j, day)
	open, err := j.OpenAssociations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 2 || open[0].AgentID != "a1" || open[0].DeviceID != "d1" || open[1].AgentID != "a2" || open[1].DeviceID != "d10" || !open[0].Open() {
		t.Fatalf("open = %+v", open)
	}
	ended, err := j.End(t.Context(), "a1@example.com", at("15:00"), journal.EndAssociationLimit, "BroadWorks dropped the guest")
	if err != nil {
		t.Fatal(err)
	}
	want := journal.Association{ID: open[0].ID, AgentID: "a1", AgentUserID: "a1@example.com", DeviceID: "d1", DeskUserID: "d1@example.com",
		Start: at("13:00"), End: at("15:00"), EndedBy: journal.EndAssociationLimit, Detail: "BroadWorks dropped the guest"}
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
	// An empty detail at End keeps Begin's.
	b := assoc("a6", "d6", at("15:00"))
	b.Detail = "from Begin"
	if _, err := j.Begin(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if e, err := j.End(t.Context(), "a6@example.com", at("16:00"), journal.EndLogout, ""); err != nil || e.Detail != "from Begin" {
		t.Fatalf("End with no detail = %+v, %v; want Begin's detail kept", e, err)
	}
}

const (
	maxIDLen     = 1024 // package journal's limits
	maxDetailLen = 4096
)

func testRefusals(t *testing.T, d Driver) {
	j := d.Open(t, Options{}).Journal()
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
	begin := func(a journal.Association) func() error {
		return func() error { _, err := j.Begin(ctx, a); return err }
	}
	end := func(agent string, t time.Time, by journal.EndReason) func() error {
		return func() error { _, err := j.End(ctx, agent, t, by, ""); return err }
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"begin: empty agent user ID", begin(assoc("", "e1", at("10:00"))), journal.ErrInvalid},
		{"begin: empty device ID", begin(journal.Association{AgentID: "b1", AgentUserID: "b1", DeskUserID: "e1", Start: at("10:00")}), journal.ErrInvalid},
		{"begin: empty agent ID", begin(noAgentID), journal.ErrInvalid},
		{"begin: empty desk user ID", begin(noDeskUser), journal.ErrInvalid},
		{"begin: oversized ID", begin(assoc(long, "e1", at("10:00"))), journal.ErrInvalid},
		{"begin: oversized detail", begin(bigDetail), journal.ErrInvalid},
		{"begin: zero start", begin(assoc("b1", "e1", time.Time{})), journal.ErrInvalid},
		{"begin: start after 2262", begin(assoc("b1", "e1", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC))), journal.ErrInvalid},
		{"begin: ID given", begin(withID), journal.ErrInvalid},
		{"begin: end given", begin(withEnd), journal.ErrInvalid},
		{"begin: agent already associated", begin(assoc("a1", "e1", at("14:00"))), journal.ErrAgentAssociated},
		{"begin: desk occupied", begin(assoc("b1", "d1", at("14:00"))), journal.ErrDeskOccupied},
		{"begin: agent associated wins over desk occupied", begin(assoc("a1", "d10", at("14:00"))), journal.ErrAgentAssociated},
		{"begin: desk overlap with an ended association", begin(assoc("b1", "d", at("09:29"))), journal.ErrOverlap},
		{"begin: agent overlap with an ended association", begin(assoc("a3", "e1", at("12:44"))), journal.ErrOverlap},
		{"end: no open association", end("a3@example.com", at("14:00"), journal.EndLogout), journal.ErrNoOpenAssociation},
		{"end: unknown agent", end("zz", at("14:00"), journal.EndLogout), journal.ErrNoOpenAssociation},
		{"end: before start", end("a1@example.com", at("12:59"), journal.EndLogout), journal.ErrInvalid},
		{"end: empty agent", end("", at("14:00"), journal.EndLogout), journal.ErrInvalid},
		{"end: zero time", end("a1@example.com", time.Time{}, journal.EndLogout), journal.ErrInvalid},
		{"end: unknown reason", end("a1@example.com", at("14:00"), "bored"), journal.ErrInvalid},
		{"end: empty reason", end("a1@example.com", at("14:00"), ""), journal.ErrInvalid},
		{"at desk: empty desk", func() error { _, _, err := j.AtDesk(ctx, "", at("10:00")); return err }, journal.ErrInvalid},
		{"at desk: zero time", func() error { _, _, err := j.AtDesk(ctx, "d1", time.Time{}); return err }, journal.ErrInvalid},
		{"agent between: reversed range", func() error { _, err := j.AgentBetween(ctx, "a1", at("11:00"), at("10:00")); return err }, journal.ErrInvalid},
		{"agent between: empty agent", func() error { _, err := j.AgentBetween(ctx, "", at("10:00"), at("11:00")); return err }, journal.ErrInvalid},
		{"desk between: reversed range", func() error { _, err := j.DeskBetween(ctx, "d1", at("11:00"), at("10:00")); return err }, journal.ErrInvalid},
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
	if as, _ := j.DeskBetween(ctx, "e1", at("00:00"), at("23:00")); len(as) != 0 {
		t.Fatalf("desk e1 after refusals: %+v", as)
	}
}

func testContextCancelled(t *testing.T, d Driver) {
	s := d.Open(t, Options{Retention: time.Hour})
	j := s.Journal()
	setup(t, j, day)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]func() error{
		"Begin":            func() error { _, err := j.Begin(ctx, assoc("b1", "e1", at("14:00"))); return err },
		"End":              func() error { _, err := j.End(ctx, "a1@example.com", at("14:00"), journal.EndLogout, ""); return err },
		"AtDesk":           func() error { _, _, err := j.AtDesk(ctx, "d1", at("14:00")); return err },
		"AgentBetween":     func() error { _, err := j.AgentBetween(ctx, "a1@example.com", at("9:00"), at("14:00")); return err },
		"OpenAssociations": func() error { _, err := j.OpenAssociations(ctx); return err },
		"Prune":            func() error { _, err := d.Prune(ctx, s, at("23:00")); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v", name, err)
		}
	}
	if open, _ := j.OpenAssociations(t.Context()); len(open) != 2 {
		t.Fatalf("a cancelled call changed the journal: %+v", open)
	}
	if as, _ := j.DeskBetween(t.Context(), "d1", at("00:00"), at("23:00")); len(as) != 4 {
		t.Fatalf("a cancelled Prune pruned: %d associations left at d1, want 4", len(as))
	}
}

func testPrune(t *testing.T, d Driver) {
	all := []string{"a1/d1/10:00", "a2/d1/11:00", "a3/d1/12:45", "a1/d1/13:00", "a2/d10/12:30", "a4/d/09:00"}
	tests := []struct {
		name      string
		retention time.Duration
		now       string
		wantN     int
		left      []string // agent/desk/start still in the journal
	}{
		{"keep forever", 0, "23:59", 0, all},
		{"nothing old enough", 10 * time.Hour, "19:00", 0, all},
		{"cutoff exactly at an end keeps it", time.Hour, "10:30", 0, all},
		{"one ended before the cutoff", time.Hour, "10:31", 1, []string{"a1/d1/10:00", "a2/d1/11:00", "a3/d1/12:45", "a1/d1/13:00", "a2/d10/12:30"}},
		{"all ended, open ones kept", time.Hour, "23:00", 4, []string{"a1/d1/13:00", "a2/d10/12:30"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := d.Open(t, Options{Retention: tt.retention})
			j := s.Journal()
			ids := setup(t, j, day)
			n, err := d.Prune(t.Context(), s, at(tt.now))
			if err != nil || n != tt.wantN {
				t.Fatalf("Prune = %d, %v; want %d", n, err, tt.wantN)
			}
			left := map[string]bool{}
			for _, k := range tt.left {
				left[k] = true
			}
			for _, sp := range day {
				key := sp.agent + "/" + sp.desk + "/" + sp.start
				as, err := j.AgentBetween(t.Context(), sp.agent+"@example.com", at(sp.start).Add(-time.Minute), at(sp.start).Add(time.Minute))
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
			// What was pruned no longer blocks nor answers: the desk's
			// history starts after the cutoff.
			if tt.wantN == 4 {
				if _, ok, _ := j.AtDesk(t.Context(), "d1", at("10:30")); ok {
					t.Error("a pruned association still answers AtDesk")
				}
			}
		})
	}
}

// testRoundTrip: what Begin and End store comes back exactly: nanosecond
// times in UTC (from any zone, before 1970 too), every field, IDs growing.
func testRoundTrip(t *testing.T, d Driver) {
	j := d.Open(t, Options{}).Journal()
	zone := time.FixedZone("X", -7*3600)
	starts := []time.Time{
		time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 999999999, zone),
		time.Date(2262, 1, 1, 0, 0, 0, 1, time.UTC),
	}
	var last journal.ID
	for i, start := range starts {
		a := assoc(fmt.Sprint("r", i), fmt.Sprint("desk ", i, " ü"), start)
		a.Detail = "detail ✓"
		id, err := j.Begin(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		if id <= last {
			t.Fatalf("ID %d after %d", id, last)
		}
		last = id
		end := start.Add(time.Nanosecond)
		got, err := j.End(t.Context(), a.AgentUserID, end, journal.EndRecovery, "")
		if err != nil {
			t.Fatal(err)
		}
		want := a
		want.ID, want.Start, want.End, want.EndedBy = id, start.UTC(), end.UTC(), journal.EndRecovery
		if got != want {
			t.Fatalf("End = %+v\nwant %+v", got, want)
		}
		as, err := j.DeskBetween(t.Context(), a.DeviceID, start, start)
		if err != nil || len(as) != 1 || as[0] != want {
			t.Fatalf("DeskBetween = %+v, %v; want [%+v]", as, err, want)
		}
	}
}
