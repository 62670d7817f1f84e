package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/internal/kamailiotest"
	"github.com/broadworks-connector/connector/internal/sipptest"
)

// TestPhoneBehindProxyHearsDesktop (issue 14, "Done means"): a sipp phone
// behind a stock-configured Kamailio (record_route, and in-dialog requests
// relayed by loose_route() or refused 404; phonesync/testdata/kamailio)
// subscribes through it, gets its full state, forwards its calls (the
// desktop sees it), hears DND turned on from the CTI client, and
// unsubscribes: every request of the dialog, both ways, passes the proxy.
// The connector's liveness pings go through it too.
func TestPhoneBehindProxyHearsDesktop(t *testing.T) {
	sipptest.Path(t)
	cstaAddr, sipAddr := phoneConnector(t)
	proxy := kamailiotest.Start(t, filepath.Join("..", "..", "phonesync", "testdata", "kamailio", "proxy.cfg.tmpl"),
		map[string]string{"CONNECTOR": sipAddr})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cti := monitoring(ctx, t, cstaAddr, "4001")

	phone := sipptest.NewPhone("4001", "4001", "phone4001").
		Subscribe().
		AwaitNotify("doNotDisturbOn>false"). // the full state
		Request(`<SetForwarding ` + ed3 + `><device>4001</device><forwardingType>forwardImmediate</forwardingType><activateForward>true</activateForward><forwardDN>5551234</forwardDN></SetForwarding>`).
		AwaitNotify("forwardTo>5551234<").
		AwaitNotify("doNotDisturbOn>true"). // from the desktop
		Unsubscribe().
		Pause(200)
	phoneDir := t.TempDir()
	t.Cleanup(func() {
		if t.Failed() {
			msgs, _ := os.ReadFile(filepath.Join(phoneDir, "phone-4001-messages.log"))
			t.Logf("the phone's SIP messages:\n%s", msgs)
			t.Logf("kamailio:\n%s", proxy.Log.String())
		}
	})
	phoneDone := make(chan error, 1)
	go func() { phoneDone <- phone.Run(ctx, t, phoneDir, proxy.Addr, sipptest.FreeUDPPort(t)) }()

	on4001 := func(ev cticlient.Event) bool { return ev.Device == "4001" }
	// The phone's change reached the desktop: it has its full state.
	awaitCTIWhile(t, cti, phoneDone, "ForwardingEvent", func(ev cticlient.Event) bool {
		return on4001(ev) && ev.ForwardStatus && ev.ForwardTo == "5551234"
	})
	if err := cti.SetDoNotDisturb(ctx, "4001", true); err != nil {
		t.Fatal(err)
	}
	awaitCTIWhile(t, cti, phoneDone, "DoNotDisturbEvent", func(ev cticlient.Event) bool { return on4001(ev) && ev.DoNotDisturbOn })
	if err := <-phoneDone; err != nil {
		t.Fatal(err)
	}
	log := proxy.Log.String()
	if n := strings.Count(log, "relay in-dialog NOTIFY"); n < 4 {
		t.Errorf("kamailio relayed %d in-dialog NOTIFYs, want 4 (full state, forwarding, DND, terminated)", n)
	}
	if n := strings.Count(log, "relay in-dialog SUBSCRIBE"); n != 2 {
		t.Errorf("kamailio relayed %d in-dialog SUBSCRIBEs, want 2 (the forwarding request, the un-SUBSCRIBE)", n)
	}
	if n := proxy.RefusedInDialog(); n != 0 {
		t.Errorf("kamailio refused %d in-dialog requests", n)
	}
}
