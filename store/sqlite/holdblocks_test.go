package sqlite

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

func newHold(acct string, at time.Time) *ledger.Hold {
	return newHoldID(ledger.NewHoldID(acct), acct, at)
}

func newHoldID(id, acct string, at time.Time) *ledger.Hold {
	return &ledger.Hold{ID: id, AccountID: acct, Action: "generate", Category: ledger.CategoryImage,
		Quantity: 1, UnitPriceCredits: 5, AmountCredits: 5, Status: ledger.HoldPending,
		Portions: []ledger.Portion{{GrantID: "g1", Credits: 5}}, CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
}

func settle(h *ledger.Hold, status ledger.HoldStatus, at time.Time) *ledger.Hold {
	c := *h
	c.Status, c.ResolvedAt = status, at
	if status == ledger.HoldCaptured {
		c.CapturedQuantity, c.CapturedCredits = 1, 5
	} else {
		c.ReleaseReason = "cancelled"
	}
	return &c
}

func saveHolds(t *testing.T, s *Store, hs ...*ledger.Hold) {
	t.Helper()
	commit(t, s, func(b ledger.Batch) error { return b.SaveHolds(context.Background(), hs) })
}

func tableHolds(t *testing.T, s *Store) (rows, blocks int) {
	t.Helper()
	if err := errors.Join(s.r.QueryRow(`SELECT count(*) FROM holds`).Scan(&rows),
		s.r.QueryRow(`SELECT count(*) FROM hold_blocks`).Scan(&blocks)); err != nil {
		t.Fatal(err)
	}
	return rows, blocks
}

// Settled holds with time-ordered ids live in hold_blocks; pending ones in
// holds, which they leave when they settle, also across a reopen. Every
// read finds each hold once, in its newest state.
func TestHoldBlocks(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	commit(t, s, func(b ledger.Batch) error {
		return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1), account("B", 1)})
	})

	// Reserved and captured before the materializer ran: a block only.
	a1 := newHold("A", t0)
	a2 := newHold("A", t0)
	b1 := newHold("B", t0)
	saveHolds(t, s, a1, a2, b1)
	saveHolds(t, s, settle(a1, ledger.HoldCaptured, t0.Add(time.Second)), settle(a2, ledger.HoldReleased, t0.Add(time.Second)))
	// Pending when materialized, settled later; one across a reopen.
	p1 := newHold("A", t0.Add(time.Minute))
	p2 := newHold("A", t0.Add(time.Minute))
	saveHolds(t, s, p1, p2)
	if err := s.j.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if rows, blocks := tableHolds(t, s); rows != 3 || blocks != 1 {
		t.Fatalf("holds rows %d, hold blocks %d; want 3 pending rows (b1, p1, p2) and one block (a1, a2)", rows, blocks)
	}
	saveHolds(t, s, settle(p1, ledger.HoldCaptured, t0.Add(2*time.Minute)), settle(b1, ledger.HoldExpired, t0.Add(2*time.Minute)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	saveHolds(t, s, settle(p2, ledger.HoldCaptured, t0.Add(3*time.Minute)))
	if err := s.j.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if rows, blocks := tableHolds(t, s); rows != 0 || blocks < 3 {
		t.Fatalf("holds rows %d, hold blocks %d; want no rows left and the settled holds in blocks", rows, blocks)
	}

	want := map[string]ledger.HoldStatus{a1.ID: ledger.HoldCaptured, a2.ID: ledger.HoldReleased,
		p1.ID: ledger.HoldCaptured, p2.ID: ledger.HoldCaptured, b1.ID: ledger.HoldExpired}
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for name, st := range map[string]*Store{"read-write": s, "read-only": ro} {
		for id, status := range want {
			h, err := st.GetHold(ctx, id)
			if err != nil || h.Status != status || len(h.Portions) != 1 || h.ResolvedAt.IsZero() {
				t.Errorf("%s GetHold(%s): %+v, %v; want %s", name, id, h, err, status)
			}
		}
		if _, err := st.GetHold(ctx, ledger.NewID("hold")); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("%s GetHold of an unknown id: %v, want not found", name, err)
		}
		hist, err := st.LoadHistory(ctx, "A")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, h := range hist.Holds {
			ids = append(ids, h.ID)
			if h.Status != want[h.ID] {
				t.Errorf("%s LoadHistory: hold %s is %s, want %s", name, h.ID, h.Status, want[h.ID])
			}
		}
		if len(ids) != 4 || ids[0] > ids[1] || ids[2] > ids[3] || hist.Holds[1].CreatedAt.After(hist.Holds[2].CreatedAt) {
			t.Errorf("%s LoadHistory holds of A: %v, want a1, a2, p1, p2 once each in creation order", name, ids)
		}
		if pend, err := st.ListPendingHolds(ctx); err != nil || len(pend) != 0 {
			t.Errorf("%s ListPendingHolds: %+v, %v; want none", name, pend, err)
		}
	}
}

// One account's settled holds share a block across milliseconds when
// their ids share a time quantum and its tag (ledger.NewHoldID), up to
// blockHoldsMax; holds with other ids (random tags) are still found by id.
func TestHoldBlocksAcrossMilliseconds(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	commit(t, s, func(b ledger.Batch) error {
		return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1), account("B", 1)})
	})
	base := time.UnixMilli(holdQuantum(t0.UnixMilli()) << 12) // a quantum's first millisecond
	var settled []*ledger.Hold
	add := func(id, acct string) {
		h := newHoldID(id, acct, t0)
		saveHolds(t, s, h)
		settled = append(settled, settle(h, ledger.HoldCaptured, t0.Add(time.Second)))
	}
	for k := range 300 { // 300 milliseconds of one quantum: two blocks
		add(ledger.HoldIDAt("A", base.Add(time.Duration(k)*time.Millisecond)), "A")
	}
	add(ledger.HoldIDAt("A", base.Add(5*time.Second)), "A") // the next quantum
	add(ledger.HoldIDAt("B", base), "B")
	legacy := ledger.NewID("hold") // a random tag: a block of its own
	add(legacy, "A")
	saveHolds(t, s, settled...)
	if err := s.j.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var blocksA, blocksB int
	if err := errors.Join(s.r.QueryRow(`SELECT count(*) FROM hold_blocks WHERE account_id = 'A'`).Scan(&blocksA),
		s.r.QueryRow(`SELECT count(*) FROM hold_blocks WHERE account_id = 'B'`).Scan(&blocksB)); err != nil {
		t.Fatal(err)
	}
	if blocksA != 4 || blocksB != 1 {
		t.Fatalf("hold blocks of A: %d, of B: %d; want 4 (256 + 44 holds of one quantum, one of the next, one legacy id) and 1", blocksA, blocksB)
	}

	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for name, st := range map[string]*Store{"read-write": s, "read-only": ro} {
		for _, want := range settled {
			h, err := st.GetHold(ctx, want.ID)
			if err != nil || h.Status != want.Status || h.AccountID != want.AccountID {
				t.Fatalf("%s GetHold(%s): %+v, %v; want %s of %s", name, want.ID, h, err, want.Status, want.AccountID)
			}
		}
		if _, err := st.GetHold(ctx, ledger.HoldIDAt("A", base.Add(7*time.Millisecond))); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("%s GetHold of an unknown id in a known block's range: %v, want not found", name, err)
		}
		hist, err := st.LoadHistory(ctx, "A")
		if err != nil {
			t.Fatal(err)
		}
		if len(hist.Holds) != 302 {
			t.Errorf("%s LoadHistory(A): %d holds, want 302", name, len(hist.Holds))
		}
	}
}
