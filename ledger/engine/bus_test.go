package engine_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/sqlite"
)

// recordingBus records what the engine publishes. It cannot say how many
// subscribers it has (as a bus to other nodes).
type recordingBus struct {
	mu     sync.Mutex
	events []engine.Event
	calls  int
}

func (b *recordingBus) Publish(events []engine.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	b.events = append(b.events, events...)
}

func (b *recordingBus) Subscribe(func(engine.Event)) func() { return func() {} }

// countingBus is a recordingBus that says nobody subscribes (as a LocalBus
// nobody subscribed to).
type countingBus struct{ recordingBus }

func (b *countingBus) Subscribers() int { return 0 }

func newBusEngine(t *testing.T, bus engine.Bus) *engine.Engine {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "creditd.db"))
	if err != nil {
		t.Fatal(err)
	}
	clock := ledger.NewTestClock(time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC))
	e, err := engine.New(ctx, engine.Options{Store: st, Clock: manualClock{clock}, Logger: discardLogger(), SweepInterval: time.Hour, Bus: bus})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		_ = st.Close()
	})
	return e
}

func chargeOnce(t *testing.T, e *engine.Engine, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.PutAccount(ctx, engine.PutAccountParams{ID: id, Plan: ledger.PlanFree}); err != nil {
		t.Fatal(err)
	}
	v, err := e.Reserve(ctx, engine.ReserveParams{AccountID: id, ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Capture(ctx, engine.HoldParams{HoldID: v.Value.ID, Quantity: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestPublish(t *testing.T) {
	t.Run("NothingWhenNobodySubscribes", func(t *testing.T) {
		bus := &countingBus{}
		chargeOnce(t, newBusEngine(t, bus), "a")
		bus.mu.Lock()
		defer bus.mu.Unlock()
		if bus.calls != 0 {
			t.Fatalf("the engine published %d times to a bus without subscribers", bus.calls)
		}
	})

	t.Run("LocalBusWithoutSubscribersHasNone", func(t *testing.T) {
		bus := engine.NewLocalBus()
		if n := bus.Subscribers(); n != 0 {
			t.Fatalf("%d subscribers", n)
		}
		cancel := bus.Subscribe(func(engine.Event) {})
		if n := bus.Subscribers(); n != 1 {
			t.Fatalf("%d subscribers after Subscribe, want 1", n)
		}
		cancel()
		if n := bus.Subscribers(); n != 0 {
			t.Fatalf("%d subscribers after cancel, want 0", n)
		}
	})

	// A bus that cannot say (one that forwards to other nodes) gets every
	// event, with the committed state and no precomputed balance;
	// BalanceView computes the balance the account had after the batch.
	t.Run("EventsCarryStateNotBalance", func(t *testing.T) {
		bus := &recordingBus{}
		e := newBusEngine(t, bus)
		chargeOnce(t, e, "a")
		bus.mu.Lock()
		events := bus.events
		bus.mu.Unlock()
		if len(events) != 3 {
			t.Fatalf("%d events, want 3 (create, reserve, capture)", len(events))
		}
		// 30 signup + 15 daily; 10 held, then 5 charged.
		for i, want := range []struct{ available, held int64 }{{45, 0}, {35, 10}, {40, 0}} {
			ev := events[i]
			if ev.AccountID != "a" || ev.State == nil || ev.Balance != nil || ev.At.IsZero() {
				t.Fatalf("event %d: account %q, state %v, balance %v, at %v", i, ev.AccountID, ev.State != nil, ev.Balance, ev.At)
			}
			b := ev.BalanceView(e.Config())
			if b.AvailableCredits != want.available || b.HeldCredits != want.held || !b.AsOf.Equal(ev.At) {
				t.Errorf("event %d: balance available %d held %d as of %v, want %d and %d as of %v",
					i, b.AvailableCredits, b.HeldCredits, b.AsOf, want.available, want.held, ev.At)
			}
		}
		if len(events[1].Holds) != 1 || events[1].Holds[0].Status != ledger.HoldPending ||
			len(events[2].Holds) != 1 || events[2].Holds[0].Status != ledger.HoldCaptured || len(events[2].Entries) != 1 {
			t.Errorf("holds and entries: %+v / %+v", events[1], events[2])
		}
	})

	t.Run("BalanceViewPrefersAGivenBalance", func(t *testing.T) {
		given := &ledger.Balance{AccountID: "a", AvailableCredits: 7}
		ev := engine.Event{AccountID: "a", Balance: given}
		if got := ev.BalanceView(ledger.DefaultConfig()); got != given {
			t.Fatalf("BalanceView: %+v", got)
		}
		if got := (&engine.Event{AccountID: "a", Remote: true}).BalanceView(ledger.DefaultConfig()); got != nil {
			t.Fatalf("remote event without state: %+v", got)
		}
	})
}
