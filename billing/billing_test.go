package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/billing"
	"github.com/creditd/creditd/billing/stripemock"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/sqlite"
)

const (
	secretKey = "sk_test_creditd"
	whsec     = "whsec_test_creditd"
)

// env is a billing service over a real engine on SQLite, a real Stripe
// client talking to stripe-mock (through a proxy that records requests),
// and an HTTP server with the service's routes.
type env struct {
	t     *testing.T
	ctx   context.Context
	eng   *engine.Engine
	store ledger.Store
	cfg   *ledger.Config
	svc   *billing.Service
	url   string
	mock  string
	proxy *recorder
}

// recorder is a reverse proxy to stripe-mock that keeps request bodies.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, path string
	form         url.Values
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

var (
	mockOnce sync.Once
	mockURL  string
)

type envOpt func(*billing.Config)

func noStripe(c *billing.Config) { c.SecretKey, c.WebhookSecret = "", "" }
func paidPrices(ids ...string) envOpt {
	return func(c *billing.Config) { c.PaidPriceIDs = ids }
}

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), cfg: ledger.DefaultConfig(), proxy: &recorder{}}
	bcfg := billing.DefaultConfig()
	bcfg.SecretKey, bcfg.WebhookSecret = secretKey, whsec
	bcfg.PublicURL = "https://app.example.com"
	for _, o := range opts {
		o(&bcfg)
	}
	if bcfg.SecretKey != "" {
		e.mock = stripemock.Start(t)
		target, _ := url.Parse(e.mock)
		rp := httputil.NewSingleHostReverseProxy(target)
		ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			form, _ := url.ParseQuery(string(b))
			if r.Method == http.MethodGet {
				form = r.URL.Query()
			}
			e.proxy.mu.Lock()
			e.proxy.reqs = append(e.proxy.reqs, recorded{r.Method, r.URL.Path, form})
			e.proxy.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(b))
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(ps.Close)
		bcfg.APIBase = ps.URL
	}
	st, err := sqlite.Open(e.ctx, filepath.Join(t.TempDir(), "creditd.db"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clock := ledger.NewTestClock(time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC))
	eng, err := engine.New(e.ctx, engine.Options{Config: e.cfg, Store: st, Clock: clock, Logger: log, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.eng, e.store = eng, st
	e.svc, err = billing.New(bcfg, app.New(app.Options{Engine: eng, Store: st, Logger: log}), log)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range e.svc.Routes() {
		mux.HandleFunc(r.Pattern, r.Handler)
	}
	srv := httptest.NewServer(mux)
	e.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		eng.Close()
		st.Close()
	})
	return e
}

// stripeClient is a plain client for stripe-mock, to learn its fixtures.
func (e *env) stripeClient() *stripe.Client {
	return stripe.NewClient(secretKey, stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(e.mock), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})))
}

// fixtureSessionID is the session stripe-mock answers every lookup of a
// PaymentIntent's Checkout Session with (it keeps no state). Purchases a
// test refunds use it as their session id.
func (e *env) fixtureSessionID() string {
	e.t.Helper()
	for cs, err := range e.stripeClient().V1CheckoutSessions.List(e.ctx, &stripe.CheckoutSessionListParams{PaymentIntent: stripe.String("pi_any")}) {
		if err != nil {
			e.t.Fatal(err)
		}
		return cs.ID
	}
	e.t.Fatal("stripe-mock listed no checkout session")
	return ""
}

