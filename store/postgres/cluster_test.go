package postgres

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/store"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func assoc(agent, desk string, start time.Time) journal.Association {
	return journal.Association{AgentID: agent, AgentUserID: agent + "@example.com", DeviceID: desk,
		DeskUserID: desk + "@example.com", Start: start}
}

// expire makes the lease name expire now, on the database's clock, as time
// passing would.
func expire(t *testing.T, s *Store, name string) {
	t.Helper()
	if _, err := s.pool.Exec(t.Context(), `UPDATE lease SET expires_at = clock_timestamp() - interval '1 second' WHERE name = $1`, name); err != nil {
		t.Fatal(err)
	}
}

// TestLease: acquire, renew, takeover of an expired lease, release; the
// token grows at every change of holder and never goes back.
func TestLease(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := t.Context()
	const ttl = time.Minute
	if _, found, err := s.LeaseOf(ctx, "cs1"); found || err != nil {
		t.Fatalf("LeaseOf before anyone = %v, %v", found, err)
	}
	a, err := s.AcquireLease(ctx, "cs1", "A", ttl)
	if err != nil || a.Holder != "A" || a.Token != 1 || a.Name != "cs1" {
		t.Fatalf("first Acquire = %+v, %v; want A with token 1", a, err)
	}
	steps := []struct {
		name       string
		do         func() (store.Lease, error)
		wantErr    error
		wantHolder string
		wantToken  int64
	}{
		{"A again: renewed, same token", func() (store.Lease, error) { return s.AcquireLease(ctx, "cs1", "A", ttl) }, nil, "A", 1},
		{"B while A holds: refused, told who holds", func() (store.Lease, error) { return s.AcquireLease(ctx, "cs1", "B", ttl) }, store.ErrLeaseHeld, "A", 1},
		{"A renews", func() (store.Lease, error) { return s.RenewLease(ctx, a, ttl) }, nil, "A", 1},
		{"B takes the expired lease: token bumped", func() (store.Lease, error) {
			expire(t, s, "cs1")
			return s.AcquireLease(ctx, "cs1", "B", ttl)
		}, nil, "B", 2},
		{"A's renew is refused", func() (store.Lease, error) { return s.RenewLease(ctx, a, ttl) }, store.ErrLeaseLost, "", 0},
		{"B releases; A takes it at once with a new token", func() (store.Lease, error) {
			b, _, _ := s.LeaseOf(ctx, "cs1")
			if err := s.ReleaseLease(ctx, b); err != nil {
				return store.Lease{}, err
			}
			if _, err := s.RenewLease(ctx, b, ttl); !errors.Is(err, store.ErrLeaseLost) {
				return store.Lease{}, fmt.Errorf("renew after release: %v, want ErrLeaseLost", err)
			}
			return s.AcquireLease(ctx, "cs1", "A", ttl)
		}, nil, "A", 3},
		{"A's own expired lease taken back: token bumped", func() (store.Lease, error) {
			expire(t, s, "cs1")
			return s.AcquireLease(ctx, "cs1", "A", ttl)
		}, nil, "A", 4},
		{"another channel set is another lease", func() (store.Lease, error) { return s.AcquireLease(ctx, "cs2", "B", ttl) }, nil, "B", 1},
	}
	for _, st := range steps {
		l, err := st.do()
		if !errors.Is(err, st.wantErr) || (st.wantErr == nil) != (err == nil) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.wantErr)
		}
		if l.Holder != st.wantHolder || l.Token != st.wantToken {
			t.Fatalf("%s: lease %+v, want holder %q token %d", st.name, l, st.wantHolder, st.wantToken)
		}
		if st.wantErr == nil && !l.Expires.After(time.Now().Add(ttl/2)) {
			t.Errorf("%s: expires %v, want about a minute ahead", st.name, l.Expires)
		}
	}
	// A release by a lease that no longer holds changes nothing.
	cur, _, _ := s.LeaseOf(ctx, "cs1")
	if err := s.ReleaseLease(ctx, a); err != nil {
		t.Fatal(err)
	}
	if after, _, _ := s.LeaseOf(ctx, "cs1"); after != cur {
		t.Fatalf("a stale release changed the lease: %+v, was %+v", after, cur)
	}
	for _, bad := range []struct {
		name string
		call func() error
	}{
		{"empty name", func() error { _, err := s.AcquireLease(ctx, "", "A", ttl); return err }},
		{"empty holder", func() error { _, err := s.AcquireLease(ctx, "cs1", "", ttl); return err }},
		{"zero ttl", func() error { _, err := s.AcquireLease(ctx, "cs1", "A", 0); return err }},
		{"renew with negative ttl", func() error { _, err := s.RenewLease(ctx, cur, -time.Second); return err }},
	} {
		if err := bad.call(); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", bad.name, err)
		}
	}
}

