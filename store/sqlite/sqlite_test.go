package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
	"github.com/creditd/creditd/store/sqlite/journal"
	"github.com/creditd/creditd/store/storetest"
)

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "creditd.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ledger.Store {
		s, _ := openTemp(t)
		return s
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

func TestSecondOpenFails(t *testing.T) {
	s, path := openTemp(t)
	if !s.Exclusive() {
		t.Errorf("Exclusive() = false for Open")
	}
	s2, err := Open(context.Background(), path)
	if err == nil {
		s2.Close()
		t.Fatal("second Open of an open database succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("second Open: %v, want ErrLocked", err)
	}
	// A symlinked directory reaches the same lock file (flock locks inodes).
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Dir(path), link); err != nil {
		t.Fatal(err)
	}
	if s3, err := Open(context.Background(), filepath.Join(link, filepath.Base(path))); !errors.Is(err, ErrLocked) {
		if err == nil {
			s3.Close()
		}
		t.Errorf("Open through a symlink: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	s2, err = Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestReopen(t *testing.T) {
	s, path := openTemp(t)
	var ids []int64
	commit(t, s, func(b ledger.Batch) error {
		if err := b.SaveAccounts(context.Background(), []*ledger.Account{account("A", 3)}); err != nil {
			return err
		}
		es := []ledger.Entry{{AccountID: "A", Type: ledger.EntryGrant, AmountCredits: 1, CreatedAt: t0}}
		err := b.InsertEntries(context.Background(), es)
		ids = append(ids, es[0].ID)
		return err
	})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err := Open(context.Background(), path) // migrations already applied
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	a, err := s.GetAccount(context.Background(), "A")
	if err != nil {
		t.Fatalf("GetAccount after reopen: %v", err)
	}
	if a.Version != 3 || !a.CreatedAt.Equal(t0) {
		t.Errorf("account after reopen: %+v", a)
	}
	commit(t, s, func(b ledger.Batch) error {
		es := []ledger.Entry{{AccountID: "A", Type: ledger.EntryGrant, AmountCredits: 2, CreatedAt: t0}}
		err := b.InsertEntries(context.Background(), es)
		ids = append(ids, es[0].ID)
		return err
	})
	es, err := s.ListEntries(context.Background(), ledger.ListEntriesParams{AccountID: "A", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].ID != ids[1] || es[1].ID != ids[0] || ids[1] <= ids[0] {
		t.Errorf("entries after reopen: %+v, ids written back %v", es, ids)
	}
}

// TestMigrateFromVersion1 opens a database created before jobs and assets:
// Open migrates it, keeping its rows; OpenReadOnly refuses it first.
// migratedTo creates a database at path with the SQL migrations up to
// version applied, and returns it open.
func migratedTo(t *testing.T, path string, version int64) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, modeWriter))
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(migrateEntryRuns))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), version); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "creditd.db")
	db := migratedTo(t, path, 1)
	if _, err := db.Exec(`INSERT INTO accounts (id, plan, timezone, created_at, updated_at, version)
		VALUES ('A', 'free', 'UTC', 1, 1, 4)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	if ro, err := OpenReadOnly(ctx, path); err == nil {
		ro.Close()
		t.Error("OpenReadOnly of a version-1 database succeeded")
	} else if !strings.Contains(err.Error(), "schema") {
		t.Errorf("OpenReadOnly of a version-1 database: %v, want a schema error", err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open of a version-1 database: %v", err)
	}
	defer s.Close()
	st, err := s.LoadState(ctx, "A")
	if err != nil {
		t.Fatalf("LoadState after migration: %v", err)
	}
	if st.Account.Version != 4 || st.Jobs == nil || len(st.Jobs) != 0 {
		t.Errorf("LoadState after migration: version %d, jobs %v", st.Account.Version, st.Jobs)
	}
	j := &ledger.Job{ID: "j1", AccountID: "A", Action: "image.generate", Category: ledger.CategoryImage,
		Quantity: 1, Status: ledger.JobQueued, CreatedAt: t0, UpdatedAt: t0}
	commit(t, s, func(b ledger.Batch) error { return b.SaveJobs(ctx, []*ledger.Job{j}) })
	if got, err := s.GetJob(ctx, "j1"); err != nil || got.Seq != j.Seq || j.Seq <= 0 {
		t.Errorf("GetJob after migration: %+v, %v", got, err)
	}
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatalf("OpenReadOnly after migration: %v", err)
	}
	ro.Close()
}

// TestMigrateAssetUploads: a database written before migration 8 opens,
// and the uploads already stored count toward the account's budget
// (outputs do not); a read-only store opened before the migration reads
// the usage too.
func TestMigrateAssetUploads(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "creditd.db")
	db := migratedTo(t, path, 7)
	if _, err := db.Exec(`INSERT INTO assets (id, account_id, job_id, kind, content_type, bytes, created_at) VALUES
		('u1', 'A', '', 'upload', 'image/png', 100, 1), ('o1', 'A', 'j1', 'output', 'image/png', 5000, 2),
		('u2', 'A', '', 'upload', 'image/png', 20, 3), ('u3', 'B', '', 'upload', 'image/png', 7, 4)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	want := ledger.UploadUsage{Count: 2, Bytes: 120}
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatalf("OpenReadOnly before migration 8: %v", err)
	}
	if u, err := ro.UploadUsage(ctx, "A"); err != nil || u != want {
		t.Errorf("UploadUsage read-only before migration 8: %+v, %v", u, err)
	}
	ro.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if u, err := s.UploadUsage(ctx, "A"); err != nil || u != want {
		t.Errorf("UploadUsage after migration 8: %+v, %v", u, err)
	}
	if err := s.DeleteAsset(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if u, err := s.UploadUsage(ctx, "A"); err != nil || u != (ledger.UploadUsage{Count: 1, Bytes: 20}) {
		t.Errorf("UploadUsage after a delete: %+v, %v", u, err)
	}
}

// TestMigrateAssetState: outputs an earlier version stored become staged
// unless their succeeded job lists them (migration 10).
func TestMigrateAssetState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creditd.db")
	db := migratedTo(t, path, 9)
	if _, err := db.Exec(storetest.LeftoverOutputsSQL); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	storetest.CheckLeftoverOutputs(t, s)
}