// fixturePriceID is the price of stripe-mock's subscription fixture.
func (e *env) fixturePriceID() string {
	e.t.Helper()
	sub, err := e.stripeClient().V1Subscriptions.Retrieve(e.ctx, "sub_any", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return sub.Items.Data[0].Price.ID
}

type resp struct {
	status int
	body   map[string]any
	raw    string
}

func (r resp) str(k string) string { s, _ := r.body[k].(string); return s }
func (r resp) errCode() string {
	m, _ := r.body["error"].(map[string]any)
	c, _ := m["code"].(string)
	return c
}

func (e *env) do(method, path string, body []byte, hdr map[string]string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

func (e *env) account(id string) {
	e.t.Helper()
	if _, err := e.eng.PutAccount(e.ctx, engine.PutAccountParams{ID: id, Plan: ledger.PlanFree}); err != nil {
		e.t.Fatal(err)
	}
}

// event is a Stripe event with obj as data.object.
func event(id string, typ stripe.EventType, obj any) []byte {
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": stripe.APIVersion, "created": time.Now().Unix(),
		"livemode": false, "pending_webhooks": 1, "type": typ, "data": map[string]any{"object": obj},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// signed posts a payload signed with stripe-go's test helper.
func (e *env) postSigned(payload []byte, secret string, at time.Time) resp {
	e.t.Helper()
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at})
	return e.do("POST", "/v1/webhooks/stripe", sp.Payload, map[string]string{"Stripe-Signature": sp.Header, "Content-Type": "application/json"})
}

// send posts a correctly signed event and expects 200 with an outcome.
func (e *env) send(id string, typ stripe.EventType, obj any, outcome string) {
	e.t.Helper()
	r := e.postSigned(event(id, typ, obj), whsec, time.Now())
	if r.status != 200 || r.str("outcome") != outcome {
		e.t.Fatalf("%s %s: %d %s, want 200 outcome %s", typ, id, r.status, r.raw, outcome)
	}
}

func session(id, account, pack, paymentStatus, pi string) map[string]any {
	return map[string]any{
		"id": id, "object": "checkout.session", "mode": "payment", "status": "complete",
		"client_reference_id": account, "metadata": map[string]any{"pack": pack},
		"payment_status": paymentStatus, "payment_intent": pi, "amount_total": 999999, "currency": "usd",
	}
}

func charge(id, account, pack, pi string) map[string]any {
	return map[string]any{
		"id": id, "object": "charge", "payment_intent": pi, "refunded": true, "amount": 500, "amount_refunded": 500,
		"metadata": map[string]any{"account_id": account, "pack": pack},
	}
}

func subscription(id, account, status, price string) map[string]any {
	return map[string]any{
		"id": id, "object": "subscription", "status": status, "customer": "cus_1",
		"metadata": map[string]any{"account_id": account},
		"items": map[string]any{"object": "list", "data": []any{map[string]any{
			"id": "si_1", "object": "subscription_item", "price": map[string]any{"id": price, "object": "price"},
		}}},
	}
}

// check asserts that the ledger verifies, and the account's balance, plan
// and history (oldest first, "type:source:amount").
func (e *env) check(acct string, available int64, plan ledger.Plan, history ...string) {
	e.t.Helper()
	rep, err := ledger.VerifyStore(e.ctx, e.cfg, e.store)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		e.t.Fatalf("verify: %v", rep.Problems)
	}
	bal, err := e.eng.Balance(e.ctx, acct)
	if err != nil {
		e.t.Fatal(err)
	}
	if bal.AvailableCredits != available || bal.Plan != plan {
		e.t.Fatalf("%s: available %d plan %s, want %d %s", acct, bal.AvailableCredits, bal.Plan, available, plan)
	}
	if got := e.history(acct); !slices.Equal(got, history) {
		e.t.Fatalf("%s history:\n got  %q\n want %q", acct, got, history)
	}
}

func (e *env) history(acct string) []string {
	e.t.Helper()
	es, _, err := e.eng.ListEntries(e.ctx, acct, 0, 500)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for i := len(es) - 1; i >= 0; i-- {
		out = append(out, fmt.Sprintf("%s:%s:%d", es[i].Type, es[i].Source, es[i].AmountCredits))
	}
	return out
}

// The history of a new free account: sign-up credits and today's daily ones.
var start = []string{"grant:signup:30", "daily_refresh:daily:15"}

func with(extra ...string) []string { return append(slices.Clone(start), extra...) }

