package postgres

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The metrics carry the bbolt store's names (connector_store_write_seconds,
// connector_store_commits_total), so dashboards and alerts work on either
// driver, plus what only a networked store has: read latency and the pool.
var (
	writeBuckets = prometheus.ExponentialBuckets(0.0005, 2.5, 10) // 0.5 ms … 1.9 s
	readBuckets  = prometheus.ExponentialBuckets(0.0002, 2.5, 10) // 0.2 ms … 0.76 s
)

type metrics struct {
	writes  prometheus.Histogram
	reads   prometheus.Histogram
	commits prometheus.CounterFunc
	n       atomic.Uint64 // commits
	failed  prometheus.Counter
	conns   prometheus.GaugeFunc
}

func newMetrics(s *Store) *metrics {
	return &metrics{
		writes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "connector_store_write_seconds",
			Help:    "Time from a write to the store (journal, remembered forwarding, promises, SIP dialogs) until it is committed: what a hot-desk answer waits for.",
			Buckets: writeBuckets,
		}),
		reads: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "connector_store_read_seconds",
			Help:    "Time of one read (or lease and heartbeat call) against the PostgreSQL store.",
			Buckets: readBuckets,
		}),
		commits: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "connector_store_commits_total",
			Help: "Read-write transactions committed to the store.",
		}, func() float64 { return float64(s.Commits()) }),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "connector_store_write_failures_total",
			Help: "Write transactions to the PostgreSQL store that did not commit (refusals, fencing, database errors).",
		}),
		conns: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "connector_store_connections",
			Help: "Connections open to PostgreSQL (the pool's total).",
		}, func() float64 { return float64(s.pool.Stat().TotalConns()) }),
	}
}

func (m *metrics) observeWrite(d time.Duration, err error) {
	m.writes.Observe(d.Seconds())
	if err == nil {
		m.n.Add(1)
	} else {
		m.failed.Inc()
	}
}

func (m *metrics) observeRead(d time.Duration) { m.reads.Observe(d.Seconds()) }

// Collectors are the store's metrics, for a Prometheus registry.
func (s *Store) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.writes, s.metrics.reads, s.metrics.commits, s.metrics.failed, s.metrics.conns}
}

// Commits is how many write transactions have committed since Open.
func (s *Store) Commits() uint64 {
	return s.metrics.n.Load()
}
