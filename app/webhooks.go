package app

import (
	"context"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/webhook"
)

// Outbound webhooks: the endpoints an admin registers (package webhook's
// Dispatcher delivers the events to them) and their deliveries.

// Bounds of a webhook endpoint.
const (
	// WebhookURLBytesMax bounds an endpoint's URL.
	WebhookURLBytesMax = 2048
	// WebhookDescriptionCharsMax bounds an endpoint's description.
	WebhookDescriptionCharsMax = 500
	// WebhookSecretOverlap is how long the previous secret keeps signing,
	// beside the new one, after a rotation.
	WebhookSecretOverlap = 24 * time.Hour
)

// WebhookEndpoint is an endpoint as the API shows it. Secret is set only
// in the answers of creation and rotation.
type WebhookEndpoint struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	Events      []string  `json:"events"`
	Description string    `json:"description"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"created_at"`
	Secret      string    `json:"secret,omitempty"`
}

func endpointView(e *ledger.WebhookEndpoint) WebhookEndpoint {
	return WebhookEndpoint{ID: e.ID, URL: e.URL, Events: e.Events, Description: e.Description, Status: e.Status, CreatedAt: e.CreatedAt}
}

// WebhookDelivery is a delivery as the API shows it: its latest attempt
// (Attempt counts them; ResponseStatus is null when the attempt had no
// answer, NextRetryAt when none is due).
type WebhookDelivery struct {
	ID             string     `json:"id"`
	EndpointID     string     `json:"endpoint_id"`
	EventID        string     `json:"event_id"`
	EventType      string     `json:"event_type"`
	Attempt        int        `json:"attempt"`
	Status         string     `json:"status"`
	ResponseStatus *int       `json:"response_status"`
	DurationMS     int64      `json:"duration_ms"`
	Error          string     `json:"error"`
	NextRetryAt    *time.Time `json:"next_retry_at"`
	CreatedAt      time.Time  `json:"created_at"`
}

func deliveryView(d *ledger.WebhookDelivery) WebhookDelivery {
	v := WebhookDelivery{ID: d.ID, EndpointID: d.EndpointID, EventID: d.EventID, EventType: d.EventType, Attempt: d.Attempt,
		Status: d.Status, DurationMS: d.DurationMS, Error: d.Error, CreatedAt: d.CreatedAt}
	if d.ResponseStatus != 0 {
		st := d.ResponseStatus
		v.ResponseStatus = &st
	}
	if d.Status == ledger.WebhookDeliveryPending && !d.NextRetryAt.IsZero() {
		t := d.NextRetryAt
		v.NextRetryAt = &t
	}
	return v
}

// CheckWebhookURL checks an endpoint URL: an absolute http or https URL
// with a host, at most WebhookURLBytesMax bytes, by the text rule.
// Whether the address it resolves to is public is checked when
// connecting (package webhook); checkWebhookAddress refuses at once what
// is not public without resolving anything.
func CheckWebhookURL(field, s string) error {
	if err := ledger.CheckText(field, s, WebhookURLBytesMax); err != nil {
		return err
	}
	u, err := url.Parse(s)
	if s == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return &ledger.Error{Code: ledger.EInvalid, Message: field + " must be an absolute http or https URL",
			Details: map[string]any{"field": field}}
	}
	return nil
}

// checkWebhookURL checks an endpoint URL (CheckWebhookURL) and, unless
// private addresses are allowed, refuses a host that is an IP address
// that is not public (webhook.PublicAddr) or a name of this machine
// ("localhost", "*.localhost"). Names that resolve to such an address are
// refused when connecting, every time, so that DNS rebinding cannot get
// around it.
func (s *Service) checkWebhookURL(field, raw string) error {
	if err := CheckWebhookURL(field, raw); err != nil {
		return err
	}
	if s.webhooksAllowPrivate {
		return nil
	}
	u, _ := url.Parse(raw) // CheckWebhookURL parsed it
	host := strings.ToLower(u.Hostname())
	ip, err := netip.ParseAddr(host)
	if (err == nil && !webhook.PublicAddr(ip)) || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return &ledger.Error{Code: ledger.EInvalid, Message: field + " must reach a public address: creditd does not send webhooks to " +
			"private, loopback or link-local addresses unless it runs with --webhooks-allow-private-urls",
			Details: map[string]any{"field": field}}
	}
	return nil
}

