package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pressly/goose/v3"

	"github.com/creditd/creditd/ledger"
)

// runEntriesMax bounds the entries of one entry run (one row of
// entry_runs).
const runEntriesMax = 256

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
	rows, err := tx.QueryContext(ctx, `SELECT `+entryCols+` FROM entries ORDER BY account_id, id`)
	if err != nil {
		return err
	}
	var run []ledger.Entry
	var runs [][]ledger.Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			rows.Close()
			return err
		}
		if len(run) > 0 && (run[0].AccountID != e.AccountID || len(run) == runEntriesMax) {
			runs = append(runs, run)
			run = nil
		}
		run = append(run, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(run) > 0 {
		runs = append(runs, run)
	}
	for _, r := range runs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO entry_runs (account_id, last_id, first_id, data) VALUES (?, ?, ?, ?)`,
			r[0].AccountID, r[len(r)-1].ID, r[0].ID, encodeEntries(r)); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE entries`)
	return err
}}, nil)