func TestInsertEntriesWritesBackIDs(t *testing.T) {
	s, _ := openTemp(t)
	for _, n := range []int{1, 3, 300, 513} {
		es := make([]ledger.Entry, n)
		for i := range es {
			es[i] = ledger.Entry{AccountID: "A", Type: ledger.EntryHold, AmountCredits: int64(i), ID: -1, CreatedAt: t0}
		}
		commit(t, s, func(b ledger.Batch) error { return b.InsertEntries(context.Background(), es) })
		got, err := s.ListEntries(context.Background(), ledger.ListEntriesParams{AccountID: "A", Limit: n})
		if err != nil {
			t.Fatal(err)
		}
		for i := range es {
			g := got[n-1-i]
			if g.ID != es[i].ID || g.AmountCredits != int64(i) {
				t.Fatalf("n=%d: entry %d: stored id %d amount %d, written back id %d", n, i, g.ID, g.AmountCredits, es[i].ID)
			}
		}
	}
}

func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	commit(t, s, func(b ledger.Batch) error {
		return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)})
	})

	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatalf("OpenReadOnly while the writer is open: %v", err)
	}
	defer ro.Close()
	if ro.Exclusive() {
		t.Error("read-only store claims to be Exclusive")
	}
	if a, err := ro.GetAccount(ctx, "A"); err != nil || a.Version != 1 {
		t.Fatalf("read-only GetAccount: %+v, %v", a, err)
	}

	// The writer commits while the reader is open; a batch stays open
	// while the reader reads.
	commit(t, s, func(b ledger.Batch) error {
		return b.SaveAccounts(ctx, []*ledger.Account{account("A", 2), account("B", 1)})
	})
	b, err := s.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SaveAccounts(ctx, []*ledger.Account{account("A", 3)}); err != nil {
		t.Fatal(err)
	}
	// A read-only store sees what the writer has materialized from its
	// journal into the tables.
	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a, err := ro.GetAccount(ctx, "A"); err != nil || a.Version != 2 {
		t.Errorf("read-only GetAccount during a batch: %+v, %v; want version 2", a, err)
	}
	ids, err := ro.ListAccountIDs(ctx, ledger.ListAccountIDsParams{Limit: 10})
	if err != nil || len(ids) != 2 {
		t.Errorf("read-only ListAccountIDs: %v, %v", ids, err)
	}
	if h, err := ro.LoadHistory(ctx, "B"); err != nil || h.Account.ID != "B" {
		t.Errorf("read-only LoadHistory: %+v, %v", h, err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}

	if _, err := ro.BeginBatch(ctx); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only BeginBatch: %v, want ErrReadOnly", err)
	}
	if _, err := ro.DeleteIdempotencyBefore(ctx, time.Now()); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only DeleteIdempotencyBefore: %v, want ErrReadOnly", err)
	}
	var n int
	if err := ro.r.QueryRowContext(ctx, "SELECT count(*) FROM accounts").Scan(&n); err != nil || n != 2 {
		t.Errorf("count: %d, %v", n, err)
	}
	if _, err := ro.r.ExecContext(ctx, "DELETE FROM accounts"); err == nil {
		t.Error("a write through the read-only store succeeded")
	}

	// After the writer is gone.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro2, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatalf("OpenReadOnly after the writer closed: %v", err)
	}
	defer ro2.Close()
	if a, err := ro2.GetAccount(ctx, "A"); err != nil || a.Version != 3 {
		t.Errorf("GetAccount after the writer closed: %+v, %v", a, err)
	}
}

func TestOpenReadOnlyErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if s, err := OpenReadOnly(ctx, filepath.Join(dir, "missing.db")); err == nil {
		s.Close()
		t.Error("OpenReadOnly of a missing file succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !os.IsNotExist(err) {
		t.Errorf("OpenReadOnly created the file: %v", err)
	}
	empty := filepath.Join(dir, "empty.db")
	db, err := sql.Open("sqlite", empty)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE x (y INTEGER)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := OpenReadOnly(ctx, empty); err == nil {
		s.Close()
		t.Error("OpenReadOnly of a database without the schema succeeded")
	}
}

func TestPragmas(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	for _, c := range []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{s.w, "journal_mode", "wal"},
		{s.w, "synchronous", "2"}, // FULL
		{s.w, "busy_timeout", "5000"},
		{s.w, "query_only", "0"},
		{s.r, "journal_mode", "wal"},
		{s.r, "busy_timeout", "5000"},
		{s.r, "query_only", "1"},
	} {
		var got string
		if err := c.db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", c.pragma, err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Errorf("lock file: %v", err)
	}
}

// TestQueryPlans checks that the hot queries use their indexes, in
// particular the partial ones (whose WHERE terms must match verbatim).
func TestQueryPlans(t *testing.T) {
	s, _ := openTemp(t)
	for q, index := range map[string]string{
		qLiveGrants:         "grants_live",
		qAllGrants:          "grants_account",
		qGrantByReference:   "grants_reference",
		qPendingHolds:       "holds_pending",
		qManyLiveGrants:     "grants_live",
		qManyPendingHolds:   "holds_pending",
		qManyActiveJobs:     "jobs_active",
		qAllHolds:           "holds_account",
		qHoldBlocksAt:       "hold_blocks_q",
		qLegacyHoldBlocks:   "hold_blocks_ms",
		qAnyLegacyHoldBlock: "hold_blocks_ms",
		qAccountHoldBlocks:  "PRIMARY KEY",
		qListPendingHolds:   "holds_pending",
		qListEntries:        "PRIMARY KEY",
		qAllEntries:         "PRIMARY KEY",
		qGetIdempotency:     "sqlite_autoindex_idempotency_keys_1",
		qDeleteIdempotency:  "idempotency_keys_created_at",
		qGetJob:             "sqlite_autoindex_jobs_1",
		qListJobs:           "jobs_account",
		qActiveJobs:         "jobs_active",
		qListActiveJobs:     "jobs_active",
		qGetAsset:           "sqlite_autoindex_assets_1",
		qListAssets:         "assets_account",
		qUploadUsage:        "assets_uploads",
		qListStagedOutputs:  "assets_staged",
	} {
		rows, err := s.w.Query("EXPLAIN QUERY PLAN "+q, make([]any, strings.Count(q, "?"))...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if index == "PRIMARY KEY" {
			// entry_runs is a WITHOUT ROWID table: a search of its key,
			// already in last_id order.
			if !strings.Contains(p, "USING PRIMARY KEY (account_id=?)") || strings.Contains(p, "TEMP B-TREE") {
				t.Errorf("query %q\nplan %q\ndoes not search the primary key in order", q, p)
			}
			continue
		}
		if !strings.Contains(p, "INDEX "+index) {
			t.Errorf("query %q\nplan %q\ndoes not use index %s", q, p, index)
		}
	}
}

func TestChunks(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 255, 256, 257, 511, 1000, 1234} {
		next := 0
		err := chunks(n, func(start, k int) error {
			if start != next || k < 0 || k > maxChunkLog2 {
				return fmt.Errorf("chunk start %d k %d, want start %d", start, k, next)
			}
			next += 1 << k
			return nil
		})
		if err != nil || next != n {
			t.Errorf("chunks(%d): covered %d, %v", n, next, err)
		}
	}
}

