package httpapi

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// statusCounters are the children of a counter vector whose last label is
// an HTTP status, for fixed values of the other labels (a route, a batch
// op). WithLabelValues hashes every label and takes a lock on each call;
// the hot routes count every request, so each child is looked up once, on
// its status's first use (as before, a series appears only once it is
// counted), and then read from a copy-on-write map.
type statusCounters struct {
	vec    *prometheus.CounterVec
	labels []string // the labels before the status
	mu     sync.Mutex
	m      atomic.Pointer[map[int]prometheus.Counter]
}

func newStatusCounters(vec *prometheus.CounterVec, labels ...string) *statusCounters {
	return &statusCounters{vec: vec, labels: labels}
}

// inc counts one request answered with status.
func (c *statusCounters) inc(status int) {
	if m := c.m.Load(); m != nil {
		if ctr, ok := (*m)[status]; ok {
			ctr.Inc()
			return
		}
	}
	c.add(status).Inc()
}

// add looks the child of status up and adds it to the map.
func (c *statusCounters) add(status int) prometheus.Counter {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if ctr, ok := (*old)[status]; ok {
			return ctr
		}
	}
	m := make(map[int]prometheus.Counter, 1)
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	ctr := c.vec.WithLabelValues(append(append([]string(nil), c.labels...), strconv.Itoa(status))...)
	m[status] = ctr
	c.m.Store(&m)
	return ctr
}
