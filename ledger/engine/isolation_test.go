package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/postgres"
	"github.com/creditd/creditd/store/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Markers in grant references that make a faultStore fail the batch that
// saves them.
const (
	poisonData  = "poison-data"  // the store refuses the data (ledger.ErrBadData)
	poisonStore = "poison-store" // the store itself fails (a full disk, say)
)

// refusedMessage is what a faultStore tells the caller of refused data.
const refusedMessage = "a text value holds a NUL byte or is not valid UTF-8"

// faultStore wraps a store. A batch that saves a grant whose reference
// holds poisonData fails there, as a store refusing a value does (an
// EInvalid carrying ledger.ErrBadData); one whose reference holds
// poisonStore fails at Commit with a plain error, as a store that cannot
// write does. It counts the batches begun and those that failed, and can
// hold the next batch at BeginBatch (hold).
type faultStore struct {
	ledger.Store
	mu   sync.Mutex
	gate *gate

	begun, refused, failed atomic.Int64
}

// gate holds one BeginBatch: entered is closed when it arrives, and it
// waits for release to be closed.
type gate struct{ entered, release chan struct{} }

func (s *faultStore) hold() *gate {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
	return g
}

func (s *faultStore) BeginBatch(ctx context.Context) (ledger.Batch, error) {
	s.mu.Lock()
	g := s.gate
	s.gate = nil
	s.mu.Unlock()
	if g != nil {
		close(g.entered)
		<-g.release
	}
	s.begun.Add(1)
	b, err := s.Store.BeginBatch(ctx)
	if err != nil {
		return nil, err
	}
	return &faultBatch{Batch: b, s: s}, nil
}

type faultBatch struct {
	ledger.Batch
	s         *faultStore
	storeFail bool
}

func (b *faultBatch) SaveGrants(ctx context.Context, grants []*ledger.Grant) error {
	for _, g := range grants {
		switch {
		case strings.Contains(g.Reference, poisonData):
			b.s.refused.Add(1)
			return fmt.Errorf("faultstore: save grants: %w: %w: %w", ledger.Errorf(ledger.EInvalid, refusedMessage),
				ledger.ErrBadData, errors.New(`ERROR: invalid byte sequence for encoding "UTF8": 0x00 (SQLSTATE 22021)`))
		case strings.Contains(g.Reference, poisonStore):
			b.storeFail = true
		}
	}
	return b.Batch.SaveGrants(ctx, grants)
}

func (b *faultBatch) Commit() error {
	if b.storeFail {
		b.s.failed.Add(1)
		_ = b.Batch.Rollback()
		return errors.New("faultstore: commit: write journal: no space left on device")
	}
	return b.Batch.Commit()
}

// stores opens a fresh store of each kind for f.
func eachStore(t *testing.T, f func(t *testing.T, s ledger.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "creditd.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		f(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		f(t, s)
	})
}

// counter returns the value of a counter registered with reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var v float64
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

type answer struct {
	v   any
	err error
}

func async(f func() (any, error)) chan answer {
	ch := make(chan answer, 1)
	go func() {
		v, err := f()
		ch <- answer{v, err}
	}()
	return ch
}

// waitQueued spins until n operations are queued.
func waitQueued(t *testing.T, e *engine.Engine, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.QueuedOps() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d operations queued, want %d", e.QueuedOps(), n)
		}
		runtime.Gosched()
	}
}

// oneBatch runs ops as one batch, in order: it holds the committer in
// BeginBatch with another operation, queues ops one after another, then
// lets it go (the committer then takes them all at once). It returns
// their answers and the transactions the batch took.
func oneBatch(t *testing.T, e *engine.Engine, fs *faultStore, ops []func() (any, error)) ([]answer, int64) {
	t.Helper()
	g := fs.hold()
	blocker := async(func() (any, error) { return reserve1(e, "blocker") })
	<-g.entered
	chans := make([]chan answer, len(ops))
	for i, f := range ops {
		chans[i] = async(f)
		waitQueued(t, e, i+1)
	}
	before := fs.begun.Load()
	close(g.release)
	if a := <-blocker; a.err != nil {
		t.Fatalf("blocker: %v", a.err)
	}
	out := make([]answer, len(ops))
	for i, ch := range chans {
		out[i] = <-ch
	}
	return out, fs.begun.Load() - before - 1
}

// answerOf is an outcome as the isolation tests compare it: the result,
// or the outcome itself when it was replayed.
func answerOf[T any](o engine.Outcome[T], err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if o.Replayed {
		return o, nil
	}
	return o.Value, nil
}

func reserve1(e *engine.Engine, acct string) (any, error) {
	return answerOf(e.Reserve(context.Background(), engine.ReserveParams{AccountID: acct, ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: 1}}))
}

