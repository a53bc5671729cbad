package promtext

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// TestParseAndGatherAgree: the same registry read through its text
// exposition and through Gather gives the same values: counters and gauges
// summed over their labels, histograms' count and sum.
func TestParseAndGatherAgree(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t_ops_total", Help: "h"}, []string{"kind"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "t_pending", Help: "h"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "t_batch_ops", Help: "h", Buckets: []float64{1, 10}})
	reg.MustRegister(c, g, h)
	c.WithLabelValues("a").Add(3)
	c.WithLabelValues("b").Add(4)
	g.Set(-2.5)
	for _, v := range []float64{1, 7, 40} {
		h.Observe(v)
	}

	var text strings.Builder
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
			t.Fatal(err)
		}
	}
	parsed, err := Parse(strings.NewReader(text.String()))
	if err != nil {
		t.Fatalf("%v in:\n%s", err, text.String())
	}
	gathered, err := Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]Families{"parsed": parsed, "gathered": gathered} {
		if v, ok := f.Value("t_ops_total"); !ok || v != 7 {
			t.Errorf("%s: t_ops_total = %v, %v; want 7", name, v, ok)
		}
		if v, ok := f.Value("t_pending"); !ok || v != -2.5 {
			t.Errorf("%s: t_pending = %v, %v; want -2.5", name, v, ok)
		}
		if n, s, ok := f.Histogram("t_batch_ops"); !ok || n != 3 || s != 48 {
			t.Errorf("%s: t_batch_ops count %v sum %v %v; want 3, 48", name, n, s, ok)
		}
		if _, ok := f.Value("t_batch_ops"); ok {
			t.Errorf("%s: a histogram read as a value", name)
		}
		if _, _, ok := f.Histogram("t_ops_total"); ok {
			t.Errorf("%s: a counter read as a histogram", name)
		}
		if _, ok := f.Value("t_missing"); ok {
			t.Errorf("%s: a missing metric read", name)
		}
	}
}

// TestParseRejectsGarbage: what is not the text format is an error, not
// an empty result that reads as "no such metric".
func TestParseRejectsGarbage(t *testing.T) {
	if _, err := Parse(strings.NewReader("<html>not metrics</html>\n")); err == nil {
		t.Fatal("no error for HTML")
	}
}
