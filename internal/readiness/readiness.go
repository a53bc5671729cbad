// Package readiness decides whether a node should get traffic: its store
// takes writes now and the node is not draining.
//
// A Probe commits a small write through the store's real write path every
// interval (Writer, implemented by *engine.Engine), so a store that stops
// taking writes — a full disk, a failed fsync, an unreachable PostgreSQL —
// turns the node unready within about one interval even when no request
// arrives, and ready again once a write succeeds. Drain, on SIGTERM, turns
// it unready at once and for good. The gauge creditd_store_writable is 1
// while the last probe succeeded, and each change between writable and not
// is logged once, with the store's error.
package readiness

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultInterval is how often a Probe writes when not told otherwise.
const DefaultInterval = 2 * time.Second

// timeoutMin is the least time one probe write may take before it counts
// as failed; otherwise the interval bounds it.
const timeoutMin = time.Second

// Writer makes one durable write that changes no ledger data and returns
// nil once the store has committed it.
type Writer interface {
	ProbeWrite(ctx context.Context) error
}

// Probe tracks whether the store takes writes and whether the node drains.
type Probe struct {
	w        Writer
	interval time.Duration
	log      *slog.Logger
	gauge    prometheus.Gauge

	mu       sync.Mutex // serializes probes and the transition log
	probed   bool       // a probe has completed
	writable atomic.Bool
	draining atomic.Bool
}

// New returns a Probe that writes through w every interval (<= 0:
// DefaultInterval) once Run starts, and registers creditd_store_writable
// on reg (nil: none). It is not writable until its first probe succeeds.
func New(w Writer, interval time.Duration, log *slog.Logger, reg prometheus.Registerer) *Probe {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if log == nil {
		log = slog.Default()
	}
	p := &Probe{w: w, interval: interval, log: log, gauge: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "creditd_store_writable",
		Help: "1 when the store's last write probe committed, 0 when it failed (see GET /readyz).",
	})}
	if reg != nil {
		reg.MustRegister(p.gauge)
	}
	return p
}

// Interval is the time between two probes.
func (p *Probe) Interval() time.Duration { return p.interval }

// Run probes at once and then every interval until ctx ends.
func (p *Probe) Run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check runs one probe write now and records its outcome; it returns
// whether the store took the write.
func (p *Probe) Check(ctx context.Context) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ctx.Err() != nil {
		return p.writable.Load()
	}
	wctx, cancel := context.WithTimeout(ctx, max(p.interval, timeoutMin))
	start := time.Now()
	err := p.w.ProbeWrite(wctx)
	cancel()
	if err != nil && ctx.Err() != nil {
		return p.writable.Load() // stopped, not the store's fault
	}
	ok := err == nil
	was, first := p.writable.Load(), !p.probed
	p.probed = true
	p.writable.Store(ok)
	if ok {
		p.gauge.Set(1)
	} else {
		p.gauge.Set(0)
	}
	switch {
	case !ok && (was || first):
		p.log.Error("store refuses writes: not ready", "err", err, "probe_seconds", time.Since(start).Seconds())
	case ok && !was && !first:
		p.log.Info("store takes writes again: ready", "probe_seconds", time.Since(start).Seconds())
	}
	return ok
}

// Drain marks the node as draining: Ready is false from now on.
func (p *Probe) Drain() {
	if !p.draining.Swap(true) {
		p.log.Info("draining: not ready")
	}
}

// Writable reports whether the last probe write succeeded.
func (p *Probe) Writable() bool { return p.writable.Load() }

// Ready reports whether the node should get traffic: the last probe write
// succeeded and the node is not draining.
func (p *Probe) Ready() bool { return p.writable.Load() && !p.draining.Load() }
