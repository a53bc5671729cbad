package readiness_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditd/creditd/internal/readiness"
)

// fakeWriter fails while err is set.
type fakeWriter struct {
	mu    sync.Mutex
	err   error
	calls int
}

func (w *fakeWriter) ProbeWrite(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	return w.err
}

func (w *fakeWriter) set(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProbeTransitions(t *testing.T) {
	w := &fakeWriter{}
	var logs syncBuf
	reg := prometheus.NewRegistry()
	p := readiness.New(w, time.Hour, slog.New(slog.NewJSONHandler(&logs, nil)), reg)
	gauge := func() float64 {
		mfs, err := reg.Gather()
		if err != nil || len(mfs) != 1 || mfs[0].GetName() != "creditd_store_writable" {
			t.Fatalf("gather: %v %v", mfs, err)
		}
		return mfs[0].GetMetric()[0].GetGauge().GetValue()
	}
	if p.Ready() || p.Writable() {
		t.Fatal("ready before any probe")
	}
	ctx := context.Background()
	if !p.Check(ctx) || !p.Ready() || gauge() != 1 {
		t.Fatalf("after a successful probe: ready %v, gauge %v", p.Ready(), gauge())
	}
	if strings.Contains(logs.String(), "store") {
		t.Errorf("the first successful probe logged: %s", logs.String())
	}
	w.set(errors.New("write x.seg: no space left on device"))
	for range 3 {
		if p.Check(ctx) || p.Ready() || gauge() != 0 {
			t.Fatalf("after a failed probe: ready %v, gauge %v", p.Ready(), gauge())
		}
	}
	if n := strings.Count(logs.String(), "store refuses writes"); n != 1 || !strings.Contains(logs.String(), "no space left on device") {
		t.Errorf("three failed probes logged %d transitions (want 1, with the error):\n%s", n, logs.String())
	}
	w.set(nil)
	for range 2 {
		if !p.Check(ctx) || !p.Ready() || gauge() != 1 {
			t.Fatalf("after recovery: ready %v, gauge %v", p.Ready(), gauge())
		}
	}
	if n := strings.Count(logs.String(), "store takes writes again"); n != 1 {
		t.Errorf("recovery logged %d times, want 1:\n%s", n, logs.String())
	}
	p.Drain()
	if p.Ready() || !p.Writable() {
		t.Errorf("draining: ready %v writable %v, want false true", p.Ready(), p.Writable())
	}
	p.Check(ctx)
	if p.Ready() {
		t.Error("ready again after a probe while draining")
	}
	if gauge() != 1 {
		t.Errorf("gauge %v while draining with a writable store, want 1", gauge())
	}
}

func TestProbeRunFollowsTheStore(t *testing.T) {
	w := &fakeWriter{err: errors.New("connection refused")}
	p := readiness.New(w, 5*time.Millisecond, slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	wait := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for p.Ready() != want {
			if time.Now().After(deadline) {
				t.Fatalf("Ready() not %v within 5s", want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	w.set(nil)
	wait(true)
	w.set(errors.New("connection refused"))
	wait(false)
	w.set(nil)
	wait(true)
	cancel()
	<-done
}

// An interval <= 0 is the default.
func TestProbeDefaultInterval(t *testing.T) {
	if got := readiness.New(&fakeWriter{}, 0, nil, nil).Interval(); got != readiness.DefaultInterval {
		t.Errorf("interval %v, want %v", got, readiness.DefaultInterval)
	}
}
