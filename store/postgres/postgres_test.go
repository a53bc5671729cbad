package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open opens a store on dsn, closed when t ends.
func open(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openNew opens a store on a new database and returns its DSN too.
func openNew(t testing.TB) (*Store, string) {
	t.Helper()
	dsn := pgtest.DSN(t)
	return open(t, dsn), dsn
}

// TestStore runs the conformance suite, each subtest in a schema of its
// own in one database.
func TestStore(t *testing.T) {
	dsn := pgtest.DSN(t)
	storetest.Run(t, func(t *testing.T) ledger.Store {
		return open(t, pgtest.Schema(t, dsn))
	})
}

var t0 = time.Date(2025, 3, 9, 10, 11, 12, 123456000, time.UTC)

func commit(t testing.TB, s ledger.Store, f func(b ledger.Batch) error) {
	t.Helper()
	b, err := s.BeginBatch(context.Background())
	if err != nil {
		t.Fatalf("BeginBatch: %v", err)
	}
	defer b.Rollback()
	if err := f(b); err != nil {
		t.Fatalf("batch: %v", err)
	}
	if err := b.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func account(id string, version int64) *ledger.Account {
	return &ledger.Account{ID: id, Plan: ledger.PlanFree, Timezone: "UTC", CreatedAt: t0, UpdatedAt: t0, Version: version}
}

func dial(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestNotExclusive(t *testing.T) {
	s, _ := openNew(t)
	if s.Exclusive() {
		t.Error("Exclusive() = true for a shared PostgreSQL store")
	}
}

// TestTwoStores: two stores (two nodes) on one database each see the
// other's committed writes, and only those.
func TestTwoStores(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s1, s2 := open(t, dsn), open(t, dsn)

	commit(t, s1, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)}) })
	if a, err := s2.GetAccount(ctx, "A"); err != nil || a.Version != 1 {
		t.Fatalf("s2 GetAccount after s1's commit: %+v, %v", a, err)
	}

	b, err := s2.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Rollback()
	if err := b.SaveAccounts(ctx, []*ledger.Account{account("A", 2), account("B", 1)}); err != nil {
		t.Fatal(err)
	}
	es := []ledger.Entry{{AccountID: "A", Type: ledger.EntryGrant, AmountCredits: 5, CreatedAt: t0}}
	if err := b.InsertEntries(ctx, es); err != nil {
		t.Fatal(err)
	}
	if a, err := s1.GetAccount(ctx, "A"); err != nil || a.Version != 1 {
		t.Errorf("s1 GetAccount during s2's batch: %+v, %v; want version 1", a, err)
	}
	if _, err := s1.GetAccount(ctx, "B"); ledger.ErrorCode(err) != ledger.ENotFound {
		t.Errorf("s1 GetAccount of s2's uncommitted account: %v", err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	st, err := s1.LoadState(ctx, "A")
	if err != nil || st.Account.Version != 2 {
		t.Errorf("s1 LoadState after s2's commit: %+v, %v", st, err)
	}
	got, err := s1.ListEntries(ctx, ledger.ListEntriesParams{AccountID: "A"})
	if err != nil || len(got) != 1 || got[0].ID != es[0].ID {
		t.Errorf("s1 ListEntries after s2's commit: %+v, %v (id written back %d)", got, err, es[0].ID)
	}

	// Jobs saved by one node are active for the other; seqs keep growing
	// across nodes.
	j1 := &ledger.Job{ID: "j1", AccountID: "A", Action: "image.generate", Category: ledger.CategoryImage,
		Quantity: 1, Status: ledger.JobQueued, CreatedAt: t0, UpdatedAt: t0}
	j2 := *j1
	j2.ID = "j2"
	commit(t, s1, func(b ledger.Batch) error { return b.SaveJobs(ctx, []*ledger.Job{j1}) })
	commit(t, s2, func(b ledger.Batch) error { return b.SaveJobs(ctx, []*ledger.Job{&j2}) })
	if j2.Seq <= j1.Seq {
		t.Errorf("seq on the second node %d, want > %d", j2.Seq, j1.Seq)
	}
	for _, s := range []*Store{s1, s2} {
		active, err := s.ListActiveJobs(ctx)
		if err != nil || len(active) != 2 || active[0].ID != "j1" || active[1].ID != "j2" {
			t.Errorf("ListActiveJobs: %+v, %v", active, err)
		}
	}
}

// waitForLockWaiter waits until a backend of the test database waits for
// a lock, as the server reports it.
func waitForLockWaiter(t *testing.T, conn *pgx.Conn, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var n int
		err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no backend waits for a lock after %v", within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLockAccountsBlocks: LockAccounts in one batch blocks another batch's
// LockAccounts of the same account, on another store, until the first
// commits; the second then sees the committed version. Other accounts are
// not blocked.
func TestLockAccountsBlocks(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s1, s2 := open(t, dsn), open(t, dsn)
	commit(t, s1, func(b ledger.Batch) error {
		return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1), account("B", 1)})
	})

	b1, err := s1.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b1.Rollback()
	if v, err := b1.LockAccounts(ctx, []string{"A"}); err != nil || v["A"] != 1 {
		t.Fatalf("first LockAccounts: %v, %v", v, err)
	}

	// Another account is free.
	free := make(chan error, 1)
	go func() {
		b, err := s2.BeginBatch(ctx)
		if err == nil {
			var v map[string]int64
			v, err = b.LockAccounts(ctx, []string{"B"})
			if err == nil && v["B"] != 1 {
				err = fmt.Errorf("versions %v", v)
			}
			b.Rollback()
		}
		free <- err
	}()
	select {
	case err := <-free:
		if err != nil {
			t.Fatalf("LockAccounts of another account: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LockAccounts of another account blocked")
	}

	type result struct {
		v   map[string]int64
		err error
	}
	locked := make(chan result, 1)
	release := make(chan struct{})
	go func() {
		b, err := s2.BeginBatch(ctx)
		if err != nil {
			locked <- result{err: err}
			return
		}
		defer b.Rollback()
		v, err := b.LockAccounts(ctx, []string{"B", "A"})
		locked <- result{v, err}
		<-release
	}()
	defer close(release)

	waitForLockWaiter(t, dial(t, dsn), 10*time.Second)
	select {
	case r := <-locked:
		t.Fatalf("LockAccounts returned while another batch holds the lock: %+v", r)
	default:
	}

	if err := b1.SaveAccounts(ctx, []*ledger.Account{account("A", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := b1.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-locked:
		if r.err != nil {
			t.Fatalf("blocked LockAccounts: %v", r.err)
		}
		if r.v["A"] != 2 || r.v["B"] != 1 {
			t.Errorf("blocked LockAccounts returned %v, want A at the committed version 2", r.v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LockAccounts still blocked after the holder committed")
	}
}

// TestLockAccountsCreation: two batches on two stores lock an id that has
// no account; the second waits until the first, which creates it, commits,
// and then sees the account: two nodes cannot both create it.
func TestLockAccountsCreation(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s1, s2 := open(t, dsn), open(t, dsn)

	b1, err := s1.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b1.Rollback()
	if v, err := b1.LockAccounts(ctx, []string{"N"}); err != nil || len(v) != 0 {
		t.Fatalf("LockAccounts of a new id: %v, %v", v, err)
	}

	type result struct {
		v   map[string]int64
		err error
	}
	locked := make(chan result, 1)
	go func() {
		b, err := s2.BeginBatch(ctx)
		if err != nil {
			locked <- result{err: err}
			return
		}
		defer b.Rollback()
		v, err := b.LockAccounts(ctx, []string{"N"})
		locked <- result{v, err}
	}()
	waitForLockWaiter(t, dial(t, dsn), 10*time.Second)
	select {
	case r := <-locked:
		t.Fatalf("second LockAccounts of an id being created returned: %+v", r)
	default:
	}
	if err := b1.SaveAccounts(ctx, []*ledger.Account{account("N", 1)}); err != nil {
		t.Fatal(err)
	}
	if err := b1.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-locked:
		if r.err != nil || r.v["N"] != 1 {
			t.Errorf("second LockAccounts after the creation committed: %v, %v; want N at version 1", r.v, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second LockAccounts still blocked after the creator committed")
	}

	// A rolled-back creation lets the waiter go on with no account.
	b1, err = s1.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b1.LockAccounts(ctx, []string{"M"}); err != nil {
		t.Fatal(err)
	}
	go func() {
		b, err := s2.BeginBatch(ctx)
		if err != nil {
			locked <- result{err: err}
			return
		}
		defer b.Rollback()
		v, err := b.LockAccounts(ctx, []string{"M", "N"})
		locked <- result{v, err}
	}()
	waitForLockWaiter(t, dial(t, dsn), 10*time.Second)
	if err := b1.Rollback(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-locked:
		if r.err != nil || len(r.v) != 1 || r.v["N"] != 1 {
			t.Errorf("LockAccounts after a rolled-back creation: %v, %v; want only N", r.v, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LockAccounts still blocked after the creator rolled back")
	}
}

// TestConcurrentOpen opens a fresh database from several goroutines at
// once: every Open succeeds and each migration is applied once.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 3
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*Store, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(context.Background(), dsn, Options{MaxConns: 2})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		} else {
			defer stores[i].Close()
		}
	}
	files, err := migrationsFS.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	conn := dial(t, dsn)
	rows, err := conn.Query(t.Context(), `SELECT version_id, count(*) FROM goose_db_version
		WHERE version_id > 0 GROUP BY version_id ORDER BY version_id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var v, c int64
		if err := rows.Scan(&v, &c); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d×%d", v, c))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		// Versions are the files' numbers (a number may be skipped).
		var v int64
		if _, err := fmt.Sscanf(f.Name(), "%d_", &v); err != nil {
			t.Fatalf("migration %s: %v", f.Name(), err)
		}
		want = append(want, fmt.Sprintf("%d×1", v))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("applied migrations (version×times): %v, want %v", got, want)
	}
	// Every store works.
	for i, s := range stores {
		if s == nil {
			continue
		}
		id := fmt.Sprint("acct-", i)
		commit(t, s, func(b ledger.Batch) error {
			return b.SaveAccounts(context.Background(), []*ledger.Account{account(id, 1)})
		})
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	if err := Migrate(ctx, dsn); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if err := Migrate(ctx, dsn+"&pool_max_conns=3"); err != nil { // again, and pool parameters are accepted
		t.Fatalf("second Migrate: %v", err)
	}
	s := open(t, dsn+"&pool_max_conns=3")
	if got := s.pool.Config().MaxConns; got != DefaultMaxConns {
		t.Errorf("MaxConns %d, want Options' default %d to override the DSN", got, DefaultMaxConns)
	}
	commit(t, s, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)}) })

	if _, err := Open(ctx, dsn, Options{MaxConns: 2, MinConns: 3}); err == nil {
		t.Error("Open with MinConns > MaxConns succeeded")
	}
	if _, err := Open(ctx, "postgres://nobody@127.0.0.1:1/x?connect_timeout=1", Options{}); err == nil {
		t.Error("Open of an unreachable server succeeded")
	} else if ledger.ErrorCode(err) != ledger.EUnavailable {
		t.Errorf("Open of an unreachable server: %v (code %s), want %s", err, ledger.ErrorCode(err), ledger.EUnavailable)
	}
}

func TestPoolOptions(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := Open(context.Background(), dsn, Options{MaxConns: 5, MinConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c := s.pool.Config(); c.MaxConns != 5 || c.MinConns != 1 {
		t.Errorf("pool MaxConns %d MinConns %d, want 5 and 1", c.MaxConns, c.MinConns)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCollation: every text column sorts bytewise (COLLATE "C"), as SQLite
// does, whatever the database's default collation.
func TestCollation(t *testing.T) {
	ctx := context.Background()
	s, dsn := openNew(t)
	rows, err := dial(t, dsn).Query(t.Context(), `SELECT table_name, column_name, coalesce(collation_name, '')
		FROM information_schema.columns WHERE table_schema = current_schema() AND data_type = 'text'
		AND table_name <> 'goose_db_version' ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var table, col, coll string
		if err := rows.Scan(&table, &col, &coll); err != nil {
			t.Fatal(err)
		}
		n++
		if coll != "C" {
			t.Errorf("%s.%s has collation %q, want C", table, col, coll)
		}
	}
	if rows.Err() != nil || n < 30 {
		t.Fatalf("%d text columns, %v", n, rows.Err())
	}
	ids := []string{"b", "B", "_x", "a-1", "A-1", "a", "Z"}
	var as []*ledger.Account
	for _, id := range ids {
		as = append(as, account(id, 1))
	}
	commit(t, s, func(b ledger.Batch) error { return b.SaveAccounts(ctx, as) })
	got, err := s.ListAccountIDs(ctx, ledger.ListAccountIDsParams{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "A-1 B Z _x a a-1 b"; strings.Join(got, " ") != want {
		t.Errorf("ListAccountIDs: %v, want bytewise %s", got, want)
	}
}

// TestQueryPlans checks that the hot queries can use their indexes, in
// particular the partial ones (whose conditions the queries must imply).
// Sequential scans are disabled: tiny test tables would not need indexes.
func TestQueryPlans(t *testing.T) {
	_, dsn := openNew(t)
	conn := dial(t, dsn)
	// Generic plans, as prepared statements get: the parameters are unknown.
	if _, err := conn.Exec(t.Context(), "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	i := 0
	for q, index := range map[string]string{
		qGetAccount:        "accounts_pkey",
		qLockAccounts:      "accounts_pkey",
		qLockMissing:       "accounts_pkey",
		qBumpAccounts:      "accounts_pkey",
		qLiveGrants:        "grants_live",
		qAllGrants:         "grants_account",
		qGrantByReference:  "grants_reference",
		qGetHold:           "holds_pkey",
		qPendingHolds:      "holds_pending",
		qAllHolds:          "holds_account",
		qListPendingHolds:  "holds_pending",
		qListEntries:       "entries_account",
		qAllEntries:        "entries_account",
		qListAccountIDs:    "accounts_pkey",
		qGetIdempotency:    "idempotency_keys_pkey",
		qDeleteIdempotency: "idempotency_keys_created_at",
		qGetJob:            "jobs_pkey",
		qListJobs:          "jobs_account",
		qActiveJobs:        "jobs_active",
		qListActiveJobs:    "jobs_active",
		qGetAsset:          "assets_pkey",
		qListAssets:        "assets_account",
		qUploadUsage:       "assets_uploads",
	} {
		i++
		var params []string
		for k := 1; strings.Contains(q, fmt.Sprintf("$%d", k)); k++ {
			params = append(params, "NULL")
		}
		name := fmt.Sprint("q", i)
		if _, err := conn.Exec(t.Context(), "PREPARE "+name+" AS "+q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		explain := "EXPLAIN EXECUTE " + name
		if len(params) > 0 {
			explain += "(" + strings.Join(params, ", ") + ")"
		}
		rows, err := conn.Query(t.Context(), explain, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, strings.TrimSpace(line))
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, " on "+index+" ") && !strings.Contains(p, " using "+index+" ") {
			t.Errorf("query %q\nplan %q\ndoes not use index %s", q, p, index)
		}
	}
}

// countingConn counts round trips: a read after a write starts one. (pgx
// may read in a background goroutine while it writes: wrote is atomic.)
type countingConn struct {
	net.Conn
	n     *atomic.Int64
	wrote atomic.Bool
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.wrote.Store(true)
	return c.Conn.Write(p)
}

func (c *countingConn) Read(p []byte) (int, error) {
	if c.wrote.CompareAndSwap(true, false) {
		c.n.Add(1)
	}
	return c.Conn.Read(p)
}

// TestRoundTrips counts, at the socket, the round trips of a typical
// engine batch and of snapshot reads, once the connection has prepared
// the statements.
func TestRoundTrips(t *testing.T) {
	ctx := context.Background()
	cfg, err := poolConfig(pgtest.DSN(t), Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, n: &n}, nil
	}
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	s, err := openPool(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commit(t, s, func(b ledger.Batch) error {
		return b.SaveAccounts(ctx, []*ledger.Account{account("A", 0), account("B", 0)})
	})

	batch := func(i int) {
		var grants []*ledger.Grant
		var holds []*ledger.Hold
		var entries []ledger.Entry
		for k := range 700 {
			grants = append(grants, &ledger.Grant{ID: fmt.Sprint("g", k), AccountID: "A", Source: ledger.SourcePromo,
				AmountCredits: 1, RemainingCredits: 1, CreatedAt: t0})
			holds = append(holds, &ledger.Hold{ID: fmt.Sprint("h", i, "-", k), AccountID: "A", Status: ledger.HoldPending, CreatedAt: t0})
			entries = append(entries, ledger.Entry{AccountID: "A", Type: ledger.EntryGrant, CreatedAt: t0})
		}
		j := &ledger.Job{ID: fmt.Sprint("j", i), AccountID: "A", Status: ledger.JobQueued, CreatedAt: t0, UpdatedAt: t0}
		commit(t, s, func(b ledger.Batch) error {
			if _, err := b.LockAccounts(ctx, []string{"A", "B"}); err != nil {
				return err
			}
			if _, err := b.LoadState(ctx, "A"); err != nil {
				return err
			}
			return errors.Join(
				b.SaveAccounts(ctx, []*ledger.Account{account("A", int64(i)), account("B", int64(i))}),
				b.SaveGrants(ctx, grants), b.SaveHolds(ctx, holds), b.InsertEntries(ctx, entries),
				b.SaveJobs(ctx, []*ledger.Job{j}),
				b.SaveIdempotency(ctx, []*ledger.IdempotencyRecord{{Principal: "p", Key: fmt.Sprint(i), CreatedAt: t0}}))
		})
	}
	batch(1) // prepares the statements on the connection
	n.Store(0)
	batch(2)
	if got := n.Load(); got != 3 {
		t.Errorf("batch: %d round trips, want 3 (lock with BEGIN, load, the 6 writes with COMMIT)", got)
	}

	for _, c := range []struct {
		what string
		f    func() error
	}{
		{"LoadState", func() error { _, err := s.LoadState(ctx, "A"); return err }},
		{"LoadHistory", func() error { _, err := s.LoadHistory(ctx, "A"); return err }},
		{"GetAccount", func() error { _, err := s.GetAccount(ctx, "A"); return err }},
	} {
		if err := c.f(); err != nil { // prepare
			t.Fatal(err)
		}
		n.Store(0)
		if err := c.f(); err != nil {
			t.Fatal(err)
		}
		if got := n.Load(); got != 1 {
			t.Errorf("%s: %d round trips, want 1", c.what, got)
		}
	}
}

// BenchmarkBatch runs the shared store write benchmark.
func BenchmarkBatch(b *testing.B) {
	s, _ := openNew(b)
	storetest.BenchmarkBatch(b, s)
}

// TestDuplicatesInOneCall: a Save* call naming a row twice behaves like
// two upserts in sequence (the last wins), as in SQLite. One ON CONFLICT
// statement cannot touch a row twice, so the store keeps the last.
func TestDuplicatesInOneCall(t *testing.T) {
	ctx := context.Background()
	s, _ := openNew(t)
	g1 := &ledger.Grant{ID: "g", AccountID: "A", Source: ledger.SourcePromo, AmountCredits: 1, RemainingCredits: 1, CreatedAt: t0}
	g2 := *g1
	g2.AmountCredits, g2.RemainingCredits = 5, 5
	other := &ledger.Grant{ID: "g0", AccountID: "A", Source: ledger.SourcePromo, AmountCredits: 2, RemainingCredits: 2, CreatedAt: t0}
	j1 := &ledger.Job{ID: "j", AccountID: "A", Status: ledger.JobQueued, CreatedAt: t0, UpdatedAt: t0}
	j2 := *j1
	j2.Status = ledger.JobRunning
	jNew := &ledger.Job{ID: "k", AccountID: "A", Status: ledger.JobQueued, CreatedAt: t0, UpdatedAt: t0}
	r1 := &ledger.IdempotencyRecord{Principal: "p", Key: "k", Fingerprint: "1", Status: 200, CreatedAt: t0}
	r2 := *r1
	r2.Fingerprint = "2"
	commit(t, s, func(b ledger.Batch) error {
		return errors.Join(
			b.SaveAccounts(ctx, []*ledger.Account{account("A", 1), account("A", 2)}),
			b.SaveGrants(ctx, []*ledger.Grant{g1, other, &g2}),
			b.SaveHolds(ctx, []*ledger.Hold{{ID: "h", AccountID: "A", Status: ledger.HoldPending, CreatedAt: t0},
				{ID: "h", AccountID: "A", Status: ledger.HoldReleased, CreatedAt: t0}}),
			b.SaveJobs(ctx, []*ledger.Job{j1, jNew, &j2}),
			b.SaveIdempotency(ctx, []*ledger.IdempotencyRecord{r1, &r2}))
	})
	h, err := s.LoadHistory(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	if h.Account.Version != 2 || len(h.Grants) != 2 || h.Grants[0].ID != "g" || h.Grants[0].RemainingCredits != 5 ||
		len(h.Holds) != 1 || h.Holds[0].Status != ledger.HoldReleased {
		t.Errorf("history after duplicate saves: account %+v, grants %+v, holds %+v", h.Account, h.Grants, h.Holds)
	}
	j, err := s.GetJob(ctx, "j")
	if err != nil || j.Status != ledger.JobRunning || j.Seq != j1.Seq || j2.Seq != j1.Seq || jNew.Seq == j1.Seq || jNew.Seq <= 0 {
		t.Errorf("job after duplicate saves: %+v, %v; seqs written back %d, %d, new job %d", j, err, j1.Seq, j2.Seq, jNew.Seq)
	}
	if r, err := s.GetIdempotency(ctx, "p", "k"); err != nil || r.Fingerprint != "2" {
		t.Errorf("idempotency record after duplicate saves: %+v, %v", r, err)
	}
}

// TestBatchFailures: PostgreSQL aborts a transaction at its first failed
// statement; Commit then reports the failure, and nothing is written.
// A cancelled context rolls the batch back.
func TestBatchFailures(t *testing.T) {
	ctx := context.Background()
	s, _ := openNew(t)
	g := &ledger.Grant{ID: "g1", AccountID: "A", Source: ledger.SourcePurchase, Reference: "r", AmountCredits: 1,
		RemainingCredits: 1, CreatedAt: t0}
	commit(t, s, func(b ledger.Batch) error {
		return errors.Join(b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)}), b.SaveGrants(ctx, []*ledger.Grant{g}))
	})

	// Commit after a conflict fails and writes nothing.
	b, err := s.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SaveAccounts(ctx, []*ledger.Account{account("A", 2)}); err != nil {
		t.Fatal(err)
	}
	dup := *g
	dup.ID = "g2"
	if err := b.SaveGrants(ctx, []*ledger.Grant{&dup}); ledger.ErrorCode(err) != ledger.EConflict {
		t.Fatalf("duplicate reference: %v, want a conflict", err)
	}
	if _, err := b.GetHold(ctx, "nope"); err == nil || ledger.ErrorCode(err) == ledger.ENotFound {
		t.Errorf("read in an aborted transaction: %v, want a failure other than not found", err)
	}
	if err := b.Commit(); err == nil {
		t.Error("Commit of a batch with a failed statement succeeded")
	}
	if err := b.Rollback(); err != nil {
		t.Errorf("Rollback after Commit: %v", err)
	}
	if err := b.SaveAccounts(ctx, []*ledger.Account{account("A", 3)}); err == nil {
		t.Error("SaveAccounts after Commit succeeded")
	}
	if a, err := s.GetAccount(ctx, "A"); err != nil || a.Version != 1 {
		t.Errorf("account after a failed batch: %+v, %v; want version 1", a, err)
	}

	// A cancelled context: Commit fails, Rollback succeeds, nothing is
	// written, and the store goes on.
	cctx, cancel := context.WithCancel(ctx)
	b, err = s.BeginBatch(cctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SaveAccounts(cctx, []*ledger.Account{account("A", 4)}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := b.Commit(); err == nil {
		t.Error("Commit under a cancelled context succeeded")
	}
	if err := b.Rollback(); err != nil {
		t.Errorf("Rollback after a cancelled Commit: %v", err)
	}
	cctx, cancel = context.WithCancel(ctx)
	b, err = s.BeginBatch(cctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SaveAccounts(cctx, []*ledger.Account{account("A", 5)}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := b.Rollback(); err != nil {
		t.Errorf("Rollback under a cancelled context: %v", err)
	}
	if a, err := s.GetAccount(ctx, "A"); err != nil || a.Version != 1 {
		t.Errorf("account after cancelled batches: %+v, %v; want version 1", a, err)
	}

	// A batch that sends nothing commits without a round trip.
	b, err = s.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.LockAccounts(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Errorf("Commit of an empty batch: %v", err)
	}
	commit(t, s, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("A", 6)}) })
	if a, err := s.GetAccount(ctx, "A"); err != nil || a.Version != 6 {
		t.Errorf("account after a good batch: %+v, %v", a, err)
	}
	if st := s.pool.Stat(); st.AcquiredConns() != 0 {
		t.Errorf("%d connections still acquired", st.AcquiredConns())
	}
}
