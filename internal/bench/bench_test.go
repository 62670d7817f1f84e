package bench

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/sipptest"
)

// TestSmoke runs the whole benchmark at tiny sizes (the connector as a
// child process, the simulator, CTI sessions, Go and sipp phones) and
// checks that every row was measured and is sane. It says nothing about
// speed: wall-clock figures are only checked to be present.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the connector")
	}
	sipp := sipptest.Path(t)
	bin, err := BuildConnector(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, perUser := range []bool{false, true} {
		name := "scope"
		if perUser {
			name = "per-user-targets"
		}
		t.Run(name, func(t *testing.T) { smoke(t, bin, sipp, perUser) })
	}
}

func smoke(t *testing.T, bin, sipp string, perUser bool) {
	var log bytes.Buffer
	cfg := Config{Agents: 20, Phones: 10, GoPhones: 5, Monitors: 3, ChurnRate: 100, ChurnDuration: 2 * time.Second,
		Latency: 2 * time.Millisecond, MaxInFlight: 8, FanoutChanges: 4, Sipp: sipp, Log: &log,
		Connector: bin, PerUserTargets: perUser}
	if perUser {
		cfg.AgentsPerSession = 2 // 10 sessions, two desks each
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("%v\n--- progress ---\n%s", err, log.String())
	}
	var table bytes.Buffer
	if err := res.Table(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())

	positive := func(name string, v float64) {
		t.Helper()
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("%s = %v, want a positive number", name, v)
		}
	}
	st := res.Storm
	if st.Failed != 0 {
		t.Errorf("%d failed logins, first: %s", st.Failed, st.FirstFailure)
	}
	positive("storm wall", st.WallMS)
	positive("storm ideal", st.IdealMS)
	if want := 20.0 * 3 * 2 / 8; math.Abs(st.IdealMS-want) > 1e-9 {
		t.Errorf("ideal = %v ms, want N×3×L/C = %v ms", st.IdealMS, want)
	}
	if st.Latency.N != 20 || !(st.Latency.P50 > 0) || st.Latency.P99 < st.Latency.P50 || st.Latency.P99*1.001 < st.WallMS*0.5 {
		t.Errorf("storm latencies %+v for a storm of %v ms", st.Latency, st.WallMS)
	}
	positive("CPU per login", st.CPUPerLogin)
	// Each login is at least its three PUTs (desk CFA, association,
	// Unavailable); with the scope, the agents are read from BroadWorks on
	// this first reference.
	if st.PUTs < 3*20 {
		t.Errorf("storm made %v PUTs, want ≥ 60", st.PUTs)
	}
	if !perUser && st.GETs < 20 {
		t.Errorf("storm made %v GETs, want ≥ one per agent (its first reference)", st.GETs)
	}
	positive("startup readyz", res.StartUp.Readyz)

	c := res.Churn
	if c.Changes != 200 || c.PortalErrs != 0 {
		t.Errorf("churn made %d changes (%d portal errors), want 200", c.Changes, c.PortalErrs)
	}
	if c.CTILost != 0 || c.CTI.N != c.Changes {
		t.Errorf("CTI monitors saw %d of %d changes (%d lost)", c.CTI.N, c.Changes, c.CTILost)
	}
	// Go phones are desks 1..5 of 20: a quarter of the changes.
	if c.NotifyLost != 0 || c.Notify.N != c.Changes/4 {
		t.Errorf("Go phones saw %d NOTIFYs (%d lost), want %d", c.Notify.N, c.NotifyLost, c.Changes/4)
	}
	for name, s := range map[string]Stats{"CTI": c.CTI, "NOTIFY": c.Notify} {
		if !(s.P50 > 0) || s.P99 < s.P50 || s.Max < s.P99 || s.Max > 30000 {
			t.Errorf("%s latencies %+v: not sane", name, s)
		}
	}
	positive("CPU per change", c.CPUPerEvent)
	positive("churn connector CPU", c.CPU.Connector)
	positive("churn bench CPU", c.CPU.Bench)

	f := res.Fanout
	if f.Missing != 0 || f.All.N != 3*4 || f.Last.N != 4 || !(f.All.P50 > 0) {
		t.Errorf("fan-out %+v: want every one of 4 changes seen by 3 monitors", f)
	}

	fp := res.Footprint
	for name, s := range map[string]Footprint{"baseline": fp.Baseline, "idle": fp.Idle, "with CTI": fp.WithCTI, "with phones": fp.WithPhones, "end": fp.End} {
		if s.RSS < 1<<20 || s.HWM < s.RSS || s.Goroutines < 5 || s.HeapInuse == 0 {
			t.Errorf("footprint %s %+v: not sane", name, s)
		}
	}
	// Each CTI session has at least its read and write loops.
	if want := res.Config.Sessions + 3; fp.PerCTI.Count != want || fp.PerCTI.Goroutines < 1000 {
		t.Errorf("per 1,000 CTI sessions %+v: want ≥ 1,000 goroutines", fp.PerCTI)
	}
	positive("projected RSS", fp.Target)
	if !strings.HasPrefix(res.Sipp, "all 5 sipp phones") {
		t.Errorf("sipp: %q", res.Sipp)
	}
	for _, row := range res.Rows() {
		if strings.Contains(row.Value, "NaN") || strings.Contains(row.Value, "Inf") {
			t.Errorf("row %q: %q", row.Name, row.Value)
		}
	}
	var js bytes.Buffer
	if err := res.JSON(&js); err != nil || !strings.Contains(js.String(), `"x_ideal"`) {
		t.Errorf("JSON: %v\n%s", err, js.String())
	}
}

