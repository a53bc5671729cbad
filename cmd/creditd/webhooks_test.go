package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/internal/webhooktest"
)

// TestWebhookSurvivesKill9: a delivery in flight when the server is
// killed with SIGKILL, and an event committed then, are delivered after
// the restart (the same webhook-id again for the one in flight): the
// events are in the store's outbox and the deliveries are durable rows.
func TestWebhookSurvivesKill9(t *testing.T) {
	for _, store := range []string{"SQLite", "PostgreSQL"} {
		t.Run(store, func(t *testing.T) {
			var env []string
			if store == "PostgreSQL" {
				env = append(env, "CREDITD_DATABASE_URL="+pgtest.DSN(t))
			}
			webhookKill9(t, env)
		})
	}
}

func webhookKill9(t *testing.T, env []string) {
	data := filepath.Join(t.TempDir(), "data")
	env = append(env, "CREDITD_WEBHOOKS_ALLOW_PRIVATE_URLS=true")
	args := []string{"--test-clock", "--builtin-worker", "0"}

	rcv := webhooktest.NewReceiver(t)
	hang := make(chan struct{})
	var once sync.Once
	var hung string
	rcv.Respond = func(n int, m webhooktest.Message) int {
		if n == 1 {
			once.Do(func() { hung = m.ID })
			<-hang // the server is killed while this request waits
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	t.Cleanup(func() {
		select {
		case <-hang:
		default:
			close(hang)
		}
	})

	srv := startServerArgs(t, data, args, env...)
	c := newAPIClient(srv.URL, srv.Key)
	post := func(c *apiClient, path string, body any, want int) map[string]any {
		t.Helper()
		r, err := c.do("POST", path, mustMarshal(body), "")
		if err != nil || r.status != want {
			t.Fatalf("POST %s: %v %d %s", path, err, r.status, r.body)
		}
		var m map[string]any
		_ = json.Unmarshal(r.body, &m)
		return m
	}
	ep := post(c, "/v1/webhook-endpoints", map[string]any{"url": rcv.URL, "events": []string{"*"}}, 201)["id"].(string)
	if r, err := c.do("PUT", "/v1/accounts/alice", []byte(`{}`), ""); err != nil || r.status != 201 {
		t.Fatalf("PUT account: %v %d %s", err, r.status, r.body)
	}
	// The dispatcher (polling every second) sends the first event, and
	// its receiver hangs.
	waitFor(t, 20*time.Second, "the first delivery", func() bool { return len(rcv.Messages()) > 0 })
	post(c, "/v1/accounts/alice/grants", map[string]any{"amount": 7, "source": "admin", "reference": "after-hang"}, 201)
	c.close()
	srv.kill9()
	close(hang)

	srv = startServerArgs(t, data, args, env...)
	c = newAPIClient(srv.URL, srv.Key)
	defer c.close()
	// The killed node's claim lapses with its lease (the clock is the
	// restarted node's test clock).
	post(c, "/v1/test-clock", map[string]any{"advance_seconds": 600}, 200)
	var ds struct {
		Data []struct {
			EventID   string `json:"event_id"`
			EventType string `json:"event_type"`
			Status    string `json:"status"`
		} `json:"data"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := c.getJSON("/v1/webhook-endpoints/"+ep+"/deliveries?limit=100", &ds); err != nil {
			t.Fatal(err)
		}
		done := len(ds.Data) > 0
		for _, d := range ds.Data {
			done = done && d.Status == "succeeded"
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries not all succeeded within 30s: %+v", ds.Data)
		}
		<-time.After(50 * time.Millisecond)
	}
	got := map[string]int{}
	for _, m := range rcv.Messages() {
		got[m.ID]++
	}
	if got[hung] != 2 {
		t.Errorf("the delivery in flight at the kill (%s) was received %d times, want 2 (again after the restart)", hung, got[hung])
	}
	var types []string
	for _, d := range ds.Data {
		types = append(types, d.EventType)
		if got[d.EventID] == 0 {
			t.Errorf("event %s (%s) never received", d.EventID, d.EventType)
		}
	}
	// The dispatcher's metrics are on the node's /metrics.
	if v := scrapeMetric(t, c, "creditd_webhook_endpoints_disabled_total"); v != 0 {
		t.Errorf("creditd_webhook_endpoints_disabled_total = %v, want 0 (served)", v)
	}
	if n := strings.Count(strings.Join(types, " "), "grant.created"); n < 2 || !slices.Contains(types, "account.created") {
		t.Errorf("delivered %v: want account.created and the signup and admin grants", types)
	}
}

// TestServeRefusesBadAllowPrivateURLs: CREDITD_WEBHOOKS_ALLOW_PRIVATE_URLS
// is true or false; anything else stops serve before it listens.
func TestServeRefusesBadAllowPrivateURLs(t *testing.T) {
	serveRefused(t, filepath.Join(t.TempDir(), "data"), []string{"CREDITD_WEBHOOKS_ALLOW_PRIVATE_URLS=yes please"},
		"--webhooks-allow-private-urls", "CREDITD_WEBHOOKS_ALLOW_PRIVATE_URLS", "want true or false")
}
