package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

// Queries of outbound webhooks (migration 14). They are not prepared at
// Open: `creditd verify` (OpenReadOnly) may read a database that lacks
// the tables. Writes go through the one writer connection, so each insert
// takes the next seq in the statement itself.
const (
	qCreateWebhookEndpoint = `INSERT INTO webhook_endpoints (id, url, events, description, status, secret, previous_secret,
		previous_secret_expires_at, failing_since, created_at, updated_at, seq)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM webhook_endpoints))
		RETURNING seq`
	qGetWebhookEndpoint  = `SELECT ` + rowscan.WebhookEndpointCols + ` FROM webhook_endpoints WHERE id = ?`
	qListWebhookEndpoint = `SELECT ` + rowscan.WebhookEndpointCols + ` FROM webhook_endpoints
		WHERE seq < ? AND (? = 0 OR status = 'enabled') ORDER BY seq DESC LIMIT ?`
	// qUpdateWebhookEndpoint ends the failure streak only when it enables
	// a disabled endpoint (SET sees the row's old status); otherwise the
	// streak is the dispatcher's.
	qUpdateWebhookEndpoint = `UPDATE webhook_endpoints SET url = ?, events = ?, description = ?, secret = ?,
		previous_secret = ?, previous_secret_expires_at = ?, updated_at = ?,
		failing_since = CASE WHEN status = 'disabled' AND ? = 'enabled' THEN 0 ELSE failing_since END, status = ?
		WHERE id = ?`
	qDeleteWebhookDeliveries = `DELETE FROM webhook_deliveries WHERE endpoint_id = ?`
	qDeleteWebhookEndpoint   = `DELETE FROM webhook_endpoints WHERE id = ?`
	qDisableWebhookEndpoint  = `UPDATE webhook_endpoints SET status = 'disabled', updated_at = ?
		WHERE id = ? AND status = 'enabled' AND failing_since = ? AND failing_since <> 0`
	qWebhookCursor         = `SELECT seq FROM webhook_cursor WHERE id = 1`
	qMoveWebhookCursor     = `UPDATE webhook_cursor SET seq = ? WHERE id = 1 AND seq = ?`
	qInsertWebhookDelivery = `INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, event_seq, attempt, status,
		response_status, duration_ms, error, next_retry_at, lease_until, created_at, updated_at, seq)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM webhook_deliveries))
		ON CONFLICT (endpoint_id, event_id) DO NOTHING`
	qClaimWebhookDeliveries = `UPDATE webhook_deliveries SET lease_until = ? WHERE id IN (
		SELECT id FROM webhook_deliveries WHERE endpoint_id = ? AND status = 'pending' AND next_retry_at <= ? AND lease_until <= ?
		ORDER BY next_retry_at, seq LIMIT ?)
		RETURNING ` + rowscan.WebhookDeliveryCols
	qRecordWebhookAttempt = `UPDATE webhook_deliveries SET attempt = ?, status = ?, response_status = ?, duration_ms = ?,
		error = ?, next_retry_at = ?, lease_until = 0, updated_at = ? WHERE id = ? AND lease_until = ?`
	qWebhookStreak = `UPDATE webhook_endpoints SET failing_since = CASE WHEN ? THEN 0 WHEN failing_since = 0 THEN ? ELSE failing_since END
		WHERE id = ? RETURNING failing_since`
	qGetWebhookDelivery   = `SELECT ` + rowscan.WebhookDeliveryCols + ` FROM webhook_deliveries WHERE id = ?`
	qListWebhookDelivery  = `SELECT ` + rowscan.WebhookDeliveryCols + ` FROM webhook_deliveries WHERE endpoint_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`
	qRetryWebhookDelivery = `UPDATE webhook_deliveries SET status = 'pending', next_retry_at = ?, updated_at = ? WHERE id = ?
		RETURNING ` + rowscan.WebhookDeliveryCols
)

// writer returns the writer connection, or ErrReadOnly.
func (s *Store) writer(op string) (*sql.DB, error) {
	if s.w == nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, ErrReadOnly)
	}
	return s.w, nil
}

// CreateWebhookEndpoint inserts an endpoint and sets e.Seq.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, e *ledger.WebhookEndpoint) error {
	const op = "create webhook endpoint"
	w, err := s.writer(op)
	if err != nil {
		return err
	}
	err = w.QueryRowContext(ctx, qCreateWebhookEndpoint, e.ID, e.URL, rowscan.WebhookEvents(e), e.Description, e.Status, e.Secret,
		e.PreviousSecret, rowscan.Micros(e.PreviousSecretExpiresAt), rowscan.Micros(e.FailingSince),
		rowscan.Micros(e.CreatedAt), rowscan.Micros(e.UpdatedAt)).Scan(&e.Seq)
	return wrap(op, err, "a webhook endpoint with id "+e.ID+" exists")
}

