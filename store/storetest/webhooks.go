package storetest

import (
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

func newEndpoint(url string, events ...string) *ledger.WebhookEndpoint {
	return &ledger.WebhookEndpoint{ID: ledger.NewID("we"), URL: url, Events: events, Status: ledger.WebhookEndpointEnabled,
		Secret: "whsec_c2VjcmV0", CreatedAt: t0, UpdatedAt: t0}
}

func newDelivery(endpoint, event string, seq int64, due time.Time) *ledger.WebhookDelivery {
	return &ledger.WebhookDelivery{ID: ledger.NewID("wd"), EndpointID: endpoint, EventID: event, EventType: ledger.EventGrantCreated,
		EventSeq: seq, Status: ledger.WebhookDeliveryPending, NextRetryAt: due, CreatedAt: t0, UpdatedAt: t0}
}

// testWebhooks: endpoints round-trip and page newest first; a fan-out
// moves the cursor by compare-and-set and records a delivery once; a
// claim leases due deliveries from every other claim until the lease
// lapses; an attempt is recorded only under its own lease and keeps the
// endpoint's failure streak; deleting an endpoint deletes its deliveries.
func testWebhooks(t *testing.T, s ledger.Store) {
	a, b := newEndpoint("https://a.example/h", "*"), newEndpoint("https://b.example/h", ledger.EventJobSucceeded, ledger.EventCreditsLow)
	b.Description = "two types"
	for _, e := range []*ledger.WebhookEndpoint{a, b} {
		check(t, "CreateWebhookEndpoint", s.CreateWebhookEndpoint(ctx(t), e))
	}
	if a.Seq <= 0 || b.Seq <= a.Seq {
		t.Fatalf("seqs %d %d", a.Seq, b.Seq)
	}
	wantCode(t, "create twice", s.CreateWebhookEndpoint(ctx(t), a), ledger.EConflict)
	got, err := s.GetWebhookEndpoint(ctx(t), b.ID)
	check(t, "GetWebhookEndpoint", err)
	same(t, "endpoint", *got, *b)
	_, err = s.GetWebhookEndpoint(ctx(t), "we_none")
	wantCode(t, "get missing", err, ledger.ENotFound)
	list, err := s.ListWebhookEndpoints(ctx(t), ledger.ListWebhookEndpointsParams{Limit: 1})
	check(t, "ListWebhookEndpoints", err)
	if len(list) != 1 || list[0].ID != b.ID {
		t.Fatalf("page 1: %+v", list)
	}
	list, err = s.ListWebhookEndpoints(ctx(t), ledger.ListWebhookEndpointsParams{BeforeSeq: b.Seq})
	check(t, "ListWebhookEndpoints", err)
	if len(list) != 1 || list[0].ID != a.ID {
		t.Fatalf("page 2: %+v", list)
	}

	// Fan-out: compare-and-set on the cursor; a delivery once per event.
	from, err := s.WebhookCursor(ctx(t))
	check(t, "WebhookCursor", err)
	d1 := newDelivery(a.ID, "evt_1", from+1, t0)
	d2 := newDelivery(b.ID, "evt_1", from+1, t0)
	moved, err := s.FanOutWebhookEvents(ctx(t), ledger.FanOutWebhookParams{FromSeq: from, ToSeq: from + 1, Deliveries: []*ledger.WebhookDelivery{d1, d2}})
	if err != nil || !moved {
		t.Fatalf("fan out: %v %v", moved, err)
	}
	moved, err = s.FanOutWebhookEvents(ctx(t), ledger.FanOutWebhookParams{FromSeq: from, ToSeq: from + 1,
		Deliveries: []*ledger.WebhookDelivery{newDelivery(a.ID, "evt_2", from+1, t0)}})
	if err != nil || moved {
		t.Fatalf("a stale fan-out moved the cursor: %v %v", moved, err)
	}
	dup := newDelivery(a.ID, "evt_1", from+1, t0)
	moved, err = s.FanOutWebhookEvents(ctx(t), ledger.FanOutWebhookParams{FromSeq: from + 1, ToSeq: from + 2, Deliveries: []*ledger.WebhookDelivery{dup}})
	if err != nil || !moved {
		t.Fatalf("fan out: %v %v", moved, err)
	}
	if c, err := s.WebhookCursor(ctx(t)); err != nil || c != from+2 {
		t.Fatalf("cursor %d %v", c, err)
	}
	ds, err := s.ListWebhookDeliveries(ctx(t), ledger.ListWebhookDeliveriesParams{EndpointID: a.ID})
	check(t, "ListWebhookDeliveries", err)
	if len(ds) != 1 || ds[0].ID != d1.ID {
		t.Fatalf("deliveries of a: %+v", ds)
	}

	// Claims lease: a second claim finds nothing until the lease lapses.
	lease := at(time.Minute)
	claimed, err := s.ClaimWebhookDeliveries(ctx(t), ledger.ClaimWebhookDeliveriesParams{EndpointID: a.ID, Now: t0, LeaseUntil: lease, Limit: 5})
	check(t, "ClaimWebhookDeliveries", err)
	if len(claimed) != 1 || claimed[0].ID != d1.ID || !claimed[0].LeaseUntil.Equal(lease) {
		t.Fatalf("claimed %+v", claimed)
	}
	again, err := s.ClaimWebhookDeliveries(ctx(t), ledger.ClaimWebhookDeliveriesParams{EndpointID: a.ID, Now: at(time.Second), LeaseUntil: at(2 * time.Minute), Limit: 5})
	check(t, "ClaimWebhookDeliveries", err)
	if len(again) != 0 {
		t.Fatalf("claimed under a running lease: %+v", again)
	}
	stale := claimed[0]
	again, err = s.ClaimWebhookDeliveries(ctx(t), ledger.ClaimWebhookDeliveriesParams{EndpointID: a.ID, Now: lease, LeaseUntil: at(3 * time.Minute), Limit: 5})
	check(t, "ClaimWebhookDeliveries", err)
	if len(again) != 1 {
		t.Fatalf("not claimed after the lease lapsed: %+v", again)
	}
	// The first claim's attempt is not recorded: its lease was taken over.
	stale.Attempt, stale.Status, stale.ResponseStatus = 1, ledger.WebhookDeliverySucceeded, 200
	if ok, _, err := s.RecordWebhookAttempt(ctx(t), ledger.WebhookAttempt{Delivery: &stale, Succeeded: true, At: at(time.Second)}); err != nil || ok {
		t.Fatalf("recorded under a lapsed lease: %v %v", ok, err)
	}
	cur := again[0]
	cur.Attempt, cur.Status, cur.ResponseStatus, cur.DurationMS, cur.Error, cur.NextRetryAt = 1, ledger.WebhookDeliveryPending, 500, 12, "HTTP 500: é", at(time.Hour)
	ok, since, err := s.RecordWebhookAttempt(ctx(t), ledger.WebhookAttempt{Delivery: &cur, At: at(2 * time.Minute)})
	if err != nil || !ok || !since.Equal(at(2*time.Minute)) {
		t.Fatalf("record failure: %v %v %v", ok, since, err)
	}
	got1, err := s.GetWebhookDelivery(ctx(t), d1.ID)
	check(t, "GetWebhookDelivery", err)
	if got1.Attempt != 1 || got1.ResponseStatus != 500 || got1.Error != "HTTP 500: é" || !got1.NextRetryAt.Equal(at(time.Hour)) ||
		!got1.LeaseUntil.IsZero() || got1.DurationMS != 12 {
		t.Fatalf("recorded %+v", got1)
	}
	// A later failure keeps the streak's start; disabling needs that start.
	if on, err := s.DisableFailingWebhookEndpoint(ctx(t), a.ID, at(time.Hour), at(4*time.Minute)); err != nil || on {
		t.Fatalf("disabled with another streak start: %v %v", on, err)
	}
	// Updating leaves the streak alone; so does disabling by hand.
	a.Description, a.Status, a.UpdatedAt = "changed", ledger.WebhookEndpointEnabled, at(3*time.Minute)
	check(t, "UpdateWebhookEndpoint", s.UpdateWebhookEndpoint(ctx(t), a))
	if e, err := s.GetWebhookEndpoint(ctx(t), a.ID); err != nil || !e.FailingSince.Equal(at(2*time.Minute)) || e.Description != "changed" {
		t.Fatalf("after update: %+v %v", e, err)
	}
	if on, err := s.DisableFailingWebhookEndpoint(ctx(t), a.ID, at(2*time.Minute), at(5*time.Minute)); err != nil || !on {
		t.Fatalf("not disabled: %v %v", on, err)
	}
	if on, err := s.DisableFailingWebhookEndpoint(ctx(t), a.ID, at(2*time.Minute), at(5*time.Minute)); err != nil || on {
		t.Fatalf("disabled twice: %v %v", on, err)
	}
	enabled, err := s.ListWebhookEndpoints(ctx(t), ledger.ListWebhookEndpointsParams{EnabledOnly: true})
	check(t, "ListWebhookEndpoints", err)
	if len(enabled) != 1 || enabled[0].ID != b.ID {
		t.Fatalf("enabled: %+v", enabled)
	}
	// Enabling it again ends the streak.
	a.Status = ledger.WebhookEndpointEnabled
	check(t, "UpdateWebhookEndpoint", s.UpdateWebhookEndpoint(ctx(t), a))
	if e, err := s.GetWebhookEndpoint(ctx(t), a.ID); err != nil || !e.FailingSince.IsZero() || e.Status != ledger.WebhookEndpointEnabled {
		t.Fatalf("re-enabled: %+v %v", e, err)
	}
	r, err := s.RetryWebhookDelivery(ctx(t), d1.ID, at(6*time.Minute))
	if err != nil || r.Status != ledger.WebhookDeliveryPending || !r.NextRetryAt.Equal(at(6*time.Minute)) {
		t.Fatalf("retry: %+v %v", r, err)
	}
	_, err = s.RetryWebhookDelivery(ctx(t), "wd_none", t0)
	wantCode(t, "retry missing", err, ledger.ENotFound)
	a.ID = "we_none"
	wantCode(t, "update missing", s.UpdateWebhookEndpoint(ctx(t), a), ledger.ENotFound)

	// Deleting an endpoint deletes its deliveries.
	check(t, "DeleteWebhookEndpoint", s.DeleteWebhookEndpoint(ctx(t), b.ID))
	_, err = s.GetWebhookDelivery(ctx(t), d2.ID)
	wantCode(t, "delivery of a deleted endpoint", err, ledger.ENotFound)
	wantCode(t, "delete twice", s.DeleteWebhookEndpoint(ctx(t), b.ID), ledger.ENotFound)
}
