package gateway

import (
	"context"
	"slices"
	"time"
)

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

// RepairOptions tune RepairLoop.
type RepairOptions struct {
	// Startup repairs once the link is first up, as well as after every
	// link recovery; false: only after the recoveries that come after
	// link epoch Since (take it from LinkEpoch before starting the loop).
	Startup bool
	Since   uint64
	// SnapshotWait bounds the wait for the users' views to be fresh; past
	// it, repair runs on what is known (and says so). 0: 15 s.
	SnapshotWait time.Duration
	// Poll is how often the link and the views are looked at. 0: 50 ms.
	Poll time.Duration
}

// RepairLoop calls repair(ctx, users) whenever the XSI link is up again
// after being down (and, with Startup, when it is first up), once the
// resync has refreshed the view of every user: a hot-desk sequence the lost
// link left half done (its undo could not reach the XSP) is then completed
// or undone without waiting for a restart. It returns when ctx ends.
func (g *Gateway) RepairLoop(ctx context.Context, users []string, opts RepairOptions, repair func(context.Context, []string)) {
	if len(users) == 0 {
		return
	}
	if opts.SnapshotWait <= 0 {
		opts.SnapshotWait = 15 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = 50 * time.Millisecond
	}
	tick := time.NewTicker(opts.Poll)
	defer tick.Stop()
	sleep := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
			return true
		}
	}
	handled, any := opts.Since, !opts.Startup
	for {
		epoch := g.LinkEpoch()
		if !g.LinkUp() || (any && epoch == handled) {
			if !sleep() {
				return
			}
			continue
		}
		// The link is up in a new epoch: wait for the resync's snapshots,
		// reading the users' views from the XSP (users.go) meanwhile.
		deadline := time.Now().Add(opts.SnapshotWait)
		if g.cfg().LoadUsers {
			lctx, cancel := context.WithDeadline(ctx, deadline)
			if unknown := g.loadUsers(lctx, g.staleList(users)); len(unknown) > 0 {
				// Users BroadWorks does not know (a directory entry for
				// another XSP) have nothing to repair nor wait for.
				g.log.Info("gateway: users to repair that BroadWorks does not know are left out", "users", len(unknown))
				users = slices.DeleteFunc(slices.Clone(users), func(id string) bool { return slices.Contains(unknown, id) })
			}
			cancel()
		}
		stale := g.staleUsers(users)
		for stale > 0 && time.Now().Before(deadline) && g.LinkUp() && g.LinkEpoch() == epoch {
			if !sleep() {
				return
			}
			stale = g.staleUsers(users)
		}
		if !g.LinkUp() || g.LinkEpoch() != epoch {
			continue // lost again meanwhile: wait for the next recovery
		}
		var late []string
		if stale > 0 {
			late = g.staleList(users)
			g.log.Warn("gateway: hot-desk repair runs without every snapshot; those users are looked at again once theirs are in",
				"stale", stale, "users", len(users))
		}
		g.log.Info("gateway: looking for half-done hot-desk sequences", "users", len(users), "link_epoch", epoch)
		pass := PassLinkRecovery
		if !any {
			pass = PassStartup
		}
		repair(context.WithValue(ctx, repairPassKey{}, pass), users)
		handled, any = epoch, true
		if ctx.Err() != nil {
			return
		}
		if len(late) > 0 && !g.repairLate(ctx, late, epoch, repair) {
			return
		}
	}
}

// Repair passes, as RepairPass tells the repair function.
const (
	PassStartup      = "start-up"
	PassLinkRecovery = "link-recovery"
	PassLateSnapshot = "late-snapshots" // users whose snapshot came after SnapshotWait
)

type repairPassKey struct{}

// RepairPass is which pass of RepairLoop called repair with ctx.
func RepairPass(ctx context.Context) string {
	p, _ := ctx.Value(repairPassKey{}).(string)
	return p
}

// lateSnapshotPoll is how often repairLate looks at the users still
// without a snapshot (a big directory takes minutes to subscribe).
const lateSnapshotPoll = time.Second

// repairLate waits, as long as the link stays up in epoch, until the users
// repaired without a snapshot have one, and repairs them again. It returns
// false when ctx has ended.
func (g *Gateway) repairLate(ctx context.Context, late []string, epoch uint64, repair func(context.Context, []string)) bool {
	tick := time.NewTicker(lateSnapshotPoll)
	defer tick.Stop()
	pending := late
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		if !g.LinkUp() || g.LinkEpoch() != epoch {
			return true // the next recovery repairs everyone
		}
		pending = g.staleList(pending)
	}
	g.log.Info("gateway: every snapshot is in; looking again at the users repaired without one", "users", len(late), "link_epoch", epoch)
	repair(context.WithValue(ctx, repairPassKey{}, PassLateSnapshot), late)
	return ctx.Err() == nil
}

// staleList is the users whose view is not fresh, in order.
func (g *Gateway) staleList(users []string) []string {
	var out []string
	for _, id := range users {
		if !g.Fresh(id) {
			out = append(out, id)
		}
	}
	return out
}

func (g *Gateway) staleUsers(users []string) int {
	n := 0
	for _, id := range users {
		if !g.Fresh(id) {
			n++
		}
	}
	return n
}
