package hoteling

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/broadworks-connector/connector/xsi"
)

// The sequencer's own Prometheus collectors (CoreDNS keeps each plugin's
// metrics beside it). Sequence counters are resolved once per (op, result)
// when the Sequencer is built: a login storm does no label lookup for them.

// Sequence kinds (StepError.Op), as labelled.
const (
	opLogin = iota
	opLogout
	opReconcile
	numOps
)

var opNames = [numOps]string{"login", "logout", "reconcile"}

// Results of a sequence or a step, as labelled.
const (
	resOK          = iota
	resBusy        // ErrBusy: the agent's or host's waiting queue was full
	resHostBusy    // ErrHostBusy
	resUnknownUser // ErrUnknownUser, a 404
	resRefused     // another 4xx: the XSP refused the change
	resLinkDown    // ErrLinkDown: XSP unreachable or 5xx
	resTimeout     // ErrTimeout: no answer or no confirming event in time
	resContradict  // ErrContradicted
	resCanceled    // the caller gave up (its context ended)
	resFailed      // anything else (a bad request, an empty ID)
	resOverloaded  // ErrOverloaded: refused by admission, or a step found no XSI slot in time
	numResults
)

var resultNames = [numResults]string{"ok", "busy", "host_busy", "unknown_user", "refused", "link_down", "timeout", "contradicted", "canceled", "failed", "overloaded"}

type metrics struct {
	sequences    *prometheus.CounterVec   // by op and result
	sequenceTime *prometheus.HistogramVec // by op
	steps        *prometheus.CounterVec   // by step and result
	stepTime     *prometheus.HistogramVec // by step
	undos        *prometheus.CounterVec   // by op and result
	waiting      prometheus.Gauge
	running      prometheus.Gauge
	admitRefused *prometheus.CounterVec // by op and reason (admission.go)

	sequence   [numOps][numResults]prometheus.Counter
	opDuration [numOps]prometheus.Observer
}

// stepBuckets cover an Actions round trip plus its confirming XSI event, up
// to StepTimeout (5 s by default).
var stepBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics() *metrics {
	m := &metrics{
		sequences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_hotdesk_sequences_total",
			Help: "Hot-desk sequences finished, by op (login, logout, reconcile: the reconciler bringing BroadWorks back to a promise) and result (ok, busy: queue full, host_busy, unknown_user, refused, link_down, timeout, contradicted, canceled, failed, overloaded: refused by admission or no XSI slot in time).",
		}, []string{"op", "result"}),
		sequenceTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connector_hotdesk_sequence_seconds",
			Help:    "Time of a hot-desk sequence, from the request to its answer: queueing behind the agent's or desk's running sequence, every step and any undo included.",
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25, 60},
		}, []string{"op"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_hotdesk_steps_total",
			Help: "Hot-desk steps sent (host-sign-out, host-cfa, associate, agent-unavailable, agent-sign-out, restore-host-cfa, end-association, restore-host-agent, …; undo-… for compensations), by result as for sequences.",
		}, []string{"step", "result"}),
		stepTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connector_hotdesk_step_seconds",
			Help:    "Time of a hot-desk step: its Xsi-Actions request and the wait for the XSI event that confirms it.",
			Buckets: stepBuckets,
		}, []string{"step"}),
		undos: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_hotdesk_compensations_total",
			Help: "Failed sequences whose completed steps were undone, by op and result: ok, or incomplete (BroadWorks is left half done; recovery repairs it).",
		}, []string{"op", "result"}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "connector_hotdesk_sequences_waiting",
			Help: "Sequences queued behind a running one on the same agent or desk (each agent and desk holds at most hoteling.queue_length waiting; beyond, busy).",
		}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "connector_hotdesk_sequences_running",
			Help: "Sequences holding their agent's and desk's locks, running their steps.",
		}),
		admitRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_hotdesk_admission_refused_total",
			Help: "Hot-desk logins and logouts refused before their first step (resourceBusy) because the XSI capacity could not confirm them in time, by op and reason: latency (confirmations take longer than half hoteling.step_timeout), queue (the wait for one of xsi.max_in_flight slots would pass half hoteling.step_timeout), deadline (the sequence would not end within half the caller's time).",
		}, []string{"op", "reason"}),
	}
	for op := range numOps {
		for res := range numResults {
			m.sequence[op][res] = m.sequences.WithLabelValues(opNames[op], resultNames[res])
		}
		m.opDuration[op] = m.sequenceTime.WithLabelValues(opNames[op])
	}
	return m
}

// Collectors are the sequencer's metrics, for a Prometheus registry.
func (s *Sequencer) Collectors() []prometheus.Collector {
	m := s.metrics
	a := s.adm
	return []prometheus.Collector{m.sequences, m.sequenceTime, m.steps, m.stepTime, m.undos, m.waiting, m.running, m.admitRefused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "connector_hotdesk_step_answer_estimate_seconds",
			Help: "Admission's estimate (moving average) of a hot-desk step's time from its Xsi-Actions request's send to its answer: how long it holds an XSI slot. 0 until measured.",
		}, func() float64 { ans, _ := a.estimates(); return ans.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "connector_hotdesk_step_confirm_estimate_seconds",
			Help: "Admission's estimate (moving average) of a hot-desk step's time from its Xsi-Actions request's send to the XSI event that confirms it (hoteling.step_timeout when none came). 0 until measured.",
		}, func() float64 { _, c := a.estimates(); return c.Seconds() }),
	}
}

// refused counts a sequence refused by admission.
func (m *metrics) refused(op int, reason string) {
	m.admitRefused.WithLabelValues(opNames[op], reason).Inc()
}

// done counts one finished sequence.
func (m *metrics) done(op int, since time.Time, err error) {
	m.sequence[op][resultOf(err)].Inc()
	m.opDuration[op].Observe(time.Since(since).Seconds())
}

// step counts one step sent (exec).
func (m *metrics) step(name string, since time.Time, err error) {
	m.steps.WithLabelValues(name, resultNames[resultOf(err)]).Inc()
	m.stepTime.WithLabelValues(name).Observe(time.Since(since).Seconds())
}

// compensated counts the undo of a failed run that had steps to undo.
func (m *metrics) compensated(op string, undone int, undoErr error) {
	if undone == 0 {
		return
	}
	res := "ok"
	if undoErr != nil {
		res = "incomplete"
	}
	m.undos.WithLabelValues(op, res).Inc()
}

// resultOf classifies what a sequence or a step returned: a *StepError by
// its Kind, a step's raw error by its cause.
func resultOf(err error) int {
	if err == nil {
		return resOK
	}
	for _, k := range [...]struct {
		err error
		res int
	}{
		{ErrOverloaded, resOverloaded}, {xsi.ErrNotSent, resOverloaded},
		{ErrBusy, resBusy}, {ErrHostBusy, resHostBusy}, {ErrContradicted, resContradict},
		{ErrUnknownUser, resUnknownUser}, {xsi.ErrNotFound, resUnknownUser},
		{ErrTimeout, resTimeout}, {ErrLinkDown, resLinkDown}, {xsi.ErrLinkDown, resLinkDown}, {xsi.ErrServerError, resLinkDown},
		{context.Canceled, resCanceled}, {context.DeadlineExceeded, resTimeout},
	} {
		if errors.Is(err, k.err) {
			return k.res
		}
	}
	if refused(err) {
		return resRefused
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return resLinkDown
	}
	return resFailed
}
