package phonesync

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/broadworks-connector/connector/internal/netguard"
)

// The SIP side's own Prometheus collectors (CoreDNS keeps each plugin's
// metrics beside it). Counters are resolved to their children when the
// Server is built, so counting a NOTIFY does no label lookup; the gauges
// (subscriptions, queues) are read when scraped.

// Results of a NOTIFY, as labelled.
const (
	notifyOK       = iota // 2xx
	notifyRefused         // another final answer but 481
	notifyGone            // 481: the phone dropped the subscription
	notifyNoAnswer        // no final answer in time (or the send failed)
	numNotifyResults
)

var notifyResultNames = [numNotifyResults]string{"ok", "refused", "gone", "no_answer"}

type metrics struct {
	notifies    *prometheus.CounterVec // by event and result
	refused     *prometheus.CounterVec // by reason
	connRefused *prometheus.CounterVec // TCP/TLS connections closed at once, by reason
	notSIP      *prometheus.CounterVec // reads refused before parsing, by transport

	connMaxConns, connPerSource, connBudget prometheus.Counter
	notSIPUDP, notSIPTCP, notSIPTLS         prometheus.Counter

	feature, hoteling, other [numNotifyResults]prometheus.Counter
	rateLimited, challenged  prometheus.Counter
	forbidden, full          prometheus.Counter
	lineFull                 prometheus.Counter
	superseded               prometheus.Counter
	agentForbidden           prometheus.Counter
	stale, replayed          prometheus.Counter

	subscriptions *prometheus.Desc // by event
	queued        *prometheus.Desc
	waiting       *prometheus.Desc
	senders       *prometheus.Desc
	presence      *prometheus.Desc
	tcpConns      *prometheus.Desc
}

func newMetrics() *metrics {
	m := &metrics{
		notifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_sip_notifies_total",
			Help: "NOTIFYs sent to phones, by event package and result: ok (2xx), refused (another final answer), gone (481: the phone dropped the subscription), no_answer (none in time).",
		}, []string{"event", "result"}),
		superseded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connector_sip_notifies_superseded_total",
			Help: "Published changes not sent on a subscription because the phone had already been sent a newer value of that feature (a full state read after them): sending them would have taken it back.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_sip_subscribes_refused_total",
			Help: "SUBSCRIBEs refused before any change, by reason: rate_limit (503, the source's token bucket), auth_challenge (401, a digest challenge: normal once per phone), auth_stale (401 stale=true: an expired nonce, or one below the nonce table's floor), auth_replay (401 stale=true: a correct digest response with a nonce count already used), auth_forbidden (403, wrong credentials or another phone's line), capacity (503, sip.limits.max_subscriptions reached, or shutting down), line_full (403, sip.limits.max_subscriptions_per_line devices already subscribed to the line for the package), agent_forbidden (403, a SetAgentState naming an agent other than the one signed in at the phone).",
		}, []string{"reason"}),
		connRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_sip_connections_refused_total",
			Help: "SIP TCP and TLS connections closed as soon as accepted, by reason: max_connections (sip.limits.tcp_max_connections, or half the process's descriptor budget, open), per_source (sip.limits.tcp_max_connections_per_source open from the address), budget (the process's descriptor budget spent).",
		}, []string{"reason"}),
		notSIP: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_sip_not_sip_total",
			Help: "Reads refused before parsing because they cannot be SIP (binary bytes, no SIP start line or header section), by transport: a UDP datagram is dropped, a TCP or TLS connection closed.",
		}, []string{"transport"}),
		tcpConns: prometheus.NewDesc("connector_sip_tcp_connections",
			"SIP connections open over TCP and TLS.", nil, nil),
		subscriptions: prometheus.NewDesc("connector_sip_subscriptions",
			"Phones' SIP subscriptions held, by event package.", []string{"event"}, nil),
		queued: prometheus.NewDesc("connector_sip_notify_queue",
			"NOTIFYs waiting to be sent, summed over all subscriptions (a full-state NOTIFY due counts one; each subscription holds at most "+strconv.Itoa(maxNotifyQueue)+" before collapsing them into one full state).", nil, nil),
		waiting: prometheus.NewDesc("connector_sip_notify_subscriptions_waiting",
			"Subscriptions with NOTIFYs to send waiting for a free sender (all "+strconv.Itoa(maxSenders)+" busy).", nil, nil),
		senders: prometheus.NewDesc("connector_sip_notify_senders",
			"NOTIFY senders at work (at most "+strconv.Itoa(maxSenders)+").", nil, nil),
		presence: prometheus.NewDesc("connector_sip_presence_subscriptions",
			"Presence subscriptions the connector holds at the PBX (sip.presence).", nil, nil),
	}
	for i, name := range notifyResultNames {
		m.feature[i] = m.notifies.WithLabelValues(eventFeature, name)
		m.hoteling[i] = m.notifies.WithLabelValues(eventHoteling, name)
		m.other[i] = m.notifies.WithLabelValues("other", name)
	}
	m.rateLimited = m.refused.WithLabelValues("rate_limit")
	m.challenged = m.refused.WithLabelValues("auth_challenge")
	m.forbidden = m.refused.WithLabelValues("auth_forbidden")
	m.stale = m.refused.WithLabelValues("auth_stale")
	m.replayed = m.refused.WithLabelValues("auth_replay")
	m.full = m.refused.WithLabelValues("capacity")
	m.lineFull = m.refused.WithLabelValues("line_full")

	m.agentForbidden = m.refused.WithLabelValues("agent_forbidden")
	m.connMaxConns = m.connRefused.WithLabelValues(netguard.RefuseMaxConns)
	m.connPerSource = m.connRefused.WithLabelValues(netguard.RefusePerSource)
	m.connBudget = m.connRefused.WithLabelValues(netguard.RefuseBudget)
	m.notSIPUDP = m.notSIP.WithLabelValues("udp")
	m.notSIPTCP = m.notSIP.WithLabelValues("tcp")
	m.notSIPTLS = m.notSIP.WithLabelValues("tls")
	return m
}

