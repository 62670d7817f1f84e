package ha_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/broadworks-connector/connector/ha"
	"github.com/broadworks-connector/connector/internal/memcluster"
	"github.com/broadworks-connector/connector/internal/promtest"
	"github.com/broadworks-connector/connector/store"
)

const (
	ttl       = 3 * time.Second
	leaseName = "connector-1"
)

// instance is one elector under test and what it was told, on the
// bubble's clock.
type instance struct {
	t        *testing.T
	id       string
	conn     *memcluster.Cluster
	elector  *ha.Elector
	cancel   context.CancelFunc
	done     chan error
	active   atomic.Pointer[time.Time]
	deposed  atomic.Pointer[time.Time]
	token    atomic.Int64
	reason   atomic.Pointer[string]
	activeOn atomic.Int32 // OnActive calls
}

func start(t *testing.T, db *memcluster.DB, id string) *instance {
	t.Helper()
	in := &instance{t: t, id: id, conn: db.Connect(), done: make(chan error, 1)}
	e, err := ha.New(ha.Config{Cluster: in.conn, LeaseName: leaseName, InstanceID: id, TTL: ttl,
		Instance: func() store.Instance {
			return store.Instance{Scope: []string{"group:g@e"}, Admin: "http://" + id, Health: "ok"}
		},
		OnActive: func(l store.Lease) {
			now := time.Now()
			in.active.Store(&now)
			in.token.Store(l.Token)
			in.activeOn.Add(1)
		},
		OnDeposed: func(reason string) {
			now := time.Now()
			in.deposed.Store(&now)
			in.reason.Store(&reason)
		}})
	if err != nil {
		t.Fatal(err)
	}
	in.elector = e
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() { in.done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		synctest.Wait() // Run returned (its result may have been taken)
	})
	synctest.Wait()
	return in
}

func (in *instance) stop() error {
	in.cancel()
	return <-in.done
}

func (in *instance) activeAt() (time.Time, bool) {
	if p := in.active.Load(); p != nil {
		return *p, true
	}
	return time.Time{}, false
}

func (in *instance) deposedAt() (time.Time, bool) {
	if p := in.deposed.Load(); p != nil {
		return *p, true
	}
	return time.Time{}, false
}

func TestFirstInstanceTakesTheLeaseAndKeepsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memcluster.New()
		a := start(t, db, "a")
		if _, ok := a.activeAt(); !ok || a.elector.Role() != ha.RoleActive || a.token.Load() != 1 {
			t.Fatalf("a: role %s, token %d", a.elector.Role(), a.token.Load())
		}
		if f := a.conn.Fence(); f != (store.Fence{Name: leaseName, Holder: "a", Token: 1}) {
			t.Errorf("fence %+v", f)
		}
		b := start(t, db, "b")
		// Many lease lifetimes: a renews, b stands by.
		time.Sleep(10 * ttl)
		synctest.Wait()
		if b.elector.Role() != ha.RoleStandby || b.activeOn.Load() != 0 {
			t.Errorf("b: role %s", b.elector.Role())
		}
		if a.elector.Role() != ha.RoleActive || a.activeOn.Load() != 1 {
			t.Errorf("a: role %s, OnActive %d times", a.elector.Role(), a.activeOn.Load())
		}
		if l, _ := db.Lease(leaseName); l.Holder != "a" || l.Token != 1 {
			t.Errorf("lease %+v", l)
		}
		if err := a.conn.Write(context.Background(), "a1"); err != nil {
			t.Errorf("a's write under its fence: %v", err)
		}
		for _, in := range []*instance{a, b} {
			inst, ok := db.Instance(in.id)
			if !ok || inst.Role != string(in.elector.Role()) || inst.ChannelSet != leaseName || inst.Admin != "http://"+in.id {
				t.Errorf("%s's heartbeat %+v", in.id, inst)
			}
		}
		promtest.WantSamples(t, promtest.Scrape(t, a.elector.Collectors()...), map[string]float64{
			`connector_ha_role{role="active"}`: 1, `connector_ha_role{role="standby"}`: 0,
			"connector_ha_takeovers_total": 1, "connector_ha_lease_token": 1, "connector_ha_lease_renew_failures_total": 0})
		b.stop()
		a.stop()
	})
}

