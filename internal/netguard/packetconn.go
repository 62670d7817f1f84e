package netguard

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// PacketConn is a datagram socket whose ReadFrom does not fail but for a
// closed socket: any other error (ENOBUFS, ENOMEM, an ICMP error reported on
// the socket) is logged and the read retried with backoff, 5 ms doubling to
// 1 s, so a read loop that ends on the first error keeps serving. A read
// deadline set through SetReadDeadline or SetDeadline is honoured: its
// timeout is returned.
type PacketConn struct {
	net.PacketConn
	name string
	log  *slog.Logger

	deadline  atomic.Bool // a read deadline is set: timeouts are the caller's
	done      chan struct{}
	closeOnce sync.Once
	closed    atomic.Bool
}

// NewPacketConn guards pc; log may be nil.
func NewPacketConn(pc net.PacketConn, name string, log *slog.Logger) *PacketConn {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PacketConn{PacketConn: pc, name: name, log: log, done: make(chan struct{})}
}

// ReadFrom implements net.PacketConn; see the type's doc.
func (p *PacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	var delay time.Duration
	for {
		n, addr, err := p.PacketConn.ReadFrom(b)
		if err == nil || errors.Is(err, net.ErrClosed) || p.closed.Load() {
			return n, addr, err
		}
		if isTimeout(err) && p.deadline.Load() {
			return n, addr, err
		}
		delay = nextBackoff(delay)
		p.log.Warn("read failed; retrying", "listener", p.name, "errno", errnoName(err), "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-p.done:
			t.Stop()
			return 0, nil, net.ErrClosed
		}
	}
}

// SetReadDeadline implements net.PacketConn.
func (p *PacketConn) SetReadDeadline(t time.Time) error {
	p.deadline.Store(!t.IsZero())
	return p.PacketConn.SetReadDeadline(t)
}

// SetDeadline implements net.PacketConn.
func (p *PacketConn) SetDeadline(t time.Time) error {
	p.deadline.Store(!t.IsZero())
	return p.PacketConn.SetDeadline(t)
}

// Close implements net.PacketConn.
func (p *PacketConn) Close() error {
	p.closed.Store(true)
	p.closeOnce.Do(func() { close(p.done) })
	return p.PacketConn.Close()
}
