package phonesync

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/internal/kamailiotest"
	"github.com/broadworks-connector/connector/internal/sipptest"
)

// kamailioConfig is the record-routing proxy's config template.
const kamailioConfig = "testdata/kamailio/proxy.cfg.tmpl"

// TestPhoneBehindKamailio: a sipp phone behind Kamailio with its stock
// in-dialog rule (loose_route() or 404, testdata/kamailio) subscribes
// through it, gets its full state, hears a DND change the gateway
// publishes, and unsubscribes: every in-dialog request in both directions
// passes the proxy, which Record-Routes the dialog (issue 14), and so do
// the connector's liveness pings. Before the
// route set was kept the NOTIFYs carried no Route and Kamailio answered
// them 404 Not here.
func TestPhoneBehindKamailio(t *testing.T) {
	sipptest.Path(t)
	svc := newFakeSvc("1001")
	cfg := testConfig()
	cfg.RequireAuth = true // sipptest's phone answers a digest challenge
	cfg.OptionsInterval = 100 * time.Millisecond
	cfg.LivenessTimeout = time.Hour // pings without reports; the test looks at the proxy
	s := startServer(t, cfg, svc)
	proxy := kamailiotest.Start(t, kamailioConfig, map[string]string{"CONNECTOR": s.Addr()})

	phone := sipptest.NewPhone("1001", "1001", "pw1001").
		Subscribe().
		AwaitNotify("doNotDisturbOn>false"). // the full state
		AwaitNotify("doNotDisturbOn>true").  // the change
		Unsubscribe().                       // 200, then the terminating NOTIFY
		Pause(200)
	dir := t.TempDir()
	t.Cleanup(func() {
		if t.Failed() {
			msgs, _ := os.ReadFile(filepath.Join(dir, "phone-1001-messages.log"))
			t.Logf("the phone's SIP messages:\n%s", msgs)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	phoneDone := make(chan error, 1)
	go func() { phoneDone <- phone.Run(ctx, t, dir, proxy.Addr, sipptest.FreeUDPPort(t)) }()

	// The full state answered through the proxy, then the change.
	const (
		ok      = `connector_sip_notifies_total{event="as-feature-event",result="ok"}`
		refused = `connector_sip_notifies_total{event="as-feature-event",result="refused"}`
	)
	deadline := time.After(guardWait)
	for sample(t, s, ok) < 1 {
		if sample(t, s, refused) > 0 {
			t.Fatalf("the full-state NOTIFY was refused on its way to the phone; kamailio:\n%s", proxy.Log.String())
		}
		select {
		case err := <-phoneDone:
			t.Fatalf("the phone ended before its full state: %v", err)
		case <-deadline:
			t.Fatalf("no full-state NOTIFY answered within %v; kamailio:\n%s", guardWait, proxy.Log.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	// A liveness ping passes the proxy too (in the dialog, with its Route;
	// sipp answers it with -aa).
	waitFor(t, "an OPTIONS ping relayed by kamailio and answered", func() bool {
		log := proxy.Log.String()
		return strings.Contains(log, "relay in-dialog OPTIONS") && strings.Contains(log, "reply 200 to OPTIONS")
	})
	svc.mu.Lock()
	svc.devices["1001"].DoNotDisturb = true
	svc.mu.Unlock()
	s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})

	if err := <-phoneDone; err != nil {
		t.Fatal(err)
	}
	// Through the proxy, both ways: the full state, the change and the
	// terminating NOTIFY; the phone's un-SUBSCRIBE; nothing refused.
	log := proxy.Log.String()
	if n := strings.Count(log, "relay in-dialog NOTIFY"); n < 3 {
		t.Errorf("kamailio relayed %d in-dialog NOTIFYs, want 3 (full state, change, terminated)", n)
	}
	if n := strings.Count(log, "relay in-dialog SUBSCRIBE"); n != 1 {
		t.Errorf("kamailio relayed %d in-dialog SUBSCRIBEs, want the un-SUBSCRIBE", n)
	}
	if n := proxy.RefusedInDialog(); n != 0 {
		t.Errorf("kamailio refused %d in-dialog requests", n)
	}
	if got := sample(t, s, refused); got != 0 {
		t.Errorf("%v NOTIFYs refused", got)
	}

	if t.Failed() {
		t.Logf("kamailio:\n%s", log)
	}
}