// TestDeposedBeforeTheLeaseExpires: an active cut off from the store
// (requests fail at once, or hang) stops serving strictly before the
// database lets the lease go; the standby takes over within ttl + a
// standby retry; the deposed instance's fence writes nothing more.
func TestDeposedBeforeTheLeaseExpires(t *testing.T) {
	for _, fault := range []string{"cut", "stall"} {
		t.Run(fault, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				db := memcluster.New()
				a := start(t, db, "a")
				b := start(t, db, "b")
				time.Sleep(ttl / 2) // between renewals
				synctest.Wait()
				if fault == "cut" {
					a.conn.Cut()
				} else {
					a.conn.Stall()
				}
				lastRenewed, _ := db.Lease(leaseName)
				err := <-a.done
				if !errors.Is(err, ha.ErrDeposed) {
					t.Fatalf("a's Run: %v", err)
				}
				deposed, ok := a.deposedAt()
				if !ok || a.elector.Role() != ha.RoleDeposed {
					t.Fatalf("a not deposed: role %s", a.elector.Role())
				}
				if !deposed.Before(lastRenewed.Expires) {
					t.Errorf("a deposed at %v, not before the lease expired at %v", deposed, lastRenewed.Expires)
				}
				if r := *a.reason.Load(); r == "" {
					t.Error("no reason")
				}
				time.Sleep(ttl)
				synctest.Wait()
				took, ok := b.activeAt()
				if !ok || b.token.Load() != 2 {
					t.Fatalf("b did not take over: role %s", b.elector.Role())
				}
				if took.Before(lastRenewed.Expires) || took.After(lastRenewed.Expires.Add(ttl/6*11/10)) {
					t.Errorf("b took over at %v; the lease expired at %v", took, lastRenewed.Expires)
				}
				a.conn.Heal()
				if err := a.conn.Write(context.Background(), "stale"); !errors.Is(err, store.ErrFenced) {
					t.Errorf("a's write after b took over: %v, want ErrFenced", err)
				}
				if err := b.conn.Write(context.Background(), "b1"); err != nil {
					t.Errorf("b's write: %v", err)
				}
				if got := a.elector.Collectors(); fault == "cut" {
					promtest.WantSamples(t, promtest.Scrape(t, got...), map[string]float64{`connector_ha_role{role="deposed"}`: 1, `connector_ha_role{role="active"}`: 0, "connector_ha_lease_token": 0})
					if n := promtest.Scrape(t, got...)["connector_ha_lease_renew_failures_total"]; n < 2 {
						t.Errorf("renew failures %v, want the retries counted", n)
					}
				}
				b.stop()
			})
		})
	}
}

// TestRenewalErrorsRetriedUntilTheDeadline: a store that fails for less
// than the margin allows costs nothing but counted failures.
func TestRenewalErrorsRetriedUntilTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memcluster.New()
		a := start(t, db, "a")
		b := start(t, db, "b")
		time.Sleep(ttl/3 - time.Millisecond) // just before a renewal
		a.conn.Cut()
		time.Sleep(ttl / 3) // the renewal and its retries fail; the deadline is ttl*5/6 after the last success
		synctest.Wait()
		a.conn.Heal()
		time.Sleep(3 * ttl)
		synctest.Wait()
		if a.elector.Role() != ha.RoleActive || b.elector.Role() != ha.RoleStandby {
			t.Fatalf("roles a %s, b %s", a.elector.Role(), b.elector.Role())
		}
		if n := promtest.Scrape(t, a.elector.Collectors()...)["connector_ha_lease_renew_failures_total"]; n < 2 {
			t.Errorf("renew failures %v", n)
		}
		b.stop()
		a.stop()
	})
}

// TestLeaseLostDeposesAtOnce: a renewal the store refuses (the lease
// expired or passed on) deposes without waiting for the deadline.
func TestLeaseLostDeposesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memcluster.New()
		a := start(t, db, "a")
		db.Expire(leaseName)
		expired := time.Now()
		if err := <-a.done; !errors.Is(err, ha.ErrDeposed) {
			t.Fatalf("Run: %v", err)
		}
		deposed, _ := a.deposedAt()
		if d := deposed.Sub(expired); d > ttl/3 {
			t.Errorf("deposed %v after the lease was lost, want at the next renewal", d)
		}
	})
}

