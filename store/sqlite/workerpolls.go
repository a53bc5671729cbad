package sqlite

import (
	"context"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

// Queries of worker polls, prepared with those of credential revocations
// (by Open only: a database a newer server has not migrated lacks the
// table).
const (
	qRecordWorkerPoll = `INSERT INTO worker_polls (action, last_poll_at) VALUES (?, ?)
		ON CONFLICT (action) DO UPDATE SET last_poll_at = max(last_poll_at, excluded.last_poll_at)`
	qListWorkerPolls = `SELECT action, last_poll_at FROM worker_polls`
)

// RecordWorkerPolls raises each action's last poll time to at least the
// given one. It writes through the writer connection in its own
// transaction, so it waits for a running batch.
func (s *Store) RecordWorkerPolls(ctx context.Context, polls []ledger.WorkerPoll) error {
	const op = "record worker polls"
	if len(polls) == 0 {
		return nil
	}
	st, err := s.credStmt(op, qRecordWorkerPoll)
	if err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err, "")
	}
	defer tx.Rollback()
	txst := tx.StmtContext(ctx, st)
	for _, p := range polls {
		if _, err := txst.ExecContext(ctx, p.Action, rowscan.Micros(p.At)); err != nil {
			return wrap(op, err, "")
		}
	}
	return wrap(op, tx.Commit(), "")
}

// ListWorkerPolls returns every action's last poll time.
func (s *Store) ListWorkerPolls(ctx context.Context) ([]ledger.WorkerPoll, error) {
	const op = "list worker polls"
	st, err := s.credStmt(op, qListWorkerPolls)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx)
	if err != nil {
		return nil, wrap(op, err, "")
	}
	defer rows.Close()
	var out []ledger.WorkerPoll
	for rows.Next() {
		p, err := rowscan.WorkerPoll(rows)
		if err != nil {
			return nil, wrap(op, err, "")
		}
		out = append(out, p)
	}
	return out, wrap(op, rows.Err(), "")
}
