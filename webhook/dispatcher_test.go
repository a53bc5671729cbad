package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/internal/webhooktest"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/postgres"
	"github.com/creditd/creditd/store/sqlite"
	"github.com/creditd/creditd/webhook"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// events is an outbox in memory: the dispatcher's events, beside a real
// store's webhook tables.
type events struct {
	mu  sync.Mutex
	evs []ledger.WebhookEvent
}

func (e *events) add(typ, account string, at time.Time) ledger.WebhookEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	ev := ledger.WebhookEvent{Seq: int64(len(e.evs) + 1), ID: ledger.NewID("evt"), Type: typ, AccountID: account, CreatedAt: at,
		Data: json.RawMessage(fmt.Sprintf(`{"account_id":%q}`, account))}
	e.evs = append(e.evs, ev)
	return ev
}

func (e *events) EventsAfter(_ context.Context, after int64, limit int) ([]ledger.WebhookEvent, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ledger.WebhookEvent
	for _, ev := range e.evs {
		if ev.Seq > after && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (e *events) GetEvent(_ context.Context, id string) (*ledger.WebhookEvent, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.evs {
		if ev.ID == id {
			return &ev, nil
		}
	}
	return nil, ledger.ErrNotFound
}

type store struct {
	ledger.WebhookStore
	*events
}

// fixture is a dispatcher over a real store with a test clock.
type fixture struct {
	t     *testing.T
	st    ledger.Store
	ev    *events
	clock *ledger.TestClock
	reg   *prometheus.Registry
	d     *webhook.Dispatcher
	dsn   string
}

var start = time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)

func openStore(t *testing.T, pg bool, dsn string) ledger.Store {
	t.Helper()
	ctx := context.Background()
	var st ledger.Store
	var err error
	if pg {
		st, err = postgres.Open(ctx, dsn, postgres.Options{})
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "creditd.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newFixture(t *testing.T, pg bool, allowPrivate bool) *fixture {
	f := &fixture{t: t, ev: &events{}, clock: ledger.NewTestClock(start), reg: prometheus.NewRegistry()}
	if pg {
		f.dsn = pgtest.DSN(t)
	}
	f.st = openStore(t, pg, f.dsn)
	f.d = f.dispatcher(f.st, f.reg, allowPrivate)
	return f
}

func (f *fixture) dispatcher(st ledger.Store, reg prometheus.Registerer, allowPrivate bool) *webhook.Dispatcher {
	return webhook.New(webhook.Options{Store: store{st, f.ev}, Clock: f.clock, Registry: reg, AllowPrivate: allowPrivate,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func eachStore(t *testing.T, fn func(t *testing.T, pg bool)) {
	t.Run("SQLite", func(t *testing.T) { fn(t, false) })
	t.Run("PostgreSQL", func(t *testing.T) { fn(t, true) })
}

func (f *fixture) endpoint(url string, events ...string) *ledger.WebhookEndpoint {
	f.t.Helper()
	now := f.clock.Now()
	e := &ledger.WebhookEndpoint{ID: ledger.NewID("we"), URL: url, Events: events, Status: ledger.WebhookEndpointEnabled,
		Secret: webhook.NewSecret(), CreatedAt: now, UpdatedAt: now}
	if err := f.st.CreateWebhookEndpoint(context.Background(), e); err != nil {
		f.t.Fatal(err)
	}
	return e
}

func (f *fixture) run() {
	f.t.Helper()
	if err := f.d.RunOnce(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) advance(d time.Duration) {
	f.t.Helper()
	if err := f.clock.Advance(d); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) deliveries(endpoint string) []ledger.WebhookDelivery {
	f.t.Helper()
	ds, err := f.st.ListWebhookDeliveries(context.Background(), ledger.ListWebhookDeliveriesParams{EndpointID: endpoint})
	if err != nil {
		f.t.Fatal(err)
	}
	return ds
}

func (f *fixture) counter(name string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// verify checks messages with the reference library and our verifier.
func verify(t *testing.T, secret string, msgs []webhooktest.Message, now time.Time) {
	t.Helper()
	for i, r := range webhooktest.VerifyNode(t, secret, msgs, now) {
		if !r.OK {
			t.Errorf("standardwebhooks refused message %d (%s): %s", i, msgs[i].ID, r.Error)
		}
	}
	for _, m := range msgs {
		if err := webhook.Verify(secret, m.ID, m.Timestamp, m.Signature, m.Body, now); err != nil {
			t.Errorf("webhook.Verify refused %s: %v", m.ID, err)
		}
	}
}

func TestDeliversSignedEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, pg bool) {
		f := newFixture(t, pg, true)
		all := webhooktest.NewReceiver(t)
		jobs := webhooktest.NewReceiver(t)
		epAll := f.endpoint(all.URL, "*")
		epJobs := f.endpoint(jobs.URL, ledger.EventJobSucceeded)
		g := f.ev.add(ledger.EventGrantCreated, "alice", f.clock.Now())
		j := f.ev.add(ledger.EventJobSucceeded, "alice", f.clock.Now())
		f.run()
		msgs := all.Messages()
		if len(msgs) != 2 || msgs[0].ID != g.ID || msgs[1].ID != j.ID {
			t.Fatalf("all: %+v", msgs)
		}
		if typ, data := msgs[0].Payload(); typ != ledger.EventGrantCreated || data["account_id"] != "alice" {
			t.Fatalf("body %s", msgs[0].Body)
		}
		var body map[string]any
		if err := json.Unmarshal(msgs[1].Body, &body); err != nil || len(body) != 3 || body["timestamp"] != "2026-06-15T10:00:00Z" {
			t.Fatalf("body %s", msgs[1].Body)
		}
		if msgs[0].Timestamp != fmt.Sprint(start.Unix()) || !strings.HasPrefix(msgs[0].Signature, "v1,") {
			t.Fatalf("headers %+v", msgs[0].Header)
		}
		verify(t, epAll.Secret, msgs, f.clock.Now())
		if r := webhooktest.VerifyNode(t, epJobs.Secret, msgs[:1], f.clock.Now()); r[0].OK {
			t.Fatal("standardwebhooks accepted a message under another endpoint's secret")
		}
		if got := jobs.Messages(); len(got) != 1 || got[0].ID != j.ID {
			t.Fatalf("jobs: %+v", got)
		}
		verify(t, epJobs.Secret, jobs.Messages(), f.clock.Now())
		for _, d := range f.deliveries(epAll.ID) {
			if d.Status != ledger.WebhookDeliverySucceeded || d.Attempt != 1 || d.ResponseStatus != 200 || !d.NextRetryAt.IsZero() {
				t.Fatalf("delivery %+v", d)
			}
		}
		// Nothing more is sent: each event once per endpoint.
		f.advance(time.Hour)
		f.run()
		if len(all.Messages()) != 2 || len(jobs.Messages()) != 1 {
			t.Fatalf("sent again: %d %d", len(all.Messages()), len(jobs.Messages()))
		}
	})
}

func TestRetriesOnScheduleWithTheSameID(t *testing.T) {
	eachStore(t, func(t *testing.T, pg bool) {
		f := newFixture(t, pg, true)
		rcv := webhooktest.NewReceiver(t)
		rcv.Respond = func(n int, _ webhooktest.Message) int {
			if n <= 2 {
				return http.StatusServiceUnavailable
			}
			return http.StatusNoContent
		}
		ep := f.endpoint(rcv.URL, "*")
		ev := f.ev.add(ledger.EventCreditsLow, "bob", f.clock.Now())
		f.run()
		ds := f.deliveries(ep.ID)
		if len(rcv.Messages()) != 1 || len(ds) != 1 || ds[0].Status != ledger.WebhookDeliveryPending || ds[0].ResponseStatus != 503 ||
			!strings.HasPrefix(ds[0].Error, "HTTP 503") {
			t.Fatalf("after the first attempt: %d %+v", len(rcv.Messages()), ds)
		}
		wait := ds[0].NextRetryAt.Sub(f.clock.Now())
		if wait < webhook.DefaultSchedule[0] || wait > webhook.DefaultSchedule[0]+webhook.DefaultSchedule[0]/10 {
			t.Fatalf("first retry in %s, want %s plus up to 10%%", wait, webhook.DefaultSchedule[0])
		}
		// Not before it is due.
		f.advance(wait - time.Second)
		f.run()
		if n := len(rcv.Messages()); n != 1 {
			t.Fatalf("retried early: %d attempts", n)
		}
		f.advance(time.Second)
		f.run()
		ds = f.deliveries(ep.ID)
		if n := len(rcv.Messages()); n != 2 || ds[0].Attempt != 2 || ds[0].Status != ledger.WebhookDeliveryPending {
			t.Fatalf("second attempt: %d %+v", n, ds[0])
		}
		wait = ds[0].NextRetryAt.Sub(f.clock.Now())
		if wait < webhook.DefaultSchedule[1] || wait > webhook.DefaultSchedule[1]+webhook.DefaultSchedule[1]/10 {
			t.Fatalf("second retry in %s, want %s plus up to 10%%", wait, webhook.DefaultSchedule[1])
		}
		f.advance(wait)
		f.run()
		msgs := rcv.Messages()
		if len(msgs) != 3 {
			t.Fatalf("%d attempts", len(msgs))
		}
		for _, m := range msgs {
			if m.ID != ev.ID {
				t.Fatalf("webhook-id %s, want %s on every attempt", m.ID, ev.ID)
			}
		}
		if msgs[0].Timestamp == msgs[2].Timestamp {
			t.Fatal("a retry kept the first attempt's timestamp")
		}
		verify(t, ep.Secret, msgs[2:], f.clock.Now())
		ds = f.deliveries(ep.ID)
		if ds[0].Status != ledger.WebhookDeliverySucceeded || ds[0].Attempt != 3 || ds[0].ResponseStatus != 204 || ds[0].Error != "" {
			t.Fatalf("delivered: %+v", ds[0])
		}
		if got := f.counter("creditd_webhook_attempts_total"); got != 3 {
			t.Fatalf("attempts counted: %v", got)
		}
	})
}

func TestFailingEndpointDisabledAfterThreeDays(t *testing.T) {
	eachStore(t, func(t *testing.T, pg bool) {
		f := newFixture(t, pg, true)
		rcv := webhooktest.NewReceiver(t)
		rcv.Respond = func(int, webhooktest.Message) int { return http.StatusInternalServerError }
		ep := f.endpoint(rcv.URL, "*")
		ev := f.ev.add(ledger.EventPurchaseCompleted, "carol", f.clock.Now())
		first := f.clock.Now()
		f.run()
		for i := range webhook.DefaultSchedule {
			ds := f.deliveries(ep.ID)
			if ds[0].Status != ledger.WebhookDeliveryPending || ds[0].Attempt != i+1 {
				t.Fatalf("after attempt %d: %+v", i+1, ds[0])
			}
			f.advance(ds[0].NextRetryAt.Sub(f.clock.Now()))
			f.run()
		}
		msgs := rcv.Messages()
		if len(msgs) != len(webhook.DefaultSchedule)+1 {
			t.Fatalf("%d attempts, want %d", len(msgs), len(webhook.DefaultSchedule)+1)
		}
		for _, m := range msgs {
			if m.ID != ev.ID {
				t.Fatalf("webhook-id %s, want %s", m.ID, ev.ID)
			}
		}
		if span := f.clock.Now().Sub(first); span < 72*time.Hour || span > 80*time.Hour {
			t.Fatalf("attempts spanned %s", span)
		}
		ds := f.deliveries(ep.ID)
		if ds[0].Status != ledger.WebhookDeliveryFailed || !ds[0].NextRetryAt.IsZero() {
			t.Fatalf("after the last attempt: %+v", ds[0])
		}
		got, err := f.st.GetWebhookEndpoint(context.Background(), ep.ID)
		if err != nil || got.Status != ledger.WebhookEndpointDisabled {
			t.Fatalf("endpoint %+v %v", got, err)
		}
		if f.counter("creditd_webhook_endpoints_disabled_total") != 1 || f.counter("creditd_webhook_deliveries_failed_total") != 1 {
			t.Fatal("not counted in the metrics")
		}
		// A disabled endpoint is sent nothing new.
		f.ev.add(ledger.EventGrantCreated, "carol", f.clock.Now())
		f.run()
		if len(rcv.Messages()) != len(msgs) {
			t.Fatal("a disabled endpoint got a delivery")
		}
		// Enabled again, its failure streak starts afresh and it gets the
		// events from then on.
		rcv.Respond = nil
		got.Status = ledger.WebhookEndpointEnabled
		if err := f.st.UpdateWebhookEndpoint(context.Background(), got); err != nil {
			t.Fatal(err)
		}
		if again, err := f.st.GetWebhookEndpoint(context.Background(), ep.ID); err != nil || !again.FailingSince.IsZero() || again.Status != ledger.WebhookEndpointEnabled {
			t.Fatalf("re-enabled: %+v %v", again, err)
		}
		later := f.ev.add(ledger.EventGrantCreated, "carol", f.clock.Now())
		f.run()
		if m := rcv.Messages(); len(m) != len(msgs)+1 || m[len(m)-1].ID != later.ID {
			t.Fatalf("after re-enabling: %d messages", len(m)-len(msgs))
		}
	})
}

func TestRefusesPrivateAddresses(t *testing.T) {
	eachStore(t, func(t *testing.T, pg bool) {
		f := newFixture(t, pg, false) // without --webhooks-allow-private-urls
		rcv := webhooktest.NewReceiver(t)
		ep := f.endpoint(rcv.URL, "*") // 127.0.0.1
		// A name resolving to loopback is refused too: the check is on the
		// address connected to.
		byName := f.endpoint(strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1), "*")
		f.ev.add(ledger.EventGrantCreated, "dave", f.clock.Now())
		f.run()
		if n := len(rcv.Messages()); n != 0 {
			t.Fatalf("a loopback receiver got %d requests", n)
		}
		for _, id := range []string{ep.ID, byName.ID} {
			ds := f.deliveries(id)
			if len(ds) != 1 || ds[0].Status != ledger.WebhookDeliveryPending || ds[0].ResponseStatus != 0 ||
				!strings.Contains(ds[0].Error, "not public") {
				t.Fatalf("%s: %+v", id, ds)
			}
		}
	})
}

func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false,
		"0.0.0.0": false, "100.64.0.1": false, "::1": false, "fe80::1": false, "fc00::1": false, "::": false,
		"::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "224.0.0.1": false, "255.255.255.255": false,
		"8.8.8.8": true, "1.1.1.1": true, "2606:4700:4700::1111": true, "::ffff:8.8.8.8": true,
	} {
		if got := webhook.PublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	eachStore(t, func(t *testing.T, pg bool) {
		f := newFixture(t, pg, true)
		target := webhooktest.NewReceiver(t)
		rcv := webhooktest.NewReceiver(t)
		rcv.Respond = func(int, webhooktest.Message) int { return http.StatusFound }
		rcv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, http.StatusFound)
		})
		ep := f.endpoint(rcv.URL, "*")
		f.ev.add(ledger.EventGrantCreated, "erin", f.clock.Now())
		f.run()
		if n := len(target.Messages()); n != 0 {
			t.Fatalf("the redirect was followed: %d requests", n)
		}
		ds := f.deliveries(ep.ID)
		if ds[0].ResponseStatus != 302 || ds[0].Status != ledger.WebhookDeliveryPending || !strings.Contains(ds[0].Error, "redirects are not followed") {
			t.Fatalf("%+v", ds[0])
		}
	})
}

