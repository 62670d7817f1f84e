package xsi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
)

// evSubKey is one wanted subscription: a target and one event package, or
// Package "" for a list subscription of every cfg.EventPackages (scopes).
type evSubKey struct {
	Target  Target
	Package string
}

// evSub is the state of one wanted subscription.
type evSub struct {
	key        evSubKey
	scope      *evScope      // the scope it serves; nil for a user target
	watched    bool          // added by WatchUser
	idx        int           // position in evSubs.list; -1 once removed
	id         string        // "" = not subscribed
	expires    time.Duration // granted
	refreshAt  time.Time
	refreshReq bool // refresh as soon as possible (sequence gap, adoption)
	retryAt    time.Time
	failures   int
	lastErr    error // the last subscribe failure, nil after a success (scope status)
	// lost: a scope subscription the XSP ended or forgot; its events in
	// between are gone, so its re-creation sends ScopeResync.
	lost bool
}

// evScope is one configured scope and the subscription(s) serving it.
type evScope struct {
	target     Target
	perPackage bool
	subs       []*evSub
	state      ScopeState
	reason     string
	since      time.Time
}

func (sc *evScope) status() ScopeStatus {
	mode := ScopeList
	if sc.perPackage {
		mode = ScopePerPackage
	}
	return ScopeStatus{Scope: sc.target, State: sc.state, Reason: sc.reason, Mode: mode, Since: sc.since}
}

// compute is the scope's state from its subscriptions: the worst of them,
// an error (403 before 404 before others) before pending before active.
func (sc *evScope) compute() (ScopeState, string) {
	rank := func(st ScopeState) int {
		switch st {
		case ScopeForbidden:
			return 4
		case ScopeNotFound:
			return 3
		case ScopeFailing:
			return 2
		case ScopePending:
			return 1
		}
		return 0
	}
	state, reason := ScopeActive, ""
	for _, sub := range sc.subs {
		st, r := ScopeActive, ""
		switch {
		case sub.lastErr != nil:
			st, r = scopeReason(sub.lastErr)
		case sub.id == "":
			st = ScopePending
		}
		if rank(st) > rank(state) {
			state, reason = st, r
		}
	}
	return state, reason
}

// evDelete is a subscription of ours to delete at the XSP (UnwatchUser).
type evDelete struct {
	id       string
	key      evSubKey
	attempts int
	retryAt  time.Time
}

// evDeleteAttempts bounds the DELETEs of one subscription; past it the XSP
// ends it at its expiry.
const evDeleteAttempts = 5

// evSubs keeps the wanted subscriptions in the channel set: per package for
// cfg.Targets and watched users, one list (or per package, after a 400) for
// each of cfg.Scopes. It adopts existing subscriptions once a channel is
// up, subscribes the missing ones, refreshes at half the granted expiry,
// refreshes a user target on a sequence gap (its refresh resends the full
// state), sends ScopeResync for a scope instead (a scope refresh resends
// nothing), and resubscribes on SubscriptionTerminatedEvent.
type evSubs struct {
	e    *Events
	kick chan struct{}

	mu      sync.Mutex
	list    []*evSub
	byID    map[string]*evSub
	lastSeq map[string]int64
	// scopeSeqs is the sequence tracking of scope subscriptions (scopeseq.go),
	// by subscription ID; lastSeq is the user subscriptions'.
	scopeSeqs map[string]*scopeSeq
	adopted   bool
	// resyncs counts resync calls (channel losses). A request answered
	// after one that began before it may have had its snapshot written
	// on the lost stream: apply refreshes it again (see there).
	resyncs uint64

	scopes     []*evScope
	static     map[string]bool     // user IDs of cfg.Targets
	watched    map[string][]*evSub // WatchUser's, by user ID
	maxWatched int
	deletes    map[string]*evDelete // by subscription ID, not yet sent
	deleteOf   map[evSubKey]string  // the same, by what they watch (WatchUser takes one back)
}

