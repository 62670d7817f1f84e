package journal

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestGroupCommitConcurrent: many goroutines logging in and out, pairs of
// them competing for one desk, so that groups mix accepted writes and
// refusals. Every accepted Begin and End is in the journal, nothing refused
// is, and the indexes agree.
func TestGroupCommitConcurrent(t *testing.T) {
	j := openTest(t, Options{})
	const agents, rounds = 32, 20
	var clock atomic.Int64
	type outcome struct {
		id    ID
		agent string
	}
	var mu sync.Mutex
	var accepted []outcome
	refused := map[string]int{}
	var wg sync.WaitGroup
	for g := range agents {
		wg.Go(func() {
			agent := fmt.Sprint("a", g)
			for range rounds {
				start := t0.Add(time.Duration(clock.Add(1)) * time.Millisecond)
				id, err := j.Begin(t.Context(), assoc(agent, fmt.Sprint("d", g/2), start))
				switch {
				case errors.Is(err, ErrDeskOccupied), errors.Is(err, ErrOverlap):
					mu.Lock()
					refused[errors.Unwrap(err).Error()]++
					mu.Unlock()
					continue
				case err != nil:
					t.Error(err)
					return
				}
				_, err = j.End(t.Context(), agent+"@example.com", t0.Add(time.Duration(clock.Add(1))*time.Millisecond), EndLogout, "")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				accepted = append(accepted, outcome{id, agent})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	checkConsistent(t, j)
	seen := map[ID]bool{}
	err := j.db.View(func(tx *bolt.Tx) error {
		b := buckets(tx)
		if n := b.assoc.Stats().KeyN; n != len(accepted) {
			return fmt.Errorf("%d records, %d accepted Begins", n, len(accepted))
		}
		for _, o := range accepted {
			a, err := b.get(o.id)
			if err != nil {
				return err
			}
			if seen[o.id] || a.AgentUserID != o.agent+"@example.com" || a.Open() {
				return fmt.Errorf("accepted %+v, stored %+v", o, a)
			}
			seen[o.id] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d accepted logins, refused %v", len(accepted), refused)
}

// TestGroupRollback: a write failing with an error of its own (not a
// refusal) after writing rolls its group back; the others are retried alone
// and committed, its own write is not.
func TestGroupRollback(t *testing.T) {
	j := openTest(t, Options{})
	put := func(key string, fail error) *write {
		return &write{state: make(chan bool, 1), fn: func(b txBuckets) error {
			if err := b.openDesk.Put([]byte(key), encodeID(1)); err != nil {
				return err
			}
			return fail
		}}
	}
	refuse := &write{state: make(chan bool, 1), fn: func(txBuckets) error { return ErrDeskOccupied }}
	fire := errors.New("disk on fire")
	group := []*write{put("x1", nil), put("x2", fire), refuse, put("x3", nil)}
	j.commit(group)
	if group[0].err != nil || group[1].err != fire || group[2].err != ErrDeskOccupied || group[3].err != nil {
		t.Fatalf("errors: %v, %v, %v, %v", group[0].err, group[1].err, group[2].err, group[3].err)
	}
	j.db.View(func(tx *bolt.Tx) error {
		b := buckets(tx)
		for key, want := range map[string]bool{"x1": true, "x2": false, "x3": true} {
			if got := b.openDesk.Get([]byte(key)) != nil; got != want {
				t.Errorf("%s written: %v, want %v", key, got, want)
			}
		}
		return nil
	})
	// A group with only refusals and successes commits once, as is.
	group = []*write{put("y1", nil), refuse, put("y2", nil)}
	j.commit(group)
	if group[0].err != nil || group[1].err != ErrDeskOccupied || group[2].err != nil {
		t.Fatalf("errors: %v, %v, %v", group[0].err, group[1].err, group[2].err)
	}
}
