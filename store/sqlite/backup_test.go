package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/sqlite"
)

// TestBackupSnapshot: a snapshot taken while batches keep committing holds
// every batch committed before it was asked for, opens as a store of its
// own without a journal, and its journal_state names its last batch.
func TestBackupSnapshot(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "creditd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2025, 3, 9, 10, 0, 0, 0, time.UTC)
	put := func(i int) {
		t.Helper()
		b, err := s.BeginBatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Rollback()
		a := &ledger.Account{ID: fmt.Sprintf("acct-%04d", i), Plan: ledger.PlanFree, Timezone: "UTC", CreatedAt: t0, UpdatedAt: t0, Version: 1}
		if err := b.SaveAccounts(ctx, []*ledger.Account{a}); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		put(i)
	}
	// Batches keep coming while the snapshot is made.
	done := make(chan struct{})
	stopped := make(chan int)
	go func() {
		n := 100
		for {
			select {
			case <-done:
				stopped <- n
				return
			default:
			}
			put(n)
			n++
		}
	}()
	dst := filepath.Join(dir, "snap.db")
	seq, err := s.Snapshot(ctx, dst)
	close(done)
	total := <-stopped
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if seq < 100 || seq > int64(total) {
		t.Fatalf("snapshot seq %d, want 100..%d", seq, total)
	}
	if _, err := s.Snapshot(ctx, dst); err == nil {
		t.Fatal("a second snapshot over an existing file succeeded")
	}
	if got, assets, err := sqlite.SnapshotInfo(ctx, dst); err != nil || got != seq || len(assets) != 0 {
		t.Fatalf("SnapshotInfo = %d, %v, %v; want %d, no assets", got, assets, err, seq)
	}

	// The copy, alone in a directory, opens as a store holding batches
	// 1..seq (one account each) and nothing after them.
	restored := filepath.Join(t.TempDir(), "creditd.db")
	if err := os.Rename(dst, restored); err != nil {
		t.Fatal(err)
	}
	r, err := sqlite.OpenReadOnly(ctx, restored)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := r.ListAccountIDs(ctx, ledger.ListAccountIDsParams{Limit: 100000})
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(ids)) != seq {
		t.Fatalf("snapshot holds %d accounts, want %d (one per batch up to its seq)", len(ids), seq)
	}
	for i, id := range ids {
		if want := fmt.Sprintf("acct-%04d", i); id != want {
			t.Fatalf("account %d is %s, want %s", i, id, want)
		}
	}
	w, err := sqlite.Open(ctx, restored)
	if err != nil {
		t.Fatalf("Open of the snapshot: %v", err)
	}
	defer w.Close()
	b, err := w.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SaveAccounts(ctx, []*ledger.Account{{ID: "after", Plan: ledger.PlanFree, Timezone: "UTC", CreatedAt: t0, UpdatedAt: t0, Version: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatalf("a batch on the restored store: %v", err)
	}
}
