package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

// Queries of outbound webhooks (migration 12). Several nodes share the
// tables: a fan-out moves the cursor by compare-and-set (one node's
// fan-out of an event wins), and a claim takes due deliveries with FOR
// UPDATE SKIP LOCKED and a lease, so one node sends each attempt.
const (
	qCreateWebhookEndpoint = `INSERT INTO webhook_endpoints (id, url, events, description, status, secret, previous_secret,
		previous_secret_expires_at, failing_since, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING seq`
	qGetWebhookEndpoint  = `SELECT ` + rowscan.WebhookEndpointCols + ` FROM webhook_endpoints WHERE id = $1`
	qListWebhookEndpoint = `SELECT ` + rowscan.WebhookEndpointCols + ` FROM webhook_endpoints
		WHERE seq < $1 AND (NOT $2 OR status = 'enabled') ORDER BY seq DESC LIMIT $3`
	// qUpdateWebhookEndpoint ends the failure streak only when it enables
	// a disabled endpoint (SET sees the row's old status); otherwise the
	// streak is the dispatcher's.
	qUpdateWebhookEndpoint = `UPDATE webhook_endpoints SET url = $1, events = $2, description = $3, status = $4, secret = $5,
		previous_secret = $6, previous_secret_expires_at = $7, updated_at = $8,
		failing_since = CASE WHEN status = 'disabled' AND $4 = 'enabled' THEN 0 ELSE failing_since END
		WHERE id = $9`
	qDeleteWebhookEndpoint  = `DELETE FROM webhook_endpoints WHERE id = $1` // deliveries: ON DELETE CASCADE
	qDisableWebhookEndpoint = `UPDATE webhook_endpoints SET status = 'disabled', updated_at = $1
		WHERE id = $2 AND status = 'enabled' AND failing_since = $3 AND failing_since <> 0`
	qWebhookCursor         = `SELECT seq FROM webhook_cursor WHERE id = 1`
	qMoveWebhookCursor     = `UPDATE webhook_cursor SET seq = $1 WHERE id = 1 AND seq = $2`
	qInsertWebhookDelivery = `INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, event_seq, attempt, status,
		response_status, duration_ms, error, next_retry_at, lease_until, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (endpoint_id, event_id) DO NOTHING`
	qClaimWebhookDeliveries = `UPDATE webhook_deliveries SET lease_until = $1 WHERE id IN (
		SELECT id FROM webhook_deliveries WHERE endpoint_id = $2 AND status = 'pending' AND next_retry_at <= $3 AND lease_until <= $3
		ORDER BY next_retry_at, seq LIMIT $4 FOR UPDATE SKIP LOCKED)
		RETURNING ` + rowscan.WebhookDeliveryCols
	qRecordWebhookAttempt = `UPDATE webhook_deliveries SET attempt = $1, status = $2, response_status = $3, duration_ms = $4,
		error = $5, next_retry_at = $6, lease_until = 0, updated_at = $7 WHERE id = $8 AND lease_until = $9`
	qWebhookStreak = `UPDATE webhook_endpoints SET failing_since = CASE WHEN $1 THEN 0 WHEN failing_since = 0 THEN $2 ELSE failing_since END
		WHERE id = $3 RETURNING failing_since`
	qGetWebhookDelivery   = `SELECT ` + rowscan.WebhookDeliveryCols + ` FROM webhook_deliveries WHERE id = $1`
	qListWebhookDelivery  = `SELECT ` + rowscan.WebhookDeliveryCols + ` FROM webhook_deliveries WHERE endpoint_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`
	qRetryWebhookDelivery = `UPDATE webhook_deliveries SET status = 'pending', next_retry_at = $1, updated_at = $1 WHERE id = $2
		RETURNING ` + rowscan.WebhookDeliveryCols
)