// TestConcurrentAcquire: instances racing for a free lease: exactly one
// gets it, the others are told it is held.
func TestConcurrentAcquire(t *testing.T) {
	s, _ := openTest(t, Options{MaxConns: 20})
	const n = 12
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = s.AcquireLease(t.Context(), "cs", fmt.Sprint("i", i), time.Minute) })
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrLeaseHeld):
			t.Errorf("instance %d: %v", i, err)
		}
	}
	if l, _, _ := s.LeaseOf(t.Context(), "cs"); won != 1 || l.Token != 1 {
		t.Fatalf("%d won, lease %+v; want one winner with token 1", won, l)
	}
}

// TestFencing: under a fence, every kind of write lands while the lease
// holds, and none lands (ErrFenced) once it is lost: taken over, expired,
// released. Unfenced writes (the zero fence) always land.
func TestFencing(t *testing.T) {
	s, _ := openTest(t, Options{ChannelSet: "cs1"})
	ctx := t.Context()
	writes := []struct {
		name string
		do   func(i int) error
	}{
		{"Update", func(i int) error {
			return s.Update(ctx, func(tx store.Tx) error { return tx.PutIntent(fmt.Sprint("u", i), "f", []byte("v")) })
		}},
		{"journal Begin", func(i int) error {
			_, err := s.Journal().Begin(ctx, assoc(fmt.Sprint("a", i), fmt.Sprint("d", i), t0))
			return err
		}},
		{"remembered Save", func(i int) error {
			return s.Remembered().Save(hoteling.Remembered{HostUserID: fmt.Sprint("h", i), GuestUserID: "g"})
		}},
		{"intents Put", func(i int) error { return s.Intents().Put(fmt.Sprint("p", i), "f", []byte("v")) }},
		{"SaveDialogs", func(i int) error { return s.SIPDialogs().SaveDialogs([]byte(fmt.Sprint("snapshot ", i))) }},
	}
	count := func() string {
		var n [4]int
		err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM intents), (SELECT count(*) FROM journal_associations),
			(SELECT count(*) FROM remembered), (SELECT count(*) FROM sip_dialogs)`).Scan(&n[0], &n[1], &n[2], &n[3])
		if err != nil {
			t.Fatal(err)
		}
		d, _ := s.SIPDialogs().LoadDialogs()
		return fmt.Sprint(n, string(d))
	}
	a, err := s.AcquireLease(ctx, "cs1", "A", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s.SetFence(store.Fence{Name: "cs1", Holder: "A", Token: a.Token})
	for _, w := range writes {
		if err := w.do(1); err != nil {
			t.Fatalf("%s under a holding fence: %v", w.name, err)
		}
	}
	losses := []struct {
		name string
		lose func()
	}{
		{"taken over", func() {
			expire(t, s, "cs1")
			if _, err := s.AcquireLease(ctx, "cs1", "B", time.Minute); err != nil {
				t.Fatal(err)
			}
		}},
		{"expired", func() {
			l, err := s.AcquireLease(ctx, "cs1", "A2", time.Minute)
			if err == nil || !errors.Is(err, store.ErrLeaseHeld) {
				t.Fatalf("A2 acquired a held lease: %+v %v", l, err)
			}
			b, _, _ := s.LeaseOf(ctx, "cs1")
			s.SetFence(store.Fence{Name: "cs1", Holder: b.Holder, Token: b.Token})
			expire(t, s, "cs1")
		}},
		{"released", func() {
			expire(t, s, "cs1")
			c, err := s.AcquireLease(ctx, "cs1", "C", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			s.SetFence(store.Fence{Name: "cs1", Holder: "C", Token: c.Token})
			if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutIntent("c", "f", nil) }); err != nil {
				t.Fatalf("C's write under its own fence: %v", err)
			}
			if err := s.ReleaseLease(ctx, c); err != nil {
				t.Fatal(err)
			}
		}},
		{"another channel set's lease", func() {
			d, err := s.AcquireLease(ctx, "cs2", "A", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			s.SetFence(store.Fence{Name: "cs1", Holder: "A", Token: d.Token}) // holds cs2, not cs1
		}},
	}
	for i, loss := range losses {
		loss.lose()
		before := count()
		for _, w := range writes {
			if err := w.do(100 + i); !errors.Is(err, store.ErrFenced) {
				t.Errorf("%s after the lease was %s: %v, want ErrFenced", w.name, loss.name, err)
			}
		}
		if after := count(); after != before {
			t.Errorf("fenced writes after the lease was %s landed: %s, was %s", loss.name, after, before)
		}
	}
	s.SetFence(store.Fence{})
	for _, w := range writes {
		if err := w.do(200); err != nil {
			t.Errorf("%s without a fence: %v", w.name, err)
		}
	}
}

// waitLocked waits until a session of the database runs query (a prefix)
// waiting for a lock: what orders it behind another transaction. finished
// reports whether the contender returned already (it did not wait: fail).
func waitLocked(t *testing.T, s *Store, query string, finished func() bool) {
	t.Helper()
	for {
		if finished() {
			t.Fatalf("%q returned without waiting for a lock", query)
		}
		var n int
		err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1`, query+"%").Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWriteRacingTakeover: the fence check's row lock orders a write and a
