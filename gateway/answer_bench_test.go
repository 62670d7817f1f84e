package gateway

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
)

// cstaFront is the real CSTA front end on 127.0.0.1 in front of a harness's
// gateway (its Publisher), for tests of what a client sees on the wire.
type cstaFront struct {
	*harness
	srv *csta.Server
}

// actions, if given, stands between the gateway and the harness's
// fakeActions (h.g is set once the gateway is built, before any request).
func newCSTAFront(tb testing.TB, cfg Config, actions ...func(h *harness) Actions) *cstaFront {
	tb.Helper()
	h := &harness{act: &fakeActions{}, hot: &fakeHoteling{}, pub: &fakePublisher{}}
	var a Actions = h.act
	for _, wrap := range actions {
		a = wrap(h)
	}
	h.g = New(cfg, Deps{Actions: a, Hoteling: h.hot}, nil)
	ccfg := csta.DefaultConfig()
	ccfg.Listen = "127.0.0.1:0"
	srv := csta.NewServer(ccfg, h.g, nil)
	h.g.deps.Publisher = srv // before any request or event: no race
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return &cstaFront{harness: h, srv: srv}
}

// dial opens a raw CTI client connection (closed at the test's end).
func (f *cstaFront) dial(tb testing.TB) *cstaClient {
	tb.Helper()
	nc, err := net.Dial("tcp", f.srv.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	return &cstaClient{t: tb, conn: nc, fr: csta.NewFrameReader(nc, 65535)}
}

func monitorXML(dev string) string {
	return fmt.Sprintf(`<MonitorStart xmlns="%s"><monitorObject><deviceObject>%s</deviceObject></monitorObject></MonitorStart>`, ns3, dev)
}

func setDNDXML(dev string, on bool) string {
	return fmt.Sprintf(`<SetDoNotDisturb xmlns="%s"><device>%s</device><doNotDisturbOn>%t</doNotDisturbOn></SetDoNotDisturb>`, ns3, dev, on)
}

// BenchmarkAnswerToEvent: one CTI client over TCP monitors carol and sets
// her DND; the XSI event confirming it arrives while the XSI request is in
// flight (fakeActions.onCall), so the CSTA event is held until the answer
// is on its way. Timed per request: from sending it to reading its answer
// (answer-us) and to reading its DoNotDisturbEvent (event-us), which comes
// after the answer on the same connection.
//
//	go test -run '^$' -bench AnswerToEvent -benchtime 200x ./gateway/
func BenchmarkAnswerToEvent(b *testing.B) {
	cfg := testConfig
	f := newCSTAFront(b, cfg)
	f.g.HandleXSIEvent(xev("carol@example.com", dnd(false))) // snapshot: the view is fresh
	var on atomic.Bool                                       // the request's value, for the event that confirms it
	f.act.onCall = func(method string) {
		if method == "SetDND" {
			f.g.HandleXSIEvent(xev("carol@example.com", dnd(on.Load())))
		}
	}
	c := f.dial(b)
	c.send(1, monitorXML("carol"))
	if id, x := c.read(); id != 1 || !strings.Contains(x, "MonitorStartResponse") {
		b.Fatalf("MonitorStart answer %04d: %s", id, x)
	}
	var toAnswer, toEvent time.Duration
	b.ResetTimer()
	for i := range b.N {
		on.Store(!on.Load())
		invoke := 2 + i%9000
		start := time.Now()
		c.send(invoke, setDNDXML("carol", on.Load()))
		if id, x := c.read(); id != invoke || !strings.Contains(x, "SetDoNotDisturbResponse") {
			b.Fatalf("want the answer to %04d first, got %04d %s", invoke, id, x)
		}
		toAnswer += time.Since(start)
		if id, x := c.read(); id != csta.EventInvokeID || !strings.Contains(x, "DoNotDisturbEvent") {
			b.Fatalf("want the DoNotDisturbEvent, got %04d %s", id, x)
		}
		toEvent += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(toAnswer.Microseconds())/float64(b.N), "answer-us")
	b.ReportMetric(float64(toEvent.Microseconds())/float64(b.N), "event-us")
}
