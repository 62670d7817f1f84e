package store

import (
	"context"
	"errors"
	"time"
)

// A store shared by several connector instances (the PostgreSQL driver)
// also decides which instance is active (issue 18): a lease per channel
// set, with a fencing token that every write made under it carries.

// The kinds of lease failure callers tell apart; match with errors.Is.
var (
	ErrLeaseHeld = errors.New("store: lease held by another instance") // Acquire: someone else holds it and it has not expired
	ErrLeaseLost = errors.New("store: lease lost")                     // Renew: expired, taken over, or released
	ErrFenced    = errors.New("store: write refused: fencing token no longer holds the lease")
	// ErrUnavailable: the database did not answer (connection refused or
	// reset, the call's deadline passed); the write may or may not have
	// landed. Any database error the server itself answered is not this.
	ErrUnavailable = errors.New("store: database unavailable")
)

// Lease is who holds the right to serve one channel set (the lease's
// Name, xsi.channel_set_id), with the fencing token: a number that grows
// by one at every change of holder and never goes back. Expires is on the
// database's clock; a holder measures its own deadline from when it sent
// the request that took or renewed the lease.
type Lease struct {
	Name    string
	Holder  string // ha.instance_id
	Token   int64
	Expires time.Time
}

// Fence is what a write must still hold to land: the lease named Name held
// by Holder under Token, not expired. The zero Fence fences nothing
// (standalone instances).
type Fence struct {
	Name   string
	Holder string
	Token  int64
}

// Instance is one connector instance as it reports itself to the others.
type Instance struct {
	ID         string   // ha.instance_id
	ChannelSet string   // xsi.channel_set_id: the pair it belongs to
	Role       string   // standalone, active, standby, stopping
	Scope      []string // xsi.scope
	Admin      string   // its admin URL, for operators
	Health     string   // ok, or why not (as /readyz says it)
	Started    time.Time
	Seen       time.Time // the last heartbeat, on the database's clock
}

// Cluster is the part of a shared store that coordinates instances.
type Cluster interface {
	// AcquireLease takes the lease name for holder for ttl when it is free,
	// expired or already holder's (then it is renewed and keeps its token);
	// held by another: ErrLeaseHeld, with the current lease.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error)
	// RenewLease extends l by ttl if l still holds (same holder and token,
	// not expired): else ErrLeaseLost.
	RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	// ReleaseLease gives l up (it expires now) if it still holds.
	ReleaseLease(ctx context.Context, l Lease) error
	// LeaseOf is the lease name as it stands; false when nobody ever held it.
	LeaseOf(ctx context.Context, name string) (Lease, bool, error)
	// SetFence makes every later write carry f (checked in the write's own
	// transaction: a write under a stale fence fails with ErrFenced and
	// changes nothing). The zero Fence turns fencing off.
	SetFence(f Fence)
	// Heartbeat records inst (upsert by ID; Seen is set by the database).
	Heartbeat(ctx context.Context, inst Instance) error
	// Instances lists every instance that ever reported, by ID.
	Instances(ctx context.Context) ([]Instance, error)
}