// GetWebhookEndpoint reads an endpoint.
func (s *Store) GetWebhookEndpoint(ctx context.Context, id string) (*ledger.WebhookEndpoint, error) {
	e, err := rowscan.WebhookEndpoint(s.r.QueryRowContext(ctx, qGetWebhookEndpoint, id))
	if err != nil {
		return nil, wrap("get webhook endpoint "+id, err, "")
	}
	return e, nil
}

// ListWebhookEndpoints pages endpoints newest first.
func (s *Store) ListWebhookEndpoints(ctx context.Context, p ledger.ListWebhookEndpointsParams) ([]ledger.WebhookEndpoint, error) {
	before, limit := cursor(p.BeforeSeq, p.Limit)
	return queryRows(ctx, s.r, "list webhook endpoints", rowscan.WebhookEndpoint, qListWebhookEndpoint, before, p.EnabledOnly, limit)
}

// UpdateWebhookEndpoint writes an endpoint's mutable fields.
func (s *Store) UpdateWebhookEndpoint(ctx context.Context, e *ledger.WebhookEndpoint) error {
	const op = "update webhook endpoint"
	w, err := s.writer(op)
	if err != nil {
		return err
	}
	res, err := w.ExecContext(ctx, qUpdateWebhookEndpoint, e.URL, rowscan.WebhookEvents(e), e.Description, e.Secret,
		e.PreviousSecret, rowscan.Micros(e.PreviousSecretExpiresAt), rowscan.Micros(e.UpdatedAt), e.Status, e.Status, e.ID)
	return wrap(op+" "+e.ID, oneRow(res, err), "")
}

// oneRow turns an Exec that changed no row into sql.ErrNoRows.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return sql.ErrNoRows
	}
	return nil
}

// DeleteWebhookEndpoint deletes an endpoint and its deliveries in one
// transaction.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, id string) error {
	const op = "delete webhook endpoint"
	w, err := s.writer(op)
	if err != nil {
		return err
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err, "")
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, qDeleteWebhookDeliveries, id); err != nil {
		return wrap(op+" "+id, err, "")
	}
	if err := oneRow(tx.ExecContext(ctx, qDeleteWebhookEndpoint, id)); err != nil {
		return wrap(op+" "+id, err, "")
	}
	return wrap(op+" "+id, tx.Commit(), "")
}

// DisableFailingWebhookEndpoint disables an endpoint whose failure streak
// started at failingSince.
func (s *Store) DisableFailingWebhookEndpoint(ctx context.Context, id string, failingSince, at time.Time) (bool, error) {
	const op = "disable webhook endpoint"
	w, err := s.writer(op)
	if err != nil {
		return false, err
	}
	err = oneRow(w.ExecContext(ctx, qDisableWebhookEndpoint, rowscan.Micros(at), id, rowscan.Micros(failingSince)))
	if err == sql.ErrNoRows {
		return false, nil
	}
	return err == nil, wrap(op+" "+id, err, "")
}

// WebhookCursor reads the fan-out cursor.
func (s *Store) WebhookCursor(ctx context.Context) (int64, error) {
	var seq int64
	err := s.r.QueryRowContext(ctx, qWebhookCursor).Scan(&seq)
	return seq, wrap("read webhook cursor", err, "")
}

// FanOutWebhookEvents records deliveries and moves the cursor in one
// transaction.
func (s *Store) FanOutWebhookEvents(ctx context.Context, p ledger.FanOutWebhookParams) (bool, error) {
	const op = "fan out webhook events"
	w, err := s.writer(op)
	if err != nil {
		return false, err
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return false, wrap(op, err, "")
	}
	defer tx.Rollback()
	if err := oneRow(tx.ExecContext(ctx, qMoveWebhookCursor, p.ToSeq, p.FromSeq)); err != nil {
		if err == sql.ErrNoRows {
			return false, nil
		}
		return false, wrap(op, err, "")
	}
	if len(p.Deliveries) > 0 {
		st, err := tx.PrepareContext(ctx, qInsertWebhookDelivery)
		if err != nil {
			return false, wrap(op, err, "")
		}
		defer st.Close()
		for _, d := range p.Deliveries {
			if _, err := st.ExecContext(ctx, d.ID, d.EndpointID, d.EventID, d.EventType, d.EventSeq, d.Attempt, d.Status,
				d.ResponseStatus, d.DurationMS, d.Error, rowscan.Micros(d.NextRetryAt), rowscan.Micros(d.LeaseUntil),
				rowscan.Micros(d.CreatedAt), rowscan.Micros(d.UpdatedAt)); err != nil {
				return false, wrap(op, err, "")
			}
		}
	}
	return true, wrap(op, tx.Commit(), "")
}

