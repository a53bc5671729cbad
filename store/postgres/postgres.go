// Package postgres is the PostgreSQL back end of creditd: a ledger.Store
// that several creditd nodes share.
//
// Open applies the schema migrations (goose, embedded from migrations/)
// under a PostgreSQL advisory lock, so nodes that start together migrate
// once; Migrate does the same alone, for `creditd migrate`. The store is
// not Exclusive: other nodes write too, so the engine locks the accounts of
// every batch (LockAccounts: SELECT … FOR UPDATE in id order, which rules
// out deadlocks between nodes) and reloads the state of accounts whose
// version changed. Ids without an account are locked too (advisory
// locks), so two nodes cannot both create one account.
//
// The schema mirrors the SQLite store's column for column, in one
// encoding: times are BIGINT unix microseconds UTC, 0 for the zero time;
// hold portions, entry legs and job outputs are JSON text; job params are
// TEXT (not jsonb), stored verbatim ("{}" when empty) and read back
// byte-identical. Text columns are COLLATE "C", so ids sort bytewise as in
// SQLite whatever the database's locale. Entry ids and job and asset Seqs
// are bigint identity columns. PostgreSQL 10 or later is required (tested
// with 15).
//
// # Round trips
//
// A Batch is one transaction on one pooled connection, at READ COMMITTED
// (the row locks of LockAccounts serialise the writers of an account).
// Everything is pipelined with pgx batches: BEGIN goes out with the
// batch's first statement, LoadState's four queries go out together, and
// each Save* or InsertEntries call is one multi-row statement
// (INSERT … SELECT FROM unnest($1::text[], …) ON CONFLICT … DO UPDATE),
// whatever the number of rows, deferred until the batch's next read or
// COMMIT. A typical engine batch is thus three round trips: LockAccounts,
// one LoadState per account not cached, and its writes with COMMIT (one
// more when it saves grants with references, which are checked at once).
//
// Reads outside a batch see committed data only. LoadState and LoadHistory
// read one snapshot: BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY, the
// queries and COMMIT go out as one pipeline, one round trip.
//
// These counts hold once a connection has prepared the statements (pgx
// caches them per connection; the first use of a pipeline prepares its
// new statements in one extra round trip), and pgxpool pings a connection
// that was idle for over a second before lending it. Prepared statements
// and the migration's session lock need session pooling: behind PgBouncer,
// use pool_mode=session.
//
// # Ordering across nodes
//
// Identity values are taken in nextval order, not commit order. Per
// account this makes no difference for entries and jobs, which are written
// only by batches that hold the account's row lock: a later batch's ids
// are greater. Assets are saved outside batches, so two nodes saving
// assets of one account at the same moment may commit them out of Seq
// order.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// DefaultMaxConns is the pool size when Options.MaxConns is 0.
const DefaultMaxConns = 16

// migrateLockID is the key of the session advisory lock held while
// migrating: "creditd" in ASCII. Advisory locks are per database.
const migrateLockID int64 = 0x63726564697464

// accountLockSpace is the first key of the two-key advisory locks that
// LockAccounts takes on ids without an account ("acct" in ASCII); the
// two-key form never conflicts with migrateLockID's one-key form.
const accountLockSpace = "1633903476"

// idempotencyLockSpace is the first key of the two-key advisory locks that
// LockIdempotencyKeys takes on hashes of idempotency keys ("idem").
const idempotencyLockSpace = "1768187245"

// uploadLockSpace is the first key of the two-key advisory locks that
// SaveUpload takes on hashes of account ids ("upld"), so that the uploads
// of one account are admitted one at a time across nodes.
const uploadLockSpace = "1970301028"

// Options tunes the connection pool.
//
// Every open Batch holds one connection from BeginBatch to Commit or
// Rollback; every read outside a batch holds one for its round trip
// (LoadState and LoadHistory for their snapshot's). A node whose engine
// commits one batch at a time therefore needs one connection for it plus
// one per concurrent read; BeginBatch and reads wait for a free connection
// when all are busy. The server's max_connections (100 by default, less
// superuser_reserved_connections) must cover MaxConns of every node, plus
// migrations (two connections each while Open runs) and admin sessions.
type Options struct {
	// MaxConns is the most connections the pool opens; 0 means
	// DefaultMaxConns (16). It overrides pool_max_conns in the DSN.
	MaxConns int32
	// MinConns is how many connections the pool keeps open when idle
	// (default 0: idle connections close after 30 minutes). It overrides
	// pool_min_conns in the DSN.
	MinConns int32
}

// Store is a ledger.Store on a PostgreSQL database, shared with other
// nodes. It is safe for concurrent use; batches run concurrently, each on
// its own connection.
type Store struct {
	pool *pgxpool.Pool
}

var _ ledger.Store = (*Store)(nil)

// Open connects to the database at dsn (a postgres:// URL or keyword/value
// string; pool_* parameters are accepted), applies pending migrations and
// returns a store with a connection pool sized by opts. Nodes may Open the
// same database concurrently: migrations run once, under an advisory lock.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := poolConfig(dsn, opts)
	if err != nil {
		return nil, err
	}
	return openPool(ctx, cfg)
}

func poolConfig(dsn string, opts Options) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse DSN: %w", err)
	}
	switch {
	case opts.MaxConns < 0 || opts.MinConns < 0:
		return nil, fmt.Errorf("postgres: negative pool size in %+v", opts)
	case opts.MaxConns == 0:
		cfg.MaxConns = DefaultMaxConns
	default:
		cfg.MaxConns = opts.MaxConns
	}
	cfg.MinConns = opts.MinConns
	if cfg.MinConns > cfg.MaxConns {
		return nil, fmt.Errorf("postgres: MinConns %d > MaxConns %d", cfg.MinConns, cfg.MaxConns)
	}
	return cfg, nil
}

func openPool(ctx context.Context, cfg *pgxpool.Config) (*Store, error) {
	if err := migrate(ctx, cfg.ConnConfig); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, wrap("connect", err, "")
	}
	return &Store{pool: pool}, nil
}

// Migrate applies pending migrations to the database at dsn, under the
// same advisory lock as Open, and returns.
func Migrate(ctx context.Context, dsn string) error {
	cfg, err := pgxpool.ParseConfig(dsn) // accepts (and drops) pool_* parameters
	if err != nil {
		return fmt.Errorf("postgres: parse DSN: %w", err)
	}
	return migrate(ctx, cfg.ConnConfig)
}

