package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
	"github.com/jackc/pgx/v5"
)

// The webhook outbox. A batch's events are inserted by its transaction
// after it took eventsLock, a transaction-level advisory lock held until
// it commits: event seqs are drawn and made visible one transaction at a
// time, in commit order, so a reader that sees seq n has already been
// able to see every smaller seq that will ever commit (a rolled-back seq
// is a gap that stays one). Only batches that write events take the lock;
// the others (most charges) commit as before.

const (
	// The advisory lock key of event-writing transactions: "whk_evts".
	qLockEvents     = `SELECT pg_advisory_xact_lock(8604245145559659635)`
	qEventsAfter    = `SELECT ` + rowscan.EventCols + ` FROM webhook_events WHERE seq > $1 ORDER BY seq LIMIT $2`
	qGetEvent       = `SELECT ` + rowscan.EventCols + ` FROM webhook_events WHERE id = $1`
	qGrantDeadlines = `SELECT ` + rowscan.GrantCols + ` FROM grants WHERE live AND expires_at <> 0 AND source <> 'daily' AND expires_at <= $1 AND remaining > 0 ORDER BY expires_at, id`
)

// InsertEvents queues the lock and the events' insert with the batch's
// other writes; their seqs are written back when the batch commits.
func (b *batch) InsertEvents(ctx context.Context, events []ledger.WebhookEvent) error {
	if len(events) == 0 || b.done {
		return wrap("insert events", b.doneErr(), "")
	}
	n := len(events)
	id, typ, acct, data := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	created := make([]int64, n)
	for i := range events {
		e := &events[i]
		id[i], typ[i], acct[i], data[i] = e.ID, e.Type, e.AccountID, string(e.Data)
		created[i] = rowscan.Micros(e.CreatedAt)
	}
	b.queue("lock events", qLockEvents)
	b.queue("insert events", qInsertEvents, id, typ, acct, created, data).
		Query(func(rows pgx.Rows) error {
			seqs, err := scanSeqs(rows, n)
			if err != nil {
				return err
			}
			for i := range events {
				seq, ok := seqs[events[i].ID]
				if !ok {
					return fmt.Errorf("no seq returned for event %s", events[i].ID)
				}
				events[i].Seq = seq
			}
			return nil
		})
	return nil
}

// EventsAfter returns up to limit committed events after afterSeq, oldest
// first.
func (s *Store) EventsAfter(ctx context.Context, afterSeq int64, limit int) ([]ledger.WebhookEvent, error) {
	if limit <= 0 {
		limit = math.MaxInt32
	}
	out, err := getAll(ctx, s, "list events", rowscan.Event, qEventsAfter, afterSeq, limit)
	return values(out), err
}

// GetEvent reads a committed event.
func (s *Store) GetEvent(ctx context.Context, id string) (*ledger.WebhookEvent, error) {
	return getOne(ctx, s, "get event "+id, rowscan.Event, qGetEvent, id)
}

// ListGrantDeadlines returns the live non-daily buckets with an expiry at
// or before before (all of them for a zero before).
func (s *Store) ListGrantDeadlines(ctx context.Context, before time.Time) ([]ledger.Grant, error) {
	until := int64(math.MaxInt64)
	if !before.IsZero() {
		until = rowscan.Micros(before)
	}
	out, err := getAll(ctx, s, "list grant deadlines", rowscan.Grant, qGrantDeadlines, until)
	return values(out), err
}

// scanSeqs reads the (id, seq) rows an insert returns, sized for n.
func scanSeqs(rows pgx.Rows, n int) (map[string]int64, error) {
	seqs := make(map[string]int64, n)
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, err
		}
		seqs[id] = seq
	}
	return seqs, rows.Err()
}
