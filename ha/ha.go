// Package ha decides which instance of an active/standby pair serves
// (issue 18): a lease in the shared store (store.Cluster), named after the
// channel set, with a fencing token that grows at every change of holder.
//
// A standby tries to take the lease every sixth of its TTL. Once it has
// it, the instance is active: it sets the store's fence to the lease's
// token, so that every write it makes is refused once the lease is another
// instance's, and renews the lease every third of the TTL. Its own deadline
// is measured from when it sent the last request that took or renewed the
// lease, plus the TTL less a safety margin (a sixth of it): the database
// let the lease run at least TTL from some instant after that request was
// sent, so an active that has not renewed by its deadline stops serving
// before anyone else can take the lease. Renewal errors are retried until
// the deadline; at the deadline, or when the store says the lease is lost,
// the instance is deposed and must stop serving at once. A clean stop
// releases the lease, so that a standby takes over at its next try.
//
// Every instance also reports itself to the store (Cluster.Heartbeat) for
// /api/v1/cluster: role, scope, admin URL, health.
package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/broadworks-connector/connector/store"
)

// Role is what an instance does in its pair.
type Role string

// Roles, as /api/v1/cluster and connector_ha_role name them.
const (
	RoleStandalone Role = "standalone" // no pair (not an Elector's)
	RoleStandby    Role = "standby"    // waiting for the lease
	RoleActive     Role = "active"     // holds the lease and serves
	RoleDeposed    Role = "deposed"    // lost the lease; stops at once
	RoleStopping   Role = "stopping"   // shutting down cleanly
)

// roles an Elector goes through (connector_ha_role's label values).
var roles = []Role{RoleStandby, RoleActive, RoleDeposed, RoleStopping}

// ErrDeposed is what Run returns once the instance lost the lease.
var ErrDeposed = errors.New("ha: deposed")

// Config is what an Elector needs. Cluster, LeaseName, InstanceID and TTL
// are required.
type Config struct {
	Cluster    store.Cluster
	LeaseName  string // xsi.channel_set_id: one lease per pair
	InstanceID string // ha.instance_id
	TTL        time.Duration
	// HeartbeatInterval: how often to report to the store; 0 means a second.
	HeartbeatInterval time.Duration
	// Instance is what a heartbeat reports; the Elector fills in ID,
	// ChannelSet and Role. Nil reports only those.
	Instance func() store.Instance
	// OnActive is called, from Run's goroutine, once the lease is taken
	// and the fence set: the instance starts serving. It must not block
	// (the lease is renewed only after it returns).
	OnActive func(store.Lease)
	// OnDeposed is called, from Run's goroutine, when the lease is lost:
	// the instance must stop serving at once. It must not block.
	OnDeposed func(reason string)
	Logger    *slog.Logger
}

// Elector runs one instance's side of the lease.
type Elector struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	abandon atomic.Bool // a stop that does not release the lease
	// warnedSelfHeld: the lease was found held under this instance's ID
	// by another process, and that was logged (Run's goroutine only).
	warnedSelfHeld bool
	role           atomic.Pointer[Role]
	roleChanged    chan struct{}               // one pending: a heartbeat reports the new role now
	lease          atomic.Pointer[store.Lease] // while active
	ran            atomic.Bool
}

