package csta

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// answerService holds each SetDoNotDisturb's event until its answer is
// queued, as the gateway does: the event is published from AfterAnswer.
// On device "stall" it first waits for proceed (and for ctx's end unless
// deafToCtx), registering one release before it waits and one after (both
// must run).
type answerService struct {
	*fakeService
	publish   func(Event)
	proceed   chan struct{} // closed by the test: "stall" requests go on
	stalled   chan struct{} // a "stall" request is waiting
	released  atomic.Int32  // AfterAnswer functions run for "stall" requests
	releaseCh chan struct{} // one send per such function
	frontEnd  atomic.Bool   // AfterAnswer reported a front end request
	deafToCtx bool          // "stall" requests outlive their deadline
}

func newAnswerService(devices ...DeviceID) *answerService {
	return &answerService{fakeService: newFakeService(devices...), proceed: make(chan struct{}),
		stalled: make(chan struct{}, 16), releaseCh: make(chan struct{}, 16)}
}

func (a *answerService) SetDoNotDisturb(ctx context.Context, _ Requester, r *SetDoNotDisturb) error {
	ev := Event{Kind: EventDoNotDisturb, Device: r.Device, DoNotDisturbOn: r.DoNotDisturbOn}
	if r.Device != "stall" {
		a.frontEnd.Store(AfterAnswer(ctx, func() { a.publish(ev) }))
		return nil
	}
	note := func() { a.released.Add(1); a.releaseCh <- struct{}{} }
	AfterAnswer(ctx, note)
	a.stalled <- struct{}{}
	done := ctx.Done()
	if a.deafToCtx {
		done = nil
	}
	select {
	case <-a.proceed:
	case <-done:
	}
	AfterAnswer(ctx, note)
	return ctx.Err()
}

// frameConn is one CTI client connection, over TCP or WebSocket.
type frameConn interface {
	send(invokeID int, xml string)
	read() Frame
	close()
}

type tcpFrameConn struct{ *client }

func (c tcpFrameConn) close() { c.nc.Close() }

type wsFrameConn struct {
	t  *testing.T
	ws *websocket.Conn
}

func (c wsFrameConn) send(invokeID int, xml string) {
	c.t.Helper()
	b, _ := AppendFrame(nil, invokeID, []byte(xml))
	if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		c.t.Fatal(err)
	}
}
func (c wsFrameConn) read() Frame { c.t.Helper(); return wsRead(c.t, c.ws) }
func (c wsFrameConn) close()      { c.ws.Close() }

// answerTransports start a server for svc and dial it, over each transport.
var answerTransports = []struct {
	name string
	dial func(t *testing.T, cfg Config, svc *answerService) frameConn
}{
	{"tcp", func(t *testing.T, cfg Config, svc *answerService) frameConn {
		s := startServer(t, cfg, svc)
		svc.publish = s.Publish
		return tcpFrameConn{dial(t, s)}
	}},
	{"websocket", func(t *testing.T, cfg Config, svc *answerService) frameConn {
		s := NewServer(cfg, svc, testLogger(t))
		svc.publish = s.Publish
		url := wsServer(t, s)
		t.Cleanup(func() { s.Shutdown(context.Background()) })
		return wsFrameConn{t, wsDial(t, url)}
	}},
}

// TestAfterAnswerEventFollowsAnswer: a client monitoring a device pipelines
// DND requests for it; the Service publishes each request's event from
// AfterAnswer, so at every point the client has read at least as many
// answers as events, and each event follows its own request's answer.
func TestAfterAnswerEventFollowsAnswer(t *testing.T) {
	const n = 20
	for _, tr := range answerTransports {
		t.Run(tr.name, func(t *testing.T) {
			svc := newAnswerService("4711")
			c := tr.dial(t, testConfig(), svc)
			c.send(1, `<MonitorStart `+ns6+`><monitorObject><deviceObject>4711</deviceObject></monitorObject></MonitorStart>`)
			if f := c.read(); f.InvokeID != 1 || parseRoot(t, f.XML).Tag != "MonitorStartResponse" {
				t.Fatalf("MonitorStart answered %04d %s", f.InvokeID, f.XML)
			}
			for i := range n {
				c.send(10+i, `<SetDoNotDisturb `+ns6+`><device>4711</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`)
			}
			answers, events := 0, 0
			for answers+events < 2*n {
				f := c.read()
				switch tag := parseRoot(t, f.XML).Tag; {
				case f.InvokeID == EventInvokeID && tag == "DoNotDisturbEvent":
					events++
					if events > answers {
						t.Fatalf("event %d read before its answer (%d answers so far)", events, answers)
					}
				case f.InvokeID >= 10 && f.InvokeID < 10+n && tag == "SetDoNotDisturbResponse":
					answers++
				default:
					t.Fatalf("unexpected frame %04d %s", f.InvokeID, f.XML)
				}
			}
			if !svc.frontEnd.Load() {
				t.Error("AfterAnswer did not find the front end's request in the Service's context")
			}
		})
	}
}