func newEvSubs(e *Events) *evSubs {
	s := &evSubs{e: e, kick: make(chan struct{}, 1), byID: map[string]*evSub{}, lastSeq: map[string]int64{},
		scopeSeqs: map[string]*scopeSeq{},
		static:    map[string]bool{}, watched: map[string][]*evSub{}, deletes: map[string]*evDelete{},
		deleteOf: map[evSubKey]string{}, maxWatched: e.cfg.MaxWatchedUsers}
	if s.maxWatched <= 0 {
		s.maxWatched = DefaultMaxWatchedUsers
	}
	for _, t := range e.cfg.Targets {
		if t.Kind == KindUser {
			s.static[t.ID] = true
		}
		for _, p := range e.cfg.EventPackages {
			s.addLocked(&evSub{key: evSubKey{t, p}})
		}
	}
	now := time.Now()
	for _, t := range e.cfg.Scopes {
		sc := &evScope{target: t, state: ScopePending, since: now}
		sub := &evSub{key: evSubKey{t, ""}, scope: sc}
		sc.subs = []*evSub{sub}
		s.scopes = append(s.scopes, sc)
		s.addLocked(sub)
	}
	return s
}

// addLocked appends sub to the wanted list.
func (s *evSubs) addLocked(sub *evSub) {
	sub.idx = len(s.list)
	s.list = append(s.list, sub)
}

// removeLocked takes sub off the wanted list (swapping the last one in)
// and queues the deletion of its subscription at the XSP, if it has one. A
// request in flight for it finds it removed (idx -1) when answered.
func (s *evSubs) removeLocked(sub *evSub) {
	if sub.idx < 0 {
		return
	}
	last := s.list[len(s.list)-1]
	s.list[sub.idx] = last
	last.idx = sub.idx
	s.list[len(s.list)-1] = nil
	s.list = s.list[:len(s.list)-1]
	sub.idx = -1
	if sub.id != "" {
		delete(s.byID, sub.id)
		delete(s.lastSeq, sub.id)
		delete(s.scopeSeqs, sub.id)
		s.queueDeleteLocked(&evDelete{id: sub.id, key: sub.key})
		sub.id = ""
	}
}

// watch adds the per-package subscriptions of a user (WatchUser).
func (s *evSubs) watch(userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.static[userID] || s.watched[userID] != nil {
		return nil
	}
	if len(s.watched) >= s.maxWatched {
		return fmt.Errorf("%w: %d users are watched already (the limit)", ErrTooManyWatched, len(s.watched))
	}
	t := Target{Kind: KindUser, ID: userID}
	subs := make([]*evSub, 0, len(s.e.cfg.EventPackages))
	for _, p := range s.e.cfg.EventPackages {
		sub := &evSub{key: evSubKey{t, p}, watched: true}
		// Unwatched a moment ago and its deletion not sent yet: keep that
		// subscription (refreshed at once, for the initial events).
		if id := s.deleteOf[sub.key]; id != "" {
			delete(s.deletes, id)
			delete(s.deleteOf, sub.key)
			sub.id, sub.refreshReq = id, true
			s.byID[id] = sub
		}
		subs = append(subs, sub)
		s.addLocked(sub)
	}
	s.watched[userID] = subs
	s.kickNow()
	return nil
}

// unwatch removes a watched user's subscriptions (UnwatchUser).
func (s *evSubs) unwatch(userID string) {
	s.mu.Lock()
	subs := s.watched[userID]
	delete(s.watched, userID)
	for _, sub := range subs {
		s.removeLocked(sub)
	}
	s.mu.Unlock()
	if subs != nil {
		s.kickNow()
	}
}

func (s *evSubs) kickNow() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// seqVerdict is how an event's sequence number fits its subscription's.
type seqVerdict int

const (
	seqInOrder seqVerdict = iota
	seqGap                // some events of the subscription were missed
	seqStale              // older than one already delivered (another channel of the set overtook it)
)

