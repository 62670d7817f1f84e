package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
)

// Promises and the reconciler (DESIGN.md: "Promises are kept by one
// mechanism").
//
// A promise is what the connector last told a client about one agent: at a
// desk or at none, in an agent state (hoteling.Want), with where it came
// from. A request's answer sets it: a success sets the new one, a failure
// leaves the one before (the client was told nothing changed) and adds the
// changes the failed request may still see applied late (its doubts, for
// DoubtWindow). Cleanups decided by the connector (a stale login, a desk
// BroadWorks took back, start-up recovery) set promises too.
//
// The reconciler is level-triggered (Kubernetes controllers): woken for a
// user by its XSI events, a link recovery, a snapshot read, a doubt's end
// or a grace timer, it compares the user's promise with the view and acts
// on the difference:
//   - the view shows the promise: nothing (a doubt past its window is
//     dropped);
//   - the difference is ours (a doubt the view shows: a request given up on
//     landed late; or the promise is owed: a failed undo, a cleanup, a
//     crash): the sequencer brings BroadWorks back to the promise, under
//     its locks, with its confirmed steps (hoteling.Sequencer.Settle);
//   - else someone outside the connector changed BroadWorks (portal,
//     another application, the association limit): that becomes the
//     promise, and is reported, never fought. An association BroadWorks
//     ended frees the desk (its forwarding back, the agent signed out).
//
// Work is one de-duplicated queue of user IDs, bounded by the users with
// promises; a user is worked on by one worker at a time (woken meanwhile, it
// is looked at again after), and users in the middle of a request or a
// sequence are looked at once that has ended. A repair that fails is tried
// again with a back-off while the promise stands.

// Kinds of repair, as counted (connector_reconciler_repairs_total{kind}).
const (
	RepairLateLanding = "late-landing"      // a request given up on landed late: undone (promise set again)
	RepairOwed        = "owed"              // a half-done sequence of ours (failed undo, crash, cleanup) finished
	RepairReleased    = "association-ended" // BroadWorks ended an association: the desk released
	RepairAdopted     = "outside-change"    // a change made outside the connector taken as the promise
	RepairFailed      = "failed"            // a repair that failed (tried again later)
)

var repairKinds = []string{RepairLateLanding, RepairOwed, RepairReleased, RepairAdopted, RepairFailed}

// Promise origins.
const (
	OriginCTI        = "cti"
	OriginPhone      = "phone"
	OriginAdmin      = "admin"
	OriginStaleLogin = "stale-login"
	OriginRecovery   = "recovery"
	OriginBroadWorks = "broadworks" // an outside change taken as the promise
	OriginTakeover   = "takeover"   // another agent's login took the desk
	OriginBaseline   = "baseline"   // as the view showed it before a request
)

// promise is one agent's, guarded by reconciler.mu.
type promise struct {
	want    hoteling.Want
	version uint64
	origin  string
	at      time.Time
	// owed: BroadWorks differs from want because of the connector (a
	// failed undo, a cleanup or recovery it decided): any difference is
	// repaired, not adopted, until the view shows want.
	owed   bool
	doubts []doubtAt
	// tries counts failed repairs in a row; none is tried again before
	// retryAt (back-off), whatever wakes the user.
	tries   int
	retryAt time.Time
	// differsSince: since when a difference not the connector's has
	// waited to be judged (beforeAdopting), zero when none is waiting;
	// readAsked: its users were read again for it.
	differsSince time.Time
	readAsked    bool
	// stored: saved in Deps.Promises (it had work left when last saved).
	stored bool
}

// hasWork: the promise is still the reconciler's to keep — owed, or with
// doubts that may land.
func (p *promise) hasWork() bool { return p != nil && (p.owed || len(p.doubts) > 0) }

// storedPromise is a promise as Deps.Promises keeps it.
type storedPromise struct {
	Want   hoteling.Want
	Origin string
}

type doubtAt struct {
	d     hoteling.Doubt
	until time.Time
}

// maxDoubts bounds the doubts kept per user (only whether one of them
// shows in the view matters).
const maxDoubts = 8

// Repair is one difference the reconciler acted on.
type Repair struct {
	User    string
	Kind    string // RepairLateLanding, RepairOwed, …
	Found   string // what BroadWorks showed
	Promise string // what was promised (after an adoption: the new promise)
	At      time.Time
	Err     error
}

// maxRepairLog bounds the recent repairs kept for Repairs.
const maxRepairLog = 256

// reconcileWorkers work the queue at once: a repair waits on XSI round
// trips, and one slow repair must not hold up every other.
const reconcileWorkers = 4

// busyRetry: a user in the middle of a request or a sequence is looked at
// again this long after.
const busyRetry = 200 * time.Millisecond

type reconciler struct {
	g *Gateway

	mu       sync.Mutex
	promises map[string]*promise
	version  uint64
	queue    []string
	queued   map[string]bool
	active   map[string]bool
	dirty    map[string]bool // woken while active
	// quieting: users whose difference waits for their events to be quiet
	// (untilQuiet) before it is judged; Settle waits for them too.
	quieting map[string]bool
	// watchers: for a desk, the agents whose promise or doubts name it
	// (at it, left it, a change of it given up on): the desk's events
	// wake them, and while they have work left it stays loaded.
	watchers map[string]map[string]bool
	kick     chan struct{} // one pending: work in the queue
	idle     *sync.Cond    // broadcast when the queue empties and nothing is active
	repairs  []Repair
	workers  int // running (Run); none: Settle has nothing to wait for
	// saves orders each user's saves of its promise (intend, persist):
	// the last save of a user writes its latest state. Different users'
	// saves go on side by side, so that the store's group commit shares
	// one disk sync between them.
	saves saveOrder

	counts map[string]*atomic.Uint64
}