func TestPacksAndCheckout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("alice")

	r := e.do("GET", "/v1/packs", nil, nil)
	if r.status != 200 || r.body["purchases_enabled"] != true {
		t.Fatalf("packs: %d %s", r.status, r.raw)
	}
	data := r.body["data"].([]any)
	if len(data) != 2 {
		t.Fatalf("packs: %s", r.raw)
	}
	for i, want := range []map[string]any{
		{"id": "small", "credits": 100.0, "amount": 500.0, "currency": "usd", "price": "$5.00"},
		{"id": "large", "credits": 500.0, "amount": 2000.0, "currency": "usd", "price": "$20.00"},
	} {
		for k, v := range want {
			if data[i].(map[string]any)[k] != v {
				t.Fatalf("pack %d %s = %v, want %v", i, k, data[i].(map[string]any)[k], v)
			}
		}
	}

	r = e.do("POST", "/v1/accounts/alice/checkout", []byte(`{"pack":"small"}`), nil)
	if r.status != 201 || !strings.HasPrefix(r.str("session_id"), "cs_") || !strings.HasPrefix(r.str("url"), "https://") {
		t.Fatalf("checkout: %d %s", r.status, r.raw)
	}
	// What the real Stripe client sent (stripe-mock validated it against
	// Stripe's OpenAPI spec).
	var sent *recorded
	for _, q := range e.proxy.requests() {
		if q.method == "POST" && q.path == "/v1/checkout/sessions" {
			sent = &q
		}
	}
	if sent == nil {
		t.Fatal("no checkout session was created at Stripe")
	}
	for k, v := range map[string]string{
		"mode":                "payment",
		"client_reference_id": "alice",
		"metadata[pack]":      "small",
		"payment_intent_data[metadata][account_id]":     "alice",
		"payment_intent_data[metadata][pack]":           "small",
		"line_items[0][quantity]":                       "1",
		"line_items[0][price_data][currency]":           "usd",
		"line_items[0][price_data][unit_amount]":        "500",
		"line_items[0][price_data][product_data][name]": "100 credits",
		"success_url": "https://app.example.com" + billing.DefaultSuccessPath,
		"cancel_url":  "https://app.example.com" + billing.DefaultCancelPath,
	} {
		if got := sent.form.Get(k); got != v {
			t.Errorf("checkout sent %s=%q, want %q", k, got, v)
		}
	}

	for _, c := range []struct {
		path, body string
		status     int
		code       string
	}{
		{"/v1/accounts/alice/checkout", `{"pack":"huge"}`, 400, "invalid_request"},
		{"/v1/accounts/alice/checkout", `{}`, 400, "invalid_request"},
		{"/v1/accounts/alice/checkout", `{"pack":"small","credits":1000}`, 400, "invalid_request"},
		{"/v1/accounts/alice/checkout", `{"pack":"small"} {}`, 400, "invalid_request"},
		{"/v1/accounts/nobody/checkout", `{"pack":"small"}`, 404, "not_found"},
	} {
		r := e.do("POST", c.path, []byte(c.body), nil)
		if r.status != c.status || r.errCode() != c.code {
			t.Errorf("POST %s %s: %d %s, want %d %s", c.path, c.body, r.status, r.raw, c.status, c.code)
		}
	}
	// Creating a session changes nothing in the ledger.
	e.check("alice", 45, ledger.PlanFree, start...)
}

