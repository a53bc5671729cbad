package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditd/creditd/store/sqlite"
)

// journalCollector exports the SQLite journal's statistics
// (sqlite.Store.JournalStats), read at each scrape.
type journalCollector struct {
	st *sqlite.Store
}

var (
	descPendingRows    = prometheus.NewDesc("creditd_sqlite_journal_pending_rows", "Rows journaled but not yet materialized into the tables (held in memory).", nil, nil)
	descPendingRowsMax = prometheus.NewDesc("creditd_sqlite_journal_pending_rows_max", "Pending rows beyond which new batches wait for the materializer.", nil, nil)
	descPendingBatches = prometheus.NewDesc("creditd_sqlite_journal_pending_batches", "Batches journaled but not yet materialized.", nil, nil)
	descTransactions   = prometheus.NewDesc("creditd_sqlite_materialize_transactions_total", "Materializer transactions committed.", nil, nil)
	descRows           = prometheus.NewDesc("creditd_sqlite_materialize_rows_total", "Journaled rows materialized.", nil, nil)
	descSeconds        = prometheus.NewDesc("creditd_sqlite_materialize_seconds_total", "Time spent in materializer transactions.", nil, nil)
	descFailures       = prometheus.NewDesc("creditd_sqlite_materialize_failures_total", "Materializer transactions that failed (and were retried).", nil, nil)
	descSuperseded     = prometheus.NewDesc("creditd_sqlite_journal_superseded_rows_total", "Pending rows dropped from memory before being materialized because a later batch rewrote them.", nil, nil)
	descFullWaits      = prometheus.NewDesc("creditd_sqlite_journal_full_waits_total", "Batches that waited because the journal held its maximum of pending rows.", nil, nil)
	descStartRows      = prometheus.NewDesc("creditd_sqlite_materialize_start_rows", "Pending rows at which the materializer starts a transaction without waiting for its window (lowered to keep room below the maximum for the rows arriving meanwhile).", nil, nil)
)

func (c journalCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPendingRows, descPendingRowsMax, descPendingBatches, descTransactions, descRows, descSeconds, descFailures, descSuperseded, descFullWaits, descStartRows} {
		ch <- d
	}
}

func (c journalCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.st.JournalStats()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(descPendingRows, float64(s.PendingRows))
	gauge(descPendingRowsMax, float64(s.PendingRowsMax))
	gauge(descPendingBatches, float64(s.PendingBatches))
	counter(descTransactions, float64(s.Transactions))
	counter(descRows, float64(s.Rows))
	counter(descSeconds, s.Seconds)
	counter(descFailures, float64(s.Failures))
	counter(descSuperseded, float64(s.Superseded))
	counter(descFullWaits, float64(s.FullWaits))
	gauge(descStartRows, float64(s.StartRows))
}
