package ledger

import (
	"encoding/json"
	"time"
)

// WebhookEvent is one event of the outbox: written by the engine in the
// same store transaction as the change it announces (no event without its
// change, no change without its event), read by the webhook dispatcher in
// Seq order.
type WebhookEvent struct {
	// Seq is store-assigned, strictly increasing in commit order: a reader
	// that has read every event up to Seq n never later finds a committed
	// event with a smaller Seq (SQLite: batches commit one at a time;
	// PostgreSQL: event-writing transactions take a transaction-level
	// advisory lock before they draw their seqs and hold it until commit).
	Seq int64
	// ID is "evt_" + NewID's body: the webhook-id receivers deduplicate by.
	ID        string
	Type      string
	AccountID string
	// CreatedAt is when it happened; for time-driven events (expiries,
	// expiry notices) the time they were due, not when they were written.
	CreatedAt time.Time
	// Data is {"account_id": …, "<object>": {…}} with the objects in the
	// API's own JSON shapes.
	Data json.RawMessage
}

// The event types.
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

// WebhookEventTypes lists every event type.
var WebhookEventTypes = []string{
	EventAccountCreated, EventGrantCreated, EventGrantExpired, EventCreditsLow, EventCreditsDepleted,
	EventCreditsExpiring, EventJobSucceeded, EventJobFailed, EventJobCancelled, EventJobInterrupted,
	EventPurchaseCompleted, EventPurchaseRefunded, EventHoldExpired,
}

// Account.Alerts bits: the balance alerts an account has already been
// sent, and that stay quiet until a grant re-arms them.
const (
	AlertLow      int64 = 1 << iota // credits.low sent
	AlertDepleted                   // credits.depleted sent
)

// Grant.Notices bits: the once-per-bucket events a grant has had.
const (
	NoticeExpiring int64 = 1 << iota // credits.expiring sent
	NoticeRefunded                   // purchase.refunded sent
)

// NewEventID returns a new event id, "evt_…".
func NewEventID() string { return NewID("evt") }

// MarshalJSON renders an event as the API shows it: {"id", "type",
// "timestamp", "account_id", "data"}.
func (e WebhookEvent) MarshalJSON() ([]byte, error) {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	return json.Marshal(struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		Timestamp time.Time       `json:"timestamp"`
		AccountID string          `json:"account_id"`
		Data      json.RawMessage `json:"data"`
	}{e.ID, e.Type, e.CreatedAt.UTC(), e.AccountID, data})
}

// LowBalanceThresholdMax bounds an account's low_balance_threshold.
const LowBalanceThresholdMax = 1_000_000_000_000
