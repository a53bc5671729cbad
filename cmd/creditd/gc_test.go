package main

import (
	"runtime/debug"
	"testing"
)

// TestGCDefaults: serve's garbage-collector defaults apply where GOGC and
// GOMEMLIMIT are unset, and leave the runtime's settings alone where they
// are set.
func TestGCDefaults(t *testing.T) {
	oldPercent, oldLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(oldPercent); debug.SetMemoryLimit(oldLimit) })

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	if p, l := gcDefaults(); p != serveGCPercent || l != serveMemoryLimit {
		t.Fatalf("unset: GOGC %d, limit %d; want %d and %d", p, l, serveGCPercent, serveMemoryLimit)
	}

	debug.SetGCPercent(123)
	debug.SetMemoryLimit(1 << 30)
	t.Setenv("GOGC", "123")
	t.Setenv("GOMEMLIMIT", "1GiB")
	if p, l := gcDefaults(); p != 123 || l != 1<<30 {
		t.Fatalf("set: GOGC %d, limit %d; want the runtime's 123 and 1 GiB", p, l)
	}
}
