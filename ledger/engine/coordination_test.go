package engine_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// askingStore counts the calls of Exclusive.
type askingStore struct {
	ledger.Store
	asked atomic.Int64
}

func (s *askingStore) Exclusive() bool {
	s.asked.Add(1)
	return s.Store.Exclusive()
}

// The engine asks the store whether it is the only writer once, in New:
// reads, writes, expiries and the sweeper then follow the coordination it
// chose without asking again.
func TestCoordinationChosenOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, s ledger.Store) {
		ctx := context.Background()
		st := &askingStore{Store: s}
		clock := ledger.NewTestClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
		e, err := engine.New(ctx, engine.Options{Store: st, Clock: clock, Logger: discardLogger(), SweepInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if n := st.asked.Load(); n != 1 {
			t.Fatalf("New asked Exclusive %d times, want 1", n)
		}
		if _, err := e.PutAccount(ctx, engine.PutAccountParams{ID: "a", Plan: ledger.PlanPaid}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Reserve(ctx, engine.ReserveParams{AccountID: "a", ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: 1}}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Balance(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		clock.Advance(24 * time.Hour)
		e.SweepHolds(ctx, clock.Now())
		if _, err := e.Balance(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if n := st.asked.Load(); n != 1 {
			t.Errorf("Exclusive asked %d times in all, want 1 (in New)", n)
		}
	})
}
