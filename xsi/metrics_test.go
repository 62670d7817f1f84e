package xsi

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/broadworks-connector/connector/internal/promtest"
)

// Actions requests against the simulator are counted by method, operation
// (no user ID) and status; a dead first XSP counts a failover.
func TestActionsMetrics(t *testing.T) {
	sim := newActionsSim(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there: connection refused
	cfg := actionsConfig(dead, sim.URL())
	cfg.MaxRetries = 0
	c, err := NewClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()

	if _, err := c.GetDoNotDisturb(ctx, asAgent); err != nil { // fails over to the simulator
		t.Fatal(err)
	}
	for range 2 {
		if err := c.SetDoNotDisturb(ctx, asAgent, DoNotDisturb{Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetDoNotDisturb(ctx, asNobody, DoNotDisturb{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.GetCallCenter(cctx, asAgent); err == nil {
		t.Fatal("GetCallCenter with a cancelled context succeeded")
	}

	got := promtest.Scrape(t, c.Collectors()...)
	promtest.WantSample(t, got, `connector_xsi_actions_requests_total{method="GET",operation="services/DoNotDisturb",status="2xx"}`, 1)
	promtest.WantSample(t, got, `connector_xsi_actions_requests_total{method="PUT",operation="services/DoNotDisturb",status="2xx"}`, 2)
	promtest.WantSample(t, got, `connector_xsi_actions_requests_total{method="PUT",operation="services/DoNotDisturb",status="404"}`, 1)
	promtest.WantSample(t, got, `connector_xsi_actions_requests_total{method="GET",operation="services/CallCenter",status="canceled"}`, 1)
	promtest.WantSample(t, got, `connector_xsi_actions_request_seconds_count{method="PUT",operation="services/DoNotDisturb"}`, 3)
	promtest.WantSample(t, got, `connector_xsi_actions_failovers_total{xsp="`+dead+`"}`, 1)
	promtest.WantSample(t, got, `connector_xsi_actions_in_flight{xsp="`+sim.URL()+`"}`, 0)
	for name := range got {
		if strings.Contains(name, "example.com") {
			t.Errorf("a user ID in a label: %s", name)
		}
	}
}

func TestOperationOf(t *testing.T) {
	for path, want := range map[string]string{
		"/user/a%40example.com/services/CallForwardingAlways":                      "services/CallForwardingAlways",
		"/group/g1/services/CallCenter/UnavailableCodes?enterpriseId=e1":           "services/CallCenter/UnavailableCodes",
		"/user/a%40example.com/directories/HotelingHosts":                          "directories/HotelingHosts",
		"/user/a%40example.com/profile":                                            "other",
		"/user/services%2Fx/services/DoNotDisturb":                                 "services/DoNotDisturb",
		"/com.broadsoft.xsi-actions/v2.0/user/x@example.com/services/HotelingHost": "services/HotelingHost",
	} {
		if got := operationOf(path); got != want {
			t.Errorf("operationOf(%q) = %q, want %q", path, got, want)
		}
	}
}

// Events read, duplicates dropped, acknowledgements, gaps and the channel
// state, on the fake XSP.
func TestEventsMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		const xsp = `{xsp="http://xsp1.test"}`
		got := promtest.Scrape(t, h.ev.Collectors()...)
		promtest.WantSample(t, got, `connector_xsi_events_received_total`+xsp, 0)

		ch := h.channelN(0)
		sub := h.subID()
		h.waitFor("link up", time.Minute, func() bool { return h.ev.LinkState()[0].State == LinkUp })
		h.xsp.send(ch, eventDoc("e1", 1, sub, ch.id, ""))
		h.xsp.send(ch, eventDoc("e1", 1, sub, ch.id, "")) // a redelivery
		h.xsp.send(ch, eventDoc("e2", 2, sub, ch.id, ""))
		h.xsp.send(ch, eventDoc("e4", 4, sub, ch.id, "")) // e3 lost
		h.waitFor("acks", time.Minute, func() bool {
			return h.xsp.ackCount("e1") == 2 && h.xsp.ackCount("e2") == 1 && h.xsp.ackCount("e4") == 1
		})
		synctest.Wait()
		got = promtest.Scrape(t, h.ev.Collectors()...)
		promtest.WantSample(t, got, `connector_xsi_events_received_total`+xsp, 4)
		promtest.WantSample(t, got, `connector_xsi_events_duplicates_total`+xsp, 1)
		promtest.WantSample(t, got, `connector_xsi_events_acked_total`+xsp, 4)
		promtest.WantSample(t, got, `connector_xsi_events_ack_failures_total`+xsp, 0)
		promtest.WantSample(t, got, `connector_xsi_events_sequence_gaps_total`+xsp, 1)
		promtest.WantSample(t, got, `connector_xsi_events_ack_queue`+xsp, 0)
		promtest.WantSample(t, got, `connector_xsi_events_buffer`, 0)
		promtest.WantSample(t, got, `connector_xsi_channel_state{state="up",xsp="http://xsp1.test"}`, 1)
		promtest.WantSample(t, got, `connector_xsi_channel_state{state="down",xsp="http://xsp1.test"}`, 0)
		h.col.exactlyOnce(t, "e1", "e2", "e4")

		h.stop()
		got = promtest.Scrape(t, h.ev.Collectors()...)
		promtest.WantSample(t, got, `connector_xsi_channel_state{state="up",xsp="http://xsp1.test"}`, 0)
		promtest.WantSample(t, got, `connector_xsi_channel_state{state="down",xsp="http://xsp1.test"}`, 1)
	})
}
