package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/sqlite"
)

// testEngine is an engine on a fresh SQLite file with a real
// *ledger.TestClock (so the background sweeper reacts to clock moves).
type testEngine struct {
	*engine.Engine
	cfg   *ledger.Config
	store *sqlite.Store
	clock *ledger.TestClock
}

// Options to newTestEngine change the default configuration.
func newTestEngine(t *testing.T, start time.Time, opts ...func(*ledger.Config)) *testEngine {
	t.Helper()
	return newTestEngineN(t, start, 0, opts...)
}

// newTestEngineN is newTestEngine with that many committers (0: the
// default, one on SQLite).
func newTestEngineN(t *testing.T, start time.Time, committers int, opts ...func(*ledger.Config)) *testEngine {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "creditd.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	cfg := ledger.DefaultConfig()
	for _, o := range opts {
		o(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	clock := ledger.NewTestClock(start)
	// The sweeper's wall-clock ticker is slowed down so that it is the test
	// clock's moves that wake it.
	eng, err := engine.New(ctx, engine.Options{Config: cfg, Store: st, Clock: clock, Logger: discardLogger(), SweepInterval: time.Hour,
		Committers: committers})
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

func (te *testEngine) verify(t *testing.T) {
	t.Helper()
	rep, err := ledger.VerifyStore(context.Background(), te.cfg, te.store)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("verify found %d problems: %v", len(rep.Problems), rep.Problems)
	}
}

func (te *testEngine) balance(t *testing.T, id string) ledger.Balance {
	t.Helper()
	b, err := te.Balance(context.Background(), id)
	if err != nil {
		t.Fatalf("balance %s: %v", id, err)
	}
	return b
}

func mustPut(t *testing.T, te *testEngine, p engine.PutAccountParams) {
	t.Helper()
	if _, err := te.PutAccount(context.Background(), p); err != nil {
		t.Fatalf("put account %s: %v", p.ID, err)
	}
}

func mustGrant(t *testing.T, te *testEngine, id string, src ledger.Source, amount int64) {
	t.Helper()
	if _, err := te.Grant(context.Background(), engine.GrantParams{AccountID: id, GrantParams: ledger.GrantParams{Source: src, AmountCredits: amount}}); err != nil {
		t.Fatalf("grant %d %s to %s: %v", amount, src, id, err)
	}
}

// reserveExactBalance runs 200 concurrent reserves of 5 credits (generate)
// against an account with exactly 45 available, checks that exactly nine
// succeed, and returns them.
func reserveExactBalance(t *testing.T) (*testEngine, []*ledger.Hold) {
	t.Helper()
	ctx := context.Background()
	te := newTestEngine(t, time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC))
	// Free plan in UTC: 30 signup + 15 daily = 45 image credits.
	mustPut(t, te, engine.PutAccountParams{ID: "hot", Plan: ledger.PlanFree, Timezone: "UTC"})
	if b := te.balance(t, "hot"); b.AvailableCredits != 45 || b.AvailableByCategory[ledger.CategoryImage] != 45 || b.HeldCredits != 0 {
		t.Fatalf("new account balance %+v, want 45 available", b)
	}

	const workers = 200
	var (
		start    = make(chan struct{})
		wg       sync.WaitGroup
		mu       sync.Mutex
		holds    []*ledger.Hold
		insuff   int
		otherErr []error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := te.Reserve(ctx, engine.ReserveParams{AccountID: "hot", ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: 1}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				holds = append(holds, res.Value)
			case ledger.ErrorCode(err) == ledger.EInsufficient:
				insuff++
			default:
				otherErr = append(otherErr, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(otherErr) > 0 {
		t.Fatalf("unexpected reserve errors: %v", otherErr)
	}
	if len(holds) != 9 || insuff != workers-9 {
		t.Fatalf("%d reserves succeeded and %d were refused for insufficient credits; want 9 and %d", len(holds), insuff, workers-9)
	}
	seen := map[string]bool{}
	for _, h := range holds {
		if seen[h.ID] || h.Status != ledger.HoldPending || h.AmountCredits != 5 || h.UnitPriceCredits != 5 || h.Quantity != 1 {
			t.Fatalf("bad hold %+v", *h)
		}
		seen[h.ID] = true
	}
	b := te.balance(t, "hot")
	if b.AvailableCredits != 0 || b.HeldCredits != 45 || b.AvailableByCategory[ledger.CategoryImage] != 0 {
		t.Fatalf("after the reserves: available %d held %d, want 0 and 45", b.AvailableCredits, b.HeldCredits)
	}
	te.verify(t)
	return te, holds
}

func resolveHold(ctx context.Context, te *testEngine, kind, id string) (*ledger.Hold, error) {
	var v engine.Outcome[*ledger.Hold]
	var err error
	switch kind {
	case "capture":
		v, err = te.Capture(ctx, engine.HoldParams{HoldID: id, Quantity: 1})
	case "capture0":
		v, err = te.Capture(ctx, engine.HoldParams{HoldID: id, Quantity: 0})
	default:
		v, err = te.Release(ctx, engine.HoldParams{HoldID: id, Reason: "cancelled"})
	}
	if err != nil {
		return nil, err
	}
	return v.Value, nil
}

// agrees reports whether a resolution of kind is the one that h ended with.
func agrees(kind string, h *ledger.Hold) bool {
	switch kind {
	case "capture":
		return h.Status == ledger.HoldCaptured && h.CapturedQuantity == 1
	case "capture0":
		return h.Status == ledger.HoldCaptured && h.CapturedQuantity == 0
	default:
		return h.Status == ledger.HoldReleased
	}
}

// checkHot checks the account of reserveExactBalance once its holds are
// resolved with charged credits captured in all.
func checkHot(t *testing.T, te *testEngine, holds []*ledger.Hold, charged int64) {
	t.Helper()
	ctx := context.Background()
	for _, h := range holds {
		if sh, err := te.store.GetHold(ctx, h.ID); err != nil || sh.Status == ledger.HoldPending {
			t.Fatalf("hold %s after resolving: %+v, %v", h.ID, sh, err)
		}
	}
	b := te.balance(t, "hot")
	if b.HeldCredits != 0 || b.AvailableCredits != 45-charged {
		t.Fatalf("after resolving: available %d held %d, want %d and 0 (charged %d)", b.AvailableCredits, b.HeldCredits, 45-charged, charged)
	}
	te.verify(t)
	hist, err := te.store.LoadHistory(ctx, "hot")
	if err != nil {
		t.Fatal(err)
	}
	var storedCharged int64
	for _, g := range hist.Grants {
		storedCharged += g.ChargedCredits
	}
	if storedCharged != charged {
		t.Fatalf("buckets say %d charged, holds say %d", storedCharged, charged)
	}
}

// TestConcurrentReserveExactBalance: 200 concurrent reserves of 5 credits
// against exactly 45 available; then the nine holds are resolved
// concurrently (one resolution each), and every resolution is repeated.
func TestConcurrentReserveExactBalance(t *testing.T) {
	te, holds := reserveExactBalance(t)
	ctx := context.Background()
	kinds := []string{"capture", "capture0", "release"}
	kindOf := func(i int) string { return kinds[i%len(kinds)] }
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, len(holds))
	for i, h := range holds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = resolveHold(ctx, te, kindOf(i), h.ID)
		}()
	}
	close(start)
	wg.Wait()
	var charged int64
	for i, h := range holds {
		if errs[i] != nil {
			t.Fatalf("%s of %s: %v", kindOf(i), h.ID, errs[i])
		}
		// The same resolution again returns the first outcome; any other
		// is a conflict.
		for _, k := range kinds {
			got, err := resolveHold(ctx, te, k, h.ID)
			switch {
			case k == kindOf(i) && (err != nil || !agrees(k, got)):
				t.Fatalf("repeated %s of %s: %+v, %v", k, h.ID, got, err)
			case k != kindOf(i) && ledger.ErrorCode(err) != ledger.EConflict:
				t.Fatalf("%s after %s of %s: got %+v, %v; want a conflict", k, kindOf(i), h.ID, got, err)
			}
		}
		if kindOf(i) == "capture" {
			charged += 5
		}
	}
	checkHot(t, te, holds, charged)
}

// TestConcurrentConflictingResolutions races a capture, a duplicate
// capture, a capture of 0 and a release on each of the nine holds: exactly
// one resolution wins, every call either agrees with it or is a conflict.
func TestConcurrentConflictingResolutions(t *testing.T) {
	te, holds := reserveExactBalance(t)
	ctx := context.Background()
	type res struct {
		kind string
		hold *ledger.Hold
		err  error
	}
	kinds := []string{"capture", "capture", "release", "capture0"}
	results := make([][]res, len(holds))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, h := range holds {
		results[i] = make([]res, len(kinds))
		for j, kind := range kinds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got, err := resolveHold(ctx, te, kind, h.ID)
				results[i][j] = res{kind, got, err}
			}()
		}
	}
	close(start)
	wg.Wait()
	var charged int64
	for i, h := range holds {
		final, err := te.store.GetHold(ctx, h.ID)
		if err != nil {
			t.Fatalf("stored hold %s: %v", h.ID, err)
		}
		for _, r := range results[i] {
			ok := agrees(r.kind, final)
			switch {
			case ok && r.err != nil:
				t.Errorf("hold %s ended %s/%d but %s failed: %v", h.ID, final.Status, final.CapturedQuantity, r.kind, r.err)
			case ok && (r.hold.Status != final.Status || r.hold.CapturedCredits != final.CapturedCredits):
				t.Errorf("hold %s ended %+v but %s returned %+v", h.ID, *final, r.kind, *r.hold)
			case !ok && ledger.ErrorCode(r.err) != ledger.EConflict:
				t.Errorf("hold %s ended %s/%d; %s should be a conflict, got %+v, %v", h.ID, final.Status, final.CapturedQuantity, r.kind, r.hold, r.err)
			}
		}
		charged += final.CapturedCredits
	}
	checkHot(t, te, holds, charged)
}

