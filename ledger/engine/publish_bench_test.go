package engine

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

// BenchmarkPublish measures publishing one committed batch of charge
// cycles (a captured hold and its entry on each of 1,000 accounts), as
// the committer does after every commit: with nobody subscribed (creditd
// embedded as a library, the benchmarks), and with one subscriber that,
// like the SSE hub, drops the events of accounts nobody watches (serve).
func BenchmarkPublish(b *testing.B) {
	cfg := ledger.DefaultConfig()
	now := time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)
	const accounts = 1000
	ch := ledger.NewChanges()
	states := map[string]*ledger.State{}
	for i := range accounts {
		id := fmt.Sprintf("acct-%d", i)
		st := ledger.NewAccount(cfg, now, id, ledger.PlanPaid, "UTC", ch)
		if _, err := st.Grant(cfg, now, ledger.GrantParams{Source: ledger.SourceAdmin, AmountCredits: 1_000_000}, ch); err != nil {
			b.Fatal(err)
		}
		states[id] = st
	}
	ch = ledger.NewChanges()
	for id, st := range states {
		h, err := st.Reserve(cfg, now, ledger.ReserveParams{Action: "generate", Quantity: 1}, ch)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Capture(cfg, now, h.ID, 1, ch); err != nil {
			b.Fatal(err)
		}
		st.Prune()
		states[id] = st
	}
	for _, c := range []struct {
		name string
		sub  bool
	}{{"subscribers=0", false}, {"subscriber=hub-unwatched", true}} {
		b.Run(c.name, func(b *testing.B) {
			bus := NewLocalBus()
			if c.sub {
				var mu sync.Mutex
				watched := map[string]bool{}
				defer bus.Subscribe(func(ev Event) {
					mu.Lock()
					_ = watched[ev.AccountID]
					mu.Unlock()
				})()
			}
			e := &Engine{cfg: cfg, bus: bus}
			bt := &batch{e: e, now: now, ch: ch, states: states}
			b.ReportAllocs()
			for b.Loop() {
				e.publish(bt)
			}
		})
	}
}
