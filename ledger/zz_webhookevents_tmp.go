package ledger

// TEMPORARY: a copy of the outbox branch's event type, removed when that
// branch is merged.

import (
	"encoding/json"
	"time"
)

type WebhookEvent struct {
	Seq       int64
	ID        string
	Type      string
	AccountID string
	CreatedAt time.Time
	Data      json.RawMessage
}

const (
	EventAccountCreated    = "account.created"
	EventGrantCreated      = "grant.created"
	EventGrantExpired      = "grant.expired"
	EventCreditsLow        = "credits.low"
	EventCreditsDepleted   = "credits.depleted"
	EventCreditsExpiring   = "credits.expiring"
	EventJobSucceeded      = "job.succeeded"
	EventJobFailed         = "job.failed"
	EventJobCancelled      = "job.cancelled"
	EventJobInterrupted    = "job.interrupted"
	EventPurchaseCompleted = "purchase.completed"
	EventPurchaseRefunded  = "purchase.refunded"
	EventHoldExpired       = "hold.expired"
)

var WebhookEventTypes = []string{
	EventAccountCreated, EventGrantCreated, EventGrantExpired, EventCreditsLow, EventCreditsDepleted,
	EventCreditsExpiring, EventJobSucceeded, EventJobFailed, EventJobCancelled, EventJobInterrupted,
	EventPurchaseCompleted, EventPurchaseRefunded, EventHoldExpired,
}