// migrate runs goose while holding a session advisory lock on a separate
// connection: concurrent callers wait for the first one's migrations and
// then find nothing to do. The lock is released when its session ends,
// even if this process dies.
func migrate(ctx context.Context, cfg *pgx.ConnConfig) error {
	lock, err := pgx.ConnectConfig(ctx, cfg.Copy())
	if err != nil {
		return wrap("migrate: connect", err, "")
	}
	defer lock.Close(context.WithoutCancel(ctx))
	if _, err := lock.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockID); err != nil {
		return wrap("migrate: take the migration lock", err, "")
	}
	db := stdlib.OpenDB(*cfg.Copy())
	defer db.Close()
	fsys, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return wrap("migrate", err, "")
	}
	// Closing the session releases the lock too; unlock explicitly so a
	// pooled or proxied session cannot keep it.
	if _, err := lock.Exec(ctx, "SELECT pg_advisory_unlock($1)", migrateLockID); err != nil {
		return wrap("migrate: release the migration lock", err, "")
	}
	return nil
}

// Exclusive reports false: other nodes may write the same database.
func (s *Store) Exclusive() bool { return false }

// Close closes the pool, waiting for connections in use to be released.
// It is idempotent.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// ---- schema -------------------------------------------------------------

// Partial indexes apply only when a query's WHERE clause implies theirs, so
// the live, pending and active conditions repeat the migrations' verbatim
// (TestQueryPlans checks every hot query's index).
const (
	qGetAccount   = `SELECT ` + rowscan.AccountCols + ` FROM accounts WHERE id = $1`
	qLockAccounts = `SELECT id, version FROM accounts WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`
	qBumpAccounts = `UPDATE accounts SET version = version + 1 WHERE id = ANY($1::text[])`
	// qLockMissing takes a transaction advisory lock (key: accountLockSpace,
	// hashtext(id)) on each id that has no account, in id order.
	qLockMissing = `SELECT pg_advisory_xact_lock(` + accountLockSpace + `, hashtext(u.id)) FROM unnest($1::text[]) AS u(id)
		WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = u.id) ORDER BY u.id COLLATE "C"`
	// qLockIdempotency takes a transaction advisory lock (key:
	// idempotencyLockSpace, a hash of principal and key) per key, in hash
	// order, so that batches locking several keys cannot deadlock. Two keys
	// that share a hash only wait for each other.
	qLockIdempotency = `SELECT pg_advisory_xact_lock(` + idempotencyLockSpace + `, x.h) FROM (
		SELECT DISTINCT hashtext(u.p || chr(31) || u.k) AS h FROM unnest($1::text[], $2::text[]) AS u(p, k)) x ORDER BY x.h`
	qLiveGrants        = `SELECT ` + rowscan.GrantCols + ` FROM grants WHERE account_id = $1 AND live ORDER BY created_at, id`
	qAllGrants         = `SELECT ` + rowscan.GrantCols + ` FROM grants WHERE account_id = $1 ORDER BY created_at, id`
	qGrantByReference  = `SELECT ` + rowscan.GrantCols + ` FROM grants WHERE account_id = $1 AND source = $2 AND reference = $3 AND reference <> ''`
	qGetHold           = `SELECT ` + rowscan.HoldCols + ` FROM holds WHERE id = $1`
	qPendingHolds      = `SELECT ` + rowscan.HoldCols + ` FROM holds WHERE account_id = $1 AND status = 'pending'`
	qAllHolds          = `SELECT ` + rowscan.HoldCols + ` FROM holds WHERE account_id = $1 ORDER BY created_at, id`
	qListPendingHolds  = `SELECT id, account_id, expires_at FROM holds WHERE status = 'pending' ORDER BY expires_at, id`
	qListEntries       = `SELECT ` + rowscan.EntryCols + ` FROM entries WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`
	qAllEntries        = `SELECT ` + rowscan.EntryCols + ` FROM entries WHERE account_id = $1 ORDER BY id`
	qListAccountIDs    = `SELECT id FROM accounts WHERE id > $1 ORDER BY id LIMIT $2`
	qGetIdempotency    = `SELECT ` + rowscan.IdemCols + ` FROM idempotency_keys WHERE principal = $1 AND "key" = $2`
	qDeleteIdempotency = `DELETE FROM idempotency_keys WHERE (principal, "key") IN (
		SELECT principal, "key" FROM idempotency_keys WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`
	deleteIdempotencyBy = 1000 // rows per DELETE, so batches are not held up long
	qGetJob             = `SELECT ` + rowscan.JobCols + `, seq FROM jobs WHERE id = $1`
	qListJobs           = `SELECT ` + rowscan.JobCols + `, seq FROM jobs WHERE account_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`
	qActiveJobs         = `SELECT ` + rowscan.JobCols + `, seq FROM jobs WHERE account_id = $1 AND status IN ('queued', 'running') ORDER BY seq`
	qListActiveJobs     = `SELECT ` + rowscan.JobCols + `, seq FROM jobs WHERE status IN ('queued', 'running') ORDER BY seq`
	qGetAsset           = `SELECT ` + rowscan.AssetCols + `, seq FROM assets WHERE id = $1`
	qListAssets         = `SELECT ` + rowscan.AssetCols + `, seq FROM assets WHERE account_id = $1 AND seq < $2 AND state = 'delivered' ORDER BY seq DESC LIMIT $3`
	qInsertAsset        = `INSERT INTO assets (` + rowscan.AssetCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING seq`
	qDeliverOutputs     = `UPDATE assets SET state = 'delivered' WHERE job_id = $1 AND kind = 'output' AND state = 'staged' AND id = ANY($2::text[])`
	// qListStagedOutputs reads the partial index assets_staged and joins
	// jobs by primary key.
	qListStagedOutputs = `SELECT a.id, a.account_id, a.job_id, a.kind, a.content_type, a.width, a.height, a.bytes, a.sha256,
		a.created_at, a.state, a.seq FROM assets a LEFT JOIN jobs j ON j.id = a.job_id
		WHERE a.state = 'staged' AND a.seq > $1 AND (j.status IS NULL OR j.status NOT IN ('queued', 'running'))
		ORDER BY a.seq LIMIT $2`
	qLockUploads = `SELECT pg_advisory_xact_lock(` + uploadLockSpace + `, hashtext($1))`
	qUploadUsage = `SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM assets WHERE account_id = $1 AND kind = 'upload'`
	qDeleteAsset = `DELETE FROM assets WHERE id = $1`

	qBeginSnapshot = `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`
)

// Multi-row writes: one statement per call, rows passed as one array per
// column and expanded by unnest, in order (so identity values follow the
// slice order).
var (
	qSaveAccounts = upsertSQL("accounts", rowscan.AccountCols, "text text text bigint bigint text bigint bigint bigint bigint", "id", "")
	qSaveGrants   = upsertSQL("grants", rowscan.GrantCols, "text text text text bigint bigint bigint bigint bigint bigint bigint bigint", "id", "")
	qInsertEvents = upsertSQL("webhook_events", "id, type, account_id, created_at, data", "text text text bigint text", "", "id, seq")
	qSaveHolds    = upsertSQL("holds", rowscan.HoldCols,
		"text text text text bigint bigint bigint text text bigint bigint bigint bigint bigint text", "id", "")
	qInsertEntries = upsertSQL("entries", strings.TrimPrefix(rowscan.EntryCols, "id, "),
		"text text bigint text text text text bigint text text bigint", "", "id")
	qSaveIdempotency = upsertSQL("idempotency_keys", rowscan.IdemCols, "text text text bigint bytea bigint", `principal, "key"`, "")
	qSaveJobs        = upsertSQL("jobs", rowscan.JobCols,
		"text text text text bigint text bigint text text bigint bigint bigint text bigint text text bigint bigint bigint bigint", "id", "id, seq")
)

func splitCols(s string) []string {
	f := strings.Split(s, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

// upsertSQL returns INSERT INTO table (cols) SELECT * FROM unnest($1::t1[],
// …), with ON CONFLICT (key) DO UPDATE SET every other column when key is
// set, and RETURNING returning when set.
func upsertSQL(table, cols, types, key, returning string) string {
	cs, ts := splitCols(cols), strings.Fields(types)
	if len(cs) != len(ts) {
		panic(fmt.Sprintf("postgres: %s: %d columns, %d types", table, len(cs), len(ts)))
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(cs, ", ") + ") SELECT * FROM unnest(")
	for i, t := range ts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d::%s[]", i+1, t)
	}
	b.WriteString(")")
	if key != "" {
		b.WriteString(" ON CONFLICT (" + key + ") DO UPDATE SET ")
		keys := splitCols(key)
		first := true
		for _, c := range cs {
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
	if returning != "" {
		b.WriteString(" RETURNING " + returning)
	}
	return b.String()
}

// ---- values -------------------------------------------------------------

// cursor turns a BeforeSeq/BeforeID (0: from the newest) and a Limit (<= 0:
// no limit, as NULL) into query arguments.
func cursor(before int64, limit int) (int64, any) {
	if before <= 0 {
		before = math.MaxInt64
	}
	return before, limitArg(limit)
}

func limitArg(limit int) any {
	if limit <= 0 {
		return nil // LIMIT NULL: no limit
	}
	return int64(limit)
}

// ---- errors -------------------------------------------------------------

// wrap translates driver errors: no rows → ledger.ErrNotFound, unique
// violations → EConflict (conflict is its message), other data exceptions
// and constraint violations (SQLSTATE classes 22 and 23) → EInvalid, lock
// and connection trouble → EUnavailable. Classes 22 and 23, unique
// violations included, also carry ledger.ErrBadData: the data written
// caused them, not the database. The driver error stays in the chain (for
// logs; callers are told only the *ledger.Error's message).
func wrap(op string, err error, conflict string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s: %w", op, ledger.ErrNotFound)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			if conflict == "" {
				conflict = "a row with the same key already exists"
			}
			return fmt.Errorf("postgres: %s: %w: %w: %w", op, ledger.Errorf(ledger.EConflict, "%s", conflict), ledger.ErrBadData, err)
		case pe.Code == "22021", pe.Code == "22P05": // character_not_in_repertoire (a NUL byte, invalid UTF-8), untranslatable_character
			return badData(op, "a text value holds a NUL byte or is not valid UTF-8", err)
		case strings.HasPrefix(pe.Code, "22"): // data exception
			return badData(op, "a value is out of the range or format the database accepts", err)
		case strings.HasPrefix(pe.Code, "23"): // integrity constraint violation
			return badData(op, "a value breaks a constraint of the database", err)
		case pe.Code == "40001", pe.Code == "40P01", pe.Code == "55P03": // serialization, deadlock, lock not available
			return fmt.Errorf("postgres: %s: %w: %w", op, ledger.Errorf(ledger.EUnavailable, "the database is busy"), err)
		case strings.HasPrefix(pe.Code, "08"), pe.Code == "53300", pe.Code == "57P01", pe.Code == "57P03":
			// connection exception, too many connections, shutting down, starting up
			return fmt.Errorf("postgres: %s: %w: %w", op, ledger.Errorf(ledger.EUnavailable, "the database is unavailable"), err)
		}
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("postgres: %s: %w: %w", op, ledger.Errorf(ledger.EUnavailable, "the database is unavailable"), err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// badData is an EInvalid with message msg that carries ledger.ErrBadData
// and the driver error.
func badData(op, msg string, err error) error {
	return fmt.Errorf("postgres: %s: %w: %w: %w", op, ledger.Errorf(ledger.EInvalid, "%s", msg), ledger.ErrBadData, err)
}

// ---- pipelined reads ----------------------------------------------------

// queueRow queues a query of at most one row: *out is set, or left nil
// when there is no row. Not-found is not an error of the pgx batch (a
// batch error would evict its statements from the connection's cache).
func queueRow[T any](pb *pgx.Batch, out **T, scan func(rowscan.Scanner) (*T, error), sql string, args ...any) {
	pb.Queue(sql, args...).QueryRow(func(row pgx.Row) error {
		x, err := scan(row)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		*out = x
		return err
	})
}

// queueRows queues a query whose rows are appended to *out.
func queueRows[T any](pb *pgx.Batch, out *[]T, scan func(rowscan.Scanner) (T, error), sql string, args ...any) {
	pb.Queue(sql, args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			x, err := scan(rows)
			if err != nil {
				return err
			}
			*out = append(*out, x)
		}
		return rows.Err()
	})
}

// sender runs a pgx batch: the pool for reads of committed data, or a
// Batch's transaction.
type sender interface {
	send(ctx context.Context, pb *pgx.Batch) error
}

// send runs pb on a pooled connection in one round trip (after the first
// use of its statements on that connection, which prepares them).
func (s *Store) send(ctx context.Context, pb *pgx.Batch) error {
	return s.pool.SendBatch(ctx, pb).Close()
}

// snapshot runs pb in a read-only REPEATABLE READ transaction, so its
// queries see one snapshot; BEGIN and COMMIT go in the same round trip.
func (s *Store) snapshot(ctx context.Context, pb *pgx.Batch) error {
	full := &pgx.Batch{}
	full.Queue(qBeginSnapshot)
	full.QueuedQueries = append(full.QueuedQueries, pb.QueuedQueries...)
	full.Queue("COMMIT")
	return s.send(ctx, full)
}

// stateQueries queues LoadState's queries.
func stateQueries(pb *pgx.Batch, accountID string, a **ledger.Account, grants *[]*ledger.Grant,
	holds *[]*ledger.Hold, jobs *[]*ledger.Job) {
	queueRow(pb, a, rowscan.Account, qGetAccount, accountID)
	queueRows(pb, grants, rowscan.Grant, qLiveGrants, accountID)
	queueRows(pb, holds, rowscan.Hold, qPendingHolds, accountID)
	queueRows(pb, jobs, rowscan.Job, qActiveJobs, accountID)
}

func loadState(ctx context.Context, run func(context.Context, *pgx.Batch) error, accountID string) (*ledger.State, error) {
	var a *ledger.Account
	var grants []*ledger.Grant
	var holds []*ledger.Hold
	var jobs []*ledger.Job
	pb := &pgx.Batch{}
	stateQueries(pb, accountID, &a, &grants, &holds, &jobs)
	if err := run(ctx, pb); err != nil {
		return nil, wrap("load state of "+accountID, err, "")
	}
	if a == nil {
		return nil, wrap("get account "+accountID, pgx.ErrNoRows, "")
	}
	hm := make(map[string]*ledger.Hold, len(holds))
	for _, h := range holds {
		hm[h.ID] = h
	}
	jm := make(map[string]*ledger.Job, len(jobs))
	for _, j := range jobs {
		jm[j.ID] = j
	}
	return &ledger.State{Account: *a, Grants: grants, Holds: hm, Jobs: jm}, nil
}

// getOne runs a query of at most one row; no row is ErrNotFound.
func getOne[T any](ctx context.Context, sn sender, op string, scan func(rowscan.Scanner) (*T, error), sql string, args ...any) (*T, error) {
	var x *T
	pb := &pgx.Batch{}
	queueRow(pb, &x, scan, sql, args...)
	if err := sn.send(ctx, pb); err != nil {
		return nil, wrap(op, err, "")
	}
	if x == nil {
		return nil, wrap(op, pgx.ErrNoRows, "")
	}
	return x, nil
}

// getAll runs a query and returns its rows.
func getAll[T any](ctx context.Context, sn sender, op string, scan func(rowscan.Scanner) (T, error), sql string, args ...any) ([]T, error) {
	var out []T
	pb := &pgx.Batch{}
	queueRows(pb, &out, scan, sql, args...)
	if err := sn.send(ctx, pb); err != nil {
		return nil, wrap(op, err, "")
	}
	return out, nil
}

// values turns the pointers scan functions return into values.
func values[T any](ps []*T) []T {
	out := make([]T, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out
}

// ---- reads of committed data ---------------------------------------------

// GetAccount returns a committed account.
func (s *Store) GetAccount(ctx context.Context, id string) (*ledger.Account, error) {
	return getOne(ctx, s, "get account "+id, rowscan.Account, qGetAccount, id)
}

// LoadState returns an account with its live grants (ordered by created_at,
// id; the engine sorts them for burn-down), pending holds and active jobs,
// from one snapshot.
func (s *Store) LoadState(ctx context.Context, accountID string) (*ledger.State, error) {
	return loadState(ctx, s.snapshot, accountID)
}

// GetHold returns a committed hold in any status.
func (s *Store) GetHold(ctx context.Context, id string) (*ledger.Hold, error) {
	return getOne(ctx, s, "get hold "+id, rowscan.Hold, qGetHold, id)
}

// ListEntries pages an account's entries newest first. A Limit <= 0 means
// no limit.
func (s *Store) ListEntries(ctx context.Context, p ledger.ListEntriesParams) ([]ledger.Entry, error) {
	before, limit := cursor(p.BeforeID, p.Limit)
	return getAll(ctx, s, "list entries of "+p.AccountID, rowscan.Entry, qListEntries, p.AccountID, before, limit)
}

// ListPendingHolds returns every pending hold, soonest expiry first.
func (s *Store) ListPendingHolds(ctx context.Context) ([]ledger.HoldExpiry, error) {
	return getAll(ctx, s, "list pending holds", rowscan.HoldExpiry, qListPendingHolds)
}

// GetIdempotency returns a committed idempotency record.
func (s *Store) GetIdempotency(ctx context.Context, principal, key string) (*ledger.IdempotencyRecord, error) {
	return getOne(ctx, s, "get idempotency key", rowscan.Idempotency, qGetIdempotency, principal, key)
}

// DeleteIdempotencyBefore deletes the records created before before and
// returns how many, 1000 rows per statement (each its own transaction) so
// batches are not held up long. Rows locked by a running batch are
// skipped.
func (s *Store) DeleteIdempotencyBefore(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		ct, err := s.pool.Exec(ctx, qDeleteIdempotency, rowscan.Micros(before), deleteIdempotencyBy)
		if err != nil {
			return total, wrap("delete idempotency keys", err, "")
		}
		total += ct.RowsAffected()
		if ct.RowsAffected() < deleteIdempotencyBy {
			return total, nil
		}
	}
}

// GetJob returns a committed job in any status.
func (s *Store) GetJob(ctx context.Context, id string) (*ledger.Job, error) {
	return getOne(ctx, s, "get job "+id, rowscan.Job, qGetJob, id)
}

// ListJobs pages an account's jobs newest first (by Seq). A Limit <= 0
// means no limit.
func (s *Store) ListJobs(ctx context.Context, p ledger.ListJobsParams) ([]ledger.Job, error) {
	before, limit := cursor(p.BeforeSeq, p.Limit)
	out, err := getAll(ctx, s, "list jobs of "+p.AccountID, rowscan.Job, qListJobs, p.AccountID, before, limit)
	return values(out), err
}

// ListActiveJobs returns every queued or running job, by ascending Seq.
func (s *Store) ListActiveJobs(ctx context.Context) ([]ledger.Job, error) {
	out, err := getAll(ctx, s, "list active jobs", rowscan.Job, qListActiveJobs)
	return values(out), err
}

// SaveAsset inserts an asset and sets a.Seq; an existing id is an
// EConflict. It runs in its own transaction, outside any batch.
func (s *Store) SaveAsset(ctx context.Context, a *ledger.Asset) error {
	a.State = a.StateOrDefault()
	var seq int64
	err := s.pool.QueryRow(ctx, qInsertAsset, a.ID, a.AccountID, a.JobID, a.Kind, a.ContentType,
		a.Width, a.Height, a.Bytes, a.SHA256, rowscan.Micros(a.CreatedAt), a.State).Scan(&seq)
	if err != nil {
		return wrap("save asset "+a.ID, err, "an asset with id "+a.ID+" already exists")
	}
	a.Seq = seq
	return nil
}

// SaveUpload inserts an upload within the account's budget. Its
// transaction first takes an advisory lock on the account (key:
// uploadLockSpace, hashtext(account id)), then reads the usage: at READ
// COMMITTED that read sees every upload committed by whoever held the lock
// before, on any node.
func (s *Store) SaveUpload(ctx context.Context, p ledger.SaveUploadParams) error {
	a := p.Asset
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap("save upload "+a.ID, err, "")
	}
	defer tx.Rollback(ctx)
	var u ledger.UploadUsage
	pb := &pgx.Batch{}
	pb.Queue(qLockUploads, a.AccountID)
	pb.Queue(qUploadUsage, a.AccountID).QueryRow(func(row pgx.Row) error { return row.Scan(&u.Count, &u.Bytes) })
	if err := tx.SendBatch(ctx, pb).Close(); err != nil {
		return wrap("upload usage of "+a.AccountID, err, "")
	}
	if err := p.Admit(u); err != nil {
		return err
	}
	a.State = a.StateOrDefault()
	var seq int64
	err = tx.QueryRow(ctx, qInsertAsset, a.ID, a.AccountID, a.JobID, a.Kind, a.ContentType,
		a.Width, a.Height, a.Bytes, a.SHA256, rowscan.Micros(a.CreatedAt), a.State).Scan(&seq)
	if err != nil {
		return wrap("save upload "+a.ID, err, "an asset with id "+a.ID+" already exists")
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap("save upload "+a.ID, err, "")
	}
	a.Seq = seq
	return nil
}

// UploadUsage counts an account's uploads and sums their bytes.
func (s *Store) UploadUsage(ctx context.Context, accountID string) (ledger.UploadUsage, error) {
	var u ledger.UploadUsage
	if err := s.pool.QueryRow(ctx, qUploadUsage, accountID).Scan(&u.Count, &u.Bytes); err != nil {
		return u, wrap("upload usage of "+accountID, err, "")
	}
	return u, nil
}

// DeleteAsset deletes an asset's metadata.
func (s *Store) DeleteAsset(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, qDeleteAsset, id)
	if err != nil {
		return wrap("delete asset "+id, err, "")
	}
	if tag.RowsAffected() == 0 {
		return wrap("delete asset "+id, pgx.ErrNoRows, "")
	}
	return nil
}

// GetAsset returns a committed asset in any state.
func (s *Store) GetAsset(ctx context.Context, id string) (*ledger.Asset, error) {
	return getOne(ctx, s, "get asset "+id, rowscan.Asset, qGetAsset, id)
}

// ListAssets pages an account's delivered assets newest first (by Seq). A
// Limit <= 0 means no limit.
func (s *Store) ListAssets(ctx context.Context, p ledger.ListAssetsParams) ([]ledger.Asset, error) {
	before, limit := cursor(p.BeforeSeq, p.Limit)
	out, err := getAll(ctx, s, "list assets of "+p.AccountID, rowscan.Asset, qListAssets, p.AccountID, before, limit)
	return values(out), err
}

// DeliverOutputs marks staged outputs of a job delivered, in its own
// transaction.
func (s *Store) DeliverOutputs(ctx context.Context, p ledger.DeliverOutputsParams) error {
	ids := p.AssetIDs
	if ids == nil {
		ids = []string{}
	}
	_, err := s.pool.Exec(ctx, qDeliverOutputs, p.JobID, ids)
	return wrap("deliver outputs of "+p.JobID, err, "")
}

// ListStagedOutputs lists staged outputs whose job is ended (or has no
// row), oldest first.
func (s *Store) ListStagedOutputs(ctx context.Context, p ledger.ListStagedOutputsParams) ([]ledger.Asset, error) {
	out, err := getAll(ctx, s, "list staged outputs", rowscan.Asset, qListStagedOutputs, p.AfterSeq, p.Limit)
	return values(out), err
}

// ListAccountIDs pages account ids in ascending (bytewise) order. A Limit
// <= 0 means no limit.
func (s *Store) ListAccountIDs(ctx context.Context, p ledger.ListAccountIDsParams) ([]string, error) {
	return getAll(ctx, s, "list account ids", rowscan.ID, qListAccountIDs, p.After, limitArg(p.Limit))
}

// LoadHistory returns an account with all its grants and holds (ordered by
// created_at, id) and all its entries (ascending id), from one snapshot.
func (s *Store) LoadHistory(ctx context.Context, accountID string) (*ledger.History, error) {
	var a *ledger.Account
	var h ledger.History
	var entries []ledger.Entry
	pb := &pgx.Batch{}
	queueRow(pb, &a, rowscan.Account, qGetAccount, accountID)
	queueRows(pb, &h.Grants, rowscan.Grant, qAllGrants, accountID)
	queueRows(pb, &h.Holds, rowscan.Hold, qAllHolds, accountID)
	queueRows(pb, &entries, rowscan.Entry, qAllEntries, accountID)
	if err := s.snapshot(ctx, pb); err != nil {
		return nil, wrap("load history of "+accountID, err, "")
	}
	if a == nil {
		return nil, wrap("get account "+accountID, pgx.ErrNoRows, "")
	}
	h.Account, h.Entries = *a, entries
	return &h, nil
}

// ---- batches ------------------------------------------------------------

// errBatchDone is returned by a Batch's methods after Commit or Rollback.
var errBatchDone = errors.New("batch already committed or rolled back")

// BeginBatch takes a connection from the pool for a write transaction,
// waiting while all are busy. It sends nothing: BEGIN goes out with the
// batch's first statement. If ctx is cancelled before Commit, the
// transaction is rolled back.
func (s *Store) BeginBatch(ctx context.Context) (ledger.Batch, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, wrap("begin batch", err, "")
	}
	return &batch{ctx: ctx, conn: conn}, nil
}

// batch is one write transaction at READ COMMITTED on one connection. It
// is not safe for concurrent use. After an error the transaction is
// aborted, as always in PostgreSQL: Commit then fails (without a round
// trip) and only Rollback is useful.
//
// Writes are deferred: a Save* or InsertEntries call queues its statement
// and returns, and the queued statements go out ahead of the batch's next
// read, or with COMMIT, in the same round trip. So a batch that locks,
// loads and writes makes three round trips however many tables it
// writes. A deferred statement that fails makes the call that sends it
// fail (and Commit). Ids and Seqs (InsertEntries, SaveJobs) are written
// back when their statement has run, at the latest when Commit returns.
// SaveGrants of a grant with a reference is not deferred: the unique
// index on references is the one a write can violate, and the caller
// learns of a conflict at once.
type batch struct {
	ctx     context.Context // BeginBatch's: Commit runs under it
	conn    *pgxpool.Conn
	begun   bool       // BEGIN was sent
	pending []deferred // writes not sent yet
	err     error      // the first failure
	done    bool
}

// deferred is a queued write: its statement, and what the call was (for
// errors).
type deferred struct {
	q  *pgx.QueuedQuery
	op string
}

// fail records the batch's first failure and returns err.
func (b *batch) fail(err error) error {
	if b.err == nil {
		b.err = err
	}
	return err
}

// send runs pb in the transaction in one round trip, prefixed with BEGIN
// if it is the first and with the deferred writes. A failure of a
// deferred write is reported as that write's.
func (b *batch) send(ctx context.Context, pb *pgx.Batch) error {
	if b.done {
		return errBatchDone
	}
	if b.err != nil { // the transaction is aborted: PostgreSQL would refuse
		return b.err
	}
	full := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, 1+len(b.pending)+len(pb.QueuedQueries))}
	if !b.begun {
		b.begun = true // even if this fails: Rollback then sends ROLLBACK, harmless
		full.Queue("BEGIN")
	}
	pending := b.pending
	b.pending = nil
	sent := 0 // deferred writes that succeeded
	for _, d := range pending {
		full.QueuedQueries = append(full.QueuedQueries, d.q)
	}
	if len(pending) > 0 {
		// Count the deferred writes that ran, to name the one that failed.
		for _, d := range pending {
			fn := d.q.Fn
			d.q.Fn = func(br pgx.BatchResults) error {
				if err := fn(br); err != nil {
					return err
				}
				sent++
				return nil
			}
		}
	}
	full.QueuedQueries = append(full.QueuedQueries, pb.QueuedQueries...)
	if err := b.conn.SendBatch(ctx, full).Close(); err != nil {
		if sent < len(pending) {
			err = wrap(pending[sent].op, err, "")
		}
		return b.fail(err)
	}
	return nil
}

// exec runs one statement in the transaction now.
func (b *batch) exec(ctx context.Context, sql string, args ...any) error {
	pb := &pgx.Batch{}
	pb.Queue(sql, args...)
	return b.send(ctx, pb)
}

// queue defers a write until the batch's next round trip; op names it in
// errors.
func (b *batch) queue(op, sql string, args ...any) *pgx.QueuedQuery {
	pb := &pgx.Batch{}
	q := pb.Queue(sql, args...)
	q.Exec(func(pgconn.CommandTag) error { return nil })
	b.pending = append(b.pending, deferred{q: q, op: op})
	return q
}

// LockAccounts locks the rows of the existing accounts among ids, in id
// order (so batches on several nodes cannot deadlock), waiting for batches
// that hold any of them, and returns their versions as committed by those
// batches.
//
// A row that does not exist cannot be locked, yet two nodes must not both
// create one account. So first, in the same round trip, each id without
// an account gets a transaction advisory lock: a batch that creates the
// account holds it until it commits, and a concurrent batch waits for it,
// then (its next statement taking a fresh snapshot) finds the account and
// locks its row.
func (b *batch) LockAccounts(ctx context.Context, ids []string) (map[string]int64, error) {
	return b.lockAccounts(ctx, ids, false)
}

// LockAndBumpAccounts is LockAccounts, and then, in the same round trip,
// increments the version of every account it locked: the lock is ordered by FOR UPDATE, and the update of
// rows the transaction already holds waits for nothing. It returns the
// versions before the increment.
func (b *batch) LockAndBumpAccounts(ctx context.Context, ids []string) (map[string]int64, error) {
	return b.lockAccounts(ctx, ids, true)
}

func (b *batch) lockAccounts(ctx context.Context, ids []string, bump bool) (map[string]int64, error) {
	if b.done {
		return nil, wrap("lock accounts", errBatchDone, "")
	}
	out := make(map[string]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	pb := &pgx.Batch{}
	pb.Queue(qLockMissing, ids)
	pb.Queue(qLockAccounts, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var v int64
			if err := rows.Scan(&id, &v); err != nil {
				return err
			}
			out[id] = v
		}
		return rows.Err()
	})
	if bump {
		pb.Queue(qBumpAccounts, ids)
	}
	if err := b.send(ctx, pb); err != nil {
		return nil, wrap("lock accounts", err, "")
	}
	return out, nil
}

// LockIdempotencyKeys locks idempotency keys (principal, key) until the
// transaction ends, waiting for batches
// that hold any of them. The lock goes out ahead of the batch's next read
// (a deferred statement), so it costs no round trip of its own and is
// held before the batch reads the keys' records.
func (b *batch) LockIdempotencyKeys(ctx context.Context, keys [][2]string) error {
	if len(keys) == 0 || b.done {
		return wrap("lock idempotency keys", b.doneErr(), "")
	}
	principals, ks := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		principals[i], ks[i] = k[0], k[1]
	}
	b.queue("lock idempotency keys", qLockIdempotency, principals, ks)
	return nil
}

func (b *batch) LoadState(ctx context.Context, accountID string) (*ledger.State, error) {
	return loadState(ctx, b.send, accountID)
}

// LoadStates loads the accounts one by one, as LoadState does: one round
// trip each.
func (b *batch) LoadStates(ctx context.Context, ids []string) (map[string]*ledger.State, error) {
	out := make(map[string]*ledger.State, len(ids))
	for _, id := range ids {
		st, err := b.LoadState(ctx, id)
		if err != nil {
			if ledger.ErrorCode(err) == ledger.ENotFound {
				continue
			}
			return nil, err
		}
		out[id] = st
	}
	return out, nil
}

func (b *batch) GetHold(ctx context.Context, id string) (*ledger.Hold, error) {
	return getOne(ctx, b, "get hold "+id, rowscan.Hold, qGetHold, id)
}

func (b *batch) GetGrantByReference(ctx context.Context, p ledger.GrantReferenceParams) (*ledger.Grant, error) {
	return getOne(ctx, b, fmt.Sprintf("get grant by reference %s/%s/%q", p.AccountID, p.Source, p.Reference),
		rowscan.Grant, qGrantByReference, p.AccountID, string(p.Source), p.Reference)
}

func (b *batch) GetIdempotency(ctx context.Context, principal, key string) (*ledger.IdempotencyRecord, error) {
	return getOne(ctx, b, "get idempotency key", rowscan.Idempotency, qGetIdempotency, principal, key)
}

func (b *batch) GetJob(ctx context.Context, id string) (*ledger.Job, error) {
	return getOne(ctx, b, "get job "+id, rowscan.Job, qGetJob, id)
}

// lastByKey drops all but the last of the elements with the same key, in
// place of that last one: ON CONFLICT DO UPDATE cannot touch a row twice
// in one statement, and in a sequence of upserts the last one wins.
func lastByKey[T any, K comparable](xs []T, key func(T) K) []T {
	seen := make(map[K]struct{}, len(xs))
	dup := false
	for _, x := range xs {
		k := key(x)
		if _, ok := seen[k]; ok {
			dup = true
			break
		}
		seen[k] = struct{}{}
	}
	if !dup {
		return xs
	}
	clear(seen)
	out := make([]T, 0, len(xs))
	for i := len(xs) - 1; i >= 0; i-- {
		k := key(xs[i])
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			out = append(out, xs[i])
		}
	}
	slices.Reverse(out)
	return out
}

func (b *batch) SaveAccounts(ctx context.Context, accounts []*ledger.Account) error {
	if len(accounts) == 0 || b.done {
		return wrap("save accounts", b.doneErr(), "")
	}
	accounts = lastByKey(accounts, func(a *ledger.Account) string { return a.ID })
	n := len(accounts)
	id, plan, tz, lastDate := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	created, updated, notBefore, version := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	threshold, alerts := make([]int64, n), make([]int64, n)
	for i, a := range accounts {
		id[i], plan[i], tz[i], lastDate[i] = a.ID, string(a.Plan), a.Timezone, a.DailyLastDate
		created[i], updated[i], notBefore[i], version[i] = rowscan.Micros(a.CreatedAt), rowscan.Micros(a.UpdatedAt), rowscan.Micros(a.DailyNotBefore), a.Version
		threshold[i], alerts[i] = a.LowBalanceThreshold, a.Alerts
	}
	b.queue("save accounts", qSaveAccounts, id, plan, tz, created, updated, lastDate, notBefore, version, threshold, alerts)
	return nil
}

func (b *batch) SaveGrants(ctx context.Context, grants []*ledger.Grant) error {
	if len(grants) == 0 || b.done {
		return wrap("save grants", b.doneErr(), "")
	}
	grants = lastByKey(grants, func(g *ledger.Grant) string { return g.ID })
	n := len(grants)
	referenced := false
	id, acct, source, ref := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	amount, remaining, held, charged := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	expired, expires, created, notices := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, g := range grants {
		id[i], acct[i], source[i], ref[i] = g.ID, g.AccountID, string(g.Source), g.Reference
		amount[i], remaining[i], held[i], charged[i] = g.AmountCredits, g.RemainingCredits, g.HeldCredits, g.ChargedCredits
		expired[i], expires[i], created[i], notices[i] = g.ExpiredCredits, rowscan.Micros(g.ExpiresAt), rowscan.Micros(g.CreatedAt), g.Notices
		referenced = referenced || g.Reference != ""
	}
	if !referenced { // nothing to conflict with
		b.queue("save grants", qSaveGrants, id, acct, source, ref, amount, remaining, held, charged, expired, expires, created, notices)
		return nil
	}
	failed := b.err != nil
	raw := b.exec(ctx, qSaveGrants, id, acct, source, ref, amount, remaining, held, charged, expired, expires, created, notices)
	err := wrap("save grants", raw, "a grant with the same account, source and reference already exists")
	var le *ledger.Error
	if raw != nil && !failed && !errors.As(raw, &le) {
		// This statement failed (not a deferred write sent with it):
		// Commit reports it as the caller hears it.
		b.err = err
	}
	return err
}

func (b *batch) SaveHolds(ctx context.Context, holds []*ledger.Hold) error {
	if len(holds) == 0 || b.done {
		return wrap("save holds", b.doneErr(), "")
	}
	holds = lastByKey(holds, func(h *ledger.Hold) string { return h.ID })
	n := len(holds)
	id, acct, action, category := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	status, portions, reason := make([]string, n), make([]string, n), make([]string, n)
	quantity, unit, amount, created := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	expires, resolved, capQty, capAmount := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, h := range holds {
		p, err := json.Marshal(h.Portions)
		if err != nil {
			return fmt.Errorf("postgres: save holds: hold %s: portions: %w", h.ID, err)
		}
		id[i], acct[i], action[i], category[i] = h.ID, h.AccountID, h.Action, string(h.Category)
		status[i], portions[i], reason[i] = string(h.Status), string(p), h.ReleaseReason
		quantity[i], unit[i], amount[i], created[i] = h.Quantity, h.UnitPriceCredits, h.AmountCredits, rowscan.Micros(h.CreatedAt)
		expires[i], resolved[i], capQty[i], capAmount[i] = rowscan.Micros(h.ExpiresAt), rowscan.Micros(h.ResolvedAt), h.CapturedQuantity, h.CapturedCredits
	}
	b.queue("save holds", qSaveHolds, id, acct, action, category, quantity, unit, amount, status, portions, created,
		expires, resolved, capQty, capAmount, reason)
	return nil
}

// InsertEntries appends entries; the database assigns their ids, which are
// also written back to entries[i].ID (any ID set by the caller is ignored)
// when the deferred statement has run: at the latest when Commit returns.
// Ids increase in slice order: unnest yields the rows in order, each takes
// the next identity value as it is inserted, and RETURNING reports them in
// that order (checked: a response out of order fails the call).
func (b *batch) InsertEntries(ctx context.Context, entries []ledger.Entry) error {
	if len(entries) == 0 || b.done {
		return wrap("insert entries", b.doneErr(), "")
	}
	n := len(entries)
	acct, typ, source, grant, hold := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	action, reason, legs := make([]string, n), make([]string, n), make([]string, n)
	amount, quantity, created := make([]int64, n), make([]int64, n), make([]int64, n)
	for i := range entries {
		e := &entries[i]
		l, err := json.Marshal(e.Legs)
		if err != nil {
			return fmt.Errorf("postgres: insert entries: entry %d: legs: %w", i, err)
		}
		acct[i], typ[i], source[i], grant[i], hold[i] = e.AccountID, string(e.Type), string(e.Source), e.GrantID, e.HoldID
		action[i], reason[i], legs[i] = e.Action, e.Reason, string(l)
		amount[i], quantity[i], created[i] = e.AmountCredits, e.Quantity, rowscan.Micros(e.CreatedAt)
	}
	b.queue("insert entries", qInsertEntries, acct, typ, amount, source, grant, hold, action, quantity, reason, legs, created).
		Query(func(rows pgx.Rows) error {
			ids := make([]int64, 0, n)
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					return err
				}
				ids = append(ids, id)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if len(ids) != n {
				return fmt.Errorf("%d ids returned for %d entries", len(ids), n)
			}
			for i := range ids {
				if i > 0 && ids[i] <= ids[i-1] {
					return fmt.Errorf("ids returned out of order (%d then %d)", ids[i-1], ids[i])
				}
				entries[i].ID = ids[i]
			}
			return nil
		})
	return nil
}

func (b *batch) SaveIdempotency(ctx context.Context, records []*ledger.IdempotencyRecord) error {
	if len(records) == 0 || b.done {
		return wrap("save idempotency keys", b.doneErr(), "")
	}
	records = lastByKey(records, func(r *ledger.IdempotencyRecord) [2]string { return [2]string{r.Principal, r.Key} })
	n := len(records)
	principal, key, fp := make([]string, n), make([]string, n), make([]string, n)
	status, created, body := make([]int64, n), make([]int64, n), make([][]byte, n)
	for i, r := range records {
		principal[i], key[i], fp[i] = r.Principal, r.Key, r.Fingerprint
		status[i], created[i], body[i] = int64(r.Status), rowscan.Micros(r.CreatedAt), r.Body
		if body[i] == nil {
			body[i] = []byte{} // NOT NULL
		}
	}
	b.queue("save idempotency keys", qSaveIdempotency, principal, key, fp, status, body, created)
	return nil
}

// SaveJobs upserts jobs and writes their Seqs back: a new job's row takes
// the next identity value (in slice order), an existing row keeps its own.
// Params are stored verbatim ("{}" when empty), nil Outputs as [].
func (b *batch) SaveJobs(ctx context.Context, jobs []*ledger.Job) error {
	if len(jobs) == 0 || b.done {
		return wrap("save jobs", b.doneErr(), "")
	}
	all := jobs
	jobs = lastByKey(jobs, func(j *ledger.Job) string { return j.ID })
	n := len(jobs)
	id, acct, action, category, params := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	status, hold, lease, outputs, jerr := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	quantity, pv, cost, charged, attempts := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	leaseExp, created, updated, finished, lpv := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, j := range jobs {
		params[i] = string(j.Params)
		if len(j.Params) == 0 {
			params[i] = "{}"
		}
		outputs[i] = "[]"
		if len(j.Outputs) > 0 {
			o, err := json.Marshal(j.Outputs)
			if err != nil {
				return fmt.Errorf("postgres: save jobs: job %s: outputs: %w", j.ID, err)
			}
			outputs[i] = string(o)
		}
		id[i], acct[i], action[i], category[i] = j.ID, j.AccountID, j.Action, string(j.Category)
		status[i], hold[i], lease[i], jerr[i] = string(j.Status), j.HoldID, j.LeaseID, j.Error
		quantity[i], pv[i], cost[i], charged[i], attempts[i] = j.Quantity, j.ParamsVersion, j.CostCredits, j.ChargedCredits, j.Attempts
		leaseExp[i], created[i], updated[i], finished[i] = rowscan.Micros(j.LeaseExpiresAt), rowscan.Micros(j.CreatedAt), rowscan.Micros(j.UpdatedAt), rowscan.Micros(j.FinishedAt)
		lpv[i] = j.LeaseParamsVersion
	}
	b.queue("save jobs", qSaveJobs, id, acct, action, category, quantity, params, pv, status, hold, cost, charged,
		attempts, lease, leaseExp, outputs, jerr, created, updated, finished, lpv).
		Query(func(rows pgx.Rows) error {
			seqs, err := scanSeqs(rows, n)
			if err != nil {
				return err
			}
			for _, j := range all {
				seq, ok := seqs[j.ID]
				if !ok {
					return fmt.Errorf("no seq returned for job %s", j.ID)
				}
				j.Seq = seq
			}
			return nil
		})
	return nil
}

// doneErr is errBatchDone after Commit or Rollback, else nil.
func (b *batch) doneErr() error {
	if b.done {
		return errBatchDone
	}
	return nil
}

// Commit commits the batch; once it returns nil the batch is durable (as
// the server's synchronous_commit makes it). A batch in which a call
// failed is rolled back instead, and Commit returns that failure.
func (b *batch) Commit() error {
	if b.done {
		return fmt.Errorf("postgres: commit: %w", errBatchDone)
	}
	if b.err != nil {
		b.Rollback()
		// b.err may be the driver's error of a read (its caller was told
		// the translated one): translate it too.
		var le *ledger.Error
		if errors.As(b.err, &le) {
			return fmt.Errorf("postgres: commit: batch rolled back after an earlier failure: %w", b.err)
		}
		return wrap("commit: batch rolled back after an earlier failure", b.err, "")
	}
	if !b.begun && len(b.pending) == 0 {
		b.done = true
		b.conn.Release()
		return nil
	}
	// The deferred writes and COMMIT, in one round trip.
	var tag string
	pb := &pgx.Batch{}
	pb.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error {
		tag = ct.String()
		return nil
	})
	if err := b.send(b.ctx, pb); err != nil {
		// A write failed (PostgreSQL then skipped the COMMIT and the
		// transaction is aborted), or the round trip did: roll back.
		b.Rollback()
		return wrap("commit", err, "")
	}
	b.done = true
	b.conn.Release()     // a connection left in a transaction is closed, not reused
	if tag != "COMMIT" { // "ROLLBACK": the transaction had failed
		return fmt.Errorf("postgres: commit: %w", pgx.ErrTxCommitRollback)
	}
	return nil
}

// Rollback discards the batch. After Commit or Rollback it does nothing, so
// it can be deferred. It works after BeginBatch's context is cancelled.
func (b *batch) Rollback() error {
	if b.done {
		return nil
	}
	b.done = true
	b.pending = nil
	defer b.conn.Release()
	if !b.begun {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), 10*time.Second)
	defer cancel()
	if _, err := b.conn.Exec(ctx, "ROLLBACK"); err != nil {
		if b.conn.Conn().IsClosed() { // the server ends the transaction with the connection
			return nil
		}
		return wrap("rollback", err, "")
	}
	return nil
}
