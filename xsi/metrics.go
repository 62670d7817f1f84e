package xsi

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The XSI link's own Prometheus collectors (CoreDNS keeps each plugin's
// metrics beside it): Client.Collectors for Xsi-Actions, Events.Collectors
// for the event channel set. Counters on the event path are resolved per
// XSP once, when the channel set is built; queue depths and link states are
// read when scraped, so they cost nothing in between.

// latencyBuckets suit a round trip to an XSP: milliseconds on a LAN, up to
// RequestTimeout (10 s by default) with retries.
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// actionsMetrics count Xsi-Actions calls as the caller sees them: one per
// Client method call, failover to another XSP included.
type actionsMetrics struct {
	requests  *prometheus.CounterVec   // by method, operation and status
	latency   *prometheus.HistogramVec // by method and operation
	failovers *prometheus.CounterVec   // by xsp
	inFlight  *prometheus.Desc         // read from each XSP's semaphore
	waiting   *prometheus.Desc         // read from each XSP's count of waiters
	servers   []*xspState
}

func newActionsMetrics(servers []*xspState) *actionsMetrics {
	m := &actionsMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_xsi_actions_requests_total",
			Help: "Xsi-Actions requests by method, operation (the service path, no user) and status: the HTTP status, 2xx, timeout (no answer in time, or our own rate limit or in-flight bound full until the deadline), canceled, or error (connection failure).",
		}, []string{"method", "operation", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connector_xsi_actions_request_seconds",
			Help:    "Time of an Xsi-Actions request, from the call to its answer, waits for our own limits, retries and failover included.",
			Buckets: latencyBuckets,
		}, []string{"method", "operation"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_xsi_actions_failovers_total",
			Help: "Times an XSP failed an Xsi-Actions request (connection error, 5xx, no answer) and was passed over for the next one.",
		}, []string{"xsp"}),
		inFlight: prometheus.NewDesc("connector_xsi_actions_in_flight",
			"Xsi-Actions requests on the wire to each XSP (at most xsi.max_in_flight).", []string{"xsp"}, nil),
		waiting: prometheus.NewDesc("connector_xsi_actions_waiting",
			"Xsi-Actions requests (attempts) waiting for one of an XSP's xsi.max_in_flight slots.", []string{"xsp"}, nil),
		servers: servers,
	}
	for _, s := range servers { // shown at 0 from the start
		m.failovers.WithLabelValues(s.baseURL())
	}
	return m
}

// Collectors are the Actions client's metrics, for a Prometheus registry.
func (c *Client) Collectors() []prometheus.Collector {
	m := c.metrics
	return []prometheus.Collector{m.requests, m.latency, m.failovers, actionsGauges{m}}
}

// actionsGauges reads the in-flight bound (and its waiters) of every XSP
// when scraped.
type actionsGauges struct{ m *actionsMetrics }

func (g actionsGauges) Describe(ch chan<- *prometheus.Desc) { ch <- g.m.inFlight; ch <- g.m.waiting }

func (g actionsGauges) Collect(ch chan<- prometheus.Metric) {
	for _, s := range g.m.servers {
		ch <- prometheus.MustNewConstMetric(g.m.inFlight, prometheus.GaugeValue, float64(len(s.inflight)), s.baseURL())
		ch <- prometheus.MustNewConstMetric(g.m.waiting, prometheus.GaugeValue, float64(s.waiting.Load()), s.baseURL())
	}
}

// observe counts one call to path (relative to actionsRoot).
func (m *actionsMetrics) observe(method, path string, since time.Time, err error) {
	op := operationOf(path)
	m.requests.WithLabelValues(method, op, statusOf(err)).Inc()
	m.latency.WithLabelValues(method, op).Observe(time.Since(since).Seconds())
}

// operationOf is the part of an Actions path that names the service, e.g.
// "services/CallForwardingAlways" for /user/{id}/services/CallForwardingAlways:
// user and group IDs stay out of the label (bounded cardinality). It is a
// substring of path: nothing is allocated.
func operationOf(path string) string {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if i := strings.Index(path, "/services/"); i >= 0 {
		return path[i+1:]
	}
	if i := strings.Index(path, "/directories/"); i >= 0 {
		return path[i+1:]
	}
	return "other"
}

