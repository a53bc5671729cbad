package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// outcome is what one charge cycle left behind.
type outcome uint8

const (
	// cycleDone: reserved and captured; unit price charged.
	cycleDone outcome = iota
	// cycleFailed: the reserve was refused; nothing was written.
	cycleFailed
	// cycleOrphan: reserved, but the capture was refused; the hold is
	// still pending (its credits are held, nothing charged).
	cycleOrphan
	// cycleAmbiguousReserve: the reserve's answer was lost (connection
	// error): a pending hold may or may not exist.
	cycleAmbiguousReserve
	// cycleAmbiguousCapture: the capture's answer was lost: the hold is
	// either captured or still pending.
	cycleAmbiguousCapture
)

// cycleFunc runs one charge cycle on account acct (an index).
type cycleFunc func(acct int) (outcome, error)

// batchFunc runs len(accts) charge cycles in one call, cycle i on account
// accts[i], and sets outs[i] to each one's outcome.
type batchFunc func(accts []int, outs []outcome) error

// batcher is a target whose workers run several cycles per call (POST
// /v1/batch). drive uses batchWorker instead of worker, and records every
// completed cycle of a call with the call's latency.
type batcher interface {
	cyclesPerCall() int
	batchWorker(i int) (batchFunc, func(), error)
}

// prepare returns worker i's function, running per cycles per call.
func prepare(t target, i int) (run batchFunc, per int, release func(), err error) {
	if b, ok := t.(batcher); ok {
		run, release, err = b.batchWorker(i)
		return run, b.cyclesPerCall(), release, err
	}
	c, release, err := t.worker(i)
	if err != nil {
		return nil, 0, nil, err
	}
	return func(accts []int, outs []outcome) error {
		var err error
		outs[0], err = c(accts[0])
		return err
	}, 1, release, nil
}

// target is what a setting drives: one cycle function per worker, and the
// commit counters of the system under test.
type target interface {
	// worker prepares worker i (dials its connection, …) and returns its
	// cycle function and a function releasing what it holds.
	worker(i int) (cycleFunc, func(), error)
	// counters returns the system under test's cumulative counters.
	counters() (counters, error)
}

// counters are a target's cumulative counters, read at both ends of the
// measured window.
type counters struct {
	commits, ops float64 // committed batches (transactions) and operations
	ok           bool    // the target counts commits
	// fullWaits counts the batches that found the SQLite journal full and
	// waited for a materializer transaction; waitsOK: the target counts
	// them (creditd on SQLite).
	fullWaits float64
	waitsOK   bool
}

// loadResult is what a load run measured.
type loadResult struct {
	// Whole run, warm-up included: what the checks must find.
	total tally
	// Measured window only.
	window   tally
	elapsed  time.Duration
	hist     hist
	commits  float64
	ops      float64
	commitOK bool
	// Batches that found the SQLite journal full, if the target counts them.
	fullWaits float64
	waitsOK   bool
	mallocs   uint64 // heap allocations of this process in the window
	errs      []string
}

// tally counts outcomes.
type tally struct {
	cycles, failed, orphans, ambReserve, ambCapture int64
}

func (t *tally) add(o outcome) {
	switch o {
	case cycleDone:
		t.cycles++
	case cycleFailed:
		t.failed++
	case cycleOrphan:
		t.orphans++
	case cycleAmbiguousReserve:
		t.ambReserve++
	case cycleAmbiguousCapture:
		t.ambCapture++
	}
}

func (t *tally) merge(o tally) {
	t.cycles += o.cycles
	t.failed += o.failed
	t.orphans += o.orphans
	t.ambReserve += o.ambReserve
	t.ambCapture += o.ambCapture
}

func (t tally) errors() int64 { return t.failed + t.orphans + t.ambReserve + t.ambCapture }

const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// maxErrSamples bounds the error messages kept per run.
const maxErrSamples = 5

