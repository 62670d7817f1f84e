package gateway

import (
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/xsi"
)

// Stale logins: an agent logged on by a CTI connection that then vanished
// without logging it off is logged off after Config.StaleLoginGrace (off
// when 0), unless another connection logged it on meanwhile; the journal
// records it as "stale". The reconciler keeps the grace timer and the
// logout: the agent is promised logged off (owed), like any promise.

// EndStale is the journal's reason for a stale-login cleanup.
const EndStale = "stale"

// logoutReasonKey marks a logout's context with the journal's reason for it.
type logoutReasonKey struct{}

// noteLogin records which CTI connection logged an agent on (a logoff
// from anywhere forgets it).
func (g *Gateway) noteLogin(agent string, conn uint64, state csta.ReqAgentState) {
	if g.cfg().StaleLoginGrace <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case state == csta.ReqLoggedOff:
		delete(g.loginOwner, agent)
	case state == csta.ReqLoggedOn && conn != 0:
		g.loginOwner[agent] = conn
	}
}

// ConnectionClosed is csta.ConnectionObserver: a connection that goes away
// (not at the connector's own shutdown) leaves its agents to the cleanup.
func (g *Gateway) ConnectionClosed(who csta.Requester, serverShutdown bool) {
	grace := g.cfg().StaleLoginGrace
	if grace <= 0 {
		return
	}
	g.mu.Lock()
	var agents []string
	for agent, conn := range g.loginOwner {
		if conn == who.ConnID {
			agents = append(agents, agent)
		}
	}
	if serverShutdown || len(agents) == 0 || g.closed {
		for _, a := range agents {
			delete(g.loginOwner, a)
		}
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	time.AfterFunc(grace, func() { g.staleGraceOver(who.ConnID, agents) })
	g.log.Info("gateway: CTI connection gone with agents logged on; logging them off after the grace period",
		"conn", who.ConnID, "remote", who.RemoteAddr, "agents", len(agents), "grace", grace)
}

// staleGraceOver promises logged off the agents conn left logged on that
// no other connection logged on since.
func (g *Gateway) staleGraceOver(conn uint64, agents []string) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	var still []string
	for _, a := range agents {
		if g.loginOwner[a] == conn { // not logged on again by another connection
			delete(g.loginOwner, a)
			still = append(still, a)
		}
	}
	g.mu.Unlock()
	for _, user := range still {
		v := g.User(user)
		if v.HostUserID == "" && (v.ACDState == "" || v.ACDState == xsi.ACDSignOut) {
			continue // logged off meanwhile, some other way
		}
		g.log.Info("gateway: stale login; logging the agent off", "agent", user, "conn", conn)
		g.endingBy(user, EndStale)
		g.promise(user, hoteling.Want{ACD: xsi.ACDSignOut}, OriginStaleLogin, true)
	}
}

func (g *Gateway) staleLogoutTimeout() time.Duration {
	if g.cfg().RequestTimeout > 0 {
		return g.cfg().RequestTimeout
	}
	return 30 * time.Second
}

// Close stops the gateway's own work (the connector is stopping): user
// loads in flight give up, nothing more is cleaned up.
func (g *Gateway) Close() {
	g.loadCancel()
	defer g.loads.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
}
