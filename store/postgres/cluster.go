package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/broadworks-connector/connector/store"
)

// The lease and the instances (store.Cluster). Lease and heartbeat writes
// are not fenced: they are how an instance comes to hold a fence. Expiry is
// on the database's clock (clock_timestamp(), which, unlike now(), moves
// within a transaction).

// ttlMicros is ttl for SQL (interval arithmetic in microseconds).
func ttlMicros(ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("%w: lease TTL %v is not positive", store.ErrInvalid, ttl)
	}
	return max(ttl.Microseconds(), 1), nil
}

func validLease(name, holder string) error {
	if err := validKey("lease name", name, store.MaxKeyLen); err != nil {
		return err
	}
	return validKey("lease holder", holder, store.MaxKeyLen)
}

// AcquireLease takes name for holder for ttl when it is free, expired or
// holder's own (renewed, same token). A change of holder, or taking back an
// expired lease, bumps the token.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (store.Lease, error) {
	if err := validLease(name, holder); err != nil {
		return store.Lease{}, err
	}
	us, err := ttlMicros(ttl)
	if err != nil {
		return store.Lease{}, err
	}
	var l store.Lease
	held := false
	err = s.read(ctx, "acquire lease", false, func(ctx context.Context) error {
		l = store.Lease{Name: name}
		err := s.pool.QueryRow(ctx, `INSERT INTO lease AS l (name, holder, token, expires_at)
			VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 microsecond')
			ON CONFLICT (name) DO UPDATE SET
				token = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp() THEN l.token ELSE l.token + 1 END,
				holder = EXCLUDED.holder,
				expires_at = EXCLUDED.expires_at
			WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
			RETURNING holder, token, expires_at`, name, holder, us).Scan(&l.Holder, &l.Token, &l.Expires)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		held = true
		return s.pool.QueryRow(ctx, `SELECT holder, token, expires_at FROM lease WHERE name = $1`, name).
			Scan(&l.Holder, &l.Token, &l.Expires)
	})
	if err != nil {
		return store.Lease{}, err
	}
	if held {
		return l, fmt.Errorf("%w: %s by %s (token %d) until %v", store.ErrLeaseHeld, name, l.Holder, l.Token, l.Expires.UTC())
	}
	return l, nil
}

// RenewLease extends l by ttl if it still holds.
func (s *Store) RenewLease(ctx context.Context, l store.Lease, ttl time.Duration) (store.Lease, error) {
	if err := validLease(l.Name, l.Holder); err != nil {
		return store.Lease{}, err
	}
	us, err := ttlMicros(ttl)
	if err != nil {
		return store.Lease{}, err
	}
	out := l
	err = s.read(ctx, "renew lease", false, func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, `UPDATE lease SET expires_at = clock_timestamp() + $4 * interval '1 microsecond'
			WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > clock_timestamp()
			RETURNING expires_at`, l.Name, l.Holder, l.Token, us).Scan(&out.Expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s (holder %s, token %d)", store.ErrLeaseLost, l.Name, l.Holder, l.Token)
		}
		return err
	})
	if err != nil {
		return store.Lease{}, err
	}
	return out, nil
}

// ReleaseLease makes l expire now if it still holds; otherwise it does
// nothing.
func (s *Store) ReleaseLease(ctx context.Context, l store.Lease) error {
	if err := validLease(l.Name, l.Holder); err != nil {
		return err
	}
	return s.read(ctx, "release lease", false, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `UPDATE lease SET expires_at = clock_timestamp()
			WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > clock_timestamp()`, l.Name, l.Holder, l.Token)
		return err
	})
}

// LeaseOf is the lease as it stands; false when nobody ever held it.
func (s *Store) LeaseOf(ctx context.Context, name string) (store.Lease, bool, error) {
	if err := validKey("lease name", name, store.MaxKeyLen); err != nil {
		return store.Lease{}, false, err
	}
	l := store.Lease{Name: name}
	found := true
	err := s.read(ctx, "lease", false, func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, `SELECT holder, token, expires_at FROM lease WHERE name = $1`, name).
			Scan(&l.Holder, &l.Token, &l.Expires)
		if errors.Is(err, pgx.ErrNoRows) {
			found = false
			return nil
		}
		return err
	})
	if err != nil || !found {
		return store.Lease{}, false, err
	}
	return l, true, nil
}

// Heartbeat records inst; Seen is the database's clock.
func (s *Store) Heartbeat(ctx context.Context, inst store.Instance) error {
	if err := validKey("instance ID", inst.ID, store.MaxKeyLen); err != nil {
		return err
	}
	for _, f := range append([]string{inst.ChannelSet, inst.Role, inst.Admin, inst.Health}, inst.Scope...) {
		if len(f) > store.MaxKeyLen || !textOK(f) {
			return fmt.Errorf("%w: instance %s: a field longer than %d bytes or not UTF-8 text", store.ErrInvalid, inst.ID, store.MaxKeyLen)
		}
	}
	scope := inst.Scope
	if scope == nil {
		scope = []string{}
	}
	started := inst.Started
	if started.IsZero() {
		started = time.Unix(0, 0)
	}
	return s.read(ctx, "heartbeat", false, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO instances (id, channel_set, role, scope, admin, health, started, seen)
			VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp())
			ON CONFLICT (id) DO UPDATE SET channel_set = EXCLUDED.channel_set, role = EXCLUDED.role, scope = EXCLUDED.scope,
				admin = EXCLUDED.admin, health = EXCLUDED.health, started = EXCLUDED.started, seen = EXCLUDED.seen`,
			inst.ID, inst.ChannelSet, inst.Role, scope, inst.Admin, inst.Health, started)
		return err
	})
}

// Instances lists every instance that ever reported, by ID.
func (s *Store) Instances(ctx context.Context) ([]store.Instance, error) {
	var out []store.Instance
	err := s.read(ctx, "instances", false, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT id, channel_set, role, scope, admin, health, started, seen FROM instances`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Instance, error) {
			var in store.Instance
			err := row.Scan(&in.ID, &in.ChannelSet, &in.Role, &in.Scope, &in.Admin, &in.Health, &in.Started, &in.Seen)
			if len(in.Scope) == 0 {
				in.Scope = nil
			}
			if in.Started.Equal(time.Unix(0, 0)) {
				in.Started = time.Time{}
			}
			return in, err
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
