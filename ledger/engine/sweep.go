package engine

import (
	"container/heap"
	"context"
	"time"

	"github.com/creditd/creditd/ledger"
)

// expiryHeap orders pending holds by expiry. Entries may be stale (the hold
// was extended or resolved); popping a stale entry only costs a touch, which
// is a no-op when nothing is due.
type expiryHeap []ledger.HoldExpiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].ExpiresAt.Before(h[j].ExpiresAt) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(ledger.HoldExpiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
func (h *expiryHeap) push(x ledger.HoldExpiry) { heap.Push(h, x) }

// expiriesCompactMin is the heap size below which stale entries are left
// for the sweeper to pop.
const expiriesCompactMin = 4096

// compactExpiries drops the entries of holds this node saw resolved (the
// ones SweepHolds would skip), once the heap has doubled since the last
// compaction. A hold captured at once leaves its entry behind until its
// time-to-live passes, so without this the heap would grow with throughput
// × hold TTL (millions of entries under load); with it, the heap stays
// within twice the pending holds (plus the minimum), at O(1) amortized per
// push. The caller holds holdMu.
func (e *Engine) compactExpiries() {
	if len(e.expiries) < e.expiriesCompactAt {
		return
	}
	live := make(expiryHeap, 0, 2*len(e.holdAcct)+expiriesCompactMin)
	for _, x := range e.expiries {
		if _, pending := e.holdAcct[x.HoldID]; pending || x.Scanned {
			live = append(live, x)
		}
	}
	heap.Init(&live)
	e.expiries = live
	e.expiriesCompactAt = max(2*len(live), expiriesCompactMin)
}

// sweepBatchMax bounds the accounts touched per sweep round.
const sweepBatchMax = 1024

// sweep touches accounts whose holds have expired, deletes the staged
// outputs of ended jobs, and deletes idempotency keys past their retention
// and revocations of expired credentials. It runs on every node; touching is idempotent.
func (e *Engine) sweep(interval time.Duration) {
	defer e.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	var moved <-chan struct{}
	if tc, ok := e.clock.(*ledger.TestClock); ok {
		moved = tc.Subscribe()
	}
	var lastKeySweep, lastOutputSweep time.Time
	// Close ends a sweep that waits on the store (a range read on SQLite
	// waits for the materializer, which cannot write on a full disk).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-e.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-e.quit:
			return
		case <-t.C:
		case <-moved:
		}
		now := e.clock.Now()
		e.coord.scan(ctx, e, now)
		e.SweepHolds(ctx, now)
		e.SweepDeadlines(ctx, now)
		e.SweepUnservedJobs(ctx, now)
		if now.Sub(lastOutputSweep) >= outputSweepInterval {
			lastOutputSweep = now
			if _, err := e.SweepStagedOutputs(ctx); err != nil {
				e.log.Warn("staged output sweep failed", "err", err)
			}
		}
		if now.Sub(lastKeySweep) >= time.Minute {
			lastKeySweep = now
			e.SweepIdempotencyKeys(ctx, now)
			e.SweepRevokedCredentials(ctx, now)
		}
	}
}

// SweepIdempotencyKeys deletes idempotency keys older than their retention
// (Limits.IdempotencyKeyTTLSeconds, at least 24 h) at now.
func (e *Engine) SweepIdempotencyKeys(ctx context.Context, now time.Time) {
	ttl := time.Duration(e.cfg.Limits.IdempotencyKeyTTLSeconds) * time.Second
	if n, err := e.store.DeleteIdempotencyBefore(ctx, now.Add(-ttl)); err != nil {
		e.log.Warn("idempotency key sweep failed", "err", err)
	} else if n > 0 {
		e.log.Info("idempotency keys expired", "count", n)
	}
}

// SweepHolds expires every pending hold whose time-to-live has passed at
// now, and waits until that is committed. Sweeps run one at a time: the
// background sweeper may have taken the due entries off the heap an
// instant before, and returning before its expiries are committed would
// break that promise (the test clock's endpoint relies on it).
func (e *Engine) SweepHolds(ctx context.Context, now time.Time) {
	e.sweepMu.Lock()
	defer e.sweepMu.Unlock()
	for {
		accounts := map[string]bool{}
		e.holdMu.Lock()
		for len(e.expiries) > 0 && !e.expiries[0].ExpiresAt.After(now) && len(accounts) < sweepBatchMax {
			x := heap.Pop(&e.expiries).(ledger.HoldExpiry)
			// Entries for holds this node saw resolved are stale: skip them.
			if _, pending := e.holdAcct[x.HoldID]; pending || x.Scanned {
				accounts[x.AccountID] = true
			}
		}
		more := len(e.expiries) > 0 && !e.expiries[0].ExpiresAt.After(now)
		e.holdMu.Unlock()
		if len(accounts) == 0 {
			return
		}
		e.touchAccounts(ctx, accounts, "hold sweep failed")
		if !more {
			return
		}
	}
}

// scanShared finds work that other nodes (perhaps dead ones) left: holds
// and leases that are due, and queued jobs. Every node scans; the touch
// that follows runs under the account's row lock and is a no-op for a
// node that comes second, so nothing is done twice and no node is special.
// The scans read only the partial indexes of pending holds and active jobs.
func (e *Engine) scanShared(ctx context.Context, now time.Time) {
	if now.Sub(e.lastDeadlineScan) >= deadlineScanInterval {
		e.lastDeadlineScan = now
		e.scanDeadlines(ctx, now)
	}
	holds, err := e.store.ListPendingHolds(ctx)
	if err != nil {
		e.log.Warn("scan pending holds", "err", err)
		return
	}
	jobs, err := e.store.ListActiveJobs(ctx)
	if err != nil {
		e.log.Warn("scan active jobs", "err", err)
		return
	}
	e.holdMu.Lock()
	defer e.holdMu.Unlock()
	for _, h := range holds {
		if !h.ExpiresAt.After(now) {
			h.Scanned = true
			e.expiries.push(h)
		}
	}
	for i := range jobs {
		j := &jobs[i]
		switch {
		case j.Status == ledger.JobQueued:
			e.queue.push(j)
		case j.Status == ledger.JobRunning && !j.LeaseExpiresAt.After(now):
			e.expiries.push(ledger.HoldExpiry{HoldID: j.HoldID, AccountID: j.AccountID, ExpiresAt: j.LeaseExpiresAt, Scanned: true})
		}
	}
}

// touchAccounts runs an empty operation on each account, concurrently, so
// that the committer applies the time rules that fell due on it, and
// waits for all; a failure is logged with msg.
func (e *Engine) touchAccounts(ctx context.Context, accounts map[string]bool, msg string) {
	done := make(chan struct{}, len(accounts))
	for id := range accounts {
		go func() {
			defer func() { done <- struct{}{} }()
			if _, err := e.submit(ctx, &op{kind: "sweep", account: id, apply: func(*batch, *ledger.State) (any, error) { return nil, nil }}); err != nil {
				e.log.Warn(msg, "account", id, "err", err)
			}
		}()
	}
	for range accounts {
		<-done
	}
	e.m.sweptAccounts.Add(float64(len(accounts)))
}
