package faults

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/config"
	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/internal/stack"
	"github.com/broadworks-connector/connector/xsi"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

var (
	longMode = flag.Bool("faults.long", false, "run the fault campaign's long mode (more agents, longer churn and faults)")
	withBugs = flag.Bool("faults.bugs", false, "run the faults skipped for a known bug as well")
)

// sizes scale a campaign run.
type sizes struct {
	agents   int           // agents, and as many hot desks (agent i sits at desk i)
	clients  int           // CTI clients driving the agents, each its share
	monitors int           // monitor clients watching every device
	phones   int           // desk phones (desks 1..phones) subscribed to as-feature-event
	churn    time.Duration // how long agents churn after their storm login
	hold     time.Duration // how long a fault lasts, unless the fault says otherwise
	settle   time.Duration // deadline for recovery and each invariant to hold
}

func campaignSizes() sizes {
	if *longMode || os.Getenv("FAULTS_LONG") != "" {
		return sizes{agents: 200, clients: 10, monitors: 4, phones: 50, churn: 60 * time.Second, hold: 20 * time.Second, settle: 3 * time.Minute}
	}
	return sizes{agents: 24, clients: 4, monitors: 2, phones: 8, churn: 4 * time.Second, hold: 2 * time.Second, settle: 60 * time.Second}
}

// Reason codes: a CSTA not-ready reason and its BroadWorks unavailable code.
var reasons = []struct{ reason, code string }{{"1", "LUNCH"}, {"2", "MEETING"}, {"3", "TRAINING"}}

func reasonOf(code string) string {
	for _, r := range reasons {
		if r.code == code {
			return r.reason
		}
	}
	return code
}

func codeOf(reason string) string {
	for _, r := range reasons {
		if r.reason == reason {
			return r.code
		}
	}
	return ""
}

func testLogger(t testing.TB) *slog.Logger {
	if v := os.Getenv("FAULTS_LOG"); v != "" {
		var level slog.Level // FAULTS_LOG=debug, info, warn (1: warn)
		if level.UnmarshalText([]byte(v)) != nil {
			level = slog.LevelWarn
		}
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.DiscardHandler)
}

// baseConfig is the stack every fault starts from: two XSPs, the reason
// codes in BroadWorks and in the gateway, phone sync pinging phones every
// second.
func baseConfig(t testing.TB, sz sizes) stack.Config {
	return stack.Config{
		Agents: sz.agents,
		Desks:  sz.agents,
		XSPs:   2,
		Logger: testLogger(t),
		SimConfig: func(c *xspsim.Config) {
			for i, r := range reasons {
				c.UnavailableCodes = append(c.UnavailableCodes, xspsim.UnavailableCode{Code: r.code, Description: r.code, Active: true, Default: i == 0})
			}
		},
		Phones: true,
		ConnectorConfig: func(c *config.Config) {
			c.SIP.Liveness.OptionsInterval, c.SIP.Liveness.Timeout = time.Second, 3*time.Second
			for _, r := range reasons {
				c.Directory.ReasonCodes = append(c.Directory.ReasonCodes, r.reason+"="+r.code)
			}
			c.Directory.DefaultUnavailableCode = reasons[0].code
		},
	}
}

// ---- CTI connections ----

// life is one connection of a CTI client.
type life struct {
	c           *cticlient.Client
	tap         *Tap
	droppedByUs bool             // the harness cut it (a CTI client dropping)
	at          *stack.Connector // the connector it was dialled to
}

// ctiConn is one CTI client, reconnecting when its connection drops; its
// lives are kept for the answer count.
type ctiConn struct {
	h    *harness
	name string
	// eventBuffer is the client's event channel capacity (monitors read
	// continuously; a drop voids their check and is reported).
	eventBuffer int
	mu          sync.Mutex
	gaveUp      *life // the life a reconnect gave up replacing: later callers fail at once
	cur         *life
	all         []*life
}

func (h *harness) newConn(name string, eventBuffer int) (*ctiConn, error) {
	cc := &ctiConn{h: h, name: name, eventBuffer: eventBuffer}
	if _, err := cc.reconnect(nil); err != nil {
		return nil, err
	}
	return cc, nil
}

// current is the live connection.
func (cc *ctiConn) current() *life {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.cur
}

