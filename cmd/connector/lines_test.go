package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/internal/sipptest"
)

// TestTwoDevicesOnOneLine: a desk phone and a soft client (two sipp
// phones, each its own dialog) subscribe to line 4001. Both get the full
// state, both hear a DND change made from a CTI client, the soft client
// hears the forwarding the desk phone sets (and so does the CTI monitor),
// and both unsubscribe cleanly (issue 14: the second SUBSCRIBE used to
// replace the first, which then heard nothing more).
func TestTwoDevicesOnOneLine(t *testing.T) {
	sipptest.Path(t)
	a := startRun(t, "", "", "")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cti := monitoring(ctx, t, a.csta, "4001")

	desk := sipptest.NewPhone("4001", "4001", "phone4001").
		Subscribe().
		AwaitNotify("doNotDisturbOn>false"). // the full state
		AwaitNotify("doNotDisturbOn>true").  // the desktop's change
		Request(`<SetForwarding ` + ed3 + `><device>4001</device><forwardingType>forwardImmediate</forwardingType><activateForward>true</activateForward><forwardDN>5551234</forwardDN></SetForwarding>`).
		AwaitNotify("forwardTo>5551234<").
		Unsubscribe().
		Pause(200)
	soft := sipptest.NewPhone("4001", "4001", "phone4001").
		Subscribe().
		AwaitNotify("doNotDisturbOn>false").
		AwaitNotify("doNotDisturbOn>true").
		AwaitNotify("forwardTo>5551234<"). // the desk phone's change
		Unsubscribe().
		Pause(200)
	dirs := map[string]string{"desk": t.TempDir(), "soft": t.TempDir()}
	t.Cleanup(func() {
		if t.Failed() {
			for name, dir := range dirs {
				msgs, _ := os.ReadFile(filepath.Join(dir, "phone-4001-messages.log"))
				t.Logf("the %s phone's SIP messages:\n%s", name, msgs)
			}
		}
	})
	deskDone, softDone := make(chan error, 1), make(chan error, 1)
	go func() { deskDone <- desk.Run(ctx, t, dirs["desk"], a.sip, sipptest.FreeUDPPort(t)) }()
	go func() { softDone <- soft.Run(ctx, t, dirs["soft"], a.sip, sipptest.FreeUDPPort(t)) }()

	// Both dialogs held: then the desktop turns DND on.
	const subs = `connector_sip_subscriptions{event="as-feature-event"} 2`
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, body := adminGet(t, a.admin, "/metrics", testAdminToken); strings.Contains(string(body), subs) {
			break
		}
		select {
		case err := <-deskDone:
			t.Fatalf("the desk phone ended before both subscribed: %v", err)
		case err := <-softDone:
			t.Fatalf("the soft client ended before both subscribed: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30 s", subs)
		}
	}
	if err := cti.SetDoNotDisturb(ctx, "4001", true); err != nil {
		t.Fatal(err)
	}
	awaitCTIWhile(t, cti, deskDone, "ForwardingEvent", func(ev cticlient.Event) bool {
		return ev.Device == "4001" && ev.ForwardTo == "5551234"
	})
	for name, done := range map[string]chan error{"desk": deskDone, "soft": softDone} {
		if err := <-done; err != nil {
			t.Fatalf("the %s phone: %v", name, err)
		}
	}
}
