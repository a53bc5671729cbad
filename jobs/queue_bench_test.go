package jobs_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/jobs"
)

// scanQueue is the lease queue as it was before Queue: one map of queued
// jobs that every pop scans under the mutex. It is kept as the baseline
// of BenchmarkLease.
type scanQueue struct {
	mu     sync.Mutex
	seq    int64
	queued map[string]scanEntry
}

type scanEntry struct {
	jobs.Entry
	seq int64
}

func (q *scanQueue) Push(e jobs.Entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.queued[e.ID]; ok {
		return
	}
	q.seq++
	q.queued[e.ID] = scanEntry{e, q.seq}
}

func (q *scanQueue) Pop(actions []string) (jobs.Entry, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var best scanEntry
	found := false
	for _, c := range q.queued {
		if slices.Contains(actions, c.Action) && (!found || c.seq < best.seq) {
			best, found = c, true
		}
	}
	if found {
		delete(q.queued, best.ID)
	}
	return best.Entry, found
}

// BenchmarkLease pops the oldest job for a worker serving two of eight
// actions from a queue of n jobs spread over the eight, and queues a new
// job (so the size stays n): "index" is Queue, "scan" the old map scan.
func BenchmarkLease(b *testing.B) {
	actions := []string{"generate", "edit", "crop", "upscale", "inpaint", "video", "remove_bg", "outpaint"}
	serve := []string{"upscale", "video"}
	for _, n := range []int{100, 10_000, 100_000} {
		fill := func(push func(jobs.Entry)) {
			for i := range n {
				push(jobs.Entry{ID: fmt.Sprintf("job_%d", i), AccountID: "acct", Action: actions[i%len(actions)], CreatedAt: t0.Add(time.Duration(i) * time.Millisecond)})
			}
		}
		b.Run(fmt.Sprintf("queued=%d/index", n), func(b *testing.B) {
			q := jobs.NewQueue()
			fill(q.Push)
			next := n
			for b.Loop() {
				e, ok, _ := q.Pop(serve)
				if !ok {
					b.Fatal("empty")
				}
				e.ID, e.CreatedAt = fmt.Sprintf("job_%d", next), t0.Add(time.Duration(next)*time.Millisecond)
				next++
				q.Push(e)
			}
		})
		b.Run(fmt.Sprintf("queued=%d/scan", n), func(b *testing.B) {
			q := &scanQueue{queued: map[string]scanEntry{}}
			fill(q.Push)
			next := n
			for b.Loop() {
				e, ok := q.Pop(serve)
				if !ok {
					b.Fatal("empty")
				}
				e.ID, e.CreatedAt = fmt.Sprintf("job_%d", next), t0.Add(time.Duration(next)*time.Millisecond)
				next++
				q.Push(e)
			}
		})
	}
}

func (q *scanQueue) Unserved(due func(string, time.Time) bool, limit int) []jobs.Entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []jobs.Entry
	for _, c := range q.queued {
		if len(out) == limit {
			break
		}
		if due(c.Action, c.CreatedAt) {
			out = append(out, c.Entry)
		}
	}
	return out
}

// BenchmarkUnserved is the no-worker sweep's question on a queue of
// 100 000 jobs of which 10 are due: "index" walks each action's heap
// down to the first job not due, "scan" reads every job.
func BenchmarkUnserved(b *testing.B) {
	const n = 100_000
	actions := []string{"generate", "edit", "crop", "upscale", "inpaint", "video", "remove_bg", "outpaint"}
	due := func(_ string, createdAt time.Time) bool { return createdAt.Before(t0.Add(10 * time.Millisecond)) }
	entries := make([]jobs.Entry, n)
	for i := range entries {
		entries[i] = jobs.Entry{ID: fmt.Sprintf("job_%d", i), Action: actions[i%len(actions)], CreatedAt: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	b.Run("index", func(b *testing.B) {
		q := jobs.NewQueue()
		for _, e := range entries {
			q.Push(e)
		}
		for b.Loop() {
			if len(q.Unserved(due, 1024)) != 10 {
				b.Fatal("want 10")
			}
		}
	})
	b.Run("scan", func(b *testing.B) {
		q := &scanQueue{queued: map[string]scanEntry{}}
		for _, e := range entries {
			q.Push(e)
		}
		for b.Loop() {
			if len(q.Unserved(due, 1024)) != 10 {
				b.Fatal("want 10")
			}
		}
	})
}