func TestDeadEndpointDelaysNoOther(t *testing.T) {
	eachStore(t, func(t *testing.T, pg bool) {
		f := newFixture(t, pg, true)
		release := make(chan struct{})
		dead := webhooktest.NewReceiver(t)
		dead.Respond = func(int, webhooktest.Message) int { <-release; return 200 }
		live := webhooktest.NewReceiver(t)
		f.endpoint(dead.URL, "*")
		f.endpoint(live.URL, "*")
		for range 3 {
			f.ev.add(ledger.EventJobSucceeded, "fay", f.clock.Now())
		}
		if err := f.d.Tick(context.Background()); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			select {
			case <-live.Got():
			case <-time.After(30 * time.Second):
				t.Fatalf("the live endpoint got %d of 3 while the other hung", len(live.Messages()))
			}
		}
		if n := len(dead.Messages()); n != 1 {
			t.Fatalf("the hanging endpoint got %d requests at once, want 1", n)
		}
		close(release)
		f.d.Wait()
		if n := len(dead.Messages()); n != 3 {
			t.Fatalf("the released endpoint got %d, want 3", n)
		}
	})
}

func TestRotatedSecretSignsBeside(t *testing.T) {
	eachStore(t, func(t *testing.T, pg bool) {
		f := newFixture(t, pg, true)
		rcv := webhooktest.NewReceiver(t)
		ep := f.endpoint(rcv.URL, "*")
		old := ep.Secret
		ep.PreviousSecret, ep.PreviousSecretExpiresAt = old, f.clock.Now().Add(24*time.Hour)
		ep.Secret = webhook.NewSecret()
		if err := f.st.UpdateWebhookEndpoint(context.Background(), ep); err != nil {
			t.Fatal(err)
		}
		f.ev.add(ledger.EventGrantCreated, "gus", f.clock.Now())
		f.run()
		m := rcv.Messages()
		if len(m) != 1 || len(strings.Fields(m[0].Signature)) != 2 {
			t.Fatalf("%+v", m)
		}
		verify(t, old, m, f.clock.Now())
		verify(t, ep.Secret, m, f.clock.Now())
		f.advance(24 * time.Hour)
		f.ev.add(ledger.EventGrantCreated, "gus", f.clock.Now())
		f.run()
		m = rcv.Messages()[1:]
		if len(m) != 1 || len(strings.Fields(m[0].Signature)) != 1 {
			t.Fatalf("%+v", m)
		}
		verify(t, ep.Secret, m, f.clock.Now())
		if webhook.Verify(old, m[0].ID, m[0].Timestamp, m[0].Signature, m[0].Body, f.clock.Now()) == nil {
			t.Fatal("the old secret still signs after 24 h")
		}
	})
}