func grantRef(e *engine.Engine, acct, ref string, amount int64, idem *engine.Idempotency[*engine.GrantResult]) (any, error) {
	return answerOf(e.Grant(context.Background(), engine.GrantParams{AccountID: acct, Idem: idem,
		GrantParams: ledger.GrantParams{Source: ledger.SourceAdmin, AmountCredits: amount, Reference: ref}}))
}

func idem[T any](key, fingerprint string) *engine.Idempotency[T] {
	return &engine.Idempotency[T]{IdempotencyKey: engine.IdempotencyKey{Principal: "admin", Key: key, Fingerprint: fingerprint},
		Render: func(T) (int, []byte) { return 200, []byte("{}") }}
}

func setupAccounts(t *testing.T, e *engine.Engine, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := e.PutAccount(context.Background(), engine.PutAccountParams{ID: id, Plan: ledger.PlanPaid}); err != nil {
			t.Fatal(err)
		}
		if _, err := grantRef(e, id, "", 10_000, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func verifyStore(t *testing.T, cfg *ledger.Config, s ledger.Store) {
	t.Helper()
	rep, err := ledger.VerifyStore(context.Background(), cfg, s)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("verify found %d problems: %v", len(rep.Problems), rep.Problems)
	}
}

// TestIsolateBadOperation: on both stores, when the store refuses the data
// of one operation of a batch, only that operation is answered, with
// invalid_request and the store's message; the others, of other accounts
// and of its own, commit and are answered as usual, and nothing of it is
// written (no grant, no entry, no event, no idempotency record). It takes
// at most two transactions per halving. A failure of the store itself
// fails the whole batch (unavailable), in one transaction, never retried
// operation by operation.
func TestIsolateBadOperation(t *testing.T) {
	eachStore(t, func(t *testing.T, inner ledger.Store) {
		ctx := context.Background()
		fs := &faultStore{Store: inner}
		reg := prometheus.NewRegistry()
		cfg := ledger.DefaultConfig()
		// One committer, so that one batch holds every operation queued.
		e, err := engine.New(ctx, engine.Options{Config: cfg, Store: fs, Logger: discardLogger(), SweepInterval: time.Hour,
			Committers: 1, Metrics: engine.NewMetrics(reg)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		accts := []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"}
		setupAccounts(t, e, append(accts, "victim", "blocker")...)
		var mu sync.Mutex
		var events []engine.Event
		defer e.Subscribe(func(ev engine.Event) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		})()
		victim0, err := e.Balance(ctx, "victim")
		if err != nil {
			t.Fatal(err)
		}

		// Refused data: one grant of the victim's, among operations of
		// other accounts and of its own, before and after it.
		var ops []func() (any, error)
		for _, a := range accts[:4] {
			ops = append(ops, func() (any, error) { return reserve1(e, a) })
		}
		ops = append(ops,
			func() (any, error) {
				return answerOf(e.Reserve(ctx, engine.ReserveParams{AccountID: "a4", Idem: idem[*ledger.Hold]("k-valid", "fp"),
					ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: 1}}))
			},
			func() (any, error) { return grantRef(e, "victim", "ok-before", 7, nil) },
			func() (any, error) {
				return grantRef(e, "victim", "ref-"+poisonData, 11, idem[*engine.GrantResult]("k-poison", "fp"))
			},
			func() (any, error) { return reserve1(e, "victim") },
		)
		for _, a := range accts[5:] {
			ops = append(ops, func() (any, error) { return reserve1(e, a) })
		}
		const bad = 6
		answers, attempts := oneBatch(t, e, fs, ops)
		for i, a := range answers {
			if i == bad {
				continue
			}
			if a.err != nil {
				t.Errorf("valid operation %d: %v", i, a.err)
			}
		}
		if err := answers[bad].err; ledger.ErrorCode(err) != ledger.EInvalid || ledger.ErrorMessage(err) != refusedMessage {
			t.Errorf("refused operation: %v, %v; want invalid_request: %s", answers[bad].v, err, refusedMessage)
		}
		if strings.Contains(fmt.Sprint(answers[bad].err), "SQLSTATE") {
			t.Errorf("the answer shows the driver's error: %v", answers[bad].err)
		}
		// The whole batch, then at each of the ⌈log₂ n⌉ levels at most
		// two halves; the refused grant is in one of them.
		levels := int64(bits.Len(uint(len(ops) - 1)))
		if attempts < 3 || attempts > 1+2*levels {
			t.Errorf("%d transactions for a batch of %d with one refused operation, want 3 to %d", attempts, len(ops), 1+2*levels)
		}
		if n := fs.refused.Load(); n < 2 || n > 1+levels {
			t.Errorf("the refused grant reached the store %d times, want 2 to %d", n, 1+levels)
		}
		if got := counter(t, reg, "creditd_engine_isolated_ops_total"); got != 1 {
			t.Errorf("isolated operations metric %v, want 1", got)
		}
		if got := counter(t, reg, "creditd_engine_commit_failures_total"); got != 0 {
			t.Errorf("commit failures metric %v, want 0", got)
		}
		// The victim got the grant before it and the hold after it, and
		// nothing of the refused one.
		hold, ok := answers[bad+1].v.(*ledger.Hold)
		if !ok {
			t.Fatalf("the reserve after the refused grant: %v, %v", answers[bad+1].v, answers[bad+1].err)
		}
		victim1, err := e.Balance(ctx, "victim")
		if err != nil {
			t.Fatal(err)
		}
		if want := victim0.AvailableCredits + 7 - hold.AmountCredits; victim1.AvailableCredits != want || victim1.HeldCredits != hold.AmountCredits {
			t.Errorf("victim: %d available, %d held; want %d, %d", victim1.AvailableCredits, victim1.HeldCredits, want, hold.AmountCredits)
		}
		hist, err := inner.LoadHistory(ctx, "victim")
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range hist.Grants {
			if strings.Contains(g.Reference, poisonData) {
				t.Errorf("the refused grant was written: %+v", g)
			}
		}
		for _, en := range hist.Entries {
			if strings.Contains(en.Reason, poisonData) {
				t.Errorf("the refused grant's entry was written: %+v", en)
			}
		}
		mu.Lock()
		published := 0
		for _, ev := range events {
			for _, en := range ev.Entries {
				if strings.Contains(en.Reason, poisonData) {
					t.Errorf("the refused grant's entry was published: %+v", en)
				}
				if en.Reason == "ok-before" {
					published++
				}
			}
		}
		mu.Unlock()
		if published != 1 {
			t.Errorf("the grant before the refused one was published %d times, want once", published)
		}
		// A committed half saved its idempotency records; the refused
		// operation saved none, so its key is free.
		v, err := e.Reserve(ctx, engine.ReserveParams{AccountID: "a4", Idem: idem[*ledger.Hold]("k-valid", "fp"),
			ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: 1}})
		if err != nil || !v.Replayed {
			t.Errorf("retry of a committed operation: %#v, %v; want its replay", v, err)
		}
		g, err := e.Grant(ctx, engine.GrantParams{AccountID: "victim", Idem: idem[*engine.GrantResult]("k-poison", "another request"),
			GrantParams: ledger.GrantParams{Source: ledger.SourceAdmin, AmountCredits: 11, Reference: "clean"}})
		if err != nil || g.Replayed || g.Status == 0 || !g.Value.Created {
			t.Errorf("the refused operation's key, reused: %#v, %v; want a new grant", g, err)
		}

		// The store's own failure: the whole batch is unavailable, in one
		// transaction.
		before := make(map[string]ledger.Balance)
		for _, a := range append(accts, "victim") {
			before[a], _ = e.Balance(ctx, a)
		}
		ops = ops[:0]
		for _, a := range accts {
			ops = append(ops, func() (any, error) { return reserve1(e, a) })
		}
		ops = append(ops,
			func() (any, error) { return grantRef(e, "victim", "ref-"+poisonStore, 11, nil) },
			func() (any, error) { return reserve1(e, "victim") })
		answers, attempts = oneBatch(t, e, fs, ops)
		for i, a := range answers {
			if ledger.ErrorCode(a.err) != ledger.EUnavailable {
				t.Errorf("operation %d of a batch the store failed: %v, %v; want unavailable", i, a.v, a.err)
			}
		}
		if attempts != 1 || fs.failed.Load() != 1 {
			t.Errorf("a store failure took %d transactions (%d failed), want 1", attempts, fs.failed.Load())
		}
		if got := counter(t, reg, "creditd_engine_commit_failures_total"); got != 1 {
			t.Errorf("commit failures metric %v, want 1", got)
		}
		if got := counter(t, reg, "creditd_engine_isolated_ops_total"); got != 1 {
			t.Errorf("isolated operations metric %v, want still 1", got)
		}
		for a, b0 := range before {
			b1, err := e.Balance(ctx, a)
			if err != nil || b1.AvailableCredits != b0.AvailableCredits || b1.HeldCredits != b0.HeldCredits {
				t.Errorf("%s after a failed batch: %+v, %v; want %+v", a, b1, err, b0)
			}
		}
		for _, a := range accts {
			if _, err := reserve1(e, a); err != nil {
				t.Errorf("reserve on %s after the failure: %v", a, err)
			}
		}
		// The first batch after the failure dropped the cached states
		// (a store may reopen itself meanwhile); the victim, untouched
		// since, is read from the store again.
		if e.IsCached("victim") {
			t.Error("victim still cached after a store failure and a later batch")
		}
		verifyStore(t, cfg, inner)
	})
}

