package bench

// The naive baseline: the charge cycle written the obvious way, one
// database transaction per operation with a row lock, on its own tables
// (naive_accounts, naive_holds, naive_entries) in the same database as
// creditd's, at the same durability.
//
//   - SQLite (WAL, synchronous=FULL, one writer connection — SQLite has one
//     writer anyway, and a pool of connections would only add busy-wait
//     sleeps): reserve is BEGIN IMMEDIATE, read the balance, conditional
//     update, insert the hold row, insert the entry, COMMIT; capture is
//     BEGIN IMMEDIATE, read the hold, mark it captured, move held → charged
//     on the account, insert the entry, COMMIT.
//   - PostgreSQL (synchronous_commit=on): reserve is BEGIN and a conditional
//     UPDATE … WHERE available >= $amount (the row lock) in one round trip,
//     then the hold and entry inserts and COMMIT in a second; capture is
//     BEGIN and UPDATE naive_holds … WHERE status = 'pending' RETURNING (the
//     hold's row lock) in one round trip, then the account update, the
//     entry and COMMIT in a second. Each operation runs on its own pooled
//     connection, so concurrent commits share WAL flushes the way
//     PostgreSQL always does.
//
// Every operation is one commit: ops/commit = 1.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/creditd/creditd/ledger"
)

var errInsufficient = errors.New("insufficient credits")

const naiveSQLiteSchema = `
CREATE TABLE IF NOT EXISTS naive_accounts (
    id        TEXT    NOT NULL PRIMARY KEY,
    available INTEGER NOT NULL CHECK (available >= 0),
    held      INTEGER NOT NULL CHECK (held >= 0),
    charged   INTEGER NOT NULL CHECK (charged >= 0),
    granted   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS naive_holds (
    id          TEXT    NOT NULL PRIMARY KEY,
    account_id  TEXT    NOT NULL,
    amount      INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    captured    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    resolved_at INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS naive_holds_account ON naive_holds (account_id, created_at);
CREATE TABLE IF NOT EXISTS naive_entries (
    id         INTEGER NOT NULL PRIMARY KEY,
    account_id TEXT    NOT NULL,
    hold_id    TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    amount     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS naive_entries_account ON naive_entries (account_id, id);
`

const naivePGSchema = `
CREATE TABLE IF NOT EXISTS naive_accounts (
    id        TEXT   NOT NULL PRIMARY KEY,
    available BIGINT NOT NULL CHECK (available >= 0),
    held      BIGINT NOT NULL CHECK (held >= 0),
    charged   BIGINT NOT NULL CHECK (charged >= 0),
    granted   BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS naive_holds (
    id          TEXT   NOT NULL PRIMARY KEY,
    account_id  TEXT   NOT NULL,
    amount      BIGINT NOT NULL,
    status      TEXT   NOT NULL,
    captured    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    resolved_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS naive_holds_account ON naive_holds (account_id, created_at);
CREATE TABLE IF NOT EXISTS naive_entries (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id TEXT   NOT NULL,
    hold_id    TEXT   NOT NULL,
    type       TEXT   NOT NULL,
    amount     BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS naive_entries_account ON naive_entries (account_id, id);
`

// naiveTarget is the naive baseline on one database.
type naiveTarget struct {
	ids     []string
	unit    int64
	commitN atomic.Int64

	// SQLite
	db                                        *sql.DB
	selBalance, updReserve, insHold, insEntry *sql.Stmt
	selHold, updHold, updCapture              *sql.Stmt
	// PostgreSQL
	pool *pgxpool.Pool
}

func (t *naiveTarget) counters() (counters, error) {
	n := float64(t.commitN.Load())
	return counters{commits: n, ops: n, ok: true}, nil
}

func (t *naiveTarget) close() {
	for _, s := range []*sql.Stmt{t.selBalance, t.updReserve, t.insHold, t.insEntry, t.selHold, t.updHold, t.updCapture} {
		if s != nil {
			s.Close()
		}
	}
	if t.db != nil {
		t.db.Close()
	}
	if t.pool != nil {
		t.pool.Close()
	}
}

func nowMicros() int64 { return time.Now().UnixMicro() }

// ---- SQLite ---------------------------------------------------------------

// naiveSQLiteDSN opens path like creditd's writer: WAL, synchronous=FULL,
// BEGIN IMMEDIATE, the same cache and temp-store settings.
func naiveSQLiteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "cache_size(-65536)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