// statusOf is the status label of a call's outcome.
func statusOf(err error) string {
	if err == nil {
		return "2xx"
	}
	var xe *Error
	switch {
	case errors.As(err, &xe):
		return httpStatusLabel(xe.Status)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

// httpStatusLabel spells the statuses Xsi answers with without allocating.
func httpStatusLabel(status int) string {
	switch status {
	case 400:
		return "400"
	case 401:
		return "401"
	case 403:
		return "403"
	case 404:
		return "404"
	case 409:
		return "409"
	case 429:
		return "429"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(status)
}

// eventsMetrics are the channel set's. Counters are by XSP; each evLink
// holds its own children (linkCounters) so the event path does no label
// lookup.
type eventsMetrics struct {
	received   *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	acked      *prometheus.CounterVec
	ackFailed  *prometheus.CounterVec
	gaps       *prometheus.CounterVec
	stale      *prometheus.CounterVec

	state    *prometheus.Desc // by xsp and state
	ackQueue *prometheus.Desc // by xsp
	buffer   *prometheus.Desc
	scopes   *prometheus.Desc // by state
	watched  *prometheus.Desc
}

// linkCounters are one XSP's children of the eventsMetrics counters.
type linkCounters struct {
	received, duplicates, acked, ackFailed, gaps, stale prometheus.Counter
}

func newEventsMetrics() *eventsMetrics {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"xsp"})
	}
	return &eventsMetrics{
		received: counter("connector_xsi_events_received_total",
			"Xsi-Events SubscriptionEvents read from each XSP's channel, duplicates included."),
		duplicates: counter("connector_xsi_events_duplicates_total",
			"SubscriptionEvents dropped as duplicates (an eventID already delivered or being delivered: redeliveries after a failover or a late acknowledgement)."),
		acked: counter("connector_xsi_events_acked_total",
			"Event responses (acknowledgements) the XSP accepted."),
		ackFailed: counter("connector_xsi_events_ack_failures_total",
			"Event responses that failed; the XSP redelivers those events, on another channel if need be."),
		gaps: counter("connector_xsi_events_sequence_gaps_total",
			"Events lost on a subscription by its sequence numbers: for a user subscription each gap (refreshed for a fresh snapshot); for a scope subscription each missing number that did not arrive on another channel within "+evSeqHoleGrace.String()+" (the scope is read again, one ScopeResync for all)."),
		stale: counter("connector_xsi_events_out_of_order_total",
			"SubscriptionEvents dropped because a newer event of their subscription (of a scope subscription: of the same user) had come first on another channel of the set (a user subscription is refreshed)."),
		state: prometheus.NewDesc("connector_xsi_channel_state",
			"State of each XSP's event channel: 1 for the current state (up, degraded: a heartbeat, acknowledgement or refresh failed, down), 0 for the others.",
			[]string{"xsp", "state"}, nil),
		ackQueue: prometheus.NewDesc("connector_xsi_events_ack_queue",
			"Acknowledgements waiting to be sent on each XSP's channel (at most "+strconv.Itoa(evAckQueue)+"; when full, reading the channel waits).",
			[]string{"xsp"}, nil),
		buffer: prometheus.NewDesc("connector_xsi_events_buffer",
			"Events read but not yet taken by the gateway (at most "+strconv.Itoa(EventBuffer)+"; when full, reading the channels waits).",
			nil, nil),
		scopes: prometheus.NewDesc("connector_xsi_scopes",
			"Configured XSI scopes (xsi.scope) by state: pending (not yet subscribed), active, forbidden (403: out of the credential's reach), not_found (404), failing (another error; retried).",
			[]string{"state"}, nil),
		watched: prometheus.NewDesc("connector_xsi_watched_users",
			"Users outside every scope subscribed on their own (WatchUser; at most xsi.max_watched_users).",
			nil, nil),
	}
}

func (m *eventsMetrics) forLink(server string) linkCounters {
	return linkCounters{
		received:   m.received.WithLabelValues(server),
		duplicates: m.duplicates.WithLabelValues(server),
		acked:      m.acked.WithLabelValues(server),
		ackFailed:  m.ackFailed.WithLabelValues(server),
		gaps:       m.gaps.WithLabelValues(server),
		stale:      m.stale.WithLabelValues(server),
	}
}

// Collectors are the channel set's metrics, for a Prometheus registry.
func (e *Events) Collectors() []prometheus.Collector {
	m := e.metrics
	return []prometheus.Collector{m.received, m.duplicates, m.acked, m.ackFailed, m.gaps, m.stale, eventsGauges{e}}
}

// eventsGauges reads link states and queue depths when scraped.
type eventsGauges struct{ e *Events }

func (g eventsGauges) Describe(ch chan<- *prometheus.Desc) {
	m := g.e.metrics
	ch <- m.state
	ch <- m.ackQueue
	ch <- m.buffer
	ch <- m.scopes
	ch <- m.watched
}

var linkStates = [...]LinkState{LinkDown, LinkDegraded, LinkUp}

func (g eventsGauges) Collect(ch chan<- prometheus.Metric) {
	m := g.e.metrics
	for _, l := range g.e.links {
		l.mu.Lock()
		state, cur := l.status.State, l.cur
		l.mu.Unlock()
		for _, s := range linkStates {
			v := 0.0
			if s == state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(m.state, prometheus.GaugeValue, v, l.server, s.String())
		}
		queued := 0
		if cur != nil {
			queued = len(cur.acks)
		}
		ch <- prometheus.MustNewConstMetric(m.ackQueue, prometheus.GaugeValue, float64(queued), l.server)
	}
	ch <- prometheus.MustNewConstMetric(m.buffer, prometheus.GaugeValue, float64(len(g.e.out)))
	count := make(map[ScopeState]int, len(ScopeStates))
	for _, sc := range g.e.Scopes() {
		count[sc.State]++
	}
	for _, st := range ScopeStates { // every state, 0 included: a dashboard's alert needs the series
		ch <- prometheus.MustNewConstMetric(m.scopes, prometheus.GaugeValue, float64(count[st]), string(st))
	}
	ch <- prometheus.MustNewConstMetric(m.watched, prometheus.GaugeValue, float64(g.e.WatchedUsers()))
}
