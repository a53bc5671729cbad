package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/sqlite"
)

// BenchmarkChargeCycle measures reserve+capture cycles through the Go API
// on SQLite (fsync on commit), spread over accounts or on one hot account.
func BenchmarkChargeCycle(b *testing.B) {
	for _, accounts := range []int{1000, 1} {
		b.Run(fmt.Sprintf("accounts=%d", accounts), func(b *testing.B) {
			chargeCycles(b, accounts, ledger.DefaultConfig())
		})
	}
}

// BenchmarkCacheMisses runs the charge cycles of BenchmarkChargeCycle over
// 2,000 accounts with every account cached, and with a cache of a tenth of
// them, where nearly every operation reloads its account from the store.
func BenchmarkCacheMisses(b *testing.B) {
	const accounts = 2000
	for _, cached := range []int{accounts, accounts / 10} {
		b.Run(fmt.Sprintf("accounts=%d/cached=%d", accounts, cached), func(b *testing.B) {
			cfg := ledger.DefaultConfig()
			cfg.Limits.CachedAccountsMax = cached
			chargeCycles(b, accounts, cfg)
		})
	}
}

func chargeCycles(b *testing.B, accounts int, cfg *ledger.Config) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	e, err := engine.New(ctx, engine.Options{Config: cfg, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SweepInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	for i := range accounts {
		id := fmt.Sprintf("acct-%d", i)
		if _, err := e.PutAccount(ctx, engine.PutAccountParams{ID: id, Plan: ledger.PlanPaid}); err != nil {
			b.Fatal(err)
		}
		if _, err := e.Grant(ctx, engine.GrantParams{AccountID: id, GrantParams: ledger.GrantParams{Source: ledger.SourceAdmin, AmountCredits: 1_000_000_000}}); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.SetParallelism(512)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("acct-%d", n.Add(1)%int64(accounts))
			v, err := e.Reserve(ctx, engine.ReserveParams{AccountID: id, ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: 1}})
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := e.Capture(ctx, engine.HoldParams{HoldID: v.Value.ID, Quantity: 1}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
}
