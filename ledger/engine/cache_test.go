package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/sqlite"
)

// fillAccounts creates n paid accounts acct-0 … acct-(n-1), each with its
// signup grant and one admin grant of credits, from many goroutines so the
// group commit batches them.
func fillAccounts(tb testing.TB, e *engine.Engine, n int, credits int64) {
	tb.Helper()
	ctx := context.Background()
	const workers = 256
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				id := fmt.Sprintf("acct-%d", i)
				if _, err := e.PutAccount(ctx, engine.PutAccountParams{ID: id, Plan: ledger.PlanPaid}); err != nil {
					errs <- err
					return
				}
				if _, err := e.Grant(ctx, engine.GrantParams{AccountID: id, GrantParams: ledger.GrantParams{Source: ledger.SourceAdmin, AmountCredits: credits}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

// heap returns the live heap (bytes of live objects) and the heap in use
// (bytes of spans holding them) after two collections.
func heap() (alloc, inuse int64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc), int64(m.HeapInuse)
}

// accountMemory is the heap per cached account, in bytes: live objects,
// and spans in use.
type accountMemory struct {
	created, createdInuse float64 // as committed by the operations that created it
	used, usedInuse       float64 // loaded from the store by a reserve, after a capture
	loaded, loadedInuse   float64 // loaded from the store by a balance read
}

// cachedBytesPerAccount fills an engine on SQLite with n accounts (paid
// plan: a signup and an admin grant, no holds) and measures the heap their
// cached snapshots take.
func cachedBytesPerAccount(tb testing.TB, n int) accountMemory {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "mem.db"))
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	e, err := engine.New(ctx, engine.Options{Store: st, Logger: discardLogger(), SweepInterval: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	defer e.Close()
	fillAccounts(tb, e, n, 1_000_000)
	if got := e.CachedAccounts(); got != n {
		tb.Fatalf("%d accounts cached, want %d", got, n)
	}
	// Each measure is the heap with the cache full minus the heap once the
	// cache is dropped: the cache's share only.
	perAccount := func() (alloc, inuse float64) {
		fullAlloc, fullInuse := heap()
		e.DropCache()
		emptyAlloc, emptyInuse := heap()
		return float64(fullAlloc-emptyAlloc) / float64(n), float64(fullInuse-emptyInuse) / float64(n)
	}
	var m accountMemory
	m.created, m.createdInuse = perAccount()

	forAll := func(fn func(id string) error) {
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for w := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 64 {
					if err := fn(fmt.Sprintf("acct-%d", i)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			tb.Fatal(err)
		}
	}
	forAll(func(id string) error {
		v, err := e.Reserve(ctx, engine.ReserveParams{AccountID: id, ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: 1}})
		if err != nil {
			return err
		}
		_, err = e.Capture(ctx, engine.HoldParams{HoldID: v.Value.ID, Quantity: 1})
		return err
	})
	if got := e.CachedAccounts(); got != n {
		tb.Fatalf("%d accounts cached after a charge on each, want %d", got, n)
	}
	m.used, m.usedInuse = perAccount()

	forAll(func(id string) error {
		_, err := e.Balance(ctx, id)
		return err
	})
	if got := e.CachedAccounts(); got != n {
		tb.Fatalf("%d accounts cached after reading them all, want %d", got, n)
	}
	m.loaded, m.loadedInuse = perAccount()
	return m
}

// BenchmarkCachedAccountMemory reports the heap per cached account (paid
// plan, signup and one admin grant, no holds), from which the default of
// Limits.CachedAccountsMax is chosen:
//
//	go test -run '^$' -bench CachedAccountMemory -benchtime 1x ./ledger/engine/
func BenchmarkCachedAccountMemory(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			var m accountMemory
			for range b.N {
				m = cachedBytesPerAccount(b, n)
			}
			b.ReportMetric(m.created, "B/created")
			b.ReportMetric(m.used, "B/used")
			b.ReportMetric(m.loaded, "B/loaded")
			b.ReportMetric(m.createdInuse, "B-inuse/created")
			b.ReportMetric(m.usedInuse, "B-inuse/used")
			b.ReportMetric(m.loadedInuse, "B-inuse/loaded")
		})
	}
}

