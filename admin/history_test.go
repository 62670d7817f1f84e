package admin_test

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/admin"
)

// fakeClock is a settable clock, safe to read from the server's goroutines.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.set(t)
	return c
}
func (c *fakeClock) set(t time.Time)                    { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) now() time.Time                     { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) at(base time.Time, d time.Duration) { c.set(base.Add(d)) }

// historyBase is on a bucket boundary.
var historyBase = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

// bucketWant is one bucket of a HistoryView; buckets a test does not name
// must be empty.
type bucketWant struct {
	logins, changes, delays, ahead int
	meanMs, maxMs                  float64 // compared when delays > 0
}

func TestHistoryRing(t *testing.T) {
	login := admin.Activity{Login: true, StateChanged: true}
	change := admin.Activity{StateChanged: true}
	delay := func(d time.Duration) admin.Activity { return admin.Activity{HasDelay: true, Delay: d} }
	type record struct {
		at time.Duration // after historyBase
		a  admin.Activity
	}
	const last = admin.HistoryBuckets - 1
	tests := []struct {
		name    string
		records []record
		viewAt  time.Duration
		want    map[int]bucketWant // by index, oldest 0, the filling one last
	}{
		{"nothing happened", nil, 0, nil},
		{"one login in the bucket filling", []record{{0, login}}, 5 * time.Second,
			map[int]bucketWant{last: {logins: 1, changes: 1}}},
		{"an empty activity is not counted", []record{{0, admin.Activity{}}}, 0, nil},
		{"a bucket boundary: the last instant before and the first after", []record{{10*time.Second - 1, login}, {10 * time.Second, change}, {10 * time.Second, change}}, 10 * time.Second,
			map[int]bucketWant{last - 1: {logins: 1, changes: 1}, last: {changes: 2}}},
		{"gaps when idle", []record{{0, change}, {5 * time.Minute, change}}, 5*time.Minute + time.Second,
			map[int]bucketWant{last - 30: {changes: 1}, last: {changes: 1}}},
		{"an idle quarter of an hour later, the activity has moved back", []record{{0, login}}, 15 * time.Minute,
			map[int]bucketWant{last - 90: {logins: 1, changes: 1}}},
		{"the oldest bucket still in the hour", []record{{0, login}}, time.Hour - time.Second,
			map[int]bucketWant{0: {logins: 1, changes: 1}}},
		{"an hour later it is gone", []record{{0, login}}, time.Hour, nil},
		{"wraparound: the bucket an hour on starts again", []record{{0, login}, {0, login}, {time.Hour + time.Second, change}}, time.Hour + 2*time.Second,
			map[int]bucketWant{last: {changes: 1}}},
		{"wraparound over the whole ring", []record{{0, change}, {30 * time.Minute, change}, {90 * time.Minute, login}}, 90 * time.Minute,
			map[int]bucketWant{last: {logins: 1, changes: 1}}},
		{"delays: mean and max; one stamped ahead counts as 0 and apart", []record{
			{0, delay(100 * time.Millisecond)}, {time.Second, delay(300 * time.Millisecond)}, {2 * time.Second, delay(-50 * time.Millisecond)}},
			3 * time.Second,
			map[int]bucketWant{last: {delays: 3, ahead: 1, meanMs: 133.333, maxMs: 300}}},
		{"a huge delay is kept as it is", []record{{0, delay(2 * time.Hour)}}, 0,
			map[int]bucketWant{last: {delays: 1, meanMs: 7200000, maxMs: 7200000}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock(historyBase)
			h := admin.NewHistory(clock.now)
			for _, r := range tt.records {
				clock.at(historyBase, r.at)
				h.Record(r.a)
			}
			clock.at(historyBase, tt.viewAt)
			v := h.View()
			checkHistory(t, v, clock.now(), tt.want)
		})
	}
}