// ClaimWebhookDeliveries leases an endpoint's due deliveries.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, p ledger.ClaimWebhookDeliveriesParams) ([]ledger.WebhookDelivery, error) {
	const op = "claim webhook deliveries"
	w, err := s.writer(op)
	if err != nil {
		return nil, err
	}
	now := rowscan.Micros(p.Now)
	return queryRows(ctx, w, op, rowscan.WebhookDelivery, qClaimWebhookDeliveries,
		rowscan.Micros(p.LeaseUntil), p.EndpointID, now, now, p.Limit)

}

// RecordWebhookAttempt writes a claimed delivery's attempt and the
// endpoint's failure streak in one transaction.
func (s *Store) RecordWebhookAttempt(ctx context.Context, a ledger.WebhookAttempt) (bool, time.Time, error) {
	const op = "record webhook attempt"
	w, err := s.writer(op)
	if err != nil {
		return false, time.Time{}, err
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return false, time.Time{}, wrap(op, err, "")
	}
	defer tx.Rollback()
	d := a.Delivery
	err = oneRow(tx.ExecContext(ctx, qRecordWebhookAttempt, d.Attempt, d.Status, d.ResponseStatus, d.DurationMS, d.Error,
		rowscan.Micros(d.NextRetryAt), rowscan.Micros(a.At), d.ID, rowscan.Micros(d.LeaseUntil)))
	if err == sql.ErrNoRows {
		return false, time.Time{}, nil
	}
	if err != nil {
		return false, time.Time{}, wrap(op+" "+d.ID, err, "")
	}
	var since int64
	err = tx.QueryRowContext(ctx, qWebhookStreak, a.Succeeded, rowscan.Micros(a.At), d.EndpointID).Scan(&since)
	if err != nil && err != sql.ErrNoRows { // no row: the endpoint was deleted meanwhile
		return false, time.Time{}, wrap(op+" "+d.ID, err, "")
	}
	if err := tx.Commit(); err != nil {
		return false, time.Time{}, wrap(op, err, "")
	}
	return true, rowscan.FromMicros(since), nil
}

// GetWebhookDelivery reads a delivery.
func (s *Store) GetWebhookDelivery(ctx context.Context, id string) (*ledger.WebhookDelivery, error) {
	d, err := rowscan.WebhookDelivery(s.r.QueryRowContext(ctx, qGetWebhookDelivery, id))
	if err != nil {
		return nil, wrap("get webhook delivery "+id, err, "")
	}
	return d, nil
}

// ListWebhookDeliveries pages an endpoint's deliveries newest first.
func (s *Store) ListWebhookDeliveries(ctx context.Context, p ledger.ListWebhookDeliveriesParams) ([]ledger.WebhookDelivery, error) {
	before, limit := cursor(p.BeforeSeq, p.Limit)
	return queryRows(ctx, s.r, "list webhook deliveries", rowscan.WebhookDelivery, qListWebhookDelivery, p.EndpointID, before, limit)
}

// RetryWebhookDelivery makes a delivery pending and due at at.
func (s *Store) RetryWebhookDelivery(ctx context.Context, id string, at time.Time) (*ledger.WebhookDelivery, error) {
	const op = "retry webhook delivery"
	w, err := s.writer(op)
	if err != nil {
		return nil, err
	}
	d, err := rowscan.WebhookDelivery(w.QueryRowContext(ctx, qRetryWebhookDelivery, rowscan.Micros(at), rowscan.Micros(at), id))
	if err != nil {
		return nil, wrap(op+" "+id, err, "")
	}
	return d, nil
}

// queryRows runs a query on db and scans its rows.
func queryRows[T any](ctx context.Context, db *sql.DB, op string, scan func(rowscan.Scanner) (*T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap(op, err, "")
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		x, err := scan(rows)
		if err != nil {
			return nil, wrap(op, err, "")
		}
		out = append(out, *x)
	}
	return out, wrap(op, rows.Err(), "")
}
