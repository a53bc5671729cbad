// Package sqlite is the embedded SQLite back end of creditd: a ledger.Store
// in one database file, written by exactly one process.
//
// Open applies the schema migrations (goose, embedded from migrations/) and
// takes an exclusive advisory lock on path+".lock", so a second writer, in
// this or another process, fails at Open instead of corrupting the engine's
// in-memory state; the store is therefore Exclusive. OpenReadOnly opens the
// same file read-only, without lock or migrations, for `creditd verify`
// while a server runs.
//
// A batch is committed by appending it as one record to the journal, plain
// segment files in <name>.journal/ made durable with fdatasync (package
// journal); a materializer writes journaled batches into the tables many at
// a time (materialize.go). Open first runs the upgrade step (upgrade.go),
// which brings data directories of older versions to the current format. The database runs in WAL mode with
// synchronous=FULL. A commit that returned nil survives kill -9 and power
// loss. Reads see every committed batch. A
// read-only store sees what the writer has materialized so far: a
// consistent prefix of the committed batches.
//
// Times are INTEGER unix microseconds UTC, 0 for the zero time; hold
// portions, entry legs and job outputs are JSON text. Job params are stored
// verbatim as TEXT ("{}" when empty) and read back byte-identical. Job and
// asset Seqs are rowids: max+1 on insert, kept by an upsert.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
	"github.com/creditd/creditd/store/sqlite/journal"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// ErrLocked is wrapped by the error Open returns when another store (in this
// or another process) has the database open for writing.
var ErrLocked = errors.New("database is locked by another writer")

// ErrReadOnly is wrapped by the errors of writes to a store opened with
// OpenReadOnly.
var ErrReadOnly = errors.New("store is read-only")

const (
	busyTimeoutMS = 5000
	// Multi-row statements insert 1<<k rows, k <= maxChunkLog2: a batch of n
	// rows takes n/256 full statements plus one per set bit of n%256, and
	// each table needs only maxChunkLog2+1 prepared statements. 256 rows of
	// the widest table (jobs, 19 columns) bind 4864 variables, far under
	// SQLite's limit of 32766.
	maxChunkLog2 = 8
)

// Store is a ledger.Store on one SQLite file. It is safe for concurrent
// use; batches are serialised (BeginBatch waits for the running batch).
type Store struct {
	path     string
	readOnly bool
	lock     *os.File // exclusive flock on path+".lock"; nil when read-only

	w *sql.DB // the one writer connection; nil when read-only
	r *sql.DB // readers

	wstmt map[string]*sql.Stmt // on w: DeleteIdempotencyBefore and the asset writes
	rstmt map[string]*sql.Stmt // on r
	ins   [numTables][maxChunkLog2 + 1]*sql.Stmt

	// credStmts are the queries of credential revocations (credentials.go)
	// and of worker polls (workerpolls.go);
	// empty when read-only.
	credStmts map[string]*sql.Stmt
	// assetStmts are the queries of assets that read their state
	// (assets.go); empty when read-only.
	assetStmts map[string]*sql.Stmt

	j *journal.Journal // nil when read-only
	// batchMu is held from BeginBatch to Commit or Rollback: one batch at
	// a time. It guards nextEntry and nextJobSeq, the ids the next batch
	// assigns.
	batchMu    sync.Mutex
	nextEntry  int64
	nextJobSeq int64
	nextEvent  int64
	// tablePending is the ids of the pending holds in the holds table,
	// which a materializer transaction that settles one deletes from there.
	// Only the materializer (and Open, before it starts) uses it.
	tablePending map[string]struct{}

	// heal is the healing after a failed journal write (heal.go).
	heal   healer
	healMu sync.Mutex

	closeOnce sync.Once
	closeErr  error
}

var _ ledger.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path for reading and
// writing, locks it against other writers, and runs the upgrade step
// (upgrade.go), which applies pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, options{})
}

// open is Open with test seams: faults in the journal's files, the
// healer's timer.
func open(ctx context.Context, path string, opts options) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	lock, err := lockFile(abs + ".lock")
	if err != nil {
		return nil, err
	}
	s := &Store{path: abs, lock: lock, credStmts: map[string]*sql.Stmt{}, assetStmts: map[string]*sql.Stmt{},
		heal: healer{opts: opts, stop: make(chan struct{})}}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()

	wdsn := dsn(abs, modeWriter)
	if err := upgrade(ctx, abs); err != nil {
		return nil, err
	}
	if s.w, err = sql.Open("sqlite", wdsn); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if err := s.openReaders(ctx, dsn(abs, modeReader)); err != nil {
		return nil, err
	}
	if s.rstmt, err = prepareAll(ctx, s.r, readQueries); err != nil {
		return nil, err
	}
	if s.wstmt, err = prepareAll(ctx, s.w, writeQueries); err != nil {
		return nil, err
	}
	if err := s.prepareCredentials(ctx); err != nil {
		return nil, err
	}
	if err := s.prepareAssets(ctx); err != nil {
		return nil, err
	}
	for t := range numTables {
		for k := range maxChunkLog2 + 1 {
			q := tables[t].insertSQL(1 << k)
			if s.ins[t][k], err = s.w.PrepareContext(ctx, q); err != nil {
				return nil, fmt.Errorf("sqlite: prepare %.60s…: %w", q, err)
			}
		}
	}
	if err := s.openJournal(ctx, opts.files); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// OpenReadOnly opens an existing database read-only, without migrations or