// checkWebhookEvents checks and normalizes an endpoint's event types:
// known types (ledger.WebhookEventTypes) without repeats, or ["*"].
func checkWebhookEvents(events []string) ([]string, error) {
	bad := func(msg string) error {
		return &ledger.Error{Code: ledger.EInvalid, Message: msg, Details: map[string]any{"field": "events"}}
	}
	if len(events) == 0 {
		return nil, bad(`events must list event types, or be ["*"] for all`)
	}
	var out []string
	for _, e := range events {
		if err := ledger.CheckText("events", e, 64); err != nil {
			return nil, err
		}
		switch {
		case e == "*":
			if len(events) != 1 {
				return nil, bad(`"*" stands alone in events`)
			}
		case !slices.Contains(ledger.WebhookEventTypes, e):
			return nil, bad("unknown event type " + strconvQuote(e) + "; the types are " + strings.Join(ledger.WebhookEventTypes, ", "))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func strconvQuote(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}

func checkWebhookDescription(s string) error {
	if err := ledger.CheckText("description", s, 0); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(s); n > WebhookDescriptionCharsMax {
		return &ledger.Error{Code: ledger.EInvalid, Message: "description must be at most 500 characters",
			Details: map[string]any{"field": "description", "characters": n, "characters_max": WebhookDescriptionCharsMax}}
	}
	return nil
}

// CreateWebhookEndpointRequest registers an endpoint.
type CreateWebhookEndpointRequest struct {
	URL         string
	Events      []string
	Description string
}

// CreateWebhookEndpoint registers an enabled endpoint with a new secret,
// which the answer shows (and no later read does).
func (s *Service) CreateWebhookEndpoint(ctx context.Context, r CreateWebhookEndpointRequest) (WebhookEndpoint, error) {
	if err := s.checkWebhookURL("url", r.URL); err != nil {
		return WebhookEndpoint{}, err
	}
	events, err := checkWebhookEvents(r.Events)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	if err := checkWebhookDescription(r.Description); err != nil {
		return WebhookEndpoint{}, err
	}
	now := s.eng.Now()
	e := &ledger.WebhookEndpoint{ID: ledger.NewID("we"), URL: r.URL, Events: events, Description: r.Description,
		Status: ledger.WebhookEndpointEnabled, Secret: webhook.NewSecret(), CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateWebhookEndpoint(ctx, e); err != nil {
		return WebhookEndpoint{}, err
	}
	v := endpointView(e)
	v.Secret = e.Secret
	return v, nil
}

// getWebhookEndpoint reads an endpoint; a missing one is not_found.
func (s *Service) getWebhookEndpoint(ctx context.Context, id string) (*ledger.WebhookEndpoint, error) {
	e, err := s.store.GetWebhookEndpoint(ctx, id)
	if ledger.ErrorCode(err) == ledger.ENotFound {
		return nil, ledger.Errorf(ledger.ENotFound, "no webhook endpoint %q", id)
	}
	return e, err
}

// WebhookEndpoint reads an endpoint (without its secret).
func (s *Service) WebhookEndpoint(ctx context.Context, id string) (WebhookEndpoint, error) {
	e, err := s.getWebhookEndpoint(ctx, id)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	return endpointView(e), nil
}

// pageLimit is a page request's limit (0: page_size_default).
func (s *Service) pageLimit(limit int) (int, error) {
	if limit == 0 {
		limit = s.cfg.Limits.PageSizeDefault
	}
	if limit < 1 || limit > s.cfg.Limits.PageSizeMax {
		return 0, ledger.Errorf(ledger.EInvalid, "limit must be between 1 and %d", s.cfg.Limits.PageSizeMax)
	}
	return limit, nil
}

// ListWebhookEndpoints pages the endpoints, newest first.
func (s *Service) ListWebhookEndpoints(ctx context.Context, r PageRequest) (Page[WebhookEndpoint], error) {
	limit, err := s.pageLimit(r.Limit)
	if err != nil {
		return Page[WebhookEndpoint]{}, err
	}
	es, err := s.store.ListWebhookEndpoints(ctx, ledger.ListWebhookEndpointsParams{BeforeSeq: r.Cursor, Limit: limit + 1})
	if err != nil {
		return Page[WebhookEndpoint]{}, err
	}
	return pageOf(es, limit, func(e *ledger.WebhookEndpoint) int64 { return e.Seq }, endpointView), nil
}

// pageOf cuts rows read with limit+1 to a page of at most limit views; the
// extra row, when there is one, says the page has a next (the cursor is
// the last row kept's seq).
func pageOf[R, V any](rows []R, limit int, seq func(*R) int64, view func(*R) V) Page[V] {
	var pg Page[V]
	if len(rows) > limit {
		rows, pg.Next = rows[:limit], seq(&rows[limit-1])
	}
	pg.Items = make([]V, len(rows))
	for i := range rows {
		pg.Items[i] = view(&rows[i])
	}
	return pg
}

// UpdateWebhookEndpointRequest changes the fields that are not nil.
type UpdateWebhookEndpointRequest struct {
	ID          string
	URL         *string
	Events      []string // nil: unchanged
	Description *string
	Status      *string
}

// UpdateWebhookEndpoint changes an endpoint's URL, events, description or
// status. Enabling it again ends its failure streak; deliveries still
// pending are then attempted (while disabled, it is sent nothing and
// events are not recorded for it).
func (s *Service) UpdateWebhookEndpoint(ctx context.Context, r UpdateWebhookEndpointRequest) (WebhookEndpoint, error) {
	e, err := s.getWebhookEndpoint(ctx, r.ID)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	if r.URL != nil {
		if err := s.checkWebhookURL("url", *r.URL); err != nil {
			return WebhookEndpoint{}, err
		}
		e.URL = *r.URL
	}
	if r.Events != nil {
		if e.Events, err = checkWebhookEvents(r.Events); err != nil {
			return WebhookEndpoint{}, err
		}
	}
	if r.Description != nil {
		if err := checkWebhookDescription(*r.Description); err != nil {
			return WebhookEndpoint{}, err
		}
		e.Description = *r.Description
	}
	if r.Status != nil {
		switch *r.Status {
		case ledger.WebhookEndpointEnabled, ledger.WebhookEndpointDisabled:
		default:
			return WebhookEndpoint{}, &ledger.Error{Code: ledger.EInvalid, Message: `status must be "enabled" or "disabled"`,
				Details: map[string]any{"field": "status"}}
		}
		e.Status = *r.Status
	}
	e.UpdatedAt = s.eng.Now()
	if err := s.store.UpdateWebhookEndpoint(ctx, e); err != nil {
		return WebhookEndpoint{}, err
	}
	return endpointView(e), nil
}

// DeleteWebhookEndpoint deletes an endpoint and its deliveries.
func (s *Service) DeleteWebhookEndpoint(ctx context.Context, id string) error {
	err := s.store.DeleteWebhookEndpoint(ctx, id)
	if ledger.ErrorCode(err) == ledger.ENotFound {
		return ledger.Errorf(ledger.ENotFound, "no webhook endpoint %q", id)
	}
	return err
}

// RotateWebhookSecret gives an endpoint a new secret, which the answer
// shows. The secret it replaces keeps signing, beside the new one, for
// WebhookSecretOverlap (a secret older than that signs no more).
func (s *Service) RotateWebhookSecret(ctx context.Context, id string) (WebhookEndpoint, error) {
	e, err := s.getWebhookEndpoint(ctx, id)
	if err != nil {
		return WebhookEndpoint{}, err
	}
	now := s.eng.Now()
	e.PreviousSecret, e.PreviousSecretExpiresAt = e.Secret, now.Add(WebhookSecretOverlap)
	e.Secret, e.UpdatedAt = webhook.NewSecret(), now
	if err := s.store.UpdateWebhookEndpoint(ctx, e); err != nil {
		return WebhookEndpoint{}, err
	}
	v := endpointView(e)
	v.Secret = e.Secret
	return v, nil
}

// ListWebhookDeliveries pages an endpoint's deliveries, newest first
// (r.AccountID is the endpoint's id).
func (s *Service) ListWebhookDeliveries(ctx context.Context, r PageRequest) (Page[WebhookDelivery], error) {
	limit, err := s.pageLimit(r.Limit)
	if err != nil {
		return Page[WebhookDelivery]{}, err
	}
	if _, err := s.getWebhookEndpoint(ctx, r.AccountID); err != nil {
		return Page[WebhookDelivery]{}, err
	}
	ds, err := s.store.ListWebhookDeliveries(ctx, ledger.ListWebhookDeliveriesParams{EndpointID: r.AccountID, BeforeSeq: r.Cursor, Limit: limit + 1})
	if err != nil {
		return Page[WebhookDelivery]{}, err
	}
	return pageOf(ds, limit, func(d *ledger.WebhookDelivery) int64 { return d.Seq }, deliveryView), nil
}

// RetryWebhookDelivery makes a delivery due at once, whatever its status
// (a succeeded one is sent again, with the same webhook-id). Its endpoint
// must be enabled.
func (s *Service) RetryWebhookDelivery(ctx context.Context, id string) (WebhookDelivery, error) {
	d, err := s.store.GetWebhookDelivery(ctx, id)
	if ledger.ErrorCode(err) == ledger.ENotFound {
		return WebhookDelivery{}, ledger.Errorf(ledger.ENotFound, "no webhook delivery %q", id)
	}
	if err != nil {
		return WebhookDelivery{}, err
	}
	e, err := s.getWebhookEndpoint(ctx, d.EndpointID)
	if err != nil {
		return WebhookDelivery{}, err
	}
	if e.Status != ledger.WebhookEndpointEnabled {
		return WebhookDelivery{}, ledger.Errorf(ledger.EConflict, "webhook endpoint %s is disabled; enable it first", e.ID)
	}
	d, err = s.store.RetryWebhookDelivery(ctx, id, s.eng.Now())
	if err != nil {
		return WebhookDelivery{}, err
	}
	return deliveryView(d), nil
}
