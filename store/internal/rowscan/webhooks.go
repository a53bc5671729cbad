package rowscan

import (
	"encoding/json"
	"fmt"

	"github.com/creditd/creditd/ledger"
)

// WebhookEndpointCols and WebhookDeliveryCols are the columns
// WebhookEndpoint and WebhookDelivery read, in their order.
const (
	WebhookEndpointCols = `id, url, events, description, status, secret, previous_secret, previous_secret_expires_at,
		failing_since, created_at, updated_at, seq`
	WebhookDeliveryCols = `id, endpoint_id, event_id, event_type, event_seq, attempt, status, response_status,
		duration_ms, error, next_retry_at, lease_until, created_at, updated_at, seq`
)

// WebhookEndpoint reads a webhook_endpoints row.
func WebhookEndpoint(sc Scanner) (*ledger.WebhookEndpoint, error) {
	var e ledger.WebhookEndpoint
	var events string
	var prevExp, failing, created, updated int64
	if err := sc.Scan(&e.ID, &e.URL, &events, &e.Description, &e.Status, &e.Secret, &e.PreviousSecret, &prevExp,
		&failing, &created, &updated, &e.Seq); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(events), &e.Events); err != nil {
		return nil, fmt.Errorf("webhook endpoint %s: events: %w", e.ID, err)
	}
	e.PreviousSecretExpiresAt, e.FailingSince = FromMicros(prevExp), FromMicros(failing)
	e.CreatedAt, e.UpdatedAt = FromMicros(created), FromMicros(updated)
	return &e, nil
}

// WebhookEvents is an endpoint's event types as stored: JSON text.
func WebhookEvents(e *ledger.WebhookEndpoint) string {
	b, err := json.Marshal(e.Events)
	if err != nil {
		panic(err) // strings always marshal
	}
	return string(b)
}

// WebhookDelivery reads a webhook_deliveries row.
func WebhookDelivery(sc Scanner) (*ledger.WebhookDelivery, error) {
	var d ledger.WebhookDelivery
	var next, lease, created, updated int64
	if err := sc.Scan(&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.EventSeq, &d.Attempt, &d.Status, &d.ResponseStatus,
		&d.DurationMS, &d.Error, &next, &lease, &created, &updated, &d.Seq); err != nil {
		return nil, err
	}
	d.NextRetryAt, d.LeaseUntil = FromMicros(next), FromMicros(lease)
	d.CreatedAt, d.UpdatedAt = FromMicros(created), FromMicros(updated)
	return &d, nil
}
