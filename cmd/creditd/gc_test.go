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

func TestEnvInt(t *testing.T) {
	t.Setenv("CREDITD_TEST_INT", "3")
	if n := envInt("CREDITD_TEST_INT", 7); n != 3 {
		t.Fatalf("set: %d", n)
	}
	t.Setenv("CREDITD_TEST_INT", "three")
	if n := envInt("CREDITD_TEST_INT", 7); n != 7 {
		t.Fatalf("not a number: %d, want the default", n)
	}
	t.Setenv("CREDITD_TEST_INT", "")
	if n := envInt("CREDITD_TEST_INT", 7); n != 7 {
		t.Fatalf("unset: %d, want the default", n)
	}
}
