package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// Where a change is seen.
const (
	seenCTI    = 0 // the CTI monitor of the agent's desk
	seenNotify = 1 // the NOTIFY to the desk's Go phone
)

// change is one agent-state change made in the simulator's portal.
type change struct {
	agent int    // 1-based; the agent sits at desk agent
	event string // the CSTA event it must become (the NOTIFY body's root)
	at    int64  // unix ns just before the portal call: the XSI event's origin
	seen  [2]int64
}

// tracker pairs the events CTI clients and phones receive with the
// changes made, per agent in order: an event is the first change of that
// agent not yet seen there whose event name it carries.
type tracker struct {
	mu        sync.Mutex
	changes   []*change
	byAgent   map[int][]*change
	cursor    [2]map[int]int
	unmatched [2]int
}

func newTracker() *tracker {
	return &tracker{byAgent: map[int][]*change{}, cursor: [2]map[int]int{{}, {}}}
}

func (t *tracker) add(c *change) {
	t.mu.Lock()
	t.changes = append(t.changes, c)
	t.byAgent[c.agent] = append(t.byAgent[c.agent], c)
	t.mu.Unlock()
}

func (t *tracker) seen(where, agent int, event string, rx int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.byAgent[agent]
	for i := t.cursor[where][agent]; i < len(list); i++ {
		if c := list[i]; c.event == event && c.seen[where] == 0 {
			c.seen[where] = max(1, rx-c.at)
			t.cursor[where][agent] = i + 1
			return
		}
	}
	t.unmatched[where]++
}

// latencies are the changes' latencies where they were seen (of those of
// agents 1..agents), and how many were not seen.
func (t *tracker) latencies(where, agents int) (lat []time.Duration, lost int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.changes {
		if c.agent > agents {
			continue
		}
		if c.seen[where] == 0 {
			lost++
		} else {
			lat = append(lat, time.Duration(c.seen[where]))
		}
	}
	return lat, lost
}

// lostExamples describes up to n changes not seen where.
func (t *tracker) lostExamples(where, agents, n int) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for k, c := range t.changes {
		if c.agent <= agents && c.seen[where] == 0 && len(out) < n {
			out = append(out, fmt.Sprintf("change %d: agent %d %s at +%v", k, c.agent, c.event, time.Duration(c.at-t.changes[0].at).Round(time.Millisecond)))
		}
	}
	return out
}

