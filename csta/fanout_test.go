package csta

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
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

// oracleFrame is the frame a monitor got before events were shared: the
// document encoded whole with its crossRefID (AppendEvent), where the shared
// path encodes it once and copies each crossRefID in.
func oracleFrame(tb testing.TB, ev *Event, crossRefID string, ed Edition) []byte {
	tb.Helper()
	doc, err := AppendEvent(nil, ev, crossRefID, ed) // the whole document, crossRefID encoded in place
	if err != nil {
		tb.Fatal(err)
	}
	f, err := AppendFrame(nil, EventInvokeID, doc)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

var fanoutEditions = []Edition{EditionNone, Edition2, Edition3, Edition4, Edition5, Edition6}

// fanoutEvents are every kind, full and bare, and with text to escape.
func fanoutEvents() []Event {
	var evs []Event
	for k := EventKind(1); k < eventKindCount; k++ {
		evs = append(evs, *codecFullEvent(k), Event{Kind: k, Device: "4711"}, Event{Kind: k},
			Event{Kind: k, Device: `a<b&"c'>`, AgentID: "ä\x01", ACDGroup: "g&", Cause: "<", ReasonCode: "&", PendingAgentState: "null", ForwardingType: ForwardImmediate, ForwardTo: "x>y"})
	}
	return evs
}

// TestSharedEventFramesMatchAppendEvent: for every kind, edition and
// crossRefID, the frame the shared path makes (one monitor, or many) is
// byte for byte the one AppendEvent made for each monitor before.
func TestSharedEventFramesMatchAppendEvent(t *testing.T) {
	crossRefs := []string{"1", "17", "4294967296", "", "a<b&c"}
	for _, ev := range fanoutEvents() {
		for _, ed := range fanoutEditions {
			shared := newEventFrames(&ev, 2)
			for _, id := range crossRefs {
				want := oracleFrame(t, &ev, id, ed)
				doc, err := AppendEvent([]byte("prefix"), &ev, id, ed)
				if err != nil || string(doc) != "prefix"+string(want[HeaderSize:]) {
					t.Fatalf("%v %v %q: AppendEvent\n got %q, %v\nwant %q", ev.Kind, ed, id, doc, err, want[HeaderSize:])
				}
				single, err := newEventFrames(&ev, 1).frame(ed, id)
				if err != nil || !bytes.Equal(single, want) {
					t.Fatalf("%v %v %q: one monitor\n got %q, %v\nwant %q", ev.Kind, ed, id, single, err, want)
				}
				for range 2 { // made, then taken from the frames made
					got, err := shared.frame(ed, id)
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("%v %v %q: shared\n got %q, %v\nwant %q", ev.Kind, ed, id, got, err, want)
					}
				}
			}
		}
	}
	// An event whose document cannot be framed is refused on both paths.
	big := Event{Kind: EventAgentReady, Device: DeviceID(strings.Repeat("x", MaxFrameSize))}
	for _, n := range []int{1, 2} {
		if _, err := newEventFrames(&big, n).frame(Edition6, "1"); err == nil {
			t.Errorf("%d monitors: a frame over %d bytes was made", n, MaxFrameSize)
		}
	}
	if _, err := newEventFrames(&Event{Kind: eventKindCount}, 2).frame(Edition6, "1"); err == nil {
		t.Error("an event of no kind was framed")
	}
}

