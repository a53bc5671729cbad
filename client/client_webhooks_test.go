package client_test

// The webhook endpoints and the event log against a stand-in server that
// answers as the document says: each exchange is checked against it
// (checkTransport), so the client's requests and its reading of the
// answers follow the contract. (The live routes are built beside the
// client; when they land, these calls belong in the live-server tests.)

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/client"
)

// webhookStandIn serves /v1/events and /v1/webhook-endpoints from memory.
func webhookStandIn(t *testing.T) string {
	var mu sync.Mutex
	created := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	endpoints := map[string]map[string]any{}
	events := []map[string]any{}
	for i := range 3 {
		events = append(events, map[string]any{"id": fmt.Sprintf("evt_%d", i), "type": "grant.created", "timestamp": created,
			"account_id": "a1", "data": map[string]any{"account_id": "a1", "grant": map[string]any{"id": fmt.Sprintf("grt_%d", i)}}})
	}
	delivery := map[string]any{"id": "wd_1", "endpoint_id": "we_1", "event_id": "evt_0", "event_type": "grant.created", "attempt": 1,
		"status": "failed", "response_status": 500, "duration_ms": 12, "error": "500 from the receiver", "next_retry_at": created.Add(time.Minute), "created_at": created}
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	notFound := func(w http.ResponseWriter) {
		writeJSON(w, 404, map[string]any{"error": map[string]any{"code": "not_found", "message": "no such thing"}})
	}
	public := func(e map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range e {
			if k != "secret" {
				out[k] = v
			}
		}
		return out
	}
	return newFake(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var body map[string]any
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			json.Unmarshal(b, &body)
		}
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
		switch {
		case r.Method == "GET" && r.URL.Path == "/v1/events":
			start := 0
			if after := r.URL.Query().Get("starting_after"); after != "" {
				fmt.Sscanf(after, "evt_%d", &start)
				start++
			}
			end := min(start+2, len(events))
			writeJSON(w, 200, map[string]any{"object": "list", "data": events[start:end], "has_more": end < len(events)})
		case r.Method == "GET" && parts[0] == "events" && len(parts) == 2:
			for _, e := range events {
				if e["id"] == parts[1] {
					writeJSON(w, 200, e)
					return
				}
			}
			notFound(w)
		case r.Method == "POST" && r.URL.Path == "/v1/webhook-endpoints":
			e := map[string]any{"id": fmt.Sprintf("we_%d", len(endpoints)+1), "url": body["url"], "events": body["events"],
				"description": body["description"], "status": "enabled", "created_at": created, "secret": "whsec_one"}
			endpoints[e["id"].(string)] = e
			writeJSON(w, 201, e)
		case r.Method == "GET" && r.URL.Path == "/v1/webhook-endpoints":
			var data []any
			for _, e := range endpoints {
				data = append(data, public(e))
			}
			writeJSON(w, 200, map[string]any{"object": "list", "data": data, "has_more": false})
		case parts[0] == "webhook-endpoints" && len(parts) >= 2:
			e := endpoints[parts[1]]
			if e == nil {
				notFound(w)
				return
			}
			switch {
			case len(parts) == 2 && r.Method == "GET":
				writeJSON(w, 200, public(e))
			case len(parts) == 2 && r.Method == "PATCH":
				for k, v := range body {
					e[k] = v
				}
				writeJSON(w, 200, public(e))
			case len(parts) == 2 && r.Method == "DELETE":
				delete(endpoints, parts[1])
				writeJSON(w, 200, map[string]any{"id": parts[1], "object": "webhook_endpoint", "deleted": true})
			case parts[2] == "rotate-secret":
				e["secret"] = "whsec_two"
				writeJSON(w, 200, e)
			case parts[2] == "deliveries":
				writeJSON(w, 200, map[string]any{"object": "list", "data": []any{delivery}, "has_more": false})
			}
		case r.Method == "POST" && parts[0] == "webhook-deliveries" && parts[1] == "wd_1":
			d := map[string]any{}
			for k, v := range delivery {
				d[k] = v
			}
			// As the server answers: 202, the delivery due again at once.
			d["status"], d["next_retry_at"] = "pending", created
			writeJSON(w, 202, d)
		default:
			notFound(w)
		}
	})
}

