package gateway

import (
	"context"
	"time"

	"github.com/broadworks-connector/connector/csta"
)

// Stale logins: an agent logged on by a CTI connection that then vanished
// without logging it off is logged off after Config.StaleLoginGrace (off
// when 0), unless another connection logged it on meanwhile; the journal
// records it as "stale".

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
	if g.cfg().StaleLoginGrace <= 0 {
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
	t := time.AfterFunc(g.cfg().StaleLoginGrace, func() { g.cleanStale(who.ConnID, agents) })
	g.staleTimers[who.ConnID] = t
	g.mu.Unlock()
	g.log.Info("gateway: CTI connection gone with agents logged on; logging them off after the grace period",
		"conn", who.ConnID, "remote", who.RemoteAddr, "agents", len(agents), "grace", g.cfg().StaleLoginGrace)
}

func (g *Gateway) cleanStale(conn uint64, agents []string) {
	g.mu.Lock()
	delete(g.staleTimers, conn)
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
		if v.HostUserID == "" && (v.ACDState == "" || v.ACDState == "Sign-Out") {
			continue // logged off meanwhile, some other way
		}
		ctx, cancel := context.WithTimeout(context.Background(), g.staleLogoutTimeout())
		err := g.logoutAgent(ctx, g.dir().AgentID(user), EndStale)
		cancel()
		if err != nil {
			g.log.Warn("gateway: stale login not cleaned", "agent", user, "err", err)
		} else {
			g.log.Info("gateway: stale login cleaned", "agent", user, "conn", conn)
		}
	}
}

func (g *Gateway) staleLogoutTimeout() time.Duration {
	if g.cfg().RequestTimeout > 0 {
		return g.cfg().RequestTimeout
	}
	return 30 * time.Second
}

// Close stops pending stale-login cleanups (the connector is stopping).
func (g *Gateway) Close() {
	g.loadCancel() // user loads in flight give up
	defer g.loads.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for conn, t := range g.staleTimers {
		t.Stop()
		delete(g.staleTimers, conn)
	}
	g.stopRechecksLocked()
}