// newSmallCacheEngine is a test engine whose cache holds at most max
// accounts. Its sweeper does not react to clock moves: the test sweeps.
func newSmallCacheEngine(t *testing.T, max int) *testEngine {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "creditd.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	cfg := ledger.DefaultConfig()
	cfg.Limits.CachedAccountsMax = max
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	clock := ledger.NewTestClock(time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC))
	eng, err := engine.New(ctx, engine.Options{Config: cfg, Store: st, Clock: manualClock{clock}, Logger: discardLogger(), SweepInterval: 24 * time.Hour})
	if err != nil {
		_ = st.Close()
		t.Fatalf("engine: %v", err)
	}
	t.Cleanup(func() {
		eng.Close()
		_ = st.Close()
	})
	return &testEngine{Engine: eng, cfg: cfg, store: st, clock: clock}
}

// evict commits a change to another account, so that with a cache of one
// account, id is no longer cached.
func evict(t *testing.T, te *testEngine, id string) {
	t.Helper()
	mustGrant(t, te, "other", ledger.SourceAdmin, 1)
	if te.IsCached(id) {
		t.Fatalf("%s is still cached", id)
	}
}

func TestCacheEvictsAtBound(t *testing.T) {
	ctx := context.Background()
	const max = 3
	te := newSmallCacheEngine(t, max)
	for i := range 20 {
		id := fmt.Sprintf("a%d", i)
		mustPut(t, te, engine.PutAccountParams{ID: id, Plan: ledger.PlanPaid})
		if got, want := te.CachedAccounts(), min(i+1, max); got != want {
			t.Fatalf("after creating %d accounts: %d cached, want %d", i+1, got, want)
		}
		if !te.IsCached(id) {
			t.Fatalf("the account just created, %s, is not cached", id)
		}
	}

	// Many accounts per batch: a batch may install more accounts than the
	// cache holds, and the bound still holds after it.
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := te.PutAccount(ctx, engine.PutAccountParams{ID: fmt.Sprintf("b%d", i), Plan: ledger.PlanPaid})
			if err == nil {
				if n := te.CachedAccounts(); n > max {
					err = fmt.Errorf("%d accounts cached, more than %d", n, max)
				}
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := te.CachedAccounts(); n != max {
		t.Fatalf("%d accounts cached, want %d", n, max)
	}
	te.verify(t)
}

// TestCacheEvictedAccountsReadBack runs every step on eight accounts in
// turn with a cache of two, so each operation finds its account evicted
// and reloads it, and checks the balances read back.
func TestCacheEvictedAccountsReadBack(t *testing.T) {
	ctx := context.Background()
	te := newSmallCacheEngine(t, 2)
	const n = 8
	id := func(i int) string { return fmt.Sprintf("r%d", i) }
	for i := range n {
		mustPut(t, te, engine.PutAccountParams{ID: id(i), Plan: ledger.PlanPaid})
	}
	for i := range n {
		mustGrant(t, te, id(i), ledger.SourcePurchase, int64(100+i))
	}
	holds := make([]*ledger.Hold, n)
	for i := 1; i < n; i++ {
		v, err := te.Reserve(ctx, engine.ReserveParams{AccountID: id(i), ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: int64(i)}})
		if err != nil {
			t.Fatalf("reserve on %s: %v", id(i), err)
		}
		holds[i] = v.Value
	}
	for i := 1; i < n; i++ {
		if _, err := te.Capture(ctx, engine.HoldParams{HoldID: holds[i].ID, Quantity: int64(i - 1)}); err != nil {
			t.Fatalf("capture on %s: %v", id(i), err)
		}
	}
	if te.IsCached(id(0)) || te.IsCached(id(1)) {
		t.Fatal("the accounts touched first are still cached")
	}
	for i := range n {
		// 30 signup + the purchase, minus 5 for each delivered image,
		// taken from the signup credits first.
		charged := int64(5 * max(i-1, 0))
		signup, purchase := max(30-charged, 0), int64(100+i)-max(charged-30, 0)
		b := te.balance(t, id(i))
		if b.AvailableCredits != signup+purchase || b.HeldCredits != 0 {
			t.Errorf("%s: available %d held %d, want %d and 0", id(i), b.AvailableCredits, b.HeldCredits, signup+purchase)
		}
		var got [2]int64
		for _, bk := range b.Buckets {
			switch bk.Source {
			case ledger.SourceSignup:
				got[0] += bk.RemainingCredits
			case ledger.SourcePurchase:
				got[1] += bk.RemainingCredits
			}
		}
		if got != [2]int64{signup, purchase} {
			t.Errorf("%s: signup and purchase buckets hold %v, want %v", id(i), got, [2]int64{signup, purchase})
		}
	}
	if n := te.CachedAccounts(); n > 2 {
		t.Fatalf("%d accounts cached, more than 2", n)
	}
	te.verify(t)
}

