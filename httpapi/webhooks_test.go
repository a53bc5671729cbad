package httpapi_test

import (
	"context"
	"fmt"
	"github.com/creditd/creditd/app"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/internal/webhooktest"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/webhook"
)

// dispatch runs a webhook dispatcher over the env's store once (receivers
// are on loopback: private addresses allowed).
func (e *env) dispatch(d *webhook.Dispatcher) {
	e.t.Helper()
	if err := d.RunOnce(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) dispatcher() *webhook.Dispatcher {
	return webhook.New(webhook.Options{Store: e.store, Clock: e.clock, AllowPrivate: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func TestWebhookEndpoints(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		r := e.must(201, "POST", "/v1/webhook-endpoints", map[string]any{"url": "https://example.com/hooks", "events": []string{"job.succeeded", "credits.low"},
			"description": "billing backend"})
		id, secret := r.str("id"), r.str("secret")
		if !strings.HasPrefix(id, "we_") || !strings.HasPrefix(secret, "whsec_") || r.str("status") != "enabled" ||
			r.str("url") != "https://example.com/hooks" || r.str("description") != "billing backend" || r.str("created_at") != "2026-06-15T10:00:00Z" {
			t.Fatalf("created: %s", r.raw)
		}
		got := e.must(200, "GET", "/v1/webhook-endpoints/"+id, nil)
		if _, shown := got.body["secret"]; shown || got.str("events.1") != "credits.low" {
			t.Fatalf("read: %s", got.raw)
		}
		// PATCH changes what it names.
		p := e.must(200, "PATCH", "/v1/webhook-endpoints/"+id, map[string]any{"events": []string{"*"}, "status": "disabled"})
		if p.str("events.0") != "*" || p.str("status") != "disabled" || p.str("url") != "https://example.com/hooks" || p.body["secret"] != nil {
			t.Fatalf("patched: %s", p.raw)
		}
		e.must(200, "PATCH", "/v1/webhook-endpoints/"+id, map[string]any{"url": "http://example.org/x", "description": "", "status": "enabled"})
		// Rotation shows the new secret once.
		rot := e.must(200, "POST", "/v1/webhook-endpoints/"+id+"/rotate-secret", map[string]any{})
		if rs := rot.str("secret"); !strings.HasPrefix(rs, "whsec_") || rs == secret || rot.str("url") != "http://example.org/x" {
			t.Fatalf("rotated: %s", rot.raw)
		}
		// The list pages newest first.
		for i := range 3 {
			e.must(201, "POST", "/v1/webhook-endpoints", map[string]any{"url": "https://example.com/" + string(rune('a'+i)), "events": []string{"*"}})
		}
		page := e.must(200, "GET", "/v1/webhook-endpoints?limit=3", nil)
		if page.str("data.0.url") != "https://example.com/c" || page.body["has_more"] != true || page.get("data.0.secret") != nil {
			t.Fatalf("page 1: %s", page.raw)
		}
		page2 := e.must(200, "GET", "/v1/webhook-endpoints?limit=3&cursor="+page.str("next_cursor"), nil)
		if page2.str("data.0.id") != id || page2.body["has_more"] != false || len(page2.get("data").([]any)) != 1 {
			t.Fatalf("page 2: %s", page2.raw)
		}
		e.must(200, "GET", "/v1/webhook-endpoints/"+id+"/deliveries", nil)
		// Deleting it ends it.
		if d := e.must(200, "DELETE", "/v1/webhook-endpoints/"+id, nil); d.str("id") != id || d.body["deleted"] != true {
			t.Fatalf("deleted: %s", d.raw)
		}
		for _, rq := range [][2]string{{"GET", "/v1/webhook-endpoints/" + id}, {"DELETE", "/v1/webhook-endpoints/" + id},
			{"GET", "/v1/webhook-endpoints/" + id + "/deliveries"}, {"POST", "/v1/webhook-endpoints/" + id + "/rotate-secret"},
			{"PATCH", "/v1/webhook-endpoints/" + id}, {"POST", "/v1/webhook-deliveries/wd_nope/retry"}} {
			if r := e.do(rq[0], rq[1], map[string]any{}); r.status != 404 || r.errCode() != "not_found" {
				t.Errorf("%s %s: %d %s", rq[0], rq[1], r.status, r.raw)
			}
		}
	})
}

func TestWebhookEndpointsBadInput(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		id := e.must(201, "POST", "/v1/webhook-endpoints", map[string]any{"url": "https://example.com/h", "events": []string{"*"}}).str("id")
		long := "https://example.com/" + strings.Repeat("a", 2048)
		for name, body := range map[string]any{
			"no url":          `{"events":["*"]}`,
			"relative url":    `{"url":"/hooks","events":["*"]}`,
			"ftp url":         `{"url":"ftp://example.com/h","events":["*"]}`,
			"no host":         `{"url":"https:///h","events":["*"]}`,
			"url too long":    `{"url":"` + long + `","events":["*"]}`,
			"NUL in url":      `{"url":"https://example.com/\u0000","events":["*"]}`,
			"invalid UTF-8":   []byte("{\"url\":\"https://example.com/\xff\",\"events\":[\"*\"]}"),
			"url a number":    `{"url":5,"events":["*"]}`,
			"events a string": `{"url":"https://example.com/h","events":"*"}`,
			"no events":       `{"url":"https://example.com/h","events":[]}`,
			"unknown event":   `{"url":"https://example.com/h","events":["grant.creatd"]}`,
			"star and more":   `{"url":"https://example.com/h","events":["*","grant.created"]}`,
			"NUL in event":    `{"url":"https://example.com/h","events":["grant.created\u0000"]}`,
			"long desc":       `{"url":"https://example.com/h","events":["*"],"description":"` + strings.Repeat("é", 501) + `"}`,
			"unknown field":   `{"url":"https://example.com/h","events":["*"],"secret":"whsec_AAAA"}`,
			"not an object":   `[]`,
		} {
			if r := e.do("POST", "/v1/webhook-endpoints", body); r.status != 400 || r.errCode() != "invalid_request" {
				t.Errorf("POST %s: %d %s", name, r.status, r.raw)
			}
		}
		for name, body := range map[string]string{
			"bad status":   `{"status":"paused"}`,
			"bad url":      `{"url":"javascript:alert(1)"}`,
			"empty events": `{"events":[]}`,
			"status type":  `{"status":true}`,
			"NUL desc":     `{"description":"a\u0000"}`,
		} {
			if r := e.do("PATCH", "/v1/webhook-endpoints/"+id, body); r.status != 400 || r.errCode() != "invalid_request" {
				t.Errorf("PATCH %s: %d %s", name, r.status, r.raw)
			}
		}
		if r := e.do("POST", "/v1/webhook-endpoints", `{"url":"https://example.com/h","events":["*"],"description":"`+strings.Repeat("a", 70<<10)+`"}`); r.status != 413 {
			t.Errorf("oversized body: %d %s", r.status, r.raw)
		}
		for _, p := range []string{"/v1/webhook-endpoints/" + url.PathEscape("we_\xff"), "/v1/webhook-endpoints/" + strings.Repeat("x", 300)} {
			if r := e.do("GET", p, nil); r.status != 400 {
				t.Errorf("GET %s: %d %s", p, r.status, r.raw)
			}
		}
		if r := e.do("POST", "/v1/webhook-deliveries/"+strings.Repeat("x", 300)+"/retry", "{}"); r.status != 400 || !strings.Contains(string(r.raw), "webhook-delivery id") {
			t.Errorf("retry of a long id: %d %s", r.status, r.raw)
		}
		if r := e.do("GET", "/v1/webhook-endpoints?limit=0", nil); r.status != 400 {
			t.Errorf("limit=0: %d", r.status)
		}
		// Nothing bad was stored: the endpoint is as it was.
		if r := e.must(200, "GET", "/v1/webhook-endpoints/"+id, nil); r.str("status") != "enabled" || r.str("url") != "https://example.com/h" {
			t.Fatalf("%s", r.raw)
		}
	})
}