func newReconciler(g *Gateway) *reconciler {
	r := &reconciler{g: g, promises: map[string]*promise{}, queued: map[string]bool{},
		active: map[string]bool{}, dirty: map[string]bool{}, quieting: map[string]bool{}, watchers: map[string]map[string]bool{},
		kick:   make(chan struct{}, 1),
		counts: map[string]*atomic.Uint64{}}
	r.idle = sync.NewCond(&r.mu)
	for _, k := range repairKinds {
		r.counts[k] = new(atomic.Uint64)
	}
	return r
}

// ---- promises ----

// baseline records, for each user without a promise, the view as its
// promise, before a request may change it (a failure then promises "as
// before"). A desk shape the view shows whole is promised whole; else only
// the association (Loose).
func (g *Gateway) baseline(users ...string) {
	hot := g.hoteling()
	for _, id := range users {
		if id == "" {
			continue
		}
		g.rec.mu.Lock()
		_, has := g.rec.promises[id]
		g.rec.mu.Unlock()
		if has {
			continue
		}
		v := g.User(id)
		w := hoteling.Want{Guest: id, Host: v.HostUserID, ACD: v.ACDState, Code: v.UnavailableCode}
		if w.Host != "" && (hot == nil || !hot.Satisfied(w)) {
			w.Loose = true
		}
		g.rec.mu.Lock()
		if _, has := g.rec.promises[id]; !has {
			g.rec.setLocked(id, w, OriginBaseline, false)
		}
		g.rec.mu.Unlock()
	}
}

// setLocked replaces user's promise (r.mu held); its doubts stay.
func (r *reconciler) setLocked(user string, w hoteling.Want, origin string, owed bool) *promise {
	p := r.promises[user]
	if p == nil {
		p = &promise{}
		r.promises[user] = p
	}
	r.version++
	w.Guest = user
	old := p.want
	p.want, p.version, p.origin, p.at, p.owed, p.tries, p.retryAt = w, r.version, origin, time.Now(), owed, 0, time.Time{}
	p.differsSince, p.readAsked = time.Time{}, false
	r.rewatchLocked(user, old.Host, old.LeftHost, w.Host, w.LeftHost)
	return p
}

// involvesLocked: agent's promise or doubts name desk.
func (r *reconciler) involvesLocked(agent, desk string) bool {
	p := r.promises[agent]
	return p != nil && desk != agent && (p.want.Host == desk || p.want.LeftHost == desk ||
		slices.ContainsFunc(p.doubts, func(d doubtAt) bool { return d.d.User == desk }))
}

// rewatchLocked makes agent a watcher of each desk exactly while its
// promise or doubts name it.
func (r *reconciler) rewatchLocked(agent string, desks ...string) {
	for _, desk := range desks {
		if desk == "" {
			continue
		}
		ws := r.watchers[desk]
		if r.involvesLocked(agent, desk) {
			if ws == nil {
				ws = map[string]bool{}
				r.watchers[desk] = ws
			}
			ws[agent] = true
		} else if ws[agent] {
			delete(ws, agent)
			if len(ws) == 0 {
				delete(r.watchers, desk)
			}
		}
	}
}

// promise sets user's promise after a successful request (or a decision of
// the connector's own, owed) and wakes the reconciler for it.
func (g *Gateway) promise(user string, w hoteling.Want, origin string, owed bool) {
	g.rec.mu.Lock()
	g.rec.setLocked(user, w, origin, owed)
	g.rec.mu.Unlock()
	g.persist(user)
	g.rec.wake(user)
}

// promiseLogin makes a successful hot-desk login the promise. One that sent
// no agent state (left.ACD "": the agent already sat there signed in) keeps
// the agent state the agent was promised at that desk, owed if it was: the
// client was told nothing new about it, and a difference the view shows is
// still the reconciler's to judge. Without such a promise, the view's.
func (g *Gateway) promiseLogin(user string, left hoteling.Want, origin string) {
	owed := false
	if left.ACD == "" {
		g.rec.mu.Lock()
		if p := g.rec.promises[user]; p != nil && p.want.Host == left.Host && p.want.ACD != "" && p.want.ACD != xsi.ACDSignOut {
			left.ACD, left.Code, owed = p.want.ACD, p.want.Code, p.owed
		}
		g.rec.mu.Unlock()
	}
	if left.ACD == "" {
		v := g.User(user)
		left.ACD, left.Code = v.ACDState, v.UnavailableCode
	}
	g.promise(user, left, origin, owed)
}