// CreateWebhookEndpoint inserts an endpoint and sets e.Seq.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, e *ledger.WebhookEndpoint) error {
	err := s.pool.QueryRow(ctx, qCreateWebhookEndpoint, e.ID, e.URL, rowscan.WebhookEvents(e), e.Description, e.Status, e.Secret,
		e.PreviousSecret, rowscan.Micros(e.PreviousSecretExpiresAt), rowscan.Micros(e.FailingSince),
		rowscan.Micros(e.CreatedAt), rowscan.Micros(e.UpdatedAt)).Scan(&e.Seq)
	return wrap("create webhook endpoint", err, "a webhook endpoint with id "+e.ID+" exists")
}

// GetWebhookEndpoint reads an endpoint.
func (s *Store) GetWebhookEndpoint(ctx context.Context, id string) (*ledger.WebhookEndpoint, error) {
	return getOne(ctx, s, "get webhook endpoint "+id, rowscan.WebhookEndpoint, qGetWebhookEndpoint, id)
}

// ListWebhookEndpoints pages endpoints newest first.
func (s *Store) ListWebhookEndpoints(ctx context.Context, p ledger.ListWebhookEndpointsParams) ([]ledger.WebhookEndpoint, error) {
	before, limit := cursor(p.BeforeSeq, p.Limit)
	out, err := getAll(ctx, s, "list webhook endpoints", rowscan.WebhookEndpoint, qListWebhookEndpoint, before, p.EnabledOnly, limit)
	return values(out), err
}

// UpdateWebhookEndpoint writes an endpoint's mutable fields.
func (s *Store) UpdateWebhookEndpoint(ctx context.Context, e *ledger.WebhookEndpoint) error {
	ct, err := s.pool.Exec(ctx, qUpdateWebhookEndpoint, e.URL, rowscan.WebhookEvents(e), e.Description, e.Status, e.Secret,
		e.PreviousSecret, rowscan.Micros(e.PreviousSecretExpiresAt), rowscan.Micros(e.UpdatedAt), e.ID)
	if err == nil && ct.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	return wrap("update webhook endpoint "+e.ID, err, "")
}

// DeleteWebhookEndpoint deletes an endpoint and (by cascade) its
// deliveries.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, id string) error {
	ct, err := s.pool.Exec(ctx, qDeleteWebhookEndpoint, id)
	if err == nil && ct.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	return wrap("delete webhook endpoint "+id, err, "")
}

// DisableFailingWebhookEndpoint disables an endpoint whose failure streak
// started at failingSince.
func (s *Store) DisableFailingWebhookEndpoint(ctx context.Context, id string, failingSince, at time.Time) (bool, error) {
	ct, err := s.pool.Exec(ctx, qDisableWebhookEndpoint, rowscan.Micros(at), id, rowscan.Micros(failingSince))
	if err != nil {
		return false, wrap("disable webhook endpoint "+id, err, "")
	}
	return ct.RowsAffected() == 1, nil
}

// WebhookCursor reads the fan-out cursor.
func (s *Store) WebhookCursor(ctx context.Context) (int64, error) {
	var seq int64
	err := s.pool.QueryRow(ctx, qWebhookCursor).Scan(&seq)
	return seq, wrap("read webhook cursor", err, "")
}

// FanOutWebhookEvents records deliveries and moves the cursor in one
// transaction. The cursor's row lock orders concurrent fan-outs: the
// second finds the cursor moved and records nothing.
func (s *Store) FanOutWebhookEvents(ctx context.Context, p ledger.FanOutWebhookParams) (bool, error) {
	const op = "fan out webhook events"
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, wrap(op, err, "")
	}
	defer tx.Rollback(context.Background())
	ct, err := tx.Exec(ctx, qMoveWebhookCursor, p.ToSeq, p.FromSeq)
	if err != nil {
		return false, wrap(op, err, "")
	}
	if ct.RowsAffected() == 0 {
		return false, nil
	}
	if len(p.Deliveries) > 0 {
		pb := &pgx.Batch{}
		for _, d := range p.Deliveries {
			pb.Queue(qInsertWebhookDelivery, d.ID, d.EndpointID, d.EventID, d.EventType, d.EventSeq, d.Attempt, d.Status,
				d.ResponseStatus, d.DurationMS, d.Error, rowscan.Micros(d.NextRetryAt), rowscan.Micros(d.LeaseUntil),
				rowscan.Micros(d.CreatedAt), rowscan.Micros(d.UpdatedAt))
		}
		if err := tx.SendBatch(ctx, pb).Close(); err != nil {
			return false, wrap(op, err, "")
		}
	}
	return true, wrap(op, tx.Commit(ctx), "")
}

