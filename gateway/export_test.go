package gateway

import "strings"

// InitialValuesMissing (tests) says what the view of user id still lacks
// of a value from every event package the connector subscribes to (Call
// Center Agent, the three forwardings, DND, Hoteling Guest) and of the
// publishing of the CSTA events they meant; "" when nothing. Until then a
// first value may still be published to a monitor started later (report:
// the first value seen is always published), which a test of outside
// changes must not take for one of them.
func (g *Gateway) InitialValuesMissing(id string) string {
	// pubMu first (the lock order): a batch flush has taken out of the
	// outbox is published by the time pubMu is free.
	g.pubMu.Lock()
	defer g.pubMu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.users[id]
	if u == nil {
		return "any value"
	}
	var miss []string
	for _, m := range []struct {
		seen bool
		what string
	}{
		{u.agentSeen, "ACD state"}, {u.fwd[0].seen, "CFA"}, {u.fwd[1].seen, "CFB"}, {u.fwd[2].seen, "CFNA"},
		{u.dndSeen, "DND"}, {u.hotelSeen, "hoteling guest"}, {len(u.outbox) == 0, "outbox published"},
	} {
		if !m.seen {
			miss = append(miss, m.what)
		}
	}
	return strings.Join(miss, ", ")
}
