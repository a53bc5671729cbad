package engine_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/sqlite"
)

// countingStore counts the account rows its batches save.
type countingStore struct {
	ledger.Store
	accounts atomic.Int64
}

func (s *countingStore) BeginBatch(ctx context.Context) (ledger.Batch, error) {
	b, err := s.Store.BeginBatch(ctx)
	if err != nil {
		return nil, err
	}
	return &countingBatch{Batch: b, s: s}, nil
}

type countingBatch struct {
	ledger.Batch
	s *countingStore
}

func (b *countingBatch) SaveAccounts(ctx context.Context, accounts []*ledger.Account) error {
	b.s.accounts.Add(int64(len(accounts)))
	return b.Batch.SaveAccounts(ctx, accounts)
}

// On a store with one writer, a charge rewrites buckets and holds but not
// the account row, whose columns did not change; a plan change does.
func TestChargeDoesNotRewriteAccountRow(t *testing.T) {
	ctx := context.Background()
	lite, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "creditd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	st := &countingStore{Store: lite}
	clock := ledger.NewTestClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	e, err := engine.New(ctx, engine.Options{Store: st, Clock: clock, Logger: discardLogger(), SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.PutAccount(ctx, engine.PutAccountParams{ID: "a", Plan: ledger.PlanPaid}); err != nil {
		t.Fatal(err)
	}
	if n := st.accounts.Load(); n != 1 {
		t.Fatalf("creating the account saved %d account rows, want 1", n)
	}
	if _, err := e.Grant(ctx, engine.GrantParams{AccountID: "a", GrantParams: ledger.GrantParams{Source: ledger.SourceAdmin, AmountCredits: 100}}); err != nil {
		t.Fatal(err)
	}
	v, err := e.Reserve(ctx, engine.ReserveParams{AccountID: "a", ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Capture(ctx, engine.HoldParams{HoldID: v.Value.ID, Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	if n := st.accounts.Load(); n != 1 {
		t.Errorf("a grant and a charge cycle saved %d account rows in all, want the 1 of its creation", n)
	}
	if _, err := e.PutAccount(ctx, engine.PutAccountParams{ID: "a", Plan: ledger.PlanFree}); err != nil {
		t.Fatal(err)
	}
	if n := st.accounts.Load(); n != 2 {
		t.Errorf("a plan change: %d account rows saved in all, want 2", n)
	}
	if b, err := e.Balance(ctx, "a"); err != nil || b.Plan != ledger.PlanFree {
		t.Errorf("balance after the plan change: %+v, %v", b, err)
	}
}