// TestKillNine commits batches in a child process that then kills itself
// with SIGKILL: every batch whose Commit returned must be there, and the
// kernel must have released the writer lock. In "journal-only" the child's
// materializer never runs, so every batch comes back from the journal
// replay at Open.
func TestKillNine(t *testing.T) {
	if path := os.Getenv("CREDITD_SQLITE_KILL_CHILD"); path != "" {
		killChild(path, os.Getenv("CREDITD_SQLITE_KILL_STALL") != "")
		return
	}
	if testing.Short() {
		t.Skip("spawns a process")
	}
	t.Run("materializing", func(t *testing.T) { killNine(t, false) })
	t.Run("journal-only", func(t *testing.T) { killNine(t, true) })
}

func killNine(t *testing.T, stall bool) {
	path := filepath.Join(t.TempDir(), "creditd.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillNine$")
	cmd.Env = append(os.Environ(), "CREDITD_SQLITE_KILL_CHILD="+path)
	if stall {
		cmd.Env = append(cmd.Env, "CREDITD_SQLITE_KILL_STALL=1")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	committed := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
			committed, _ = strconv.Atoi(v)
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}
	if committed < 1 {
		t.Fatalf("child committed nothing")
	}
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open after kill -9: %v", err)
	}
	defer s.Close()
	a, err := s.GetAccount(context.Background(), "A")
	if err != nil {
		t.Fatal(err)
	}
	if a.Version < int64(committed) {
		t.Errorf("acknowledged version %d lost: found %d", committed, a.Version)
	}
	es, err := s.ListEntries(context.Background(), ledger.ListEntriesParams{AccountID: "A"})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) < committed*10 {
		t.Errorf("found %d entries, want at least %d", len(es), committed*10)
	}
	for i := 1; i < len(es); i++ {
		if es[i].ID != es[i-1].ID-1 {
			t.Fatalf("entry ids not consecutive after replay: %d then %d", es[i-1].ID, es[i].ID)
		}
	}
	var applied int64
	if err := s.w.QueryRowContext(context.Background(), `SELECT applied_seq FROM journal_state`).Scan(&applied); err != nil || applied < int64(committed) {
		t.Errorf("applied_seq %d (%v), want at least %d", applied, err, committed)
	}
	for _, sg := range s.j.Segments() {
		if sg.Last > applied {
			t.Errorf("journal segment %d holds records up to %d after Open, beyond applied_seq %d", sg.First, sg.Last, applied)
		}
	}
}

// failMaterialize is a MaterializeFunc whose every transaction fails.
func failMaterialize(context.Context, []*journal.ChangeSet) error { return errors.New("disk on fire") }

// stallMaterializer stops s's materializer from writing anything.
func stallMaterializer(s *Store) {
	s.j.WrapMaterialize(func(journal.MaterializeFunc) journal.MaterializeFunc {
		return func(ctx context.Context, _ []*journal.ChangeSet) error {
			<-ctx.Done()
			return ctx.Err()
		}
	})
}