// TestCacheEvictedAccountHolds: the pending holds of an account that is not
// cached can be captured, released, extended and read, and expire through
// the sweeper.
func TestCacheEvictedAccountHolds(t *testing.T) {
	ctx := context.Background()
	te := newSmallCacheEngine(t, 1)
	mustPut(t, te, engine.PutAccountParams{ID: "other", Plan: ledger.PlanPaid})
	mustPut(t, te, engine.PutAccountParams{ID: "h", Plan: ledger.PlanPaid})
	mustGrant(t, te, "h", ledger.SourcePurchase, 1000)
	reserve := func(qty, ttl int64) *ledger.Hold {
		t.Helper()
		v, err := te.Reserve(ctx, engine.ReserveParams{AccountID: "h", ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: qty, TTLSeconds: ttl}})
		if err != nil {
			t.Fatalf("reserve: %v", err)
		}
		return v.Value
	}
	captured, released, expiring, extended := reserve(2, 60), reserve(1, 60), reserve(3, 60), reserve(1, 60)

	evict(t, te, "h")
	v, err := te.Capture(ctx, engine.HoldParams{HoldID: captured.ID, Quantity: 1})
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	if h := v.Value; h.Status != ledger.HoldCaptured || h.CapturedCredits != 5 {
		t.Fatalf("capture: %+v", *h)
	}
	evict(t, te, "h")
	if v, err = te.Release(ctx, engine.HoldParams{HoldID: released.ID, Reason: "failed"}); err != nil {
		t.Fatalf("release: %v", err)
	}
	if h := v.Value; h.Status != ledger.HoldReleased {
		t.Fatalf("release: %+v", *h)
	}
	evict(t, te, "h")
	if _, err = te.Extend(ctx, engine.HoldParams{HoldID: extended.ID, TTLSeconds: 600}); err != nil {
		t.Fatalf("extend: %v", err)
	}
	evict(t, te, "h")
	if h, err := te.GetHold(ctx, captured.ID); err != nil || h.Status != ledger.HoldCaptured {
		t.Fatalf("get captured hold: %+v, %v", h, err)
	}
	evict(t, te, "h")
	if h, err := te.GetHold(ctx, expiring.ID); err != nil || h.Status != ledger.HoldPending {
		t.Fatalf("get pending hold: %+v, %v", h, err)
	}
	evict(t, te, "h")

	if err := te.clock.Advance(61 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Nobody reads the account: the sweeper loads it and expires the hold.
	te.SweepHolds(ctx, te.clock.Now())
	for _, c := range []struct {
		hold *ledger.Hold
		want ledger.HoldStatus
	}{{expiring, ledger.HoldExpired}, {extended, ledger.HoldPending}, {captured, ledger.HoldCaptured}, {released, ledger.HoldReleased}} {
		h, err := te.store.GetHold(ctx, c.hold.ID)
		if err != nil {
			t.Fatal(err)
		}
		if h.Status != c.want {
			t.Errorf("stored hold %s is %s, want %s", h.ID, h.Status, c.want)
		}
	}
	// 30 signup + 1000 purchase − 5 charged − 5 still held.
	if b := te.balance(t, "h"); b.AvailableCredits != 1020 || b.HeldCredits != 5 {
		t.Errorf("balance: available %d held %d, want 1020 and 5", b.AvailableCredits, b.HeldCredits)
	}
	te.verify(t)
}

