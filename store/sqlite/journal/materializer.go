package journal

import (
	"context"
	"fmt"
	"time"

	"github.com/creditd/creditd/ledger"
)

// run is the materializer loop: it waits for a window's worth of batches
// (or a reader, a waiting batch, a backlog, Close), writes a step of them
// into the tables, and records the outcome.
func (j *Journal) run() {
	defer close(j.stopped)
	var retry <-chan time.Time
	lastRun := time.Now()
	backlog := false // the last transaction left batches that were due
	for {
		ready, done := j.waitWindow(lastRun, backlog, retry)
		if done {
			return
		}
		if !ready {
			continue
		}
		retry = nil
		sets, before, more := j.step()
		backlog = more
		lastRun = time.Now()
		err := j.materialize(context.Background(), sets)
		took := time.Since(lastRun)
		if !j.finish(sets, before, took, err) {
			return
		}
		if err != nil {
			retry = time.After(materializeRetry)
		}
	}
}

// waitWindow waits until a transaction is due. ready is false when the
// loop should look again (something woke it); done when Close found
// nothing left to write.
func (j *Journal) waitWindow(lastRun time.Time, backlog bool, retry <-chan time.Time) (ready, done bool) {
	j.mu.Lock()
	n := len(j.pending)
	closing, urgent, rows, start, delay := j.closing, j.urgent, j.pendingRows, j.startRows(), j.tuning.Delay
	if n == 0 {
		// Nobody waits for an empty journal: a waiter that flagged urgent
		// after the last transaction began (waitApplied, through a
		// backlog) has what it waited for, and the next batch waits for
		// its window.
		j.urgent = false
	}
	j.mu.Unlock()
	if n == 0 {
		if closing {
			return false, true
		}
		<-j.kick
		return false, false
	}
	if wait := delay - time.Since(lastRun); !closing && !urgent && !backlog && rows < start && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-j.kick:
			t.Stop()
			return false, false
		}
	}
	if retry != nil && !closing {
		select {
		case <-retry:
		case <-j.kick:
			return false, false
		}
	}
	return true, false
}

// step picks the batches of the next transaction: about ChunkRows rows at
// most, so a backlog goes in steps, each freeing its part of the overlay
// for waiting batches, and a transaction's dirty pages stay bounded. A step
// ends only where no batch in it lacks rows whose newest versions lie
// beyond it (need, from compact): the tables then hold exactly the state
// after the step's last batch, as read-only stores and a crashed database
// expect. more says batches were left for the next step; before is the
// pending rows at the start.
func (j *Journal) step() (sets []*ChangeSet, before int, more bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.urgent = false
	sets, before = j.pending, j.pendingRows
	chunk := 0
	need := int64(0)
	for n, c := range sets {
		if n > 0 && chunk >= j.tuning.ChunkRows && need < c.Seq {
			sets, more = sets[:n], true
			break
		}
		chunk += c.Rows()
		need = max(need, c.need)
	}
	// These sets are read without mu from here on: compact leaves them
	// alone.
	j.inflight = sets[len(sets)-1].Seq
	return sets, before, more
}

// finish records a transaction's outcome; false means the loop ends (a
// failure while closing: the batches stay journaled for the next Open).
func (j *Journal) finish(sets []*ChangeSet, before int, took time.Duration, err error) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	defer func() {
		close(j.advanced)
		j.advanced = make(chan struct{})
	}()
	j.inflight = 0
	if err != nil {
		j.err = err
		j.stats.Failures++
		return !j.closing
	}
	j.err = nil
	j.stats.Transactions++
	j.stats.Seconds += took.Seconds()
	last := sets[len(sets)-1].Seq
	j.applied = last
	// Keep room for twice what arrived meanwhile (the rows pending beyond
	// those at the start); forget a burst gradually.
	j.headroom = max(2*(j.pendingRows-before), j.headroom*3/4)
	j.pending = j.pending[len(sets):]
	for _, c := range sets {
		j.pendingRows -= c.Rows()
		j.stats.Rows += int64(c.journaled)
	}
	j.ov.prune(last)
	return true
}

// startRows is the pending rows at which the materializer starts a
// transaction without waiting for the window's delay: materializeRowsMin,
// or lower so that the rows arriving while it writes fit below
// PendingRowsMax. Called with mu held.
func (j *Journal) startRows() int {
	return max(0, min(materializeRowsMin, j.tuning.PendingRowsMax-j.headroom))
}

func (j *Journal) wake() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// waitApplied waits until batches up to seq are in the tables.
func (j *Journal) waitApplied(ctx context.Context, seq int64) error {
	for {
		j.mu.Lock()
		if j.applied >= seq {
			j.mu.Unlock()
			return nil
		}
		if failing := j.err; failing != nil {
			// The tables cannot take what the journal holds now (a full
			// disk, say): answer at once rather than wait for ever; the
			// caller retries.
			j.mu.Unlock()
			return fmt.Errorf("%w: %w", ledger.Errorf(ledger.EUnavailable,
				"the database cannot be read now; retry shortly"), failing)
		}
		ch := j.advanced
		j.urgent = true
		j.mu.Unlock()
		j.wake()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("journal: wait for the tables: %w", ctx.Err())
		}
	}
}

// Sync waits until everything journaled so far is in the tables.
func (j *Journal) Sync(ctx context.Context) error {
	j.mu.Lock()
	seq := j.committed
	j.mu.Unlock()
	return j.waitApplied(ctx, seq)
}

// SyncAccount waits until the accounts' journaled changes are in the
// tables.
func (j *Journal) SyncAccount(ctx context.Context, ids ...string) error {
	var seq int64
	j.mu.Lock()
	for _, id := range ids {
		seq = max(seq, j.ov.touched[id])
	}
	j.mu.Unlock()
	return j.waitApplied(ctx, seq)
}
