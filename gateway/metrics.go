package gateway

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/broadworks-connector/connector/xsi"
)

// The gateway's own Prometheus collectors (CoreDNS keeps each plugin's
// metrics beside it). Everything here but the XSI event delay is read from
// the state view and the journal writer when scraped: the event path pays
// nothing for it (the delay costs it a histogram observation per
// agent-state event). A scrape walks the users under Gateway.mu once (well
// under a millisecond for tens of thousands).
var (
	descAgents = prometheus.NewDesc("connector_gateway_agents",
		"Call-center agents in the XSI view, by ACD state as BroadWorks names it (Sign-Out, Available, Unavailable, Wrap-Up, …).",
		[]string{"state"}, nil)
	descGuests = prometheus.NewDesc("connector_gateway_hotdesk_guests",
		"Agents associated with a hot desk (a hoteling host) in the XSI view.", nil, nil)
	descHeld = prometheus.NewDesc("connector_gateway_events_held",
		"CSTA events held back while a request is in flight, until its answer is queued (so the answer goes first), summed over users.", nil, nil)
	descJournalQueue = prometheus.NewDesc("connector_gateway_journal_queue",
		"Association journal records queued for writing (at most "+strconv.Itoa(journalQueue)+" per writer, "+strconv.Itoa(journalShards)+" writers; when one is full, event handling waits).",
		nil, nil)
	descJournalFailed = prometheus.NewDesc("connector_gateway_journal_write_failures_total",
		"Association journal records that could not be written (each is logged).", nil, nil)
	descRepairs = prometheus.NewDesc("connector_reconciler_repairs_total",
		"Differences between what clients were promised and BroadWorks that the reconciler acted on, by kind: late-landing (a request given up on applied late: undone), owed (a half-done sequence of ours finished: failed undo, crash, stale login), association-ended (BroadWorks ended an association: desk released), outside-change (a change made outside the connector taken as the promise), failed (a repair that failed; tried again). Each is logged.",
		[]string{"kind"}, nil)
	descPromises = prometheus.NewDesc("connector_reconciler_promises",
		"Agents with a promise the reconciler keeps, and of them the ones owed a repair.", []string{"state"}, nil)
	descReconcileQueue = prometheus.NewDesc("connector_reconciler_queue",
		"Users queued for the reconciler or being looked at.", nil, nil)
)

// Collectors are the gateway's metrics, for a Prometheus registry.
func (g *Gateway) Collectors() []prometheus.Collector {
	return []prometheus.Collector{gatewayGauges{g}, g.metrics.delay, g.metrics.ahead}
}

// eventMetrics are the few measured on the event path itself (an atomic
// add or two per agent-state event).
type eventMetrics struct {
	delay prometheus.Histogram
	ahead prometheus.Counter
}

func newEventMetrics() eventMetrics {
	return eventMetrics{
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "connector_xsi_event_delay_seconds",
			Help: "Delay of XSI agent-state events: when the gateway took the event minus BroadWorks' stateTimestamp of the change. " +
				"Includes the connector's event queue and the skew between the application server's clock and this host's; " +
				"an event stamped ahead of this clock is counted here as 0 and in connector_xsi_event_stamped_ahead_total.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		ahead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connector_xsi_event_stamped_ahead_total",
			Help: "XSI agent-state events whose stateTimestamp is later than this host's clock when taken (clock skew).",
		}),
	}
}

func (m eventMetrics) observeDelay(d time.Duration) {
	if d < 0 {
		m.ahead.Inc()
		d = 0
	}
	m.delay.Observe(d.Seconds())
}

type gatewayGauges struct{ g *Gateway }

func (c gatewayGauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAgents, descGuests, descHeld, descJournalQueue, descJournalFailed, descRepairs, descPromises, descReconcileQueue} {
		ch <- d
	}
}

func (c gatewayGauges) Collect(ch chan<- prometheus.Metric) {
	g := c.g
	agents := map[xsi.ACDState]int{xsi.ACDSignOut: 0, xsi.ACDAvailable: 0, xsi.ACDUnavailable: 0, xsi.ACDWrapUp: 0}
	guests, held := 0, 0
	g.mu.Lock()
	for _, u := range g.users {
		switch {
		case u.acdState == "":
		case u.acdState.Valid():
			agents[u.acdState]++
		default: // keeps the label set bounded whatever an XSP sends
			agents["other"]++
		}
		if u.hostUserID != "" {
			guests++
		}
		held += len(u.outbox)
	}
	w := g.journal
	g.mu.Unlock()

	for state, n := range agents {
		ch <- prometheus.MustNewConstMetric(descAgents, prometheus.GaugeValue, float64(n), string(state))
	}
	ch <- prometheus.MustNewConstMetric(descGuests, prometheus.GaugeValue, float64(guests))
	ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(held))
	for kind, n := range g.RepairCounts() {
		ch <- prometheus.MustNewConstMetric(descRepairs, prometheus.CounterValue, float64(n), kind)
	}
	r := g.rec
	r.mu.Lock()
	all, owed := len(r.promises), 0
	for _, p := range r.promises {
		if p.owed {
			owed++
		}
	}
	queued := len(r.queue) + len(r.active)
	r.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descPromises, prometheus.GaugeValue, float64(all), "all")
	ch <- prometheus.MustNewConstMetric(descPromises, prometheus.GaugeValue, float64(owed), "owed")
	ch <- prometheus.MustNewConstMetric(descReconcileQueue, prometheus.GaugeValue, float64(queued))
	if w != nil {
		queued := 0
		for _, q := range w.queues {
			queued += len(q)
		}
		ch <- prometheus.MustNewConstMetric(descJournalQueue, prometheus.GaugeValue, float64(queued))
		ch <- prometheus.MustNewConstMetric(descJournalFailed, prometheus.CounterValue, float64(w.failed.Load()))
	}
}
