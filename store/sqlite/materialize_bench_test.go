package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/sqlite/journal"
)

// BenchmarkMaterialize measures the materializer alone, on one goroutine:
// each iteration writes one window of charge cycles (a grant update, a hold
// reserved and captured, two entries per cycle), as the journal hands it
// over, into tables that already hold the accounts and earlier windows.
// ns/op is per cycle.
func BenchmarkMaterialize(b *testing.B) {
	for _, accounts := range []int{1, 1000, 10000} {
		for _, window := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("accounts=%d/window=%d", accounts, window), func(b *testing.B) {
				benchMaterialize(b, accounts, window)
			})
		}
	}
}

func benchMaterialize(b *testing.B, accounts, window int) {
	ctx := context.Background()
	s, _ := openTemp(b)
	stallMaterializer(s) // the benchmark calls materialize itself
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	grants := make([]ledger.Grant, accounts)
	var setup journal.ChangeSet
	for i := range grants {
		id := fmt.Sprintf("acct-%06d", i)
		setup.Accounts = append(setup.Accounts, ledger.Account{ID: id, Plan: ledger.PlanPaid, Timezone: "UTC", CreatedAt: now, UpdatedAt: now})
		grants[i] = ledger.Grant{ID: ledger.NewID("grant"), AccountID: id, Source: ledger.SourceAdmin, AmountCredits: 1 << 40, RemainingCredits: 1 << 40, CreatedAt: now}
		setup.Grants = append(setup.Grants, grants[i])
	}
	seq := int64(1)
	setup.Seq = seq
	if err := s.materialize(ctx, []*journal.ChangeSet{&setup}); err != nil {
		b.Fatal(err)
	}
	entryID := int64(1)
	cycle := 0
	makeWindow := func(n int) []*journal.ChangeSet {
		sets := make([]*journal.ChangeSet, 0, n)
		for range n {
			g := &grants[cycle%accounts]
			cycle++
			seq++
			g.RemainingCredits -= 5
			g.ChargedCredits += 5
			h := ledger.Hold{ID: ledger.NewHoldID(g.AccountID), AccountID: g.AccountID, Action: "generate", Category: ledger.CategoryImage,
				Quantity: 1, UnitPriceCredits: 5, AmountCredits: 5, Status: ledger.HoldCaptured,
				Portions: []ledger.Portion{{GrantID: g.ID, Credits: 5}}, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
				ResolvedAt: now, CapturedQuantity: 1, CapturedCredits: 5}
			c := &journal.ChangeSet{Seq: seq, Grants: []ledger.Grant{*g}, Holds: []ledger.Hold{h}}
			for _, t := range []ledger.EntryType{ledger.EntryHold, ledger.EntryCapture} {
				c.Entries = append(c.Entries, ledger.Entry{ID: entryID, AccountID: g.AccountID, Type: t, AmountCredits: 5,
					HoldID: h.ID, Action: "generate", Quantity: 1, CreatedAt: now})
				entryID++
			}
			sets = append(sets, c)
		}
		return sets
	}
	for range 3 { // earlier windows: the tables are not empty
		if err := s.materialize(ctx, makeWindow(window)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += window {
		sets := makeWindow(min(window, b.N-done))
		if err := s.materialize(ctx, sets); err != nil {
			b.Fatal(err)
		}
	}
}