// promiseAgentState changes only the agent state of user's promise (a
// successful agent-state request on the user's own device).
func (g *Gateway) promiseAgentState(user string, state xsi.ACDState, code string, origin string) {
	g.baseline(user)
	g.rec.mu.Lock()
	p := g.rec.promises[user]
	w := p.want
	w.ACD, w.Code = state, code
	if state == xsi.ACDSignOut {
		// Signed out is logged off: at no desk (a promise "at a desk,
		// signed out" is no shape a login or logout leaves, and Settle
		// could never reach it).
		w = hoteling.Want{ACD: xsi.ACDSignOut, LeftHost: w.LeftHost, LeftCFA: w.LeftCFA, ForwardTo: w.ForwardTo}
	}
	g.rec.setLocked(user, w, origin, p.owed)
	g.rec.mu.Unlock()
	g.persist(user)
	g.rec.wake(user)
}

// doubt records changes a failed request may still see applied, and looks
// at the user again when they can no longer land. A doubt on a user with
// no promise of its own (a desk) is kept with owner's (the agent whose
// sequence it was): a desk's forwarding landing late is the agent's to
// undo, not an outside change to adopt.
func (g *Gateway) doubt(owner string, ds ...hoteling.Doubt) {
	if len(ds) == 0 {
		return
	}
	until := time.Now().Add(g.doubtWindow())
	r := g.rec
	r.mu.Lock()
	users := map[string]bool{}
	for _, d := range ds {
		user := d.User
		p := r.promises[user]
		if p == nil {
			user, p = owner, r.promises[owner]
		}
		if p == nil {
			continue // no promise to keep
		}
		dropped := []string{d.User}
		p.doubts = append(p.doubts, doubtAt{d: d, until: until})
		if len(p.doubts) > maxDoubts {
			for _, old := range p.doubts[:len(p.doubts)-maxDoubts] {
				dropped = append(dropped, old.d.User)
			}
			p.doubts = p.doubts[len(p.doubts)-maxDoubts:]
		}
		r.rewatchLocked(user, dropped...)
		users[user] = true
	}
	r.mu.Unlock()
	for u := range users {
		g.persist(u)
		r.after(time.Until(until), u)
	}
}

// doubtAgentState is doubt for a single agent-state request given up on.
func (g *Gateway) doubtAgentState(user string, state xsi.ACDState, code string) {
	g.doubt(user, hoteling.Doubt{User: user, Step: "agent-state", Shows: func(u hoteling.User) bool {
		return hoteling.ACDShows(u, state, code)
	}})
}

// owe marks users' promises owed: a sequence of ours left BroadWorks
// differing from them (its undo failed).
func (g *Gateway) owe(users ...string) {
	r := g.rec
	r.mu.Lock()
	for _, u := range users {
		if p := r.promises[u]; p != nil {
			p.owed = true
		}
	}
	r.mu.Unlock()
	for _, u := range users {
		g.persist(u)
	}
	r.wake(users...)
}

// failed records what a failed hot-desk sequence left: its doubts, and,
// when it sent BroadWorks anything, the promises of users owed. Its undo
// puts each user back as the view showed it, and the view may lag
// BroadWorks (events held up by an XSP failover, say): an undo may restore
// an agent state or a desk's forwarding older than the promise, and that
// difference is the connector's to repair, not an outside change to adopt.
// Owed promises the view already shows are cleared at the next look.
func (g *Gateway) failed(err error, users ...string) {
	var se *hoteling.StepError
	if !errors.As(err, &se) {
		return
	}
	g.doubt(se.Guest, se.Doubts...)
	if se.Undo != nil || se.Sent {
		g.owe(users...)
	}
}

// recoveryWant is what hoteling.recover_mode makes of a hot-desk sequence
// of guest at host a crash cut off: undo, at no desk (signed out); complete,
// at host.
func (g *Gateway) recoveryWant(guest, host, forwardTo string) hoteling.Want {
	if g.cfg().RecoverMode == hoteling.RecoverComplete && host != "" {
		return hoteling.Want{Guest: guest, Host: host, ForwardTo: forwardTo, ACD: xsi.ACDUnavailable}
	}
	return hoteling.Want{Guest: guest, ACD: xsi.ACDSignOut}
}

// intend saves, before a hot-desk sequence of guest at host runs, what
// start-up recovery makes of it (recoveryWant): a crash in the middle leaves
// the next connector that promise, owed, whatever shape the sequence or its
// undo had reached (BroadWorks alone cannot tell a half-done sequence of
// ours from someone's choice, nor an undo that got half through). Once the
// sequence has ended, persist saves the promise it leaves instead (or
// deletes the record), before the answer goes out.
func (g *Gateway) intend(guest, host, forwardTo string) {
	ps := g.deps.Promises
	if ps == nil {
		return
	}
	value, _ := json.Marshal(storedPromise{Want: g.recoveryWant(guest, host, forwardTo), Origin: OriginRecovery})
	r := g.rec
	defer r.saves.lock(guest)()
	if err := ps.SavePromise(guest, value); err != nil {
		g.log.Error("reconciler: keeping a sequence's intent in the store failed", "user", guest, "err", err)
		return
	}
	r.mu.Lock()
	if p := r.promises[guest]; p != nil {
		p.stored = true // persist rewrites or deletes it
	}
	r.mu.Unlock()
}

// requestFate is which answer a client got for one request, as its
// promise must follow it. The front end may give up on a request
// (csta.limits.request_timeout) and answer "not done" while its work goes
// on: then the promises from before the request stand, owed whatever the
// work ends in, and saved before that answer goes out (a crash right after
// it leaves them to the next connector). Once the request has settled on
// its own answer (commit), the front end waits for it instead.
type requestFate struct {
	mu                  sync.Mutex
	timedOut, committed bool
}