// New checks cfg and builds an Elector; Run runs it.
func New(cfg Config) (*Elector, error) {
	switch {
	case cfg.Cluster == nil:
		return nil, errors.New("ha: no cluster store")
	case cfg.LeaseName == "":
		return nil, errors.New("ha: no lease name (xsi.channel_set_id)")
	case cfg.InstanceID == "":
		return nil, errors.New("ha: no instance id (ha.instance_id)")
	case cfg.TTL < 6*time.Millisecond:
		return nil, fmt.Errorf("ha: lease ttl %s too short", cfg.TTL)
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Elector{cfg: cfg, log: cfg.Logger.With("component", "ha", "instance_id", cfg.InstanceID, "lease", cfg.LeaseName),
		metrics: newMetrics(), roleChanged: make(chan struct{}, 1)}
	e.setRole(RoleStandby)
	return e, nil
}

// The lease's rhythm, in fractions of the TTL.
func (e *Elector) standbyRetry() time.Duration {
	// A little jitter, so that standbys started together do not ask in
	// step; bounded to ±10 %.
	base := e.cfg.TTL / 6
	return base*9/10 + time.Duration(rand.Int64N(int64(base)/5+1))
}
func (e *Elector) renewEvery() time.Duration { return e.cfg.TTL / 3 }
func (e *Elector) renewRetry() time.Duration { return e.cfg.TTL / 12 }

// Margin is how long before the lease can expire in the database an
// active that could not renew stops serving.
func (e *Elector) Margin() time.Duration { return e.cfg.TTL / 6 }

// Role is the instance's role now.
func (e *Elector) Role() Role { return *e.role.Load() }

// Lease is the lease while the instance is active.
func (e *Elector) Lease() (store.Lease, bool) {
	if l := e.lease.Load(); l != nil {
		return *l, true
	}
	return store.Lease{}, false
}

func (e *Elector) setRole(r Role) {
	e.role.Store(&r)
	for _, each := range roles {
		v := 0.0
		if each == r {
			v = 1
		}
		e.metrics.role.WithLabelValues(string(each)).Set(v)
	}
	select {
	case e.roleChanged <- struct{}{}:
	default:
	}
}

// Run stands by until the lease is this instance's, serves (OnActive) and
// keeps the lease until ctx ends or the lease is lost (OnDeposed). When
// ctx ends it releases the lease (if held) and returns nil; after a
// deposition it returns ErrDeposed: a deposed instance does not stand by
// again in the same process (its parts are stopped for good), its
// supervisor starts it anew. Run runs once.
func (e *Elector) Run(ctx context.Context) error {
	if !e.ran.CompareAndSwap(false, true) {
		return errors.New("ha: Run called twice")
	}
	hbCtx, stopHeartbeats := context.WithCancel(context.Background())
	var heartbeats sync.WaitGroup
	heartbeats.Add(1)
	go func() {
		defer heartbeats.Done()
		e.heartbeats(hbCtx)
	}()
	defer func() {
		stopHeartbeats()
		heartbeats.Wait()
		if !e.abandon.Load() {
			e.heartbeat(context.Background()) // the last word: stopping or deposed
		}
	}()

	e.log.Info("ha: standing by", "reason", "waiting for the lease", "lease_ttl", e.cfg.TTL)
	lease, sent, ok := e.standby(ctx)
	if !ok {
		e.setRole(RoleStopping)
		e.log.Info("ha: stopped while standing by")
		return nil
	}
	return e.active(ctx, lease, sent)
}

// standby tries to take the lease until it has it (true) or ctx ends.
func (e *Elector) standby(ctx context.Context) (store.Lease, time.Time, bool) {
	var holder string
	var storeErr error
	for {
		sent := time.Now()
		actx, cancel := context.WithTimeout(ctx, e.renewEvery())
		l, err := e.acquire(actx)
		cancel()
		switch {
		case err == nil:
			reason := "the lease was free"
			if holder != "" {
				reason = "the lease of " + holder + " expired or was released"
			}
			e.becomeActive(l, reason)
			return l, sent, true
		case ctx.Err() != nil:
			return store.Lease{}, time.Time{}, false
		case errors.Is(err, store.ErrLeaseHeld):
			if storeErr != nil {
				e.log.Info("ha: store reachable again", "role", RoleStandby)
				storeErr = nil
			}
			if l.Holder != holder {
				holder = l.Holder
				e.log.Info("ha: standing by", "reason", "the lease is held", "holder", l.Holder, "token", l.Token)
			}
		default:
			if storeErr == nil {
				e.log.Warn("ha: cannot reach the store to take the lease; still standing by", "error", err)
			}
			storeErr = err
		}
		t := time.NewTimer(e.standbyRetry())
		select {
		case <-ctx.Done():
			t.Stop()
			return store.Lease{}, time.Time{}, false
		case <-t.C:
		}
	}
}

// acquire takes the lease unless it is held, which includes held under
// this instance's own ID but not by this process: AcquireLease would renew
// that one, and two processes would serve under one token. It is this
// instance's previous run (which crashed less than a TTL ago: its lease
// expires first, on the local clock's reading of the store's expiry) or
// another process configured with the same ha.instance_id.
func (e *Elector) acquire(ctx context.Context) (store.Lease, error) {
	cur, ok, err := e.cfg.Cluster.LeaseOf(ctx, e.cfg.LeaseName)
	if err != nil {
		return store.Lease{}, err
	}
	if ok && cur.Holder == e.cfg.InstanceID && time.Now().Before(cur.Expires) {
		if !e.warnedSelfHeld {
			e.warnedSelfHeld = true
			e.log.Warn("ha: the lease is held under this ha.instance_id by another process (this instance's previous run, or another instance with the same ha.instance_id); waiting for it to expire",
				"token", cur.Token, "expires", cur.Expires)
		}
		return cur, fmt.Errorf("ha: %s held under this instance id by another process: %w", e.cfg.LeaseName, store.ErrLeaseHeld)
	}
	return e.cfg.Cluster.AcquireLease(ctx, e.cfg.LeaseName, e.cfg.InstanceID, e.cfg.TTL)
}

func (e *Elector) becomeActive(l store.Lease, reason string) {
	e.cfg.Cluster.SetFence(store.Fence{Name: l.Name, Holder: l.Holder, Token: l.Token})
	e.lease.Store(&l)
	e.setRole(RoleActive)
	e.metrics.takeovers.Inc()
	e.metrics.token.Set(float64(l.Token))
	e.log.Info("ha: became active", "reason", reason, "token", l.Token)
	if e.cfg.OnActive != nil {
		e.cfg.OnActive(l)
	}
}

// What woke the active's loop.
const (
	eventStop = iota
	eventDeadline
	eventRenewDue
	eventRenewed
)

type renewal struct {
	lease store.Lease
	sent  time.Time
	err   error
}

// active keeps the lease taken by the request sent at sent until ctx ends
// (release, nil) or the lease is lost (ErrDeposed).
func (e *Elector) active(ctx context.Context, lease store.Lease, sent time.Time) error {
	deadline := sent.Add(e.cfg.TTL - e.Margin())
	next := sent.Add(e.renewEvery())
	results := make(chan renewal, 1)
	var inFlight context.CancelFunc // set while a renewal is out
	var renewing sync.WaitGroup
	defer func() {
		if inFlight != nil {
			inFlight()
		}
		renewing.Wait()
	}()
	var failure error // the last renewal's, while they fail
	for {
		var renewDue <-chan time.Time
		renewTimer := time.NewTimer(time.Until(next))
		if inFlight == nil {
			renewDue = renewTimer.C
		}
		expiry := time.NewTimer(time.Until(deadline))
		var r renewal
		var event int
		select {
		case <-ctx.Done():
			event = eventStop
		case <-expiry.C:
			event = eventDeadline
		case <-renewDue:
			event = eventRenewDue
		case r = <-results:
			event = eventRenewed
		}
		renewTimer.Stop()
		expiry.Stop()
		switch event {
		case eventStop:
			if inFlight != nil {
				inFlight()
				inFlight = nil
			}
			renewing.Wait()
			e.release(lease, deadline)
			return nil
		case eventDeadline:
			cause := "no renewal"
			if failure != nil {
				cause = failure.Error()
			}
			return e.depose(fmt.Sprintf("the lease could not be renewed before its deadline (%s)", cause))
		case eventRenewDue:
			rctx, cancel := context.WithDeadline(context.Background(), deadline)
			inFlight = cancel
			renewing.Add(1)
			go func(l store.Lease) {
				defer renewing.Done()
				s := time.Now()
				nl, err := e.cfg.Cluster.RenewLease(rctx, l, e.cfg.TTL)
				results <- renewal{lease: nl, sent: s, err: err}
			}(lease)
		case eventRenewed:
			inFlight()
			inFlight = nil
			switch {
			case r.err == nil:
				if failure != nil {
					e.log.Info("ha: lease renewed again", "token", r.lease.Token)
					failure = nil
				}
				lease = r.lease
				e.lease.Store(&lease)
				deadline = r.sent.Add(e.cfg.TTL - e.Margin())
				next = r.sent.Add(e.renewEvery())
			case errors.Is(r.err, store.ErrLeaseLost):
				return e.depose("the store says the lease is lost: " + r.err.Error())
			default:
				e.metrics.renewFailures.Inc()
				if failure == nil {
					e.log.Warn("ha: lease renewal failed; retrying until the deadline", "error", r.err,
						"deadline_in", time.Until(deadline).Round(time.Millisecond))
				}
				failure = r.err
				next = time.Now().Add(e.renewRetry())
			}
		}
	}
}

func (e *Elector) depose(reason string) error {
	e.lease.Store(nil)
	e.setRole(RoleDeposed)
	e.metrics.token.Set(0)
	e.log.Error("ha: deposed", "reason", reason)
	if e.cfg.OnDeposed != nil {
		e.cfg.OnDeposed(reason)
	}
	return ErrDeposed
}

// Abandon makes the end of Run leave the lease to expire instead of
// releasing it, as a killed process would (the connector's simulated
// crash).
func (e *Elector) Abandon() { e.abandon.Store(true) }

// release gives the lease up so that a standby takes over at its next
// try; it waits no longer than the lease would hold anyway.
func (e *Elector) release(l store.Lease, deadline time.Time) {
	e.lease.Store(nil)
	e.setRole(RoleStopping)
	e.metrics.token.Set(0)
	if e.abandon.Load() {
		e.log.Info("ha: lease abandoned; it expires on its own", "token", l.Token)
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := e.cfg.Cluster.ReleaseLease(ctx, l); err != nil {
		e.log.Warn("ha: lease not released; it expires on its own", "error", err, "token", l.Token)
		return
	}
	e.log.Info("ha: lease released", "token", l.Token)
}

// heartbeats reports the instance every HeartbeatInterval until ctx ends.
func (e *Elector) heartbeats(ctx context.Context) {
	Report(ctx, e.cfg.Cluster, e.cfg.HeartbeatInterval, e.instance, e.roleChanged, e.log)
}

func (e *Elector) instance() store.Instance {
	var inst store.Instance
	if e.cfg.Instance != nil {
		inst = e.cfg.Instance()
	}
	inst.ID, inst.ChannelSet, inst.Role = e.cfg.InstanceID, e.cfg.LeaseName, string(e.Role())
	return inst
}

func (e *Elector) heartbeat(ctx context.Context) error {
	return beat(ctx, e.cfg.Cluster, e.cfg.HeartbeatInterval, e.instance())
}

// Report records instance() in the store every interval until ctx ends,
// and at once when changed (nil: never) says it changed: the heartbeat
// /api/v1/cluster lists. An Elector reports its own (a new role without
// waiting for the interval); a standalone instance on a shared store
// (scale-out by scope) runs Report. A failing heartbeat is logged once,
// and its recovery once.
func Report(ctx context.Context, cl store.Cluster, interval time.Duration, instance func() store.Instance, changed <-chan struct{}, log *slog.Logger) {
	var failing error
	for {
		err := beat(ctx, cl, interval, instance())
		switch {
		case ctx.Err() != nil:
		case err != nil && failing == nil:
			log.Warn("ha: heartbeat failed", "error", err)
		case err == nil && failing != nil:
			log.Info("ha: heartbeat recorded again")
		}
		failing = err
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-changed:
			t.Stop()
		}
	}
}

// beat records inst once, waiting no longer than interval.
func beat(ctx context.Context, cl store.Cluster, interval time.Duration, inst store.Instance) error {
	ctx, cancel := context.WithTimeout(ctx, interval)
	defer cancel()
	return cl.Heartbeat(ctx, inst)
}