// drive runs concurrency workers against t for warmup, then for d
// measured; hot sends every cycle to account 0, else each cycle picks one
// of accounts uniformly at random. beforeMeasure (if not nil) runs at the
// end of the warm-up, while the workers keep going.
//
// The measured window counts the cycles that complete within it, and
// their latencies; commits and allocations are read at its start and end.
// (A cycle that started in the warm-up and completes in the window
// counts; one still running when the window ends does not: what matters
// once latencies are long, as in the batch settings.)
//
// With pace (not nil), the run is open-loop: cycles start on pace's
// schedule whatever the answers, and a cycle's latency counts from its
// scheduled start, so a system that falls behind shows it in its latency
// (no coordinated omission).
func drive(ctx context.Context, t target, accounts int, hot bool, concurrency int, warmup, d time.Duration, pace *pacer, beforeMeasure func() error) (*loadResult, error) {
	if concurrency < 1 || accounts < 1 {
		return nil, errors.New("bench: concurrency and accounts must be at least 1")
	}
	ws, err := prepareWorkers(t, concurrency)
	defer releaseWorkers(ws)
	if err != nil {
		return nil, err
	}
	var phase atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			w.loop(ctx, i, &phase, pace, accounts, hot)
		}()
	}
	if pace != nil {
		pace.begin(time.Now())
	}
	close(start)
	sleep(ctx, warmup)
	if beforeMeasure != nil {
		if err := beforeMeasure(); err != nil {
			phase.Store(phaseStop)
			wg.Wait()
			return nil, err
		}
	}
	res := &loadResult{}
	c0, err := t.counters()
	if err != nil {
		phase.Store(phaseStop)
		wg.Wait()
		return nil, err
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	measureStart := time.Now()
	phase.Store(phaseMeasure)
	sleep(ctx, d)
	phase.Store(phaseStop)
	res.elapsed = time.Since(measureStart)
	runtime.ReadMemStats(&ms1)
	res.mallocs = ms1.Mallocs - ms0.Mallocs
	c1, err := t.counters()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	res.commitOK = c0.ok && c1.ok
	res.commits, res.ops = c1.commits-c0.commits, c1.ops-c0.ops
	res.waitsOK = c0.waitsOK && c1.waitsOK
	res.fullWaits = c1.fullWaits - c0.fullWaits
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, w := range ws {
		res.add(w)
	}
	return res, nil
}

// add counts what worker w counted.
func (res *loadResult) add(w *driveWorker) {
	res.total.merge(w.total)
	res.window.merge(w.window)
	res.hist.merge(&w.hist)
	for _, e := range w.errs {
		if len(res.errs) < maxErrSamples {
			res.errs = append(res.errs, e)
		}
	}
}

// driveWorker is one worker of drive: its cycle function and what it
// counted.
type driveWorker struct {
	run     batchFunc
	per     int // cycles per call
	release func()
	total   tally
	window  tally
	hist    hist
	errs    []string
}

// prepareWorkers prepares the workers of t concurrently (dialing 256
// connections one by one is slow). On an error, the workers prepared are
// returned too, for their release.
func prepareWorkers(t target, concurrency int) ([]*driveWorker, error) {
	ws := make([]*driveWorker, concurrency)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		prepErr error
		sem     = make(chan struct{}, 32)
	)
	for i := range ws {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			run, per, rel, err := prepare(t, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if prepErr == nil {
					prepErr = fmt.Errorf("prepare worker %d: %w", i, err)
				}
				return
			}
			ws[i] = &driveWorker{run: run, per: per, release: rel}
		}()
	}
	wg.Wait()
	return ws, prepErr
}

// releaseWorkers releases what the prepared workers hold.
func releaseWorkers(ws []*driveWorker) {
	for _, w := range ws {
		if w != nil && w.release != nil {
			w.release()
		}
	}
}

// loop runs worker i's cycles until phase says stop, counting those that
// complete in the measured phase apart.
func (w *driveWorker) loop(ctx context.Context, i int, phase *atomic.Int32, pace *pacer, accounts int, hot bool) {
	rng := rand.New(rand.NewPCG(uint64(i)+1, uint64(time.Now().UnixNano())))
	accts, outs := make([]int, w.per), make([]outcome, w.per)
	for {
		if phase.Load() == phaseStop {
			return
		}
		var scheduled time.Time
		if pace != nil {
			scheduled = pace.claim(w.per)
			if wait := time.Until(scheduled); wait > 0 {
				sleep(ctx, wait)
			}
			if phase.Load() == phaseStop {
				return
			}
		}
		for j := range accts {
			accts[j] = 0
			if !hot {
				accts[j] = rng.IntN(accounts)
			}
		}
		t0 := time.Now()
		if pace != nil {
			t0 = scheduled
		}
		err := w.run(accts, outs)
		dt := time.Since(t0)
		measured := phase.Load() == phaseMeasure
		for _, o := range outs {
			w.total.add(o)
			if measured {
				w.window.add(o)
				if o == cycleDone {
					w.hist.record(dt)
				}
			}
		}
		if err != nil && len(w.errs) < maxErrSamples {
			w.errs = append(w.errs, err.Error())
		}
	}
}

// parallel runs fn(i) for i in [0, n) on up to workers goroutines and
// returns the first error.
func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					next.Store(int64(n)) // stop the others early
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// sleep waits for d or until ctx is done.
// pacer schedules cycle starts at a fixed rate for an open-loop run.
type pacer struct {
	interval time.Duration // between two cycle starts
	start    time.Time
	n        atomic.Int64 // cycles scheduled so far
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate)}
}

func (p *pacer) begin(t time.Time) { p.start = t }

// claim schedules the next n cycles and returns the start of the first.
func (p *pacer) claim(n int) time.Time {
	k := p.n.Add(int64(n)) - int64(n)
	return p.start.Add(time.Duration(k) * p.interval)
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
