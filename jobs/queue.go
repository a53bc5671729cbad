package jobs

import (
	"strings"
	"sync"
	"time"

	"github.com/creditd/creditd/ledger"
)

// Queue is a node's queue of jobs waiting for a worker: per action, a
// queue ordered by age (creation time, then id), so that a lease for a set
// of actions takes the oldest among the heads of their queues. A job
// requeued after a failed attempt or a lost lease keeps its place by age.
//
// Entries can be stale (a job cancelled, or leased on another node): the
// caller re-checks the job when it leases it, so a stale entry costs one
// no-op. Removing a job leaves its heap entry behind; an action's heap is
// rebuilt when its stale entries outnumber its live ones.
//
// The Queue itself takes every job it is given (a committed job is never
// dropped); the bound on queued jobs (Limits.QueuedJobsMax) is applied
// when a job is created (Len). A Queue is safe for concurrent use.
type Queue struct {
	mu       sync.Mutex
	gen      uint64
	live     map[string]Entry    // job id → entry
	byAction map[string]*actionQ // action → its heap
	notify   chan struct{}       // closed and replaced on every push
}

// Entry is a queued job.
type Entry struct {
	ID, AccountID, Action string
	// CreatedAt orders the queue. For a job heard of from another node
	// without its creation time, the time this node heard of it.
	CreatedAt time.Time
	gen       uint64
}

// before orders entries by age, then id.
func (e *Entry) before(o *Entry) bool {
	if c := e.CreatedAt.Compare(o.CreatedAt); c != 0 {
		return c < 0
	}
	return strings.Compare(e.ID, o.ID) < 0
}

// staleMin is the number of stale entries an action's heap keeps before a
// rebuild is considered.
const staleMin = 64

type actionQ struct {
	heap  []Entry
	stale int // entries of heap no longer live
}

// NewQueue returns an empty Queue.
func NewQueue() *Queue {
	return &Queue{live: map[string]Entry{}, byAction: map[string]*actionQ{}, notify: make(chan struct{})}
}

// EntryOf returns the queue entry of a job.
func EntryOf(j *ledger.Job) Entry {
	return Entry{ID: j.ID, AccountID: j.AccountID, Action: j.Action, CreatedAt: j.CreatedAt}
}

// Push queues a job. A job already queued keeps its place, unless e
// carries an earlier creation time (an entry first heard of from another
// node's event carries the time this node heard of it).
func (q *Queue) Push(e Entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if c, ok := q.live[e.ID]; ok {
		if e.CreatedAt.IsZero() || !e.CreatedAt.Before(c.CreatedAt) {
			return
		}
		q.byAction[c.Action].stale++
		e.Action, e.AccountID = c.Action, c.AccountID
	}
	q.gen++
	e.gen = q.gen
	q.live[e.ID] = e
	a := q.byAction[e.Action]
	if a == nil {
		a = &actionQ{}
		q.byAction[e.Action] = a
	}
	a.push(e)
	close(q.notify)
	q.notify = make(chan struct{})
}

// Remove takes a job off the queue (a no-op if it is not queued).
func (q *Queue) Remove(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	c, ok := q.live[id]
	if !ok {
		return
	}
	delete(q.live, id)
	a := q.byAction[c.Action]
	a.stale++
	if a.stale > staleMin && a.stale > len(a.heap)-a.stale {
		q.rebuild(c.Action, a)
	}
}

// rebuild drops an action's stale entries. The caller holds q.mu.
func (q *Queue) rebuild(action string, a *actionQ) {
	keep := a.heap[:0]
	for _, e := range a.heap {
		if q.isLive(&e) {
			keep = append(keep, e)
		}
	}
	clear(a.heap[len(keep):])
	a.heap, a.stale = keep, 0
	if len(keep) == 0 {
		delete(q.byAction, action)
		return
	}
	for i := len(keep)/2 - 1; i >= 0; i-- {
		a.down(i)
	}
}

func (q *Queue) isLive(e *Entry) bool {
	c, ok := q.live[e.ID]
	return ok && c.gen == e.gen
}

// head drops a's stale heads and returns its oldest live entry, or nil.
// The caller holds q.mu.
func (q *Queue) head(a *actionQ) *Entry {
	for len(a.heap) > 0 && !q.isLive(&a.heap[0]) {
		a.pop()
		a.stale--
	}
	if len(a.heap) == 0 {
		return nil
	}
	return &a.heap[0]
}

// Pop takes the oldest queued job among actions. When there is none it
// returns false and a channel that is closed on the next Push.
func (q *Queue) Pop(actions []string) (Entry, bool, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var best *actionQ
	var bestAction string
	for _, name := range actions {
		a := q.byAction[name]
		if a == nil || a == best {
			continue
		}
		h := q.head(a)
		if h == nil {
			delete(q.byAction, name)
			continue
		}
		if best == nil || h.before(&best.heap[0]) {
			best, bestAction = a, name
		}
	}
	if best == nil {
		return Entry{}, false, q.notify
	}
	e := best.pop()
	delete(q.live, e.ID)
	if len(best.heap) == 0 {
		delete(q.byAction, bestAction)
	}
	e.gen = 0
	return e, true, q.notify
}

// Len returns the number of queued jobs.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.live)
}

// Unserved returns up to limit queued jobs for which due(action, created
// at) holds, leaving them queued. due must hold
// for every earlier creation time of an action when it holds for one (as
// "waited long enough" does): the walk of each action's heap stops at the
// first job that is not due, so it visits the due jobs and their children,
// not the whole queue.
func (q *Queue) Unserved(due func(action string, createdAt time.Time) bool, limit int) []Entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Entry
	for action, a := range q.byAction {
		if len(out) == limit {
			break
		}
		// Depth first from the root: an entry's children are no older.
		stack := []int{0}
		for len(stack) > 0 && len(out) < limit {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if i >= len(a.heap) || !due(action, a.heap[i].CreatedAt) {
				continue
			}
			if e := a.heap[i]; q.isLive(&e) {
				e.gen = 0
				out = append(out, e)
			}
			stack = append(stack, 2*i+2, 2*i+1)
		}
	}
	return out
}

// A binary min-heap of entries by age (container/heap would box every
// entry in an interface).

func (a *actionQ) push(e Entry) {
	a.heap = append(a.heap, e)
	i := len(a.heap) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !a.heap[i].before(&a.heap[p]) {
			break
		}
		a.heap[i], a.heap[p] = a.heap[p], a.heap[i]
		i = p
	}
}

func (a *actionQ) pop() Entry {
	h := a.heap
	e := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = Entry{}
	a.heap = h[:n]
	if n > 0 {
		a.down(0)
	}
	return e
}

func (a *actionQ) down(i int) {
	h := a.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].before(&h[l]) {
			m = r
		}
		if !h[m].before(&h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// QueueFullRetryAfterSeconds is the Retry-After of a job refused because
// the queue is full (Admit).
const QueueFullRetryAfterSeconds int64 = 5

// Admit returns nil when a new job may be queued, that is when fewer than
// max jobs are queued, else an EUnavailable error whose details carry
// retry_after_seconds (QueueFullRetryAfterSeconds).
func (q *Queue) Admit(max int) error {
	if n := q.Len(); n >= max {
		e := ledger.Errorf(ledger.EUnavailable, "%d jobs are waiting for a worker, the limit (queued_jobs_max); retry shortly", n)
		e.Details = map[string]any{"retry_after_seconds": QueueFullRetryAfterSeconds}
		return e
	}
	return nil
}
