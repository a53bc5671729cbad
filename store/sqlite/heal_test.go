package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// faulty is a store whose journal files fail on demand, with the healer's
// timers and attempts in the test's hands: no test waits on a real clock.
type faulty struct {
	*Store
	ffs    *faultFS
	path   string
	timers chan healTimer // each timer the healer starts
	heals  chan error     // the outcome of each heal attempt
}

// healTimer is one wait of the healer: its delay, and the channel that ends
// it.
type healTimer struct {
	d    time.Duration
	fire chan time.Time
}

func openFaulty(t *testing.T) *faulty {
	t.Helper()
	f := &faulty{ffs: &faultFS{}, path: filepath.Join(t.TempDir(), "creditd.db"),
		timers: make(chan healTimer, 1), heals: make(chan error, 1)}
	s, err := open(context.Background(), f.path, options{
		files: f.ffs,
		after: func(d time.Duration) <-chan time.Time {
			tm := healTimer{d: d, fire: make(chan time.Time, 1)}
			f.timers <- tm
			return tm.fire
		},
		healed: func(err error) { f.heals <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Store = s
	t.Cleanup(func() { s.Close() })
	return f
}

// healOnce lets the healer's next wait end and returns its delay and the
// attempt's outcome.
func (f *faulty) healOnce(t *testing.T) (time.Duration, error) {
	t.Helper()
	tm := <-f.timers
	tm.fire <- time.Time{}
	return tm.d, <-f.heals
}

// segmentSize is the size of the journal's last segment file.
func (f *faulty) segmentSize(t *testing.T) int64 {
	t.Helper()
	segs := f.j.Segments()
	st, err := os.Stat(filepath.Join(journalDir(f.path), fmt.Sprintf("%020d.seg", segs[len(segs)-1].First)))
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// A failed journal write makes the store refuse batches as unavailable,
// and Writable says so. The store heals by itself, retrying with a growing
// delay while the disk still fails, and then takes batches again. The batch
// that failed never becomes visible: not after healing, not after a
// restart, also when its record reached the file and only the fdatasync
// failed (a replay would otherwise apply a batch answered unavailable).
func TestHealAfterFailedJournalWrite(t *testing.T) {
	for _, tc := range []struct {
		name         string
		write, sync  error
		reachesFile  bool
		probeFailsOn string
	}{
		{name: "fdatasync fails after the record reached the file", sync: syscall.ENOSPC, reachesFile: true},
		{name: "the write fails", write: syscall.ENOSPC},
		{name: "fdatasync fails with EIO", sync: syscall.EIO, reachesFile: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := openFaulty(t)
			commit(t, f, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)}) })
			before := f.segmentSize(t)
			f.ffs.set(tc.write, tc.sync, nil)
			b, err := f.BeginBatch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.SaveAccounts(ctx, []*ledger.Account{account("A", 2), account("B", 1)}); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(); ledger.ErrorCode(err) != ledger.EUnavailable {
				t.Fatalf("commit with a failing disk: %v, want unavailable", err)
			}
			if grown := f.segmentSize(t) > before; grown != tc.reachesFile {
				t.Fatalf("the failed record reached the file: %v, want %v", grown, tc.reachesFile)
			}
			if _, err := f.BeginBatch(ctx); ledger.ErrorCode(err) != ledger.EUnavailable {
				t.Fatalf("BeginBatch before healing: %v, want unavailable", err)
			}
			if err := f.Writable(); ledger.ErrorCode(err) != ledger.EUnavailable {
				t.Fatalf("Writable before healing: %v, want unavailable", err)
			}
			// The disk still fails: the healer tries, fails, and waits longer.
			d1, err := f.healOnce(t)
			if err == nil || d1 != healDelayMin {
				t.Fatalf("first heal attempt after %v: %v; want %v and a failure", d1, err, healDelayMin)
			}
			d2, err := f.healOnce(t)
			if err == nil || d2 != 2*healDelayMin {
				t.Fatalf("second heal attempt after %v: %v; want %v and a failure", d2, err, 2*healDelayMin)
			}
			if err := f.Writable(); err == nil {
				t.Fatal("Writable while the disk fails: nil")
			}
			// Space again: the next attempt heals.
			f.ffs.set(nil, nil, nil)
			if _, err := f.healOnce(t); err != nil {
				t.Fatalf("heal with a working disk: %v", err)
			}
			if err := f.Writable(); err != nil {
				t.Fatalf("Writable after healing: %v", err)
			}
			if size := f.segmentSize(t); size != before {
				t.Errorf("segment after healing: %d bytes, want %d (cut back to the last acknowledged record)", size, before)
			}
			checkFailedBatchInvisible(t, f.Store)
			if st := f.JournalStats(); st.Heals != 1 {
				t.Errorf("stats after healing: %+v, want 1 heal", st)
			}

			// A restart right away replays the journal: the cut record is gone.
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := Open(ctx, f.path)
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			checkFailedBatchInvisible(t, s2)
			// Writes go on, with the seq the failed batch had.
			commit(t, s2, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("C", 1)}) })
			if c, err := s2.GetAccount(ctx, "C"); err != nil || c.Version != 1 {
				t.Fatalf("account C after healing: %+v, %v", c, err)
			}
		})
	}
}