func killChild(path string, stall bool) {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if stall {
		stallMaterializer(s)
	}
	for i := 1; i <= 50; i++ {
		b, err := s.BeginBatch(ctx)
		if err != nil {
			os.Exit(3)
		}
		es := make([]ledger.Entry, 10)
		for j := range es {
			es[j] = ledger.Entry{AccountID: "A", Type: ledger.EntryHold, AmountCredits: int64(j), CreatedAt: t0}
		}
		if b.SaveAccounts(ctx, []*ledger.Account{account("A", int64(i))}) != nil ||
			b.InsertEntries(ctx, es) != nil || b.Commit() != nil {
			os.Exit(4)
		}
		fmt.Printf("committed %d\n", i)
	}
	// One more batch in flight when the process dies.
	b, _ := s.BeginBatch(ctx)
	b.SaveAccounts(ctx, []*ledger.Account{account("A", 1000)})
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// BenchmarkBatch runs the shared store write benchmark.
func BenchmarkBatch(b *testing.B) {
	s, _ := openTemp(b)
	storetest.BenchmarkBatch(b, s)
}

// TestJournalOverlay: while nothing has been materialized, every read sees
// committed batches from the journal's overlay, batches see their own
// writes on top, and Close materializes everything.
func TestJournalOverlay(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "creditd.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	s.j.WrapMaterialize(func(journal.MaterializeFunc) journal.MaterializeFunc {
		return func(ctx context.Context, sets []*journal.ChangeSet) error {
			<-stop
			return s.materialize(ctx, sets)
		}
	})

	g := &ledger.Grant{ID: "g1", AccountID: "A", Source: ledger.SourcePurchase, Reference: "cs_1",
		AmountCredits: 100, RemainingCredits: 95, HeldCredits: 5, CreatedAt: t0}
	h := &ledger.Hold{ID: "h1", AccountID: "A", Action: "generate", Category: ledger.CategoryImage, Quantity: 1,
		UnitPriceCredits: 5, AmountCredits: 5, Status: ledger.HoldPending,
		Portions: []ledger.Portion{{GrantID: "g1", Credits: 5}}, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	commit(t, s, func(b ledger.Batch) error {
		return errors.Join(b.SaveAccounts(ctx, []*ledger.Account{account("A", 1)}), b.SaveGrants(ctx, []*ledger.Grant{g}),
			b.SaveHolds(ctx, []*ledger.Hold{h}),
			b.InsertEntries(ctx, []ledger.Entry{{AccountID: "A", Type: ledger.EntryHold, AmountCredits: 5, HoldID: "h1", CreatedAt: t0}}),
			b.SaveIdempotency(ctx, []*ledger.IdempotencyRecord{{Principal: "admin", Key: "k1", Fingerprint: "f", Status: 201, Body: []byte("{}"), CreatedAt: t0}}))
	})
	if a, err := s.GetAccount(ctx, "A"); err != nil || a.Version != 1 {
		t.Errorf("GetAccount from the overlay: %+v, %v", a, err)
	}
	if got, err := s.GetHold(ctx, "h1"); err != nil || got.Status != ledger.HoldPending || len(got.Portions) != 1 {
		t.Errorf("GetHold from the overlay: %+v, %v", got, err)
	}
	if r, err := s.GetIdempotency(ctx, "admin", "k1"); err != nil || r.Status != 201 {
		t.Errorf("GetIdempotency from the overlay: %+v, %v", r, err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM accounts`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("accounts table has %d rows (%v) before materializing; the test needs 0", n, err)
	}

	// A second batch captures the hold; it sees the first through the
	// overlay and its own writes on top.
	b, err := s.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetGrantByReference(ctx, ledger.GrantReferenceParams{AccountID: "A", Source: ledger.SourcePurchase, Reference: "cs_1"}); err != nil || got.ID != "g1" {
		t.Errorf("Batch.GetGrantByReference from the overlay: %+v, %v", got, err)
	}
	dup := *g
	dup.ID = "g2"
	if err := b.SaveGrants(ctx, []*ledger.Grant{&dup}); ledger.ErrorCode(err) != ledger.EConflict {
		t.Errorf("a second grant with a journaled grant's reference: %v, want conflict", err)
	}
	h2 := *h
	h2.Status, h2.CapturedQuantity, h2.CapturedCredits, h2.ResolvedAt = ledger.HoldCaptured, 1, 5, t0.Add(time.Minute)
	g2 := *g
	g2.HeldCredits, g2.ChargedCredits = 0, 5
	if err := errors.Join(b.SaveHolds(ctx, []*ledger.Hold{&h2}), b.SaveGrants(ctx, []*ledger.Grant{&g2}),
		b.SaveAccounts(ctx, []*ledger.Account{account("A", 2)})); err != nil {
		t.Fatal(err)
	}
	// LoadState waits for the account's journaled batch to reach the
	// tables, then puts the batch's own writes on top.
	close(stop)
	st, err := b.LoadState(ctx, "A")
	if err != nil || st.Account.Version != 2 || len(st.Holds) != 0 || len(st.Grants) != 1 || st.Grants[0].ChargedCredits != 5 {
		t.Fatalf("Batch.LoadState: %+v, %v", st, err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	st, err = s.LoadState(ctx, "A")
	if err != nil || st.Account.Version != 2 || len(st.Holds) != 0 || len(st.Grants) != 1 || st.Grants[0].ChargedCredits != 5 {
		t.Fatalf("LoadState after materializing: %+v, %v", st, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	hist, err := s2.LoadHistory(ctx, "A")
	if err != nil || len(hist.Entries) != 1 || len(hist.Holds) != 1 || hist.Holds[0].Status != ledger.HoldCaptured {
		t.Fatalf("LoadHistory after reopening: %+v, %v", hist, err)
	}
}

// TestMigrateEntriesToRuns: a version-3 database's entries come back whole
// from entry runs after migration 4, and new entries get ids after them.
func TestMigrateEntriesToRuns(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "creditd.db")
	db := migratedTo(t, path, 3)
	// 600 entries of A (more than two runs), 3 of B, interleaved ids.
	want := map[string][]int64{}
	for id := int64(1); id <= 603; id++ {
		acct := "A"
		if id%200 == 0 {
			acct = "B"
		}
		want[acct] = append(want[acct], id)
		if _, err := db.Exec(`INSERT INTO entries (id, account_id, type, amount, legs, created_at) VALUES (?, ?, 'hold', ?, '[{"grant_id":"g","from":"remaining","to":"held","credits":5}]', ?)`,
			id, acct, id, rowscan.Micros(t0)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	// Small pages: runs span pages.
	defer func(n int) { migrateRunsPage = n }(migrateRunsPage)
	migrateRunsPage = 7
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open of a version-3 database: %v", err)
	}
	defer s.Close()
	for acct, ids := range want {
		es, err := s.ListEntries(ctx, ledger.ListEntriesParams{AccountID: acct})
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for i := len(es) - 1; i >= 0; i-- {
			got = append(got, es[i].ID)
			if es[i].AmountCredits != es[i].ID || len(es[i].Legs) != 1 || es[i].Legs[0].Credits != 5 || !es[i].CreatedAt.Equal(t0) {
				t.Fatalf("entry after migration: %+v", es[i])
			}
		}
		if !slices.Equal(got, ids) {
			t.Errorf("%s: entries %v after migration, want %v", acct, got, ids)
		}
	}
	es := []ledger.Entry{{AccountID: "A", Type: ledger.EntryHold, AmountCredits: 1, CreatedAt: t0}}
	commit(t, s, func(b ledger.Batch) error { return b.InsertEntries(ctx, es) })
	if es[0].ID != 604 {
		t.Errorf("first entry after migration got id %d, want 604", es[0].ID)
	}
}

// TestListEntriesAcrossRuns pages an account's entries newest first
// through many runs of different sizes, with cursors inside runs.
func TestListEntriesAcrossRuns(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	var all []int64
	for _, n := range []int{1, 5, runEntriesMax + 3, 2, 40} {
		es := make([]ledger.Entry, n)
		for i := range es {
			acct := "A"
			if i%3 == 1 {
				acct = "B"
			}
			es[i] = ledger.Entry{AccountID: acct, Type: ledger.EntryHold, CreatedAt: t0}
		}
		commit(t, s, func(b ledger.Batch) error { return b.InsertEntries(ctx, es) })
		for _, e := range es {
			if e.AccountID == "A" {
				all = append(all, e.ID)
			}
		}
		if err := s.sync(ctx); err != nil { // one materialization per batch: runs end at batch borders
			t.Fatal(err)
		}
	}
	slices.Reverse(all)
	for _, limit := range []int{1, 7, runEntriesMax, 1000} {
		var got []int64
		before := int64(0)
		for {
			page, err := s.ListEntries(ctx, ledger.ListEntriesParams{AccountID: "A", BeforeID: before, Limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				got = append(got, e.ID)
			}
			if len(page) < limit {
				break
			}
			before = page[len(page)-1].ID
		}
		if !slices.Equal(got, all) {
			t.Errorf("limit %d: paged %d entries %v…, want %d %v…", limit, len(got), got[:min(5, len(got))], len(all), all[:5])
		}
	}
}

// TestJournalFullWithFailingMaterializer: when the tables cannot take
// journaled batches and the journal is full, BeginBatch answers
// unavailable instead of waiting for ever; Close leaves the batches in the
// journal, and the next Open replays them.
func TestJournalFullWithFailingMaterializer(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "creditd.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.j.Tune(func(t *journal.Tuning) { t.PendingRowsMax = 3 })
	s.j.WrapMaterialize(func(journal.MaterializeFunc) journal.MaterializeFunc { return failMaterialize })
	committed := 0
	for i := 1; i <= 10; i++ {
		b, err := s.BeginBatch(ctx)
		if err != nil {
			if ledger.ErrorCode(err) != ledger.EUnavailable || !strings.Contains(err.Error(), "disk on fire") {
				t.Fatalf("BeginBatch with a full journal: %v, want unavailable with the cause", err)
			}
			break
		}
		// A new account each time: a rewritten row would be dropped
		// from memory (compact) and never fill the journal.
		if err := errors.Join(b.SaveAccounts(ctx, []*ledger.Account{account(fmt.Sprintf("A%d", i), int64(i))}), b.Commit()); err != nil {
			t.Fatal(err)
		}
		committed = i
		if i == 1 {
			// Wait for the materializer's first failure.
			for {
				ch, err := s.j.Progress()
				if err != nil {
					break
				}
				<-ch
			}
		}
	}
	if committed != 3 {
		t.Fatalf("%d batches committed before the journal was full, want 3", committed)
	}
	if st := s.JournalStats(); st.Failures < 1 || st.FullWaits != 1 || st.PendingRows != 3 || st.Transactions != 0 {
		t.Errorf("stats of a full journal that cannot be materialized: %+v", st)
	}
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "stay in the journal") {
		t.Errorf("Close with unmaterialized batches: %v", err)
	}
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for i := 1; i <= 3; i++ {
		if a, err := s2.GetAccount(ctx, fmt.Sprintf("A%d", i)); err != nil || a.Version != int64(i) {
			t.Errorf("A%d after reopening: %+v, %v; want version %d from the journal", i, a, err, i)
		}
	}
}

// LoadStates answers what LoadState answers account by account, from
// tables and journal alike; unknown accounts are absent.
func TestLoadStatesMatchesLoadState(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	ids := []string{"A", "B", "C"}
	for round := range 2 { // the first round is materialized, the second still journaled
		for i, id := range ids {
			n := fmt.Sprintf("%s%d", id, round)
			g := &ledger.Grant{ID: "g" + n, AccountID: id, Source: ledger.SourceAdmin, AmountCredits: 10, RemainingCredits: 10 - int64(i), HeldCredits: int64(i), CreatedAt: t0}
			done := &ledger.Grant{ID: "x" + n, AccountID: id, Source: ledger.SourceAdmin, AmountCredits: 5, ChargedCredits: 5, CreatedAt: t0}
			h := &ledger.Hold{ID: "h" + n, AccountID: id, Action: "generate", Category: ledger.CategoryImage, Quantity: 1, UnitPriceCredits: 5,
				AmountCredits: 5, Status: ledger.HoldPending, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
			j := &ledger.Job{ID: "j" + n, AccountID: id, Action: "generate", Category: ledger.CategoryImage, Quantity: 1,
				Status: ledger.JobQueued, HoldID: h.ID, CreatedAt: t0, UpdatedAt: t0}
			commit(t, s, func(b ledger.Batch) error {
				return errors.Join(b.SaveAccounts(ctx, []*ledger.Account{account(id, int64(round+1))}),
					b.SaveGrants(ctx, []*ledger.Grant{g, done}), b.SaveHolds(ctx, []*ledger.Hold{h}), b.SaveJobs(ctx, []*ledger.Job{j}))
			})
		}
		if round == 0 {
			if err := s.sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := s.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Rollback()
	many, err := b.LoadStates(ctx, append(ids, "nobody"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := many["nobody"]; ok || len(many) != len(ids) {
		t.Fatalf("LoadStates returned %d states (%v), want %d", len(many), many["nobody"], len(ids))
	}
	for _, id := range ids {
		one, err := b.LoadState(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(one, many[id]) {
			t.Errorf("%s: LoadStates\n %+v\nLoadState\n %+v", id, many[id], one)
		}
		if len(one.Grants) != 2 || len(one.Holds) != 2 || len(one.Jobs) != 2 {
			t.Errorf("%s: %d live grants, %d holds, %d jobs; want 2 each", id, len(one.Grants), len(one.Holds), len(one.Jobs))
		}
	}
}

// Two new grants with one reference in a single SaveGrants call are a
// conflict too: the materializer must never meet the unique index.
func TestSaveGrantsDuplicateReferenceInOneCall(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	b, err := s.BeginBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Rollback()
	g1 := &ledger.Grant{ID: "g1", AccountID: "A", Source: ledger.SourcePurchase, Reference: "cs_1", AmountCredits: 10, RemainingCredits: 10, CreatedAt: t0}
	g2 := *g1
	g2.ID = "g2"
	if err := b.SaveGrants(ctx, []*ledger.Grant{g1, &g2}); ledger.ErrorCode(err) != ledger.EConflict {
		t.Errorf("two grants with one reference in one call: %v, want conflict", err)
	}
}

// A backlog is materialized in transactions of about chunkRows rows, one
// after another without the window's delay, and every batch lands.
func TestMaterializeBacklogInChunks(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	release := make(chan struct{})
	var sizes []int
	var sizesMu sync.Mutex
	s.j.Tune(func(t *journal.Tuning) { t.ChunkRows = 2 })
	s.j.WrapMaterialize(func(write journal.MaterializeFunc) journal.MaterializeFunc {
		return func(ctx context.Context, sets []*journal.ChangeSet) error {
			<-release
			sizesMu.Lock()
			sizes = append(sizes, len(sets))
			sizesMu.Unlock()
			return write(ctx, sets)
		}
	})
	for i := 1; i <= 7; i++ { // one row each
		commit(t, s, func(b ledger.Batch) error {
			return b.SaveAccounts(ctx, []*ledger.Account{account(fmt.Sprintf("acct-%d", i), 1)})
		})
	}
	if st := s.JournalStats(); st.PendingRows != 7 || st.PendingBatches != 7 || st.Transactions != 0 || st.PendingRowsMax != journal.PendingRowsMax {
		t.Fatalf("stats with 7 batches pending: %+v", st)
	}
	close(release)
	if err := s.j.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	sizesMu.Lock()
	got := slices.Clone(sizes)
	sizesMu.Unlock()
	if st := s.JournalStats(); st.PendingRows != 0 || st.PendingBatches != 0 || st.Transactions != int64(len(got)) ||
		st.Rows != 7 || st.Seconds <= 0 || st.Failures != 0 || st.FullWaits != 0 {
		t.Fatalf("stats after %d transactions: %+v", len(got), st)
	}
	total := 0
	for _, n := range got {
		if n < 1 || n > 2 {
			t.Fatalf("transactions of %v batches; want at most 2 rows (batches) each", got)
		}
		total += n
	}
	if total != 7 || len(got) < 4 {
		t.Fatalf("transactions of %v batches; want the 7 batches in at least 4", got)
	}
	for i := 1; i <= 7; i++ {
		if _, err := s.LoadState(ctx, fmt.Sprintf("acct-%d", i)); err != nil {
			t.Errorf("account acct-%d after the backlog: %v", i, err)
		}
	}
}

// gateMaterializer makes s's materializer wait for no window (only a
// reader or the start threshold starts a transaction), report the rows of
// each transaction on started as it begins, and write it only when release
// receives (or is closed: releaseAll, also at the test's end, before
// Close, which waits for the materializer).
func gateMaterializer(t *testing.T, s *Store) (started chan int, release chan struct{}, releaseAll func()) {
	started, release = make(chan int, 4), make(chan struct{})
	releaseAll = sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseAll)
	s.j.Tune(func(t *journal.Tuning) { t.Delay = time.Hour })
	s.j.WrapMaterialize(func(write journal.MaterializeFunc) journal.MaterializeFunc {
		return func(ctx context.Context, sets []*journal.ChangeSet) error {
			started <- rowsOf(sets)
			<-release
			return write(ctx, sets)
		}
	})
	return started, release, releaseAll
}

// rowsOf counts the rows of journaled batches.
func rowsOf(sets []*journal.ChangeSet) int {
	rows := 0
	for _, c := range sets {
		rows += c.Rows()
	}
	return rows
}

// The materializer starts a transaction early enough that the rows
// arriving while it writes fit below the journal's bound: after a
// transaction during which 40 rows arrived, it starts at the bound minus
// 80 rows, without waiting for its window; with no arrivals the margin
// shrinks by a quarter a transaction.
func TestMaterializerKeepsHeadroom(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	started, release, _ := gateMaterializer(t, s) // only a row count or a reader starts a transaction
	s.j.Tune(func(t *journal.Tuning) { t.PendingRowsMax = 1000 })
	n := 0
	commitRows := func(k int) {
		for range k {
			n++
			commit(t, s, func(b ledger.Batch) error {
				return b.SaveAccounts(ctx, []*ledger.Account{account(fmt.Sprintf("acct-%d", n), 1)})
			})
		}
	}
	if got := s.JournalStats().StartRows; got != 1000 {
		t.Fatalf("StartRows before any transaction = %d, want the bound, 1000", got)
	}
	commitRows(10)
	synced := make(chan error, 1)
	go func() { synced <- s.j.Sync(ctx) }() // a reader: starts a transaction now
	if rows := <-started; rows != 10 {
		t.Fatalf("the reader's transaction covers %d rows, want 10", rows)
	}
	commitRows(40) // arrive while it writes
	release <- struct{}{}
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	if got := s.JournalStats().StartRows; got != 1000-80 {
		t.Fatalf("StartRows after 40 rows arrived during a transaction = %d, want 920", got)
	}
	// 40 rows pending; the transaction starts at the 920th, not before.
	commitRows(879)
	select {
	case rows := <-started:
		t.Fatalf("a transaction started with %d rows pending, below 920", rows)
	default:
	}
	commitRows(1)
	if rows := <-started; rows != 920 {
		t.Fatalf("the transaction started with %d rows, want 920", rows)
	}
	release <- struct{}{}
	if err := s.j.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.JournalStats(); st.StartRows != 1000-60 || st.FullWaits != 0 {
		t.Fatalf("after a transaction with no arrivals: %+v, want StartRows 940 and no full waits", st)
	}
}

// A reader that waits through a backlog of several transactions leaves no
// urgency behind: once the journal is empty, the next batches wait for the
// window (or the start threshold) again instead of starting a transaction
// of one batch at once.
func TestNoUrgencyLeftAfterABacklog(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	took := make(chan int, 16)
	s.j.Tune(func(t *journal.Tuning) {
		t.ChunkRows = 100   // a transaction stops after 100 rows
		t.Delay = time.Hour // only a reader starts a transaction
	})
	s.j.WrapMaterialize(func(write journal.MaterializeFunc) journal.MaterializeFunc {
		return func(ctx context.Context, sets []*journal.ChangeSet) error {
			took <- rowsOf(sets)
			return write(ctx, sets)
		}
	})
	n := 0
	commitBatches := func(k int) { // k batches of 50 rows
		for range k {
			commit(t, s, func(b ledger.Batch) error {
				as := make([]*ledger.Account, 50)
				for i := range as {
					n++
					as[i] = account(fmt.Sprintf("acct-%d", n), 1)
				}
				return b.SaveAccounts(ctx, as)
			})
		}
	}
	transactions := func(want ...int) {
		t.Helper()
		if err := s.j.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		var got []int
		for len(took) > 0 {
			got = append(got, <-took)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("transactions of %v rows, want %v", got, want)
		}
	}
	for range 5 {
		commitBatches(6)
		transactions(100, 100, 100) // nothing before the reader
	}
}

// A grant's update sets only the columns that change, so SQLite leaves the
// entries of grants_account and grants_reference (on account, source,
// reference, created_at) alone; the other upserts set every column.
func TestGrantUpsertLeavesFixedColumns(t *testing.T) {
	q := tables[tGrants].insertSQL(2)
	_, set, _ := strings.Cut(q, "DO UPDATE SET ")
	for _, c := range []string{"account_id", "source", "reference", "created_at"} {
		if strings.Contains(set, c+" = ") {
			t.Errorf("the grants upsert sets %s: %s", c, set)
		}
	}
	for _, c := range []string{"amount", "remaining", "held", "charged", "expired", "expires_at"} {
		if !strings.Contains(set, c+" = excluded."+c) {
			t.Errorf("the grants upsert does not set %s: %s", c, set)
		}
	}
	if _, set, _ := strings.Cut(tables[tHolds].insertSQL(1), "DO UPDATE SET "); !strings.Contains(set, "created_at = excluded.created_at") {
		t.Errorf("the holds upsert does not set created_at: %s", set)
	}
}

// checkPending asserts the journal's bookkeeping (journal.CheckPending).
func checkPending(t *testing.T, j *journal.Journal) {
	t.Helper()
	if err := j.CheckPending(); err != nil {
		t.Fatal(err)
	}
}

// Rows that a later batch rewrites leave memory before they are
// materialized, once they are a quarter of their batch's rows: a hot account
// rewritten by every batch, and holds reserved in one batch and captured
// in the next, leave one live row of each key in the journal's bound.
// Batches the running transaction writes are left whole. Reads, the
// tables and a reopen (from the journal file, which keeps every batch
// whole) see the newest versions and every row that was not rewritten.
func TestJournalDropsRewrittenRows(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	started, release, releaseAll := gateMaterializer(t, s) // only a reader starts a transaction
	h := newHold("hot", t0)
	n := 0
	// Odd batches: the hot account, two new cold accounts, a new pending
	// hold (4 rows; 2 rewritten by the next batch, 2 kept). Even batches:
	// the hot account and the hold captured (2 rows; 1 rewritten by the
	// next).
	batches := func(k int) {
		for range k {
			n++
			commit(t, s, func(b ledger.Batch) error {
				if n%2 == 1 {
					h = newHold("hot", t0.Add(time.Duration(n)*time.Millisecond))
					return errors.Join(
						b.SaveAccounts(ctx, []*ledger.Account{account("hot", int64(n)),
							account(fmt.Sprintf("cold-%d", n), 1), account(fmt.Sprintf("cold-%d-b", n), 1)}),
						b.SaveHolds(ctx, []*ledger.Hold{h}))
				}
				return errors.Join(
					b.SaveAccounts(ctx, []*ledger.Account{account("hot", int64(n))}),
					b.SaveHolds(ctx, []*ledger.Hold{settle(h, ledger.HoldCaptured, t0)}))
			})
			checkPending(t, s.j)
		}
	}
	batches(100)
	// Live: the hot account's newest version, 100 cold accounts, 50
	// captured holds.
	if st := s.JournalStats(); st.PendingRows != 1+100+50 || st.Superseded != 99+50 || st.PendingBatches != 100 {
		t.Fatalf("after 100 batches: %+v; want 151 pending rows, 149 superseded", st)
	}
	if a, err := s.GetAccount(ctx, "hot"); err != nil || a.Version != 100 {
		t.Fatalf("hot account from the overlay: %+v, %v; want version 100", a, err)
	}

	// A transaction takes the 100 batches; while it writes, 10 more
	// arrive, and the hot row of the last batch it writes, rewritten
	// now, stays.
	synced := make(chan error, 1)
	go func() { synced <- s.j.Sync(ctx) }()
	if rows := <-started; rows != 151 {
		t.Fatalf("the transaction writes %d rows, want 151", rows)
	}
	batches(10)
	if st := s.JournalStats(); st.PendingRows != 151+16 || st.Superseded != 149+9+5 {
		t.Fatalf("10 batches during a transaction: %+v; want 167 pending rows, 163 superseded", st)
	}
	release <- struct{}{}
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	checkPending(t, s.j)
	if st := s.JournalStats(); st.PendingRows != 16 || st.Rows != 50*4+50*2 {
		t.Fatalf("after the transaction: %+v; want 16 pending rows, 300 journaled rows materialized", st)
	}
	go func() { synced <- s.j.Sync(ctx) }()
	<-started
	release <- struct{}{}
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	check := func(s *Store, batches int) {
		t.Helper()
		if a, err := s.GetAccount(ctx, "hot"); err != nil || a.Version != int64(batches) {
			t.Fatalf("hot account %+v, %v; want version %d", a, err, batches)
		}
		for i := 1; i <= batches; i += 2 {
			for _, id := range []string{fmt.Sprintf("cold-%d", i), fmt.Sprintf("cold-%d-b", i)} {
				if _, err := s.GetAccount(ctx, id); err != nil {
					t.Fatalf("%s: %v", id, err)
				}
			}
		}
		st, err := s.LoadHistory(ctx, "hot")
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Holds) != batches/2 {
			t.Fatalf("%d holds of the hot account, want %d", len(st.Holds), batches/2)
		}
		for _, h := range st.Holds {
			if h.Status != ledger.HoldCaptured {
				t.Fatalf("hold %s is %s, want captured", h.ID, h.Status)
			}
		}
	}
	check(s, 110)

	// Batches that are never materialized: a reopen replays them whole
	// from the journal file.
	s.j.WrapMaterialize(func(journal.MaterializeFunc) journal.MaterializeFunc { return failMaterialize })
	releaseAll()
	batches(10)
	if st := s.JournalStats(); st.PendingRows != 16 {
		t.Fatalf("10 more batches: %+v; want 16 pending rows", st)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close with batches left in the journal: nil error")
	}
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	check(s2, 120)
}

// A backlog's step does not end between a batch that lost rows to
// compaction and the batch holding their newest versions: the tables,
// as a read-only store sees them between transactions, always hold the
// state after some batch. Here batch 1 creates A and B, batch 2 rewrites
// A (so batch 1 keeps only B) and creates C; with steps of one row, the
// first step still covers both.
func TestBacklogStepsKeepTablesConsistent(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	started, release, _ := gateMaterializer(t, s)
	s.j.Tune(func(t *journal.Tuning) { t.ChunkRows = 1 })
	commit(t, s, func(b ledger.Batch) error {
		return b.SaveAccounts(ctx, []*ledger.Account{account("A", 1), account("B", 1)})
	})
	commit(t, s, func(b ledger.Batch) error {
		return b.SaveAccounts(ctx, []*ledger.Account{account("A", 2), account("C", 1)})
	})
	commit(t, s, func(b ledger.Batch) error { return b.SaveAccounts(ctx, []*ledger.Account{account("D", 1)}) })
	if st := s.JournalStats(); st.Superseded != 1 || st.PendingRows != 4 {
		t.Fatalf("after 3 batches: %+v; want batch 1's A dropped, 4 pending rows", st)
	}
	synced := make(chan error, 1)
	go func() { synced <- s.j.Sync(ctx) }()
	if rows := <-started; rows != 3 {
		t.Fatalf("the first step writes %d rows, want 3 (batches 1 and 2)", rows)
	}
	release <- struct{}{}
	if rows := <-started; rows != 1 {
		t.Fatalf("the second step writes %d rows, want 1 (batch 3)", rows)
	}
	// Between the two steps the tables hold the state after batch 2.
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for id, want := range map[string]int64{"A": 2, "B": 1, "C": 1} {
		if a, err := ro.GetAccount(ctx, id); err != nil || a.Version != want {
			t.Errorf("read-only between steps: %s = %+v, %v; want version %d", id, a, err, want)
		}
	}
	if _, err := ro.GetAccount(ctx, "D"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("read-only between steps: D (batch 3) = %v, want not found yet", err)
	}
	release <- struct{}{}
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
}

// Random batches over a few accounts, materialized in steps of a few rows
// while compaction drops rewritten rows: after every step the tables hold
// exactly the state after the batch applied_seq names (every account at
// its newest version up to that batch, none created later), and the
// overlay always answers the newest version.
func TestCompactedStepsLeaveTablesAtABatch(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			ctx := context.Background()
			s, _ := openTemp(t)
			started, release, _ := gateMaterializer(t, s)
			rng := rand.New(rand.NewPCG(seed, 7))
			chunk := 1 + rng.IntN(6)
			s.j.Tune(func(t *journal.Tuning) { t.ChunkRows = chunk })
			// versions[id][seq] is the version batch seq gave id.
			versions := map[string]map[int64]int64{}
			seq := int64(0)
			atSeq := func(id string, applied int64) (int64, bool) {
				best, v := int64(0), int64(0)
				for s, ver := range versions[id] {
					if s <= applied && s > best {
						best, v = s, ver
					}
				}
				return v, best > 0
			}
			checkTables := func() {
				t.Helper()
				var applied int64
				if err := s.r.QueryRow(`SELECT applied_seq FROM journal_state WHERE id = 1`).Scan(&applied); err != nil {
					t.Fatal(err)
				}
				for id := range versions {
					want, ok := atSeq(id, applied)
					var got int64
					err := s.r.QueryRow(`SELECT version FROM accounts WHERE id = ?`, id).Scan(&got)
					switch {
					case !ok && !errors.Is(err, sql.ErrNoRows):
						t.Fatalf("tables at batch %d: %s = %d, %v; want absent", applied, id, got, err)
					case ok && (err != nil || got != want):
						t.Fatalf("tables at batch %d: %s = %d, %v; want version %d", applied, id, got, err, want)
					}
				}
			}
			for range 30 {
				for range 1 + rng.IntN(12) {
					seq++
					var as []*ledger.Account
					for _, k := range rng.Perm(6)[:1+rng.IntN(3)] {
						id := fmt.Sprint("acct-", k)
						if rng.IntN(4) == 0 { // sometimes an account of its own
							id = fmt.Sprint("once-", seq)
						}
						if versions[id] == nil {
							versions[id] = map[int64]int64{}
						}
						versions[id][seq] = seq*10 + int64(len(as))
						as = append(as, account(id, versions[id][seq]))
					}
					commit(t, s, func(b ledger.Batch) error { return b.SaveAccounts(ctx, as) })
					checkPending(t, s.j)
				}
				for id := range versions {
					want, _ := atSeq(id, seq)
					if a, err := s.GetAccount(ctx, id); err != nil || a.Version != want {
						t.Fatalf("after batch %d: %s = %+v, %v; want version %d", seq, id, a, err, want)
					}
				}
				synced := make(chan error, 1)
				go func() { synced <- s.j.Sync(ctx) }()
				<-started
				for done := false; !done; {
					release <- struct{}{}
					select {
					case <-started: // the previous step committed; the next waits
					case err := <-synced:
						if err != nil {
							t.Fatal(err)
						}
						done = true
					}
					checkTables()
				}
			}
			if st := s.JournalStats(); st.Superseded == 0 {
				t.Fatalf("no row was dropped: %+v", st)
			}
		})
	}
}
