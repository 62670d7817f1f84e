package csta

import (
	"context"
	"slices"
	"sync"
)

// Answer before events. A client that changes a feature of a device it
// monitors reads the answer to its request before the event reporting the
// change (a client matches the event to what it asked for), yet the
// Service usually learns of the change — from BroadWorks' event channel —
// before its method returns. So the Service holds those events and
// registers their release with AfterAnswer; the front end runs it right
// after it has queued the answer on the connection's write queue, a FIFO
// the events then join behind it. No timer: the order is by construction.

type answerHooksKey struct{}

// answerHooks are the functions waiting for one request's answer.
type answerHooks struct {
	mu       sync.Mutex
	answered bool
	hooks    []func()
}

// WithAnswer returns a context for one request whose AfterAnswer functions
// run when answered is called, for a front end that queues the request's
// answer itself. answered must be called once the answer is queued, or
// once it is certain it never will be (the connection closed, the request
// refused or abandoned): on every path, or the events the Service holds
// for the request are held for good. Calls after the first do nothing.
func WithAnswer(parent context.Context) (ctx context.Context, answered func()) {
	h := &answerHooks{}
	return context.WithValue(parent, answerHooksKey{}, h), h.answer
}

// AfterAnswer arranges for f to run once the answer to the request ctx
// belongs to has been queued on its connection — whatever f then queues on
// that connection goes after the answer — or once it never will be. If the
// answer is already queued, f runs now on the caller's goroutine; else it
// runs on the front end's, with none of its locks held, so it must not
// block. It reports false, without running f, when ctx belongs to no front
// end request (an internal caller, or a test): there is no answer to wait
// for, and the caller goes on at once.
func AfterAnswer(ctx context.Context, f func()) bool {
	h, _ := ctx.Value(answerHooksKey{}).(*answerHooks)
	if h == nil {
		return false
	}
	h.mu.Lock()
	if h.answered {
		h.mu.Unlock()
		f()
		return true
	}
	h.hooks = append(h.hooks, f)
	h.mu.Unlock()
	return true
}

func (h *answerHooks) answer() {
	h.mu.Lock()
	if h.answered {
		h.mu.Unlock()
		return
	}
	h.answered = true
	hooks := h.hooks
	h.hooks = nil
	h.mu.Unlock()
	for _, f := range hooks {
		f()
	}
}

// Timing out. When a request's csta.limits.request_timeout passes before
// the Service answers, the front end answers resourceBusy ("not done") while
// the Service may still be working on it. A Service that promises clients
// what BroadWorks will end as must know which answer went out: it registers
// OnTimeout, and the front end asks it before answering busy. f reports
// whether the busy answer may go: true, and the Service takes the request as
// failed whatever its work ends in (f may block briefly to make that
// durable — a store write — and the answer waits for it); false, and the
// Service has already settled on its own answer, which the front end then
// sends when the Service returns (the request's context is cancelled all
// the same).

type timeoutVoteKey struct{}

type timeoutVote struct {
	mu sync.Mutex
	fs []func() bool
}

// withTimeoutVote returns a context for one request whose OnTimeout
// functions vote runs; vote reports whether the busy answer may go.
func withTimeoutVote(parent context.Context) (ctx context.Context, vote func() bool) {
	v := &timeoutVote{}
	return context.WithValue(parent, timeoutVoteKey{}, v), v.vote
}

// OnTimeout registers f for the request ctx belongs to (see above). It
// reports false when ctx belongs to no front end request: no answer can go
// out before the caller returns.
func OnTimeout(ctx context.Context, f func() bool) bool {
	v, _ := ctx.Value(timeoutVoteKey{}).(*timeoutVote)
	if v == nil {
		return false
	}
	v.mu.Lock()
	v.fs = append(v.fs, f)
	v.mu.Unlock()
	return true
}

func (v *timeoutVote) vote() bool {
	v.mu.Lock()
	fs := slices.Clone(v.fs)
	v.mu.Unlock()
	ok := true
	for _, f := range fs {
		ok = f() && ok
	}
	return ok
}