func TestPurchaseGrantsOnceWhenReplayed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("alice")
	cs := session("cs_test_replay", "alice", "small", "paid", "pi_replay")
	e.send("evt_1", stripe.EventTypeCheckoutSessionCompleted, cs, billing.OutcomeGranted)
	e.check("alice", 145, ledger.PlanFree, with("grant:purchase:100")...)

	// The same event again, and another event about the same session.
	e.send("evt_1", stripe.EventTypeCheckoutSessionCompleted, cs, billing.OutcomeDuplicate)
	e.send("evt_2", stripe.EventTypeCheckoutSessionAsyncPaymentSucceeded, cs, billing.OutcomeAlreadyGranted)
	e.check("alice", 145, ledger.PlanFree, with("grant:purchase:100")...)

	// Many deliveries at once still grant once.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.postSigned(event(fmt.Sprintf("evt_c%d", i%2), stripe.EventTypeCheckoutSessionCompleted, session("cs_test_concurrent", "alice", "large", "paid", "pi_c")), whsec, time.Now())
			if r.status != 200 {
				t.Errorf("concurrent delivery: %d %s", r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	e.check("alice", 645, ledger.PlanFree, with("grant:purchase:100", "grant:purchase:500")...)

	// The credits come from the pack, never from the event's figures.
	if g := e.grantOf("alice", "cs_test_replay"); g.AmountCredits != 100 {
		t.Fatalf("grant %+v", g)
	}
}

func (e *env) grantOf(acct, ref string) ledger.Grant {
	e.t.Helper()
	st, err := e.store.LoadState(e.ctx, acct)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, g := range st.Grants {
		if g.Reference == ref {
			return *g
		}
	}
	e.t.Fatalf("no live grant %s", ref)
	return ledger.Grant{}
}

func TestBadSignatureChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("alice")
	payload := event("evt_sig", stripe.EventTypeCheckoutSessionCompleted, session("cs_test_sig", "alice", "small", "paid", "pi_sig"))

	other := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(`{"id":"evt_other"}`), Secret: whsec})
	for name, hdr := range map[string]map[string]string{
		"wrong secret": {"Stripe-Signature": webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: "whsec_wrong"}).Header},
		"other body":   {"Stripe-Signature": other.Header},
		"missing":      {},
		"garbage":      {"Stripe-Signature": "t=abc,v1=zz"},
	} {
		r := e.do("POST", "/v1/webhooks/stripe", payload, hdr)
		if r.status != 400 || r.errCode() != "invalid_request" {
			t.Errorf("%s: %d %s, want 400 invalid_request", name, r.status, r.raw)
		}
	}
	e.check("alice", 45, ledger.PlanFree, start...)

	// Nothing was recorded either: the genuine delivery still applies.
	e.send("evt_sig", stripe.EventTypeCheckoutSessionCompleted, session("cs_test_sig", "alice", "small", "paid", "pi_sig"), billing.OutcomeGranted)
	e.check("alice", 145, ledger.PlanFree, with("grant:purchase:100")...)
}

func TestExpiredTimestampRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("alice")
	payload := event("evt_old", stripe.EventTypeCheckoutSessionCompleted, session("cs_test_old", "alice", "small", "paid", "pi_old"))
	r := e.postSigned(payload, whsec, time.Now().Add(-billing.DefaultWebhookTolerance-time.Minute))
	if r.status != 400 || r.errCode() != "invalid_request" || !strings.Contains(r.raw, "tolerance") {
		t.Fatalf("expired: %d %s", r.status, r.raw)
	}
	e.check("alice", 45, ledger.PlanFree, start...)
	// Stripe's retry is signed afresh and applies.
	r = e.postSigned(payload, whsec, time.Now())
	if r.status != 200 || r.str("outcome") != billing.OutcomeGranted {
		t.Fatalf("retry: %d %s", r.status, r.raw)
	}
	e.check("alice", 145, ledger.PlanFree, with("grant:purchase:100")...)
}