// TestBadBytesUnderLoadPostgres: on real PostgreSQL, with the default
// committers, while accounts run reserve/capture cycles another goroutine
// keeps submitting operations with values PostgreSQL refuses — NUL bytes
// and invalid UTF-8 in an account id, job params and an idempotency key —
// straight to the engine. (A grant reference is checked by the engine
// itself, ledger.CheckReference, so it never reaches the store.) No valid operation fails,
// none is lost or doubled, each bad one is answered invalid_request after
// being isolated from its batch, nothing of them is written, and the
// ledger verifies clean.
func TestBadBytesUnderLoadPostgres(t *testing.T) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, pgtest.DSN(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	reg := prometheus.NewRegistry()
	cfg := ledger.DefaultConfig()
	e, err := engine.New(ctx, engine.Options{Config: cfg, Store: s, Logger: discardLogger(), SweepInterval: time.Hour,
		Metrics: engine.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	const workers, cycles, badMin = 8, 40, 30
	accts := make([]string, workers)
	for i := range accts {
		accts[i] = fmt.Sprintf("w%d", i)
	}
	setupAccounts(t, e, append(accts, "bad")...)
	start := make(map[string]ledger.Balance)
	for _, a := range append(accts, "bad") {
		start[a], _ = e.Balance(ctx, a)
	}
	badOps := []func(i int) (any, error){
		func(int) (any, error) { return reserve1(e, "x\x00y") },
		func(int) (any, error) { return reserve1(e, "\xffbad") },
		func(int) (any, error) {
			return answerOf(e.CreateJob(ctx, engine.CreateJobParams{AccountID: "bad", CreateJobParams: ledger.CreateJobParams{
				Action: "generate", Quantity: 1, Params: []byte(`{"prompt":"` + "\xff" + `"}`)}}))
		},
		func(i int) (any, error) {
			return grantRef(e, "bad", fmt.Sprintf("ok-%d", i), 1, idem[*engine.GrantResult](fmt.Sprintf("k\x00%d", i), "fp"))
		},
	}

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []error
		price    atomic.Int64
		done     atomic.Bool
	)
	fail := func(err error) {
		mu.Lock()
		failures = append(failures, err)
		mu.Unlock()
	}
	began := time.Now()
	for _, a := range accts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range cycles {
				v, err := reserve1(e, a)
				if err != nil {
					fail(fmt.Errorf("reserve on %s: %w", a, err))
					continue
				}
				h := v.(*ledger.Hold)
				price.Store(h.AmountCredits)
				if _, err := e.Capture(ctx, engine.HoldParams{HoldID: h.ID, Quantity: 1}); err != nil {
					fail(fmt.Errorf("capture on %s: %w", a, err))
				}
			}
		}()
	}
	var bad int
	var wrong []string
	badDone := make(chan struct{})
	go func() {
		defer close(badDone)
		for ; !done.Load() || bad < badMin; bad++ {
			v, err := badOps[bad%len(badOps)](bad)
			if ledger.ErrorCode(err) != ledger.EInvalid {
				wrong = append(wrong, fmt.Sprintf("bad operation %d: %v, %v", bad%len(badOps), v, err))
			}
		}
	}()
	wg.Wait()
	done.Store(true)
	<-badDone
	t.Logf("%d valid operations and %d bad ones in %v", 2*workers*cycles, bad, time.Since(began))

	if len(failures) > 0 {
		t.Errorf("%d of %d valid operations failed; first: %v", len(failures), 2*workers*cycles, failures[0])
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d bad operations not answered invalid_request; first: %s", len(wrong), bad, wrong[0])
	}
	if got := counter(t, reg, "creditd_engine_isolated_ops_total"); got != float64(bad) {
		t.Errorf("isolated operations metric %v, want %d (each bad operation, refused by the store)", got, bad)
	}
	if got := counter(t, reg, "creditd_engine_commit_failures_total"); got != 0 {
		t.Errorf("commit failures metric %v, want 0", got)
	}
	for _, a := range accts {
		b, err := e.Balance(ctx, a)
		if want := start[a].AvailableCredits - cycles*price.Load(); err != nil || b.AvailableCredits != want || b.HeldCredits != 0 {
			t.Errorf("%s after %d cycles: %+v, %v; want %d available, none held", a, cycles, b, err, want)
		}
	}
	if b, err := e.Balance(ctx, "bad"); err != nil || b.AvailableCredits != start["bad"].AvailableCredits || b.HeldCredits != 0 {
		t.Errorf("the bad operations' account: %+v, %v; want it unchanged", b, err)
	}
	if jobs, _, err := e.ListJobs(ctx, "bad", 0, 0); err != nil || len(jobs) != 0 {
		t.Errorf("jobs of the bad operations' account: %v, %v; want none", jobs, err)
	}
	verifyStore(t, cfg, s)
}
