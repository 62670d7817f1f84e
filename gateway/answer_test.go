package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/xsi"
)

// TestAnswerBeforeEventOverSocket: a CTI client over TCP monitors a device
// and changes it; the event reporting the change is derived while the
// request is in flight (the XSI event arrives before the HTTP answer, or
// the gateway makes it up for a forwarding XSI does not report), and the
// client reads the answer first, then the event — with no timer, because
// the event is queued on the connection only after the answer is. A second
// client's monitor hears the event too.
func TestAnswerBeforeEventOverSocket(t *testing.T) {
	cfwd := func(typ string, on bool) string {
		return fmt.Sprintf(`<SetForwarding xmlns="%s"><device>carol</device><forwardingType>%s</forwardingType><activateForward>%t</activateForward><forwardDN>+15559999</forwardDN></SetForwarding>`, ns3, typ, on)
	}
	for _, tt := range []struct {
		name    string
		request func(on bool) string
		answer  string
		event   string
	}{
		{"dnd, from the XSI event", func(on bool) string { return setDNDXML("carol", on) }, "SetDoNotDisturbResponse", "DoNotDisturbEvent"},
		{"busy forwarding, made up", func(on bool) string { return cfwd("forwardBusy", on) }, "SetForwardingResponse", "ForwardingEvent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig
			cfg.EventPackages = []string{"Do Not Disturb"} // XSI reports DND, not busy forwarding
			f := newCSTAFront(t, cfg)
			f.g.HandleXSIEvent(xev("carol@example.com", dnd(false))) // snapshot
			f.act.onCall = func(method string) {
				if method == "SetDND" {
					f.g.HandleXSIEvent(xev("carol@example.com", dnd(true)))
				}
			}
			c, other := f.dial(t), f.dial(t)
			for _, cl := range []*cstaClient{c, other} {
				cl.send(1, monitorXML("carol"))
				if id, x := cl.read(); id != 1 || !strings.Contains(x, "MonitorStartResponse") {
					t.Fatalf("MonitorStart answer %04d: %s", id, x)
				}
			}
			c.send(2, tt.request(true))
			if id, x := c.read(); id != 2 || !strings.Contains(x, tt.answer) {
				t.Fatalf("first frame after the request: %04d %s; want the answer", id, x)
			}
			if id, x := c.read(); id != csta.EventInvokeID || !strings.Contains(x, "<"+tt.event) || !strings.Contains(x, ">true<") {
				t.Fatalf("second frame: %04d %s; want the %s", id, x, tt.event)
			}
			if id, x := other.read(); id != csta.EventInvokeID || !strings.Contains(x, "<"+tt.event) {
				t.Fatalf("the other monitor got %04d %s; want the %s", id, x, tt.event)
			}
		})
	}
}

// stallingDND blocks SetDoNotDisturb until the request's context ends,
// after the XSI event confirming the change has arrived (and is held).
type stallingDND struct {
	*fakeActions
	h      *harness
	inCall chan struct{}
}

func (s stallingDND) SetDoNotDisturb(ctx context.Context, u string, d xsi.DoNotDisturb) error {
	s.h.g.HandleXSIEvent(xev(u, dnd(d.Active)))
	s.inCall <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

// TestDroppedRequesterReleasesEvents: the client whose request holds a
// user's events disconnects before the answer; the answer has nowhere to
// go, but the events are released all the same, and another client's
// monitor hears them (and the user's later ones, in order).
func TestDroppedRequesterReleasesEvents(t *testing.T) {
	inCall := make(chan struct{}, 1)
	f := newCSTAFront(t, testConfig, func(h *harness) Actions {
		return stallingDND{fakeActions: h.act, h: h, inCall: inCall}
	})
	f.g.HandleXSIEvent(xev("carol@example.com", dnd(false))) // snapshot
	requester, monitor := f.dial(t), f.dial(t)
	monitor.send(1, monitorXML("carol"))
	if id, x := monitor.read(); id != 1 || !strings.Contains(x, "MonitorStartResponse") {
		t.Fatalf("MonitorStart answer %04d: %s", id, x)
	}
	requester.send(2, setDNDXML("carol", true))
	select {
	case <-inCall:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the XSP")
	}
	requester.conn.Close()
	if id, x := monitor.read(); id != csta.EventInvokeID || !strings.Contains(x, "<DoNotDisturbEvent") || !strings.Contains(x, ">true<") {
		t.Fatalf("monitor got %04d %s; want DND on", id, x)
	}
	f.g.HandleXSIEvent(xev("carol@example.com", dnd(false))) // a portal change, after: not held
	if id, x := monitor.read(); id != csta.EventInvokeID || !strings.Contains(x, "<DoNotDisturbEvent") || !strings.Contains(x, ">false<") {
		t.Fatalf("monitor got %04d %s; want DND off", id, x)
	}
}