// observe records a sequence number and says how it fits: in order, after
// a gap, or stale (at or below the last one; its eventID is new, else it
// would have been dropped as a duplicate).
func (s *evSubs) observe(subID string, seq int64) seqVerdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.lastSeq[subID]
	switch {
	case !ok:
		s.lastSeq[subID] = seq
		return seqInOrder
	case seq == last+1 || (last == evNeverExpire && seq == 1):
		s.lastSeq[subID] = seq
		return seqInOrder
	case seq > last+1:
		s.lastSeq[subID] = seq
		return seqGap
	case last > evNeverExpire-1000 && seq < 1000: // wrapped, with a gap
		s.lastSeq[subID] = seq
		return seqGap
	}
	return seqStale
}

// scopeOf returns the scope a subscription of ours serves.
func (s *evSubs) scopeOf(subID string) (Target, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub := s.byID[subID]; sub != nil && sub.scope != nil {
		return sub.scope.target, true
	}
	return Target{}, false
}

// scopeTargets lists the configured scopes.
func (s *evSubs) scopeTargets() []Target {
	out := make([]Target, len(s.scopes)) // s.scopes never changes after newEvSubs
	for i, sc := range s.scopes {
		out[i] = sc.target
	}
	return out
}

// refreshNow asks for an immediate refresh of a subscription of ours.
func (s *evSubs) refreshNow(subID string) {
	s.mu.Lock()
	if sub := s.byID[subID]; sub != nil {
		sub.refreshReq = true
	}
	s.mu.Unlock()
	s.kickNow()
}

// resync asks for a refresh of every user-target subscription we hold, as
// soon as a channel is up (after a channel loss). Scope subscriptions are
// left alone: their refresh resends nothing (the caller sends ScopeResync,
// which also covers their open sequence holes: forgotten here).
func (s *evSubs) resync() {
	s.mu.Lock()
	s.resyncs++
	s.clearScopeHolesLocked()
	for _, sub := range s.list {
		if sub.id != "" && sub.scope == nil {
			sub.refreshReq = true
		}
	}
	s.mu.Unlock()
	s.kickNow()
}

// terminated forgets a subscription the XSP ended; it is re-created.
func (s *evSubs) terminated(subID string) {
	s.mu.Lock()
	if sub := s.byID[subID]; sub != nil {
		s.e.log.Warn("xsi: subscription terminated, resubscribing", "subscription", subID, "target", sub.key.Target.String(), "event", sub.key.Package)
		sub.id, sub.retryAt, sub.refreshReq = "", time.Time{}, false
		if sub.scope != nil {
			sub.lost = true
			s.scopeChangedLocked(sub.scope)
		}
	}
	delete(s.byID, subID)
	delete(s.lastSeq, subID)
	delete(s.scopeSeqs, subID)
	s.mu.Unlock()
	s.kickNow()
}

// scopeChangedLocked recomputes a scope's state and logs a change once
// (a 403 or 404 retried with backoff stays one line).
func (s *evSubs) scopeChangedLocked(sc *evScope) {
	state, reason := sc.compute()
	if state == sc.state && reason == sc.reason {
		return
	}
	changed := state != sc.state
	sc.state, sc.reason = state, reason
	if !changed {
		return // same state, another error text: not worth a line
	}
	sc.since = time.Now()
	attrs := []any{"scope", sc.target.String(), "state", string(state)}
	if reason != "" {
		attrs = append(attrs, "reason", reason)
	}
	switch state {
	case ScopeActive, ScopePending:
		s.e.log.Info("xsi: scope", attrs...)
	default:
		s.e.log.Warn("xsi: scope not subscribed; retrying with backoff", attrs...)
	}
}

// fallBackLocked replaces a scope's list subscription, refused with 400,
// by one subscription per package, for the life of the process.
func (s *evSubs) fallBackLocked(sc *evScope, err error) {
	if sc.perPackage {
		return
	}
	sc.perPackage = true
	for _, sub := range sc.subs {
		s.removeLocked(sub)
	}
	sc.subs = sc.subs[:0]
	for _, p := range s.e.cfg.EventPackages {
		sub := &evSub{key: evSubKey{sc.target, p}, scope: sc}
		sc.subs = append(sc.subs, sub)
		s.addLocked(sub)
	}
	s.e.log.Info("xsi: the XSP refused an event package list; subscribing the scope per package from now on",
		"scope", sc.target.String(), "packages", len(s.e.cfg.EventPackages), "err", err)
	s.scopeChangedLocked(sc)
}

