package sqlite

// The upgrade step: everything that reads an on-disk format of an older
// version lives here, and Open runs it before anything else touches the
// data, so the rest of the package knows only the current format.
//
//  1. The schema migrations (goose, embedded from migrations/), among them
//     migration 4, which moves entries from one row each into entry runs.
//  2. A journal kept in a SQLite file (<name>.journal.db) by versions
//     before the segment journal: its records past the tables' applied seq
//     are imported into the segment journal, which replays them as usual,
//     and the file is deleted.
//  3. Hold blocks written before migration 6 (q and tag NULL, one
//     millisecond each) are repacked into the current blocks, found by
//     their quantum and tag.
//
// Each part finds nothing to do on a current data directory, and each can
// be cut short by a crash and run again.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/pressly/goose/v3"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
	"github.com/creditd/creditd/store/sqlite/journal"
)

// upgrade brings the data at path (the database and its journal) to the
// current format.
func upgrade(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", dsn(path, modeWriter))
	if err != nil {
		return fmt.Errorf("sqlite: upgrade: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := migrate(ctx, db); err != nil {
		return err
	}
	if err := importLegacyJournal(ctx, db, path); err != nil {
		return fmt.Errorf("sqlite: upgrade: old journal: %w", err)
	}
	if err := repackLegacyHoldBlocks(ctx, db); err != nil {
		return fmt.Errorf("sqlite: upgrade: old hold blocks: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("sqlite: upgrade: %w", err)
	}
	return nil
}

// migrate applies the schema migrations.
func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(migrateEntryRuns))
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return nil
}

// ---- migration 4: entry runs -----------------------------------------------

// migrateRunsPage is how many entries migration 4 reads at a time (a
// variable for tests).
var migrateRunsPage = 10000

// migrateEntryRuns is migration 4: entries move from one row each to runs
// of up to runEntriesMax entries of one account (entry_runs), written by
// the materializer one run per account per transaction. The next entry id
// moves to journal_state. It cannot be undone.
var migrateEntryRuns = goose.NewGoMigration(4, &goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
	stmts := []string{
		`CREATE TABLE entry_runs (
			account_id TEXT    NOT NULL,
			last_id    INTEGER NOT NULL,
			first_id   INTEGER NOT NULL,
			data       BLOB    NOT NULL,
			PRIMARY KEY (account_id, last_id)
		) STRICT, WITHOUT ROWID`,
		`ALTER TABLE journal_state ADD COLUMN next_entry_id INTEGER NOT NULL DEFAULT 1`,
		`UPDATE journal_state SET next_entry_id = (SELECT coalesce(max(id), 0) + 1 FROM entries)`,
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%.40s…: %w", q, err)
		}
	}
	if err := packEntryRuns(ctx, tx); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DROP TABLE entries`)
	return err
}}, nil)

// packEntryRuns pages through the entries in (account, id) order,
// migrateRunsPage at a time, so memory does not grow with the ledger, and
// writes them as runs; a run may span pages.
func packEntryRuns(ctx context.Context, tx *sql.Tx) error {
	var run []*ledger.Entry
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO entry_runs (account_id, last_id, first_id, data) VALUES (?, ?, ?, ?)`,
			run[0].AccountID, run[len(run)-1].ID, run[0].ID, journal.EncodeEntries(run))
		run = run[:0]
		return err
	}
	afterAcct, afterID := "", int64(-1)
	for {
		page, err := entriesPage(ctx, tx, afterAcct, afterID)
		if err != nil {
			return err
		}
		for _, e := range page {
			if len(run) > 0 && (run[0].AccountID != e.AccountID || len(run) == runEntriesMax) {
				if err := flush(); err != nil {
					return err
				}
			}
			run = append(run, &e)
		}
		if len(page) < migrateRunsPage {
			return flush()
		}
		afterAcct, afterID = page[len(page)-1].AccountID, page[len(page)-1].ID
	}
}

// entriesPage reads the next migrateRunsPage rows of the old entries table
// after (afterAcct, afterID).
func entriesPage(ctx context.Context, tx *sql.Tx, afterAcct string, afterID int64) ([]ledger.Entry, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+rowscan.EntryCols+` FROM entries INDEXED BY entries_account
		WHERE account_id > ? OR (account_id = ? AND id > ?) ORDER BY account_id, id LIMIT ?`,
		afterAcct, afterAcct, afterID, migrateRunsPage)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var page []ledger.Entry
	for rows.Next() {
		e, err := rowscan.Entry(rows)
		if err != nil {
			return nil, err
		}
		page = append(page, e)
	}
	return page, rows.Err()
}

// ---- the journal in a SQLite file -------------------------------------------

