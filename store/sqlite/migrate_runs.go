package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pressly/goose/v3"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

// runEntriesMax bounds the entries of one entry run (one row of
// entry_runs).
const runEntriesMax = 256

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
	// Page through the entries in (account, id) order, migrateRunsPage at
	// a time, so memory does not grow with the ledger; a run may span pages.
	var run []*ledger.Entry
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO entry_runs (account_id, last_id, first_id, data) VALUES (?, ?, ?, ?)`,
			run[0].AccountID, run[len(run)-1].ID, run[0].ID, encodeEntries(run))
		run = run[:0]
		return err
	}
	afterAcct, afterID := "", int64(-1)
	for {
		rows, err := tx.QueryContext(ctx, `SELECT `+rowscan.EntryCols+` FROM entries INDEXED BY entries_account
			WHERE account_id > ? OR (account_id = ? AND id > ?) ORDER BY account_id, id LIMIT ?`,
			afterAcct, afterAcct, afterID, migrateRunsPage)
		if err != nil {
			return err
		}
		var page []ledger.Entry
		for rows.Next() {
			e, err := rowscan.Entry(rows)
			if err != nil {
				rows.Close()
				return err
			}
			page = append(page, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
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
			break
		}
		afterAcct, afterID = page[len(page)-1].AccountID, page[len(page)-1].ID
	}
	if err := flush(); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DROP TABLE entries`)
	return err
}}, nil)