// subscriptionIDs returns the current subscription IDs (tests, diagnostics).
func (s *evSubs) subscriptionIDs() map[evSubKey]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[evSubKey]string{}
	for _, sub := range s.list {
		m[sub.key] = sub.id
	}
	return m
}

type evSubOp struct {
	sub     *evSub
	id      string // "" = subscribe, else refresh this ID
	refresh bool
	resyncs uint64    // evSubs.resyncs when the op was taken
	del     *evDelete // non-nil: delete this subscription instead
}

func (s *evSubs) run(ctx context.Context) {
	e := s.e
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if e.stopping.Load() || ctx.Err() != nil {
			return
		}
		c := e.anyClient()
		next := time.Hour
		s.mu.Lock()
		work := len(s.list) > 0 || len(s.deletes) > 0
		adopted := s.adopted
		s.mu.Unlock()
		if c != nil && work {
			if !adopted {
				if err := s.adopt(ctx, c); err != nil {
					e.log.Warn("xsi: listing existing subscriptions failed; subscribing anew", "err", err)
				}
				s.mu.Lock()
				s.adopted = true
				s.mu.Unlock()
			}
			ops := s.due(time.Now())
			if !s.applyAll(ctx, c, ops) {
				return
			}
			if len(ops) > 0 {
				// One line a round; each subscription's own is at debug
				// (thousands of targets × packages at start-up).
				active := 0
				s.mu.Lock()
				for _, sub := range s.list {
					if sub.id != "" {
						active++
					}
				}
				wanted := len(s.list)
				s.mu.Unlock()
				e.log.Info("xsi: subscriptions", "active", active, "wanted", wanted, "added_refreshed_or_deleted", len(ops))
			}
			next = s.nextDue(time.Now())
		}
		// Holes of a scope subscription with no event after them: reported
		// here once past the grace (observeScope reports them otherwise).
		now := time.Now()
		for _, t := range s.expireHoles(now) {
			e.log.Warn("xsi: sequence numbers of a scope subscription missing; its users' state must be read again", "scope", t.String(), "grace", evSeqHoleGrace)
			if !e.emit(ctx, &ScopeResync{Scope: t, Reason: "sequence gap"}) {
				return
			}
		}
		s.mu.Lock()
		if d, ok := s.nextHoleDueLocked(now); ok && d < next {
			next = max(d, 0)
		}
		s.mu.Unlock()
		timer.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (s *evSubs) due(now time.Time) []evSubOp {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ops []evSubOp
	for _, sub := range s.list {
		switch {
		case sub.id == "" && !now.Before(sub.retryAt):
			ops = append(ops, evSubOp{sub: sub, resyncs: s.resyncs})
		case sub.id != "" && (sub.refreshReq || !now.Before(sub.refreshAt)) && !now.Before(sub.retryAt):
			ops = append(ops, evSubOp{sub: sub, id: sub.id, refresh: true, resyncs: s.resyncs})
		}
	}
	for id, d := range s.deletes {
		if !now.Before(d.retryAt) {
			delete(s.deletes, id) // in flight: WatchUser cannot take it back now
			if s.deleteOf[d.key] == id {
				delete(s.deleteOf, d.key)
			}
			ops = append(ops, evSubOp{del: d})
		}
	}
	return ops
}

func (s *evSubs) nextDue(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := time.Hour
	for _, sub := range s.list {
		at := sub.retryAt
		if sub.id != "" && !sub.refreshReq && sub.refreshAt.After(at) {
			at = sub.refreshAt
		}
		if d := at.Sub(now); d < next {
			next = d
		}
	}
	for _, d := range s.deletes {
		if w := d.retryAt.Sub(now); w < next {
			next = w
		}
	}
	if next < 0 {
		next = 0
	}
	return next
}

// evSubWorkers is how many subscription requests are in flight at once:
// one at a time, 660,000 subscriptions (110,000 users × 6 packages) took
// six minutes to set up.
const evSubWorkers = 8

// applyAll sends ops, evSubWorkers at a time; false when the channel set is
// stopping.
func (s *evSubs) applyAll(ctx context.Context, c *evClient, ops []evSubOp) bool {
	e := s.e
	slots := make(chan struct{}, evSubWorkers)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, op := range ops {
		if ctx.Err() != nil || e.stopping.Load() {
			return false
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			if op.del != nil {
				s.remove(ctx, c, op.del)
				return
			}
			s.apply(ctx, c, op)
		}()
	}
	return true
}

// remove deletes one subscription at the XSP (§4.6.2.6); a 403/404 means
// it is gone already.
func (s *evSubs) remove(ctx context.Context, c *evClient, d *evDelete) {
	e := s.e
	_, err := c.call(ctx, http.MethodDelete, evPath+"/subscription/"+url.PathEscape(d.id), nil, e.callTimeout())
	if err == nil || errors.Is(err, ErrForbidden) || errors.Is(err, ErrNotFound) || ctx.Err() != nil {
		e.log.Debug("xsi: subscription deleted", "subscription", d.id, "target", d.key.Target.String(), "event", d.key.Package, "err", err)
		return
	}
	d.attempts++
	if d.attempts >= evDeleteAttempts {
		e.log.Warn("xsi: deleting a subscription failed; the XSP ends it when it expires", "subscription", d.id, "target", d.key.Target.String(), "err", err)
		return
	}
	d.retryAt = time.Now().Add(evBackoff(e.cfg.ReconnectMin, e.cfg.ReconnectMax, d.attempts-1))
	s.mu.Lock()
	s.queueDeleteLocked(d)
	s.mu.Unlock()
}

// queueDeleteLocked queues the deletion of a subscription at the XSP.
func (s *evSubs) queueDeleteLocked(d *evDelete) {
	s.deletes[d.id] = d
	s.deleteOf[d.key] = d.id
}

func (s *evSubs) apply(ctx context.Context, c *evClient, op evSubOp) {
	e := s.e
	cfg := &e.cfg
	var (
		body []byte
		err  error
	)
	list := op.sub.key.Package == ""
	switch {
	case op.refresh:
		body, err = c.call(ctx, http.MethodPut, evPath+"/subscription/"+url.PathEscape(op.id), evSubscriptionRefreshBody(cfg.SubscriptionExpires), e.callTimeout())
	case list:
		body, err = c.call(ctx, http.MethodPost, evSubscribePath(op.sub.key.Target), evSubscriptionListBody(cfg, cfg.EventPackages), e.callTimeout())
	default:
		body, err = c.call(ctx, http.MethodPost, evSubscribePath(op.sub.key.Target), evSubscriptionAddBody(cfg, op.sub.key.Package), e.callTimeout())
	}
	var id string
	var exp time.Duration
	if err == nil {
		id, exp, err = evParseSubscription(body)
		if id == "" {
			id = op.id
		}
		if err == nil && id == "" {
			err = errors.New("xsi: subscription response without subscriptionId")
		}
	}
	resync := s.settle(ctx, op, id, exp, err)
	if resync != nil {
		e.emit(ctx, resync)
	}
}

// settle records the answer to op; it returns the ScopeResync to deliver
// when a lost scope subscription is back.
func (s *evSubs) settle(ctx context.Context, op evSubOp, id string, exp time.Duration, err error) *ScopeResync {
	e := s.e
	cfg := &e.cfg
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := op.sub
	if sub.idx < 0 { // removed meanwhile (UnwatchUser, scope fallback)
		if err == nil && !op.refresh {
			s.queueDeleteLocked(&evDelete{id: id, key: sub.key})
			s.kickNow()
		}
		return nil
	}
	if sub.id != op.id { // terminated meanwhile
		return nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		sub.failures++
		sub.retryAt = now.Add(evBackoff(cfg.ReconnectMin, cfg.ReconnectMax, sub.failures-1))
		switch {
		case op.refresh && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrForbidden)):
			// The XSP no longer knows it: subscribe again right away.
			delete(s.byID, sub.id)
			delete(s.lastSeq, sub.id)
			delete(s.scopeSeqs, sub.id)
			sub.id, sub.refreshReq, sub.retryAt = "", false, time.Time{}
			if sub.scope != nil {
				sub.lost = true // events may have been lost meanwhile
			}
		case !op.refresh && errors.Is(err, ErrConflict):
			// Already subscribed (another instance of this channel set or a
			// lost response): list again to adopt it.
			s.adopted = false
		case !op.refresh && sub.scope != nil && sub.key.Package == "" && errors.Is(err, ErrBadRequest):
			// An XSP before R23 (or one refusing a package in a list):
			// one subscription per package instead.
			s.fallBackLocked(sub.scope, err)
			s.kickNow()
			return nil
		}
		if !op.refresh {
			sub.lastErr = err
		}
		if sub.scope != nil {
			// The scope's state change is the line (once, not per retry).
			s.scopeChangedLocked(sub.scope)
			e.log.Debug("xsi: subscription request failed", "target", sub.key.Target.String(), "event", sub.key.Package, "refresh", op.refresh, "err", err)
		} else if sub.failures == 1 {
			e.log.Warn("xsi: subscription request failed; retrying with backoff", "target", sub.key.Target.String(), "event", sub.key.Package, "refresh", op.refresh, "err", err)
		} else {
			e.log.Debug("xsi: subscription request failed", "target", sub.key.Target.String(), "event", sub.key.Package, "refresh", op.refresh, "failures", sub.failures, "err", err)
		}
		return nil
	}
	if exp <= 0 {
		exp = cfg.SubscriptionExpires
	}
	if sub.id != "" && sub.id != id {
		delete(s.byID, sub.id)
		delete(s.lastSeq, sub.id)
		delete(s.scopeSeqs, sub.id)
	}
	// A channel broke while this request was in flight: the XSP may have
	// written the snapshot it answers with (initial events; research/xsi.md §3.2.6) on
	// lost stream, and resync could not mark this subscription (no ID yet)
	// or marked it before this answer, which would clear the mark. Without
	// another refresh that snapshot is gone for good (nothing follows on
	// the subscription to show a sequence gap). A scope gets no snapshot:
	// the channel loss sent ScopeResync for it instead.
	again := op.resyncs != s.resyncs && sub.scope == nil
	sub.id, sub.expires, sub.failures, sub.refreshReq, sub.retryAt, sub.lastErr = id, exp, 0, again, time.Time{}, nil
	sub.refreshAt = now.Add(evHalf(exp, cfg.SubscriptionExpires))
	s.byID[id] = sub
	e.log.Debug("xsi: subscription active", "subscription", id, "target", sub.key.Target.String(), "event", sub.key.Package, "expires", exp, "refresh", op.refresh, "again", again)
	if again {
		s.kickNow()
	}
	var resync *ScopeResync
	if sc := sub.scope; sc != nil {
		if sub.lost && !op.refresh {
			sub.lost = false
			resync = &ScopeResync{Scope: sc.target, Reason: "resubscribed"}
		}
		s.scopeChangedLocked(sc)
	}
	return resync
}