// the writer lock, so it works while a server has the database open. Its
// batches and DeleteIdempotencyBefore fail with ErrReadOnly.
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	s := &Store{path: abs, readOnly: true}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if err := s.openReaders(ctx, dsn(abs, modeReadOnly)); err != nil {
		return nil, err
	}
	var n int
	err = s.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table'
		AND name IN ('accounts', 'grants', 'holds', 'hold_blocks', 'entry_runs', 'idempotency_keys', 'jobs', 'assets')`).Scan(&n)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read schema of %s: %w", abs, err)
	}
	if n == 8 {
		// Blocks from before migration 6, which only the upgrade step reads.
		// (Before migration 6 the query fails: there is no q.)
		var old int
		err = s.r.QueryRowContext(ctx, qAnyLegacyHoldBlock).Scan(&old)
		if err != nil || old > 0 {
			n = 0
		}
	}
	if n != 8 {
		return nil, fmt.Errorf("sqlite: %s lacks the current creditd schema (open it read-write once to create or upgrade it)", abs)
	}
	var lacks13 int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) = 0 FROM pragma_table_info('accounts') WHERE name = 'alerts'`).Scan(&lacks13); err != nil {
		return nil, fmt.Errorf("sqlite: read schema of %s: %w", abs, err)
	}
	queries := readQueries
	if lacks13 == 1 {
		queries = before13(readQueries)
	}
	if s.rstmt, err = prepareAll(ctx, s.r, queries); err != nil {
		return nil, err
	}
	if lacks13 == 1 {
		for i, q := range queries {
			s.rstmt[readQueries[i]] = s.rstmt[q]
		}
	}
	ok = true
	return s, nil
}

// before13 rewrites read queries for a database a read-only store opens
// before migration 13: accounts read the default threshold and no alerts,
// grants no notices, and there are no events and no deadlines index.
func before13(queries []string) []string {
	out := make([]string, len(queries))
	for i, q := range queries {
		switch q {
		case qEventsAfter:
			q = `SELECT 0, '', '', '', 0, '' WHERE ? AND ? AND 0`
		case qGetEvent:
			q = `SELECT 0, '', '', '', 0, '' WHERE ? AND 0`
		case qGrantDeadlines:
			q = `SELECT ` + rowscan.GrantCols + ` FROM grants WHERE expires_at <> 0 AND source <> 'daily' AND expires_at <= ? AND remaining > 0 ORDER BY expires_at, id`
		}
		q = strings.ReplaceAll(q, "version, low_balance_threshold, alerts", "version, 10, 0")
		q = strings.ReplaceAll(q, "created_at, notices", "created_at, 0")
		out[i] = q
	}
	return out
}

func (s *Store) openReaders(ctx context.Context, dsn string) error {
	var err error
	if s.r, err = sql.Open("sqlite", dsn); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	return nil
}

type connMode int

const (
	modeWriter connMode = iota
	modeReader
	modeReadOnly
)

// dsn builds a SQLite URI for modernc.org/sqlite: "file:" URIs reach SQLite
// whole, so SQLite's own parameters (mode=ro) apply and odd characters in
// the path are percent-encoded.
func dsn(path string, mode connMode) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	switch mode {
	case modeWriter:
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		// Multi-row statements need statement journals for their own
		// rollback; keep them in memory instead of spilling to temp files.
		q.Add("_pragma", "temp_store(MEMORY)")
		// Large batches dirty many pages; a small cache spills them to the
		// WAL mid-transaction and re-reads index pages (default 2 MiB).
		q.Add("_pragma", "cache_size(-65536)")
		q.Set("_txlock", "immediate")
	case modeReader:
		// FULL as well, in case a reader ends up running a checkpoint.
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_query_only", "1")
	case modeReadOnly:
		q.Set("mode", "ro")
		q.Set("_query_only", "1")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

func prepareAll(ctx context.Context, db *sql.DB, queries []string) (map[string]*sql.Stmt, error) {
	m := make(map[string]*sql.Stmt, len(queries))
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			for _, st := range m {
				st.Close()
			}
			return nil, fmt.Errorf("sqlite: prepare %q: %w", q, err)
		}
		m[q] = st
	}
	return m, nil
}

// Exclusive reports whether this store is the only writer: true for Open
// (it holds the lock), false for OpenReadOnly (another process may write).
func (s *Store) Exclusive() bool { return !s.readOnly }

// Close closes the database and releases the writer lock. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.j != nil {
			s.healMu.Lock()
			close(s.heal.stop)
			s.healMu.Unlock()
			// The materializer uses the writer statements: stop it first.
			s.batchMu.Lock()
			errs = append(errs, s.j.Close())
			s.batchMu.Unlock()
		}
		for _, m := range []map[string]*sql.Stmt{s.rstmt, s.wstmt, s.credStmts, s.assetStmts} {
			for _, st := range m {
				errs = append(errs, st.Close())
			}
		}
		for t := range s.ins {
			for _, st := range s.ins[t] {
				if st != nil {
					errs = append(errs, st.Close())
				}
			}
		}
		// Readers first: the last connection to close checkpoints the WAL,
		// and that should be the writer.
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		if s.w != nil {
			errs = append(errs, s.w.Close())
		}
		if s.lock != nil {
			errs = append(errs, unlockFile(s.lock))
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", err)
		}
	})
	return s.closeErr
}

// ---- schema -------------------------------------------------------------