// TestWebhookEndpointsRefusePrivateAddresses: without
// --webhooks-allow-private-urls, an endpoint whose host is an address
// that is not public, or a name of this machine, is refused when it is
// registered or changed (a name that resolves to one is refused when
// connecting: package webhook); nothing is stored.
func TestWebhookEndpointsRefusePrivateAddresses(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, append(opts, withApp(func(o *app.Options) { o.WebhooksAllowPrivate = false }))...)
		id := e.must(201, "POST", "/v1/webhook-endpoints", map[string]any{"url": "https://93.184.215.14/h", "events": []string{"*"}}).str("id")
		for _, u := range []string{"http://127.0.0.1:8080/h", "http://10.1.2.3/h", "http://192.168.0.1/h", "http://169.254.169.254/latest",
			"http://[::1]/h", "http://[fd00::1]/h", "http://[::ffff:127.0.0.1]/h", "http://0.0.0.0/h", "http://localhost:9000/h", "http://api.LOCALHOST/h"} {
			if r := e.do("POST", "/v1/webhook-endpoints", map[string]any{"url": u, "events": []string{"*"}}); r.status != 400 || r.errCode() != "invalid_request" {
				t.Errorf("POST %s: %d %s", u, r.status, r.raw)
			}
			if r := e.do("PATCH", "/v1/webhook-endpoints/"+id, map[string]any{"url": u}); r.status != 400 || r.errCode() != "invalid_request" {
				t.Errorf("PATCH %s: %d %s", u, r.status, r.raw)
			}
		}
		if r := e.must(200, "GET", "/v1/webhook-endpoints", nil); len(r.get("data").([]any)) != 1 {
			t.Fatalf("endpoints stored: %s", r.raw)
		}
		if r := e.must(200, "GET", "/v1/webhook-endpoints/"+id, nil); r.str("url") != "https://93.184.215.14/h" {
			t.Fatalf("endpoint changed: %s", r.raw)
		}
	})
}