func checkHistory(t *testing.T, v admin.HistoryView, now time.Time, want map[int]bucketWant) {
	t.Helper()
	n := admin.HistoryBuckets
	interval := admin.HistoryInterval
	if v.IntervalSeconds != int(interval/time.Second) || !v.Now.Equal(now) {
		t.Errorf("interval %d s, now %v; want %v, %v", v.IntervalSeconds, v.Now, interval, now)
	}
	if end := v.Start.Add(time.Duration(n) * interval); now.Before(v.Start.Add(time.Duration(n-1)*interval)) || !now.Before(end) {
		t.Errorf("start %v: the last bucket does not hold now %v", v.Start, now)
	}
	if len(v.Logins) != n || len(v.StateChanges) != n || len(v.Delay.Count) != n || len(v.Delay.Ahead) != n || len(v.Delay.MeanMs) != n || len(v.Delay.MaxMs) != n {
		t.Fatalf("arrays of %d %d %d %d %d %d, want %d each", len(v.Logins), len(v.StateChanges), len(v.Delay.Count), len(v.Delay.Ahead), len(v.Delay.MeanMs), len(v.Delay.MaxMs), n)
	}
	near := func(p *float64, want float64) bool { return p != nil && *p > want-0.001 && *p < want+0.001 }
	for i := range n {
		w := want[i]
		got := bucketWant{logins: v.Logins[i], changes: v.StateChanges[i], delays: v.Delay.Count[i], ahead: v.Delay.Ahead[i]}
		if got.logins != w.logins || got.changes != w.changes || got.delays != w.delays || got.ahead != w.ahead {
			t.Errorf("bucket %d: %+v, want %+v", i, got, w)
		}
		switch {
		case w.delays == 0 && (v.Delay.MeanMs[i] != nil || v.Delay.MaxMs[i] != nil):
			t.Errorf("bucket %d: a delay without events: mean %v max %v", i, v.Delay.MeanMs[i], v.Delay.MaxMs[i])
		case w.delays > 0 && (!near(v.Delay.MeanMs[i], w.meanMs) || !near(v.Delay.MaxMs[i], w.maxMs)):
			t.Errorf("bucket %d: delay mean %v max %v, want %v %v", i, deref(v.Delay.MeanMs[i]), deref(v.Delay.MaxMs[i]), w.meanMs, w.maxMs)
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestHistoryRoute: GET /api/v1/history wants the token and answers the
// ring as JSON, with or without a Source.
func TestHistoryRoute(t *testing.T) {
	clock := newFakeClock(historyBase)
	h := admin.NewHistory(clock.now)
	clock.at(historyBase, 20*time.Second)
	h.Record(admin.Activity{Login: true, StateChanged: true, HasDelay: true, Delay: 250 * time.Millisecond})
	clock.at(historyBase, 25*time.Second)
	_, c := startAPI(t, admin.WithHistory(h))

	if resp, _ := c.do("GET", "/api/v1/history", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := c.do("POST", "/api/v1/history", testToken, ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
	resp, body := c.do("GET", "/api/v1/history", testToken, "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// The shape, by name: what the dashboard reads.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"start", "now", "intervalSeconds", "logins", "stateChanges", "delay"} {
		if raw[key] == nil {
			t.Errorf("no %q in %.200s", key, body)
		}
	}
	var v admin.HistoryView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if want := historyBase.Add(30*time.Second - admin.HistoryBuckets*admin.HistoryInterval); !v.Start.Equal(want) {
		t.Errorf("start %v, want %v", v.Start, want)
	}
	checkHistory(t, v, clock.now(), map[int]bucketWant{admin.HistoryBuckets - 1: {logins: 1, changes: 1, delays: 1, meanMs: 250, maxMs: 250}})
	var delay map[string][]any
	if err := json.Unmarshal(raw["delay"], &delay); err != nil || len(delay["meanMs"]) != admin.HistoryBuckets || delay["meanMs"][0] != nil {
		t.Errorf("delay: %v, meanMs[0] = %v; want null where no event", err, delay["meanMs"])
	}
}

// TestHistoryConcurrent: records from many goroutines while the view is
// read and the clock moves on within one bucket; every record is counted
// once.
func TestHistoryConcurrent(t *testing.T) {
	clock := newFakeClock(historyBase)
	h := admin.NewHistory(clock.now)
	const writers, each = 4, 250
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				clock.at(historyBase, time.Duration(w*each+i)*time.Millisecond) // all within the first bucket
				h.Record(admin.Activity{Login: i%2 == 0, StateChanged: true, HasDelay: true, Delay: time.Duration(i) * time.Millisecond})
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if v := h.View(); len(v.Logins) != admin.HistoryBuckets {
				t.Errorf("%d buckets", len(v.Logins))
			}
		}
	})
	wg.Wait()
	clock.at(historyBase, 0)
	checkHistory(t, h.View(), clock.now(), map[int]bucketWant{admin.HistoryBuckets - 1: {
		logins: writers * each / 2, changes: writers * each, delays: writers * each, meanMs: 124.5, maxMs: 249}})
}