// Partial indexes are only used when a query repeats their WHERE term, so
// the live and pending conditions below match the migration verbatim.
// Without ANALYZE statistics the planner rates a partial index no better
// than the full per-account one, so INDEXED BY pins it (and makes the query
// fail to prepare, rather than scan, should the index stop applying).
const (
	qGetAccount         = `SELECT ` + rowscan.AccountCols + ` FROM accounts WHERE id = ?`
	qLiveGrants         = `SELECT ` + rowscan.GrantCols + ` FROM grants INDEXED BY grants_live WHERE account_id = ? AND (remaining > 0 OR held > 0) ORDER BY created_at, id`
	qAllGrants          = `SELECT ` + rowscan.GrantCols + ` FROM grants WHERE account_id = ? ORDER BY created_at, id`
	qManyAccounts       = `SELECT ` + rowscan.AccountCols + ` FROM accounts WHERE id IN (SELECT value FROM json_each(?))`
	qManyLiveGrants     = `SELECT ` + rowscan.GrantCols + ` FROM grants INDEXED BY grants_live WHERE account_id IN (SELECT value FROM json_each(?)) AND (remaining > 0 OR held > 0) ORDER BY account_id, created_at, id`
	qManyPendingHolds   = `SELECT ` + rowscan.HoldCols + ` FROM holds INDEXED BY holds_pending WHERE account_id IN (SELECT value FROM json_each(?)) AND status = 'pending'`
	qManyActiveJobs     = `SELECT ` + rowscan.JobCols + `, seq FROM jobs INDEXED BY jobs_active WHERE account_id IN (SELECT value FROM json_each(?)) AND status IN ('queued', 'running') ORDER BY seq`
	qGrantsExist        = `SELECT id FROM grants WHERE id IN (SELECT value FROM json_each(?))`
	qGrantByReference   = `SELECT ` + rowscan.GrantCols + ` FROM grants WHERE account_id = ? AND source = ? AND reference = ? AND reference <> ''`
	qGetHold            = `SELECT ` + rowscan.HoldCols + ` FROM holds WHERE id = ?`
	qPendingHolds       = `SELECT ` + rowscan.HoldCols + ` FROM holds INDEXED BY holds_pending WHERE account_id = ? AND status = 'pending'`
	qAllHolds           = `SELECT ` + rowscan.HoldCols + ` FROM holds WHERE account_id = ? ORDER BY created_at, id`
	qHoldBlocksAt       = `SELECT data FROM hold_blocks INDEXED BY hold_blocks_q WHERE q = ? AND tag = ? AND q IS NOT NULL ORDER BY seq DESC`
	qAccountHoldBlocks  = `SELECT data FROM hold_blocks WHERE account_id = ? ORDER BY ms, seq`
	qListPendingHolds   = `SELECT id, account_id, expires_at FROM holds INDEXED BY holds_pending WHERE status = 'pending' ORDER BY expires_at, id`
	qListEntries        = `SELECT data FROM entry_runs WHERE account_id = ? AND first_id < ? ORDER BY last_id DESC`
	qAllEntries         = `SELECT data FROM entry_runs WHERE account_id = ? ORDER BY last_id`
	qListAccountIDs     = `SELECT id FROM accounts WHERE id > ? ORDER BY id LIMIT ?`
	qGetIdempotency     = `SELECT ` + rowscan.IdemCols + ` FROM idempotency_keys WHERE principal = ? AND "key" = ?`
	qDeleteHolds        = `DELETE FROM holds WHERE id IN (SELECT value FROM json_each(?))`
	qDeleteIdempotency  = `DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys WHERE created_at < ? LIMIT ?)`
	deleteIdempotencyBy = 1000 // rows per DELETE, so batches are not held up long
	qGetJob             = `SELECT ` + rowscan.JobCols + `, seq FROM jobs WHERE id = ?`
	qEventsAfter        = `SELECT ` + rowscan.EventCols + ` FROM webhook_events WHERE seq > ? ORDER BY seq LIMIT ?`
	qGetEvent           = `SELECT ` + rowscan.EventCols + ` FROM webhook_events WHERE id = ?`
	qGrantDeadlines     = `SELECT ` + rowscan.GrantCols + ` FROM grants INDEXED BY grants_deadlines WHERE expires_at <> 0 AND source <> 'daily' AND expires_at <= ? AND remaining > 0 ORDER BY expires_at, id`
	qListJobs           = `SELECT ` + rowscan.JobCols + `, seq FROM jobs INDEXED BY jobs_account WHERE account_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`
	qActiveJobs         = `SELECT ` + rowscan.JobCols + `, seq FROM jobs INDEXED BY jobs_active WHERE account_id = ? AND status IN ('queued', 'running') ORDER BY seq`
	qListActiveJobs     = `SELECT ` + rowscan.JobCols + `, seq FROM jobs INDEXED BY jobs_active WHERE status IN ('queued', 'running') ORDER BY seq`
	// qUploadUsage reads the covering partial index assets_uploads; it
	// names no index, so that it also prepares on a database that a
	// read-only store opens before migration 8 made the index.
	qUploadUsage = `SELECT count(*), coalesce(sum(bytes), 0) FROM assets WHERE account_id = ? AND kind = 'upload'`
	qDeleteAsset = `DELETE FROM assets WHERE id = ?`
)

var readQueries = []string{
	qGetAccount, qManyAccounts, qManyLiveGrants, qManyPendingHolds, qManyActiveJobs, qGrantsExist, qLiveGrants, qAllGrants, qGrantByReference, qGetHold, qPendingHolds,
	qAllHolds, qHoldBlocksAt, qAccountHoldBlocks, qListPendingHolds, qListEntries, qAllEntries, qListAccountIDs, qGetIdempotency,
	qGetJob, qListJobs, qActiveJobs, qListActiveJobs, qUploadUsage, qEventsAfter, qGetEvent, qGrantDeadlines,
}

// writeQueries are prepared on the writer connection only.
var writeQueries = []string{qDeleteIdempotency, qDeleteHolds, qUploadUsage, qDeleteAsset}

type tableID int

const (
	tAccounts tableID = iota
	tGrants
	tHolds
	tEntries
	tHoldBlocks
	tIdempotency
	tJobs
	tEvents
	numTables
)

// table describes a multi-row upsert (or plain insert when key is "").
type table struct {
	name      string
	cols      []string
	key       string // conflict target
	returning string // RETURNING columns, if any
	// fixed are columns a row never changes after its insert, left out
	// of the upsert's SET: SQLite rewrites the entry of every index on a
	// column the SET names, even to the same value, and over many
	// accounts each such entry is a page of its own to write.
	fixed string
}

