package postgres

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// countingStore counts the account rows its batches save, and whether
// they were locked with LockAndBumpAccounts.
type countingStore struct {
	*Store
	saved, bumps atomic.Int64
}

func (s *countingStore) BeginBatch(ctx context.Context) (ledger.Batch, error) {
	b, err := s.Store.BeginBatch(ctx)
	if err != nil {
		return nil, err
	}
	return &countingBatch{batch: b.(*batch), s: s}, nil
}

type countingBatch struct {
	*batch
	s *countingStore
}

func (b *countingBatch) SaveAccounts(ctx context.Context, accounts []*ledger.Account) error {
	b.s.saved.Add(int64(len(accounts)))
	return b.batch.SaveAccounts(ctx, accounts)
}

func (b *countingBatch) LockAndBumpAccounts(ctx context.Context, ids []string) (map[string]int64, error) {
	b.s.bumps.Add(1)
	return b.batch.LockAndBumpAccounts(ctx, ids)
}

func newEngine(t *testing.T, s ledger.Store) *engine.Engine {
	t.Helper()
	e, err := engine.New(context.Background(), engine.Options{Store: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func reserve(ctx context.Context, e *engine.Engine, acct string) (*ledger.Hold, error) {
	v, err := e.Reserve(ctx, engine.ReserveParams{AccountID: acct, ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: 1}})
	if err != nil {
		return nil, err
	}
	return v.Value, nil
}

func cycle(t *testing.T, e *engine.Engine, acct string) {
	t.Helper()
	ctx := context.Background()
	h, err := reserve(ctx, e, acct)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Capture(ctx, engine.HoldParams{HoldID: h.ID, Quantity: 1}); err != nil {
		t.Fatal(err)
	}
}

// TestEngineVersionBumps: on PostgreSQL the engine locks accounts with
// LockAndBumpAccounts, so every batch that locks an account moves its
// version (and other nodes reload it) without an account row of its own
// for a charge; a node whose cached state another node has moved reloads
// it, and nothing is overspent.
func TestEngineVersionBumps(t *testing.T) {
	ctx := context.Background()
	s, _ := openNew(t)
	a := &countingStore{Store: s}
	ea, eb := newEngine(t, a), newEngine(t, s)
	// 30 signup credits. Threshold 0: no credits.low, whose alert bit
	// would be an account row of its own.
	zero := int64(0)
	if _, err := ea.PutAccount(ctx, engine.PutAccountParams{ID: "x", Plan: ledger.PlanPaid, LowBalanceThreshold: &zero}); err != nil {
		t.Fatal(err)
	}
	if n := a.saved.Load(); n != 1 {
		t.Fatalf("creating the account saved %d account rows, want 1", n)
	}
	v0 := version(t, s, "x")
	cycle(t, eb, "x") // b caches x: 25 left
	for range 4 {     // a: 5 left
		cycle(t, ea, "x")
	}
	if n := a.saved.Load(); n != 1 || a.bumps.Load() < 8 {
		t.Errorf("charge cycles saved %d account rows in all (want the 1 of the creation), %d bumps (want 8 or more)", n, a.bumps.Load())
	}
	if v := version(t, s, "x"); v != v0+10 {
		t.Errorf("version %d after 10 batches, want %d", v, v0+10)
	}
	// b's cached state is 8 versions old: it must reload, see 5 left,
	// grant one image and refuse the next.
	if _, err := reserve(ctx, eb, "x"); err != nil {
		t.Fatalf("reserve on b with 5 credits left: %v", err)
	}
	if h, err := reserve(ctx, eb, "x"); ledger.ErrorCode(err) != ledger.EInsufficient {
		t.Fatalf("reserve on b with nothing left: %+v, %v; want insufficient credits", h, err)
	}
	if bal, err := ea.Balance(ctx, "x"); err != nil || bal.AvailableCredits != 0 {
		t.Errorf("balance on a: %+v, %v; want 0 available", bal, err)
	}
	// A plan change is more than a version: the row is saved.
	if _, err := ea.PutAccount(ctx, engine.PutAccountParams{ID: "x", Plan: ledger.PlanFree}); err != nil {
		t.Fatal(err)
	}
	if n := a.saved.Load(); n != 2 {
		t.Errorf("a plan change: %d account rows saved in all, want 2", n)
	}
	if got, err := s.GetAccount(ctx, "x"); err != nil || got.Plan != ledger.PlanFree {
		t.Errorf("account after the plan change: %+v, %v", got, err)
	}
}

func version(t *testing.T, s *Store, id string) int64 {
	t.Helper()
	a, err := s.GetAccount(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a.Version
}

// TestLockAndBumpAccounts: the versions before the increment come back,
// the stored ones move by one, and ids without an account are absent.
func TestLockAndBumpAccounts(t *testing.T) {
	ctx := context.Background()
	s, _ := openNew(t)
	commit(t, s, func(b ledger.Batch) error {
		return b.SaveAccounts(ctx, []*ledger.Account{account("A", 3), account("B", 7)})
	})
	var got map[string]int64
	commit(t, s, func(b ledger.Batch) error {
		var err error
		got, err = b.(*batch).LockAndBumpAccounts(ctx, []string{"A", "B", "C"})
		return err
	})
	if len(got) != 2 || got["A"] != 3 || got["B"] != 7 {
		t.Errorf("LockAndBumpAccounts: %v, want A 3, B 7", got)
	}
	if a, b := version(t, s, "A"), version(t, s, "B"); a != 4 || b != 8 {
		t.Errorf("versions after: %d, %d; want 4, 8", a, b)
	}
}

// TestEngineVersionAfterLoad: a node that loads an account in a batch
// (after the increment, in the same transaction) caches the version as
// stored, so one batch of another node is enough to make it reload.
func TestEngineVersionAfterLoad(t *testing.T) {
	ctx := context.Background()
	s, _ := openNew(t)
	ea, eb := newEngine(t, s), newEngine(t, s)
	// 30 signup credits. Threshold 0: no credits.low, whose alert bit
	// would be an account row of its own.
	zero := int64(0)
	if _, err := ea.PutAccount(ctx, engine.PutAccountParams{ID: "x", Plan: ledger.PlanPaid, LowBalanceThreshold: &zero}); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(ctx, eb, "x"); err != nil { // b loads x: 25 left
		t.Fatal(err)
	}
	v, err := ea.Reserve(ctx, engine.ReserveParams{AccountID: "x", ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: 5}})
	if err != nil { // a: one batch, nothing left
		t.Fatal(err)
	}
	if h := v.Value; h.AmountCredits != 25 {
		t.Fatalf("hold of 5 images: %+v", h)
	}
	if h, err := reserve(ctx, eb, "x"); ledger.ErrorCode(err) != ledger.EInsufficient {
		t.Fatalf("reserve on b with nothing left: %+v, %v; want insufficient credits", h, err)
	}
}
