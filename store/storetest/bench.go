package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

// BenchmarkBatch is the write benchmark every store runs: batches of 1000
// entries, 500 new holds and 500 grant updates (upserts of existing rows)
// over 100 accounts, one commit each. s must be a fresh, empty store.
func BenchmarkBatch(b *testing.B, s ledger.Store) {
	ctx := context.Background()
	const nAccounts, nGrants, nHolds, nEntries = 100, 500, 500, 1000
	accounts := make([]*ledger.Account, nAccounts)
	for i := range accounts {
		accounts[i] = newAccount(fmt.Sprintf("acct-%03d", i))
	}
	grants := benchBatchSetup(b, s, accounts, nGrants)
	holds := make([]*ledger.Hold, nHolds)
	entries := make([]ledger.Entry, nEntries)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		for j := range grants {
			grants[j].RemainingCredits -= 10
			grants[j].HeldCredits += 10
		}
		for j := range holds {
			g := grants[j%nGrants]
			holds[j] = &ledger.Hold{
				ID: ledger.NewHoldID(g.AccountID), AccountID: g.AccountID, Action: "image.generate", Category: ledger.CategoryImage,
				Quantity: 2, UnitPriceCredits: 5, AmountCredits: 10, Status: ledger.HoldPending,
				Portions: []ledger.Portion{{GrantID: g.ID, Credits: 10}}, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
			}
		}
		for j := range entries {
			h := holds[j%nHolds]
			entries[j] = ledger.Entry{
				AccountID: h.AccountID, Type: ledger.EntryHold, AmountCredits: 10, HoldID: h.ID,
				Action: h.Action, Quantity: 2, CreatedAt: now,
				Legs: []ledger.Leg{{GrantID: h.Portions[0].GrantID, From: ledger.PartRemaining, To: ledger.PartHeld, Credits: 10}},
			}
		}
		bt, err := s.BeginBatch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := bt.SaveGrants(ctx, grants); err != nil {
			b.Fatal(err)
		}
		if err := bt.SaveHolds(ctx, holds); err != nil {
			b.Fatal(err)
		}
		if err := bt.InsertEntries(ctx, entries); err != nil {
			b.Fatal(err)
		}
		if err := bt.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	rows := float64(nGrants + nHolds + nEntries)
	b.ReportMetric(rows*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// benchBatchSetup saves accounts and n grants spread over them, each with
// ample credits, and returns the grants.
func benchBatchSetup(b *testing.B, s ledger.Store, accounts []*ledger.Account, nGrants int) []*ledger.Grant {
	ctx := context.Background()
	grants := make([]*ledger.Grant, nGrants)
	for i := range grants {
		grants[i] = &ledger.Grant{
			ID: ledger.NewID("grt"), AccountID: accounts[i%len(accounts)].ID, Source: ledger.SourcePurchase,
			Reference: fmt.Sprintf("order-%d", i), AmountCredits: 1 << 40, RemainingCredits: 1 << 40,
			ExpiresAt: t0.Add(time.Hour), CreatedAt: t0,
		}
	}
	setup, err := s.BeginBatch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := setup.SaveAccounts(ctx, accounts); err != nil {
		b.Fatal(err)
	}
	if err := setup.SaveGrants(ctx, grants); err != nil {
		b.Fatal(err)
	}
	if err := setup.Commit(); err != nil {
		b.Fatal(err)
	}
	return grants
}