// TestWebhooksDeliverLedgerEvents: a receiver verified with the
// standardwebhooks npm package gets the events of the ledger's changes.
func TestWebhooksDeliverLedgerEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		d := e.dispatcher()
		rcv := webhooktest.NewReceiver(t)
		secret := e.must(201, "POST", "/v1/webhook-endpoints", map[string]any{"url": rcv.URL, "events": []string{"*"}}).str("secret")
		ep := e.must(201, "POST", "/v1/webhook-endpoints", map[string]any{"url": rcv.URL + "/jobs", "events": []string{"job.succeeded"}}).str("id")

		e.createAccount("alice", nil)
		e.must(201, "POST", "/v1/accounts/alice/grants", map[string]any{"amount": 100, "source": "purchase", "reference": "cs_1"})
		// A job to completion.
		src := e.upload(adminKey, "alice", pngImage(8, 8), 201).str("id")
		job := e.cropJob("alice", src)
		jid, lease := e.leaseJob()
		if jid != job {
			t.Fatalf("leased %s, want %s", jid, job)
		}
		out := e.must(201, "POST", "/v1/worker/jobs/"+job+"/outputs?lease_id="+url.QueryEscape(lease), pngImage(4, 4), hdr{"Content-Type": "image/png"}).str("id")
		e.must(200, "POST", "/v1/worker/jobs/"+job+"/complete", map[string]any{"lease_id": lease, "outputs": []string{out}})
		// Spend below the low-balance line, and further.
		for e.available("alice") >= 10 {
			h := e.reserve("alice", "generate", 1)
			e.must(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 1})
		}
		h := e.reserve("alice", "generate", 1)
		e.must(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 1})
		e.dispatch(d)

		var all []webhooktest.Message
		types := map[string]int{}
		for _, m := range rcv.Messages() {
			if m.Header.Get("webhook-id") == "" {
				t.Fatal("no webhook-id")
			}
			typ, data := m.Payload()
			if data["account_id"] != "alice" {
				t.Errorf("%s without alice's account_id: %s", typ, m.Body)
			}
			if m.Header.Get("User-Agent") != "creditd-webhooks/1" || m.Header.Get("Content-Type") != "application/json" || m.Timestamp == "" {
				t.Errorf("headers %v", m.Header)
			}
			all = append(all, m)
			types[typ]++
		}
		for _, want := range []string{ledger.EventAccountCreated, ledger.EventGrantCreated, ledger.EventPurchaseCompleted, ledger.EventJobSucceeded} {
			if types[want] == 0 {
				t.Errorf("no %s among %v", want, types)
			}
		}
		if types[ledger.EventCreditsLow] != 1 {
			t.Errorf("credits.low %d times, want once while credits fell further: %v", types[ledger.EventCreditsLow], types)
		}
		// The job endpoint got job.succeeded only (and the same id as the
		// other endpoint).
		var jobMsgs, other []webhooktest.Message
		for _, m := range all {
			if typ, _ := m.Payload(); typ == ledger.EventJobSucceeded {
				jobMsgs = append(jobMsgs, m)
			} else {
				other = append(other, m)
			}
		}
		if len(jobMsgs) != 2 || jobMsgs[0].ID != jobMsgs[1].ID {
			t.Fatalf("job.succeeded: %d messages", len(jobMsgs))
		}
		if _, data := jobMsgs[0].Payload(); data["job"].(map[string]any)["id"] != job {
			t.Fatalf("job.succeeded data: %s", jobMsgs[0].Body)
		}
		for i, r := range webhooktest.VerifyNode(t, secret, other, e.clock.Now()) {
			if !r.OK {
				t.Errorf("standardwebhooks refused %s: %s", other[i].ID, r.Error)
			}
		}
		ds := e.must(200, "GET", "/v1/webhook-endpoints/"+ep+"/deliveries", nil)
		if ds.str("data.0.event_type") != "job.succeeded" || ds.str("data.0.status") != "succeeded" || ds.num("data.0.attempt") != 1 ||
			ds.num("data.0.response_status") != 200 || ds.get("data.0.next_retry_at") != nil || !strings.HasPrefix(ds.str("data.0.id"), "wd_") ||
			ds.str("data.0.event_id") != jobMsgs[0].ID || ds.str("data.0.endpoint_id") != ep {
			t.Fatalf("deliveries: %s", ds.raw)
		}
		// A retry sends it again, with the same webhook-id.
		wd := ds.str("data.0.id")
		rt := e.must(202, "POST", "/v1/webhook-deliveries/"+wd+"/retry", map[string]any{})
		if rt.str("status") != "pending" || rt.str("next_retry_at") == "" {
			t.Fatalf("retry: %s", rt.raw)
		}
		n := len(rcv.Messages())
		e.dispatch(d)
		msgs := rcv.Messages()
		if len(msgs) != n+1 || msgs[n].ID != jobMsgs[0].ID {
			t.Fatalf("retried: %d messages", len(msgs)-n)
		}
		if r := e.must(200, "GET", "/v1/webhook-endpoints/"+ep+"/deliveries", nil); r.num("data.0.attempt") != 2 || r.str("data.0.status") != "succeeded" {
			t.Fatalf("after the retry: %s", r.raw)
		}
		// A disabled endpoint's delivery cannot be retried.
		e.must(200, "PATCH", "/v1/webhook-endpoints/"+ep, map[string]any{"status": "disabled"})
		if r := e.do("POST", "/v1/webhook-deliveries/"+wd+"/retry", map[string]any{}); r.status != 409 {
			t.Fatalf("retry on a disabled endpoint: %d %s", r.status, r.raw)
		}
	})
}