func TestRefundAfterPartialSpend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("alice")
	cs := e.fixtureSessionID()
	e.send("evt_paid", stripe.EventTypeCheckoutSessionCompleted, session(cs, "alice", "small", "paid", "pi_alice"), billing.OutcomeGranted)

	// A video (60 credits, only purchased credits pay for it) spends part
	// of the purchase.
	v, err := e.eng.Reserve(e.ctx, engine.ReserveParams{AccountID: "alice", ReserveParams: ledger.ReserveParams{Action: "video", Quantity: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.eng.Capture(e.ctx, engine.HoldParams{HoldID: v.Value.ID, Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	spent := with("grant:purchase:100", "hold::60", "capture::60")
	e.check("alice", 85, ledger.PlanFree, spent...)

	e.send("evt_refund", stripe.EventTypeChargeRefunded, charge("ch_alice", "alice", "small", "pi_alice"), billing.OutcomeRefunded)
	refunded := append(slices.Clone(spent), "refund:purchase:40")
	e.check("alice", 45, ledger.PlanFree, refunded...)
	// The Stripe lookup asked for the session of the charge's PaymentIntent.
	found := false
	for _, q := range e.proxy.requests() {
		found = found || q.method == "GET" && q.path == "/v1/checkout/sessions" && q.form.Get("payment_intent") == "pi_alice"
	}
	if !found {
		t.Fatal("the refund did not look up the session by payment intent")
	}

	// Replays and a second refund event of the same charge take nothing more.
	e.send("evt_refund", stripe.EventTypeChargeRefunded, charge("ch_alice", "alice", "small", "pi_alice"), billing.OutcomeDuplicate)
	e.send("evt_refund_2", stripe.EventTypeChargeRefunded, charge("ch_alice", "alice", "small", "pi_alice"), billing.OutcomeRefunded)
	e.send("evt_paid_late", stripe.EventTypeCheckoutSessionAsyncPaymentSucceeded, session(cs, "alice", "small", "paid", "pi_alice"), billing.OutcomeAlreadyGranted)
	e.check("alice", 45, ledger.PlanFree, refunded...)
	if _, err := e.eng.Reserve(e.ctx, engine.ReserveParams{AccountID: "alice", ReserveParams: ledger.ReserveParams{Action: "video", Quantity: 1}}); ledger.ErrorCode(err) != ledger.EInsufficient {
		t.Fatalf("video after the refund: %v", err)
	}
}

func TestOutOfOrderEventsReachTheInOrderState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cs := e.fixtureSessionID()
	completed := func(acct string) map[string]any { return session(cs, acct, "large", "paid", "pi_"+acct) }
	refund := func(acct string) map[string]any { return charge("ch_"+acct, acct, "large", "pi_"+acct) }

	// In order: completed, then refunded.
	e.account("inorder")
	e.send("evt_in_1", stripe.EventTypeCheckoutSessionCompleted, completed("inorder"), billing.OutcomeGranted)
	e.send("evt_in_2", stripe.EventTypeChargeRefunded, refund("inorder"), billing.OutcomeRefunded)
	want := with("grant:purchase:500", "refund:purchase:500")
	e.check("inorder", 45, ledger.PlanFree, want...)

	// Reversed, each delivered twice.
	e.account("reversed")
	e.send("evt_rev_2", stripe.EventTypeChargeRefunded, refund("reversed"), billing.OutcomeRefunded)
	e.send("evt_rev_1", stripe.EventTypeCheckoutSessionCompleted, completed("reversed"), billing.OutcomeAlreadyGranted)
	e.send("evt_rev_2", stripe.EventTypeChargeRefunded, refund("reversed"), billing.OutcomeDuplicate)
	e.send("evt_rev_1", stripe.EventTypeCheckoutSessionCompleted, completed("reversed"), billing.OutcomeDuplicate)
	e.check("reversed", 45, ledger.PlanFree, want...)

	// An asynchronous payment: succeeded before the (unpaid) completion.
	e.account("async")
	e.send("evt_as_2", stripe.EventTypeCheckoutSessionAsyncPaymentSucceeded, session("cs_test_async", "async", "small", "paid", "pi_as"), billing.OutcomeGranted)
	e.send("evt_as_1", stripe.EventTypeCheckoutSessionCompleted, session("cs_test_async", "async", "small", "unpaid", "pi_as"), billing.OutcomeAwaitingPayment)
	e.check("async", 145, ledger.PlanFree, with("grant:purchase:100")...)
}

func TestAsyncPaymentThatFailsGrantsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("alice")
	cs := session("cs_test_debit", "alice", "small", "unpaid", "pi_debit")
	e.send("evt_a1", stripe.EventTypeCheckoutSessionCompleted, cs, billing.OutcomeAwaitingPayment)
	e.check("alice", 45, ledger.PlanFree, start...)
	e.send("evt_a2", stripe.EventTypeCheckoutSessionAsyncPaymentFailed, cs, billing.OutcomePaymentFailed)
	e.send("evt_a2", stripe.EventTypeCheckoutSessionAsyncPaymentFailed, cs, billing.OutcomeDuplicate)
	e.check("alice", 45, ledger.PlanFree, start...)
}

func TestSubscriptionMovesPlan(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	price := e.fixturePriceID()
	e = newEnv(t, paidPrices(price))

	e.account("alice")
	e.send("evt_s1", stripe.EventTypeCustomerSubscriptionCreated, subscription("sub_alice", "alice", "active", price), billing.OutcomePlanChanged)
	// Leaving the free plan ends today's daily credits at once.
	paid := with("expiry:daily:15")
	e.check("alice", 30, ledger.PlanPaid, paid...)
	e.send("evt_s1", stripe.EventTypeCustomerSubscriptionCreated, subscription("sub_alice", "alice", "active", price), billing.OutcomeDuplicate)
	e.send("evt_s2", stripe.EventTypeCustomerSubscriptionUpdated, subscription("sub_alice", "alice", "active", price), billing.OutcomePlanUnchanged)
	e.check("alice", 30, ledger.PlanPaid, paid...)

	e.send("evt_s3", stripe.EventTypeCustomerSubscriptionDeleted, subscription("sub_alice", "alice", "canceled", price), billing.OutcomePlanChanged)
	e.check("alice", 30, ledger.PlanFree, paid...) // no second allowance today
	// A late update of the deleted subscription changes nothing.
	e.send("evt_s2b", stripe.EventTypeCustomerSubscriptionUpdated, subscription("sub_alice", "alice", "active", price), billing.OutcomeIgnored)
	e.check("alice", 30, ledger.PlanFree, paid...)

	// Deleted before created (out of order): the account stays free.
	e.account("bob")
	e.send("evt_b2", stripe.EventTypeCustomerSubscriptionDeleted, subscription("sub_bob", "bob", "canceled", price), billing.OutcomePlanUnchanged)
	e.send("evt_b1", stripe.EventTypeCustomerSubscriptionCreated, subscription("sub_bob", "bob", "active", price), billing.OutcomeIgnored)
	e.check("bob", 45, ledger.PlanFree, start...)

	// Admin plan changes still work alongside.
	if _, err := e.eng.PutAccount(e.ctx, engine.PutAccountParams{ID: "bob", Plan: ledger.PlanPaid}); err != nil {
		t.Fatal(err)
	}
	e.check("bob", 30, ledger.PlanPaid, with("expiry:daily:15")...)
}

func TestSubscriptionWithoutMappedPriceIsIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, paidPrices("price_plan_only"))
	e.account("alice")
	// stripe-mock's subscription has another price: not a plan subscription.
	e.send("evt_u1", stripe.EventTypeCustomerSubscriptionCreated, subscription("sub_x", "alice", "active", "price_other"), billing.OutcomeIgnored)
	e.send("evt_u2", stripe.EventTypeCustomerSubscriptionDeleted, subscription("sub_x", "alice", "canceled", "price_other"), billing.OutcomeIgnored)
	e.check("alice", 45, ledger.PlanFree, start...)

	// Without any mapped price, subscriptions never move plans.
	e2 := newEnv(t)
	e2.account("bob")
	e2.send("evt_u3", stripe.EventTypeCustomerSubscriptionCreated, subscription("sub_y", "bob", "active", "price_other"), billing.OutcomeIgnored)
	e2.check("bob", 45, ledger.PlanFree, start...)
}