// checkFailedBatchInvisible asserts that the batch written by
// TestHealAfterFailedJournalWrite's failed commit (A at version 2, B) is
// nowhere: A is at version 1 and B does not exist.
func checkFailedBatchInvisible(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	if a, err := s.GetAccount(ctx, "A"); err != nil || a.Version != 1 {
		t.Errorf("account A: %+v, %v; want version 1", a, err)
	}
	if b, err := s.GetAccount(ctx, "B"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("account B of the failed batch: %+v, %v; want not found", b, err)
	}
}

// Healing also works while batches keep coming and failing: a batch that
// starts while the journal is failed is refused at once.
func TestHealRefusesBatchesUntilHealed(t *testing.T) {
	ctx := context.Background()
	f := openFaulty(t)
	commit(t, f, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)}) })
	f.ffs.set(syscall.ENOSPC, nil, nil)
	for i := range 3 {
		b, err := f.BeginBatch(ctx)
		if i == 0 {
			if err != nil {
				t.Fatal(err)
			}
			_ = b.SaveAccounts(ctx, []*ledger.Account{account("A", 2)})
			err = b.Commit()
		}
		if ledger.ErrorCode(err) != ledger.EUnavailable {
			t.Fatalf("batch %d while the disk is full: %v, want unavailable", i, err)
		}
	}
	f.ffs.set(nil, nil, nil)
	if _, err := f.healOnce(t); err != nil {
		t.Fatal(err)
	}
	commit(t, f, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("A", 3)}) })
	if a, err := f.GetAccount(ctx, "A"); err != nil || a.Version != 3 {
		t.Fatalf("account after healing: %+v, %v", a, err)
	}
}

// The engine over a store whose disk fills: a reserve is answered
// unavailable, the store heals by itself, the client's retry charges once,
// nothing acknowledged is lost, and the ledger verifies clean after a
// restart.
func TestEngineHealsAfterFailedJournalWrite(t *testing.T) {
	ctx := context.Background()
	f := openFaulty(t)
	cfg := ledger.DefaultConfig()
	clock := ledger.NewTestClock(t0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := engine.New(ctx, engine.Options{Config: cfg, Store: f.Store, Clock: clock, Logger: log, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.PutAccount(ctx, engine.PutAccountParams{ID: "a", Plan: ledger.PlanPaid}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Grant(ctx, engine.GrantParams{AccountID: "a", GrantParams: ledger.GrantParams{Source: ledger.SourceAdmin, AmountCredits: 1000}}); err != nil {
		t.Fatal(err)
	}
	reserve := func() error {
		_, err := e.Reserve(ctx, engine.ReserveParams{AccountID: "a", ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: 1}})
		return err
	}
	if err := reserve(); err != nil {
		t.Fatal(err)
	}
	bal0, err := e.Balance(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	cost := bal0.HeldCredits

	f.ffs.set(nil, syscall.ENOSPC, nil) // the record reaches the file, its fdatasync fails
	if err := reserve(); ledger.ErrorCode(err) != ledger.EUnavailable {
		t.Fatalf("reserve on a full disk: %v, want unavailable", err)
	}
	if err := reserve(); ledger.ErrorCode(err) != ledger.EUnavailable {
		t.Fatalf("reserve before healing: %v, want unavailable", err)
	}
	if bal, err := e.Balance(ctx, "a"); err != nil || bal.AvailableCredits != bal0.AvailableCredits || bal.HeldCredits != cost {
		t.Fatalf("balance after refused reserves: %+v, %v; want %+v", bal, err, bal0)
	}
	f.ffs.set(nil, nil, nil)
	if _, err := f.healOnce(t); err != nil {
		t.Fatalf("heal: %v", err)
	}
	if err := reserve(); err != nil { // the client's retry
		t.Fatalf("reserve after healing: %v", err)
	}
	want := bal0.AvailableCredits - cost
	if bal, err := e.Balance(ctx, "a"); err != nil || bal.AvailableCredits != want || bal.HeldCredits != 2*cost {
		t.Fatalf("balance after the retry: %+v, %v; want available %d, held %d", bal, err, want, 2*cost)
	}

	e.Close()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	st, err := s2.LoadState(ctx, "a")
	if err != nil || len(st.Holds) != 2 {
		t.Fatalf("holds after a restart: %v, %v; want the two acknowledged", st, err)
	}
	rep, err := ledger.VerifyStore(ctx, cfg, s2)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify after healing and a restart: %+v, %v", rep, err)
	}
}
