package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/creditd/creditd/ledger"
)

// Worker liveness. A worker serves an action while it polls for it (a
// lease long-poll listing it) or heartbeats a job of it. Each node notes
// these in memory and writes each action's latest time to the store
// (ledger.WorkerPoll) at most every workerPollWriteEvery, from its
// sweeper, so that every node sharing the store knows of every worker. An
// action has a live worker when one was seen within the lease period
// (Limits.JobLeaseSeconds); a queued job whose action no worker was seen
// for during Limits.JobNoWorkerSecondsMax, and which has waited that long,
// ends interrupted (SweepUnservedJobs).

// workerPollWriteEvery bounds how often a node writes one action's poll
// time to the store (one small upsert per action).
const workerPollWriteEvery = 5 * time.Second

// workerPollReadEvery is how long a node reuses its last read of the
// stored poll times.
const workerPollReadEvery = 2 * time.Second

type workerPolls struct {
	mu      sync.Mutex
	active  map[string]int       // action → lease long-polls in progress on this node
	seen    map[string]time.Time // action → last poll or heartbeat on this node
	written map[string]time.Time // action → last time written to the store
	stored  map[string]time.Time // action → last poll on any node, as last read
	readAt  time.Time            // when stored was read; zero: never
}

func newWorkerPolls() *workerPolls {
	return &workerPolls{active: map[string]int{}, seen: map[string]time.Time{}, written: map[string]time.Time{}, stored: map[string]time.Time{}}
}

// note records that a worker asked for work of actions at now; delta
// moves their count of long-polls in progress.
func (w *workerPolls) note(actions []string, now time.Time, delta int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range actions {
		if now.After(w.seen[a]) {
			w.seen[a] = now
		}
		if w.active[a] += delta; w.active[a] <= 0 {
			delete(w.active, a)
		}
	}
}

// writeWorkerPolls writes to the store the actions seen on this node since
// they were last written (a long-poll in progress counts as seen now), at
// most every workerPollWriteEvery per action.
func (e *Engine) writeWorkerPolls(ctx context.Context, now time.Time) {
	w := e.polls
	w.mu.Lock()
	for a := range w.active {
		w.seen[a] = now
	}
	var due []ledger.WorkerPoll
	for a, at := range w.seen {
		if last, ok := w.written[a]; !ok || at.Sub(last) >= workerPollWriteEvery {
			due = append(due, ledger.WorkerPoll{Action: a, At: at})
		}
	}
	w.mu.Unlock()
	if len(due) == 0 {
		return
	}
	if err := e.store.RecordWorkerPolls(ctx, due); err != nil {
		e.log.Warn("record worker polls", "err", err)
		return
	}
	w.mu.Lock()
	for _, p := range due {
		w.written[p.Action] = p.At
	}
	w.mu.Unlock()
}

// lastPolls returns, per action, when a worker last asked for work of it
// on any node (absent: never), and false when the store could not be
// read (then only this node's are known).
func (e *Engine) lastPolls(ctx context.Context, now time.Time) (map[string]time.Time, bool) {
	w := e.polls
	w.mu.Lock()
	fresh := !w.readAt.IsZero() && now.Sub(w.readAt) < workerPollReadEvery && !now.Before(w.readAt)
	w.mu.Unlock()
	ok := true
	if !fresh {
		ps, err := e.store.ListWorkerPolls(ctx)
		if err != nil {
			e.log.Warn("list worker polls", "err", err)
			ok = false
		} else {
			stored := make(map[string]time.Time, len(ps))
			for _, p := range ps {
				stored[p.Action] = p.At
			}
			w.mu.Lock()
			w.stored, w.readAt = stored, now
			w.mu.Unlock()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]time.Time, len(w.stored)+len(w.seen))
	for a, at := range w.stored {
		out[a] = at
	}
	for a, at := range w.seen {
		if at.After(out[a]) {
			out[a] = at
		}
	}
	for a := range w.active {
		out[a] = now
	}
	return out, ok
}

// LiveActions reports, for every priced action, whether a worker serves
// it now: one asked for work of it (on any node) within the lease period.
func (e *Engine) LiveActions(ctx context.Context) map[string]bool {
	now := e.clock.Now()
	polls, _ := e.lastPolls(ctx, now)
	lease := time.Duration(e.cfg.Limits.JobLeaseSeconds) * time.Second
	out := make(map[string]bool, len(e.cfg.Prices))
	for _, p := range e.cfg.Prices {
		at, ok := polls[p.Action]
		out[p.Action] = ok && now.Sub(at) < lease
	}
	return out
}

// SweepUnservedJobs interrupts the queued jobs that have waited at least
// Limits.JobNoWorkerSecondsMax for an action no worker asked for within
// that long (ledger.State.InterruptUnservedJob), and waits until that is
// committed. It first writes this node's worker polls to the store. When
// the stored polls cannot be read it interrupts nothing.
func (e *Engine) SweepUnservedJobs(ctx context.Context, now time.Time) {
	e.writeWorkerPolls(ctx, now)
	polls, ok := e.lastPolls(ctx, now)
	if !ok {
		return
	}
	wait := time.Duration(e.cfg.Limits.JobNoWorkerSecondsMax) * time.Second
	due := e.queue.unserved(func(action string, createdAt time.Time) bool {
		at, seen := polls[action]
		return now.Sub(createdAt) >= wait && (!seen || now.Sub(at) >= wait)
	}, sweepBatchMax)
	if len(due) == 0 {
		return
	}
	var wg sync.WaitGroup
	var n atomic.Int64
	for _, c := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := e.submit(ctx, &op{kind: "no_worker", account: c.account, apply: func(b *batch, st *ledger.State) (any, error) {
				if st == nil {
					return false, nil
				}
				return st.InterruptUnservedJob(e.cfg, b.now, c.id, b.ch) != nil, nil
			}})
			if err != nil {
				e.log.Warn("no-worker sweep failed", "job", c.id, "err", err)
			} else if v.(bool) {
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if n.Load() > 0 {
		e.log.Info("jobs interrupted: no worker for their action", "count", n.Load())
	}
}
