package app

import (
	"strconv"
	"testing"
	"time"
)

// TestLimiterTableIsBounded: a table never holds more than its maximum;
// when full it drops refilled (idle) buckets first and keeps the ones that
// are still spent, and otherwise frees a quarter of itself at once.
func TestLimiterTableIsBounded(t *testing.T) {
	const max = 100
	t0 := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	tab := newLimiterTable[string](1, 2, max)

	// 90 keys spend one token of two, 10 "hot" keys both.
	for i := range max - 10 {
		if _, ok := tab.take("idle"+strconv.Itoa(i), t0); !ok {
			t.Fatal("a new key was refused")
		}
	}
	for i := range 10 {
		tab.take("hot"+strconv.Itoa(i), t0)
		tab.take("hot"+strconv.Itoa(i), t0)
	}
	// A second later the idle buckets are full again, the hot ones are
	// not: a new key evicts only the idle ones.
	t1 := t0.Add(time.Second)
	tab.take("new", t1)
	if n := tab.size(); n != 11 {
		t.Fatalf("%d keys held after the sweep, want the 10 hot ones and the new one", n)
	}
	for i := range 10 {
		tab.take("hot"+strconv.Itoa(i), t1) // the token refilled in that second
		if _, ok := tab.take("hot"+strconv.Itoa(i), t1); ok {
			t.Fatalf("hot%d: a spent bucket was evicted (reset to its burst)", i)
		}
	}

	// With no idle bucket, a full table drops a quarter of its keys.
	tab = newLimiterTable[string](1, 2, max)
	for i := range 5 * max {
		tab.take("k"+strconv.Itoa(i), t0)
		tab.take("k"+strconv.Itoa(i), t0)
		if n := tab.size(); n > max {
			t.Fatalf("%d keys held, max %d", n, max)
		}
	}
	last := "k" + strconv.Itoa(5*max-1)
	if wait, ok := tab.take(last, t0); ok || wait != time.Second {
		t.Fatalf("spent bucket: ok %v, wait %s (want 1s)", ok, wait)
	}
}
