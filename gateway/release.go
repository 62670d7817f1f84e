package gateway

import (
	"time"

	"github.com/broadworks-connector/connector/hoteling"
)

// Why associations end, besides EndLogout, EndForced and EndStale.
const (
	// EndLimit: BroadWorks ended the association on its own once the
	// association limit (the guest's, or the one its host enforces) was
	// reached.
	EndLimit = "association-limit"
	// EndRecovery: the connector undid a half-done sequence.
	EndRecovery = "recovery"
)

// endNoteTTL bounds how long a note that the connector is about to end an
// association waits for the event: a step that failed without one must not
// explain an end much later.
const endNoteTTL = 2 * time.Minute

// endNote is why an agent's association is about to end, and since when.
type endNote struct {
	reason string
	at     time.Time
}

// AssociationChanging is the hot-desk sequencer telling that it is about
// to change guest's association itself (hoteling.AssociationNoter): the
// end that follows is ours, not BroadWorks' own. A reason already given
// (a forced or stale logout) stays.
func (g *Gateway) AssociationChanging(guest, op string) {
	reason := EndLogout
	if op == "reconcile" {
		reason = EndRecovery
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if n, ok := g.endReasons[guest]; ok && time.Since(n.at) < endNoteTTL {
		return
	}
	g.endReasons[guest] = endNote{reason: reason, at: time.Now()}
}

// associationLimit is the limit in force for an association: the guest's
// own (enableAssociationLimit) or the one its host enforces, the shorter;
// 0 for none.
func associationLimit(enabled bool, hours int, hostEnforces bool, hostHours int) time.Duration {
	limit := 0
	if enabled && hours > 0 {
		limit = hours
	}
	if hostEnforces && hostHours > 0 && (limit == 0 || hostHours < limit) {
		limit = hostHours
	}
	return time.Duration(limit) * time.Hour
}

// limitSlack: an association that lasted its limit less this was ended by
// the limit (BroadWorks checks it on its own schedule, not to the second).
const limitSlack = time.Minute

// endReasonLocked takes the reason guest's association (which began at
// since, under limit) ends now (mu held): the note of our own sequence or
// logout, else the association limit when it was reached, else someone
// outside the connector (portal). outside is true for the last two.
func (g *Gateway) endReasonLocked(guest string, since time.Time, limit time.Duration) (reason string, outside bool) {
	n, ok := g.endReasons[guest]
	delete(g.endReasons, guest)
	if ok && time.Since(n.at) < endNoteTTL {
		return n.reason, false
	}
	if limit > 0 && !since.IsZero() && time.Since(since) >= limit-limitSlack {
		return EndLimit, true
	}
	return EndPortal, true
}

// associationEnded: BroadWorks ended guest's association with host on its
// own. The reconciler looks at the guest: unless the end is a request of
// ours landing late, it frees the desk (a guest nobody promised anything is
// promised, as it was, at that desk first).
func (g *Gateway) associationEnded(guest, host string) {
	g.rec.mu.Lock()
	if g.rec.promises[guest] == nil {
		g.rec.setLocked(guest, hoteling.Want{Host: host, Loose: true}, OriginBaseline, false)
	}
	g.rec.mu.Unlock()
	g.rec.wake(guest)
}