// TestNodesDeliverOncePerEndpoint runs three dispatchers on one
// PostgreSQL database, all at once: each event reaches each endpoint
// once.
func TestNodesDeliverOncePerEndpoint(t *testing.T) {
	f := newFixture(t, true, true)
	a, b := webhooktest.NewReceiver(t), webhooktest.NewReceiver(t)
	f.endpoint(a.URL, "*")
	f.endpoint(b.URL, ledger.EventJobSucceeded, ledger.EventGrantCreated)
	nodes := []*webhook.Dispatcher{f.d}
	for range 2 {
		nodes = append(nodes, f.dispatcher(openStore(t, true, f.dsn), nil, true))
	}
	var want []string
	toB := map[string]int{}
	for round := range 5 {
		for i := range 20 {
			typ := []string{ledger.EventJobSucceeded, ledger.EventGrantCreated, ledger.EventCreditsLow}[i%3]
			ev := f.ev.add(typ, fmt.Sprint("acct", round), f.clock.Now())
			want = append(want, ev.ID)
			if typ != ledger.EventCreditsLow {
				toB[ev.ID] = 1
			}
		}
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := n.RunOnce(context.Background()); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	for _, n := range nodes {
		if err := n.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	count := func(r *webhooktest.Receiver) map[string]int {
		c := map[string]int{}
		for _, m := range r.Messages() {
			c[m.ID]++
		}
		return c
	}
	ca, cb := count(a), count(b)
	for _, id := range want {
		if ca[id] != 1 {
			t.Errorf("endpoint a got %s %d times", id, ca[id])
		}
		if cb[id] != toB[id] {
			t.Errorf("endpoint b got %s %d times, want %d", id, cb[id], toB[id])
		}
	}
	if len(ca) != len(want) || slices.ContainsFunc(a.Messages(), func(m webhooktest.Message) bool { return m.ID == "" }) {
		t.Fatalf("endpoint a got %d ids", len(ca))
	}
}

// TestResponseKeptShort: of an answer, at most 1 KiB is kept, made
// storable (no NUL, valid UTF-8) on both stores.
func TestResponseKeptShort(t *testing.T) {
	eachStore(t, func(t *testing.T, pg bool) {
		f := newFixture(t, pg, true)
		rcv := webhooktest.NewReceiver(t)
		rcv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("bad\x00\xff gateway " + strings.Repeat("é", 4096)))
		})
		ep := f.endpoint(rcv.URL, "*")
		f.ev.add(ledger.EventGrantCreated, "hal", f.clock.Now())
		f.run()
		ds := f.deliveries(ep.ID)
		if len(ds) != 1 || ds[0].ResponseStatus != 502 || !strings.HasPrefix(ds[0].Error, "HTTP 502: bad\uFFFD gateway é") ||
			len(ds[0].Error) > webhook.ResponseBytesMax+len("HTTP 502: ") || strings.ContainsRune(ds[0].Error, 0) {
			t.Fatalf("%d bytes: %.80q", len(ds[0].Error), ds[0].Error)
		}
	})
}
