package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditd/creditd/ledger"
)

// TestLockIdempotencyKeys: a batch that locked an idempotency key makes
// another batch locking it (for another account, so no row lock meets)
// wait before it reads the key's record; once the first commits, the
// second finds the record. Keys that differ do not wait for each other.
func TestLockIdempotencyKeys(t *testing.T) {
	ctx := context.Background()
	s, dsn := openNew(t)
	commit(t, s, func(b ledger.Batch) error {
		return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1), account("B", 1)})
	})
	begin := func(acct string, keys ...[2]string) *batch {
		t.Helper()
		lb, err := s.BeginBatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b := lb.(*batch)
		t.Cleanup(func() { _ = b.Rollback() })
		if _, err := b.LockAccounts(ctx, []string{acct}); err != nil {
			t.Fatal(err)
		}
		if err := b.LockIdempotencyKeys(ctx, keys); err != nil {
			t.Fatal(err)
		}
		return b
	}
	key, other := [2]string{"admin", "job-1"}, [2]string{"admin", "job-2"}

	first := begin("A", key, other, key) // repeated keys are fine
	if _, err := first.GetIdempotency(ctx, key[0], key[1]); ledger.ErrorCode(err) != ledger.ENotFound {
		t.Fatalf("first read: %v", err)
	}
	if err := first.SaveIdempotency(ctx, []*ledger.IdempotencyRecord{{Principal: key[0], Key: key[1],
		Fingerprint: "hold A", Status: 201, Body: []byte(`{}`), CreatedAt: t0}}); err != nil {
		t.Fatal(err)
	}

	// Another key: no wait.
	free := begin("B", [2]string{"admin", "job-3"})
	if _, err := free.GetIdempotency(ctx, "admin", "job-3"); ledger.ErrorCode(err) != ledger.ENotFound {
		t.Fatalf("a batch with another key: %v", err)
	}
	_ = free.Rollback()

	// The same key: the read waits until the first batch commits.
	type read struct {
		r   *ledger.IdempotencyRecord
		err error
	}
	got := make(chan read, 1)
	go func() {
		second := begin("B", key)
		r, err := second.GetIdempotency(ctx, key[0], key[1])
		got <- read{r, err}
	}()
	waitForAdvisoryWaiter(t, dsn)
	select {
	case r := <-got:
		t.Fatalf("the second batch read the key while the first held it: %+v, %v", r.r, r.err)
	default:
	}
	if err := first.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || r.r == nil || r.r.Fingerprint != "hold A" {
		t.Fatalf("the second batch's read after the first committed: %+v, %v", r.r, r.err)
	}
}

// waitForAdvisoryWaiter waits until a session waits for an advisory lock
// on idempotencyLockSpace.
func waitForAdvisoryWaiter(t *testing.T, dsn string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND classid = `+idempotencyLockSpace+` AND NOT granted`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no batch waits for the idempotency key's lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