// ClaimWebhookDeliveries leases an endpoint's due deliveries (rows another
// node is claiming are skipped).
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, p ledger.ClaimWebhookDeliveriesParams) ([]ledger.WebhookDelivery, error) {
	out, err := getAll(ctx, s, "claim webhook deliveries", rowscan.WebhookDelivery, qClaimWebhookDeliveries,
		rowscan.Micros(p.LeaseUntil), p.EndpointID, rowscan.Micros(p.Now), int64(p.Limit))
	return values(out), err
}

// RecordWebhookAttempt writes a claimed delivery's attempt and the
// endpoint's failure streak in one transaction.
func (s *Store) RecordWebhookAttempt(ctx context.Context, a ledger.WebhookAttempt) (bool, time.Time, error) {
	const op = "record webhook attempt"
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, time.Time{}, wrap(op, err, "")
	}
	defer tx.Rollback(context.Background())
	d := a.Delivery
	ct, err := tx.Exec(ctx, qRecordWebhookAttempt, d.Attempt, d.Status, d.ResponseStatus, d.DurationMS, d.Error,
		rowscan.Micros(d.NextRetryAt), rowscan.Micros(a.At), d.ID, rowscan.Micros(d.LeaseUntil))
	if err != nil {
		return false, time.Time{}, wrap(op+" "+d.ID, err, "")
	}
	if ct.RowsAffected() == 0 {
		return false, time.Time{}, nil
	}
	var since int64
	if err := tx.QueryRow(ctx, qWebhookStreak, a.Succeeded, rowscan.Micros(a.At), d.EndpointID).Scan(&since); err != nil {
		if errors.Is(err, pgx.ErrNoRows) { // the endpoint was deleted meanwhile
			return true, time.Time{}, wrap(op, tx.Commit(ctx), "")
		}
		return false, time.Time{}, wrap(op+" "+d.ID, err, "")
	}
	if err := tx.Commit(ctx); err != nil {
		return false, time.Time{}, wrap(op, err, "")
	}
	return true, rowscan.FromMicros(since), nil
}

// GetWebhookDelivery reads a delivery.
func (s *Store) GetWebhookDelivery(ctx context.Context, id string) (*ledger.WebhookDelivery, error) {
	return getOne(ctx, s, "get webhook delivery "+id, rowscan.WebhookDelivery, qGetWebhookDelivery, id)
}

// ListWebhookDeliveries pages an endpoint's deliveries newest first.
func (s *Store) ListWebhookDeliveries(ctx context.Context, p ledger.ListWebhookDeliveriesParams) ([]ledger.WebhookDelivery, error) {
	before, limit := cursor(p.BeforeSeq, p.Limit)
	out, err := getAll(ctx, s, "list webhook deliveries", rowscan.WebhookDelivery, qListWebhookDelivery, p.EndpointID, before, limit)
	return values(out), err
}

// RetryWebhookDelivery makes a delivery pending and due at at.
func (s *Store) RetryWebhookDelivery(ctx context.Context, id string, at time.Time) (*ledger.WebhookDelivery, error) {
	return getOne(ctx, s, "retry webhook delivery "+id, rowscan.WebhookDelivery, qRetryWebhookDelivery, rowscan.Micros(at), id)
}
