package bench

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in nanoseconds: values below 64
// are exact, above that each power of two is split into 64 buckets, so a
// quantile is within 1/64 (1.6 %) of the true value. Values of 2^40 ns
// (18 minutes) and more land in the last bucket. One per worker: recording
// is an array increment, no lock, no allocation.
type hist struct {
	counts [histBuckets]uint32
	n      uint64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histMaxLen  = 40 // bits.Len64 of the largest tracked value
	histBuckets = (histMaxLen - histSubBits) * histSub
)

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	l := bits.Len64(v)
	if l > histMaxLen {
		return histBuckets - 1
	}
	shift := l - histSubBits - 1
	return (shift+1)<<histSubBits + int(v>>uint(shift)) - histSub
}

// histValue is the midpoint of bucket i.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := uint(i>>histSubBits - 1)
	m := uint64(i&(histSub-1) + histSub)
	lo := m << shift
	hi := (m+1)<<shift - 1
	return lo + (hi-lo)/2
}

func (h *hist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))]++
	h.n++
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the value at quantile q (0 < q ≤ 1), 0 when empty.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return time.Duration(histValue(i))
		}
	}
	return time.Duration(histValue(histBuckets - 1))
}
