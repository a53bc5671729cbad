package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/internal/webhooktest"
)

// TestWebhooksThreeNodes: three creditd processes on one PostgreSQL
// database, each with its dispatcher, take writes at once; every event
// reaches each endpoint once, signed so that the standardwebhooks npm
// package verifies it.
func TestWebhooksThreeNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	var nodes []*server
	for range 3 {
		nodes = append(nodes, launch(t, []string{"--db", dsn, "--builtin-worker", "0"},
			"CREDITD_SESSION_SECRET=e2e-shared-secret", "CREDITD_WEBHOOKS_ALLOW_PRIVATE_URLS=true"))
	}
	all, grants := webhooktest.NewReceiver(t), webhooktest.NewReceiver(t)
	secret := nodes[0].admin(201, "POST", "/v1/webhook-endpoints", map[string]any{"url": all.URL, "events": []string{"*"}}).str("secret")
	nodes[1].admin(201, "POST", "/v1/webhook-endpoints", map[string]any{"url": grants.URL, "events": []string{"grant.created"}})

	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 5 {
				id := fmt.Sprintf("wh-%d-%d", i, k)
				n.admin(201, "PUT", "/v1/accounts/"+id, map[string]any{})
				n.admin(201, "POST", "/v1/accounts/"+id+"/grants", map[string]any{"amount": 10, "source": "promo"})
			}
		}()
	}
	wg.Wait()

	// Every event of the store, from its own list.
	type event struct{ ID, Type string }
	var events []event
	for cursor := ""; ; {
		r := nodes[2].admin(200, "GET", "/v1/events?limit=100"+cursor, nil)
		for _, e := range r.body["data"].([]any) {
			m := e.(map[string]any)
			events = append(events, event{m["id"].(string), m["type"].(string)})
		}
		if r.body["has_more"] != true {
			break
		}
		cursor = "&cursor=" + r.str("next_cursor")
	}
	wantGrants := 0
	for _, e := range events {
		if e.Type == "grant.created" {
			wantGrants++
		}
	}
	if len(events) < 30 || wantGrants < 30 {
		t.Fatalf("%d events, %d grants: want at least 30 of each", len(events), wantGrants)
	}
	// The dispatchers poll every second: wait until both receivers have
	// every event they want.
	deadline := time.Now().Add(60 * time.Second)
	for len(distinct(all)) < len(events) || len(distinct(grants)) < wantGrants {
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: %d of %d events, %d of %d grants", len(distinct(all)), len(events), len(distinct(grants)), wantGrants)
		}
		<-time.After(50 * time.Millisecond)
	}
	ca, cg := distinct(all), distinct(grants)
	for _, e := range events {
		if ca[e.ID] != 1 {
			t.Errorf("%s (%s) reached the * endpoint %d times", e.ID, e.Type, ca[e.ID])
		}
		if want := map[bool]int{true: 1}[e.Type == "grant.created"]; cg[e.ID] != want {
			t.Errorf("%s (%s) reached the grant endpoint %d times, want %d", e.ID, e.Type, cg[e.ID], want)
		}
	}
	msgs := all.Messages()
	for i, r := range webhooktest.VerifyNode(t, secret, msgs, time.Now()) {
		if !r.OK {
			t.Errorf("standardwebhooks refused %s: %s", msgs[i].ID, r.Error)
		}
	}
}

// distinct counts a receiver's messages by webhook-id.
func distinct(r *webhooktest.Receiver) map[string]int {
	c := map[string]int{}
	for _, m := range r.Messages() {
		c[m.ID]++
	}
	return c
}