func TestPlanFor(t *testing.T) {
	t.Parallel()
	sub := func(status stripe.SubscriptionStatus, prices ...string) *stripe.Subscription {
		s := &stripe.Subscription{Status: status, Items: &stripe.SubscriptionItemList{}}
		for _, p := range prices {
			s.Items.Data = append(s.Items.Data, &stripe.SubscriptionItem{Price: &stripe.Price{ID: p}})
		}
		return s
	}
	mapped := []string{"price_pro"}
	for _, c := range []struct {
		sub  *stripe.Subscription
		want ledger.Plan
	}{
		{sub("active", "price_pro"), ledger.PlanPaid},
		{sub("trialing", "price_x", "price_pro"), ledger.PlanPaid},
		{sub("active", "price_x"), ledger.PlanFree},
		{sub("past_due", "price_pro"), ledger.PlanFree},
		{sub("incomplete", "price_pro"), ledger.PlanFree},
		{sub("canceled", "price_pro"), ledger.PlanFree},
		{sub("unpaid", "price_pro"), ledger.PlanFree},
		{nil, ledger.PlanFree},
	} {
		if got := billing.PlanFor(c.sub, mapped); got != c.want {
			t.Errorf("PlanFor(%v) = %s, want %s", c.sub, got, c.want)
		}
	}
}