// TestAfterAnswerOnEveryPath: the AfterAnswer functions run whether the
// answer is the Service's or the deadline's, and when the connection closes
// mid-request and no answer can be queued; one registered after the answer
// runs at once.
func TestAfterAnswerOnEveryPath(t *testing.T) {
	stall := `<SetDoNotDisturb ` + ns6 + `><device>stall</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`
	for _, tr := range answerTransports {
		t.Run(tr.name+"/deadline", func(t *testing.T) {
			cfg := testConfig()
			cfg.RequestTimeout = 1 // the deadline answers as soon as it can
			svc := newAnswerService()
			svc.deafToCtx = true // returns after the deadline has answered
			c := tr.dial(t, cfg, svc)
			c.send(7, stall)
			if f := c.read(); f.InvokeID != 7 || errorOf(parseRoot(t, f.XML)) != "systemResourceAvailibility/resourceBusy" {
				t.Fatalf("answered %04d %s", f.InvokeID, f.XML)
			}
			await(t, svc.releaseCh, "the release registered before the deadline's answer")
			await(t, svc.stalled, "the request")
			close(svc.proceed)
			await(t, svc.releaseCh, "the release registered after the answer") // at once
		})
		t.Run(tr.name+"/closed", func(t *testing.T) {
			svc := newAnswerService()
			c := tr.dial(t, testConfig(), svc)
			c.send(7, stall)
			await(t, svc.stalled, "the request")
			c.close() // the request's ctx ends; its answer has nowhere to go
			await(t, svc.releaseCh, "the first release")
			await(t, svc.releaseCh, "the second release")
			if got := svc.released.Load(); got != 2 {
				t.Fatalf("%d releases ran, want 2", got)
			}
		})
	}
}

// await fails the test if nothing comes on ch within 10 s (a hang, not a
// timing assertion).
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing after 10 s", what)
	}
}

// TestWithAnswer: a front end of its own (or a test) runs the functions
// once; a context of no front end request has none to run.
func TestWithAnswer(t *testing.T) {
	if AfterAnswer(context.Background(), func() { t.Error("ran without a request") }) {
		t.Error("AfterAnswer found a request in context.Background()")
	}
	ctx, answered := WithAnswer(context.Background())
	var runs atomic.Int32
	sub, cancel := context.WithCancel(ctx) // the Service's own derived contexts carry it on
	defer cancel()
	if !AfterAnswer(sub, func() { runs.Add(1) }) || runs.Load() != 0 {
		t.Fatalf("registered: ran %d times before the answer", runs.Load())
	}
	answered()
	answered()
	if runs.Load() != 1 {
		t.Fatalf("ran %d times, want once", runs.Load())
	}
	AfterAnswer(ctx, func() { runs.Add(1) }) // after the answer: at once
	if runs.Load() != 2 {
		t.Fatalf("late registration ran %d times in all, want 2", runs.Load())
	}
}

// voteService registers an OnTimeout vote for each SetDoNotDisturb: device
// "busy-ok" lets the deadline's busy answer go, "settled" refuses it (its
// own answer is coming); either way the request then waits for proceed and
// answers success.
type voteService struct {
	*fakeService
	proceed chan struct{}
	voted   chan string // the device of each vote, when it ran
	found   atomic.Bool // OnTimeout found the front end's request
}

func (v *voteService) SetDoNotDisturb(ctx context.Context, _ Requester, r *SetDoNotDisturb) error {
	device := string(r.Device)
	v.found.Store(OnTimeout(ctx, func() bool {
		v.voted <- device
		return device == "busy-ok"
	}))
	<-v.proceed
	return nil
}

// TestOnTimeoutVote: at the request deadline the front end asks the
// Service's vote before answering busy; a vote against it leaves the
// Service's own answer, which then comes when the Service returns.
func TestOnTimeoutVote(t *testing.T) {
	for _, tc := range []struct {
		device, want string
	}{
		{"busy-ok", "systemResourceAvailibility/resourceBusy"},
		{"settled", ""}, // the Service's success
	} {
		t.Run(tc.device, func(t *testing.T) {
			cfg := testConfig()
			cfg.RequestTimeout = 20 * time.Millisecond
			svc := &voteService{fakeService: newFakeService(), proceed: make(chan struct{}), voted: make(chan string, 1)}
			s := startServer(t, cfg, svc)
			c := dial(t, s)
			c.send(7, `<SetDoNotDisturb `+ns6+`><device>`+tc.device+`</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`)
			select {
			case got := <-svc.voted:
				if got != tc.device {
					t.Fatalf("vote for %q, want %q", got, tc.device)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no vote 10 s after the deadline")
			}
			close(svc.proceed) // after the vote: only the vote decides
			f := c.read()
			root := parseRoot(t, f.XML)
			switch {
			case f.InvokeID != 7:
				t.Fatalf("answer %04d %s", f.InvokeID, f.XML)
			case tc.want != "" && errorOf(root) != tc.want:
				t.Fatalf("answered %s, want %s", f.XML, tc.want)
			case tc.want == "" && root.Tag != "SetDoNotDisturbResponse":
				t.Fatalf("answered %s, want the Service's SetDoNotDisturbResponse", f.XML)
			}
			if !svc.found.Load() {
				t.Error("OnTimeout did not find the front end's request")
			}
			// Exactly one answer: the next frame belongs to the next request.
			if name, _ := c.request(8, `<RequestSystemStatus `+ns6+`/>`); name != "RequestSystemStatusResponse" {
				t.Fatalf("next answer %s", name)
			}
		})
	}
	if OnTimeout(context.Background(), func() bool { return true }) {
		t.Error("OnTimeout found a request in context.Background()")
	}
}