func cols(s string) []string {
	f := strings.Split(s, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

var tables = [numTables]table{
	tAccounts:    {"accounts", cols(rowscan.AccountCols), "id", "", ""},
	tGrants:      {"grants", cols(rowscan.GrantCols), "id", "", "account_id, source, reference, created_at"},
	tHolds:       {"holds", cols(rowscan.HoldCols), "id", "", ""},
	tEntries:     {"entry_runs", cols("account_id, last_id, first_id, data"), "", "", ""},
	tHoldBlocks:  {"hold_blocks", cols("account_id, ms, seq, last_id, data, q, tag"), "", "", ""},
	tIdempotency: {"idempotency_keys", cols(rowscan.IdemCols), `principal, "key"`, "", ""},
	tJobs:        {"jobs", append(cols(rowscan.JobCols), "seq"), "id", "", ""},
	tEvents:      {"webhook_events", cols(rowscan.EventCols), "", "", ""},
}

// insertSQL returns INSERT INTO t (cols) VALUES (?, …), … for n rows, with
// ON CONFLICT (key) DO UPDATE SET every other column but the fixed ones
// for upserts, and
// RETURNING t.returning if set.
func (t *table) insertSQL(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + t.name + " (" + strings.Join(t.cols, ", ") + ") VALUES ")
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(t.cols)), ", ") + ")"
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	if t.key != "" {
		b.WriteString(" ON CONFLICT (" + t.key + ") DO UPDATE SET ")
		keys := cols(t.key)
		if t.fixed != "" {
			keys = append(keys, cols(t.fixed)...)
		}
		first := true
		for _, c := range t.cols {
			if slices.Contains(keys, c) {
				continue
			}
			if !first {
				b.WriteString(", ")
			}
			first = false
			b.WriteString(c + " = excluded." + c)
		}
	}
	if t.returning != "" {
		b.WriteString(" RETURNING " + t.returning)
	}
	return b.String()
}

// chunks calls f for consecutive runs [start, start+1<<k) covering n rows.
func chunks(n int, f func(start, k int) error) error {
	for start := 0; start < n; {
		k := maxChunkLog2
		for 1<<k > n-start {
			k--
		}
		if err := f(start, k); err != nil {
			return err
		}
		start += 1 << k
	}
	return nil
}

// ---- errors -------------------------------------------------------------

