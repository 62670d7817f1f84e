package csta

import "sync"

// writeQueue holds a connection's framed messages until its write loop
// takes them: a FIFO of at most csta.limits.write_queue_length frames. It
// allocates when used: an idle connection holds an empty queue.
type writeQueue struct {
	mu     sync.Mutex
	frames [][]byte // waiting, in order; nil when empty
	spare  [][]byte // the write loop's last batch, emptied, when small
	ready  chan struct{}
}

// keptBatch is the largest emptied batch kept for reuse: a connection that
// writes a few frames at a time does not allocate each time, and one that
// had a burst gives the burst's array back.
const keptBatch = 8

func newWriteQueue() writeQueue { return writeQueue{ready: make(chan struct{}, 1)} }

// push appends frame unless limit frames are waiting already.
func (q *writeQueue) push(frame []byte, limit int) bool {
	q.mu.Lock()
	if len(q.frames) >= limit {
		q.mu.Unlock()
		return false
	}
	if q.frames == nil && q.spare != nil {
		q.frames, q.spare = q.spare, nil
	}
	q.frames = append(q.frames, frame)
	first := len(q.frames) == 1
	q.mu.Unlock()
	if first {
		select {
		case q.ready <- struct{}{}:
		default: // the write loop is already told
		}
	}
	return true
}

// maxBatch is the most frames written in one flush, under one write
// deadline (csta.limits.write_timeout is "one flush to the socket").
const maxBatch = 64

// take returns the oldest waiting frames, at most maxBatch, in order.
func (q *writeQueue) take() [][]byte {
	q.mu.Lock()
	batch := q.frames
	if len(batch) <= maxBatch {
		q.frames = nil
	} else {
		batch, q.frames = batch[:maxBatch:maxBatch], batch[maxBatch:]
	}
	q.mu.Unlock()
	return batch
}

// done gives back a batch take returned, once written.
func (q *writeQueue) done(batch [][]byte) {
	if cap(batch) > keptBatch {
		return
	}
	clear(batch)
	q.mu.Lock()
	q.spare = batch[:0]
	q.mu.Unlock()
}

// len is how many frames are waiting.
func (q *writeQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.frames)
}
