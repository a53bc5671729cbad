package engine

import (
	"container/heap"
	"fmt"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

// TestCompactExpiries: once stale entries have doubled the heap, compaction
// keeps exactly the entries SweepHolds would act on (holds still pending
// here, and scanned ones), in heap order, and the heap stays bounded while
// holds come and go.
func TestCompactExpiries(t *testing.T) {
	e := &Engine{holdAcct: map[string]string{}, expiriesCompactAt: expiriesCompactMin}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 10 * expiriesCompactMin
	for i := range n {
		id := fmt.Sprintf("hold_%d", i)
		x := ledger.HoldExpiry{HoldID: id, AccountID: "a", ExpiresAt: t0.Add(time.Duration(n-i) * time.Second)}
		switch {
		case i%10 == 0: // still pending
			e.holdAcct[id] = "a"
		case i%10 == 1: // another node's hold, found by the scan
			x.Scanned = true
		}
		e.expiries.push(x)
		e.compactExpiries()
		if max := 2*(i/10+1)*2 + 2*expiriesCompactMin; len(e.expiries) > max {
			t.Fatalf("after %d pushes the heap has %d entries, want at most %d", i+1, len(e.expiries), max)
		}
	}
	e.expiriesCompactAt = 0 // compact now
	e.compactExpiries()
	if want := n / 5; len(e.expiries) != want {
		t.Fatalf("%d entries left, want %d (pending and scanned)", len(e.expiries), want)
	}
	var last time.Time
	for e.expiries.Len() > 0 {
		x := heap.Pop(&e.expiries).(ledger.HoldExpiry)
		if _, pending := e.holdAcct[x.HoldID]; !pending && !x.Scanned {
			t.Fatalf("stale entry %s kept", x.HoldID)
		}
		if x.ExpiresAt.Before(last) {
			t.Fatalf("heap order broken: %s after %s", x.ExpiresAt, last)
		}
		last = x.ExpiresAt
	}
}