// fateOf registers users' request's fate with the front end (none for a
// request that is not a client's: it always commits).
func (g *Gateway) fateOf(ctx context.Context, users ...string) *requestFate {
	f := &requestFate{}
	csta.OnTimeout(ctx, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.committed {
			return false
		}
		f.timedOut = true
		g.owe(users...)
		return true
	})
	return f
}

// commit reports whether the request may make its success the promise;
// false: the client was answered "not done".
func (f *requestFate) commit() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.timedOut {
		f.committed = true
	}
	return f.committed
}

// maxDoubtHold bounds how long past its window a doubt is held (an XSP that
// stays down must not keep every doubt for ever).
const maxDoubtHold = time.Minute

// doubtsHeld: doubts past their window are kept while some XSP of the link
// is down or users whose events may be lost are being read again, and for
// a whole window more once neither holds. The window counts on events
// arriving: an XSP dying with events of a request given up on still to
// deliver holds them up for as long as it is down (in the long
// xsp-primary-killed 20 s), and once it is back its users' events come,
// or they are read again, only seconds later — up to 40 s later in one
// run, the scope's sequence gaps having users read again over and over;
// the request's late landing, seen after its doubt had ended, was taken
// for an outside change.
func (g *Gateway) doubtsHeld(now time.Time) bool {
	window := g.doubtWindow()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.linkPartial || g.rereading || now.Before(g.viewWholeSince.Add(window))
}

func (g *Gateway) doubtWindow() time.Duration {
	if d := g.cfg().DoubtWindow; d > 0 {
		return d
	}
	return 2 * g.staleLogoutTimeout()
}

// persist saves user's promise while the reconciler has work on it (owed,
// or doubts), and deletes it once it has none: a crash in between leaves
// it to the next connector, owed (Recover).
func (g *Gateway) persist(user string) {
	ps := g.deps.Promises
	if ps == nil {
		return
	}
	r := g.rec
	defer r.saves.lock(user)()
	r.mu.Lock()
	p := r.promises[user]
	keep := p.hasWork()
	if p == nil || keep == p.stored && !keep {
		r.mu.Unlock()
		return
	}
	value, _ := json.Marshal(storedPromise{Want: p.want, Origin: p.origin})
	p.stored = keep
	r.mu.Unlock()
	var err error
	if keep {
		err = ps.SavePromise(user, value)
	} else {
		err = ps.DeletePromise(user)
	}
	if err != nil {
		g.log.Error("reconciler: keeping a promise in the store failed", "user", user, "err", err)
	}
}

// saveOrder is a lock per user, held while one save of the user's promise
// goes to the store; a user's entry lives while someone holds or waits
// for it.
type saveOrder struct {
	mu    sync.Mutex
	users map[string]*userSave
}

type userSave struct {
	mu    sync.Mutex
	users int // holding or waiting
}

// lock takes user's save lock; the returned func releases it.
func (o *saveOrder) lock(user string) (unlock func()) {
	o.mu.Lock()
	if o.users == nil {
		o.users = map[string]*userSave{}
	}
	s := o.users[user]
	if s == nil {
		s = &userSave{}
		o.users[user] = s
	}
	s.users++
	o.mu.Unlock()
	s.mu.Lock()
	return func() {
		s.mu.Unlock()
		o.mu.Lock()
		if s.users--; s.users == 0 {
			delete(o.users, user)
		}
		o.mu.Unlock()
	}
}

// loadPromises takes the promises a connector before this one left with
// work on them, owed (they differ because of it); a user already promised
// something since the start keeps that.
func (g *Gateway) loadPromises() int {
	ps := g.deps.Promises
	if ps == nil {
		return 0
	}
	all, err := ps.LoadPromises()
	if err != nil {
		g.log.Error("reconciler: reading the promises left in the store failed", "err", err)
		return 0
	}
	n := 0
	for user, value := range all {
		var sp storedPromise
		if err := json.Unmarshal(value, &sp); err != nil {
			g.log.Error("reconciler: a promise in the store cannot be read; dropped", "user", user, "err", err)
			_ = ps.DeletePromise(user)
			continue
		}
		g.rec.mu.Lock()
		if g.rec.promises[user] == nil {
			g.rec.setLocked(user, sp.Want, sp.Origin, true).stored = true
			n++
		}
		g.rec.mu.Unlock()
	}
	return n
}

// Promise is the promise of an agent (its want and origin), for tests and
// the operators' view; false when none.
func (g *Gateway) Promise(user string) (hoteling.Want, string, bool) {
	g.rec.mu.Lock()
	defer g.rec.mu.Unlock()
	if p := g.rec.promises[user]; p != nil {
		return p.want, p.origin, true
	}
	return hoteling.Want{}, "", false
}

// keeps: a promise still to be kept (owed, or doubts) keeps its user
// loaded (users.go heldLocked), and the desks it names; r.mu is taken
// under Gateway.mu.
func (r *reconciler) keeps(user string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for agent := range r.watchers[user] {
		if r.promises[agent].hasWork() {
			return true
		}
	}
	return r.promises[user].hasWork() || r.active[user] || r.queued[user] || r.quieting[user]
}

