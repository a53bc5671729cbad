package postgres

import (
	"cmp"
	"context"
	"slices"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

// Queries of worker polls. The upsert takes the rows in action order, so
// two nodes recording the same actions lock the rows in the same order.
const (
	qRecordWorkerPolls = `INSERT INTO worker_polls AS w (action, last_poll_at)
		SELECT * FROM unnest($1::text[], $2::bigint[])
		ON CONFLICT (action) DO UPDATE SET last_poll_at = greatest(w.last_poll_at, excluded.last_poll_at)`
	qListWorkerPolls = `SELECT action, last_poll_at FROM worker_polls`
)

// RecordWorkerPolls raises each action's last poll time to at least the
// given one, in one statement.
func (s *Store) RecordWorkerPolls(ctx context.Context, polls []ledger.WorkerPoll) error {
	if len(polls) == 0 {
		return nil
	}
	polls = slices.Clone(polls)
	// One row per action, its latest time (the first after this sort).
	slices.SortFunc(polls, func(a, b ledger.WorkerPoll) int { return cmp.Or(cmp.Compare(a.Action, b.Action), b.At.Compare(a.At)) })
	polls = slices.CompactFunc(polls, func(a, b ledger.WorkerPoll) bool { return a.Action == b.Action })
	actions := make([]string, len(polls))
	ats := make([]int64, len(polls))
	for i, p := range polls {
		actions[i], ats[i] = p.Action, rowscan.Micros(p.At)
	}
	_, err := s.pool.Exec(ctx, qRecordWorkerPolls, actions, ats)
	return wrap("record worker polls", err, "")
}

// ListWorkerPolls returns every action's last poll time.
func (s *Store) ListWorkerPolls(ctx context.Context) ([]ledger.WorkerPoll, error) {
	rows, err := s.pool.Query(ctx, qListWorkerPolls)
	if err != nil {
		return nil, wrap("list worker polls", err, "")
	}
	defer rows.Close()
	var out []ledger.WorkerPoll
	for rows.Next() {
		p, err := rowscan.WorkerPoll(rows)
		if err != nil {
			return nil, wrap("list worker polls", err, "")
		}
		out = append(out, p)
	}
	return out, wrap("list worker polls", rows.Err(), "")
}