// wrap translates driver errors: no rows → ledger.ErrNotFound, unique
// violations → EConflict (conflict is its message), other constraint
// violations, type mismatches and oversized values → EInvalid, busy →
// EUnavailable. Those caused by the data written, unique violations
// included, also carry ledger.ErrBadData, as PostgreSQL's SQLSTATE classes
// 22 and 23 do. The driver error stays in the chain.
func wrap(op string, err error, conflict string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: %s: %w", op, ledger.ErrNotFound)
	}
	var se *msqlite.Error
	if errors.As(err, &se) {
		switch {
		case se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			if conflict == "" {
				conflict = "a row with the same key already exists"
			}
			return fmt.Errorf("sqlite: %s: %w: %w: %w", op, ledger.Errorf(ledger.EConflict, "%s", conflict), ledger.ErrBadData, err)
		case se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT:
			return fmt.Errorf("sqlite: %s: %w: %w: %w", op, ledger.Errorf(ledger.EInvalid, "a value breaks a constraint of the database"), ledger.ErrBadData, err)
		case se.Code()&0xff == sqlite3.SQLITE_MISMATCH || se.Code()&0xff == sqlite3.SQLITE_TOOBIG:
			return fmt.Errorf("sqlite: %s: %w: %w: %w", op, ledger.Errorf(ledger.EInvalid, "a value is out of the range or format the database accepts"), ledger.ErrBadData, err)
		case se.Code()&0xff == sqlite3.SQLITE_BUSY || se.Code()&0xff == sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("sqlite: %s: %w: %w", op, ledger.Errorf(ledger.EUnavailable, "the database is busy"), err)
		}
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// ---- reads --------------------------------------------------------------

// stmter returns the prepared statement for a query in the current context
// (the reader pool, a read transaction or a batch).
type stmter func(q string) *sql.Stmt

func getAccount(ctx context.Context, st stmter, id string) (*ledger.Account, error) {
	a, err := rowscan.Account(st(qGetAccount).QueryRowContext(ctx, id))
	if err != nil {
		return nil, wrap("get account "+id, err, "")
	}
	return a, nil
}

func queryGrants(ctx context.Context, stmt *sql.Stmt, args ...any) ([]*ledger.Grant, error) {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*ledger.Grant
	for rows.Next() {
		g, err := rowscan.Grant(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

func queryHolds(ctx context.Context, stmt *sql.Stmt, args ...any) ([]*ledger.Hold, error) {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*ledger.Hold
	for rows.Next() {
		h, err := rowscan.Hold(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// queryEntries reads entry runs (qListEntries, newest first, or
// qAllEntries, oldest first) and returns their entries in the same order,
// those with ids below before, at most limit of them (-1: all).
func queryEntries(ctx context.Context, stmt *sql.Stmt, desc bool, before int64, limit int, args ...any) ([]ledger.Entry, error) {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ledger.Entry
	for rows.Next() && (limit < 0 || len(out) < limit) {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		run, err := journal.DecodeEntries(data)
		if err != nil {
			return nil, err
		}
		if desc {
			slices.Reverse(run)
		}
		for _, e := range run {
			if e.ID < before && (limit < 0 || len(out) < limit) {
				out = append(out, e)
			}
		}
	}
	return out, rows.Err()
}

// queryAll runs a query and scans every row.
func queryAll[T any](ctx context.Context, stmt *sql.Stmt, scan func(rowscan.Scanner) (T, error), args ...any) ([]T, error) {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		x, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// values turns the pointers scan functions return into values.
func values[T any](ps []*T) []T {
	out := make([]T, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out
}

func loadState(ctx context.Context, st stmter, accountID string) (*ledger.State, error) {
	a, err := getAccount(ctx, st, accountID)
	if err != nil {
		return nil, err
	}
	grants, err := queryGrants(ctx, st(qLiveGrants), accountID)
	if err != nil {
		return nil, wrap("load grants of "+accountID, err, "")
	}
	holds, err := queryHolds(ctx, st(qPendingHolds), accountID)
	if err != nil {
		return nil, wrap("load holds of "+accountID, err, "")
	}
	m := make(map[string]*ledger.Hold, len(holds))
	for _, h := range holds {
		m[h.ID] = h
	}
	jobs, err := queryAll(ctx, st(qActiveJobs), rowscan.Job, accountID)
	if err != nil {
		return nil, wrap("load jobs of "+accountID, err, "")
	}
	jm := make(map[string]*ledger.Job, len(jobs))
	for _, j := range jobs {
		jm[j.ID] = j
	}
	return &ledger.State{Account: *a, Grants: grants, Holds: m, Jobs: jm}, nil
}

// loadStates is loadState for many accounts, one query per table; missing
// accounts are absent from the map.
func loadStates(ctx context.Context, st stmter, ids []string) (map[string]*ledger.State, error) {
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("sqlite: load states: %w", err)
	}
	accounts, err := queryAll(ctx, st(qManyAccounts), rowscan.Account, string(list))
	if err != nil {
		return nil, wrap("load accounts", err, "")
	}
	out := make(map[string]*ledger.State, len(accounts))
	for _, a := range accounts {
		out[a.ID] = &ledger.State{Account: *a, Holds: map[string]*ledger.Hold{}, Jobs: map[string]*ledger.Job{}}
	}
	grants, err := queryGrants(ctx, st(qManyLiveGrants), string(list))
	if err != nil {
		return nil, wrap("load grants", err, "")
	}
	for _, g := range grants {
		if s := out[g.AccountID]; s != nil {
			s.Grants = append(s.Grants, g)
		}
	}
	holds, err := queryHolds(ctx, st(qManyPendingHolds), string(list))
	if err != nil {
		return nil, wrap("load holds", err, "")
	}
	for _, h := range holds {
		if s := out[h.AccountID]; s != nil {
			s.Holds[h.ID] = h
		}
	}
	jobs, err := queryAll(ctx, st(qManyActiveJobs), rowscan.Job, string(list))
	if err != nil {
		return nil, wrap("load jobs", err, "")
	}
	for _, j := range jobs {
		if s := out[j.AccountID]; s != nil {
			s.Jobs[j.ID] = j
		}
	}
	return out, nil
}

func getJob(ctx context.Context, st stmter, id string) (*ledger.Job, error) {
	j, err := rowscan.Job(st(qGetJob).QueryRowContext(ctx, id))
	if err != nil {
		return nil, wrap("get job "+id, err, "")
	}
	return j, nil
}

// getHold reads a hold from holds (pending ones, and those from before
// hold blocks) or else from the hold blocks of its id's time quantum and
// tag.
func getHold(ctx context.Context, st stmter, id string) (*ledger.Hold, error) {
	h, err := rowscan.Hold(st(qGetHold).QueryRowContext(ctx, id))
	if err == nil || !errors.Is(err, sql.ErrNoRows) {
		return h, wrap("get hold "+id, err, "")
	}
	ms, tag, ok := ledger.IDTimeTag(id)
	if !ok {
		return nil, wrap("get hold "+id, err, "")
	}
	var found *ledger.Hold
	find := func(hs []ledger.Hold) bool {
		for i := range hs {
			if hs[i].ID == id {
				found = &hs[i]
				return false
			}
		}
		return true
	}
	err = queryHoldBlocks(ctx, st(qHoldBlocksAt), find, holdQuantum(ms), tag)
	if err == nil && found == nil {
		err = sql.ErrNoRows
	}
	if err != nil {
		return nil, wrap("get hold "+id, err, "")
	}
	return found, nil
}

// holdQuantum is the q of a hold block: the milliseconds of its holds' ids
// >> 12 (about 4 s).
func holdQuantum(ms int64) int64 { return ms >> 12 }

// queryHoldBlocks decodes the hold blocks stmt selects and hands each to
// f until it returns false.
func queryHoldBlocks(ctx context.Context, stmt *sql.Stmt, f func([]ledger.Hold) bool, args ...any) error {
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return err
		}
		hs, err := journal.DecodeHolds(data)
		if err != nil {
			return err
		}
		if !f(hs) {
			return nil
		}
	}
	return rows.Err()
}

func getIdempotency(ctx context.Context, st stmter, principal, key string) (*ledger.IdempotencyRecord, error) {
	r, err := rowscan.Idempotency(st(qGetIdempotency).QueryRowContext(ctx, principal, key))
	if err != nil {
		return nil, wrap("get idempotency key", err, "")
	}
	return r, nil
}

func (s *Store) reader(q string) *sql.Stmt { return s.rstmt[q] }

// readTx runs f in a read transaction, for a consistent snapshot across
// several queries.
func (s *Store) readTx(ctx context.Context, f func(st stmter) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return wrap("begin read", err, "")
	}
	defer tx.Rollback()
	return f(func(q string) *sql.Stmt { return tx.StmtContext(ctx, s.rstmt[q]) })
}

// sync waits until every batch committed so far is in the tables, for
// range reads. A read-only store has no journal: its tables are what the
// writer has materialized.
func (s *Store) sync(ctx context.Context) error {
	if s.j == nil {
		return nil
	}
	return s.j.Sync(ctx)
}

// GetAccount returns a committed account.
func (s *Store) GetAccount(ctx context.Context, id string) (*ledger.Account, error) {
	if s.j != nil {
		if a, ok := s.j.Account(id); ok {
			return a, nil
		}
	}
	return getAccount(ctx, s.reader, id)
}

// LoadState returns an account with its live grants (ordered by created_at,
// id; the engine sorts them for burn-down), pending holds and active jobs.
func (s *Store) LoadState(ctx context.Context, accountID string) (*ledger.State, error) {
	if s.j != nil {
		if err := s.j.SyncAccount(ctx, accountID); err != nil {
			return nil, err
		}
	}
	var state *ledger.State
	err := s.readTx(ctx, func(st stmter) error {
		var err error
		state, err = loadState(ctx, st, accountID)
		return err
	})
	return state, err
}

// LoadStates is LoadState for many accounts at once.
func (s *Store) LoadStates(ctx context.Context, ids []string) (map[string]*ledger.State, error) {
	if s.j != nil {
		if err := s.j.SyncAccount(ctx, ids...); err != nil {
			return nil, err
		}
	}
	var out map[string]*ledger.State
	err := s.readTx(ctx, func(st stmter) error {
		var err error
		out, err = loadStates(ctx, st, ids)
		return err
	})
	return out, err
}

// GetHold returns a committed hold in any status.
func (s *Store) GetHold(ctx context.Context, id string) (*ledger.Hold, error) {
	if s.j != nil {
		if h, ok := s.j.Hold(id); ok {
			return h, nil
		}
	}
	return getHold(ctx, s.reader, id)
}

// grantsExist reports which of ids have a row in the grants table.
func (s *Store) grantsExist(ctx context.Context, ids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("sqlite: grants exist: %w", err)
	}
	rows, err := s.rstmt[qGrantsExist].QueryContext(ctx, string(list))
	if err != nil {
		return nil, wrap("grants exist", err, "")
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, wrap("grants exist", err, "")
		}
		out[id] = true
	}
	return out, wrap("grants exist", rows.Err(), "")
}

// getGrantByReference returns the committed grant with a reference.
func (s *Store) getGrantByReference(ctx context.Context, p ledger.GrantReferenceParams) (*ledger.Grant, error) {
	if s.j != nil {
		if id, ok := s.j.GrantIDByReference(p); ok {
			if g, ok := s.j.Grant(id); ok {
				return g, nil
			}
		}
	}
	g, err := rowscan.Grant(s.rstmt[qGrantByReference].QueryRowContext(ctx, p.AccountID, string(p.Source), p.Reference))
	if err != nil {
		return nil, wrap(fmt.Sprintf("get grant by reference %s/%s/%q", p.AccountID, p.Source, p.Reference), err, "")
	}
	if s.j != nil {
		if newer, ok := s.j.Grant(g.ID); ok {
			return newer, nil
		}
	}
	return g, nil
}

// ListEntries pages an account's entries newest first. A Limit <= 0 means
// no limit.
func (s *Store) ListEntries(ctx context.Context, p ledger.ListEntriesParams) ([]ledger.Entry, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	before, limit := cursor(p.BeforeID, p.Limit)
	out, err := queryEntries(ctx, s.rstmt[qListEntries], true, before, limit, p.AccountID, before)
	if err != nil {
		return nil, wrap("list entries of "+p.AccountID, err, "")
	}
	return out, nil
}

// ListPendingHolds returns every pending hold, soonest expiry first.
func (s *Store) ListPendingHolds(ctx context.Context) ([]ledger.HoldExpiry, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	rows, err := s.rstmt[qListPendingHolds].QueryContext(ctx)
	if err != nil {
		return nil, wrap("list pending holds", err, "")
	}
	defer rows.Close()
	var out []ledger.HoldExpiry
	for rows.Next() {
		var h ledger.HoldExpiry
		var expires int64
		if err := rows.Scan(&h.HoldID, &h.AccountID, &expires); err != nil {
			return nil, wrap("list pending holds", err, "")
		}
		h.ExpiresAt = rowscan.FromMicros(expires)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list pending holds", err, "")
	}
	return out, nil
}

// GetIdempotency returns a committed idempotency record.
func (s *Store) GetIdempotency(ctx context.Context, principal, key string) (*ledger.IdempotencyRecord, error) {
	if s.j != nil {
		if r, ok := s.j.Idempotency(principal, key); ok {
			return r, nil
		}
	}
	return getIdempotency(ctx, s.reader, principal, key)
}

// DeleteIdempotencyBefore deletes the records created before before and
// returns how many. It writes through the writer connection, 1000 rows per
// transaction so batches are not held up long; it waits for a running
// batch, so it must not be called by a goroutine that holds a batch open.
func (s *Store) DeleteIdempotencyBefore(ctx context.Context, before time.Time) (int64, error) {
	if s.readOnly {
		return 0, fmt.Errorf("sqlite: delete idempotency keys: %w", ErrReadOnly)
	}
	if err := s.sync(ctx); err != nil {
		return 0, err
	}
	var total int64
	for {
		res, err := s.wstmt[qDeleteIdempotency].ExecContext(ctx, rowscan.Micros(before), deleteIdempotencyBy)
		if err != nil {
			return total, wrap("delete idempotency keys", err, "")
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, wrap("delete idempotency keys", err, "")
		}
		total += n
		if n < deleteIdempotencyBy {
			return total, nil
		}
	}
}

// cursor turns a BeforeSeq/BeforeID (0: from the newest) and a Limit (<= 0:
// no limit) into query arguments.
func cursor(before int64, limit int) (int64, int) {
	if before <= 0 {
		before = math.MaxInt64
	}
	if limit <= 0 {
		limit = -1
	}
	return before, limit
}

// GetJob returns a committed job in any status.
func (s *Store) GetJob(ctx context.Context, id string) (*ledger.Job, error) {
	if s.j != nil {
		if j, ok := s.j.Job(id); ok {
			return j, nil
		}
	}
	return getJob(ctx, s.reader, id)
}

// ListJobs pages an account's jobs newest first (by Seq). A Limit <= 0
// means no limit.
func (s *Store) ListJobs(ctx context.Context, p ledger.ListJobsParams) ([]ledger.Job, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	before, limit := cursor(p.BeforeSeq, p.Limit)
	out, err := queryAll(ctx, s.rstmt[qListJobs], rowscan.Job, p.AccountID, before, limit)
	if err != nil {
		return nil, wrap("list jobs of "+p.AccountID, err, "")
	}
	return values(out), nil
}

// ListActiveJobs returns every queued or running job, by ascending Seq.
func (s *Store) ListActiveJobs(ctx context.Context) ([]ledger.Job, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	out, err := queryAll(ctx, s.rstmt[qListActiveJobs], rowscan.Job)
	if err != nil {
		return nil, wrap("list active jobs", err, "")
	}
	return values(out), nil
}

// SaveAsset inserts an asset and sets a.Seq; an existing id is an
// EConflict. It writes through the writer connection in its own
// transaction, so it waits for a running batch and must not be called by a
// goroutine that holds a batch open.
func (s *Store) SaveAsset(ctx context.Context, a *ledger.Asset) error {
	if s.readOnly {
		return fmt.Errorf("sqlite: save asset: %w", ErrReadOnly)
	}
	a.State = a.StateOrDefault()
	var seq int64
	err := s.assetStmts[qInsertAsset].QueryRowContext(ctx, a.ID, a.AccountID, a.JobID, a.Kind, a.ContentType,
		a.Width, a.Height, a.Bytes, a.SHA256, rowscan.Micros(a.CreatedAt), a.State).Scan(&seq)
	if err != nil {
		return wrap("save asset "+a.ID, err, "an asset with id "+a.ID+" already exists")
	}
	a.Seq = seq
	return nil
}

// SaveUpload inserts an upload within the account's budget: the usage
// read, p.Admit and the insert are one transaction on the writer
// connection, which is this database's only writer.
func (s *Store) SaveUpload(ctx context.Context, p ledger.SaveUploadParams) error {
	if s.readOnly {
		return fmt.Errorf("sqlite: save upload: %w", ErrReadOnly)
	}
	a := p.Asset
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap("save upload "+a.ID, err, "")
	}
	defer tx.Rollback()
	var u ledger.UploadUsage
	if err := tx.StmtContext(ctx, s.wstmt[qUploadUsage]).QueryRowContext(ctx, a.AccountID).Scan(&u.Count, &u.Bytes); err != nil {
		return wrap("upload usage of "+a.AccountID, err, "")
	}
	if err := p.Admit(u); err != nil {
		return err
	}
	a.State = a.StateOrDefault()
	var seq int64
	err = tx.StmtContext(ctx, s.assetStmts[qInsertAsset]).QueryRowContext(ctx, a.ID, a.AccountID, a.JobID, a.Kind, a.ContentType,
		a.Width, a.Height, a.Bytes, a.SHA256, rowscan.Micros(a.CreatedAt), a.State).Scan(&seq)
	if err != nil {
		return wrap("save upload "+a.ID, err, "an asset with id "+a.ID+" already exists")
	}
	if err := tx.Commit(); err != nil {
		return wrap("save upload "+a.ID, err, "")
	}
	a.Seq = seq
	return nil
}

// UploadUsage counts an account's uploads and sums their bytes.
func (s *Store) UploadUsage(ctx context.Context, accountID string) (ledger.UploadUsage, error) {
	var u ledger.UploadUsage
	if err := s.rstmt[qUploadUsage].QueryRowContext(ctx, accountID).Scan(&u.Count, &u.Bytes); err != nil {
		return u, wrap("upload usage of "+accountID, err, "")
	}
	return u, nil
}

// DeleteAsset deletes an asset's metadata through the writer connection.
func (s *Store) DeleteAsset(ctx context.Context, id string) error {
	if s.readOnly {
		return fmt.Errorf("sqlite: delete asset: %w", ErrReadOnly)
	}
	res, err := s.wstmt[qDeleteAsset].ExecContext(ctx, id)
	if err != nil {
		return wrap("delete asset "+id, err, "")
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return wrap("delete asset "+id, cmp.Or(err, sql.ErrNoRows), "")
	}
	return nil
}

// ListAccountIDs pages account ids in ascending order. A Limit <= 0 means
// no limit.
func (s *Store) ListAccountIDs(ctx context.Context, p ledger.ListAccountIDsParams) ([]string, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	limit := p.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.rstmt[qListAccountIDs].QueryContext(ctx, p.After, limit)
	if err != nil {
		return nil, wrap("list account ids", err, "")
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, wrap("list account ids", err, "")
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list account ids", err, "")
	}
	return out, nil
}

// LoadHistory returns an account with all its grants and holds (ordered by
// created_at, id) and all its entries (ascending id), from one snapshot.
func (s *Store) LoadHistory(ctx context.Context, accountID string) (*ledger.History, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	var h ledger.History
	err := s.readTx(ctx, func(st stmter) error {
		a, err := getAccount(ctx, st, accountID)
		if err != nil {
			return err
		}
		h.Account = *a
		if h.Grants, err = queryGrants(ctx, st(qAllGrants), accountID); err != nil {
			return wrap("load grants of "+accountID, err, "")
		}
		if h.Holds, err = queryHolds(ctx, st(qAllHolds), accountID); err != nil {
			return wrap("load holds of "+accountID, err, "")
		}
		// A hold is in one block; should it be in several, the newest
		// wins, as an upsert would.
		inBlocks := map[string]int{}
		err = queryHoldBlocks(ctx, st(qAccountHoldBlocks), func(hs []ledger.Hold) bool {
			for i := range hs {
				if k, ok := inBlocks[hs[i].ID]; ok {
					h.Holds[k] = &hs[i]
					continue
				}
				inBlocks[hs[i].ID] = len(h.Holds)
				h.Holds = append(h.Holds, &hs[i])
			}
			return true
		}, accountID)
		if err != nil {
			return wrap("load hold blocks of "+accountID, err, "")
		}
		slices.SortStableFunc(h.Holds, func(a, b *ledger.Hold) int {
			return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
		})
		if h.Entries, err = queryEntries(ctx, st(qAllEntries), false, math.MaxInt64, -1, accountID); err != nil {
			return wrap("load entries of "+accountID, err, "")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &h, nil
}

// ---- table writes -------------------------------------------------------

// batch is one write transaction on the writer connection: the
// materializer's. It is not safe for concurrent use.
type batch struct {
	s     *Store
	tx    *sql.Tx
	stmts map[*sql.Stmt]*sql.Stmt // writer statement → its transaction binding
	args  []any
	done  bool
}

// stmt binds a statement prepared on the writer connection to the
// transaction, reusing the connection's compiled statement.
func (b *batch) stmt(ctx context.Context, st *sql.Stmt) *sql.Stmt {
	if ts, ok := b.stmts[st]; ok {
		return ts
	}
	ts := b.tx.StmtContext(ctx, st)
	b.stmts[st] = ts
	return ts
}

// rowFunc appends the arguments of row i of a multi-row statement.
type rowFunc func(args []any, i int) ([]any, error)

// write runs the multi-row statements of table t for n rows.
func (b *batch) write(ctx context.Context, t tableID, n int, row rowFunc) error {
	if b.done {
		return sql.ErrTxDone
	}
	return chunks(n, func(start, k int) error {
		args := b.args[:0]
		for i := start; i < start+1<<k; i++ {
			var err error
			if args, err = row(args, i); err != nil {
				return err
			}
		}
		_, err := b.stmt(ctx, b.s.ins[t][k]).ExecContext(ctx, args...)
		clear(args)
		b.args = args[:0]
		return err
	})
}

func (b *batch) SaveAccounts(ctx context.Context, accounts []*ledger.Account) error {
	err := b.write(ctx, tAccounts, len(accounts), func(args []any, i int) ([]any, error) {
		a := accounts[i]
		return append(args, a.ID, string(a.Plan), a.Timezone, rowscan.Micros(a.CreatedAt), rowscan.Micros(a.UpdatedAt),
			a.DailyLastDate, rowscan.Micros(a.DailyNotBefore), a.Version, a.LowBalanceThreshold, a.Alerts), nil
	})
	return wrap("save accounts", err, "")
}

func (b *batch) SaveGrants(ctx context.Context, grants []*ledger.Grant) error {
	err := b.write(ctx, tGrants, len(grants), func(args []any, i int) ([]any, error) {
		g := grants[i]
		return append(args, g.ID, g.AccountID, string(g.Source), g.Reference, g.AmountCredits, g.RemainingCredits,
			g.HeldCredits, g.ChargedCredits, g.ExpiredCredits, rowscan.Micros(g.ExpiresAt), rowscan.Micros(g.CreatedAt), g.Notices), nil
	})
	return wrap("save grants", err, "a grant with the same account, source and reference already exists")
}

func (b *batch) SaveHolds(ctx context.Context, holds []*ledger.Hold) error {
	err := b.write(ctx, tHolds, len(holds), func(args []any, i int) ([]any, error) {
		h := holds[i]
		portions, err := json.Marshal(h.Portions)
		if err != nil {
			return nil, fmt.Errorf("hold %s: portions: %w", h.ID, err)
		}
		return append(args, h.ID, h.AccountID, h.Action, string(h.Category), h.Quantity, h.UnitPriceCredits,
			h.AmountCredits, string(h.Status), string(portions), rowscan.Micros(h.CreatedAt), rowscan.Micros(h.ExpiresAt),
			rowscan.Micros(h.ResolvedAt), h.CapturedQuantity, h.CapturedCredits, h.ReleaseReason), nil
	})
	return wrap("save holds", err, "")
}

// runEntriesMax bounds the entries of one entry run (one row of
// entry_runs).
const runEntriesMax = 256

// InsertEntries stores entries (ascending ids) as runs: one per account,
// runEntriesMax entries at most each.
func (b *batch) InsertEntries(ctx context.Context, entries []*ledger.Entry) error {
	// Stable: each account's entries stay in id order.
	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(x, y *ledger.Entry) int { return strings.Compare(x.AccountID, y.AccountID) })
	var runs [][]*ledger.Entry
	for start := 0; start < len(sorted); {
		end := start + 1
		for end < len(sorted) && end-start < runEntriesMax && sorted[end].AccountID == sorted[start].AccountID {
			end++
		}
		runs = append(runs, sorted[start:end])
		start = end
	}
	err := b.write(ctx, tEntries, len(runs), func(args []any, i int) ([]any, error) {
		r := runs[i]
		return append(args, r[0].AccountID, r[len(r)-1].ID, r[0].ID, journal.EncodeEntries(r)), nil
	})
	return wrap("insert entries", err, "")
}

func (b *batch) SaveIdempotency(ctx context.Context, records []*ledger.IdempotencyRecord) error {
	err := b.write(ctx, tIdempotency, len(records), func(args []any, i int) ([]any, error) {
		r := records[i]
		body := r.Body
		if body == nil {
			body = []byte{}
		}
		return append(args, r.Principal, r.Key, r.Fingerprint, r.Status, body, rowscan.Micros(r.CreatedAt)), nil
	})
	return wrap("save idempotency keys", err, "")
}

// SaveJobs upserts jobs with their seqs. Params are stored verbatim ("{}"
// when empty), nil Outputs as [].
func (b *batch) SaveJobs(ctx context.Context, jobs []*ledger.Job) error {
	err := b.write(ctx, tJobs, len(jobs), func(args []any, i int) ([]any, error) {
		j := jobs[i]
		params := string(j.Params)
		if len(j.Params) == 0 {
			params = "{}"
		}
		outputs := []byte("[]")
		if len(j.Outputs) > 0 {
			var err error
			if outputs, err = json.Marshal(j.Outputs); err != nil {
				return nil, fmt.Errorf("job %s: outputs: %w", j.ID, err)
			}
		}
		return append(args, j.ID, j.AccountID, j.Action, string(j.Category), j.Quantity, params, j.ParamsVersion,
			string(j.Status), j.HoldID, j.CostCredits, j.ChargedCredits, j.Attempts, j.LeaseID,
			rowscan.Micros(j.LeaseExpiresAt), string(outputs), j.Error, rowscan.Micros(j.CreatedAt), rowscan.Micros(j.UpdatedAt),
			rowscan.Micros(j.FinishedAt), j.LeaseParamsVersion, j.Seq), nil
	})
	return wrap("save jobs", err, "")
}

// Commit commits the transaction.
func (b *batch) Commit() error {
	if b.done {
		return fmt.Errorf("sqlite: commit: %w", sql.ErrTxDone)
	}
	b.done = true
	return wrap("commit", b.tx.Commit(), "")
}

// Rollback discards the transaction. After Commit or Rollback it does
// nothing, so it can be deferred.
func (b *batch) Rollback() error {
	if b.done {
		return nil
	}
	b.done = true
	err := b.tx.Rollback()
	if errors.Is(err, sql.ErrTxDone) { // already rolled back by a cancelled context
		return nil
	}
	return wrap("rollback", err, "")
}
