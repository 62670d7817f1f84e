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
