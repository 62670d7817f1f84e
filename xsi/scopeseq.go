package xsi

import (
	"container/list"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A scope subscription carries every user's events of a group or
// enterprise, and the channels of a set are not ordered with each other:
// with two XSPs its sequence numbers arrive out of order all the time.
// Treating each jump as a loss and each lower number as stale (as for a
// user subscription) dropped other users' real changes and sent a
// ScopeResync (a re-read of every loaded user) several times a second. So
// for a scope:
//   - an event is stale only when an event of the same target user with a
//     higher number of that subscription was delivered already;
//   - a jump past last+1 opens holes; a missing number that arrives later
//     (on the other channel) closes its hole, and only holes still open
//     after evSeqHoleGrace are a loss (one ScopeResync per scope).
const (
	// evSeqHoleGrace is how long a missing sequence number of a scope
	// subscription may take to arrive on another channel of the set before
	// it counts as lost. Two XSPs' streams drift apart by the time an
	// event waits in one of them (ack round trips, a busy reader): well
	// under a second when healthy, and a loss found 2 s late costs no more
	// than a re-read 2 s later.
	evSeqHoleGrace = 2 * time.Second
	// evSeqMaxHoles bounds the open holes of one scope subscription; a jump
	// past it is a loss at once (that many events do not all overtake each
	// other).
	evSeqMaxHoles = 10_000
	// evSeqMaxUsers bounds the users whose last sequence number is kept per
	// scope subscription (LRU, about 150 bytes each). An evicted user's
	// older event can no longer be recognised as stale and is delivered:
	// acceptable, as eviction needs that many other users' events in
	// between, far longer than two streams drift apart.
	evSeqMaxUsers = 100_000
)

// scopeSeq is the sequence tracking of one scope subscription.
type scopeSeq struct {
	last   int64             // highest sequence number seen (serial order)
	holes  map[int64]seqHole // numbers skipped by a jump, not yet arrived
	oldest time.Time         // when the oldest open hole was opened; zero if none
	// floor: the last number when holes were last reported or cleared.
	// The ScopeResync sent then re-reads what every number up to it
	// carried, so a late event at or below it would take the view back:
	// it is stale. hasFloor false: none yet.
	floor    int64
	hasFloor bool
	users    map[string]*list.Element
	lru      list.List // of *userSeq, most recent first
}

type seqHole struct {
	at   time.Time
	gaps prometheus.Counter // the sequence_gaps_total of the XSP whose event jumped
}

type userSeq struct {
	user string
	seq  int64
}

// seqDiff is a−b in the sequence space 1..evNeverExpire, which wraps
// 2147483647 → 1: in [0, evNeverExpire).
func seqDiff(a, b int64) int64 {
	d := (a - b) % evNeverExpire
	if d < 0 {
		d += evNeverExpire
	}
	return d
}

// seqNewer reports whether a comes after b (serial number arithmetic: less
// than half the space ahead, RFC 1982 §3.2).
func seqNewer(a, b int64) bool {
	d := seqDiff(a, b)
	return d > 0 && d < evNeverExpire/2
}

// seqNext is the number after n.
func seqNext(n int64) int64 { return n%evNeverExpire + 1 }

// observeScope records the sequence number of an event of a scope
// subscription and says whether it is stale (dropped) and which scopes
// have a loss to report now: holes of any scope subscription still open
// after evSeqHoleGrace, or a jump past evSeqMaxHoles on this one. Each
// scope is listed once; its holes are forgotten (the ScopeResync re-reads
// what they carried).
func (s *evSubs) observeScope(subID, user string, seq int64, gaps prometheus.Counter, now time.Time) (seqVerdict, []Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.byID[subID]
	if sub == nil || sub.scope == nil {
		return seqInOrder, nil
	}
	tr := s.scopeSeqs[subID]
	var lost []Target
	verdict := seqInOrder
	switch {
	case tr == nil:
		tr = &scopeSeq{last: seq, holes: map[int64]seqHole{}, users: map[string]*list.Element{}}
		s.scopeSeqs[subID] = tr
	case seqNewer(seq, tr.last):
		missing := seqDiff(seq, tr.last) - 1
		if int64(len(tr.holes))+missing > evSeqMaxHoles {
			// More than can be waited for: a loss now, the open holes with it.
			gaps.Add(float64(missing))
			for _, h := range tr.holes {
				h.gaps.Inc()
			}
			clear(tr.holes)
			tr.oldest = time.Time{}
			tr.floor, tr.hasFloor = seq, true
			lost = append(lost, sub.scope.target)
		} else if missing > 0 {
			if len(tr.holes) == 0 {
				tr.oldest = now
				s.kickNow() // run's timer reports the holes if nothing follows
			}
			for n := seqNext(tr.last); n != seq; n = seqNext(n) {
				tr.holes[n] = seqHole{at: now, gaps: gaps}
			}
		}
		tr.last = seq
	default:
		// At or below the last: a hole closing (stale only if the same
		// user's newer event came first), or a number whose hole was
		// reported or cleared (the ScopeResync then re-reads it).
		if _, ok := tr.holes[seq]; ok {
			delete(tr.holes, seq)
			if len(tr.holes) == 0 {
				tr.oldest = time.Time{}
			}
		} else if tr.hasFloor && !seqNewer(seq, tr.floor) {
			verdict = seqStale
		}
	}
	if el := tr.users[user]; el != nil {
		u := el.Value.(*userSeq)
		if !seqNewer(seq, u.seq) {
			verdict = seqStale
		} else if verdict != seqStale {
			u.seq = seq
		}
		tr.lru.MoveToFront(el)
	} else if verdict != seqStale {
		if tr.lru.Len() >= evSeqMaxUsers {
			old := tr.lru.Back()
			tr.lru.Remove(old)
			delete(tr.users, old.Value.(*userSeq).user)
		}
		tr.users[user] = tr.lru.PushFront(&userSeq{user: user, seq: seq})
	}
	for _, t := range s.expireHolesLocked(now) {
		if !containsTarget(lost, t) {
			lost = append(lost, t)
		}
	}
	return verdict, lost
}

// expireHoles reports the scopes with holes open past evSeqHoleGrace (for
// run's timer: holes with no traffic after them).
func (s *evSubs) expireHoles(now time.Time) []Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expireHolesLocked(now)
}