// TestConcurrentCaptureAndExtend races a capture and an extend on each of
// the nine holds: an extend that succeeds must have found the hold pending.
// (A regression test: in one batch, an Extend after a Capture once changed
// the expiry of the captured hold and reported success.)
func TestConcurrentCaptureAndExtend(t *testing.T) {
	te, holds := reserveExactBalance(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	start := make(chan struct{})
	extended := make([]*ledger.Hold, len(holds))
	errs := make([]error, len(holds))
	for i, h := range holds {
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			if _, err := resolveHold(ctx, te, "capture", h.ID); err != nil {
				t.Errorf("capture %s: %v", h.ID, err)
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			v, err := te.Extend(ctx, engine.HoldParams{HoldID: h.ID, TTLSeconds: 60})
			errs[i] = err
			if err == nil {
				extended[i] = v.Value
			}
		}()
	}
	close(start)
	wg.Wait()
	for i, h := range holds {
		switch {
		case errs[i] != nil && ledger.ErrorCode(errs[i]) != ledger.EConflict:
			t.Errorf("extend %s: %v", h.ID, errs[i])
		case errs[i] == nil && extended[i].Status != ledger.HoldPending:
			t.Errorf("extend %s succeeded on a %s hold: %+v", h.ID, extended[i].Status, *extended[i])
		}
	}
	checkHot(t, te, holds, 45)
}

// TestConcurrentMixedWorkload runs reserves, captures, releases, grants and
// balance reads over several accounts at once, then checks every account's
// sums against what the callers observed, lets the holds left pending
// expire through the sweeper, and checks again. It runs with the default
// account cache and with one that holds only two of the five accounts, so
// accounts are evicted and reloaded all the time, and with three
// committers (as on PostgreSQL), each owning some of the accounts.
func TestConcurrentMixedWorkload(t *testing.T) {
	t.Run("DefaultCache", func(t *testing.T) { concurrentMixedWorkload(t, 0) })
	t.Run("TwoCachedAccounts", func(t *testing.T) {
		concurrentMixedWorkload(t, 0, func(c *ledger.Config) { c.Limits.CachedAccountsMax = 2 })
	})
	t.Run("ThreeCommitters", func(t *testing.T) { concurrentMixedWorkload(t, 3) })
}

func concurrentMixedWorkload(t *testing.T, committers int, opts ...func(*ledger.Config)) {
	ctx := context.Background()
	te := newTestEngineN(t, time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC), committers, opts...)
	const (
		accounts = 5
		workers  = 24
		opsEach  = 60
		initial  = 2000
	)
	type acctStats struct {
		granted  atomic.Int64 // by the workload, beyond signup and the initial grant
		captured atomic.Int64 // credits charged by the captures the callers saw succeed
	}
	stats := make([]acctStats, accounts)
	ids := make([]string, accounts)
	for i := range ids {
		ids[i] = fmt.Sprintf("mix%d", i)
		mustPut(t, te, engine.PutAccountParams{ID: ids[i], Plan: ledger.PlanPaid, Timezone: "Europe/Berlin"})
		mustGrant(t, te, ids[i], ledger.SourcePurchase, initial)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	// Racing two captures of one hold in one batch once crashed the engine.
	raceCaptures := true

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		pending = map[string]int{} // hold id → account index, left pending
		errs    []error
	)
	report := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	capture := func(h *ledger.Hold, q int64) bool {
		v, err := te.Capture(ctx, engine.HoldParams{HoldID: h.ID, Quantity: q})
		if err != nil {
			report(fmt.Errorf("capture %s: %w", h.ID, err))
			return false
		}
		if got := v.Value; got.Status != ledger.HoldCaptured || got.CapturedQuantity != q || got.CapturedCredits != q*h.UnitPriceCredits {
			report(fmt.Errorf("capture %s of %d returned %+v", h.ID, q, *got))
			return false
		}
		return true
	}
	actions := []string{"generate", "edit", "upscale", "video"}
	start := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			<-start
			for range opsEach {
				ai := r.IntN(accounts)
				id := ids[ai]
				switch k := r.IntN(10); {
				case k < 6: // reserve, then resolve or leave pending
					qty := int64(1 + r.IntN(3))
					v, err := te.Reserve(ctx, engine.ReserveParams{AccountID: id, ReserveParams: ledger.ReserveParams{
						Action: actions[r.IntN(len(actions))], Quantity: qty}})
					if err != nil {
						if ledger.ErrorCode(err) != ledger.EInsufficient {
							report(fmt.Errorf("reserve on %s: %w", id, err))
						}
						continue
					}
					h := v.Value
					switch r.IntN(4) {
					case 0:
						mu.Lock()
						pending[h.ID] = ai
						mu.Unlock()
					case 1:
						if _, err := te.Release(ctx, engine.HoldParams{HoldID: h.ID, Reason: "failed"}); err != nil {
							report(fmt.Errorf("release %s: %w", h.ID, err))
						}
					default:
						q := r.Int64N(qty + 1)
						ok := true
						if raceCaptures {
							var cw sync.WaitGroup
							var oks [2]bool
							for j := range oks {
								cw.Add(1)
								go func() {
									defer cw.Done()
									oks[j] = capture(h, q)
								}()
							}
							cw.Wait()
							ok = oks[0] && oks[1]
						} else {
							// A capture and its retry.
							ok = capture(h, q) && capture(h, q)
						}
						if ok {
							stats[ai].captured.Add(q * h.UnitPriceCredits)
						}
					}
				case k < 8:
					amount := int64(1 + r.IntN(100))
					if _, err := te.Grant(ctx, engine.GrantParams{AccountID: id, GrantParams: ledger.GrantParams{
						Source: ledger.SourcePurchase, AmountCredits: amount}}); err != nil {
						report(fmt.Errorf("grant %s: %w", id, err))
						continue
					}
					stats[ai].granted.Add(amount)
				default:
					b, err := te.Balance(ctx, id)
					if err != nil {
						report(fmt.Errorf("balance %s: %w", id, err))
						continue
					}
					if b.AvailableCredits < 0 || b.HeldCredits < 0 || b.AvailableByCategory[ledger.CategoryVideo] > b.AvailableCredits {
						report(fmt.Errorf("balance %s: %+v", id, b))
					}
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d unexpected errors, first: %v", len(errs), errs[0])
	}
	te.verify(t)

	check := func(when string, wantHeld func(i int) int64) {
		t.Helper()
		for i, id := range ids {
			hist, err := te.store.LoadHistory(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var amount, remaining, held, charged, expired, entryCharged int64
			for _, g := range hist.Grants {
				amount += g.AmountCredits
				remaining += g.RemainingCredits
				held += g.HeldCredits
				charged += g.ChargedCredits
				expired += g.ExpiredCredits
			}
			for _, e := range hist.Entries {
				if e.Type == ledger.EntryCapture {
					entryCharged += e.AmountCredits
				}
			}
			wantAmount := 30 + initial + stats[i].granted.Load()
			b := te.balance(t, id)
			if amount != wantAmount || charged != stats[i].captured.Load() || entryCharged != charged || expired != 0 ||
				held != wantHeld(i) || b.HeldCredits != held || b.AvailableCredits != remaining || remaining != amount-charged-held {
				t.Errorf("%s, %s: buckets amount %d remaining %d held %d charged %d expired %d, capture entries %d; balance %d/%d;"+
					" want amount %d, charged %d (observed), held %d",
					when, id, amount, remaining, held, charged, expired, entryCharged, b.AvailableCredits, b.HeldCredits,
					wantAmount, stats[i].captured.Load(), wantHeld(i))
			}
		}
	}
	check("after the workload", func(i int) int64 {
		var held int64
		for hid, ai := range pending {
			if ai == i {
				h, err := te.store.GetHold(ctx, hid)
				if err != nil {
					t.Fatal(err)
				}
				held += h.AmountCredits
			}
		}
		return held
	})

	// Let the holds left pending expire: the sweeper reacts to the clock
	// move by itself, without anyone reading the accounts.
	if err := te.clock.Advance(te.cfg.HoldTTL()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for hid := range pending {
		for {
			h, err := te.store.GetHold(ctx, hid)
			if err != nil {
				t.Fatal(err)
			}
			if h.Status == ledger.HoldExpired {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("hold %s is still %s after its ttl passed", hid, h.Status)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	check("after expiry", func(int) int64 { return 0 })
	te.verify(t)
}
