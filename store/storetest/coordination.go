package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

// testExclusive: the answer is fixed for the store's life (the engine asks
// once, in New).
func testExclusive(t *testing.T, s ledger.Store) {
	first := s.Exclusive()
	write(t, s, func(b ledger.Batch) { saveAccounts(t, b, newAccount("A")) })
	if s.Exclusive() != first {
		t.Errorf("Exclusive() changed from %v to %v", first, !first)
	}
}

// testClose: Close is idempotent, and a read after it fails instead of
// hanging.
func testClose(t *testing.T, s ledger.Store) {
	write(t, s, func(b ledger.Batch) { saveAccounts(t, b, newAccount("A")) })
	check(t, "Close", s.Close())
	check(t, "second Close", s.Close())
	if _, err := s.GetAccount(ctx(t), "A"); err == nil {
		t.Error("GetAccount after Close: no error")
	}
}

// testLockAndBumpAccounts: the versions before the increment come back;
// the batch then sees, and its commit stores, the incremented versions with
// every other column as it was; missing accounts are not created, and a
// rollback undoes the increment.
func testLockAndBumpAccounts(t *testing.T, s ledger.Store) {
	a, b := newAccount("A"), newAccount("B")
	a.Version, b.Version = 3, 5
	write(t, s, func(bt ledger.Batch) { saveAccounts(t, bt, a, b) })

	bt, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	got, err := bt.LockAndBumpAccounts(ctx(t), []string{"A", "missing"})
	check(t, "LockAndBumpAccounts", err)
	same(t, "LockAndBumpAccounts", got, map[string]int64{"A": 3})
	check(t, "Rollback", bt.Rollback())
	stored, err := s.GetAccount(ctx(t), "A")
	check(t, "GetAccount", err)
	eqAccount(t, "account after a rolled-back bump", stored, a)

	write(t, s, func(bt ledger.Batch) {
		got, err := bt.LockAndBumpAccounts(ctx(t), []string{"A", "B", "missing"})
		check(t, "LockAndBumpAccounts", err)
		same(t, "LockAndBumpAccounts", got, map[string]int64{"A": 3, "B": 5})
		st, err := bt.LoadState(ctx(t), "A")
		check(t, "Batch.LoadState", err)
		if st.Account.Version != 4 {
			t.Errorf("Batch.LoadState after the bump: version %d, want 4", st.Account.Version)
		}
		got, err = bt.LockAndBumpAccounts(ctx(t), nil)
		check(t, "LockAndBumpAccounts(nil)", err)
		if len(got) != 0 {
			t.Errorf("LockAndBumpAccounts(nil): %v", got)
		}
	})
	for _, want := range []*ledger.Account{a, b} {
		w := *want
		w.Version++
		got, err := s.GetAccount(ctx(t), w.ID)
		check(t, "GetAccount", err)
		eqAccount(t, "account after a committed bump", got, &w)
	}
	_, err = s.GetAccount(ctx(t), "missing")
	wantCode(t, "GetAccount of a missing account locked and bumped", err, ledger.ENotFound)
}

// testLockIdempotencyKeys: keys come in any order, repeated or none; a
// batch that locked a key reads every record of it committed before it got
// the lock, here one that another batch, holding the lock first, committed
// while it waited (on a store whose batches run one at a time it waited in
// BeginBatch; the blocking itself is tested per store).
func testLockIdempotencyKeys(t *testing.T, s ledger.Store) {
	const principal = "storetest-idemlock"
	keys := [][2]string{{principal, "k2"}, {principal, "k1"}, {principal, "k2"}}
	first, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	defer first.Rollback()
	check(t, "LockIdempotencyKeys(nil)", first.LockIdempotencyKeys(ctx(t), nil))
	check(t, "LockIdempotencyKeys", first.LockIdempotencyKeys(ctx(t), keys))
	_, err = first.GetIdempotency(ctx(t), principal, "k1")
	wantCode(t, "GetIdempotency of a key not yet saved", err, ledger.ENotFound)
	rec := &ledger.IdempotencyRecord{Principal: principal, Key: "k1", Fingerprint: "fp", Status: 201, Body: []byte(`{}`), CreatedAt: at(0)}
	check(t, "SaveIdempotency", first.SaveIdempotency(ctx(t), []*ledger.IdempotencyRecord{rec}))

	type read struct {
		rec *ledger.IdempotencyRecord
		err error
	}
	second := make(chan read, 1)
	go func() {
		b, err := s.BeginBatch(ctx(t))
		if err != nil {
			second <- read{err: err}
			return
		}
		defer b.Rollback()
		if err := b.LockIdempotencyKeys(ctx(t), [][2]string{{principal, "k1"}}); err != nil {
			second <- read{err: err}
			return
		}
		r, err := b.GetIdempotency(ctx(t), principal, "k1")
		second <- read{rec: r, err: err}
	}()
	check(t, "Commit", first.Commit())
	select {
	case r := <-second:
		check(t, "second batch: LockIdempotencyKeys, GetIdempotency", r.err)
		same(t, "second batch's record", normIdem(*r.rec), normIdem(*rec))
	case <-time.After(30 * time.Second):
		t.Fatal("the second batch did not get the lock after the first committed")
	}
}

// testLoadStates: LoadStates answers what LoadState answers account by
// account, before and after the batch writes; unknown accounts are absent.
func testLoadStates(t *testing.T, s ledger.Store) {
	liveFixture(t, s)
	write(t, s, func(b ledger.Batch) {
		check(t, "SaveJobs", b.SaveJobs(ctx(t), []*ledger.Job{newJob("j1", "A", ledger.JobQueued, at(0))}))
	})
	b, err := s.BeginBatch(ctx(t))
	check(t, "BeginBatch", err)
	defer b.Rollback()
	ids := []string{"A", "B", "nobody"}
	compare := func(when string) {
		t.Helper()
		many, err := b.LoadStates(ctx(t), ids)
		check(t, "LoadStates", err)
		if _, ok := many["nobody"]; ok || len(many) != 2 {
			t.Fatalf("LoadStates %s: %d states (nobody: %v), want A and B", when, len(many), many["nobody"])
		}
		for _, id := range ids[:2] {
			one, err := b.LoadState(ctx(t), id)
			check(t, "Batch.LoadState", err)
			if !reflect.DeepEqual(one, many[id]) {
				t.Errorf("%s, account %s: LoadStates\n %+v\nLoadState\n %+v", when, id, many[id], one)
			}
		}
	}
	compare("before the batch writes")
	a := newAccount("A")
	a.Version = 2
	saveAccounts(t, b, a)
	saveGrants(t, b, newGrant("g-new", "B", at(time.Hour), 9, 0))
	compare("after the batch wrote")
	many, err := b.LoadStates(ctx(t), []string{"A", "B"})
	check(t, "LoadStates", err)
	if many["A"].Account.Version != 2 || len(many["B"].Grants) != 2 || len(many["A"].Jobs) != 1 {
		t.Errorf("LoadStates does not see the batch's writes: A version %d, jobs %d; B grants %d",
			many["A"].Account.Version, len(many["A"].Jobs), len(many["B"].Grants))
	}
	none, err := b.LoadStates(ctx(t), nil)
	check(t, "LoadStates(nil)", err)
	if len(none) != 0 {
		t.Errorf("LoadStates(nil): %v", none)
	}
}