// TestStartupScenario runs the start-up scenario at a tiny size: the
// connector gets ready and settles, its idle footprint is sampled, and it
// read none of the scope's users while nothing referred to them.
func TestStartupScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the connector")
	}
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{DirectoryUsers: 500, Settle: 100 * time.Millisecond, Log: &log})
	if err != nil {
		t.Fatalf("%v\n--- progress ---\n%s", err, log.String())
	}
	var table bytes.Buffer
	if err := res.Table(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	d := res.Directory
	if d == nil {
		t.Fatal("no start-up result")
	}
	if d.Users != 500 || !(d.ReadyS > 0) || d.SettledS < d.ReadyS-1 || d.Idle.RSS < 1<<20 || d.Idle.HeapInuse == 0 || d.Idle.Goroutines < 5 {
		t.Errorf("start-up result %+v: not sane", d)
	}
	if d.Requests["GET"] != 0 || d.Requests["PUT"] != 0 {
		t.Errorf("Xsi-Actions requests at idle %v: the scope's users are read on first reference only", d.Requests)
	}
	if d.Warnings != 0 {
		t.Errorf("%d warnings logged: %v", d.Warnings, d.Examples)
	}
}

func TestTrackerPairsEventsWithChanges(t *testing.T) {
	tr := newTracker()
	at := time.Now().UnixNano()
	for _, c := range []*change{
		{agent: 1, event: "AgentReadyEvent", at: at},
		{agent: 1, event: "AgentNotReadyEvent", at: at + 10},
		{agent: 2, event: "AgentReadyEvent", at: at + 20},
		{agent: 1, event: "AgentReadyEvent", at: at + 30},
	} {
		tr.add(c)
	}
	tr.seen(seenCTI, 1, "AgentLoggedOnEvent", at+100) // not a change: unmatched
	tr.seen(seenCTI, 1, "AgentReadyEvent", at+100)    // the first change
	tr.seen(seenCTI, 1, "AgentReadyEvent", at+200)    // skips the unseen Not Ready: the fourth
	tr.seen(seenCTI, 1, "AgentNotReadyEvent", at+300) // behind the cursor: unmatched
	tr.seen(seenNotify, 2, "AgentReadyEvent", at+50)
	lat, lost := tr.latencies(seenCTI, 2)
	if len(lat) != 2 || lost != 2 || lat[0] != 100 || lat[1] != 170 {
		t.Errorf("CTI latencies %v, %d lost; want [100ns 170ns], 2 lost", lat, lost)
	}
	if tr.unmatched[seenCTI] != 2 {
		t.Errorf("%d unmatched CTI events, want 2", tr.unmatched[seenCTI])
	}
	lat, lost = tr.latencies(seenNotify, 1) // agent 2 is beyond the Go phones
	if len(lat) != 0 || lost != 3 {
		t.Errorf("NOTIFY latencies of agent 1: %v, %d lost; want none seen, 3 lost", lat, lost)
	}
}

func TestLinearSlope(t *testing.T) {
	tests := []struct {
		xs, ys []float64
		want   float64
	}{
		{[]float64{0, 1, 2, 3}, []float64{10, 10, 10, 10}, 0},
		{[]float64{0, 1, 2, 3}, []float64{10, 12, 14, 16}, 2},
		{[]float64{0, 0.5, 1}, []float64{100, 99, 98}, -2},
		{[]float64{1, 1}, []float64{3, 5}, 0}, // no spread in x
	}
	for _, tt := range tests {
		if got := linearSlope(tt.xs, tt.ys); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("linearSlope(%v, %v) = %v, want %v", tt.xs, tt.ys, got, tt.want)
		}
	}
}

func TestDeskIndex(t *testing.T) {
	for id, want := range map[string]int{"desk000001": 1, "desk012345": 12345, "agent000001": 0, "desk": 0, "deskx": 0} {
		if got := deskIndex(id); got != want {
			t.Errorf("deskIndex(%q) = %d, want %d", id, got, want)
		}
	}
}
