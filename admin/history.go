package admin

import (
	"net/http"
	"sync"
	"time"
)

// The last hour of the floor's activity, for the dashboard's charts (GET
// /api/v1/history): a ring of HistoryBuckets buckets of HistoryInterval
// each, so its memory is fixed whatever the load. The wiring records into
// it what the gateway reports of each XSI agent-state event; nothing is
// kept past the hour, and a restart starts empty.

const (
	// HistoryInterval is the width of one bucket.
	HistoryInterval = 10 * time.Second
	// HistoryBuckets is how many the ring holds: one hour.
	HistoryBuckets = 360
)

// Activity is what one XSI event did to one agent, as History counts it.
type Activity struct {
	// Login: the agent went from signed out to any signed-in state, or
	// got a desk (a hoteling host) while not known to be signed out.
	Login bool
	// StateChanged: the agent's ACD state (or its not-ready reason)
	// changed from one the connector knew.
	StateChanged bool
	// Delay of an agent-state event, when HasDelay: when the connector
	// handled it minus BroadWorks' own timestamp of the state change. It
	// includes the clock skew between BroadWorks and this host; a
	// negative delay (the change stamped ahead of this clock) is counted
	// as 0 and counted apart, in Ahead.
	Delay    time.Duration
	HasDelay bool
}

// History is the ring. Its methods may be called concurrently.
type History struct {
	now func() time.Time

	mu   sync.Mutex
	ring [HistoryBuckets]historyBucket
}

type historyBucket struct {
	slot         int64 // start time / HistoryInterval; -1: never used
	logins       int
	stateChanges int
	delays       int           // agent-state events with a timestamp
	ahead        int           // of them stamped ahead of this clock (delay counted as 0)
	delaySum     time.Duration // over delays, negatives as 0
	delayMax     time.Duration
}

// NewHistory returns an empty ring reading the time from now (time.Now
// outside tests).
func NewHistory(now func() time.Time) *History {
	h := &History{now: now}
	for i := range h.ring {
		h.ring[i].slot = -1
	}
	return h
}

func slotOf(t time.Time) int64 { return t.UnixNano() / int64(HistoryInterval) }

// Record counts a in the bucket of the present moment.
func (h *History) Record(a Activity) {
	if !a.Login && !a.StateChanged && !a.HasDelay {
		return
	}
	slot := slotOf(h.now())
	h.mu.Lock()
	defer h.mu.Unlock()
	b := &h.ring[ringIndex(slot)]
	if b.slot != slot {
		*b = historyBucket{slot: slot} // an hour old (or never used): begun again
	}
	if a.Login {
		b.logins++
	}
	if a.StateChanged {
		b.stateChanges++
	}
	if a.HasDelay {
		d := a.Delay
		if d < 0 {
			b.ahead++
			d = 0
		}
		b.delays++
		b.delaySum += d
		b.delayMax = max(b.delayMax, d)
	}
}

func ringIndex(slot int64) int {
	i := slot % HistoryBuckets
	if i < 0 {
		i += HistoryBuckets
	}
	return int(i)
}

// HistoryView is the body of GET /api/v1/history: HistoryBuckets buckets,
// oldest first, the last one the bucket still filling (it holds Now). Bucket
// i covers [Start + i·Interval, Start + (i+1)·Interval). A bucket in which
// nothing happened is 0 in every array (null in the delay mean and max).
type HistoryView struct {
	Start           time.Time `json:"start"`
	Now             time.Time `json:"now"`
	IntervalSeconds int       `json:"intervalSeconds"`
	Logins          []int     `json:"logins"`       // agent logins (see Activity.Login)
	StateChanges    []int     `json:"stateChanges"` // agent state changes
	Delay           DelayView `json:"delay"`
}

// DelayView is the delay of XSI agent-state events per bucket, in
// milliseconds: how many events, their mean and their maximum (negatives
// counted as 0), and how many were stamped ahead of this host's clock.
type DelayView struct {
	Count  []int      `json:"count"`
	Ahead  []int      `json:"ahead"`
	MeanMs []*float64 `json:"meanMs"`
	MaxMs  []*float64 `json:"maxMs"`
}

// View is the last hour, up to now.
func (h *History) View() HistoryView {
	now := h.now()
	last := slotOf(now)
	first := last - HistoryBuckets + 1
	v := HistoryView{
		Start:           time.Unix(0, first*int64(HistoryInterval)).UTC(),
		Now:             now.UTC(),
		IntervalSeconds: int(HistoryInterval / time.Second),
		Logins:          make([]int, HistoryBuckets),
		StateChanges:    make([]int, HistoryBuckets),
		Delay: DelayView{
			Count:  make([]int, HistoryBuckets),
			Ahead:  make([]int, HistoryBuckets),
			MeanMs: make([]*float64, HistoryBuckets),
			MaxMs:  make([]*float64, HistoryBuckets),
		},
	}
	ms := func(d time.Duration) *float64 {
		f := float64(d.Microseconds()) / 1000
		return &f
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range HistoryBuckets {
		slot := first + int64(i)
		b := &h.ring[ringIndex(slot)]
		if b.slot != slot {
			continue // idle then, or older than the hour
		}
		v.Logins[i], v.StateChanges[i] = b.logins, b.stateChanges
		v.Delay.Count[i], v.Delay.Ahead[i] = b.delays, b.ahead
		if b.delays > 0 {
			v.Delay.MeanMs[i] = ms(b.delaySum / time.Duration(b.delays))
			v.Delay.MaxMs[i] = ms(b.delayMax)
		}
	}
	return v
}

// History is the server's ring (WithHistory, else its own on time.Now),
// for the wiring to record into.
func (s *Server) History() *History { return s.history }

func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.history.View())
}