// TestShutdownReleasesTheLease: a clean stop hands the lease over at the
// standby's next try, not after the TTL.
func TestShutdownReleasesTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memcluster.New()
		a := start(t, db, "a")
		b := start(t, db, "b")
		time.Sleep(ttl / 4)
		stopped := time.Now()
		if err := a.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if a.elector.Role() != ha.RoleStopping {
			t.Errorf("a: role %s", a.elector.Role())
		}
		if inst, _ := db.Instance("a"); inst.Role != string(ha.RoleStopping) {
			t.Errorf("a's last heartbeat says %q", inst.Role)
		}
		time.Sleep(ttl / 6 * 11 / 10)
		synctest.Wait()
		took, ok := b.activeAt()
		if !ok || took.Sub(stopped) > ttl/6*11/10 || b.token.Load() != 2 {
			t.Fatalf("b took over at %v after a stopped (ok %v)", took.Sub(stopped), ok)
		}
		if _, deposed := a.deposedAt(); deposed {
			t.Error("a clean stop deposed")
		}
		b.stop()
	})
}

// TestStandbyRidesOutStoreErrors: a standby that cannot reach the store
// keeps trying and never becomes active on an error; once it can, it takes
// the free lease.
func TestStandbyRidesOutStoreErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memcluster.New()
		a := start(t, db, "a")
		b := start(t, db, "b")
		b.conn.Cut()
		if err := a.stop(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * ttl)
		synctest.Wait()
		if b.elector.Role() != ha.RoleStandby {
			t.Fatalf("b: role %s while cut off", b.elector.Role())
		}
		b.conn.Heal()
		time.Sleep(ttl / 6 * 11 / 10)
		synctest.Wait()
		if b.elector.Role() != ha.RoleActive {
			t.Fatalf("b: role %s after healing", b.elector.Role())
		}
		b.stop()
	})
}

func TestNewRefusesAnIncompleteConfig(t *testing.T) {
	db := memcluster.New()
	for name, cfg := range map[string]ha.Config{
		"no cluster":  {LeaseName: "l", InstanceID: "a", TTL: ttl},
		"no lease":    {Cluster: db.Connect(), InstanceID: "a", TTL: ttl},
		"no instance": {Cluster: db.Connect(), LeaseName: "l", TTL: ttl},
		"no ttl":      {Cluster: db.Connect(), LeaseName: "l", InstanceID: "a"},
	} {
		if _, err := ha.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestSameInstanceIDWaits: a second process under the same instance ID
// (a misconfiguration, or the previous run of a restarted instance) does
// not renew the other's lease as its own: it waits for it to expire and
// then takes it under a new token.
func TestSameInstanceIDWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memcluster.New()
		first := start(t, db, "a")
		second := start(t, db, "a")
		time.Sleep(10 * ttl)
		synctest.Wait()
		if second.elector.Role() != ha.RoleStandby || first.elector.Role() != ha.RoleActive {
			t.Fatalf("roles: first %s, second %s", first.elector.Role(), second.elector.Role())
		}
		first.conn.Stall() // the first dies without releasing
		time.Sleep(2 * ttl)
		synctest.Wait()
		if second.elector.Role() != ha.RoleActive || second.token.Load() != 2 {
			t.Fatalf("second: role %s, token %d", second.elector.Role(), second.token.Load())
		}
	})
}

// TestHeartbeatReportsANewRoleAtOnce: a standby that takes over reports
// itself active in its heartbeat at once, not a heartbeat interval later
// (/api/v1/cluster shows the takeover as it happens).
func TestHeartbeatReportsANewRoleAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := memcluster.New()
		a := start(t, db, "a")
		b, err := ha.New(ha.Config{Cluster: db.Connect(), LeaseName: leaseName, InstanceID: "b", TTL: ttl, HeartbeatInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		defer func() {
			cancel()
			<-done
		}()
		synctest.Wait()
		if inst, ok := db.Instance("b"); !ok || inst.Role != string(ha.RoleStandby) {
			t.Fatalf("b's first heartbeat %+v (%v), want standby", inst, ok)
		}
		if err := a.stop(); err != nil { // releases the lease
			t.Fatal(err)
		}
		time.Sleep(ttl) // b's next try takes it
		synctest.Wait()
		if b.Role() != ha.RoleActive {
			t.Fatalf("b: role %s, want active", b.Role())
		}
		if inst, _ := db.Instance("b"); inst.Role != string(ha.RoleActive) {
			t.Errorf("b's heartbeat says %q, want active (its interval is an hour)", inst.Role)
		}
	})
}