// legacyJournalPath is where versions before the segment journal kept it:
// a SQLite database, table batches(seq, data), data an encoded ChangeSet.
func legacyJournalPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".journal.db"
}

// importLegacyJournal moves the records of a legacy journal that the
// tables lack into the segment journal, then deletes the legacy file. The
// segment journal skips records it already has, should a crash have cut an
// earlier import short.
func importLegacyJournal(ctx context.Context, db *sql.DB, path string) error {
	legacy := legacyJournalPath(path)
	if _, err := os.Stat(legacy); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var applied int64
	if err := db.QueryRowContext(ctx, `SELECT applied_seq FROM journal_state WHERE id = 1`).Scan(&applied); err != nil {
		return err
	}
	recs, err := readLegacyJournal(ctx, legacy, applied)
	if err != nil {
		return err
	}
	if err := journal.Import(journalDir(path), applied, recs); err != nil {
		return err
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(legacy + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// readLegacyJournal returns the records of the legacy journal at path past
// applied, in seq order.
func readLegacyJournal(ctx context.Context, path string, applied int64) ([]journal.Record, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}).String())
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT seq, data FROM batches WHERE seq > ? ORDER BY seq`, applied)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil, nil
		}
		return nil, err
	}
	defer rows.Close()
	var recs []journal.Record
	for rows.Next() {
		var r journal.Record
		if err := rows.Scan(&r.Seq, &r.Data); err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return recs, db.Close()
}

// ---- hold blocks before migration 6 -----------------------------------------

// The queries of blocks before migration 6 go through the partial index of
// those blocks, so that they cost nothing once none is left (every Open
// runs them).
const (
	qLegacyHoldBlocks   = `SELECT account_id, ms, seq, last_id, data FROM hold_blocks INDEXED BY hold_blocks_ms WHERE q IS NULL LIMIT 1000`
	qAnyLegacyHoldBlock = `SELECT count(*) FROM (SELECT 1 FROM hold_blocks INDEXED BY hold_blocks_ms WHERE q IS NULL LIMIT 1)`
)

// repackLegacyHoldBlocks rewrites every hold block without a quantum (q
// NULL: one millisecond of one account, as written before migration 6)
// into current blocks, keeping each block's seq, in one transaction.
func repackLegacyHoldBlocks(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for {
		n, err := repackLegacyHoldBlocksPage(ctx, tx)
		if err != nil {
			return err
		}
		if n == 0 {
			return tx.Commit()
		}
	}
}

// repackLegacyHoldBlocksPage repacks up to 1000 legacy blocks and returns
// how many it found.
func repackLegacyHoldBlocksPage(ctx context.Context, tx *sql.Tx) (int, error) {
	type old struct {
		account, lastID string
		ms, seq         int64
		holds           []ledger.Hold
	}
	rows, err := tx.QueryContext(ctx, qLegacyHoldBlocks)
	if err != nil {
		return 0, err
	}
	var olds []old
	for rows.Next() {
		var o old
		var data []byte
		if err := rows.Scan(&o.account, &o.ms, &o.seq, &o.lastID, &data); err != nil {
			rows.Close()
			return 0, err
		}
		if o.holds, err = journal.DecodeHolds(data); err != nil {
			rows.Close()
			return 0, fmt.Errorf("block (%s, %d, %d): %w", o.account, o.ms, o.seq, err)
		}
		olds = append(olds, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, o := range olds {
		if _, err := tx.ExecContext(ctx, `DELETE FROM hold_blocks WHERE account_id = ? AND ms = ? AND seq = ? AND last_id = ?`,
			o.account, o.ms, o.seq, o.lastID); err != nil {
			return 0, err
		}
		if err := insertRepacked(ctx, tx, o.holds, o.seq); err != nil {
			return 0, err
		}
	}
	return len(olds), nil
}

// insertRepacked writes the holds of one legacy block as current blocks.
func insertRepacked(ctx context.Context, tx *sql.Tx, holds []ledger.Hold, seq int64) error {
	var blocks []holdBlock
	for i := range holds {
		h := &holds[i]
		ms, tag, ok := ledger.IDTimeTag(h.ID)
		if !ok {
			return fmt.Errorf("hold %s in a block has no time in its id", h.ID)
		}
		blocks = addToBlock(blocks, h, ms, tag)
	}
	for _, b := range blocks {
		hs := b.holds
		if _, err := tx.ExecContext(ctx, `INSERT INTO hold_blocks (account_id, ms, seq, last_id, data, q, tag) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			hs[0].AccountID, b.ms, seq, hs[len(hs)-1].ID, journal.EncodeHolds(hs), b.q, b.tag); err != nil {
			return err
		}
	}
	return nil
}
