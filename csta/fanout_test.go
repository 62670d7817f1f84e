package csta

import (
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memTransport is a connection's byte path held in memory: the test hands
// it frames to read, and it keeps (or only counts) the frames written.
type memTransport struct {
	in      chan Frame
	gone    chan struct{}
	once    sync.Once
	written atomic.Int64
	record  bool

	mu     sync.Mutex
	frames [][]byte // copies of what was written, when record
}

func newMemTransport(record bool) *memTransport {
	return &memTransport{in: make(chan Frame, 16), gone: make(chan struct{}), record: record}
}

func (t *memTransport) readFrame(int) (Frame, error) {
	select {
	case f := <-t.in:
		return f, nil
	case <-t.gone:
		return Frame{}, io.EOF
	}
}

func (t *memTransport) setReadDeadline(time.Time) error { return nil }

func (t *memTransport) writeFrames(frames [][]byte, _ time.Time) error {
	if t.record {
		t.mu.Lock()
		for _, f := range frames {
			t.frames = append(t.frames, append([]byte(nil), f...))
		}
		t.mu.Unlock()
	}
	t.written.Add(int64(len(frames)))
	return nil
}

func (t *memTransport) remoteAddr() string        { return "mem" }
func (t *memTransport) closing(closeCode, string) {}
func (t *memTransport) close()                    { t.once.Do(func() { close(t.gone) }) }

// request feeds one request and waits until want frames in all were written.
func (t *memTransport) request(tb testing.TB, invokeID int, xml string, want int64) {
	tb.Helper()
	t.in <- Frame{InvokeID: invokeID, XML: []byte(xml)}
	t.waitWritten(tb, want)
}

func (t *memTransport) waitWritten(tb testing.TB, want int64) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for t.written.Load() < want {
		if time.Now().After(deadline) {
			tb.Fatalf("%d frames written, want %d", t.written.Load(), want)
		}
		runtime.Gosched()
	}
}

// taken returns the recorded frames and forgets them.
func (t *memTransport) taken() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.frames
	t.frames = nil
	return f
}

// fanoutConn is one client connection of a fan-out test: a session in
// edition ed and monitors on device.
type fanoutConn struct {
	t         *memTransport
	frames    int64 // written so far, as counted by the test
	crossRefs []string
}

// openFanoutConn starts a connection on s with a session in ed (EditionNone:
// no session, and the connection's edition comes from its requests' own
// namespace) and monitors monitors on device with filter (a
// requestedMonitorFilter element, or "").
func openFanoutConn(tb testing.TB, s *Server, ed Edition, device string, monitors int, filter string, record bool) *fanoutConn {
	tb.Helper()
	mt := newMemTransport(record)
	if ok, _, _ := s.admit("tcp", "mem"); !ok {
		tb.Fatal("connection not admitted")
	}
	s.startConn(mt, "tcp", "mem")
	fc := &fanoutConn{t: mt}
	ns := ""
	if ed != EditionNone {
		ns = ` xmlns="` + ed.Namespace() + `"`
		start := `<StartApplicationSession ` + nsSess + `><applicationInfo><applicationID>fanout</applicationID></applicationInfo><requestedProtocolVersions><protocolVersion>` + ed.Namespace() + `</protocolVersion></requestedProtocolVersions></StartApplicationSession>`
		fc.frames++
		mt.request(tb, 1, start, fc.frames)
	}
	for i := range monitors {
		fc.frames++
		mt.request(tb, 2+i, `<MonitorStart`+ns+`><monitorObject><deviceObject>`+device+`</deviceObject></monitorObject>`+filter+`</MonitorStart>`, fc.frames)
		fc.crossRefs = append(fc.crossRefs, fmt.Sprint(i+1))
	}
	if record {
		mt.taken()
	}
	return fc
}

// BenchmarkFanout publishes one event to n monitors of one device, spread
// over up to 10 connections (editions 3 and 6), and waits for every frame
// to be written.
//
//	go test -run='^$' -bench=Fanout -benchmem ./csta/
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("monitors=%d", n), func(b *testing.B) {
			cfg := testConfig()
			cfg.WriteQueueLength = 8192
			s := startServer(b, cfg, noopService{})
			conns := min(n, 10)
			var fcs []*fanoutConn
			for i := range conns {
				ed := Edition6
				if i%2 == 1 {
					ed = Edition3
				}
				fcs = append(fcs, openFanoutConn(b, s, ed, "4711", n/conns, "", false))
			}
			ev := Event{Kind: EventAgentNotReady, Device: "4711", AgentID: "agent-4711", ACDGroup: "sales@example.com", Cause: "keyOperation", ReasonCode: "3"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.Publish(ev)
				for _, fc := range fcs {
					fc.frames += int64(len(fc.crossRefs))
					// Far from the queue's bound: wait only now and then.
					if fc.frames-fc.t.written.Load() > 2048 || i == b.N-1 {
						fc.t.waitWritten(b, fc.frames)
					}
				}
			}
		})
	}
}
