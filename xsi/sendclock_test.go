package xsi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestSendTimeoutClock: the deadline of a WithSendTimeout context is the
// queue bound until the request is sent, then the timeout from the send.
func TestSendTimeoutClock(t *testing.T) {
	type key struct{}
	tests := []struct {
		name     string
		sendAt   time.Duration // -1: never sent
		cancelAt time.Duration // parent canceled then; 0: never
		wantEnd  time.Duration
		wantErr  error
		noQueue  bool
	}{
		{name: "never sent: ends at the queue bound", sendAt: -1, wantEnd: 3 * time.Second, wantErr: context.DeadlineExceeded},
		{name: "sent at once", sendAt: 0, wantEnd: time.Second, wantErr: context.DeadlineExceeded},
		{name: "sent after queueing longer than the timeout", sendAt: 2500 * time.Millisecond, wantEnd: 3500 * time.Millisecond, wantErr: context.DeadlineExceeded},
		{name: "no queue bound: ends at the parent's deadline", sendAt: -1, cancelAt: 10 * time.Second, wantEnd: 10 * time.Second, wantErr: context.Canceled, noQueue: true},
		{name: "parent ends first", sendAt: 500 * time.Millisecond, cancelAt: 700 * time.Millisecond, wantEnd: 700 * time.Millisecond, wantErr: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				parent, pcancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
				defer pcancel()
				start := time.Now()
				queue := 3 * time.Second
				if tc.noQueue {
					queue = 0
				}
				ctx, sent, cancel := WithSendTimeout(parent, queue, time.Second)
				defer cancel()
				if ctx.Value(key{}) != "v" {
					t.Fatal("parent's values not seen")
				}
				// A child made before the send (as xsi's do makes one)
				// follows the deadline set later.
				child, ccancel := context.WithTimeout(ctx, time.Hour)
				defer ccancel()
				if tc.sendAt >= 0 {
					time.AfterFunc(tc.sendAt, func() { MarkSent(child) })
				}
				if tc.cancelAt > 0 {
					time.AfterFunc(tc.cancelAt, pcancel)
				}
				<-ctx.Done()
				if got := time.Since(start); got != tc.wantEnd {
					t.Errorf("ended after %v, want %v", got, tc.wantEnd)
				}
				if !errors.Is(ctx.Err(), tc.wantErr) {
					t.Errorf("Err = %v, want %v", ctx.Err(), tc.wantErr)
				}
				<-child.Done()
				if !errors.Is(child.Err(), tc.wantErr) {
					t.Errorf("child Err = %v, want %v", child.Err(), tc.wantErr)
				}
				if tc.sendAt >= 0 && tc.sendAt < tc.wantEnd {
					if got := sent().Sub(start); got != tc.sendAt {
						t.Errorf("sent at %v, want %v", got, tc.sendAt)
					}
				}
			})
		})
	}
}

// TestSendTimeoutMarkedByCaller: a caller whose call did not go through the
// transport starts the clock itself; marking twice keeps the first time.
func TestSendTimeoutMarkedByCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		ctx, sent, cancel := WithSendTimeout(context.Background(), time.Second, 2*time.Second)
		defer cancel()
		time.Sleep(800 * time.Millisecond)
		first := sent()
		time.Sleep(100 * time.Millisecond)
		if again := sent(); !again.Equal(first) {
			t.Fatalf("second mark moved the send time: %v, then %v", first, again)
		}
		<-ctx.Done()
		if got := time.Since(start); got != 2800*time.Millisecond {
			t.Fatalf("ended after %v, want 2.8s (sent at 0.8s + 2s)", got)
		}
		cancel() // after the end: nothing happens
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v", ctx.Err())
		}
	})
}

// TestXSPSendTimeoutQueued: over a real socket, a request that waits for
// the only in-flight slot longer than its send timeout still gets that
// whole timeout once sent; one whose queue bound passes first is never
// sent, says so (ErrNotSent), and is not one the XSP may apply late.
func TestXSPSendTimeoutQueued(t *testing.T) {
	actLeakCheck(t)
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // before the server's Close (cleanup)
	var seen atomic.Int32
	arrived := make(chan struct{})
	srv := actServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		fmt.Fprint(w, "<ok/>")
	}))
	cfg := actTestConfig(srv.URL)
	cfg.MaxInFlight = 1
	x := actTestXSP(t, srv.URL, &cfg)
	first := make(chan error, 1)
	go func() {
		_, err := x.do(context.Background(), http.MethodGet, "/slow", nil)
		first <- err
	}()
	<-arrived // the first request holds the slot

	// Queue bound shorter than the wait: never sent.
	qctx, _, qcancel := WithSendTimeout(context.Background(), 20*time.Millisecond, time.Hour)
	_, err := x.do(qctx, http.MethodPut, "/p", []byte("<b/>"))
	qcancel()
	if !errors.Is(err, ErrNotSent) || !errors.Is(err, context.DeadlineExceeded) || MayApplyLate(err) {
		t.Fatalf("queued past its bound: err = %v (MayApplyLate %t), want ErrNotSent, DeadlineExceeded, not MayApplyLate", err, MayApplyLate(err))
	}
	if n := seen.Load(); n != 1 {
		t.Fatalf("server saw %d requests, want only the first", n)
	}

	// Timeout shorter than the wait: the wait does not count.
	const timeout = 50 * time.Millisecond
	ctx, sent, cancel := WithSendTimeout(context.Background(), time.Hour, timeout)
	defer cancel()
	second := make(chan error, 1)
	go func() {
		_, err := x.do(ctx, http.MethodGet, "/p", nil)
		second <- err
	}()
	for x.waiting.Load() == 0 {
		select {
		case err := <-second:
			t.Fatalf("queued request ended before the slot was free: %v", err)
		default:
		}
		time.Sleep(time.Millisecond)
	}
	if l := (&Client{servers: []*xspState{{xsp: x}}}).Load(); l != (Load{InFlight: 1, Waiting: 1, Cap: 1}) {
		t.Errorf("Load = %+v, want 1 in flight, 1 waiting, cap 1", l)
	}
	time.Sleep(3 * timeout) // queued for longer than its timeout (makes the old behaviour fail; no assertion on time)
	free()
	if err := <-first; err != nil {
		t.Fatalf("first request: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("queued request: %v (its timeout ran while it waited for a slot)", err)
	}
	if sent().IsZero() {
		t.Fatal("send time not recorded")
	}
}