// takeover. A write that starts while a takeover is uncommitted waits for
// it, then is refused (ErrFenced), landing nothing; a write past its check
// holds the takeover until it has committed (it lands, before the new
// holder's era begins).
func TestWriteRacingTakeover(t *testing.T) {
	s, dsn := openTest(t, Options{})
	ctx := t.Context()

	t.Run("write behind an uncommitted takeover is fenced", func(t *testing.T) {
		a, err := s.AcquireLease(ctx, "cs1", "A", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		s.SetFence(store.Fence{Name: "cs1", Holder: "A", Token: a.Token})
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		takeover, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer takeover.Rollback(context.Background()) //nolint:errcheck // committed below unless the test failed
		if _, err := takeover.Exec(ctx, `UPDATE lease SET holder = 'C', token = token + 1 WHERE name = 'cs1'`); err != nil {
			t.Fatal(err)
		}
		wrote := make(chan error, 1)
		go func() {
			wrote <- s.Update(ctx, func(tx store.Tx) error { return tx.PutIntent("a", "behind", []byte("A's")) })
		}()
		waitLocked(t, s, "SELECT 1 FROM lease", func() bool { return len(wrote) > 0 })
		if err := takeover.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-wrote; !errors.Is(err, store.ErrFenced) {
			t.Fatalf("write behind the takeover: %v, want ErrFenced", err)
		}
		if in, _ := s.Intents().Load(); len(in) != 0 {
			t.Fatalf("the fenced write landed: %q", in)
		}
	})

	t.Run("takeover behind a write past its check waits for its commit", func(t *testing.T) {
		a, err := s.AcquireLease(ctx, "cs2", "A", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		s.SetFence(store.Fence{Name: "cs2", Holder: "A", Token: a.Token})
		pastCheck, release := make(chan struct{}), make(chan struct{})
		releaseOnce := sync.OnceFunc(func() { close(release) })
		defer releaseOnce() // a failure below must not leave the write open
		wrote := make(chan error, 1)
		go func() {
			wrote <- s.Update(ctx, func(tx store.Tx) error {
				close(pastCheck)
				<-release
				return tx.PutIntent("a", "past", []byte("A's"))
			})
		}()
		select {
		case <-pastCheck:
		case err := <-wrote:
			t.Fatalf("the write did not get past its check: %v", err)
		}
		// The lease expires by the database's clock while the write is open.
		for {
			var expired bool
			if err := s.pool.QueryRow(ctx, `SELECT expires_at <= clock_timestamp() FROM lease WHERE name = 'cs2'`).Scan(&expired); err != nil {
				t.Fatal(err)
			}
			if expired {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		took := make(chan store.Lease, 1)
		go func() {
			l, err := s.AcquireLease(ctx, "cs2", "B", time.Minute)
			if err != nil {
				t.Error(err)
			}
			took <- l
		}()
		waitLocked(t, s, "INSERT INTO lease", func() bool { return len(took) > 0 })
		select {
		case l := <-took:
			t.Fatalf("the takeover did not wait for the write: %+v", l)
		default:
		}
		releaseOnce()
		if err := <-wrote; err != nil {
			t.Fatalf("the write past its check: %v", err)
		}
		if l := <-took; l.Holder != "B" || l.Token != a.Token+1 {
			t.Fatalf("takeover = %+v, want B with token %d", l, a.Token+1)
		}
		in, _ := s.Intents().Load()
		if len(in) != 1 || in[0].Facet != "past" {
			t.Fatalf("intents = %q, want the write past its check", in)
		}
		if err := s.Intents().Put("a", "after", nil); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("A's write after the takeover: %v, want ErrFenced", err)
		}
	})
}

// TestInstances: heartbeats upsert by ID; Seen is the database's clock.
func TestInstances(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := t.Context()
	if got, err := s.Instances(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Instances before any heartbeat = %+v, %v", got, err)
	}
	started := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	b := store.Instance{ID: "b", ChannelSet: "cs1", Role: "standby", Scope: []string{"ent1", "grp/2"}, Admin: "http://b:8080",
		Health: "ok", Started: started}
	a := store.Instance{ID: "a", ChannelSet: "cs1", Role: "active", Admin: "http://a:8080", Health: "ok", Started: started}
	var dbNow time.Time
	if err := s.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&dbNow); err != nil {
		t.Fatal(err)
	}
	for _, in := range []store.Instance{b, a} {
		if err := s.Heartbeat(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	a.Role, a.Health = "stopping", "xsi: channel set down"
	if err := s.Heartbeat(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.Instances(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("Instances = %+v, %v", got, err)
	}
	for i, want := range []store.Instance{a, b} {
		g := got[i]
		if g.Seen.Before(dbNow) || g.Seen.After(dbNow.Add(time.Minute)) {
			t.Errorf("%s seen at %v, want just after %v (the database's clock)", g.ID, g.Seen, dbNow)
		}
		g.Seen = time.Time{}
		g.Started = g.Started.UTC()
		if !reflect.DeepEqual(g, want) {
			t.Errorf("instance %d = %+v\nwant %+v", i, g, want)
		}
	}
	if err := s.Heartbeat(ctx, store.Instance{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Heartbeat without an ID: %v, want ErrInvalid", err)
	}
}
