// Package groupcommit shares bbolt read-write transactions among concurrent
// writers, so that they share the commit's fsyncs.
//
// A bbolt commit costs two fsyncs (data, then meta page) and bbolt has one
// writer, so one transaction per write caps a login storm at a few thousand
// writes per second. Whoever writes while no commit runs leads, taking
// everything queued (up to MaxGroup) into one transaction; writes arriving
// meanwhile queue, and when the commit is on disk the leader hands the lead
// to the first of them. A lone writer leads at once: no timer and no added
// latency (unlike bbolt's DB.Batch, which waits MaxBatchDelay for company).
//
// A write's fn runs inside the shared transaction after the writes queued
// before it, so it sees them: the result is that of running them one by one
// in queue order. An error fn reports as refused (its refused func says so)
// must come before fn writes anything; then the refused write leaves nothing
// in the transaction and the others still commit. Any other error from fn
// rolls the whole group back, and each of its writes is retried alone, so
// one failing writer cannot fail the others.
package groupcommit

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MaxGroup bounds how many writes share one transaction (and so how large
// one transaction grows).
const MaxGroup = 256

// Committer groups the writes to one bbolt DB. The zero value is not
// usable; use New.
//
// Lock order: mu is never held while a bbolt transaction runs, nor while
// waiting on a channel.
type Committer struct {
	db      *bolt.DB
	commits atomic.Uint64 // read-write transactions committed (or attempted)

	mu      sync.Mutex // guards queue and leading
	queue   []*write
	leading bool

	observe func(time.Duration) // SetObserver; nil: none
}

// SetObserver has f told how long each Write took, from its call until its
// transaction was on disk (or failed). Call it before the first Write.
func (c *Committer) SetObserver(f func(time.Duration)) { c.observe = f }

type write struct {
	fn      func(*bolt.Tx) error
	refused func(error) bool
	err     error
	state   chan bool // receives true: lead the next group; false: done, err set
}

// New groups the writes to db.
func New(db *bolt.DB) *Committer { return &Committer{db: db} }

// Commits is how many read-write transactions have been run: with group
// commit fewer than the writes.
func (c *Committer) Commits() uint64 { return c.commits.Load() }

// Write runs fn in a read-write transaction shared with concurrent writers
// and returns once that transaction is on disk (or failed). refused may be
// nil (no error is a refusal).
func (c *Committer) Write(fn func(*bolt.Tx) error, refused func(error) bool) error {
	if c.observe != nil {
		defer func(start time.Time) { c.observe(time.Since(start)) }(time.Now())
	}
	if refused == nil {
		refused = never
	}
	w := &write{fn: fn, refused: refused, state: make(chan bool, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, w)
	if c.leading {
		c.mu.Unlock()
		if lead := <-w.state; !lead {
			return w.err
		}
		c.mu.Lock()
	}
	c.leading = true
	n := min(len(c.queue), MaxGroup)
	group := c.queue[:n:n]
	c.queue = c.queue[n:]
	c.mu.Unlock()

	c.commit(group) // group[0] is w: leads are handed to the queue's head

	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].state <- true
	} else {
		c.leading = false
		c.queue = nil
	}
	c.mu.Unlock()
	for _, o := range group[1:] {
		o.state <- false
	}
	return w.err
}

func never(error) bool { return false }

var errGroupFailed = errors.New("groupcommit: group rolled back")

func (c *Committer) commit(group []*write) {
	c.commits.Add(1)
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, w := range group {
			w.err = w.fn(tx)
			if w.err != nil && !w.refused(w.err) {
				return errGroupFailed
			}
		}
		return nil
	})
	switch {
	case err == nil:
	case errors.Is(err, errGroupFailed) && len(group) > 1:
		for _, w := range group {
			c.commits.Add(1)
			w.err = c.db.Update(w.fn)
		}
	case errors.Is(err, errGroupFailed):
		// w.err is fn's own error
	default:
		for _, w := range group { // the commit failed: nothing was written
			if w.err == nil {
				w.err = err
			}
		}
	}
}