func openNaiveSQLite(ctx context.Context, path string, ids []string, unit int64) (*naiveTarget, error) {
	db, err := sql.Open("sqlite", naiveSQLiteDSN(path))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	t := &naiveTarget{db: db, ids: ids, unit: unit}
	ok := false
	defer func() {
		if !ok {
			t.close()
		}
	}()
	var mode string
	var sync int
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, err
	}
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return nil, err
	}
	if mode != "wal" || sync != 2 {
		return nil, fmt.Errorf("naive sqlite: journal_mode=%s synchronous=%d, want wal and 2 (FULL)", mode, sync)
	}
	if _, err := db.ExecContext(ctx, naiveSQLiteSchema); err != nil {
		return nil, fmt.Errorf("naive sqlite schema: %w", err)
	}
	prep := func(dst **sql.Stmt, q string) {
		if err == nil {
			*dst, err = db.PrepareContext(ctx, q)
		}
	}
	prep(&t.selBalance, `SELECT available FROM naive_accounts WHERE id = ?`)
	prep(&t.updReserve, `UPDATE naive_accounts SET available = available - ?1, held = held + ?1 WHERE id = ?2`)
	prep(&t.insHold, `INSERT INTO naive_holds (id, account_id, amount, status, created_at) VALUES (?, ?, ?, 'pending', ?)`)
	prep(&t.insEntry, `INSERT INTO naive_entries (account_id, hold_id, type, amount, created_at) VALUES (?, ?, ?, ?, ?)`)
	prep(&t.selHold, `SELECT account_id, amount, status FROM naive_holds WHERE id = ?`)
	prep(&t.updHold, `UPDATE naive_holds SET status = 'captured', captured = ?, resolved_at = ? WHERE id = ?`)
	prep(&t.updCapture, `UPDATE naive_accounts SET held = held - ?1, charged = charged + ?2, available = available + (?1 - ?2) WHERE id = ?3`)
	if err != nil {
		return nil, fmt.Errorf("naive sqlite prepare: %w", err)
	}
	// Accounts in one transaction (setup, not measured).
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO naive_accounts (id, available, held, charged, granted) VALUES (?, ?, 0, 0, ?)`)
	if err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	for _, id := range ids {
		if _, err := ins.ExecContext(ctx, id, grantCredits, grantCredits); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("naive sqlite: insert account %s: %w", id, err)
		}
	}
	ins.Close()
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	ok = true
	return t, nil
}

func (t *naiveTarget) sqliteReserve(ctx context.Context, acct string) (holdID string, err error) {
	tx, err := t.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: takes the write lock
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var avail int64
	if err = tx.StmtContext(ctx, t.selBalance).QueryRowContext(ctx, acct).Scan(&avail); err != nil {
		return "", err
	}
	if avail < t.unit {
		return "", errInsufficient
	}
	if _, err = tx.StmtContext(ctx, t.updReserve).ExecContext(ctx, t.unit, acct); err != nil {
		return "", err
	}
	id := ledger.NewID("hld")
	now := nowMicros()
	if _, err = tx.StmtContext(ctx, t.insHold).ExecContext(ctx, id, acct, t.unit, now); err != nil {
		return "", err
	}
	if _, err = tx.StmtContext(ctx, t.insEntry).ExecContext(ctx, acct, id, "hold", t.unit, now); err != nil {
		return "", err
	}
	if err = tx.Commit(); err != nil {
		return "", err
	}
	t.commitN.Add(1)
	return id, nil
}

func (t *naiveTarget) sqliteCapture(ctx context.Context, holdID string) (err error) {
	tx, err := t.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var acct, status string
	var amount int64
	if err = tx.StmtContext(ctx, t.selHold).QueryRowContext(ctx, holdID).Scan(&acct, &amount, &status); err != nil {
		return err
	}
	if status != "pending" {
		return fmt.Errorf("hold %s is %s", holdID, status)
	}
	charge := t.unit // quantity 1 delivered
	now := nowMicros()
	if _, err = tx.StmtContext(ctx, t.updHold).ExecContext(ctx, charge, now, holdID); err != nil {
		return err
	}
	if _, err = tx.StmtContext(ctx, t.updCapture).ExecContext(ctx, amount, charge, acct); err != nil {
		return err
	}
	if _, err = tx.StmtContext(ctx, t.insEntry).ExecContext(ctx, acct, holdID, "capture", charge, now); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return err
	}
	t.commitN.Add(1)
	return nil
}

// ---- PostgreSQL -----------------------------------------------------------

func openNaivePG(ctx context.Context, dsn string, conns int32, ids []string, unit int64) (*naiveTarget, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = conns
	cfg.MinConns = conns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t := &naiveTarget{pool: pool, ids: ids, unit: unit}
	ok := false
	defer func() {
		if !ok {
			t.close()
		}
	}()
	var sc string
	if err := pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&sc); err != nil {
		return nil, err
	}
	if sc != "on" && sc != "remote_write" && sc != "remote_apply" {
		return nil, fmt.Errorf("naive postgres: synchronous_commit=%s, want on", sc)
	}
	if _, err := pool.Exec(ctx, naivePGSchema); err != nil {
		return nil, fmt.Errorf("naive postgres schema: %w", err)
	}
	rows := make([][]any, len(ids))
	for i, id := range ids {
		rows[i] = []any{id, int64(grantCredits), int64(0), int64(0), int64(grantCredits)}
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"naive_accounts"}, []string{"id", "available", "held", "charged", "granted"}, pgx.CopyFromRows(rows)); err != nil {
		return nil, fmt.Errorf("naive postgres: insert accounts: %w", err)
	}
	ok = true
	return t, nil
}

const (
	pgReserve    = `UPDATE naive_accounts SET available = available - $2, held = held + $2 WHERE id = $1 AND available >= $2`
	pgInsHold    = `INSERT INTO naive_holds (id, account_id, amount, status, created_at) VALUES ($1, $2, $3, 'pending', $4)`
	pgInsEntry   = `INSERT INTO naive_entries (account_id, hold_id, type, amount, created_at) VALUES ($1, $2, $3, $4, $5)`
	pgLockHold   = `UPDATE naive_holds SET status = 'captured', captured = $2, resolved_at = $3 WHERE id = $1 AND status = 'pending' RETURNING account_id, amount`
	pgUpdCapture = `UPDATE naive_accounts SET held = held - $2, charged = charged + $3, available = available + ($2 - $3) WHERE id = $1`
)

func (t *naiveTarget) pgReserve(ctx context.Context, acct string) (holdID string, err error) {
	c, err := t.pool.Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer c.Release()
	defer func() {
		if err != nil && c.Conn().PgConn().TxStatus() != 'I' {
			_, _ = c.Exec(ctx, "ROLLBACK")
		}
	}()
	// Round trip 1: BEGIN and the conditional update (locks the row).
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(pgReserve, acct, t.unit)
	br := c.SendBatch(ctx, b)
	_, err = br.Exec()
	var tag interface{ RowsAffected() int64 }
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if tag.RowsAffected() != 1 {
		return "", errInsufficient
	}
	// Round trip 2: the hold, its entry, COMMIT.
	id := ledger.NewID("hld")
	now := nowMicros()
	b = &pgx.Batch{}
	b.Queue(pgInsHold, id, acct, t.unit, now)
	b.Queue(pgInsEntry, acct, id, "hold", t.unit, now)
	b.Queue("COMMIT")
	if err = c.SendBatch(ctx, b).Close(); err != nil {
		return "", err
	}
	t.commitN.Add(1)
	return id, nil
}

func (t *naiveTarget) pgCapture(ctx context.Context, holdID string) (err error) {
	c, err := t.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	defer func() {
		if err != nil && c.Conn().PgConn().TxStatus() != 'I' {
			_, _ = c.Exec(ctx, "ROLLBACK")
		}
	}()
	charge := t.unit
	now := nowMicros()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(pgLockHold, holdID, charge, now)
	br := c.SendBatch(ctx, b)
	var acct string
	var amount int64
	_, err = br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&acct, &amount)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("hold %s is not pending", holdID)
	}
	if err != nil {
		return err
	}
	b = &pgx.Batch{}
	b.Queue(pgUpdCapture, acct, amount, charge)
	b.Queue(pgInsEntry, acct, holdID, "capture", charge, now)
	b.Queue("COMMIT")
	if err = c.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	t.commitN.Add(1)
	return nil
}

// ---- both -----------------------------------------------------------------

func (t *naiveTarget) worker(int) (cycleFunc, func(), error) {
	ctx := context.Background()
	reserve, capture := t.sqliteReserve, t.sqliteCapture
	if t.pool != nil {
		reserve, capture = t.pgReserve, t.pgCapture
	}
	return func(acct int) (outcome, error) {
		id, err := reserve(ctx, t.ids[acct])
		if err != nil {
			return cycleFailed, fmt.Errorf("naive reserve: %w", err)
		}
		if err := capture(ctx, id); err != nil {
			return cycleOrphan, fmt.Errorf("naive capture: %w", err)
		}
		return cycleDone, nil
	}, nil, nil
}

// check is the naive baseline's verify: per account available + held +
// charged = granted and available ≥ 0; the holds and entries add up to the
// accounts' held and charged credits; and charged = unit × cycles.
func (t *naiveTarget) check(ctx context.Context, prefix string, tl tally) (*Check, error) {
	query := func(q string, dest ...any) error {
		if t.pool != nil {
			q = strings.ReplaceAll(q, "?", "$1")
			return t.pool.QueryRow(ctx, q, prefix+"%").Scan(dest...)
		}
		return t.db.QueryRowContext(ctx, q, prefix+"%").Scan(dest...)
	}
	c := &Check{ExpectedCharged: t.unit * tl.cycles, Problems: []string{}}
	var n, bad int64
	var avail, minAvail sql.NullInt64
	if err := query(`SELECT count(*), coalesce(sum(available), 0), coalesce(sum(held), 0), coalesce(sum(charged), 0), min(available),
		coalesce(sum(CASE WHEN available + held + charged <> granted THEN 1 ELSE 0 END), 0)
		FROM naive_accounts WHERE id LIKE ?`, &n, &avail, &c.HeldCredits, &c.ChargedCredits, &minAvail, &bad); err != nil {
		return nil, fmt.Errorf("naive check: %w", err)
	}
	c.Accounts = int(n)
	c.VerifiedAccounts = int(n)
	if n != int64(len(t.ids)) {
		c.Problems = append(c.Problems, fmt.Sprintf("%d accounts, want %d", n, len(t.ids)))
	}
	if minAvail.Valid && minAvail.Int64 < 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("an account has available %d", minAvail.Int64))
	}
	if bad != 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d accounts where available + held + charged != granted", bad))
	}
	var holds, pendingAmt, captured int64
	if err := query(`SELECT count(*), coalesce(sum(CASE WHEN status = 'pending' THEN amount ELSE 0 END), 0), coalesce(sum(captured), 0)
		FROM naive_holds WHERE account_id LIKE ?`, &holds, &pendingAmt, &captured); err != nil {
		return nil, fmt.Errorf("naive check: %w", err)
	}
	var entries, holdEntries, holdSum, captureSum, holdAmt int64
	if err := query(`SELECT count(*), coalesce(sum(CASE WHEN type = 'hold' THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN type = 'hold' THEN amount ELSE 0 END), 0),
		coalesce(sum(CASE WHEN type = 'capture' THEN amount ELSE 0 END), 0)
		FROM naive_entries WHERE account_id LIKE ?`, &entries, &holdEntries, &holdSum, &captureSum); err != nil {
		return nil, fmt.Errorf("naive check: %w", err)
	}
	if err := query(`SELECT coalesce(sum(amount), 0) FROM naive_holds WHERE account_id LIKE ?`, &holdAmt); err != nil {
		return nil, fmt.Errorf("naive check: %w", err)
	}
	c.VerifiedEntries = int(entries)
	if pendingAmt != c.HeldCredits {
		c.Problems = append(c.Problems, fmt.Sprintf("pending holds amount to %d, accounts hold %d", pendingAmt, c.HeldCredits))
	}
	if captured != c.ChargedCredits || captureSum != c.ChargedCredits {
		c.Problems = append(c.Problems, fmt.Sprintf("accounts charged %d, holds captured %d, capture entries %d", c.ChargedCredits, captured, captureSum))
	}
	if holdEntries != holds || holdSum != holdAmt {
		c.Problems = append(c.Problems, fmt.Sprintf("%d holds of %d credits, %d hold entries of %d", holds, holdAmt, holdEntries, holdSum))
	}
	c.balanceProblems(t.unit, tl, c.ChargedCredits, c.HeldCredits)
	c.OK = len(c.Problems) == 0
	return c, nil
}
