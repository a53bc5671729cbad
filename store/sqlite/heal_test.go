package sqlite

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/creditd/creditd/ledger"
)

// openFaulty opens a store whose journal files fail on demand.
func openFaulty(t *testing.T) (*Store, *faultFS, string) {
	t.Helper()
	ffs := &faultFS{}
	path := filepath.Join(t.TempDir(), "creditd.db")
	s, err := open(context.Background(), path, ffs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, ffs, path
}

// After a failed journal write the store refuses batches as unavailable,
// and the batch that failed is not visible.
func TestBeginBatchAfterJournalFailure(t *testing.T) {
	ctx := context.Background()
	s, ffs, _ := openFaulty(t)
	commit(t, s, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)}) })
	ffs.set(nil, syscall.ENOSPC, nil)
	b, err := s.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SaveAccounts(ctx, []*ledger.Account{account("A", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); ledger.ErrorCode(err) != ledger.EUnavailable {
		t.Fatalf("commit with a failing fdatasync: %v, want unavailable", err)
	}
	if _, err = s.BeginBatch(ctx); ledger.ErrorCode(err) != ledger.EUnavailable {
		t.Fatalf("BeginBatch after a journal failure: %v, want unavailable", err)
	}
	if a, err := s.GetAccount(ctx, "A"); err != nil || a.Version != 1 {
		t.Errorf("account after the failed commit: %+v, %v; want version 1", a, err)
	}
}
