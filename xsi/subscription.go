package xsi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
)

// evSubKey is one wanted subscription: a target and one event package.
type evSubKey struct {
	Target  Target
	Package string
}

// evSub is the state of one wanted subscription.
type evSub struct {
	key        evSubKey
	id         string        // "" = not subscribed
	expires    time.Duration // granted
	refreshAt  time.Time
	refreshReq bool // refresh as soon as possible (sequence gap, adoption)
	retryAt    time.Time
	failures   int
}

// evSubs keeps cfg.Targets × cfg.EventPackages subscribed in the channel
// set: it adopts existing subscriptions once a channel is up, subscribes
// the missing ones, refreshes at half the granted expiry, refreshes on a
// sequence gap (a user-target refresh resends the full state) and
// resubscribes on SubscriptionTerminatedEvent.
type evSubs struct {
	e    *Events
	kick chan struct{}

	mu      sync.Mutex
	list    []*evSub
	byID    map[string]*evSub
	lastSeq map[string]int64
	adopted bool
	// resyncs counts resync calls (channel losses). A request answered
	// after one that began before it may have had its snapshot written
	// on the lost stream: apply refreshes it again (see there).
	resyncs uint64
}

func newEvSubs(e *Events) *evSubs {
	s := &evSubs{e: e, kick: make(chan struct{}, 1), byID: map[string]*evSub{}, lastSeq: map[string]int64{}}
	for _, t := range e.cfg.Targets {
		for _, p := range e.cfg.EventPackages {
			s.list = append(s.list, &evSub{key: evSubKey{t, p}})
		}
	}
	return s
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

// refreshNow asks for an immediate refresh of a subscription of ours.
func (s *evSubs) refreshNow(subID string) {
	s.mu.Lock()
	if sub := s.byID[subID]; sub != nil {
		sub.refreshReq = true
	}
	s.mu.Unlock()
	s.kickNow()
}

// resync asks for a refresh of every subscription we hold, as soon as a
// channel is up (after a channel loss).
func (s *evSubs) resync() {
	s.mu.Lock()
	s.resyncs++
	for _, sub := range s.list {
		if sub.id != "" {
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
		s.e.log.Warn("xsi: subscription terminated, resubscribing", "subscription", subID, "target", sub.key.Target.ID, "event", sub.key.Package)
		sub.id, sub.retryAt, sub.refreshReq = "", time.Time{}, false
	}
	delete(s.byID, subID)
	delete(s.lastSeq, subID)
	s.mu.Unlock()
	s.kickNow()
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
	resyncs uint64 // evSubs.resyncs when the op was taken
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
		if c != nil && len(s.list) > 0 {
			s.mu.Lock()
			adopted := s.adopted
			s.mu.Unlock()
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
				s.mu.Unlock()
				e.log.Info("xsi: subscriptions", "active", active, "wanted", len(s.list), "added_or_refreshed", len(ops))
			}
			next = s.nextDue(time.Now())
		}
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
			s.apply(ctx, c, op)
		}()
	}
	return true
}

