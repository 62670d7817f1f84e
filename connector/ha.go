package connector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/broadworks-connector/connector/admin"
	"github.com/broadworks-connector/connector/ha"
	"github.com/broadworks-connector/connector/store"
)

// Active/standby (ha.mode: active-standby, issue 18). Start opens only the
// admin server and runs the lease (package ha); the CSTA and SIP listeners
// stay closed and the XSI link is not started. Once the lease is this
// instance's, the fence is set and the connector starts the rest as a
// standalone one does: the CSTA listener, the XSI link under the same
// xsi.channel_set_id (the channel set adopts the subscriptions there), the
// gateway's recovery from the shared store (intents, promises: the
// reconciler finishes what the instance before left half done), phone sync
// with the persisted dialogs. When the lease is lost the connector stops
// serving at once, as a killed process would: it closes the crash gate
// (crash.go: the CSTA front end silenced, no Xsi-Actions request and no
// store write passes), and Done tells its owner, which ends the process so
// that its supervisor starts it again as a standby.

// ErrDeposed is Err after the connector lost its lease.
var ErrDeposed = errors.New("connector: deposed: the lease is no longer this instance's")

// WithCluster is the shared store's cluster side (lease, fence,
// heartbeats) for an active/standby connector whose store does not
// provide one itself: tests pairing connectors through internal/memcluster.
// Production takes it from the PostgreSQL store.
func WithCluster(cl store.Cluster) Option { return func(o *options) { o.cluster = cl } }

// haState is the lease side of an active/standby connector.
type haState struct {
	elector *ha.Elector
	cancel  context.CancelFunc // ends the elector's Run
	ran     chan struct{}      // closed when Run returned
	serving atomic.Bool        // the parts are started: the instance serves
	// activations tracks the goroutine OnActive starts.
	activations sync.WaitGroup
}

// buildHA finds the cluster side of a shared store and builds the elector
// of an active/standby connector (nil in standalone mode).
func (c *Connector) buildHA() error {
	cfg := c.Config()
	c.cluster = c.opts.cluster
	if c.cluster == nil {
		c.cluster, _ = any(c.store).(store.Cluster) // nil on the embedded store
	}
	if !cfg.ActiveStandby() {
		return nil
	}
	if c.cluster == nil {
		return errors.New("ha.mode: active-standby needs a store shared by the instances (store.driver: postgres)")
	}
	h := &haState{ran: make(chan struct{})}
	e, err := ha.New(ha.Config{
		Cluster:           c.cluster,
		LeaseName:         cfg.XSILink.ChannelSetID,
		InstanceID:        cfg.InstanceName(),
		TTL:               cfg.HA.LeaseTTL,
		HeartbeatInterval: cfg.HA.HeartbeatInterval,
		Instance:          c.instance,
		OnActive: func(l store.Lease) {
			h.activations.Add(1)
			go func() {
				defer h.activations.Done()
				c.activate(l)
			}()
		},
		OnDeposed: c.depose,
		Logger:    c.logger,
	})
	if err != nil {
		return err
	}
	h.elector = e
	c.ha = h
	return nil
}

// instance is what this instance reports of itself to the shared store
// (the elector or reportInstance fill in role and names).
func (c *Connector) instance() store.Instance {
	cfg := c.Config()
	return store.Instance{ID: cfg.InstanceName(), ChannelSet: cfg.XSILink.ChannelSetID, Role: string(ha.RoleStandalone),
		Scope: slices.Clone(cfg.XSILink.Scope), Admin: c.adminURL(), Health: c.health(), Started: c.startedAt}
}

// startReporting has a standalone instance on a shared store report itself
// there (scale-out by scope: every instance's /api/v1/cluster lists all).
func (c *Connector) startReporting() {
	if c.cluster == nil || c.ha != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.stopReporting = func() {
		cancel()
		<-done
	}
	go func() {
		defer close(done)
		ha.Report(ctx, c.cluster, c.Config().HA.HeartbeatInterval, c.instance, nil, c.logger.With("component", "ha"))
	}()
}

// startStandby opens the admin server and runs the lease.
func (c *Connector) startStandby() error {
	if err := c.admin.Start(); err != nil {
		return err
	}
	c.logAdmin()
	c.logger.Info("connector standing by", "instance_id", c.Config().InstanceName(), "admin", c.AdminAddr(),
		"channel_set_id", c.Config().XSILink.ChannelSetID)
	ctx, cancel := context.WithCancel(context.Background())
	c.ha.cancel = cancel
	go func() {
		defer close(c.ha.ran)
		if err := c.ha.elector.Run(ctx); err != nil && !errors.Is(err, ha.ErrDeposed) {
			c.end(fmt.Errorf("connector: lease: %w", err))
		}
	}()
	return nil
}

