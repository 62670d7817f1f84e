package csta

import (
	"bufio"
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// transport is one client connection's byte path: TCP (8-byte header framing)
// or WebSocket (one message per frame, binary or Zultys text). A connection has exactly one
// reader and one writer goroutine; close may be called from anywhere.
type transport interface {
	readFrame(maxSize int) (Frame, error)
	setReadDeadline(t time.Time) error
	// writeFrames writes already-framed messages and flushes once.
	writeFrames(frames [][]byte, deadline time.Time) error
	remoteAddr() string
	// closing records why the connection is about to end, before close:
	// a WebSocket says it in its Close frame (RFC 6455 §5.5.1).
	closing(code closeCode, reason string)
	close()
}

type tcpTransport struct {
	nc        net.Conn
	reader    *FrameReader
	closeOnce sync.Once
}

func newTCPTransport(nc net.Conn) *tcpTransport {
	return &tcpTransport{nc: nc}
}

// writeBufferSize is the pooled buffer a batch of frames is gathered in,
// so that pipelined answers leave in few writes. An idle connection holds
// none.
const writeBufferSize = 32 << 10

var writeBufferPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}

func (t *tcpTransport) readFrame(maxSize int) (Frame, error) {
	if t.reader == nil {
		t.reader = NewFrameReader(t.nc, maxSize)
	}
	t.reader.SetMaxSize(maxSize) // a reload may have changed it
	return t.reader.ReadFrame()
}

func (t *tcpTransport) setReadDeadline(d time.Time) error { return t.nc.SetReadDeadline(d) }

func (t *tcpTransport) writeFrames(frames [][]byte, deadline time.Time) error {
	if err := t.nc.SetWriteDeadline(deadline); err != nil {
		return err
	}
	if len(frames) == 1 { // nothing to gather
		_, err := t.nc.Write(frames[0])
		return err
	}
	w := writeBufferPool.Get().(*bufio.Writer)
	w.Reset(t.nc)
	defer func() {
		w.Reset(nil)
		writeBufferPool.Put(w)
	}()
	for _, f := range frames {
		if _, err := w.Write(f); err != nil {
			return err
		}
	}
	return w.Flush()
}

func (t *tcpTransport) remoteAddr() string { return t.nc.RemoteAddr().String() }

func (t *tcpTransport) closing(closeCode, string) {}

func (t *tcpTransport) close() { t.closeOnce.Do(func() { t.nc.Close() }) }

// handshake completes a TLS handshake within the deadline, so a client that
// connects and says nothing cannot hold a slot.
func (t *tcpTransport) handshake(timeout time.Duration) error {
	tc, ok := t.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	tc.SetDeadline(time.Now().Add(timeout))
	defer tc.SetDeadline(time.Time{})
	return tc.Handshake()
}