func (s *evSubs) apply(ctx context.Context, c *evClient, op evSubOp) {
	e := s.e
	cfg := &e.cfg
	var (
		body []byte
		err  error
	)
	if op.refresh {
		body, err = c.call(ctx, http.MethodPut, evPath+"/subscription/"+url.PathEscape(op.id), evSubscriptionRefreshBody(cfg.SubscriptionExpires), e.callTimeout())
	} else {
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
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := op.sub
	if sub.id != op.id { // terminated meanwhile
		return
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		sub.failures++
		sub.retryAt = now.Add(evBackoff(cfg.ReconnectMin, cfg.ReconnectMax, sub.failures-1))
		switch {
		case op.refresh && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrForbidden)):
			// The XSP no longer knows it: subscribe again right away.
			delete(s.byID, sub.id)
			delete(s.lastSeq, sub.id)
			sub.id, sub.refreshReq, sub.retryAt = "", false, time.Time{}
		case !op.refresh && errors.Is(err, ErrConflict):
			// Already subscribed (another instance of this channel set or a
			// lost response): list again to adopt it.
			s.adopted = false
		}
		e.log.Warn("xsi: subscription request failed", "target", sub.key.Target.ID, "event", sub.key.Package, "refresh", op.refresh, "err", err)
		return
	}
	if exp <= 0 {
		exp = cfg.SubscriptionExpires
	}
	if sub.id != "" && sub.id != id {
		delete(s.byID, sub.id)
	}
	// A channel broke while this request was in flight: the XSP may have
	// written the snapshot it answers with (initial events; research/xsi.md §3.2.6) on
	// lost stream, and resync could not mark this subscription (no ID yet)
	// or marked it before this answer, which would clear the mark. Without
	// another refresh that snapshot is gone for good (nothing follows on
	// the subscription to show a sequence gap).
	again := op.resyncs != s.resyncs
	sub.id, sub.expires, sub.failures, sub.refreshReq, sub.retryAt = id, exp, 0, again, time.Time{}
	sub.refreshAt = now.Add(evHalf(exp, cfg.SubscriptionExpires))
	s.byID[id] = sub
	e.log.Debug("xsi: subscription active", "subscription", id, "target", sub.key.Target.ID, "event", sub.key.Package, "expires", exp, "refresh", op.refresh, "again", again)
	if again {
		s.kickNow()
	}
}

// adopt lists the subscriptions this credential and application already
// hold and takes over those in our channel set that we want, refreshing
// each at once (which also yields a fresh snapshot for user targets).
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
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, el := range root.ChildElements() {
		if el.Tag != "subscription" {
			continue
		}
		id := evText(el, "subscriptionId")
		if id == "" || s.byID[id] != nil {
			continue
		}
		if cs := evText(el, "channelSetId"); cs != e.cfg.ChannelSetID {
			continue
		}
		if app := evText(el, "applicationId"); app != "" && app != e.cfg.ApplicationID {
			continue
		}
		events := []string{evText(el, "event")}
		if pl := evChild(el, "eventPackageList"); pl != nil {
			continue // list subscriptions are not ours (we subscribe per package)
		}
		typ, tid, parent := evText(el, "targetIdType"), evText(el, "targetId"), evText(el, "targetGrpParentId")
		for _, sub := range s.list {
			if sub.id != "" || sub.key.Package != events[0] || !evTargetMatches(sub.key.Target, typ, tid, parent) {
				continue
			}
			sub.id, sub.refreshReq = id, true
			if v, err := strconv.ParseInt(evText(el, "expires"), 10, 64); err == nil && v > 0 {
				sub.expires = time.Duration(v) * time.Second
			}
			s.byID[id] = sub
			n++
			break
		}
	}
	e.log.Info("xsi: adopted existing subscriptions", "count", n)
	return nil
}

func evTargetMatches(t Target, typ, id, parent string) bool {
	if id != t.ID {
		return false
	}
	switch t.Kind {
	case "user":
		return typ == "" || strings.EqualFold(typ, "User")
	case "group":
		return strings.EqualFold(typ, "Group") && (parent == "" || parent == t.ParentID)
	case "enterprise":
		return strings.EqualFold(typ, "ServiceProvider") || strings.EqualFold(typ, "Enterprise")
	}
	return false
}

// evSubscribePath is the subscription add URL of a target (§4.6.2).
func evSubscribePath(t Target) string {
	switch t.Kind {
	case "group":
		return evPath + "/enterprise/" + url.PathEscape(t.ParentID) + "/group/" + url.PathEscape(t.ID)
	case "enterprise":
		return evPath + "/enterprise/" + url.PathEscape(t.ID)
	}
	return evPath + "/user/" + url.PathEscape(t.ID)
}

func evSubscriptionAddBody(cfg *Config, pkg string) []byte {
	return []byte(evXMLDecl + `<Subscription xmlns="` + NS + `"><event>` + evXMLText(pkg) + `</event><expires>` +
		evSeconds(cfg.SubscriptionExpires) + `</expires><channelSetId>` + evXMLText(cfg.ChannelSetID) +
		`</channelSetId><applicationId>` + evXMLText(cfg.ApplicationID) + `</applicationId></Subscription>`)
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