// TestWebhooksNodesDeliverOnce: three nodes with their own engines and
// dispatchers on one PostgreSQL database, writing and dispatching at
// once, deliver every event once per endpoint.
func TestWebhooksNodesDeliverOnce(t *testing.T) {
	dsn := pgtest.DSN(t)
	first := newEnv(t, onPostgresDSN(dsn))
	nodes := []*env{first}
	for range 2 {
		nodes = append(nodes, newEnv(t, onPostgresDSN(dsn), withClock(first.clock)))
	}
	all, grants := webhooktest.NewReceiver(t), webhooktest.NewReceiver(t)
	first.must(201, "POST", "/v1/webhook-endpoints", map[string]any{"url": all.URL, "events": []string{"*"}})
	first.must(201, "POST", "/v1/webhook-endpoints", map[string]any{"url": grants.URL, "events": []string{"grant.created"}})
	ds := make([]*webhook.Dispatcher, len(nodes))
	for i, n := range nodes {
		ds[i] = n.dispatcher()
	}
	for round := range 4 {
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Add(2)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("n%d-r%d", i, round)
				n.createAccount(id, nil)
				n.must(201, "POST", "/v1/accounts/"+id+"/grants", map[string]any{"amount": 5, "source": "promo"})
			}()
			go func() {
				defer wg.Done()
				if err := ds[i].RunOnce(context.Background()); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	for _, d := range ds {
		if err := d.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// Every event, from the store's own list.
	var events []map[string]any
	cursor := ""
	for {
		r := first.must(200, "GET", "/v1/events?limit=100"+cursor, nil)
		for _, ev := range r.get("data").([]any) {
			events = append(events, ev.(map[string]any))
		}
		if r.body["has_more"] != true {
			break
		}
		cursor = "&cursor=" + r.str("next_cursor")
	}
	count := func(r *webhooktest.Receiver) map[string]int {
		c := map[string]int{}
		for _, m := range r.Messages() {
			c[m.ID]++
		}
		return c
	}
	ca, cg := count(all), count(grants)
	nGrants := 0
	for _, ev := range events {
		id, typ := ev["id"].(string), ev["type"].(string)
		if ca[id] != 1 {
			t.Errorf("%s (%s) reached the * endpoint %d times", id, typ, ca[id])
		}
		want := 0
		if typ == "grant.created" {
			want = 1
			nGrants++
		}
		if cg[id] != want {
			t.Errorf("%s (%s) reached the grant endpoint %d times, want %d", id, typ, cg[id], want)
		}
	}
	if len(ca) != len(events) || nGrants < 2*12 {
		t.Fatalf("%d ids delivered, %d events, %d grants", len(ca), len(events), nGrants)
	}
}
