package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/xsi"
)

// TestTimedOutSequenceKeepsThePromiseBefore: a hot-desk logout outlives
// the front end's request timeout. The client is answered resourceBusy
// ("not done"), and before that answer goes out the promise from before
// (logged in at the desk) is owed and in the store: a crash right after
// the answer leaves it to the next connector. The logout then succeeds all
// the same: its success does not become the promise (the reconciler puts
// the login back).
func TestTimedOutSequenceKeepsThePromiseBefore(t *testing.T) {
	const alice, host1 = "alice@example.com", "host1@example.com"
	f := newCSTAFront(t, testConfig)
	store := &memPromises{}
	f.g.deps.Promises = store
	ccfg := csta.DefaultConfig()
	ccfg.Listen = "127.0.0.1:0"
	ccfg.RequestTimeout = 100 * time.Millisecond
	if err := f.srv.Reload(ccfg); err != nil {
		t.Fatal(err)
	}
	f.g.HandleXSIEvent(xev(alice, agentSnap("Available", "")))
	f.g.HandleXSIEvent(xev(alice, guestOf(host1, time.Now())))
	proceed, savedAtAnswer := make(chan struct{}), make(chan bool, 1)
	f.hot.mu.Lock()
	f.hot.onLogout = func() { <-proceed } // the logout runs past the deadline
	f.hot.mu.Unlock()

	c := f.dial(t)
	c.send(1, fmt.Sprintf(`<SetAgentState xmlns="%s"><device>desk1</device><requestedAgentState>loggedOff</requestedAgentState><agentID>A1</agentID></SetAgentState>`, ns3))
	_, answer := c.read()
	store.mu.Lock()
	value, saved := store.saved[alice]
	store.mu.Unlock()
	savedAtAnswer <- saved
	close(proceed)
	if !strings.Contains(answer, "resourceBusy") {
		t.Fatalf("answered %s, want resourceBusy (the front end's deadline)", answer)
	}
	if !<-savedAtAnswer {
		t.Fatalf("the promise before the logout was not in the store when the client read its answer: %q", store.ops)
	}
	var sp storedPromise
	if err := json.Unmarshal(value, &sp); err != nil || sp.Want.Host != host1 {
		t.Fatalf("stored %s (%v), want the login at %s", value, err, host1)
	}
	// The logout's success, after the answer, is not a promise.
	deadline := time.Now().Add(10 * time.Second)
	for f.g.inFlight(alice) {
		if time.Now().After(deadline) {
			t.Fatal("the logout did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.g.rec.mu.Lock()
	p := f.g.rec.promises[alice]
	f.g.rec.mu.Unlock()
	if p.want.Host != host1 || !p.owed || p.want.ACD == xsi.ACDSignOut {
		t.Fatalf("promise %+v owed=%v, want the login at %s, owed", p.want, p.owed, host1)
	}
}
