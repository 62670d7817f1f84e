package store

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// writeBuckets span a page-cache write (well under a millisecond) to a disk
// that stalls (seconds).
var writeBuckets = prometheus.ExponentialBuckets(0.0005, 2.5, 10) // 0.5 ms … 1.9 s

// metrics are the store's: how long writes wait to be on disk, and how many
// transactions carried them.
type metrics struct {
	writes  prometheus.Histogram
	commits prometheus.CounterFunc
}

func newMetrics(s *Bolt) *metrics {
	return &metrics{
		writes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "connector_store_write_seconds",
			Help:    "Time from a write to the store (journal, remembered forwarding, promises, SIP dialogs) until it is on disk, group commit included: what a hot-desk answer waits for.",
			Buckets: writeBuckets,
		}),
		commits: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "connector_store_commits_total",
			Help: "Read-write transactions committed to the store file (with group commit, fewer than the writes).",
		}, func() float64 { return float64(s.gc.Commits()) }),
	}
}

func (m *metrics) observe(d time.Duration) { m.writes.Observe(d.Seconds()) }

// Collectors are the store's metrics, for a Prometheus registry.
func (s *Bolt) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.writes, s.metrics.commits}
}
