package app

import (
	"context"

	"github.com/creditd/creditd/ledger"
)

// Events returns up to limit committed webhook events after afterSeq,
// oldest first: the webhook dispatcher's feed (afterSeq is the last seq
// it has handled, 0 at first).
func (s *Service) Events(ctx context.Context, afterSeq int64, limit int) ([]ledger.WebhookEvent, error) {
	return s.eng.EventsAfter(ctx, afterSeq, limit)
}

// ListEvents pages the webhook events, oldest first (GET /v1/events): the
// cursor is the seq of the previous page's last event.
func (s *Service) ListEvents(ctx context.Context, r PageRequest) (Page[ledger.WebhookEvent], error) {
	evs, next, err := s.eng.ListEvents(ctx, r.Cursor, r.Limit)
	return Page[ledger.WebhookEvent]{Items: evs, Next: next}, err
}

// Event reads one webhook event (GET /v1/events/{id}).
func (s *Service) Event(ctx context.Context, id string) (ledger.WebhookEvent, error) {
	return s.eng.GetEvent(ctx, id)
}
