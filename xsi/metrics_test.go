package xsi

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// scrape registers cs in a pedantic registry (it checks each metric against
// its description), serves /metrics and returns every sample by its
// `name{labels}` as the exposition spells it.
func scrape(t *testing.T, cs ...prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cs...)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.PanicOnError}).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func wantSample(t *testing.T, got map[string]float64, name string, want float64) {
	t.Helper()
	if v, ok := got[name]; !ok || v != want {
		t.Errorf("%s = %v (present %t), want %v", name, v, ok, want)
	}
}

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

	got := scrape(t, c.Collectors()...)
	wantSample(t, got, `connector_xsi_actions_requests_total{method="GET",operation="services/DoNotDisturb",status="2xx"}`, 1)
	wantSample(t, got, `connector_xsi_actions_requests_total{method="PUT",operation="services/DoNotDisturb",status="2xx"}`, 2)
	wantSample(t, got, `connector_xsi_actions_requests_total{method="PUT",operation="services/DoNotDisturb",status="404"}`, 1)
	wantSample(t, got, `connector_xsi_actions_requests_total{method="GET",operation="services/CallCenter",status="canceled"}`, 1)
	wantSample(t, got, `connector_xsi_actions_request_seconds_count{method="PUT",operation="services/DoNotDisturb"}`, 3)
	wantSample(t, got, `connector_xsi_actions_failovers_total{xsp="`+dead+`"}`, 1)
	wantSample(t, got, `connector_xsi_actions_in_flight{xsp="`+sim.URL()+`"}`, 0)
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
		got := scrape(t, h.ev.Collectors()...)
		wantSample(t, got, `connector_xsi_events_received_total`+xsp, 0)

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
		got = scrape(t, h.ev.Collectors()...)
		wantSample(t, got, `connector_xsi_events_received_total`+xsp, 4)
		wantSample(t, got, `connector_xsi_events_duplicates_total`+xsp, 1)
		wantSample(t, got, `connector_xsi_events_acked_total`+xsp, 4)
		wantSample(t, got, `connector_xsi_events_ack_failures_total`+xsp, 0)
		wantSample(t, got, `connector_xsi_events_sequence_gaps_total`+xsp, 1)
		wantSample(t, got, `connector_xsi_events_ack_queue`+xsp, 0)
		wantSample(t, got, `connector_xsi_events_buffer`, 0)
		wantSample(t, got, `connector_xsi_channel_state{state="up",xsp="http://xsp1.test"}`, 1)
		wantSample(t, got, `connector_xsi_channel_state{state="down",xsp="http://xsp1.test"}`, 0)
		h.col.exactlyOnce(t, "e1", "e2", "e4")

		h.stop()
		got = scrape(t, h.ev.Collectors()...)
		wantSample(t, got, `connector_xsi_channel_state{state="up",xsp="http://xsp1.test"}`, 0)
		wantSample(t, got, `connector_xsi_channel_state{state="down",xsp="http://xsp1.test"}`, 1)
	})
}