// forget drops user's promise (the user leaves memory).
func (r *reconciler) forget(user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.promises[user]; p != nil && !p.hasWork() {
		delete(r.promises, user)
		r.rewatchLocked(user, p.want.Host, p.want.LeftHost)
	}
}

// ---- the queue ----

// wake queues users that have promises, and the agents watching them.
func (r *reconciler) wake(users ...string) {
	r.mu.Lock()
	n := 0
	for _, u := range users {
		for agent := range r.watchers[u] {
			if r.enqueueLocked(agent) {
				n++
			}
		}
		if u == "" || r.promises[u] == nil {
			delete(r.quieting, u) // nothing to judge (Settle waits no more)
			continue
		}
		if r.enqueueLocked(u) {
			n++
		}
	}
	r.mu.Unlock()
	if n > 0 {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// wakeAll queues every user with a promise (a link recovery).
func (r *reconciler) wakeAll() {
	r.mu.Lock()
	for u := range r.promises {
		r.enqueueLocked(u)
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *reconciler) enqueueLocked(u string) bool {
	if r.active[u] {
		r.dirty[u] = true
		return false
	}
	if r.queued[u] {
		return false
	}
	r.queued[u] = true
	r.queue = append(r.queue, u)
	return true
}

// after wakes user d from now (a doubt's end, a back-off); a wake-up
// after Run has ended finds no worker, and does nothing.
func (r *reconciler) after(d time.Duration, user string) {
	time.AfterFunc(d, func() { r.wake(user) })
}

// next takes a user off the queue; false when ctx ended.
func (r *reconciler) next(ctx context.Context) (string, bool) {
	for {
		r.mu.Lock()
		if len(r.queue) > 0 {
			u := r.queue[0]
			r.queue[0] = ""
			r.queue = r.queue[1:]
			delete(r.queued, u)
			delete(r.quieting, u)
			r.active[u] = true
			more := len(r.queue) > 0
			r.mu.Unlock()
			if more { // another worker may take the rest
				select {
				case r.kick <- struct{}{}:
				default:
				}
			}
			return u, true
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-r.kick:
		}
	}
}

// done ends the work on u; woken meanwhile, it is queued again.
func (r *reconciler) done(u string, retry time.Duration) {
	r.mu.Lock()
	delete(r.active, u)
	if r.dirty[u] {
		delete(r.dirty, u)
		r.enqueueLocked(u)
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	if retry > 0 {
		defer r.after(retry, u)
	}
	if len(r.queue) == 0 && len(r.active) == 0 {
		r.idle.Broadcast()
	}
	r.mu.Unlock()
}

// Settle waits until the reconciler has nothing queued, nothing in hand
// and no difference waiting for events to be quiet (tests: instead of
// sleeping), or ctx ends.
func (g *Gateway) Settle(ctx context.Context) error {
	r := g.rec
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.idle.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.workers > 0 && (len(r.queue) > 0 || len(r.active) > 0 || len(r.quieting) > 0) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.idle.Wait()
	}
	return nil
}

// Repairs are the recent repairs, oldest first (at most 256).
func (g *Gateway) Repairs() []Repair {
	g.rec.mu.Lock()
	defer g.rec.mu.Unlock()
	return slices.Clone(g.rec.repairs)
}

// RepairCounts are the repairs so far by kind.
func (g *Gateway) RepairCounts() map[string]uint64 {
	out := make(map[string]uint64, len(g.rec.counts))
	for k, c := range g.rec.counts {
		out[k] = c.Load()
	}
	return out
}

func (r *reconciler) record(rp Repair) {
	r.counts[rp.Kind].Add(1)
	if rp.Err != nil && rp.Kind != RepairFailed {
		r.counts[RepairFailed].Add(1)
	}
	r.mu.Lock()
	r.repairs = append(r.repairs, rp)
	if len(r.repairs) > maxRepairLog {
		r.repairs = slices.Delete(r.repairs, 0, len(r.repairs)-maxRepairLog)
	}
	r.mu.Unlock()
}

// ---- the work ----

// runReconciler runs the workers until ctx ends.
func (g *Gateway) runReconciler(ctx context.Context, bg *sync.WaitGroup) {
	g.rec.mu.Lock()
	g.rec.workers += reconcileWorkers
	g.rec.mu.Unlock()
	for range reconcileWorkers {
		bg.Go(func() {
			defer func() {
				g.rec.mu.Lock()
				g.rec.workers--
				g.rec.idle.Broadcast()
				g.rec.mu.Unlock()
			}()
			for {
				u, ok := g.rec.next(ctx)
				if !ok {
					return
				}
				retry := g.reconcile(ctx, u)
				g.rec.done(u, retry)
			}
		})
	}
}

// backoff is how long after a failed repair the user is looked at again.
func backoff(tries int) time.Duration {
	d := 500 * time.Millisecond << min(tries, 6)
	return min(d, 30*time.Second)
}

// reconcile compares user's promise with the view and acts on the
// difference; it returns when to look again (0: when woken).
func (g *Gateway) reconcile(ctx context.Context, user string) time.Duration {
	r := g.rec
	// Gateway.mu before reconciler.mu (locksordering.txt): read first.
	held := g.doubtsHeld(time.Now())
	r.mu.Lock()
	p := r.promises[user]
	if p == nil {
		r.mu.Unlock()
		return 0
	}
	want, version, owed, tries := p.want, p.version, p.owed, p.tries
	origin, promisedAt := p.origin, p.at
	now := time.Now()
	if tries > 0 && now.Before(p.retryAt) {
		r.mu.Unlock()
		return time.Until(p.retryAt) // backing off
	}
	var ended []string
	p.doubts = slices.DeleteFunc(p.doubts, func(d doubtAt) bool {
		if !now.Before(d.until) && (!held || !now.Before(d.until.Add(maxDoubtHold))) {
			ended = append(ended, d.d.User)
			return true
		}
		return false
	})
	r.rewatchLocked(user, ended...)
	doubts := slices.Clone(p.doubts)
	r.mu.Unlock()

	hot := g.hoteling()
	if hot == nil || !g.LinkUp() {
		return 0 // a link recovery wakes every user
	}
	v := g.User(user)
	involved := []string{user, want.Host, v.HostUserID, want.LeftHost}
	for _, d := range doubts {
		involved = append(involved, d.d.User)
	}
	involved = slices.Compact(slices.Sorted(slices.Values(involved)))
	if involved[0] == "" {
		involved = involved[1:]
	}
	for _, id := range involved {
		if !g.freshEnough(id) {
			if g.cfg().LoadUsers {
				g.mu.Lock()
				if u := g.users[id]; u != nil {
					g.loadSoonLocked(u)
				}
				g.mu.Unlock()
			}
			return busyRetry * 5 // read meanwhile; its snapshot wakes the user too
		}
		if g.inFlight(id) {
			return 0 // the request's end wakes the user (hold)
		}
		if hot.Busy(id) {
			return busyRetry
		}
	}
	if hot.Satisfied(want) {
		var wentBack time.Duration // how long a view that went back differed
		r.mu.Lock()
		if p := r.promises[user]; p != nil && p.version == version {
			if p.readAsked && !p.differsSince.IsZero() {
				wentBack = time.Since(p.differsSince)
			}
			p.differsSince, p.readAsked = time.Time{}, false
		}
		r.mu.Unlock()
		if wentBack > 0 {
			// Rare, and worth knowing: the events had left the view
			// showing what BroadWorks no longer had.
			g.log.Info("reconciler: BroadWorks, read again, shows the promise; the view built from events differed",
				"user", user, "for", wentBack.Round(time.Millisecond))
		}
		// An owed promise the view shows is kept — unless a change of ours
		// given up on may still show (a doubt): the view may lag, and that
		// change landing, or its event arriving, makes the difference ours
		// again. The doubt's end wakes the user.
		if owed && !slices.ContainsFunc(doubts, func(d doubtAt) bool { return !d.d.Shows(g.User(d.d.User)) }) {
			r.mu.Lock()
			if p := r.promises[user]; p != nil && p.version == version {
				p.owed = false
			}
			r.mu.Unlock()
		}
		g.persist(user) // kept: nothing left to keep across a crash
		return 0
	}
	kind := ""
	switch {
	case owed:
		kind = RepairOwed
	case slices.ContainsFunc(doubts, func(d doubtAt) bool { return d.d.Shows(g.User(d.d.User)) }):
		kind = RepairLateLanding
	}
	// A request that started after the look above may be what the view
	// shows: its end (which makes its promise first) wakes the user again.
	for _, id := range involved {
		if g.inFlight(id) {
			return 0
		}
		if hot.Busy(id) {
			return busyRetry
		}
	}
	found := describe(v)
	if kind == "" {
		// Changed outside the connector: taken as the promise — once
		// BroadWorks itself has said so (beforeAdopting).
		if wait := g.beforeAdopting(user, version, involved); wait > 0 {
			return wait
		}
		adopted := hoteling.Want{Guest: user, Host: v.HostUserID, Loose: v.HostUserID != "", ACD: v.ACDState, Code: v.UnavailableCode}
		if v.HostUserID == "" && want.Host == "" {
			// At no desk still: the desk it left stays its to put back.
			adopted.LeftHost, adopted.LeftCFA, adopted.ForwardTo = want.LeftHost, want.LeftCFA, want.ForwardTo
		}
		if onlyACD := want; want.Host != "" && !want.Loose {
			onlyACD.ACD, onlyACD.Code = "", ""
			if hot.Satisfied(onlyACD) {
				// Only the agent state changed (BroadWorks' ACD after a
				// call, a supervisor): the agent still sits at its desk
				// as promised, whole.
				adopted = want
				adopted.ACD, adopted.Code = v.ACDState, v.UnavailableCode
			}
		}
		if v.HostUserID == "" && want.Host != "" {
			// BroadWorks ended the association (its limit, the portal):
			// the desk is freed, the agent signed out, as at a logout.
			adopted = hoteling.Want{Guest: user, LeftHost: want.Host, ForwardTo: want.ForwardTo, ACD: xsi.ACDSignOut}
			kind = RepairReleased
		} else if v.HostUserID == want.Host && want.Host == "" && hoteling.ACDShows(v, want.ACD, want.Code) {
			// Only a desk left behind differs: ours (no one else sets a
			// desk to forward to a guest the connector remembers).
			kind = RepairOwed
			adopted = want
		}
		if kind == "" {
			r.mu.Lock()
			p := r.promises[user]
			current := p != nil && p.version == version
			if current {
				r.setLocked(user, adopted, OriginBroadWorks, false)
			}
			r.mu.Unlock()
			if !current {
				return 0 // a request set a newer promise meanwhile: nothing to take
			}
			rp := Repair{User: user, Kind: RepairAdopted, Found: found, Promise: describeWant(adopted), At: time.Now()}
			r.record(rp)
			g.persist(user)
			g.log.Info("reconciler: BroadWorks changed outside the connector; taken as the promise",
				"user", user, "found", found, "was_promised", describeWant(want), "by", origin,
				"promised_ago", time.Since(promisedAt).Round(time.Millisecond))
			return 0
		}
		r.mu.Lock()
		if p := r.promises[user]; p == nil || p.version != version {
			r.mu.Unlock()
			return 0 // a request set a new promise meanwhile: look again
		}
		p = r.setLocked(user, adopted, OriginBroadWorks, true)
		version = p.version
		r.mu.Unlock()
		g.persist(user)
		want = adopted
		if kind == RepairReleased {
			g.log.Warn("reconciler: BroadWorks ended a hot-desk association; releasing the desk",
				"agent", g.dir().AgentID(user), "guest", user, "host", want.LeftHost)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, g.repairTimeout())
	acted, err := hot.Settle(sctx, want, func() bool { return r.current(user, version) })
	cancel()
	if acted {
		r.mu.Lock()
		raced := false
		if p := r.promises[user]; p != nil && p.version != version {
			// A request made a newer promise while the repair ran (an
			// agent-state request takes no sequencer lock): the repair may
			// have overwritten it, so any difference now is ours.
			p.owed, raced = true, true
		}
		r.mu.Unlock()
		if raced {
			g.persist(user)
		}
	}
	if err != nil {
		var se *hoteling.StepError
		if errors.As(err, &se) {
			g.doubt(user, se.Doubts...) // the repair's own steps given up on
		}
	}
	rp := Repair{User: user, Kind: kind, Found: found, Promise: describeWant(want), At: time.Now(), Err: err}
	if !acted && err == nil {
		return 0 // settled meanwhile
	}
	r.record(rp)
	if err != nil {
		r.mu.Lock()
		if p := r.promises[user]; p != nil && p.version == version {
			p.tries++
			tries = p.tries
			p.retryAt = time.Now().Add(backoff(tries))
		}
		r.mu.Unlock()
		g.log.Warn("reconciler: repair failed; trying again", "user", user, "kind", kind, "found", found,
			"promise", rp.Promise, "tries", tries, "err", err)
		return backoff(tries)
	}
	g.log.Info("reconciler: repaired", "user", user, "kind", kind, "found", found, "promise", rp.Promise)
	return 0
}

// adoptQuiet is how long the events about a user must have been quiet
// before a difference from its promise is taken for an outside change;
// maxQuietWait how long a difference waits to be judged at most (a user
// whose events never stop for adoptQuiet, reads that keep failing).
const (
	adoptQuiet   = time.Second
	maxQuietWait = 30 * time.Second
)

// beforeAdopting is how long user's difference from its promise (at
// version), not the connector's, waits before it is taken for an outside
// change; 0 to judge it now. Two things must hold first:
//   - the events about the involved users have been quiet for adoptQuiet.
//     Events may come late and in a burst (a channel lost, redelivered on
//     another): the view then passes through older states on its way to
//     the last, and one of those is no change of anyone's;
//   - each involved user's view has been read from BroadWorks since the
//     difference was first seen (with BroadWorks as the directory). The
//     view is built from events, and an event can come after a newer read
//     (a scope's re-read after lost events, the late event on the slower
//     channel of the set) and take the view back to a state of ours long
//     replaced. In the long fault campaign (expiry-under-load) an agent's
//     Ready was answered 200 and 2 s later its view showed the Not Ready
//     before it, and that was adopted (the logs did not show which event
//     took the view back). BroadWorks, read, says which it is.
//
// A difference waits at most maxQuietWait, then is judged as it is.
func (g *Gateway) beforeAdopting(user string, version uint64, involved []string) time.Duration {
	r := g.rec
	r.mu.Lock()
	p := r.promises[user]
	if p == nil || p.version != version {
		r.mu.Unlock()
		return 0 // a newer promise: the caller finds it
	}
	if p.differsSince.IsZero() {
		p.differsSince = time.Now()
	}
	since := p.differsSince
	r.mu.Unlock()
	if time.Since(since) >= maxQuietWait {
		return 0
	}
	wait, reading := g.untilQuiet(involved), false
	if wait == 0 {
		wait = g.readSince(since, involved)
		reading = wait > 0
	}
	if wait > 0 {
		r.mu.Lock()
		if p := r.promises[user]; p != nil && p.version == version {
			r.quieting[user] = true // Settle waits for the judgement
			p.readAsked = p.readAsked || reading
		}
		r.mu.Unlock()
	}
	return wait
}

// readSince starts reading again each of users whose view has not been
// read from BroadWorks after t (userState.readAt), and says how long to wait
// for the reads (their ends wake the reconciler); 0 when every one has
// been, or nothing can be read (no Config.LoadUsers).
func (g *Gateway) readSince(t time.Time, users []string) time.Duration {
	if !g.cfg().LoadUsers {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var wait time.Duration
	for _, id := range users {
		u := g.users[id]
		if u == nil || u.readAt.After(t) {
			continue
		}
		if u.loading == nil && !g.closed {
			g.startLoadLocked(u)
		}
		wait = busyRetry * 5 // or sooner: the read's end wakes the user
	}
	return wait
}

// untilQuiet is how long until the events about users have been quiet for
// adoptQuiet (0: they have).
func (g *Gateway) untilQuiet(users []string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var wait time.Duration
	for _, id := range users {
		if u := g.users[id]; u != nil {
			wait = max(wait, adoptQuiet-time.Since(u.heard))
		}
	}
	return wait
}

// freshEnough: the user's view can be compared with a promise. Without
// LoadUsers a user no event has told anything of (a desk seen only as a
// guest's host) has nothing to be stale.
func (g *Gateway) freshEnough(id string) bool {
	if g.Fresh(id) {
		return true
	}
	if g.cfg().LoadUsers {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.users[id]
	return g.linkUp && (u == nil || !u.known)
}

// current: user's promise is still at version.
func (r *reconciler) current(user string, version uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.promises[user]
	return p != nil && p.version == version
}

// repairTimeout bounds one repair (every step of a login and its undo).
func (g *Gateway) repairTimeout() time.Duration { return 4 * g.staleLogoutTimeout() }

// inFlight: a request of a client is being served on the user.
func (g *Gateway) inFlight(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.users[id]
	return u != nil && u.inflight > 0
}

func describe(v hoteling.User) string {
	return describeWant(hoteling.Want{Host: v.HostUserID, Loose: true, ACD: v.ACDState, Code: v.UnavailableCode})
}

// describeWant says a promise (or, Loose, what the view shows) in a log
// line: "Unavailable/LUNCH at desk1@…", "Sign-Out at no desk".
func describeWant(w hoteling.Want) string {
	s := cmp.Or(string(w.ACD), "agent state as it is")
	if w.Code != "" {
		s += "/" + w.Code
	}
	switch {
	case w.Host == "":
		return s + " at no desk"
	case w.Loose:
		return s + " associated with " + w.Host
	}
	return s + " logged in at " + w.Host
}

// ---- start-up recovery ----

// Recover, once the link is first up, reads users (the directory's hot
// desks and agents: the view knows them from the start) and the desks the
// sequencer remembers with their guests; takes the promises a connector
// before this one left with work on them (loadPromises: a crash in the
// middle of a hot-desk sequence left what hoteling.recover_mode makes of
// it, intend); and looks at the guest of each remembered desk once their
// snapshots are in: a desk left forwarding to its guest with no one at it,
// or its subscriber still signed out by a login, is the connector's to put
// back (a store from before promises were kept). Nothing else BroadWorks
// shows is taken for the connector's: an agent forwarding to another, a
// guest a portal placed at a desk, are someone's. after runs once that
// pass has settled (the journal's reconciliation). It returns when ctx
// ends or the pass is done.
func (g *Gateway) Recover(ctx context.Context, users []string, snapshotWait time.Duration, after func()) {
	hot := g.hoteling()
	if hot == nil {
		return
	}
	sleep := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	// The link reported up (not only taken as up since New): before it,
	// reads fail and requests are refused.
	for {
		g.mu.Lock()
		up := g.linkUp && g.linkSeenUp
		g.mu.Unlock()
		if up {
			break
		}
		if !sleep(50 * time.Millisecond) {
			return
		}
	}
	desks := hot.RememberedDesks()
	if g.cfg().LoadUsers {
		users = slices.Clone(users)
		for _, r := range desks {
			users = append(users, r.GuestUserID, r.HostUserID)
		}
		lctx, cancel := context.WithTimeout(ctx, snapshotWait)
		if unknown := g.loadUsers(lctx, users); len(unknown) > 0 {
			g.log.Info("reconciler: users BroadWorks does not know are left out", "users", len(unknown))
			desks = slices.DeleteFunc(desks, func(r hoteling.Remembered) bool {
				return slices.Contains(unknown, r.GuestUserID) || slices.Contains(unknown, r.HostUserID)
			})
		}
		cancel()
	}
	g.log.Info("reconciler: start-up recovery", "promises", g.loadPromises(), "remembered_desks", len(desks))
	g.rec.wakeAll()
	deadline, wait := time.Now().Add(snapshotWait), 50*time.Millisecond
	for {
		desks = slices.DeleteFunc(desks, func(r hoteling.Remembered) bool {
			if !g.Fresh(r.GuestUserID) || !g.Fresh(r.HostUserID) {
				return false
			}
			g.baseline(r.GuestUserID) // unless promised: the reconciler judges the desk
			g.rec.wake(r.GuestUserID)
			return true
		})
		if after != nil && (len(desks) == 0 || time.Now().After(deadline)) {
			if len(desks) > 0 {
				g.log.Warn("reconciler: start-up recovery without every snapshot; the others are looked at once theirs are in",
					"remembered_desks", len(desks))
			}
			_ = g.Settle(ctx)
			if ctx.Err() == nil {
				after()
			}
			after, wait = nil, time.Second
		}
		if len(desks) == 0 || !sleep(wait) {
			return
		}
	}
}
