package csta

import (
	"net"
	"testing"
	"testing/synctest"
	"time"
)

// pipeClient serves one side of an in-memory pipe, so the whole exchange
// runs inside a synctest bubble and the session timer runs on fake time.
func pipeClient(t *testing.T, s *Server) *client {
	srvSide, cliSide := net.Pipe()
	s.ServeConn(srvSide)
	t.Cleanup(func() { cliSide.Close() })
	return &client{t: t, nc: cliSide, fr: NewFrameReader(cliSide, MaxFrameSize)}
}

func TestSessionTimerExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewServer(DefaultConfig(), newFakeService("4711"), testLogger(t))
		c := pipeClient(t, s)
		id := c.openSession(1, startEd6) // requests 60 s
		reset := `<ResetApplicationSessionTimer ` + nsSess + `><sessionID>` + id + `</sessionID><requestedSessionDuration>60</requestedSessionDuration></ResetApplicationSessionTimer>`

		// Resetting within the period keeps the session alive well past 60 s.
		for i := range 3 {
			time.Sleep(50 * time.Second)
			if name, _ := c.request(10+i, reset); name != "ResetApplicationSessionTimerPosResponse" {
				t.Fatalf("reset %d answered %s", i, name)
			}
		}
		// Then the client goes quiet: 59 s is still fine, 60 s is not.
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if s.Stats().Connections != 1 {
			t.Fatal("session closed before its timer ran out")
		}
		time.Sleep(time.Second)
		f := c.read()
		root := parseRoot(t, f.XML)
		if f.InvokeID != EventInvokeID || root.Tag != "ApplicationSessionTerminated" ||
			root.FindElement("sessionID").Text() != id ||
			root.FindElement("sessionTermReason/definedTermReason").Text() != "sessionTimerExpired" {
			t.Fatalf("on expiry got %04d %s", f.InvokeID, f.XML)
		}
		c.expectClosed()
		synctest.Wait()
		if st := s.Stats(); st.Connections != 0 {
			t.Fatalf("after expiry the server still holds %d connections", st.Connections)
		}
	})
}

func TestIdleConnectionWithoutSessionIsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		s := NewServer(cfg, nil, testLogger(t))
		c := pipeClient(t, s)
		c.request(1, `<RequestSystemStatus/>`)
		time.Sleep(cfg.IdleTimeout - time.Second)
		synctest.Wait()
		if s.Stats().Connections != 1 {
			t.Fatal("closed before the idle timeout")
		}
		time.Sleep(2 * time.Second)
		c.expectClosed()
	})
}

// TestClientScenario is the acceptance story on one connection: open
// a session, pipeline requests, send garbage inside a good frame, send an
// unknown request, then let the session timer lapse.
func TestClientScenario(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewServer(DefaultConfig(), newFakeService("4711"), testLogger(t))
		c := pipeClient(t, s)
		id := c.openSession(1, startEd6)

		reqs := map[int]string{
			2: `<SetDoNotDisturb ` + ns6 + `><device>4711</device><doNotDisturbOn>true</doNotDisturbOn></SetDoNotDisturb>`,
			3: `<GetForwarding ` + ns6 + `><device>4711</device></GetForwarding>`,
			4: `<SystemRegister ` + ns6 + `/>`,
			5: `garbage <<< inside a well-formed frame`,
			6: `<MakeCall ` + ns6 + `><callingDevice>4711</callingDevice></MakeCall>`,
			7: `<GetDoNotDisturb ` + ns6 + `><device>4711</device></GetDoNotDisturb>`,
		}
		want := map[int]string{
			2: "SetDoNotDisturbResponse", 3: "GetForwardingResponse", 4: "SystemRegisterResponse",
			5: "CSTAErrorCode operation/generic", 6: "CSTAErrorCode operation/serviceNotSupported",
			7: "GetDoNotDisturbResponse",
		}
		go func() { // pipelined: all written before any answer is read
			for i := 2; i <= 7; i++ {
				b, _ := AppendFrame(nil, i, []byte(reqs[i]))
				c.nc.Write(b)
			}
		}()
		for range len(want) {
			f := c.read()
			root := parseRoot(t, f.XML)
			got := root.Tag
			if e := errorOf(root); e != "" {
				got += " " + e
			}
			if want[f.InvokeID] != got {
				t.Errorf("invoke %d answered %q, want %q", f.InvokeID, got, want[f.InvokeID])
			}
			delete(want, f.InvokeID)
		}
		if len(want) != 0 {
			t.Fatalf("unanswered: %v", want)
		}
		time.Sleep(61 * time.Second) // no reset: the 60 s session lapses
		f := c.read()
		root := parseRoot(t, f.XML)
		if root.Tag != "ApplicationSessionTerminated" || root.FindElement("sessionID").Text() != id ||
			root.FindElement("sessionTermReason/definedTermReason").Text() != "sessionTimerExpired" {
			t.Fatalf("after the lapse got %s", f.XML)
		}
		c.expectClosed()
	})
}