// activate starts serving once the lease is this instance's (the fence is
// set): the CSTA listener, the XSI link and recovery, phone sync.
func (c *Connector) activate(l store.Lease) {
	c.life.Lock()
	defer c.life.Unlock()
	if c.stopped || c.gate.dead() {
		return
	}
	// The channel set first (it adopts the subscriptions the instance
	// before left; the gateway then loads the promises it left and the
	// reconciler finishes what it left half done, as BroadWorks shows it),
	// then the listeners: a CTI client that comes back finds the link up.
	steps := []func() error{c.startLink, c.front.Start, func() error { return c.startPhones(context.Background()) }}
	for _, step := range steps {
		if c.gate.dead() {
			return // deposed while starting: start nothing more
		}
		if err := step(); err != nil {
			c.logger.Error("ha: cannot take over", "error", err, "token", l.Token)
			c.end(fmt.Errorf("connector: taking over: %w", err))
			return
		}
	}
	if c.gate.dead() {
		return
	}
	c.ha.serving.Store(true)
	c.logListening()
}

// depose stops serving at once (the elector's OnDeposed): the gate closes
// as at a crash, and the owner is told to end the process.
func (c *Connector) depose(reason string) {
	c.gate.die()
	c.end(fmt.Errorf("%w (%s)", ErrDeposed, reason))
}

// end records why the connector stopped serving on its own and closes
// Done (the first reason wins).
func (c *Connector) end(err error) {
	c.endOnce.Do(func() {
		c.endErr = err
		close(c.ended)
	})
}

// Done is closed when the connector stopped serving on its own: deposed
// (Err is ErrDeposed) or unable to take over; its owner then shuts it down
// and ends the process with a failure.
func (c *Connector) Done() <-chan struct{} { return c.ended }

// Err is why Done closed (nil before).
func (c *Connector) Err() error {
	select {
	case <-c.ended:
		return c.endErr
	default:
		return nil
	}
}

// stopHA ends the lease: a clean stop releases it (the standby takes
// over at its next try).
func (c *Connector) stopHA() {
	if c.ha == nil || c.ha.cancel == nil {
		return
	}
	if c.gate.dead() {
		// A crashed process gives nothing up: the lease expires on its
		// own (a deposed one is no longer this instance's anyway).
		c.ha.elector.Abandon()
	}
	c.ha.cancel()
	<-c.ha.ran
}

// Role is the instance's role: standalone, or its role in its pair.
func (c *Connector) Role() ha.Role {
	if c.ha == nil {
		return ha.RoleStandalone
	}
	return c.ha.elector.Role()
}

// notServing is /readyz's reason while an instance of a pair does not
// serve; "" when it does (or is standalone).
func (c *Connector) notServing() string {
	if c.ha == nil {
		return ""
	}
	switch role := c.ha.elector.Role(); {
	case role != ha.RoleActive:
		return string(role)
	case !c.ha.serving.Load():
		return "taking over"
	}
	return ""
}

// servedWhenActive answers 503 while the instance does not serve (the
// CSTA WebSocket on the admin port of a standby).
func (c *Connector) servedWhenActive(h http.Handler) http.Handler {
	if c.ha == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reason := c.notServing(); reason != "" {
			http.Error(w, "not serving: "+reason, http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// health is what the heartbeat reports: ok, or /readyz's reason.
func (c *Connector) health() string {
	if ok, reason := (adminView{c}).ready(); !ok {
		return reason
	}
	return "ok"
}

func (c *Connector) adminURL() string {
	if a := c.admin.Addr(); a != nil {
		return c.scheme + "://" + a.String() + "/"
	}
	return ""
}

// clusterView is /api/v1/cluster: the instances the shared store knows,
// with their channel sets' leases; on a store shared with nobody, this
// instance alone.
type clusterView struct{ c *Connector }

func (v clusterView) Instances(ctx context.Context) ([]admin.ClusterInstance, error) {
	c := v.c
	self := c.Config().InstanceName()
	if c.cluster == nil {
		in := c.instance()
		return []admin.ClusterInstance{{ID: in.ID, ChannelSet: in.ChannelSet, Role: in.Role, Scope: in.Scope, Admin: in.Admin,
			Health: in.Health, Started: in.Started, Seen: time.Now(), Self: true}}, nil
	}
	insts, err := c.cluster.Instances(ctx)
	if err != nil {
		return nil, err
	}
	leases := map[string]*admin.ClusterLease{}
	out := make([]admin.ClusterInstance, 0, len(insts))
	for _, in := range insts {
		l, seen := leases[in.ChannelSet]
		if !seen && in.ChannelSet != "" {
			lease, ok, err := c.cluster.LeaseOf(ctx, in.ChannelSet)
			if err != nil {
				return nil, err
			}
			if ok {
				l = &admin.ClusterLease{Holder: lease.Holder, Token: lease.Token, Expires: lease.Expires}
			}
			leases[in.ChannelSet] = l
		}
		out = append(out, admin.ClusterInstance{ID: in.ID, ChannelSet: in.ChannelSet, Role: in.Role, Scope: in.Scope,
			Admin: in.Admin, Health: in.Health, Started: in.Started, Seen: in.Seen, Self: in.ID == self, Lease: l})
	}
	return out, nil
}

var _ admin.Cluster = clusterView{}