func TestClientWebhooksAndEvents(t *testing.T) {
	ctx := context.Background()
	c := client.New(webhookStandIn(t), adminKey)
	c.HTTP = &http.Client{Transport: checkTransport(t, http.DefaultTransport)}

	ep, err := c.CreateWebhookEndpoint(ctx, client.WebhookEndpointRequest{URL: "https://example.com/hook", Events: []string{"job.succeeded", "credits.low"}, Description: "ops"})
	if err != nil || ep.ID != "we_1" || ep.Secret != "whsec_one" || ep.Status != "enabled" || len(ep.Events) != 2 {
		t.Fatalf("create endpoint: %+v %v", ep, err)
	}
	if got, err := c.WebhookEndpoint(ctx, ep.ID); err != nil || got.Secret != "" || got.URL != ep.URL {
		t.Fatalf("get endpoint: %+v %v", got, err)
	}
	if pg, err := c.WebhookEndpoints(ctx, client.ListParams{Limit: 10}); err != nil || len(pg.Data) != 1 {
		t.Fatalf("list endpoints: %+v %v", pg, err)
	}
	up, err := c.UpdateWebhookEndpoint(ctx, ep.ID, client.WebhookEndpointUpdate{Status: "disabled", Events: []string{"*"}})
	if err != nil || up.Status != "disabled" || up.Events[0] != "*" {
		t.Fatalf("update endpoint: %+v %v", up, err)
	}
	rot, err := c.RotateWebhookSecret(ctx, ep.ID)
	if err != nil || rot.Secret != "whsec_two" {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	ds, err := c.WebhookDeliveries(ctx, ep.ID, client.ListParams{})
	if err != nil || len(ds.Data) != 1 || ds.Data[0].ResponseStatus == nil || *ds.Data[0].ResponseStatus != 500 || ds.Data[0].NextRetryAt == nil {
		t.Fatalf("deliveries: %+v %v", ds, err)
	}
	again, err := c.RetryWebhookDelivery(ctx, "wd_1")
	if err != nil || again.ID != "wd_1" || again.Status != "pending" || again.NextRetryAt == nil {
		t.Fatalf("retry: %+v %v", again, err)
	}
	if err := c.DeleteWebhookEndpoint(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.WebhookEndpoint(ctx, ep.ID)
	wantError(t, "deleted endpoint", err, 404, client.CodeNotFound)
}

// TestClientEventsLive reads the events a live server wrote in the
// ledger's commits (account.created, grant.created), page by page, on
// both stores; every answer is checked against the document.
func TestClientEventsLive(t *testing.T) {
	eachStore(t, func(t *testing.T, s *server) {
		ctx := context.Background()
		c := s.admin
		if _, err := c.PutAccount(ctx, "ev-1", client.PutAccountRequest{}); err != nil {
			t.Fatal(err)
		}
		g, err := c.Grant(ctx, "ev-1", client.GrantRequest{Amount: 40, Source: "promo"})
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		var grantEvent string
		for e, err := range c.AllEvents(ctx, 1) {
			if err != nil {
				t.Fatal(err)
			}
			if e.AccountID != "ev-1" {
				continue
			}
			types = append(types, e.Type)
			if e.Type == "grant.created" {
				grantEvent = e.ID
			}
		}
		if !slices.Contains(types, "account.created") || grantEvent == "" {
			t.Fatalf("events of ev-1: %v", types)
		}
		ev, err := c.Event(ctx, grantEvent)
		if err != nil || ev.Type != "grant.created" || ev.AccountID != "ev-1" || !strings.Contains(string(ev.Data), g.ID) {
			t.Fatalf("event: %+v %v", ev, err)
		}
		_, err = c.Event(ctx, "evt_missing")
		wantError(t, "missing event", err, 404, client.CodeNotFound)
	})
}
