package engine

import (
	"container/heap"
	"context"
	"time"

	"github.com/creditd/creditd/ledger"
)

// Deadlines: the time-driven changes of buckets (a purchased, promo or
// admin bucket's credits.expiring notice, then its expiry) are committed
// when due, even on an account nobody touches. Each node keeps the next
// deadline of the buckets its batches wrote (and, at start, of every
// bucket in the store) in a heap; on a shared store it also scans for the
// buckets other nodes wrote (scanDeadlines). SweepDeadlines touches the
// accounts whose deadlines are due, in a batch like any other: the touch
// expires what is due, the batch notices what is due, and the events carry
// the due times.

// deadlineScanInterval is how often (on the engine's clock) a node on a
// shared store reads the deadlines of the buckets other nodes wrote.
const deadlineScanInterval = 10 * time.Second

// noteDeadline records a bucket's next deadline. The caller holds holdMu.
func (e *Engine) noteDeadline(g *ledger.Grant, scanned bool) {
	at := ledger.NextNotice(e.cfg, g)
	if at.IsZero() {
		delete(e.deadlineAt, g.ID)
		return
	}
	if old, ok := e.deadlineAt[g.ID]; ok && old.Equal(at) {
		return
	}
	e.deadlineAt[g.ID] = at
	heap.Push(&e.deadlines, ledger.HoldExpiry{HoldID: g.ID, AccountID: g.AccountID, ExpiresAt: at, Scanned: scanned})
}

// loadDeadlines reads every bucket's deadline at start.
func (e *Engine) loadDeadlines(ctx context.Context) error {
	gs, err := e.store.ListGrantDeadlines(ctx, time.Time{})
	if err != nil {
		return err
	}
	e.holdMu.Lock()
	defer e.holdMu.Unlock()
	for i := range gs {
		e.noteDeadline(&gs[i], false)
	}
	return nil
}

// scanDeadlines reads the deadlines due by now of buckets any node wrote.
func (e *Engine) scanDeadlines(ctx context.Context, now time.Time) {
	gs, err := e.store.ListGrantDeadlines(ctx, now.Add(e.cfg.ExpiringNotice()))
	if err != nil {
		e.log.Warn("scan grant deadlines", "err", err)
		return
	}
	e.holdMu.Lock()
	defer e.holdMu.Unlock()
	for i := range gs {
		if at := ledger.NextNotice(e.cfg, &gs[i]); !at.IsZero() && !at.After(now) {
			e.noteDeadline(&gs[i], true)
		}
	}
}

// SweepDeadlines commits the bucket expiries and expiry notices due at
// now, and waits until that is committed.
func (e *Engine) SweepDeadlines(ctx context.Context, now time.Time) {
	e.sweepMu.Lock()
	defer e.sweepMu.Unlock()
	for {
		accounts := map[string]bool{}
		e.holdMu.Lock()
		for len(e.deadlines) > 0 && !e.deadlines[0].ExpiresAt.After(now) && len(accounts) < sweepBatchMax {
			x := heap.Pop(&e.deadlines).(ledger.HoldExpiry)
			if at, ok := e.deadlineAt[x.HoldID]; ok && at.Equal(x.ExpiresAt) {
				delete(e.deadlineAt, x.HoldID) // the batch notes the next one
				accounts[x.AccountID] = true
			}
		}
		more := len(e.deadlines) > 0 && !e.deadlines[0].ExpiresAt.After(now)
		e.holdMu.Unlock()
		if len(accounts) == 0 {
			return
		}
		e.touchAccounts(ctx, accounts, "deadline sweep failed")
		if !more {
			return
		}
	}
}
