package client

import (
	"context"
	"encoding/json"
	"iter"
	"time"
)

// Event is a webhook event as GET /v1/events shows it; its deliveries'
// body is {type, timestamp, data}, and its ID is their webhook-id.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"` // e.g. "grant.created"
	Timestamp time.Time       `json:"timestamp"`
	AccountID string          `json:"account_id"`
	Data      json.RawMessage `json:"data"`
}

// WebhookEndpoint is a registered receiver of events. Secret is set only
// in the answers to its creation and to a rotation.
type WebhookEndpoint struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	Events      []string  `json:"events"` // event types, or ["*"]
	Description string    `json:"description,omitempty"`
	Status      string    `json:"status"` // enabled or disabled
	CreatedAt   time.Time `json:"created_at"`
	Secret      string    `json:"secret,omitempty"`
}

// WebhookEndpointRequest registers an endpoint.
type WebhookEndpointRequest struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description,omitempty"`
}

// WebhookEndpointUpdate changes an endpoint; empty fields are kept.
type WebhookEndpointUpdate struct {
	URL         string   `json:"url,omitempty"`
	Events      []string `json:"events,omitempty"`
	Description *string  `json:"description,omitempty"`
	Status      string   `json:"status,omitempty"` // enabled or disabled
}

// WebhookDelivery is one attempt to deliver an event to an endpoint.
type WebhookDelivery struct {
	ID             string     `json:"id"`
	EndpointID     string     `json:"endpoint_id"`
	EventID        string     `json:"event_id"`
	EventType      string     `json:"event_type"`
	Attempt        int        `json:"attempt"`
	Status         string     `json:"status"` // pending, succeeded or failed
	ResponseStatus *int       `json:"response_status,omitempty"`
	DurationMS     *int64     `json:"duration_ms,omitempty"`
	Error          *string    `json:"error,omitempty"`
	NextRetryAt    *time.Time `json:"next_retry_at,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
}

// Events lists a page of webhook events, oldest first (p.Cursor: a
// previous page's NextCursor).
func (c *Client) Events(ctx context.Context, p ListParams, opts ...Option) (*Page[Event], error) {
	return getPage[Event](ctx, c, query("/v1/events", p, nil), opts)
}

// AllEvents walks the webhook events, oldest first, pageSize at a time.
func (c *Client) AllEvents(ctx context.Context, pageSize int) iter.Seq2[Event, error] {
	return Iterate(ctx, ListParams{Limit: pageSize}, func(ctx context.Context, p ListParams) (*Page[Event], error) {
		return c.Events(ctx, p)
	})
}

// Event gets one webhook event.
func (c *Client) Event(ctx context.Context, id string, opts ...Option) (*Event, error) {
	var e Event
	if _, err := c.do(ctx, "GET", "/v1/events/"+esc(id), nil, &e, opts); err != nil {
		return nil, err
	}
	return &e, nil
}

// CreateWebhookEndpoint registers an endpoint (201); the answer carries
// its secret, shown only here and on rotation.
func (c *Client) CreateWebhookEndpoint(ctx context.Context, req WebhookEndpointRequest, opts ...Option) (*WebhookEndpoint, error) {
	return c.endpoint(ctx, "POST", "/v1/webhook-endpoints", req, opts)
}

// WebhookEndpoints lists a page of the endpoints.
func (c *Client) WebhookEndpoints(ctx context.Context, p ListParams, opts ...Option) (*Page[WebhookEndpoint], error) {
	return getPage[WebhookEndpoint](ctx, c, query("/v1/webhook-endpoints", p, nil), opts)
}

// WebhookEndpoint gets an endpoint.
func (c *Client) WebhookEndpoint(ctx context.Context, id string, opts ...Option) (*WebhookEndpoint, error) {
	return c.endpoint(ctx, "GET", "/v1/webhook-endpoints/"+esc(id), nil, opts)
}

// UpdateWebhookEndpoint changes an endpoint's url, events, description or
// status.
func (c *Client) UpdateWebhookEndpoint(ctx context.Context, id string, req WebhookEndpointUpdate, opts ...Option) (*WebhookEndpoint, error) {
	return c.endpoint(ctx, "PATCH", "/v1/webhook-endpoints/"+esc(id), req, opts)
}

// DeleteWebhookEndpoint deletes an endpoint.
func (c *Client) DeleteWebhookEndpoint(ctx context.Context, id string, opts ...Option) error {
	_, err := c.do(ctx, "DELETE", "/v1/webhook-endpoints/"+esc(id), nil, nil, opts)
	return err
}

// RotateWebhookSecret gives an endpoint a new secret (in the answer); the
// old one keeps signing beside it for 24 hours.
func (c *Client) RotateWebhookSecret(ctx context.Context, id string, opts ...Option) (*WebhookEndpoint, error) {
	return c.endpoint(ctx, "POST", "/v1/webhook-endpoints/"+esc(id)+"/rotate-secret", struct{}{}, opts)
}

// WebhookDeliveries lists a page of an endpoint's delivery attempts,
// newest first.
func (c *Client) WebhookDeliveries(ctx context.Context, endpointID string, p ListParams, opts ...Option) (*Page[WebhookDelivery], error) {
	return getPage[WebhookDelivery](ctx, c, query("/v1/webhook-endpoints/"+esc(endpointID)+"/deliveries", p, nil), opts)
}

// RetryWebhookDelivery delivers a delivery's event again now and answers
// the new delivery.
func (c *Client) RetryWebhookDelivery(ctx context.Context, id string, opts ...Option) (*WebhookDelivery, error) {
	var d WebhookDelivery
	if _, err := c.do(ctx, "POST", "/v1/webhook-deliveries/"+esc(id)+"/retry", struct{}{}, &d, opts); err != nil {
		return nil, err
	}
	return &d, nil
}

func (c *Client) endpoint(ctx context.Context, method, path string, in any, opts []Option) (*WebhookEndpoint, error) {
	var e WebhookEndpoint
	if _, err := c.do(ctx, method, path, in, &e, opts); err != nil {
		return nil, err
	}
	return &e, nil
}
