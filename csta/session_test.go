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
