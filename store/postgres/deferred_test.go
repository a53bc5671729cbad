package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/creditd/creditd/ledger"
)

// TestDeferredWrites: writes go out with the batch's next read or with
// COMMIT; the batch reads them back, ids are written back by Commit, and
// a deferred write that fails fails the call that sends it and Commit,
// names itself, and leaves nothing written.
func TestDeferredWrites(t *testing.T) {
	ctx := context.Background()
	s, _ := openNew(t)
	commit(t, s, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)}) })

	// A read sees the deferred writes before it; ids are set by Commit.
	b, err := s.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := &ledger.Hold{ID: "h1", AccountID: "A", Status: ledger.HoldPending, CreatedAt: t0}
	entries := []ledger.Entry{{AccountID: "A", Type: ledger.EntryHold, HoldID: "h1", CreatedAt: t0},
		{AccountID: "A", Type: ledger.EntryHold, HoldID: "h1", CreatedAt: t0}}
	if err := b.SaveHolds(ctx, []*ledger.Hold{h}); err != nil {
		t.Fatal(err)
	}
	if err := b.InsertEntries(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetHold(ctx, "h1"); err != nil || got.Status != ledger.HoldPending {
		t.Fatalf("GetHold in the batch after a deferred SaveHolds: %+v, %v", got, err)
	}
	if entries[0].ID <= 0 || entries[1].ID <= entries[0].ID {
		t.Errorf("entry ids after the round trip: %d, %d", entries[0].ID, entries[1].ID)
	}
	more := []ledger.Entry{{AccountID: "A", Type: ledger.EntryCapture, HoldID: "h1", CreatedAt: t0}}
	if err := b.InsertEntries(ctx, more); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if more[0].ID <= entries[1].ID {
		t.Errorf("entry id after Commit: %d, want > %d", more[0].ID, entries[1].ID)
	}
	if got, err := s.ListEntries(ctx, ledger.ListEntriesParams{AccountID: "A"}); err != nil || len(got) != 3 || got[0].ID != more[0].ID {
		t.Errorf("committed entries: %+v, %v", got, err)
	}

	// A failing deferred write (text with a NUL byte, which PostgreSQL
	// refuses) fails the read that sends it, and Commit, naming itself.
	for _, read := range []bool{true, false} {
		b, err := s.BeginBatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.LockAccounts(ctx, []string{"A"}); err != nil {
			t.Fatal(err)
		}
		if err := b.SaveAccounts(ctx, []*ledger.Account{account("A", 9)}); err != nil {
			t.Fatal(err)
		}
		bad := &ledger.Hold{ID: "h2", AccountID: "A", Action: "a\x00b", Status: ledger.HoldPending, CreatedAt: t0}
		if err := b.SaveHolds(ctx, []*ledger.Hold{bad}); err != nil {
			t.Fatal(err)
		}
		if err := b.InsertEntries(ctx, []ledger.Entry{{AccountID: "A", Type: ledger.EntryHold, CreatedAt: t0}}); err != nil {
			t.Fatal(err)
		}
		if read {
			if _, err := b.GetHold(ctx, "h1"); err == nil || !strings.Contains(err.Error(), "save holds") {
				t.Errorf("read after a failing deferred write: %v, want the write's failure", err)
			}
		}
		err = b.Commit()
		if err == nil || !strings.Contains(err.Error(), "save holds") {
			t.Errorf("Commit after a failing deferred write (read first: %v): %v, want the write's failure", read, err)
		}
		if err := b.Rollback(); err != nil {
			t.Errorf("Rollback after a failed Commit: %v", err)
		}
		if a, err := s.GetAccount(ctx, "A"); err != nil || a.Version != 1 {
			t.Errorf("account after a failed batch: %+v, %v; want version 1", a, err)
		}
		if got, err := s.ListEntries(ctx, ledger.ListEntriesParams{AccountID: "A"}); err != nil || len(got) != 3 {
			t.Errorf("entries after a failed batch: %d, %v; want 3", len(got), err)
		}
	}
	if st := s.pool.Stat(); st.AcquiredConns() != 0 {
		t.Errorf("%d connections still acquired", st.AcquiredConns())
	}
	// The pool's connections still work.
	commit(t, s, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("A", 2)}) })
	if a, err := s.GetAccount(ctx, "A"); err != nil || a.Version != 2 {
		t.Errorf("account after a good batch: %+v, %v", a, err)
	}
}
