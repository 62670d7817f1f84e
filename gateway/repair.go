package gateway

// Fresh reports whether the view of user id can be trusted as BroadWorks'
// current state: a snapshot has arrived, and every part of it received
// before the link last went down has been received again since.
func (g *Gateway) Fresh(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.users[id]
	if u == nil || !u.known {
		return false
	}
	if g.cfg().LoadUsers {
		// A snapshot read since the link came up (or every part of it
		// received again since): an event or two alone is not the whole.
		return u.roles.loaded && freshLocked(u)
	}
	if (u.agentSeen && !u.agentFresh) || (u.dndSeen && !u.dndFresh) || (u.hotelSeen && !u.hotelFresh) {
		return false
	}
	for _, f := range u.fwd {
		if f.seen && !f.fresh {
			return false
		}
	}
	return true
}

// LinkEpoch counts the times the link came back up after being down.
func (g *Gateway) LinkEpoch() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.linkEpoch
}