// waitSeen waits until every change of agents 1..agents was seen where,
// or nothing more was seen for 10 s, or timeout.
func (t *tracker) waitSeen(where, agents int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	last, since := -1, time.Now()
	for time.Now().Before(deadline) {
		_, lost := t.latencies(where, agents)
		if lost == 0 {
			return
		}
		if lost != last {
			last, since = lost, time.Now()
		} else if time.Since(since) > 10*time.Second {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (t *tracker) reset() {
	t.mu.Lock()
	t.changes = nil
	t.byAgent = map[int][]*change{}
	t.cursor = [2]map[int]int{{}, {}}
	t.unmatched = [2]int{}
	t.mu.Unlock()
}

// deskIndex is i of "desk%06d", 0 when the ID is not a desk's.
func deskIndex(id string) int {
	rest, ok := strings.CutPrefix(id, "desk")
	if !ok {
		return 0
	}
	i, err := strconv.Atoi(rest)
	if err != nil {
		return 0
	}
	return i
}

// fanout records when each of K monitors of desk 1 saw each of a few
// changes of agent 1.
type fanout struct {
	cur      atomic.Int32 // index of the change in flight; -1 none
	event    atomic.Pointer[string]
	at       []int64   // per change
	arrivals [][]int64 // [change][monitor] latency ns
}

// ctiSide is the CTI sessions: client j (0-based) has a session, monitors
// desks j×per+1 … (j+1)×per and logs those agents in there (agent i at
// desk i); fan clients each monitor desk 1.
type ctiSide struct {
	per     int // agents (desks) per desk client
	clients []*cticlient.Client
	fan     []*cticlient.Client
	track   *tracker
	fo      *fanout
	dropped atomic.Int64
	closing atomic.Bool  // close was called
	ended   atomic.Int64 // connections the connector ended before that
	wg      sync.WaitGroup
}

// dialCTI connects desk clients for n agents, per agents each, and k
// fan-out clients to addr, each with an application session and its
// monitors, 64 at a time.
func dialCTI(ctx context.Context, addr string, n, per, k int, track *tracker, fo *fanout) (*ctiSide, error) {
	per = max(per, 1)
	sessions := (n + per - 1) / per
	s := &ctiSide{per: per, clients: make([]*cticlient.Client, sessions), fan: make([]*cticlient.Client, k), track: track, fo: fo}
	type job struct {
		i   int
		fan bool
	}
	jobs := make(chan job)
	errs := make(chan error, n+k)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for j := range jobs {
				c, err := cticlient.Dial(ctx, addr, cticlient.WithTimeout(120*time.Second), cticlient.WithEventBuffer(256))
				if err != nil {
					errs <- err
					continue
				}
				if _, err := c.StartSession(ctx, appID, "", "", csta.Edition3); err != nil {
					c.Close()
					errs <- fmt.Errorf("bench: CTI session: %w", err)
					continue
				}
				desks := []string{deskID(1)}
				if !j.fan {
					desks = desks[:0]
					for d := j.i*per + 1; d <= min(n, (j.i+1)*per); d++ {
						desks = append(desks, deskID(d))
					}
				}
				var merr error
				for _, desk := range desks {
					if _, err := c.MonitorStart(ctx, desk); err != nil {
						merr = fmt.Errorf("bench: MonitorStart %s: %w", desk, err)
						break
					}
				}
				if merr != nil {
					c.Close()
					errs <- merr
					continue
				}
				if j.fan {
					s.fan[j.i] = c
					s.wg.Go(func() { s.readFan(c, j.i) })
				} else {
					s.clients[j.i] = c
					s.wg.Go(func() { s.readDesk(c) })
				}
			}
		})
	}
	for i := range sessions {
		jobs <- job{i: i}
	}
	for i := range k {
		jobs <- job{i: i, fan: true}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *ctiSide) readDesk(c *cticlient.Client) {
	defer s.noteEnd()
	for ev := range c.Events() {
		rx := time.Now().UnixNano()
		if d := deskIndex(ev.Device); d > 0 && strings.HasPrefix(ev.Name, "Agent") {
			s.track.seen(seenCTI, d, ev.Name, rx)
		}
	}
}

func (s *ctiSide) noteEnd() {
	if !s.closing.Load() {
		s.ended.Add(1)
	}
}

func (s *ctiSide) readFan(c *cticlient.Client, m int) {
	defer s.noteEnd()
	fo := s.fo
	for ev := range c.Events() {
		rx := time.Now().UnixNano()
		k := int(fo.cur.Load())
		if k < 0 || ev.Device != deskID(1) {
			continue
		}
		if want := fo.event.Load(); want != nil && ev.Name == *want && atomic.LoadInt64(&fo.arrivals[k][m]) == 0 {
			atomic.StoreInt64(&fo.arrivals[k][m], max(1, rx-fo.at[k]))
		}
	}
}

func (s *ctiSide) close() {
	s.closing.Store(true)
	for _, c := range append(append([]*cticlient.Client(nil), s.clients...), s.fan...) {
		if c != nil {
			c.Close()
		}
	}
	s.wg.Wait()
	for _, c := range append(append([]*cticlient.Client(nil), s.clients...), s.fan...) {
		if c != nil {
			s.dropped.Add(int64(c.DroppedEvents()))
		}
	}
}

// stormResult is one login storm.
type stormResult struct {
	Wall time.Duration
	Took []time.Duration
	Errs []string
}

// storm has n agents log in at their desks (logout: off), all at once,
// agent i+1 from the client monitoring desk i+1.
func (s *ctiSide) storm(ctx context.Context, n int, logout bool) stormResult {
	r := stormResult{Took: make([]time.Duration, n), Errs: make([]string, n)}
	state := csta.ReqLoggedOn
	if logout {
		state = csta.ReqLoggedOff
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			t1 := time.Now()
			if _, err := s.clients[i/s.per].SetAgentState(ctx, deskID(i+1), state, agentID(i+1), ""); err != nil {
				r.Errs[i] = err.Error()
			}
			r.Took[i] = time.Since(t1)
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	r.Wall = time.Since(t0)
	return r
}

// checkLoggedIn reports why agent i is not fully logged in at desk i in
// BroadWorks (the simulator): associated both ways, the desk forwarding
// to the agent's number, the agent Unavailable.
func checkLoggedIn(sim *xspsim.Server, i int, number string) error {
	a, err := sim.Snapshot(agentUser(i))
	if err != nil {
		return err
	}
	d, err := sim.Snapshot(deskUser(i))
	if err != nil {
		return err
	}
	var bad []string
	if a.GuestHostID != deskUser(i) {
		bad = append(bad, fmt.Sprintf("agent associated with %q", a.GuestHostID))
	}
	if d.HostGuestID != agentUser(i) {
		bad = append(bad, fmt.Sprintf("desk's guest %q", d.HostGuestID))
	}
	if !d.CFAActive || d.CFANumber != number {
		bad = append(bad, fmt.Sprintf("desk CFA %v %q", d.CFAActive, d.CFANumber))
	}
	if a.AgentState != xspsim.StateUnavailable {
		bad = append(bad, "agent state "+a.AgentState)
	}
	if bad != nil {
		return fmt.Errorf("agent %d not logged in at desk %d: %s", i, i, strings.Join(bad, "; "))
	}
	return nil
}

// The churn's cycle of states, and the CSTA event each becomes.
var churnCycle = []struct{ state, code, event string }{
	{xspsim.StateAvailable, "", "AgentReadyEvent"},
	{xspsim.StateUnavailable, codeNR, "AgentNotReadyEvent"},
	{xspsim.StateWrapUp, "", "AgentWorkingAfterCallEvent"},
}

// churnResult is one churn phase.
type churnResult struct {
	Changes int
	Elapsed time.Duration
	LagMax  time.Duration // how late the driver fell behind its schedule
	Errors  int
}

// churn changes agents 1..n round robin through Ready / Not Ready / After
// Call Work in the simulator's portal at rate per second for d, recording
// each change in track (when record) with its origin time.
func churn(ctx context.Context, sim *xspsim.Server, track *tracker, next []int, rate float64, d time.Duration, record bool) churnResult {
	n := len(next)
	total := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	var r churnResult
	start := time.Now()
	for k := 0; k < total && ctx.Err() == nil; k++ {
		due := start.Add(time.Duration(k) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		} else {
			r.LagMax = max(r.LagMax, -wait)
		}
		a := k%n + 1
		st := churnCycle[next[a-1]]
		next[a-1] = (next[a-1] + 1) % len(churnCycle)
		c := &change{agent: a, event: st.event, at: time.Now().UnixNano()}
		if record {
			track.add(c)
		}
		if err := sim.PortalSetAgentState(agentUser(a), st.state, st.code); err != nil {
			r.Errors++
		}
		r.Changes++
	}
	r.Elapsed = time.Since(start)
	return r
}
