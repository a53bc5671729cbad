package ledger

import (
	"context"
	"time"
)

// Outbound webhooks: endpoints an admin registers, and the deliveries of
// events (WebhookEvent) to them. The store keeps both; package webhook
// signs and sends, and the application layer manages endpoints.

// Statuses of a webhook endpoint.
const (
	WebhookEndpointEnabled  = "enabled"
	WebhookEndpointDisabled = "disabled"
)

// Statuses of a webhook delivery: pending until an attempt succeeds
// (succeeded) or its retries are used up (failed).
const (
	WebhookDeliveryPending   = "pending"
	WebhookDeliverySucceeded = "succeeded"
	WebhookDeliveryFailed    = "failed"
)

// WebhookEndpoint is a URL that receives events of the listed types ("*":
// every type), signed with Secret. After a rotation, PreviousSecret signs
// too (beside Secret) until PreviousSecretExpiresAt.
type WebhookEndpoint struct {
	ID          string
	URL         string
	Events      []string
	Description string
	Status      string
	Secret      string
	// PreviousSecret is the secret before the last rotation ("" when
	// none), valid until PreviousSecretExpiresAt.
	PreviousSecret          string
	PreviousSecretExpiresAt time.Time
	// FailingSince is the time of the first failed attempt since the last
	// successful one (zero when the last attempt succeeded, or none
	// failed).
	FailingSince time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// Seq orders endpoints for pagination (assigned by the store).
	Seq int64
}

// Wants reports whether the endpoint subscribes to events of type typ.
func (e *WebhookEndpoint) Wants(typ string) bool {
	for _, t := range e.Events {
		if t == "*" || t == typ {
			return true
		}
	}
	return false
}

// WebhookDelivery is one event's delivery to one endpoint, with the
// outcome of its latest attempt. Every attempt sends the same event id
// (the webhook-id header), so receivers deduplicate.
type WebhookDelivery struct {
	ID         string
	EndpointID string
	EventID    string
	EventType  string
	// EventSeq is the event's WebhookEvent.Seq.
	EventSeq int64
	// Attempt counts the attempts made so far.
	Attempt int
	Status  string
	// ResponseStatus is the latest attempt's HTTP status (0: none, the
	// request failed before an answer).
	ResponseStatus int
	DurationMS     int64
	Error          string
	// NextRetryAt is when the next attempt is due (zero when the delivery
	// is not pending).
	NextRetryAt time.Time
	// LeaseUntil is when a node's claim on the delivery lapses (zero: not
	// claimed). A claimed delivery is sent by the node that claimed it.
	LeaseUntil time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// Seq orders deliveries for pagination (assigned by the store).
	Seq int64
}

// ListWebhookEndpointsParams pages endpoints newest first; BeforeSeq 0
// starts at the newest, Limit <= 0 lists all. EnabledOnly leaves the
// disabled ones out.
type ListWebhookEndpointsParams struct {
	BeforeSeq   int64
	Limit       int
	EnabledOnly bool
}

// ListWebhookDeliveriesParams pages an endpoint's deliveries newest first.
type ListWebhookDeliveriesParams struct {
	EndpointID string
	BeforeSeq  int64
	Limit      int
}

// FanOutWebhookParams records the deliveries of the events after
// FromSeq up to ToSeq and moves the fan-out cursor from FromSeq to ToSeq,
// atomically. Deliveries already recorded (the same endpoint and event)
// are kept as they are.
type FanOutWebhookParams struct {
	FromSeq    int64
	ToSeq      int64
	Deliveries []*WebhookDelivery
}

// ClaimWebhookDeliveriesParams claims an endpoint's due deliveries:
// pending, NextRetryAt at or before Now, not claimed by a lease that is
// still running at Now; at most Limit, oldest due first. Each is leased
// until LeaseUntil.
type ClaimWebhookDeliveriesParams struct {
	EndpointID string
	Now        time.Time
	LeaseUntil time.Time
	Limit      int
}

// WebhookAttempt is the outcome of one attempt of a claimed delivery
// (Delivery carries its new Attempt, Status, ResponseStatus, DurationMS,
// Error and NextRetryAt; LeaseUntil is the claim's). Succeeded tells the
// endpoint's failure streak to end; otherwise it starts at At when none
// is running.
type WebhookAttempt struct {
	Delivery  *WebhookDelivery
	Succeeded bool
	At        time.Time
}

// WebhookStore keeps webhook endpoints and deliveries. Each method is its
// own durable transaction.
type WebhookStore interface {
	// CreateWebhookEndpoint inserts an endpoint and sets e.Seq.
	CreateWebhookEndpoint(ctx context.Context, e *WebhookEndpoint) error
	GetWebhookEndpoint(ctx context.Context, id string) (*WebhookEndpoint, error)
	ListWebhookEndpoints(ctx context.Context, p ListWebhookEndpointsParams) ([]WebhookEndpoint, error)
	// UpdateWebhookEndpoint writes an endpoint's URL, Events,
	// Description, Status, Secret, PreviousSecret,
	// PreviousSecretExpiresAt and UpdatedAt; a missing id is
	// ErrNotFound. It leaves FailingSince (the dispatcher's) alone, but
	// for ending the streak when it enables a disabled endpoint.
	UpdateWebhookEndpoint(ctx context.Context, e *WebhookEndpoint) error
	// DeleteWebhookEndpoint deletes an endpoint and its deliveries.
	DeleteWebhookEndpoint(ctx context.Context, id string) error
	// DisableFailingWebhookEndpoint disables an enabled endpoint whose
	// failure streak started at failingSince, and reports whether it did
	// (false: it changed meanwhile, e.g. another node disabled it or an
	// attempt succeeded).
	DisableFailingWebhookEndpoint(ctx context.Context, id string, failingSince, at time.Time) (bool, error)

	// WebhookCursor reads the fan-out cursor: the seq of the last event
	// whose deliveries are recorded (0 at first).
	WebhookCursor(ctx context.Context) (int64, error)
	// FanOutWebhookEvents records deliveries and moves the cursor (see
	// FanOutWebhookParams); it reports false, recording nothing, when the
	// cursor is no longer at p.FromSeq (another node moved it).
	FanOutWebhookEvents(ctx context.Context, p FanOutWebhookParams) (bool, error)
	// ClaimWebhookDeliveries leases due deliveries of an endpoint, so
	// that no other node sends them meanwhile (see
	// ClaimWebhookDeliveriesParams).
	ClaimWebhookDeliveries(ctx context.Context, p ClaimWebhookDeliveriesParams) ([]WebhookDelivery, error)
	// RecordWebhookAttempt writes a claimed delivery's attempt and ends
	// its lease, if the lease is still the claim's (false: another node
	// claimed it since, and nothing is written), and updates the
	// endpoint's failure streak; it returns the endpoint's FailingSince
	// afterwards.
	RecordWebhookAttempt(ctx context.Context, a WebhookAttempt) (recorded bool, failingSince time.Time, err error)
	GetWebhookDelivery(ctx context.Context, id string) (*WebhookDelivery, error)
	ListWebhookDeliveries(ctx context.Context, p ListWebhookDeliveriesParams) ([]WebhookDelivery, error)
	// RetryWebhookDelivery makes a delivery pending and due at at.
	RetryWebhookDelivery(ctx context.Context, id string, at time.Time) (*WebhookDelivery, error)
}
