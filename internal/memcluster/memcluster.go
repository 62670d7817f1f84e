// Package memcluster is an in-memory store.Cluster for tests: the lease,
// fence and heartbeat semantics of a shared store (store/cluster.go) on the
// local clock (the fake one inside a testing/synctest bubble), with faults
// a test injects per instance: the store unreachable, or not answering.
//
// A DB is the shared database; each instance talks to it through its own
// Cluster (a connection with its own fence), as each connector has its own
// store handle.
package memcluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/broadworks-connector/connector/store"
)

// ErrUnreachable is what a Cluster cut off with Cut returns.
var ErrUnreachable = errors.New("memcluster: database unreachable")

// DB is the shared state: leases by name and instances by ID.
type DB struct {
	mu        sync.Mutex
	leases    map[string]store.Lease
	tokens    map[string]int64 // the last token handed out per lease name
	instances map[string]store.Instance
	writes    []string // Write's log, in order
}

// New is an empty database.
func New() *DB {
	return &DB{leases: map[string]store.Lease{}, tokens: map[string]int64{}, instances: map[string]store.Instance{}}
}

// Connect is a new connection to db, fencing nothing.
func (db *DB) Connect() *Cluster { return &Cluster{db: db} }

// Writes are the writes that landed (Cluster.Write), in order.
func (db *DB) Writes() []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	return slices.Clone(db.writes)
}

// Lease is the lease name as it stands (false: never held).
func (db *DB) Lease(name string) (store.Lease, bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	l, ok := db.leases[name]
	return l, ok
}

// Cluster is one instance's connection to a DB.
type Cluster struct {
	db *DB

	mu    sync.Mutex
	fence store.Fence
	fault fault
}

type fault int

const (
	healthy fault = iota
	cut           // every call fails at once with ErrUnreachable
	stalled       // every call waits for its context to end
)

var _ store.Cluster = (*Cluster)(nil)

// Cut makes every later call fail at once, as a refused connection does.
func (c *Cluster) Cut() { c.setFault(cut) }

// Stall makes every later call hang until its context ends, as a
// partitioned network does.
func (c *Cluster) Stall() { c.setFault(stalled) }

// Heal undoes Cut and Stall.
func (c *Cluster) Heal() { c.setFault(healthy) }

func (c *Cluster) setFault(f fault) {
	c.mu.Lock()
	c.fault = f
	c.mu.Unlock()
}

// reach is the way to the database: nil, or the failure the fault makes.
func (c *Cluster) reach(ctx context.Context) error {
	c.mu.Lock()
	f := c.fault
	c.mu.Unlock()
	switch f {
	case cut:
		return ErrUnreachable
	case stalled:
		<-ctx.Done()
		return ctx.Err()
	}
	return ctx.Err()
}

func (c *Cluster) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (store.Lease, error) {
	if err := c.reach(ctx); err != nil {
		return store.Lease{}, err
	}
	db := c.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := time.Now()
	l, held := db.leases[name]
	switch {
	case held && l.Holder == holder && now.Before(l.Expires):
		l.Expires = now.Add(ttl)
	case held && now.Before(l.Expires):
		return l, fmt.Errorf("memcluster: %s held by %s: %w", name, l.Holder, store.ErrLeaseHeld)
	default:
		db.tokens[name]++
		l = store.Lease{Name: name, Holder: holder, Token: db.tokens[name], Expires: now.Add(ttl)}
	}
	db.leases[name] = l
	return l, nil
}

func (c *Cluster) RenewLease(ctx context.Context, l store.Lease, ttl time.Duration) (store.Lease, error) {
	if err := c.reach(ctx); err != nil {
		return store.Lease{}, err
	}
	db := c.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := time.Now()
	cur, held := db.leases[l.Name]
	if !held || cur.Holder != l.Holder || cur.Token != l.Token || !now.Before(cur.Expires) {
		return store.Lease{}, fmt.Errorf("memcluster: %s token %d: %w", l.Name, l.Token, store.ErrLeaseLost)
	}
	cur.Expires = now.Add(ttl)
	db.leases[l.Name] = cur
	return cur, nil
}

func (c *Cluster) ReleaseLease(ctx context.Context, l store.Lease) error {
	if err := c.reach(ctx); err != nil {
		return err
	}
	db := c.db
	db.mu.Lock()
	defer db.mu.Unlock()
	cur, held := db.leases[l.Name]
	if held && cur.Holder == l.Holder && cur.Token == l.Token {
		cur.Expires = time.Now()
		db.leases[l.Name] = cur
	}
	return nil
}

func (c *Cluster) LeaseOf(ctx context.Context, name string) (store.Lease, bool, error) {
	if err := c.reach(ctx); err != nil {
		return store.Lease{}, false, err
	}
	l, ok := c.db.Lease(name)
	return l, ok, nil
}

func (c *Cluster) SetFence(f store.Fence) {
	c.mu.Lock()
	c.fence = f
	c.mu.Unlock()
}

// Fence is the fence set last.
func (c *Cluster) Fence() store.Fence {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fence
}

// Write records what under the connection's fence, as a store write
// would: ErrFenced, and nothing recorded, when the fence no longer holds.
func (c *Cluster) Write(ctx context.Context, what string) error {
	if err := c.reach(ctx); err != nil {
		return err
	}
	f := c.Fence()
	db := c.db
	db.mu.Lock()
	defer db.mu.Unlock()
	if f != (store.Fence{}) {
		cur, held := db.leases[f.Name]
		if !held || cur.Holder != f.Holder || cur.Token != f.Token || !time.Now().Before(cur.Expires) {
			return store.ErrFenced
		}
	}
	db.writes = append(db.writes, what)
	return nil
}

func (c *Cluster) Heartbeat(ctx context.Context, inst store.Instance) error {
	if err := c.reach(ctx); err != nil {
		return err
	}
	db := c.db
	db.mu.Lock()
	defer db.mu.Unlock()
	inst.Scope = slices.Clone(inst.Scope)
	inst.Seen = time.Now()
	db.instances[inst.ID] = inst
	return nil
}

func (c *Cluster) Instances(ctx context.Context) ([]store.Instance, error) {
	if err := c.reach(ctx); err != nil {
		return nil, err
	}
	db := c.db
	db.mu.Lock()
	defer db.mu.Unlock()
	out := make([]store.Instance, 0, len(db.instances))
	for _, inst := range db.instances {
		inst.Scope = slices.Clone(inst.Scope)
		out = append(out, inst)
	}
	slices.SortFunc(out, func(a, b store.Instance) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Expire ends the lease name now, as if its holder had not renewed it in
// time (its holder's next renewal finds it lost).
func (db *DB) Expire(name string) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if l, ok := db.leases[name]; ok {
		l.Expires = time.Now()
		db.leases[name] = l
	}
}

// Instance is the instance id as it last reported itself.
func (db *DB) Instance(id string) (store.Instance, bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	inst, ok := db.instances[id]
	return inst, ok
}