// TestFanoutManyMonitorsSameBytes publishes every event kind to monitors on
// several connections of every edition, some with filters, and holds each
// connection's bytes to what it got before events were shared: per event,
// one frame per monitor the filter lets through, in publish order.
func TestFanoutManyMonitorsSameBytes(t *testing.T) {
	s := startServer(t, testConfig(), noopService{})
	type conn struct {
		fc     *fanoutConn
		ed     Edition
		filter MonitorFilter
	}
	// agentReady and forwarding suppressed: the filter of codec_test's MonitorStart.
	filterXML := `<requestedMonitorFilter><logicalDeviceFeature><agentReady>true</agentReady><forwarding>true</forwarding></logicalDeviceFeature></requestedMonitorFilter>`
	filtered := MonitorFilter{}.Suppress(EventAgentReady, true).Suppress(EventForwarding, true)
	var conns []conn
	for i, ed := range fanoutEditions {
		for _, withFilter := range []bool{false, true} {
			x, f := "", MonitorFilter{}
			if withFilter {
				x, f = filterXML, filtered
			}
			conns = append(conns, conn{openFanoutConn(t, s, ed, "4711", 1+i%3, x, true), ed, f})
		}
	}
	// A monitor on another device hears nothing of these.
	other := openFanoutConn(t, s, Edition6, "4712", 2, "", true)

	evs := fanoutEvents()
	for _, ev := range evs {
		ev.Device = "4711"
		s.Publish(ev)
	}
	for ci, c := range conns {
		var want [][]byte
		groups := []int{}
		for _, ev := range evs {
			ev.Device = "4711"
			if c.filter.Suppresses(ev.Kind) {
				continue
			}
			for _, id := range c.fc.crossRefs {
				want = append(want, oracleFrame(t, &ev, id, c.ed))
			}
			groups = append(groups, len(c.fc.crossRefs))
		}
		c.fc.t.waitWritten(t, c.fc.frames+int64(len(want)))
		got := c.fc.t.taken()
		if len(got) != len(want) {
			t.Fatalf("connection %d (%v): %d frames, want %d", ci, c.ed, len(got), len(want))
		}
		// One event's frames for several monitors may come in any order;
		// the events come in publish order.
		at := 0
		for _, n := range groups {
			g, w := sortedFrames(got[at:at+n]), sortedFrames(want[at:at+n])
			for i := range g {
				if !bytes.Equal(g[i], w[i]) {
					t.Fatalf("connection %d (%v), frame %d:\n got %q\nwant %q", ci, c.ed, at+i, g[i], w[i])
				}
			}
			at += n
		}
	}
	time.Sleep(10 * time.Millisecond) // a wrongly sent frame would be written by now
	if n := other.t.written.Load(); n != other.frames {
		t.Fatalf("the monitors of another device got %d frames", n-other.frames)
	}
}

func sortedFrames(fs [][]byte) [][]byte {
	out := slices.Clone(fs)
	slices.SortFunc(out, bytes.Compare)
	return out
}

// FuzzEventFrames holds the shared event frames to the old encoder's bytes
// for any event, crossRefID and edition.
//
//	go test -run='^$' -fuzz=FuzzEventFrames -fuzztime=30s ./csta/
func FuzzEventFrames(f *testing.F) {
	for _, ev := range fanoutEvents() {
		f.Add(uint8(ev.Kind), string(ev.Device), ev.AgentID, string(ev.ACDGroup), ev.ReasonCode, ev.PendingAgentState, ev.Cause,
			string(ev.ForwardingType), string(ev.ForwardTo), ev.ForwardStatus, ev.DoNotDisturbOn, ev.RingCount, "17", uint8(6))
	}
	f.Fuzz(func(t *testing.T, kind uint8, device, agent, acd, reason, pending, cause, fwdType, fwdTo string,
		fwdStatus, dnd bool, ring int, crossRefID string, edition uint8) {
		ev := Event{Kind: EventKind(kind), Device: DeviceID(device), AgentID: agent, ACDGroup: DeviceID(acd), ReasonCode: reason,
			PendingAgentState: pending, Cause: cause, ForwardingType: ForwardingType(fwdType), ForwardTo: DeviceID(fwdTo),
			ForwardStatus: fwdStatus, DoNotDisturbOn: dnd, RingCount: ring}
		ed := Edition(edition % 8)
		doc, oerr := AppendEvent(nil, &ev, crossRefID, ed)
		var want []byte
		if oerr == nil {
			want, oerr = AppendFrame(nil, EventInvokeID, doc)
		}
		for _, monitors := range []int{1, 3} {
			frames := newEventFrames(&ev, monitors)
			for range 2 {
				got, err := frames.frame(ed, crossRefID)
				if (err != nil) != (oerr != nil) {
					t.Fatalf("%d monitors: error %v, the old encoder's %v", monitors, err, oerr)
				}
				if err == nil && !bytes.Equal(got, want) {
					t.Fatalf("%d monitors:\n got %q\nwant %q", monitors, got, want)
				}
			}
		}
	})
}