func TestWithoutStripe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, noStripe)
	e.account("alice")
	if e.svc.Enabled() {
		t.Fatal("enabled without keys")
	}
	r := e.do("GET", "/v1/packs", nil, nil)
	if r.status != 200 || r.body["purchases_enabled"] != false || r.str("message") != billing.DisabledMessage {
		t.Fatalf("packs: %d %s", r.status, r.raw)
	}
	r = e.do("POST", "/v1/accounts/alice/checkout", []byte(`{"pack":"small"}`), nil)
	if r.status != 503 || r.errCode() != "unavailable" || !strings.Contains(r.raw, billing.DisabledMessage) {
		t.Fatalf("checkout: %d %s", r.status, r.raw)
	}
	if _, _, err := e.svc.Checkout(e.ctx, "alice", "small"); ledger.ErrorCode(err) != ledger.EUnavailable {
		t.Fatalf("Checkout: %v", err)
	}
	r = e.postSigned(event("evt_x", stripe.EventTypeCheckoutSessionCompleted, session("cs_x", "alice", "small", "paid", "pi_x")), whsec, time.Now())
	if r.status != 503 {
		t.Fatalf("webhook: %d %s", r.status, r.raw)
	}
	// Admin grants still work.
	if _, err := e.eng.Grant(e.ctx, engine.GrantParams{AccountID: "alice", GrantParams: ledger.GrantParams{Source: ledger.SourceAdmin, AmountCredits: 50, Reference: "ticket-1"}}); err != nil {
		t.Fatal(err)
	}
	e.check("alice", 95, ledger.PlanFree, with("grant:admin:50")...)
}

func TestWebhookEdges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.account("alice")
	// Too large: refused before any work.
	big := bytes.Repeat([]byte("x"), billing.WebhookBodyBytesMax+1)
	if r := e.postSigned(big, whsec, time.Now()); r.status != 413 {
		t.Fatalf("large body: %d %s", r.status, r.raw)
	}
	// Events creditd does not handle, and sessions it did not create, are
	// acknowledged.
	e.send("evt_e1", "invoice.paid", map[string]any{"id": "in_1", "object": "invoice"}, billing.OutcomeIgnored)
	e.send("evt_e2", stripe.EventTypeCheckoutSessionCompleted, session("cs_foreign", "", "", "paid", "pi_f"), billing.OutcomeIgnored)
	// A paid session for an unknown account or pack fails so Stripe retries.
	if r := e.postSigned(event("evt_e3", stripe.EventTypeCheckoutSessionCompleted, session("cs_e3", "ghost", "small", "paid", "pi_e3")), whsec, time.Now()); r.status != 404 {
		t.Fatalf("unknown account: %d %s", r.status, r.raw)
	}
	if r := e.postSigned(event("evt_e4", stripe.EventTypeCheckoutSessionCompleted, session("cs_e4", "alice", "mega", "paid", "pi_e4")), whsec, time.Now()); r.status != 400 {
		t.Fatalf("unknown pack: %d %s", r.status, r.raw)
	}
	e.check("alice", 45, ledger.PlanFree, start...)

	// The success page can ask whether a session has been credited.
	st, err := e.svc.Status(e.ctx, "alice", "cs_e5")
	if err != nil || st.Credited {
		t.Fatalf("status before: %+v %v", st, err)
	}
	e.send("evt_e5", stripe.EventTypeCheckoutSessionCompleted, session("cs_e5", "alice", "small", "paid", "pi_e5"), billing.OutcomeGranted)
	if st, err = e.svc.Status(e.ctx, "alice", "cs_e5"); err != nil || !st.Credited || st.Credits != 100 {
		t.Fatalf("status after: %+v %v", st, err)
	}
}