// expireHolesLocked counts every hole open past the grace as a loss and
// forgets all holes of its subscription (younger ones too: the re-read the
// ScopeResync causes comes after them); it returns each affected scope once.
func (s *evSubs) expireHolesLocked(now time.Time) []Target {
	var lost []Target
	for id, tr := range s.scopeSeqs {
		if tr.oldest.IsZero() || now.Sub(tr.oldest) < evSeqHoleGrace {
			continue
		}
		for _, h := range tr.holes {
			if now.Sub(h.at) >= evSeqHoleGrace {
				h.gaps.Inc()
			}
		}
		clear(tr.holes)
		tr.oldest = time.Time{}
		tr.floor, tr.hasFloor = tr.last, true
		if sub := s.byID[id]; sub != nil && sub.scope != nil && !containsTarget(lost, sub.scope.target) {
			lost = append(lost, sub.scope.target)
		}
	}
	return lost
}

// nextHoleDueLocked is how long until the oldest open hole passes the
// grace; ok false when there is none.
func (s *evSubs) nextHoleDueLocked(now time.Time) (time.Duration, bool) {
	var next time.Duration
	ok := false
	for _, tr := range s.scopeSeqs {
		if tr.oldest.IsZero() {
			continue
		}
		d := tr.oldest.Add(evSeqHoleGrace).Sub(now)
		if !ok || d < next {
			next, ok = d, true
		}
	}
	return next, ok
}

// clearScopeHolesLocked forgets the open holes of every scope subscription
// (a channel was lost: its ScopeResync "channel lost" covers them).
func (s *evSubs) clearScopeHolesLocked() {
	for _, tr := range s.scopeSeqs {
		clear(tr.holes)
		tr.oldest = time.Time{}
		tr.floor, tr.hasFloor = tr.last, true
	}
}

func containsTarget(ts []Target, t Target) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// evOrderKey is what a scope event's staleness is judged by: its user and
// its event package. Events of one user and package must not overtake
// each other; a user's events of two packages are independent (a DND
// change numbered after a CFA change must not make the CFA one stale).
func evOrderKey(ev *SubscriptionEvent) string {
	var pkg string
	switch ev.Data.(type) {
	case *AgentStateEvent, *AgentSubscriptionEvent, *ACDAgentJoinUpdateEvent:
		pkg = "Call Center Agent"
	case *CallForwardingAlwaysEvent:
		pkg = "Call Forwarding Always"
	case *CallForwardingBusyEvent:
		pkg = "Call Forwarding Busy"
	case *CallForwardingNoAnswerEvent:
		pkg = "Call Forwarding No Answer"
	case *DoNotDisturbEvent:
		pkg = "Do Not Disturb"
	case *HotelingGuestEvent:
		pkg = "Hoteling Guest"
	default:
		pkg = fmt.Sprintf("%T", ev.Data)
	}
	return ev.TargetID + "\x00" + pkg
}