// notified counts one NOTIFY on a subscription to event.
func (m *metrics) notified(event string, result int) {
	switch event {
	case eventFeature:
		m.feature[result].Inc()
	case eventHoteling:
		m.hoteling[result].Inc()
	default:
		m.other[result].Inc()
	}
}

// connectionRefused counts a connection netguard closed at once.
func (m *metrics) connectionRefused(reason string) {
	switch reason {
	case netguard.RefuseMaxConns:
		m.connMaxConns.Inc()
	case netguard.RefusePerSource:
		m.connPerSource.Inc()
	default:
		m.connBudget.Inc()
	}
}

// malformed counts a read refused as not SIP on transport (sipgo's name).
func (m *metrics) malformed(transport string) {
	switch transport {
	case "UDP":
		m.notSIPUDP.Inc()
	case "TLS":
		m.notSIPTLS.Inc()
	default:
		m.notSIPTCP.Inc()
	}
}

// Collectors are the SIP side's metrics, for a Prometheus registry.
func (s *Server) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.notifies, s.metrics.superseded, s.metrics.refused, s.metrics.connRefused, s.metrics.notSIP, serverGauges{s}}
}

// serverGauges reads subscriptions and queues when scraped.
type serverGauges struct{ s *Server }

func (g serverGauges) Describe(ch chan<- *prometheus.Desc) {
	m := g.s.metrics
	ch <- m.subscriptions
	ch <- m.queued
	ch <- m.waiting
	ch <- m.senders
	ch <- m.presence
	ch <- m.tcpConns
}

func (g serverGauges) Collect(ch chan<- prometheus.Metric) {
	s, m := g.s, g.s.metrics
	s.mu.Lock()
	subs := make([]*subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	// Subscription locks one at a time, Server.mu released: a scrape never
	// holds up the SUBSCRIBE path for more than one dialog.
	var feature, hoteling, queued int
	for _, sub := range subs {
		switch sub.event {
		case eventFeature:
			feature++
		case eventHoteling:
			hoteling++
		}
		sub.mu.Lock()
		queued += len(sub.queue)
		if sub.full {
			queued++
		}
		sub.mu.Unlock()
	}
	ch <- prometheus.MustNewConstMetric(m.subscriptions, prometheus.GaugeValue, float64(feature), eventFeature)
	ch <- prometheus.MustNewConstMetric(m.subscriptions, prometheus.GaugeValue, float64(hoteling), eventHoteling)
	ch <- prometheus.MustNewConstMetric(m.queued, prometheus.GaugeValue, float64(queued))
	ch <- prometheus.MustNewConstMetric(m.tcpConns, prometheus.GaugeValue, float64(s.tcpGate.Open()))

	s.workMu.Lock()
	waiting, senders := len(s.ready), s.activeSenders
	s.workMu.Unlock()
	ch <- prometheus.MustNewConstMetric(m.waiting, prometheus.GaugeValue, float64(waiting))
	ch <- prometheus.MustNewConstMetric(m.senders, prometheus.GaugeValue, float64(senders))

	if w := s.presence; w != nil {
		w.mu.Lock()
		n := len(w.byCallID)
		w.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(m.presence, prometheus.GaugeValue, float64(n))
	}
}
