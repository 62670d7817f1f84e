package gateway

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/broadworks-connector/connector/xsi"
)

// scrape registers cs in a pedantic registry, serves /metrics and returns
// every sample by its `name{labels}` as the exposition spells it.
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

func wantSamples(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for name, w := range want {
		if v, ok := got[name]; !ok || v != w {
			t.Errorf("%s = %v (present %t), want %v", name, v, ok, w)
		}
	}
}

// gatedJournal holds every Begin until gate is closed and fails every End.
type gatedJournal struct{ gate chan struct{} }

func (j gatedJournal) Begin(ctx context.Context, _ Association) error {
	select {
	case <-j.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (gatedJournal) End(context.Context, string, time.Time, string, string) error {
	return errors.New("disk full")
}

// The view's agents and guests, and the journal writer's queue and
// failures, as XSI events arrive.
func TestGatewayMetrics(t *testing.T) {
	const alice = "alice@example.com"
	h := newHarness(t)
	j := gatedJournal{gate: make(chan struct{})}
	h.g.SetJournal(j)
	wantSamples(t, scrape(t, h.g.Collectors()...), map[string]float64{
		`connector_gateway_agents{state="Available"}`: 0,
		`connector_gateway_hotdesk_guests`:            0,
		`connector_gateway_journal_queue`:             0,
	})

	h.g.HandleXSIEvent(xev(alice, agentSnap("Available", "")))
	h.g.HandleXSIEvent(xev("bob@example.com", agentSnap("Sign-Out", "")))
	h.g.HandleXSIEvent(xev(alice, guestOf("host1@example.com", time.Now()))) // its Begin is held by the journal
	h.g.HandleXSIEvent(xev(alice, &xsi.HotelingGuestEvent{Active: true}))    // the End queues behind it
	wantSamples(t, scrape(t, h.g.Collectors()...), map[string]float64{
		`connector_gateway_agents{state="Available"}`:    1,
		`connector_gateway_agents{state="Sign-Out"}`:     1,
		`connector_gateway_agents{state="Unavailable"}`:  0,
		`connector_gateway_hotdesk_guests`:               0,
		`connector_gateway_journal_queue`:                1,
		`connector_gateway_journal_write_failures_total`: 0,
		`connector_gateway_events_held`:                  0,
	})
	h.g.HandleXSIEvent(xev(alice, guestOf("host2@example.com", time.Now())))
	if got := scrape(t, h.g.Collectors()...)[`connector_gateway_hotdesk_guests`]; got != 1 {
		t.Errorf("guests %v, want 1", got)
	}

	close(j.gate) // the Begin is written, the End fails
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := scrape(t, h.g.Collectors()...)
		if got[`connector_gateway_journal_queue`] == 0 && got[`connector_gateway_journal_write_failures_total`] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal queue %v, failures %v; want 0 and 1", got[`connector_gateway_journal_queue`], got[`connector_gateway_journal_write_failures_total`])
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.g.CloseJournal()
	h.settle(t)
}