// adopt lists the subscriptions this credential and application already
// hold and takes over those in our channel set that we want, refreshing
// each at once (which also yields a fresh snapshot for user targets). A
// scope's list subscription is adopted when it lists exactly
// cfg.EventPackages (else a new list replaces it, §4.2.4.6); a scope's
// per-package subscriptions (a fallback of an earlier run) switch it to
// per-package mode rather than leaving them beside a new list.
func (s *evSubs) adopt(ctx context.Context, c *evClient) error {
	e := s.e
	q := url.Values{}
	q.Set("subscriberId", e.cfg.Username)
	q.Set("extAppId", e.cfg.ApplicationID)
	body, err := c.call(ctx, http.MethodGet, evPath+"/subscription?"+q.Encode(), nil, e.callTimeout())
	if err != nil {
		return err
	}
	d := etree.NewDocument()
	d.ReadSettings.CharsetReader = charsetReader
	if err := d.ReadFromBytes(body); err != nil {
		return fmt.Errorf("xsi: SubscriptionList: %w", err)
	}
	root := d.Root()
	if root == nil || root.Tag != "SubscriptionList" {
		return errors.New("xsi: subscription list: unexpected body")
	}
	type found struct {
		id, typ, tid, parent string
		events               []string // nil: a single event
		event                string
		expires              time.Duration
	}
	var lists, singles []found
	for _, el := range root.ChildElements() {
		if el.Tag != "subscription" {
			continue
		}
		f := found{id: evText(el, "subscriptionId")}
		if cs := evText(el, "channelSetId"); cs != e.cfg.ChannelSetID {
			continue
		}
		if app := evText(el, "applicationId"); app != "" && app != e.cfg.ApplicationID {
			continue
		}
		f.typ, f.tid, f.parent = evText(el, "targetIdType"), evText(el, "targetId"), evText(el, "targetGrpParentId")
		if v, err := strconv.ParseInt(evText(el, "expires"), 10, 64); err == nil && v > 0 {
			f.expires = time.Duration(v) * time.Second
		}
		if pl := evChild(el, "eventPackageList"); pl != nil {
			for _, ev := range pl.ChildElements() {
				if ev.Tag == "event" {
					f.events = append(f.events, strings.TrimSpace(ev.Text()))
				}
			}
			lists = append(lists, f)
			continue
		}
		f.event = evText(el, "event")
		singles = append(singles, f)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	take := func(sub *evSub, f found) {
		sub.id, sub.refreshReq = f.id, true
		if f.expires > 0 {
			sub.expires = f.expires
		}
		s.byID[f.id] = sub
		n++
	}
	free := func(id string) bool { return id != "" && s.byID[id] == nil && s.deletes[id] == nil }
	for _, f := range lists {
		if !free(f.id) || !samePackages(f.events, e.cfg.EventPackages) {
			continue
		}
		for _, sc := range s.scopes {
			if sc.perPackage || len(sc.subs) != 1 || sc.subs[0].id != "" || !evTargetMatches(sc.target, f.typ, f.tid, f.parent) {
				continue
			}
			take(sc.subs[0], f)
			break
		}
	}
	for _, f := range singles {
		if !free(f.id) {
			continue
		}
		for _, sc := range s.scopes {
			if !evTargetMatches(sc.target, f.typ, f.tid, f.parent) || !slices.Contains(e.cfg.EventPackages, f.event) {
				continue
			}
			if !sc.perPackage {
				if sc.subs[0].id != "" {
					break // its list was adopted; this one is left alone
				}
				sc.perPackage = true
				s.removeLocked(sc.subs[0])
				sc.subs = sc.subs[:0]
				for _, p := range e.cfg.EventPackages {
					sub := &evSub{key: evSubKey{sc.target, p}, scope: sc}
					sc.subs = append(sc.subs, sub)
					s.addLocked(sub)
				}
				e.log.Info("xsi: adopting the per-package subscriptions of a scope; it stays per package", "scope", sc.target.String())
			}
			for _, sub := range sc.subs {
				if sub.id == "" && sub.key.Package == f.event {
					take(sub, f)
					break
				}
			}
			break
		}
		if s.byID[f.id] != nil {
			continue
		}
		for _, sub := range s.list {
			if sub.id != "" || sub.scope != nil || sub.key.Package != f.event || !evTargetMatches(sub.key.Target, f.typ, f.tid, f.parent) {
				continue
			}
			take(sub, f)
			break
		}
	}
	e.log.Info("xsi: adopted existing subscriptions", "count", n)
	return nil
}

// samePackages reports whether two package lists hold the same set.
func samePackages(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, p := range a {
		if !slices.Contains(b, p) {
			return false
		}
	}
	for _, p := range b {
		if !slices.Contains(a, p) {
			return false
		}
	}
	return true
}

func evTargetMatches(t Target, typ, id, parent string) bool {
	if id != t.ID {
		return false
	}
	switch t.Kind {
	case KindUser:
		return typ == "" || strings.EqualFold(typ, "User")
	case KindGroup:
		return strings.EqualFold(typ, "Group") && (parent == "" || parent == t.ParentID)
	case KindEnterprise, KindServiceProvider:
		return strings.EqualFold(typ, "ServiceProvider") || strings.EqualFold(typ, "Enterprise")
	}
	return false
}

// evSubscribePath is the subscription add URL of a target (§4.6.2;
// research/xsi.md §3.2.2).
func evSubscribePath(t Target) string {
	switch t.Kind {
	case KindGroup:
		return evPath + "/enterprise/" + url.PathEscape(t.ParentID) + "/group/" + url.PathEscape(t.ID)
	case KindEnterprise:
		return evPath + "/enterprise/" + url.PathEscape(t.ID)
	case KindServiceProvider:
		return evPath + "/serviceprovider/" + url.PathEscape(t.ID)
	}
	return evPath + "/user/" + url.PathEscape(t.ID)
}

func evSubscriptionAddBody(cfg *Config, pkg string) []byte {
	return []byte(evXMLDecl + `<Subscription xmlns="` + NS + `"><event>` + evXMLText(pkg) + `</event><expires>` +
		evSeconds(cfg.SubscriptionExpires) + `</expires><channelSetId>` + evXMLText(cfg.ChannelSetID) +
		`</channelSetId><applicationId>` + evXMLText(cfg.ApplicationID) + `</applicationId></Subscription>`)
}

// evSubscriptionListBody subscribes several packages at once (R23+,
// §4.2.4.6): eventPackageList takes the place of event in the XSD sequence.
func evSubscriptionListBody(cfg *Config, pkgs []string) []byte {
	var b strings.Builder
	b.WriteString(evXMLDecl + `<Subscription xmlns="` + NS + `"><eventPackageList>`)
	for _, p := range pkgs {
		b.WriteString(`<event>` + evXMLText(p) + `</event>`)
	}
	b.WriteString(`</eventPackageList><expires>` + evSeconds(cfg.SubscriptionExpires) + `</expires><channelSetId>` +
		evXMLText(cfg.ChannelSetID) + `</channelSetId><applicationId>` + evXMLText(cfg.ApplicationID) + `</applicationId></Subscription>`)
	return []byte(b.String())
}

func evSubscriptionRefreshBody(exp time.Duration) []byte {
	return []byte(evXMLDecl + `<Subscription xmlns="` + NS + `"><expires>` + evSeconds(exp) + `</expires></Subscription>`)
}

// evParseSubscription reads <Subscription><subscriptionId/><expires/>.
func evParseSubscription(body []byte) (id string, exp time.Duration, err error) {
	d := etree.NewDocument()
	d.ReadSettings.CharsetReader = charsetReader
	if err := d.ReadFromBytes(body); err != nil {
		return "", 0, fmt.Errorf("xsi: Subscription: %w", err)
	}
	root := d.Root()
	if root == nil || root.Tag != "Subscription" {
		return "", 0, errors.New("xsi: Subscription: unexpected body")
	}
	id = evText(root, "subscriptionId")
	if v := evText(root, "expires"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return "", 0, fmt.Errorf("xsi: Subscription: bad expires %q", v)
		}
		exp = time.Duration(n) * time.Second
	}
	return id, exp, nil
}

// evChild returns the first child element with local name tag (any prefix).
func evChild(e *etree.Element, tag string) *etree.Element {
	for _, c := range e.Child {
		if ce, ok := c.(*etree.Element); ok && ce.Tag == tag {
			return ce
		}
	}
	return nil
}

func evText(e *etree.Element, tag string) string {
	if c := evChild(e, tag); c != nil {
		return strings.TrimSpace(c.Text())
	}
	return ""
}
