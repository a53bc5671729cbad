// Package promtext reads metrics as creditd serves them on /metrics (the
// Prometheus text exposition format) or as a prometheus.Gatherer gathers
// them, for the bench and the tests that check the server's counters. The
// parsing is prometheus/common's expfmt.
package promtext

import (
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is metric families by name.
type Families map[string]*dto.MetricFamily

// Parse reads a text exposition.
func Parse(r io.Reader) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return mfs, nil
}

// Gather reads a registry's metrics.
func Gather(g prometheus.Gatherer) (Families, error) {
	list, err := g.Gather()
	if err != nil {
		return nil, err
	}
	mfs := make(Families, len(list))
	for _, mf := range list {
		mfs[mf.GetName()] = mf
	}
	return mfs, nil
}

// Value is the sum of the samples of the counter, gauge or untyped metric
// name over all its label sets; ok is false if there is no such metric or
// it is of another type.
func (f Families) Value(name string) (v float64, ok bool) {
	mf := f[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			v += m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			v += m.GetGauge().GetValue()
		case dto.MetricType_UNTYPED:
			v += m.GetUntyped().GetValue()
		default:
			return 0, false
		}
	}
	return v, true
}

// Histogram is the sample count and sum of the histogram name over all
// its label sets; ok is false if there is no such histogram.
func (f Families) Histogram(name string) (count, sum float64, ok bool) {
	mf := f[name]
	if mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM {
		return 0, 0, false
	}
	for _, m := range mf.GetMetric() {
		h := m.GetHistogram()
		count += float64(h.GetSampleCount())
		sum += h.GetSampleSum()
	}
	return count, sum, true
}
