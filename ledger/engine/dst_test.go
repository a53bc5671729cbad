package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// TestDailyRefreshSkippedMidnight: in zones whose DST change skips local
// midnight (America/Santiago, America/Havana, America/Asuncion, ...) the
// daily allowance must still run from local midnight to local midnight.
//
// Regression test (ledger/state.go, dayStart): time.ParseInLocation and time.Date
// resolve the non-existent 00:00 to 23:00 of the previous day, which once meant
//   - the allowance of the day before the change expires an hour early and
//     a second allowance is attempted for the same local date, and
//   - on the day of the change the allowance is created already expired,
//     and every touch tries to issue it again.
//
// The second issue of the same date hits the unique (account, source,
// reference) index of the grants, so the whole batch fails to commit: the
// account answers "unavailable" to every operation for the rest of the
// local day, and so does every other operation that happens to share a
// batch with it.
func TestDailyRefreshSkippedMidnight(t *testing.T) {
	for _, c := range []struct {
		tz string
		// the day before the DST change, noon UTC; local midnight of the
		// next day is skipped and the first instant of that day is at
		// transition.
		before     time.Time
		transition time.Time
	}{
		{"America/Santiago", time.Date(2025, 9, 6, 12, 0, 0, 0, time.UTC), time.Date(2025, 9, 7, 4, 0, 0, 0, time.UTC)},
		{"America/Havana", time.Date(2025, 3, 8, 12, 0, 0, 0, time.UTC), time.Date(2025, 3, 9, 5, 0, 0, 0, time.UTC)},
	} {
		t.Run(c.tz, func(t *testing.T) {
			ctx := context.Background()
			te := newTestEngine(t, c.before)
			mustPut(t, te, engine.PutAccountParams{ID: "a", Plan: ledger.PlanFree, Timezone: c.tz})
			b := te.balance(t, "a")
			if b.AvailableCredits != 45 {
				t.Fatalf("new account: %d available, want 45", b.AvailableCredits)
			}
			if b.NextDailyRefreshAt == nil || !b.NextDailyRefreshAt.Equal(c.transition) {
				t.Errorf("next daily refresh at %v, want the first instant of the next local day %v", b.NextDailyRefreshAt, c.transition)
			}
			for _, bk := range b.Buckets {
				if bk.Source == ledger.SourceDaily && (bk.ExpiresAt == nil || !bk.ExpiresAt.Equal(c.transition)) {
					t.Errorf("daily credits expire at %v, want %v (local midnight)", bk.ExpiresAt, c.transition)
				}
			}

			// Half an hour before local midnight: today's credits are still valid.
			if err := te.clock.Set(c.transition.Add(-30 * time.Minute)); err != nil {
				t.Fatal(err)
			}
			if b, err := te.Balance(ctx, "a"); err != nil || b.AvailableCredits != 45 {
				t.Errorf("23:30 local: balance %d, err %v; want 45 available and no error", b.AvailableCredits, err)
			}

			// Next local morning: a fresh allowance, valid until the next midnight.
			if err := te.clock.Set(c.transition.Add(8 * time.Hour)); err != nil {
				t.Fatal(err)
			}
			b, err := te.Balance(ctx, "a")
			if err != nil || b.AvailableCredits != 45 {
				t.Errorf("next morning: balance %d, err %v; want 45 available and no error", b.AvailableCredits, err)
			}
			// Other accounts must not suffer from this one.
			mustPut(t, te, engine.PutAccountParams{ID: "bystander", Plan: ledger.PlanPaid, Timezone: "UTC"})
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failures int
			for range 50 {
				wg.Add(2)
				go func() {
					defer wg.Done()
					_, _ = te.Grant(ctx, engine.GrantParams{AccountID: "a", GrantParams: ledger.GrantParams{Source: ledger.SourcePromo, AmountCredits: 1}})
				}()
				go func() {
					defer wg.Done()
					if _, err := te.Grant(ctx, engine.GrantParams{AccountID: "bystander", GrantParams: ledger.GrantParams{Source: ledger.SourcePurchase, AmountCredits: 1}}); err != nil {
						mu.Lock()
						failures++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if failures > 0 {
				t.Errorf("%d of 50 grants to an unrelated account failed while sharing batches with this one", failures)
			}
			te.verify(t)
		})
	}
}
