package xsi

import (
	"context"
	"errors"
	"sync"
	"time"
)

// A request's time has two parts: waiting for our own limits (the XSP's
// in-flight bound and token bucket, transport.go), then the XSP's work.
// Under a storm the first can eat a deadline meant for the second: a step
// that must be confirmed "within 2 s" spent them queued behind 32 others
// and failed without the XSP ever seeing it. WithSendTimeout gives each
// part its own bound.

// ErrNotSent marks a request that never left: our own in-flight bound or
// token bucket had no room before its deadline (or its queue bound from
// WithSendTimeout). The XSP never saw it, so it cannot apply it later
// (MayApplyLate is false).
var ErrNotSent = errors.New("xsi: request not sent (local limits full)")

// sendHookKey carries a *sendCtx in a request's context so that the
// transport can tell it when the request leaves.
type sendHookKey struct{}

// sendCtx is a context whose deadline is set when its request is sent:
// before that it ends queue after it was made, after that timeout after
// the send. Values come from the parent; it ends with the parent too.
type sendCtx struct {
	parent  context.Context
	timeout time.Duration
	done    chan struct{}
	stop    func() bool // the AfterFunc that follows the parent

	mu       sync.Mutex
	timer    *time.Timer // nil while there is no bound of its own
	deadline time.Time   // the queue bound (zero: none) until sent, then sent+timeout
	sentAt   time.Time   // zero until sent
	err      error
}

// WithSendTimeout returns a context for one Actions call (and whatever
// waits on its outcome with the same context): until the call's first
// attempt holds its in-flight slot and rate-limit token it ends after
// queue (0: no bound of its own); from then on, timeout after that moment. The parent's own end
// (and xsi.request_timeout, which bounds a whole call) still apply.
//
// sent marks the request sent if the transport has not (a caller whose
// Actions are not an xsi Client calls it once the call returned) and
// returns when it was; cancel releases the context's timer.
func WithSendTimeout(parent context.Context, queue, timeout time.Duration) (ctx context.Context, sent func() time.Time, cancel context.CancelFunc) {
	c := &sendCtx{parent: parent, timeout: timeout, done: make(chan struct{})}
	c.mu.Lock() // the callbacks below wait for it: they see timer and stop set
	if queue > 0 {
		c.deadline = time.Now().Add(queue)
		c.timer = time.AfterFunc(queue, func() { c.end(context.DeadlineExceeded) })
	}
	c.stop = context.AfterFunc(parent, func() { c.end(parent.Err()) })
	c.mu.Unlock()
	return c, c.markSent, func() { c.end(context.Canceled) }
}

// markSent starts the send clock once and returns the send time.
func (c *sendCtx) markSent() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sentAt.IsZero() {
		c.sentAt = time.Now()
		if c.err == nil {
			if c.timer != nil {
				c.timer.Stop()
			}
			c.deadline = c.sentAt.Add(c.timeout)
			c.timer = time.AfterFunc(c.timeout, func() { c.end(context.DeadlineExceeded) })
		}
	}
	return c.sentAt
}

func (c *sendCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	if c.timer != nil {
		c.timer.Stop()
	}
	c.stop()
	close(c.done)
}

func (c *sendCtx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	d := c.deadline
	c.mu.Unlock()
	if pd, ok := c.parent.Deadline(); ok && (d.IsZero() || pd.Before(d)) {
		return pd, true
	}
	return d, !d.IsZero()
}

func (c *sendCtx) Done() <-chan struct{} { return c.done }

func (c *sendCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *sendCtx) Value(key any) any {
	if key == (sendHookKey{}) {
		return c
	}
	return c.parent.Value(key)
}

// MarkSent tells the nearest WithSendTimeout context of ctx, if any, that
// its request is leaving now. The Client's transport calls it once a
// request holds its in-flight slot and rate-limit token; other
// implementations of the Actions (test fakes with limits of their own) call
// it at their equivalent moment.
func MarkSent(ctx context.Context) {
	if c, ok := ctx.Value(sendHookKey{}).(*sendCtx); ok {
		c.markSent()
	}
}
