package engine

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the engine's Prometheus collectors.
type Metrics struct {
	ops            *prometheus.CounterVec
	batchOps       prometheus.Histogram
	commitSeconds  prometheus.Histogram
	commitFailures prometheus.Counter
	isolatedOps    prometheus.Counter
	rejected       prometheus.Counter
	entries        prometheus.Counter
	sweptAccounts  prometheus.Counter
	cachedAccounts prometheus.Gauge
	cacheEvicted   prometheus.Counter
}

// NewMetrics creates the collectors and registers them with reg (if non-nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "creditd_engine_ops_total", Help: "Engine operations by kind and outcome (error code or ok).",
		}, []string{"kind", "outcome"}),
		batchOps: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "creditd_engine_batch_ops", Help: "Operations per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "creditd_engine_commit_seconds", Help: "Time to apply and commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		commitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "creditd_engine_commit_failures_total", Help: "Batches (or, while isolating refused data, parts of one) whose commit the store failed; their operations were answered unavailable.",
		}),
		isolatedOps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "creditd_engine_isolated_ops_total",
			Help: "Operations answered alone with an error because the store refused their data; the rest of their batch committed.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "creditd_engine_rejected_total", Help: "Operations refused because the queue was full.",
		}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "creditd_ledger_entries_total", Help: "Ledger entries committed.",
		}),
		sweptAccounts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "creditd_engine_swept_accounts_total", Help: "Accounts touched by the hold-expiry sweeper.",
		}),
		cachedAccounts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "creditd_engine_cached_accounts", Help: "Accounts whose committed state is cached in memory (at most cached_accounts_max).",
		}),
		cacheEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "creditd_engine_cache_evictions_total", Help: "Accounts evicted from the state cache to stay within cached_accounts_max.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.ops, m.batchOps, m.commitSeconds, m.commitFailures, m.isolatedOps, m.rejected, m.entries, m.sweptAccounts,
			m.cachedAccounts, m.cacheEvicted)
	}
	return m
}
