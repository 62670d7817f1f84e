package gateway

import (
	"context"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Journal keeps every hoteling association (who sat at which desk when);
// cmd adapts package journal to it. Begin and End return once the record is
// durable.
type Journal interface {
	Begin(ctx context.Context, a Association) error
	End(ctx context.Context, agentUserID string, at time.Time, reason, detail string) error
}

// Association is one agent at one hot desk, as the journal records it.
type Association struct {
	AgentID, AgentUserID string
	DeskDeviceID         string // the desk's first configured device ID
	DeskUserID           string
	Start                time.Time
}

// Why associations end (the journal's reasons).
const (
	EndLogout = "logout" // the agent logged out (CTI or phone)
	EndForced = "forced" // a supervisor's forced logout
	EndPortal = "portal" // ended outside the connector (an operator, another system)
)

// The journal is written from the state view: every association BroadWorks
// reports, whoever made it, is recorded, in event order per agent. Writes
// run on journalShards goroutines (an agent always on the same one, so its
// records stay in order; different agents in parallel, which lets the
// journal share commits), off the event loop. A login or logout is answered
// only after its agent's records are durable (journalWriter.sync), which is
// what "written before it is acknowledged" means here.
const (
	journalShards     = 32
	journalQueue      = 512 // per shard (16,384 in all)
	journalOpDeadline = 10 * time.Second
)

type journalOp struct {
	begin  *Association
	end    bool
	agent  string // agent user ID
	at     time.Time
	reason string
	detail string
}

type journalWriter struct {
	j      Journal
	log    *slog.Logger
	queues [journalShards]chan journalOp
	wg     sync.WaitGroup
	failed atomic.Uint64 // records not written (metrics.go)

	mu      sync.Mutex
	pending map[string]int           // agent user ID → ops queued, not yet written
	idle    map[string]chan struct{} // closed when that agent's pending reaches 0
}

func newJournalWriter(j Journal, log *slog.Logger) *journalWriter {
	w := &journalWriter{j: j, log: log, pending: map[string]int{}, idle: map[string]chan struct{}{}}
	for i := range w.queues {
		w.queues[i] = make(chan journalOp, journalQueue)
		w.wg.Add(1)
		go w.run(w.queues[i])
	}
	return w
}

func shardOf(agent string) int {
	h := fnv.New32a()
	h.Write([]byte(agent))
	return int(h.Sum32() % journalShards)
}

// reserve counts op as pending for its agent (under the gateway's mu, so a
// sync that follows sees it); send then queues it, outside that lock: it
// blocks while the shard's queue is full (the journal is the slower party).
func (w *journalWriter) reserve(op journalOp) {
	w.mu.Lock()
	w.pending[op.agent]++
	if w.idle[op.agent] == nil {
		w.idle[op.agent] = make(chan struct{})
	}
	w.mu.Unlock()
}

func (w *journalWriter) send(op journalOp) { w.queues[shardOf(op.agent)] <- op }

func (w *journalWriter) run(q chan journalOp) {
	defer w.wg.Done()
	for op := range q {
		ctx, cancel := context.WithTimeout(context.Background(), journalOpDeadline)
		var err error
		if op.begin != nil {
			err = w.j.Begin(ctx, *op.begin)
		} else {
			err = w.j.End(ctx, op.agent, op.at, op.reason, op.detail)
		}
		cancel()
		if err != nil {
			w.failed.Add(1)
			w.log.Error("gateway: association journal write failed", "agent", op.agent, "begin", op.begin != nil, "err", err)
		}
		w.mu.Lock()
		if w.pending[op.agent]--; w.pending[op.agent] == 0 {
			delete(w.pending, op.agent)
			close(w.idle[op.agent])
			delete(w.idle, op.agent)
		}
		w.mu.Unlock()
	}
}

// sync waits until every record queued for agent is written.
func (w *journalWriter) sync(ctx context.Context, agent string) error {
	w.mu.Lock()
	ch := w.idle[agent]
	w.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close drains the queues and stops the writers.
func (w *journalWriter) close() {
	for _, q := range w.queues {
		close(q)
	}
	w.wg.Wait()
}

// SetJournal starts recording hoteling associations (before the XSI
// events flow, so the snapshot's associations are recorded too). Call
// CloseJournal when done.
func (g *Gateway) SetJournal(j Journal) {
	w := newJournalWriter(j, g.log)
	g.mu.Lock()
	g.journal = w
	g.mu.Unlock()
}

// CloseJournal writes what is queued and stops recording.
func (g *Gateway) CloseJournal() {
	g.mu.Lock()
	w := g.journal
	g.journal = nil
	g.mu.Unlock()
	if w != nil {
		w.close()
	}
}

// journalLocked reserves the records of a guest's association change (mu
// held): the end of the old one (for reason) and the start of the new one.
// The caller sends them once mu is released.
func (g *Gateway) journalLocked(guest *userState, prevHost, host string, since time.Time, reason string) []journalOp {
	w := g.journal
	if w == nil || prevHost == host {
		return nil
	}
	var ops []journalOp
	if prevHost != "" {
		ops = append(ops, journalOp{end: true, agent: guest.id, at: time.Now(), reason: reason})
	}
	if host != "" {
		desk := host
		if devs := g.dir().Devices(host); len(devs) > 0 {
			desk = string(devs[0])
		}
		ops = append(ops, journalOp{agent: guest.id, begin: &Association{AgentID: g.dir().AgentID(guest.id), AgentUserID: guest.id,
			DeskDeviceID: desk, DeskUserID: host, Start: since}})
	}
	for _, op := range ops {
		w.reserve(op)
	}
	return ops
}

// EndUnseen ends agent's open journal record, with reason and detail, if
// the view knows the agent and shows it at no desk: a record the journal
// kept open across a restart or a takeover that BroadWorks no longer
// shows. (An agent the view shows at a desk needs nothing here: the view
// queued that association's record when it first saw it, and recording it
// ends whatever else the agent had open.) The check and the queueing are
// one step under the view's lock, and the end goes on the agent's writer:
// an association the view sees after the check is recorded after this
// end, as a new record, never merged into the one being closed. It
// reports whether the end was queued.
func (g *Gateway) EndUnseen(agent, reason, detail string) bool {
	g.mu.Lock()
	w, u := g.journal, g.users[agent]
	if w == nil || u == nil || !u.view().Known || u.hostUserID != "" {
		g.mu.Unlock()
		return false
	}
	op := journalOp{end: true, agent: agent, at: time.Now(), reason: reason, detail: detail}
	w.reserve(op)
	g.mu.Unlock()
	w.send(op)
	return true
}

// endingBy tells why the agent's association is about to end (our logout,
// a forced or a stale one); without it an end is BroadWorks' own
// (endReasonLocked), and the desk is released.
func (g *Gateway) endingBy(agent, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if reason == "" {
		delete(g.endReasons, agent)
		return
	}
	g.endReasons[agent] = endNote{reason: reason, at: time.Now()}
}

// journalSync waits until the agent's association records are durable;
// a failure is logged (the login or logout itself happened).
func (g *Gateway) journalSync(ctx context.Context, agent string) {
	g.mu.Lock()
	w := g.journal
	g.mu.Unlock()
	if w == nil {
		return
	}
	if err := w.sync(ctx, agent); err != nil {
		g.log.Error("gateway: association journal not written before the answer", "agent", agent, "err", err)
	}
}
