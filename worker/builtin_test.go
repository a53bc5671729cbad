package worker

import (
	"encoding/json"
	"image/color"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/imageops"
)

// memoryProbe records what a Builtin admits.
type memoryProbe struct {
	mu          sync.Mutex
	waits       int
	waited      chan struct{} // closed when wantWaits jobs have asked
	wantWaits   int
	admissions  []int64 // weights, in order
	inFlightMax int64
}

// probe records b's admissions; the first job admitted holds its memory
// until wantWaits jobs have asked to be admitted (what, named for a
// failure, is waited for).
func probe(t *testing.T, b *Builtin, wantWaits int, what string) *memoryProbe {
	p := &memoryProbe{waited: make(chan struct{}), wantWaits: wantWaits}
	b.waiting = func(Job, int64) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.waits++
		if p.waits == p.wantWaits {
			close(p.waited)
		}
	}
	first := true
	b.admitted = func(job Job, weight, inFlight int64) {
		p.mu.Lock()
		p.admissions = append(p.admissions, weight)
		p.inFlightMax = max(p.inFlightMax, inFlight)
		wait := first
		first = false
		p.mu.Unlock()
		if wait {
			recv(t, what, p.waited)
		}
	}
	return p
}

// TestBuiltinAdmitsJobsByMemory: with a budget that fits one job, three
// big jobs leased at once never run together. The first one admitted holds
// its memory until the other two have downloaded their sources and asked
// to be admitted, so without the budget they would be admitted beside it
// (three jobs' memory in flight); with it, each waits for the one before.
// The weight is the source header's estimate, imageops.MemoryBytes.
func TestBuiltinAdmitsJobsByMemory(t *testing.T) {
	f := newFake(t, 30*time.Second)
	src := testPNG(t, 200, 150, color.NRGBA{R: 90, G: 160, B: 30, A: 255})
	asset := f.addAsset(src, "image/png")
	params := map[string]any{"source": asset, "name": "blur"}
	raw, _ := json.Marshal(params)
	need, err := imageops.MemoryBytes("filter", raw, src)
	if err != nil {
		t.Fatal(err)
	}

	b := NewBuiltin(need) // room for exactly one job
	p := probe(t, b, 3, "the other two jobs to ask for memory")
	var ids []string
	for range 3 {
		ids = append(ids, f.addJob("filter", 1, params))
	}
	start(t, &Runner{Client: f.client(fakeKey), Actions: imageops.Actions, Handler: b.Handle, Concurrency: 3})
	for _, id := range ids {
		waitFor(t, id+" to succeed", func() bool { return f.job(id).Status == "succeeded" })
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.admissions) != 3 {
		t.Fatalf("%d admissions; want 3", len(p.admissions))
	}
	for _, w := range p.admissions {
		if w != need {
			t.Errorf("admitted weight %d; want the header's estimate %d", w, need)
		}
	}
	if p.inFlightMax != need {
		t.Errorf("at most %d bytes in flight; want %d (one job at a time)", p.inFlightMax, need)
	}
	if n := b.inFlight.Load(); n != 0 {
		t.Errorf("%d bytes still admitted after the jobs ended", n)
	}
}

// TestBuiltinRunsAnOversizedJobAlone: a job that needs more than the whole
// budget counts as the budget: it runs, alone.
func TestBuiltinRunsAnOversizedJobAlone(t *testing.T) {
	f := newFake(t, 30*time.Second)
	src := testPNG(t, 120, 80, color.White)
	asset := f.addAsset(src, "image/png")
	params := map[string]any{"source": asset, "factor": 4}
	raw, _ := json.Marshal(params)
	need, err := imageops.MemoryBytes("upscale", raw, src)
	if err != nil {
		t.Fatal(err)
	}
	budget := need / 2
	b := NewBuiltin(budget)
	p := probe(t, b, 2, "the other job to ask for memory")
	a := f.addJob("upscale", 1, params)
	c := f.addJob("upscale", 1, params)
	start(t, &Runner{Client: f.client(fakeKey), Actions: imageops.Actions, Handler: b.Handle, Concurrency: 2})
	for _, id := range []string{a, c} {
		waitFor(t, id+" to succeed", func() bool { return f.job(id).Status == "succeeded" })
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.admissions) != 2 || p.admissions[0] != budget || p.admissions[1] != budget {
		t.Errorf("admitted %v; want the budget %d twice", p.admissions, budget)
	}
	if p.inFlightMax != budget {
		t.Errorf("at most %d bytes in flight; want %d (one job at a time)", p.inFlightMax, budget)
	}
}

func TestNewBuiltinDefaultBudget(t *testing.T) {
	if got := NewBuiltin(0).MemoryBytes(); got != DefaultBuiltinMemoryBytes {
		t.Errorf("NewBuiltin(0) budget %d; want %d", got, DefaultBuiltinMemoryBytes)
	}
	if got := NewBuiltin(7 << 20).MemoryBytes(); got != 7<<20 {
		t.Errorf("NewBuiltin(7 MiB) budget %d", got)
	}
}
