package sqlite

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

// The webhook outbox: a batch's events go into its journal record with its
// other rows (so replay after a crash restores them with their change,
// exactly once) and from there into webhook_events. Seqs are assigned by
// the batch (one at a time) in commit order, like entry ids.

// InsertEvents appends the batch's events and assigns their seqs.
func (b *jbatch) InsertEvents(ctx context.Context, events []ledger.WebhookEvent) error {
	if err := b.check(); err != nil {
		return err
	}
	b.c.Events = slices.Grow(b.c.Events, len(events))
	for i := range events {
		events[i].Seq = b.nextEvent
		b.nextEvent++
		c := events[i]
		c.Data = slices.Clone(c.Data)
		c.CreatedAt = usTime(c.CreatedAt)
		b.c.Events = append(b.c.Events, c)
	}
	return nil
}

// InsertEvents writes journaled events into webhook_events.
func (b *batch) InsertEvents(ctx context.Context, events []*ledger.WebhookEvent) error {
	err := b.write(ctx, tEvents, len(events), func(args []any, i int) ([]any, error) {
		e := events[i]
		return append(args, e.Seq, e.ID, e.Type, e.AccountID, rowscan.Micros(e.CreatedAt), string(e.Data)), nil
	})
	return wrap("insert events", err, "")
}

// EventsAfter returns up to limit committed events after afterSeq, oldest
// first. It waits for the materializer, as the other range reads do.
func (s *Store) EventsAfter(ctx context.Context, afterSeq int64, limit int) ([]ledger.WebhookEvent, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = math.MaxInt32
	}
	out, err := queryAll(ctx, s.rstmt[qEventsAfter], rowscan.Event, afterSeq, limit)
	if err != nil {
		return nil, wrap("list events", err, "")
	}
	return values(out), nil
}

// GetEvent reads a committed event.
func (s *Store) GetEvent(ctx context.Context, id string) (*ledger.WebhookEvent, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	e, err := rowscan.Event(s.rstmt[qGetEvent].QueryRowContext(ctx, id))
	if err != nil {
		return nil, wrap("get event "+id, err, "")
	}
	return e, nil
}

// ListGrantDeadlines returns the live non-daily buckets with an expiry at
// or before before (all of them for a zero before).
func (s *Store) ListGrantDeadlines(ctx context.Context, before time.Time) ([]ledger.Grant, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	until := int64(math.MaxInt64)
	if !before.IsZero() {
		until = rowscan.Micros(before)
	}
	out, err := queryAll(ctx, s.rstmt[qGrantDeadlines], rowscan.Grant, until)
	if err != nil {
		return nil, wrap("list grant deadlines", err, "")
	}
	return values(out), nil
}
