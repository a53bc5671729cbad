package bench

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditd/creditd/internal/promtext"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/sqlite"
)

// engineTarget drives an in-process engine through its Go API.
type engineTarget struct {
	e    *engine.Engine
	reg  *prometheus.Registry
	ids  []string
	unit int64
	// journal reads the SQLite journal's statistics (nil on PostgreSQL).
	journal func() sqlite.JournalStats
}

func newEngine(ctx context.Context, cfg *ledger.Config, store ledger.Store, log *slog.Logger) (*engine.Engine, *prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	e, err := engine.New(ctx, engine.Options{Config: cfg, Store: store, Logger: log, Metrics: engine.NewMetrics(reg)})
	if err != nil {
		return nil, nil, err
	}
	return e, reg, nil
}

func (t *engineTarget) worker(int) (cycleFunc, func(), error) {
	ctx := context.Background()
	return func(acct int) (outcome, error) {
		v, err := t.e.Reserve(ctx, engine.ReserveParams{AccountID: t.ids[acct],
			ReserveParams: ledger.ReserveParams{Action: cycleAction, Quantity: 1}})
		if err != nil {
			return cycleFailed, fmt.Errorf("reserve: %w", err)
		}
		h := v.Value
		v, err = t.e.Capture(ctx, engine.HoldParams{HoldID: h.ID, Quantity: 1})
		if err != nil {
			return cycleOrphan, fmt.Errorf("capture: %w", err)
		}
		if c := v.Value; c.Status != ledger.HoldCaptured || c.CapturedCredits != t.unit {
			// Something was committed, but not what we asked for: the
			// balance check will find it.
			return cycleDone, fmt.Errorf("capture of %s answered status %s, %d credits", h.ID, c.Status, c.CapturedCredits)
		}
		return cycleDone, nil
	}, nil, nil
}

func (t *engineTarget) counters() (counters, error) {
	mfs, err := promtext.Gather(t.reg)
	if err != nil {
		return counters{}, err
	}
	c := batchOps(mfs)
	if t.journal != nil {
		c.fullWaits, c.waitsOK = float64(t.journal().FullWaits), true
	}
	return c, nil
}

// batchOps reads the creditd_engine_batch_ops histogram: its count is the
// number of committed batches, its sum the operations in them.
func batchOps(mfs promtext.Families) (c counters) {
	c.commits, c.ops, c.ok = mfs.Histogram(batchOpsMetric)
	return c
}

const (
	batchOpsMetric  = "creditd_engine_batch_ops"
	fullWaitsMetric = "creditd_sqlite_journal_full_waits_total"
)

// setupEngineAccounts creates the accounts (paid plan: no daily credits)
// and grants each grantCredits admin credits, through the engine from many
// goroutines so the group commit batches them.
func setupEngineAccounts(ctx context.Context, e *engine.Engine, ids []string, workers int) error {
	return parallel(len(ids), workers, func(i int) error {
		if _, err := e.PutAccount(ctx, engine.PutAccountParams{ID: ids[i], Plan: ledger.PlanPaid}); err != nil {
			return fmt.Errorf("put account %s: %w", ids[i], err)
		}
		if _, err := e.Grant(ctx, engine.GrantParams{AccountID: ids[i],
			GrantParams: ledger.GrantParams{Source: ledger.SourceAdmin, AmountCredits: grantCredits}}); err != nil {
			return fmt.Errorf("grant %s: %w", ids[i], err)
		}
		return nil
	})
}

// checkStore checks what a creditd setting left in the store: the charged
// credits of the setting's accounts are exactly unit × completed cycles
// (within what lost answers leave open), held credits match the holds left
// pending, no bucket part is negative, and ledger.VerifyStore finds no
// problem in the whole store.
func checkStore(ctx context.Context, cfg *ledger.Config, store ledger.Store, ids []string, unit int64, tl tally) (*Check, error) {
	c := &Check{Problems: []string{}}
	type sums struct{ charged, held, remaining, expired int64 }
	var mu sync.Mutex
	var tot sums
	var negatives []string
	err := parallel(len(ids), 8, func(i int) error {
		h, err := store.LoadHistory(ctx, ids[i])
		if err != nil {
			return fmt.Errorf("load history of %s: %w", ids[i], err)
		}
		var s sums
		var neg []string
		for _, g := range h.Grants {
			s.charged += g.ChargedCredits
			s.held += g.HeldCredits
			s.remaining += g.RemainingCredits
			s.expired += g.ExpiredCredits
			if g.RemainingCredits < 0 || g.HeldCredits < 0 || g.ChargedCredits < 0 || g.ExpiredCredits < 0 {
				neg = append(neg, fmt.Sprintf("%s: bucket %s has a negative part (remaining %d, held %d, charged %d, expired %d)",
					ids[i], g.ID, g.RemainingCredits, g.HeldCredits, g.ChargedCredits, g.ExpiredCredits))
			}
		}
		if s.remaining < 0 {
			neg = append(neg, fmt.Sprintf("%s: available %d", ids[i], s.remaining))
		}
		mu.Lock()
		tot.charged += s.charged
		tot.held += s.held
		tot.remaining += s.remaining
		tot.expired += s.expired
		negatives = append(negatives, neg...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.Accounts = len(ids)
	c.ChargedCredits = tot.charged
	c.HeldCredits = tot.held
	c.ExpectedCharged = unit * tl.cycles
	c.Problems = append(c.Problems, negatives...)
	c.balanceProblems(unit, tl, tot.charged, tot.held)
	if tot.expired != 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d credits expired, want 0 (no grant of the bench expires)", tot.expired))
	}
	rep, err := ledger.VerifyStore(ctx, cfg, store)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	c.VerifiedAccounts, c.VerifiedEntries = rep.Accounts, rep.Entries
	for _, p := range rep.Problems {
		c.Problems = append(c.Problems, "verify: "+p.String())
	}
	c.OK = len(c.Problems) == 0
	return c, nil
}

// balanceProblems compares charged and held credits with what the cycles'
// outcomes allow: exactly unit × cycles charged, unit × orphans held,
// and lost answers may fall either way.
func (c *Check) balanceProblems(unit int64, tl tally, charged, held int64) {
	minCharged, maxCharged := unit*tl.cycles, unit*(tl.cycles+tl.ambCapture)
	if charged < minCharged || charged > maxCharged {
		if minCharged == maxCharged {
			c.Problems = append(c.Problems, fmt.Sprintf("charged %d credits, want %d (%d × %d completed cycles)", charged, minCharged, unit, tl.cycles))
		} else {
			c.Problems = append(c.Problems, fmt.Sprintf("charged %d credits, want %d…%d (%d cycles, %d captures with lost answers)", charged, minCharged, maxCharged, tl.cycles, tl.ambCapture))
		}
	}
	base := unit * (tl.cycles + tl.orphans + tl.ambCapture)
	if sum := charged + held; sum < base || sum > base+unit*tl.ambReserve {
		c.Problems = append(c.Problems, fmt.Sprintf("charged+held %d credits, want %d…%d (%d cycles, %d holds left pending, %d lost answers)",
			sum, base, base+unit*tl.ambReserve, tl.cycles, tl.orphans, tl.ambReserve+tl.ambCapture))
	}
}