// reconnect replaces old (nil: none yet) by a new connection, unless
// another caller already has; it retries until the connector answers or
// the harness's deadline passes.
func (cc *ctiConn) reconnect(old *life) (*life, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cur != old {
		return cc.cur, nil
	}
	if old != nil && cc.gaveUp == old {
		return nil, fmt.Errorf("%s: reconnect: gave up already", cc.name)
	}
	deadline := time.Now().Add(cc.h.sz.settle)
	for {
		l, err := cc.dial()
		if err == nil {
			cc.cur = l
			cc.all = append(cc.all, l)
			return l, nil
		}
		if time.Now().After(deadline) || cc.h.stopped() {
			cc.gaveUp = old
			return nil, fmt.Errorf("%s: reconnect: %w", cc.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (cc *ctiConn) dial() (*life, error) {
	c := cc.h.st.Conn()
	if c == nil {
		return nil, errors.New("no connector running")
	}
	nc, err := net.DialTimeout("tcp", c.CSTA.Addr().String(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	tap := NewTap(nc)
	// A timeout far beyond the connector's own request timeout: a call
	// that times out in the client was never answered.
	cl := cticlient.New(tap, cticlient.WithTimeout(3*time.Minute), cticlient.WithEventBuffer(cc.eventBuffer))
	return &life{c: cl, tap: tap, at: c}, nil
}

// drop cuts the live connection, as a CTI client vanishing would.
func (cc *ctiConn) drop() {
	cc.mu.Lock()
	l := cc.cur
	if l != nil {
		l.droppedByUs = true
	}
	cc.mu.Unlock()
	if l != nil {
		l.tap.Conn.Close()
	}
}

func (cc *ctiConn) close() {
	cc.mu.Lock()
	all := slices.Clone(cc.all)
	cc.mu.Unlock()
	for _, l := range all {
		l.c.Close()
	}
}

// outcome classifies a request's result.
type outcome int

const (
	answeredOK outcome = iota + 1
	answeredError
	lost // no answer: the connection dropped
)

// classify says what err means for a request sent on l; a request that
// got no answer on a connection that is still up is a violation.
func (h *harness) classify(l *life, what string, err error) outcome {
	var ce *cticlient.Error
	switch {
	case err == nil:
		return answeredOK
	case errors.As(err, &ce):
		return answeredError
	}
	// Not an answer: only a connection that ended excuses it (a write on
	// a connection just cut fails before the reader notices the end).
	select {
	case <-l.c.Done():
		return lost
	case <-time.After(5 * time.Second):
	}
	h.violation("a: %s: no answer on a live connection: %v", what, err)
	return lost
}

// ---- agents ----

// agentRun drives agent i at desk i and models what its answers promise.
type agentRun struct {
	i       int
	cc      *ctiConn
	promise stack.Promise // from the answers (stack.AgentProblems checks it)
	ops     []string      // the request log, for failure messages
}

func (a *agentRun) record(op string, o outcome) {
	a.ops = append(a.ops, fmt.Sprintf("%s:%s", op, [...]string{"?", "ok", "err", "lost"}[o]))
}

func (a *agentRun) desk() string  { return stack.DeskID(a.i) }
func (a *agentRun) agent() string { return stack.AgentID(a.i) }

// setState sends one SetAgentState and updates the model.
func (h *harness) setState(a *agentRun, st csta.ReqAgentState, reason string) {
	l := a.cc.current()
	if l == nil {
		return
	}
	_, err := l.c.SetAgentState(context.Background(), a.desk(), st, a.agent(), reason)
	o := h.classify(l, fmt.Sprintf("agent %d %s", a.i, st), err)
	a.record(string(st)+reason, o)
	if o != answeredOK {
		h.seqFailed()
	}
	switch o {
	case lost:
		a.promise.Lost()
		if !h.stopped() {
			a.cc.reconnect(l)
		}
	case answeredError:
		a.promise.Refused(st)
	case answeredOK:
		a.promise.Answered(st, codeOf(reason))
	}
}

func (h *harness) query(a *agentRun) {
	l := a.cc.current()
	if l == nil {
		return
	}
	_, err := l.c.GetAgentState(context.Background(), a.desk())
	o := h.classify(l, fmt.Sprintf("agent %d GetAgentState", a.i), err)
	a.record("get", o)
	if o == lost && !h.stopped() {
		a.cc.reconnect(l)
	}
}

// drive runs agent a: its storm login, churn until churnEnd, and (every
// third agent) a final logout. Every fourth agent goes idle when the fault
// is cleared: whatever the fault left half done for it, the connector must
// repair on its own, no later request of the agent's doing it.
func (h *harness) drive(a *agentRun, churnEnd time.Time) {
	rng := rand.New(rand.NewPCG(uint64(a.i), 7))
	idle := a.i%4 == 1
	h.setState(a, csta.ReqLoggedOn, "")
	for time.Now().Before(churnEnd) && !h.stopped() {
		if idle && h.faultCleared() {
			return
		}
		time.Sleep(time.Duration(20+rng.IntN(60)) * time.Millisecond)
		if a.promise.Login != stack.LoggedIn {
			// Logged out, or not known after a lost answer: log in (a
			// login where the agent is already changes nothing). State
			// changes go to logged-in agents only: the connector does
			// not refuse Ready for an agent who is not at the desk (it
			// signs the agent in to the ACD without a hot desk).
			h.setState(a, csta.ReqLoggedOn, "")
			continue
		}
		switch r := rng.Float64(); {
		case r < 0.3:
			h.setState(a, csta.ReqReady, "")
		case r < 0.6:
			h.setState(a, csta.ReqNotReady, reasons[rng.IntN(len(reasons))].reason)
		case r < 0.75:
			h.setState(a, csta.ReqWorkingAfterCall, "")
		case r < 0.85:
			h.setState(a, csta.ReqLoggedOff, "")
		case r < 0.92:
			h.setState(a, csta.ReqLoggedOn, "")
		default:
			h.query(a)
		}
	}
	if a.i%3 == 0 {
		h.setState(a, csta.ReqLoggedOff, "")
	}
}

// ---- monitors ----

// agentView / deskView are what a monitor saw last of a device.
type agentView struct{ state, reason string }

type deskView struct {
	guest string // agent ID, "" none
	cfa   bool
	cfaTo string
}

type monitor struct {
	h  *harness
	cc *ctiConn

	mu      sync.Mutex
	agents  map[string]agentView
	desks   map[string]deskView
	reseeds int
	seeded  *life    // the connection the model was last seeded on
	stray   []string // events the model cannot place
	done    chan struct{}
}

func agentViewOf(s xspsim.UserSnapshot) agentView {
	switch s.AgentState {
	case xspsim.StateSignOut:
		return agentView{state: "loggedOff"}
	case xspsim.StateAvailable:
		return agentView{state: "ready"}
	case xspsim.StateUnavailable:
		return agentView{state: "notReady", reason: reasonOf(s.UnavailableCode)}
	case xspsim.StateWrapUp:
		return agentView{state: "workingAfterCall"}
	}
	return agentView{state: "loggedOn"}
}

func agentIDOf(userID string) string {
	return strings.TrimSuffix(userID, "@"+stack.Domain)
}

func deskViewOf(s xspsim.UserSnapshot) deskView {
	v := deskView{guest: agentIDOf(s.HostGuestID), cfa: s.CFAActive}
	if s.CFAActive {
		v.cfaTo = strings.TrimPrefix(s.CFANumber, "tel:")
	}
	return v
}

// devices are every agent's own device and every desk.
func (h *harness) devices() []string {
	var devs []string
	for i := 1; i <= h.sz.agents; i++ {
		devs = append(devs, stack.AgentID(i), stack.DeskID(i))
	}
	return devs
}

// startMonitor starts monitoring every device on a new client, seeded from
// BroadWorks while nothing changes yet.
func (h *harness) startMonitor(name string) (*monitor, error) {
	// A reseed after a connector restart (MonitorStart on every device,
	// then three queries per agent) does not read events meanwhile: the
	// buffer holds what the churn sends during it (in the long mode under
	// -race, 12,000 events and more).
	cc, err := h.newConn(name, max(8192, 160*h.sz.agents))
	if err != nil {
		return nil, err
	}
	m := &monitor{h: h, cc: cc, agents: map[string]agentView{}, desks: map[string]deskView{}, done: make(chan struct{})}
	l := cc.current()
	if err := m.monitorAll(l); err != nil {
		cc.close()
		return nil, err
	}
	snaps, err := h.snapshots()
	if err != nil {
		cc.close()
		return nil, err
	}
	for i := 1; i <= h.sz.agents; i++ {
		m.agents[stack.AgentID(i)] = agentViewOf(snaps[stack.AgentUser(i)])
		m.desks[stack.DeskID(i)] = deskViewOf(snaps[stack.DeskUser(i)])
	}
	m.seeded = l
	go m.run(l)
	return m, nil
}

func (m *monitor) monitorAll(l *life) error {
	for _, d := range m.h.devices() {
		_, err := l.c.MonitorStart(context.Background(), d)
		if o := m.h.classify(l, m.cc.name+" MonitorStart "+d, err); o != answeredOK {
			return fmt.Errorf("%s: MonitorStart %s: %v", m.cc.name, d, err)
		}
	}
	return nil
}

// run applies events; when the connection drops it reconnects, monitors
// every device again and takes a fresh snapshot through CSTA queries.
func (m *monitor) run(l *life) {
	defer close(m.done)
	for {
		for ev := range l.c.Events() {
			m.apply(ev)
		}
		if m.h.stopped() {
			return
		}
		var err error
		for {
			if l, err = m.cc.reconnect(l); err != nil {
				m.h.violation("c: %v", err)
				return
			}
			// Events sent while the snapshot is taken wait in the buffer
			// and are applied after it, in order: a device's last one
			// before its query's answer shows what the answer showed, the
			// ones after it are newer.
			if err = m.reseed(l); err == nil {
				break
			}
			if l.c.Err() == nil || m.h.stopped() {
				m.h.violation("c: %s: fresh snapshot: %v", m.cc.name, err)
				return
			}
		}
	}
}

func (m *monitor) reseed(l *life) error {
	if err := m.monitorAll(l); err != nil {
		return err
	}
	ctx := context.Background()
	seeds := map[string]agentView{}
	desks := map[string]deskView{}
	for i := 1; i <= m.h.sz.agents; i++ {
		dev := stack.AgentID(i)
		as, err := l.c.GetAgentState(ctx, dev)
		if m.h.classify(l, m.cc.name+" GetAgentState "+dev, err) != answeredOK {
			return fmt.Errorf("GetAgentState %s: %v", dev, err)
		}
		v := agentView{state: "loggedOff"}
		if e := as.AgentStateList[0]; e.LoggedOnState {
			v.state = "loggedOn"
			if len(e.AgentInfo) > 0 {
				switch e.AgentInfo[0].AgentState {
				case csta.AgentReady:
					v.state = "ready"
				case csta.AgentNotReady:
					v.state, v.reason = "notReady", as.ReasonCode
				case csta.AgentWorkingAfterCall:
					v.state = "workingAfterCall"
				}
			}
		}
		seeds[dev] = v
		desk := stack.DeskID(i)
		ds, err := l.c.GetAgentState(ctx, desk)
		if m.h.classify(l, m.cc.name+" GetAgentState "+desk, err) != answeredOK {
			return fmt.Errorf("GetAgentState %s: %v", desk, err)
		}
		var dv deskView
		if id := ds.AgentStateList[0].AgentID; id != desk {
			dv.guest = id
		}
		fw, err := l.c.GetForwarding(ctx, desk)
		if m.h.classify(l, m.cc.name+" GetForwarding "+desk, err) != answeredOK {
			return fmt.Errorf("GetForwarding %s: %v", desk, err)
		}
		for _, it := range fw.ForwardingList {
			if it.ForwardingType == csta.ForwardImmediate && it.ForwardStatus {
				dv.cfa, dv.cfaTo = true, strings.TrimPrefix(string(it.ForwardDN), "tel:")
			}
		}
		desks[desk] = dv
	}
	m.mu.Lock()
	maps.Copy(m.agents, seeds)
	maps.Copy(m.desks, desks)
	m.reseeds++
	m.seeded = l
	m.mu.Unlock()
	return nil
}

// live reports whether the monitor's connection is up and its model seeded
// on it (after a connector restart: reconnected and reseeded).
func (m *monitor) live() bool {
	l := m.cc.current()
	m.mu.Lock()
	defer m.mu.Unlock()
	return l != nil && l == m.seeded && l.c.Err() == nil && l.at == m.h.st.Conn()
}

func (m *monitor) apply(ev cticlient.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if dv, isDesk := m.desks[ev.Device]; isDesk {
		switch ev.Name {
		case "AgentLoggedOnEvent":
			if ev.AgentID != ev.Device {
				dv.guest = ev.AgentID
			}
		case "AgentLoggedOffEvent":
			if ev.AgentID != ev.Device {
				if dv.guest != ev.AgentID {
					m.stray = append(m.stray, fmt.Sprintf("%s: %s of %s while the guest is %q", ev.Device, ev.Name, ev.AgentID, dv.guest))
				}
				dv.guest = ""
			}
		case "ForwardingEvent":
			if ev.ForwardingType == string(csta.ForwardImmediate) {
				dv.cfa, dv.cfaTo = ev.ForwardStatus, ""
				if ev.ForwardStatus {
					dv.cfaTo = strings.TrimPrefix(ev.ForwardTo, "tel:")
				}
			}
		}
		m.desks[ev.Device] = dv
		return
	}
	if _, isAgent := m.agents[ev.Device]; !isAgent {
		return
	}
	v := m.agents[ev.Device]
	switch ev.Name {
	case "AgentLoggedOnEvent":
		v = agentView{state: "loggedOn"}
	case "AgentLoggedOffEvent":
		v = agentView{state: "loggedOff"}
	case "AgentReadyEvent":
		v = agentView{state: "ready"}
	case "AgentNotReadyEvent":
		v = agentView{state: "notReady", reason: ev.ReasonCode}
	case "AgentWorkingAfterCallEvent":
		v = agentView{state: "workingAfterCall"}
	}
	m.agents[ev.Device] = v
}

// diff lists where the monitor's last view differs from BroadWorks.
func (m *monitor) diff(snaps map[string]xspsim.UserSnapshot) map[int][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	bad := map[int][]string{}
	for i := 1; i <= m.h.sz.agents; i++ {
		if want, got := agentViewOf(snaps[stack.AgentUser(i)]), m.agents[stack.AgentID(i)]; want != got {
			bad[i] = append(bad[i], fmt.Sprintf("%s: saw %+v, BroadWorks %+v", stack.AgentID(i), got, want))
		}
		if want, got := deskViewOf(snaps[stack.DeskUser(i)]), m.desks[stack.DeskID(i)]; want != got {
			bad[i] = append(bad[i], fmt.Sprintf("%s: saw %+v, BroadWorks %+v", stack.DeskID(i), got, want))
		}
	}
	return bad
}

// seqWatch notes XSI events the channel set hands to the gateway although
// a later event of the same subscription was handed over before (events
// of one subscription may travel on different channels of the set).
type seqWatch struct {
	mu    sync.Mutex
	last  map[string]int64
	n     int
	first []string
	stale map[int]bool // agent or desk index whose user got such an event
}

func (w *seqWatch) observe(ev xsi.Event) {
	se, ok := ev.(*xsi.SubscriptionEvent)
	if !ok || se.SequenceNumber <= 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	last, seen := w.last[se.SubscriptionID]
	if seen && se.SequenceNumber <= last {
		w.n++
		if w.stale == nil {
			w.stale = map[int]bool{}
		}
		w.stale[indexOf(se.TargetID)] = true
		if len(w.first) < 5 {
			w.first = append(w.first, fmt.Sprintf("%s %T seq %d after %d (from %s)", se.TargetID, se.Data, se.SequenceNumber, last, se.Server))
		}
		return
	}
	w.last[se.SubscriptionID] = se.SequenceNumber
}

// hit says whether agent i's or desk i's user got an event after a later
// one of its subscription.
func (w *seqWatch) hit(i int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stale[i]
}

// indexOf is i of agent i's or desk i's user (0 for others).
func indexOf(userID string) int {
	var i int
	id := agentIDOf(userID)
	for _, prefix := range []string{"agent", "desk"} {
		if n, err := fmt.Sscanf(id, prefix+"%d", &i); err == nil && n == 1 {
			return i
		}
	}
	return 0
}

func (w *seqWatch) report() (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, slices.Clone(w.first)
}

// ---- the harness ----

type harness struct {
	t    *testing.T
	sz   sizes
	st   *stack.Stack
	stop chan struct{} // closed when driving ends: no more reconnects
	// lastSeqFail is when a request last failed or went unanswered:
	// what it asked for may still land until doubtWindow later.
	lastSeqFail atomic.Int64
	cleared     chan struct{} // closed when the fault is cleared

	conns    []*ctiConn // the agents' CTI clients
	monitors []*monitor
	pmu      sync.Mutex
	phones   map[int]*phone // by desk
	sw       *seqWatch

	vmu        sync.Mutex
	violations []string
}

// doubtWindow is the stack's gateway DoubtWindow (twice its XSI request
// timeout, at least 10 s): a request given up on may land that long after.
const doubtWindow = 10 * time.Second

func (h *harness) seqFailed() { h.lastSeqFail.Store(time.Now().UnixNano()) }

// awaitPromises waits until no request given up on can land any more, then
// until the running connector's reconciler has nothing left to do.
func (h *harness) awaitPromises(timeout time.Duration) {
	if last := h.lastSeqFail.Load(); last != 0 {
		time.Sleep(time.Until(time.Unix(0, last).Add(doubtWindow + time.Second)))
	}
	if c := h.st.Conn(); c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := c.Gateway.Settle(ctx); err != nil {
			h.violation("the reconciler did not settle within %v", timeout)
		}
	}
}

func (h *harness) faultCleared() bool {
	select {
	case <-h.cleared:
		return true
	default:
		return false
	}
}

func (h *harness) stopped() bool {
	select {
	case <-h.stop:
		return true
	default:
		return false
	}
}

// violation records a broken invariant (reported by the test, not fatal,
// so that the run goes on and the other invariants are checked too).
func (h *harness) violation(format string, args ...any) {
	h.vmu.Lock()
	defer h.vmu.Unlock()
	h.violations = append(h.violations, fmt.Sprintf(format, args...))
}

func (h *harness) snapshots() (map[string]xspsim.UserSnapshot, error) {
	out := map[string]xspsim.UserSnapshot{}
	for _, u := range h.st.Users() {
		s, err := h.st.Sim.Snapshot(u)
		if err != nil {
			return nil, err
		}
		out[u] = s
	}
	return out, nil
}

// resubscribe gives a new subscription to every phone whose connector
// life ended.
func (h *harness) resubscribe() {
	h.pmu.Lock()
	defer h.pmu.Unlock()
	for _, p := range h.phones {
		p.mu.Lock()
		stale := p.life != h.st.Conn() || p.ended
		p.mu.Unlock()
		if stale {
			if err := p.subscribe(h.st, p.pc.LocalAddr().String()); err != nil {
				h.violation("e: %v", err)
			}
		}
	}
}

// replacePhone makes desk d's phone vanish (no answer, socket gone) and,
// if again, a new phone take its place.
func (h *harness) replacePhone(d int, again bool) {
	h.pmu.Lock()
	p := h.phones[d]
	delete(h.phones, d)
	h.pmu.Unlock()
	if p != nil {
		p.close()
	}
	if !again {
		return
	}
	np, err := h.newPhone(stack.DeskID(d))
	if err != nil {
		h.violation("phone %s back: %v", stack.DeskID(d), err)
		return
	}
	h.pmu.Lock()
	h.phones[d] = np
	h.pmu.Unlock()
}

func (h *harness) closePhones() {
	h.pmu.Lock()
	ps := h.phones
	h.phones = map[int]*phone{}
	h.pmu.Unlock()
	for _, p := range ps {
		p.close()
	}
}

// viewDiff lists where the running connector's view differs from
// BroadWorks.
func (h *harness) viewDiff() []string {
	c := h.st.Conn()
	snaps, err := h.snapshots()
	if c == nil || err != nil {
		return []string{fmt.Sprintf("no view (%v)", err)}
	}
	var bad []string
	for _, id := range h.st.Users() {
		v, s := c.Gateway.User(id), snaps[id]
		if !v.Known || string(v.ACDState) != s.AgentState || v.CFA.Active != s.CFAActive ||
			(s.CFAActive && strings.TrimPrefix(v.CFA.ForwardToPhoneNumber, "tel:") != strings.TrimPrefix(s.CFANumber, "tel:")) ||
			v.HostUserID != s.GuestHostID {
			bad = append(bad, fmt.Sprintf("%s: view known=%v %s/%s CFA %v %q host %q; BroadWorks %s/%s CFA %v %q host %q", id,
				v.Known, v.ACDState, v.UnavailableCode, v.CFA.Active, v.CFA.ForwardToPhoneNumber, v.HostUserID,
				s.AgentState, s.UnavailableCode, s.CFAActive, s.CFANumber, s.GuestHostID))
		}
	}
	return bad
}

// await polls check until it reports nothing or the deadline passes, and
// returns its last report.
func await(deadline time.Duration, check func() []string) []string {
	end := time.Now().Add(deadline)
	for {
		bad := check()
		if len(bad) == 0 || time.Now().After(end) {
			return bad
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func firstN(s []string, n int) string {
	if len(s) > n {
		return strings.Join(s[:n], "\n\t") + fmt.Sprintf("\n\t... and %d more", len(s)-n)
	}
	return strings.Join(s, "\n\t")
}

// fault is one entry of the campaign.
type fault struct {
	name string
	// at is when the fault starts, counted from the storm's start (small:
	// mid-storm).
	at time.Duration
	// hold is how long it lasts (0: sizes.hold).
	hold func(sizes) time.Duration
	// config adjusts the stack.
	config func(*stack.Config)
	// run injects the fault, keeps it for hold and clears it.
	run func(h *harness, hold time.Duration)
	// quiet is how long the harness waits once driving has ended before it
	// checks: requests the fault held may still be applied (late) and be
	// re-checked by the connector meanwhile.
	quiet time.Duration
	skip  string
}

// runFault runs one fault through the harness and checks the invariants.
func runFault(t *testing.T, f fault) {
	if f.skip != "" && (!*withBugs || f.run == nil) {
		t.Skip(f.skip)
	}
	start := time.Now()
	runtime.GC()
	baseG := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap := ms.HeapAlloc

	violations := runScenario(t, f, campaignSizes())
	// (d) nothing left running, no memory kept, once the stack is closed
	// (and the harness's own clients gone).
	violations = append(violations, checkLeaks(t, baseG, baseHeap)...)
	for _, v := range violations {
		t.Error(v)
	}
	t.Logf("fault %s: %v", f.name, time.Since(start).Round(time.Millisecond))
}

// runScenario builds the stack, runs the storm, the churn and the fault,
// checks invariants (a) to (c), closes everything and returns the
// violations.
func runScenario(t *testing.T, f fault, sz sizes) []string {
	cfg := baseConfig(t, sz)
	sw := &seqWatch{last: map[string]int64{}}
	cfg.OnEvent = sw.observe
	if f.config != nil {
		f.config(&cfg)
	}
	st, err := stack.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			st.Close()
		}
	}()
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, sz: sz, st: st, stop: make(chan struct{}), cleared: make(chan struct{}), phones: map[int]*phone{}, sw: sw}
	defer h.closePhones()
	ownCFA := map[int]string{}
	for i := 1; i <= sz.agents; i++ {
		s, err := st.Sim.Snapshot(stack.DeskUser(i))
		if err != nil {
			t.Fatal(err)
		}
		if s.CFAActive {
			ownCFA[i] = strings.TrimPrefix(s.CFANumber, "tel:")
		}
	}

	var monitors []*monitor
	for k := range sz.monitors {
		m, err := h.startMonitor(fmt.Sprintf("monitor%d", k+1))
		if err != nil {
			t.Fatal(err)
		}
		monitors = append(monitors, m)
	}
	for d := 1; d <= sz.phones; d++ {
		p, err := h.newPhone(stack.DeskID(d))
		if err != nil {
			t.Fatal(err)
		}
		h.phones[d] = p
	}
	var conns []*ctiConn
	for k := range sz.clients {
		cc, err := h.newConn(fmt.Sprintf("client%d", k+1), 256)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cc)
	}
	h.conns = conns
	h.monitors = monitors
	agents := make([]*agentRun, sz.agents)
	for i := range agents {
		agents[i] = &agentRun{i: i + 1, cc: conns[i%len(conns)], promise: stack.Promise{Login: stack.LoggedOut, ACD: xspsim.StateSignOut}} // as seeded
	}

	// The storm, the churn, the fault.
	hold := sz.hold
	if f.hold != nil {
		hold = f.hold(sz)
	}
	t0 := time.Now()
	churnEnd := t0.Add(max(sz.churn, f.at+hold+sz.churn/2))
	faultDone := make(chan struct{})
	go func() {
		defer close(faultDone)
		time.Sleep(time.Until(t0.Add(f.at)))
		t.Logf("fault injected at +%v", time.Since(t0).Round(time.Millisecond))
		f.run(h, hold)
		close(h.cleared)
		t.Logf("fault cleared at +%v", time.Since(t0).Round(time.Millisecond))
	}()
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(func() { h.drive(a, churnEnd) })
	}
	wg.Wait()
	<-faultDone
	t.Logf("driving ended at +%v", time.Since(t0).Round(time.Millisecond))
	time.Sleep(f.quiet)
	h.awaitPromises(sz.settle)

	// Recovery.
	waitUntil := time.Now().Add(sz.settle)
	for st.Conn() == nil || !st.Conn().Gateway.LinkUp() {
		if time.Now().After(waitUntil) {
			t.Fatal("the connector or its XSI link did not come back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The view settles: it agrees with BroadWorks for every user.
	byIndex := func(diffs []string) map[int][]string {
		m := map[int][]string{}
		for _, d := range diffs {
			user, _, _ := strings.Cut(d, ":")
			i := indexOf(user)
			m[i] = append(m[i], d)
		}
		return m
	}
	if bad := await(sz.settle, func() []string {
		var bad []string
		for _, ds := range byIndex(h.viewDiff()) {
			bad = append(bad, ds...)
		}
		return bad
	}); len(bad) > 0 {
		h.violation("recovery: the connector's view does not settle:\n\t%s", firstN(bad, 10))
	}

	// (b) BroadWorks consistent per agent, and as the answers promised.
	var snaps map[string]xspsim.UserSnapshot
	bad := await(sz.settle/2, func() []string {
		snaps, err = h.snapshots()
		if err != nil {
			return []string{err.Error()}
		}
		var bad []string
		for _, a := range agents {
			for _, p := range stack.AgentProblems(a.i, a.promise, snaps, ownCFA[a.i]) {
				bad = append(bad, fmt.Sprintf("agent %d: %s (requests: %s)", a.i, p, strings.Join(lastN(a.ops, 6), " ")))
			}
		}
		return bad
	})
	if len(bad) > 0 {
		h.violation("b: BroadWorks not consistent:\n\t%s", firstN(bad, 20))
	}
	if c := st.Conn(); c != nil {
		if reps := c.LinkRepairs(); len(reps) > 0 {
			t.Logf("repairs after start-up recovery: %d (last 256 kept); by kind since the start: %v", len(reps), c.Gateway.RepairCounts())
		}
	}

	// (c) every monitor's last view is BroadWorks' final state: once it is
	// connected again (a connector restart dropped it) and reseeded.
	for _, m := range monitors {
		if bad := await(sz.settle/4, func() []string {
			if !m.live() {
				return []string{"not connected and reseeded"}
			}
			return nil
		}); len(bad) > 0 {
			h.violation("c: %s: not connected again and reseeded within %v", m.cc.name, sz.settle/4)
		}
	}
	for _, m := range monitors {
		var last map[int][]string
		bad := await(sz.settle/4, func() []string {
			snaps, err := h.snapshots()
			if err != nil {
				return []string{err.Error()}
			}
			last = m.diff(snaps)
			var bad []string
			for _, ds := range last {
				bad = append(bad, ds...)
			}
			return bad
		})
		m.mu.Lock()
		reseeds, stray := m.reseeds, slices.Clone(m.stray)
		m.mu.Unlock()
		if len(bad) > 0 {
			h.violation("c: %s (reconnected %d times) missed changes:\n\t%s", m.cc.name, reseeds, firstN(bad, 20))
		}
		if len(stray) > 0 {
			t.Logf("%s: events out of place: %s", m.cc.name, firstN(stray, 5))
		}
		if l := m.cc.current(); l != nil && l.c.DroppedEvents() > 0 {
			h.violation("c: %s: the client's own event buffer overflowed (%d dropped): the check is void", m.cc.name, l.c.DroppedEvents())
		}
	}

	// (e) every phone shows BroadWorks' final state. A phone whose
	// subscription a connector restart ended subscribes again, as it
	// would on its next refresh (and gets the full state).
	h.resubscribe()
	var lastPhones map[int][]string
	if bad := await(sz.settle/4, func() []string {
		snaps, err := h.snapshots()
		if err != nil {
			return []string{err.Error()}
		}
		lastPhones = h.phoneDiff(snaps)
		var bad []string
		for _, ds := range lastPhones {
			bad = append(bad, ds...)
		}
		return bad
	}); len(bad) > 0 {
		h.violation("e: phones missed changes:\n\t%s", firstN(bad, 20))
	}

	// (a) every request sent got exactly one answer.
	close(h.stop)
	for _, cc := range append(slices.Clone(conns), monitorConns(monitors)...) {
		cc.mu.Lock()
		lives := slices.Clone(cc.all)
		cc.mu.Unlock()
		for n, l := range lives {
			c := l.tap.Count()
			if c.Broken != "" {
				h.violation("a: %s life %d: CSTA stream broken: %s", cc.name, n+1, c.Broken)
			}
			if len(c.Unexpected) > 0 {
				h.violation("a: %s life %d: answers to invoke IDs with no request outstanding (a second answer?): %v", cc.name, n+1, c.Unexpected)
			}
			// Unanswered requests only on a connection that dropped.
			if len(c.Outstanding) > 0 && c.ReadErr == nil {
				h.violation("a: %s life %d: %d requests never answered on a live connection: %v", cc.name, n+1, len(c.Outstanding), c.Outstanding)
			}
			if len(c.Outstanding) > 0 || n > 0 {
				t.Logf("%s life %d: %d sent, %d answered, %d unanswered when the connection dropped (by the harness: %v)",
					cc.name, n+1, c.Sent, c.Answered, len(c.Outstanding), l.droppedByUs)
			}
		}
	}
	for _, cc := range conns {
		cc.close()
	}
	for _, m := range monitors {
		m.cc.close()
		<-m.done
	}
	summarize(t, agents)
	if n, first := sw.report(); n > 0 {
		t.Logf("XSI events handed to the gateway after a later one of their subscription: %d, first:\n\t%s", n, firstN(first, 5))
	}
	h.closePhones()
	if err := st.Close(); err != nil {
		t.Logf("stack close: %v", err)
	}
	closed = true
	return h.violations
}

func monitorConns(ms []*monitor) []*ctiConn {
	var out []*ctiConn
	for _, m := range ms {
		out = append(out, m.cc)
	}
	return out
}

func lastN(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// summarize logs what the requests got.
func summarize(t *testing.T, agents []*agentRun) {
	counts := map[string]int{}
	for _, a := range agents {
		for _, op := range a.ops {
			counts[op[strings.LastIndexByte(op, ':')+1:]]++
		}
	}
	t.Logf("requests: %d ok, %d CSTA errors, %d lost with their connection", counts["ok"], counts["err"], counts["lost"])
}

// goroutineSlack is how many more goroutines than before the stack may
// remain (runtime and testing helpers that come and go).
const goroutineSlack = 3

// heapSlack is how much the live heap may have grown once the stack is
// closed and collected.
const heapSlack = 32 << 20

func checkLeaks(t *testing.T, baseG int, baseHeap uint64) []string {
	var bad []string
	var n int
	deadline := time.Now().Add(20 * time.Second)
	defer sweepClosedPhones(true)
	for {
		sweepClosedPhones(false)
		runtime.GC()
		n = runtime.NumGoroutine()
		if n <= baseG+goroutineSlack || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n > baseG+goroutineSlack {
		var sb strings.Builder
		// Each goroutine with the line that started it (debug 2): which
		// part left it running.
		pprof.Lookup("goroutine").WriteTo(&sb, 2)
		dump := sb.String()
		if len(dump) > 20000 {
			dump = dump[:20000] + "\n..."
		}
		bad = append(bad, fmt.Sprintf("d: %d goroutines after close, %d before:\n%s", n, baseG, dump))
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > baseHeap+heapSlack {
		bad = append(bad, fmt.Sprintf("d: live heap %d MiB after close, %d MiB before", ms.HeapAlloc>>20, baseHeap>>20))
	}
	t.Logf("goroutines %d → %d, live heap %d → %d KiB", baseG, n, baseHeap>>10, ms.HeapAlloc>>10)
	return bad
}
