package journal

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// Group commit. A bbolt commit costs two fsyncs (data, then meta page),
// about 0.5 ms on the machine the benchmarks ran on, and bbolt has one
// writer: Begin and End one transaction each cap a login storm at ~2,000
// logins/s, about what the gateway itself reaches (BENCHMARKS.md, login
// storm). So concurrent writes share a transaction: whoever writes while no
// commit runs leads, taking everything queued (up to maxGroup) into one
// transaction; writes arriving meanwhile queue, and when the commit is on
// disk the leader hands the lead to the first of them. A lone writer leads
// at once: no timer, no added latency (unlike bbolt's DB.Batch, which waits
// MaxBatchDelay for company).
//
// A write's fn runs inside the shared transaction after the writes queued
// before it, so it sees them: the result is that of running them one by
// one in queue order. fn must return refusals (the package's sentinel
// errors) before it writes anything; then a refused write leaves nothing in
// the transaction and the others still commit. Any other error from fn
// rolls the whole group back, and each of its writes is retried alone.

const maxGroup = 256

type write struct {
	fn    func(txBuckets) error
	err   error
	state chan bool // receives true: lead the next group; false: done, err set
}

// write runs fn in a read-write transaction and returns once that
// transaction is on disk (or failed).
func (j *Journal) write(fn func(txBuckets) error) error {
	w := &write{fn: fn, state: make(chan bool, 1)}
	j.wmu.Lock()
	j.queue = append(j.queue, w)
	if j.leading {
		j.wmu.Unlock()
		if lead := <-w.state; !lead {
			return w.err
		}
		j.wmu.Lock()
	}
	j.leading = true
	n := min(len(j.queue), maxGroup)
	group := j.queue[:n:n]
	j.queue = j.queue[n:]
	j.wmu.Unlock()

	j.commit(group) // group[0] is w: leads are handed to the queue's head

	j.wmu.Lock()
	if len(j.queue) > 0 {
		j.queue[0].state <- true
	} else {
		j.leading = false
		j.queue = nil
	}
	j.wmu.Unlock()
	for _, o := range group[1:] {
		o.state <- false
	}
	return w.err
}

var errGroupFailed = errors.New("journal: group rolled back")

func (j *Journal) commit(group []*write) {
	err := j.db.Update(func(tx *bolt.Tx) error {
		b := buckets(tx)
		for _, w := range group {
			w.err = w.fn(b)
			if w.err != nil && !isOurs(w.err) {
				return errGroupFailed
			}
		}
		return nil
	})
	switch {
	case err == nil:
	case errors.Is(err, errGroupFailed) && len(group) > 1:
		for _, w := range group {
			w.err = j.db.Update(func(tx *bolt.Tx) error { return w.fn(buckets(tx)) })
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
