package groupcommit

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

var (
	bucket     = []byte("b")
	errRefused = errors.New("refused")
)

func openDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		t.Fatal(err)
	}
	return db
}

func isRefused(err error) bool { return errors.Is(err, errRefused) }

func put(key string, fail error) *write {
	return &write{state: make(chan bool, 1), refused: isRefused, fn: func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucket).Put([]byte(key), []byte{1}); err != nil {
			return err
		}
		return fail
	}}
}

// TestGroupRollback: a write failing with an error of its own (not a
// refusal) after writing rolls its group back; the others are retried alone
// and committed, its own write is not. A group of refusals and successes
// commits once, as is.
func TestGroupRollback(t *testing.T) {
	fire := errors.New("disk on fire")
	refuse := &write{state: make(chan bool, 1), refused: isRefused, fn: func(*bolt.Tx) error { return errRefused }}
	tests := []struct {
		name        string
		group       []*write
		wantErrs    []error
		written     map[string]bool
		wantCommits uint64
	}{
		{"failure rolls back, others retried alone",
			[]*write{put("x1", nil), put("x2", fire), refuse, put("x3", nil)},
			[]error{nil, fire, errRefused, nil},
			map[string]bool{"x1": true, "x2": false, "x3": true}, 5},
		{"refusals and successes commit once",
			[]*write{put("y1", nil), refuse, put("y2", nil)},
			[]error{nil, errRefused, nil},
			map[string]bool{"y1": true, "y2": true}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			c := New(db)
			c.commit(tc.group)
			for i, w := range tc.group {
				if w.err != tc.wantErrs[i] {
					t.Errorf("write %d: err %v, want %v", i, w.err, tc.wantErrs[i])
				}
			}
			db.View(func(tx *bolt.Tx) error {
				for key, want := range tc.written {
					if got := tx.Bucket(bucket).Get([]byte(key)) != nil; got != want {
						t.Errorf("%s written: %v, want %v", key, got, want)
					}
				}
				return nil
			})
			if got := c.Commits(); got != tc.wantCommits {
				t.Errorf("commits = %d, want %d", got, tc.wantCommits)
			}
		})
	}
}

// TestConcurrentWrites: every write returns only once it is committed,
// each is in the file, and they shared commits (never more commits than
// writes).
func TestConcurrentWrites(t *testing.T) {
	db := openDB(t)
	c := New(db)
	const writers, each = 16, 20
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("w%d-%d", g, i)
				err := c.Write(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(key), []byte{1}) }, nil)
				if err != nil {
					t.Error(err)
					return
				}
				// Committed before Write returned: visible to a new reader.
				db.View(func(tx *bolt.Tx) error {
					if tx.Bucket(bucket).Get([]byte(key)) == nil {
						t.Errorf("%s not visible after Write returned", key)
					}
					return nil
				})
			}
		})
	}
	wg.Wait()
	if n := c.Commits(); n == 0 || n > writers*each {
		t.Errorf("commits = %d for %d writes", n, writers*each)
	}
}