// TestCacheEvictedAccountJobs: a job of an account that is not cached can
// be read, leased, heartbeaten and completed (and charged once).
func TestCacheEvictedAccountJobs(t *testing.T) {
	ctx := context.Background()
	te := newSmallCacheEngine(t, 1)
	mustPut(t, te, engine.PutAccountParams{ID: "other", Plan: ledger.PlanPaid})
	mustPut(t, te, engine.PutAccountParams{ID: "j", Plan: ledger.PlanPaid})
	mustGrant(t, te, "j", ledger.SourcePurchase, 100)
	v, err := te.CreateJob(ctx, engine.CreateJobParams{AccountID: "j", CreateJobParams: ledger.CreateJobParams{Action: "generate", Quantity: 2}})
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	id := v.Value.ID
	evict(t, te, "j")
	if j, err := te.GetJob(ctx, id); err != nil || j.Status != ledger.JobQueued {
		t.Fatalf("get job: %+v, %v", j, err)
	}
	evict(t, te, "j")
	leased, err := te.Lease(ctx, []string{"generate"}, 0)
	if err != nil || leased == nil || leased.ID != id || leased.Status != ledger.JobRunning {
		t.Fatalf("lease: %+v, %v", leased, err)
	}
	evict(t, te, "j")
	if _, err := te.Heartbeat(ctx, engine.JobOp{JobID: id, LeaseID: leased.LeaseID}); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	evict(t, te, "j")
	if v, err = te.CompleteJob(ctx, engine.JobOp{JobID: id, LeaseID: leased.LeaseID, Outputs: []string{"ast_1"}}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if j := v.Value; j.Status != ledger.JobSucceeded || j.ChargedCredits != 5 {
		t.Fatalf("complete: %+v", *j)
	}
	evict(t, te, "j")
	if b := te.balance(t, "j"); b.AvailableCredits != 30+100-5 || b.HeldCredits != 0 {
		t.Errorf("balance: available %d held %d, want 125 and 0", b.AvailableCredits, b.HeldCredits)
	}
	te.verify(t)
}

// cacheBudgetBytes is the heap the default of Limits.CachedAccountsMax is
// chosen to fit in (with Go's default GC target the heap peaks at about
// twice the live heap, so this keeps a full cache well under 1 GiB of RSS).
const cacheBudgetBytes = 256 << 20

// TestCachedAccountMemoryWithinBudget measures the heap per cached account
// (BenchmarkCachedAccountMemory does so for more accounts) and checks that
// a full cache of the default size fits cacheBudgetBytes.
func TestCachedAccountMemoryWithinBudget(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a memory measurement: not with -short or the race detector")
	}
	m := cachedBytesPerAccount(t, 5000)
	per := max(m.created, m.used, m.loaded)
	limit := float64(cacheBudgetBytes) / float64(ledger.DefaultConfig().Limits.CachedAccountsMax)
	t.Logf("live heap per cached account: %.0f B created, %.0f B used, %.0f B loaded (heap in use: %.0f, %.0f, %.0f B); the default bound allows %.0f B",
		m.created, m.used, m.loaded, m.createdInuse, m.usedInuse, m.loadedInuse, limit)
	if per > limit {
		t.Errorf("a cached account takes %.0f B of heap; the default cached_accounts_max allows %.0f B within %d MiB: lower the default", per, limit, cacheBudgetBytes>>20)
	}
}
