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
