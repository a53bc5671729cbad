package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/creditd/creditd/billing"
	"github.com/creditd/creditd/billing/stripemock"
)

const billingWebhookSecret = "whsec_e2e"

// TestBilling runs creditd with Stripe pointed at stripe-mock and drives
// purchases, refunds and plan changes through the API and signed webhooks.
func TestBilling(t *testing.T) {
	mock := stripemock.Start(t)
	sc := stripe.NewClient("sk_test_e2e", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(mock), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})))
	ctx := context.Background()
	// stripe-mock keeps no state: every lookup of a PaymentIntent's session
	// answers its fixture session, so purchases that get refunded use it.
	var fixtureSession string
	for cs, err := range sc.V1CheckoutSessions.List(ctx, &stripe.CheckoutSessionListParams{PaymentIntent: stripe.String("pi_any")}) {
		if err != nil {
			t.Fatal(err)
		}
		fixtureSession = cs.ID
		break
	}
	sub, err := sc.V1Subscriptions.Retrieve(ctx, "sub_any", nil)
	if err != nil {
		t.Fatal(err)
	}
	planPrice := sub.Items.Data[0].Price.ID

	t.Setenv(billing.EnvSecretKey, "sk_test_e2e")
	t.Setenv(billing.EnvWebhookSecret, billingWebhookSecret)
	t.Setenv(billing.EnvAPIBase, mock)
	t.Setenv(billing.EnvPaidPriceIDs, planPrice)
	s := startServer(t)
	requireBillingRoutes(t, s)

	// Packs, and a checkout created through the real Stripe client.
	r := s.admin(200, "GET", "/v1/packs", nil)
	if r.body["purchases_enabled"] != true || len(r.body["data"].([]any)) != 2 {
		t.Fatalf("packs: %s", r.raw)
	}
	s.admin(201, "PUT", "/v1/accounts/alice", map[string]any{"plan": "free"})
	s.admin(201, "PUT", "/v1/accounts/bob", map[string]any{"plan": "free"})
	alice := s.userToken("alice")
	r = s.req(alice, "POST", "/v1/accounts/alice/checkout", map[string]any{"pack": "small"}, "application/json")
	if r.status != 201 || !strings.HasPrefix(r.str("session_id"), "cs_") || r.str("url") == "" {
		t.Fatalf("checkout as alice: %d %s", r.status, r.raw)
	}
	if r = s.req(alice, "POST", "/v1/accounts/bob/checkout", map[string]any{"pack": "small"}, "application/json"); r.status != 404 {
		t.Fatalf("alice checking out for bob: %d %s", r.status, r.raw)
	}
	if r = s.req(alice, "GET", "/v1/packs", nil, ""); r.status != 200 {
		t.Fatalf("packs as a user: %d %s", r.status, r.raw)
	}
	s.wantBalance("alice", 45, 0)

	// Paid: 100 credits, once, however often the event comes.
	paid := stripeEvent("evt_e2e_paid", stripe.EventTypeCheckoutSessionCompleted, map[string]any{
		"id": fixtureSession, "object": "checkout.session", "mode": "payment", "payment_status": "paid",
		"client_reference_id": "alice", "metadata": map[string]any{"pack": "small"}, "payment_intent": "pi_alice",
	})
	s.stripeWebhook(200, paid, time.Now(), billingWebhookSecret)
	s.stripeWebhook(200, paid, time.Now(), billingWebhookSecret)
	s.wantBalance("alice", 145, 0)
	s.verify()

	// Refused: a bad signature and an expired timestamp change nothing.
	other := stripeEvent("evt_e2e_other", stripe.EventTypeCheckoutSessionCompleted, map[string]any{
		"id": "cs_other", "object": "checkout.session", "mode": "payment", "payment_status": "paid",
		"client_reference_id": "alice", "metadata": map[string]any{"pack": "large"},
	})
	s.stripeWebhook(400, other, time.Now(), "whsec_wrong")
	s.stripeWebhook(400, other, time.Now().Add(-time.Hour), billingWebhookSecret)
	s.wantBalance("alice", 145, 0)
	s.verify()

	// Spend 60 of the purchase on a video, then refund: the 40 left go.
	h := s.admin(201, "POST", "/v1/holds", map[string]any{"account_id": "alice", "action": "video"})
	s.admin(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 1})
	s.wantBalance("alice", 85, 0)
	refund := stripeEvent("evt_e2e_refund", stripe.EventTypeChargeRefunded, map[string]any{
		"id": "ch_alice", "object": "charge", "payment_intent": "pi_alice", "refunded": true,
		"metadata": map[string]any{"account_id": "alice", "pack": "small"},
	})
	s.stripeWebhook(200, refund, time.Now(), billingWebhookSecret)
	s.stripeWebhook(200, refund, time.Now(), billingWebhookSecret)
	s.wantBalance("alice", 45, 0)
	if got := s.entryTypes("alice"); got[0] != "refund:40" || slices.Index(got, "grant:100") < 0 || strings.Count(strings.Join(got, " "), "refund:") != 1 {
		t.Fatalf("alice's history: %v", got)
	}
	s.verify()

	// Out of order: the refund before the completion ends where in-order
	// delivery would.
	s.admin(201, "PUT", "/v1/accounts/carol", map[string]any{"plan": "free"})
	s.stripeWebhook(200, stripeEvent("evt_e2e_c2", stripe.EventTypeChargeRefunded, map[string]any{
		"id": "ch_carol", "object": "charge", "payment_intent": "pi_carol", "refunded": true,
		"metadata": map[string]any{"account_id": "carol", "pack": "large"},
	}), time.Now(), billingWebhookSecret)
	s.stripeWebhook(200, stripeEvent("evt_e2e_c1", stripe.EventTypeCheckoutSessionCompleted, map[string]any{
		"id": fixtureSession, "object": "checkout.session", "mode": "payment", "payment_status": "paid",
		"client_reference_id": "carol", "metadata": map[string]any{"pack": "large"}, "payment_intent": "pi_carol",
	}), time.Now(), billingWebhookSecret)
	s.wantBalance("carol", 45, 0)
	if got := s.entryTypes("carol"); !slices.Equal(got[:2], []string{"refund:500", "grant:500"}) {
		t.Fatalf("carol's history: %v", got)
	}
	s.verify()

	// An asynchronous payment that fails grants nothing.
	debit := map[string]any{
		"id": "cs_bob_debit", "object": "checkout.session", "mode": "payment", "payment_status": "unpaid",
		"client_reference_id": "bob", "metadata": map[string]any{"pack": "large"},
	}
	s.stripeWebhook(200, stripeEvent("evt_e2e_b1", stripe.EventTypeCheckoutSessionCompleted, debit), time.Now(), billingWebhookSecret)
	s.stripeWebhook(200, stripeEvent("evt_e2e_b2", stripe.EventTypeCheckoutSessionAsyncPaymentFailed, debit), time.Now(), billingWebhookSecret)
	s.wantBalance("bob", 45, 0)
	s.verify()

	// A subscription with the plan's price moves bob to paid (today's daily
	// credits end at once), and its deletion back to free.
	subscription := func(status string) map[string]any {
		return map[string]any{"id": "sub_bob", "object": "subscription", "status": status,
			"metadata": map[string]any{"account_id": "bob"},
			"items":    map[string]any{"object": "list", "data": []any{map[string]any{"id": "si_1", "price": map[string]any{"id": planPrice}}}}}
	}
	s.stripeWebhook(200, stripeEvent("evt_e2e_s1", stripe.EventTypeCustomerSubscriptionCreated, subscription("active")), time.Now(), billingWebhookSecret)
	if p := s.admin(200, "GET", "/v1/accounts/bob", nil).str("plan"); p != "paid" {
		t.Fatalf("bob's plan after subscribing: %s", p)
	}
	s.wantBalance("bob", 30, 0)
	s.stripeWebhook(200, stripeEvent("evt_e2e_s2", stripe.EventTypeCustomerSubscriptionDeleted, subscription("canceled")), time.Now(), billingWebhookSecret)
	if p := s.admin(200, "GET", "/v1/accounts/bob", nil).str("plan"); p != "free" {
		t.Fatalf("bob's plan after cancelling: %s", p)
	}
	s.verify()
}

// TestBillingWithoutStripe: no keys, no purchases, a clear message, and
// admin grants as before.
func TestBillingWithoutStripe(t *testing.T) {
	for _, k := range []string{billing.EnvSecretKey, billing.EnvWebhookSecret, billing.EnvAPIBase, billing.EnvPaidPriceIDs} {
		t.Setenv(k, "")
	}
	s := startServer(t)
	requireBillingRoutes(t, s)
	r := s.admin(200, "GET", "/v1/packs", nil)
	if r.body["purchases_enabled"] != false || r.str("message") != billing.DisabledMessage {
		t.Fatalf("packs: %s", r.raw)
	}
	s.admin(201, "PUT", "/v1/accounts/alice", map[string]any{"plan": "free"})
	r = s.admin(503, "POST", "/v1/accounts/alice/checkout", map[string]any{"pack": "small"})
	if r.errCode() != "unavailable" || !strings.Contains(string(r.raw), billing.DisabledMessage) {
		t.Fatalf("checkout: %s", r.raw)
	}
	s.admin(201, "POST", "/v1/accounts/alice/grants", map[string]any{"amount": 100, "source": "purchase", "reference": "order-1"})
	s.wantBalance("alice", 145, 0)
	s.verify()
}

// requireBillingRoutes skips until the billing routes are mounted in
// creditd serve (and fails under CI, where they must be).
func requireBillingRoutes(t *testing.T, s *server) {
	t.Helper()
	if r := s.admin(0, "GET", "/v1/packs", nil); r.status == 404 {
		if os.Getenv("CREDITD_CI") == "1" {
			t.Fatalf("GET /v1/packs is 404: the billing routes are not mounted")
		}
		t.Skip("the billing routes are not mounted in creditd serve yet")
	}
}

func stripeEvent(id string, typ stripe.EventType, obj map[string]any) []byte {
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": stripe.APIVersion, "created": time.Now().Unix(),
		"type": typ, "data": map[string]any{"object": obj},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// stripeWebhook posts payload to the Stripe webhook, signed with stripe-go's
// test helper at the given time with secret, and expects status.
func (s *server) stripeWebhook(status int, payload []byte, at time.Time, secret string) {
	s.t.Helper()
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at})
	req, err := http.NewRequest("POST", s.url+"/v1/webhooks/stripe", bytes.NewReader(sp.Payload))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Stripe-Signature", sp.Header)
	req.Header.Set("Content-Type", "application/json")
	res, err := apiClient(s.t).Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != status {
		s.t.Fatalf("webhook: %d %s, want %d", res.StatusCode, raw, status)
	}
}

// checkoutHost is where Stripe Checkout pages live (stripe-mock's session
// URLs too).
const checkoutHost = "https://checkout.stripe.com/"

// TestBrowserBuyCredits: on a server with Stripe keys (stripe-mock), a
// signed-in user goes from Billing to Add credits, picks a pack and is sent
// to Stripe Checkout; back from a payment the Billing page thanks them and
// shows the credits as soon as the webhook grants them, without a reload.
func TestBrowserBuyCredits(t *testing.T) {
	browser := newBrowser(t)
	mock := stripemock.Start(t)
	t.Setenv(billing.EnvSecretKey, "sk_test_e2e")
	t.Setenv(billing.EnvWebhookSecret, billingWebhookSecret)
	t.Setenv(billing.EnvAPIBase, mock)
	t.Setenv(billing.EnvPaidPriceIDs, "")
	s := startServer(t)
	requireBillingRoutes(t, s)
	s.admin(201, "PUT", "/v1/accounts/alice", map[string]any{"plan": "free"})
	// stripe-mock answers every session with the same fixture URL: the one
	// the browser must be sent to.
	r := s.req(s.userToken("alice"), "POST", "/v1/accounts/alice/checkout", map[string]any{"pack": "small"}, "application/json")
	checkoutURL := r.str("url")
	if r.status != 201 || !strings.HasPrefix(checkoutURL, checkoutHost) {
		t.Fatalf("checkout through the API: %d %s", r.status, r.raw)
	}

	tab := newTab(t, browser)
	// Stripe's page is not reachable from the test: requests to it are
	// intercepted and answered with a stand-in page, and the redirect that
	// leads there is recorded.
	type redirect struct {
		from, to string
		status   int64
	}
	var (
		mu        sync.Mutex
		redirects []redirect
	)
	paused := make(chan *fetch.EventRequestPaused, 16)
	if err := chromedp.Listen(tab.ctx, func(ev any) {
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if ev.RedirectResponse != nil {
				mu.Lock()
				redirects = append(redirects, redirect{from: ev.RedirectResponse.URL, to: ev.Request.URL, status: ev.RedirectResponse.Status})
				mu.Unlock()
			}
		case *fetch.EventRequestPaused:
			select {
			case paused <- ev:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tab.ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: checkoutHost + "*"}}}); err != nil {
		t.Fatal(err)
	}
	var intercepted []string
	stubDone := make(chan struct{})
	stubCtx, stopStub := context.WithCancel(tab.ctx)
	go func() {
		defer close(stubDone)
		for {
			select {
			case ev := <-paused:
				mu.Lock()
				intercepted = append(intercepted, ev.Request.URL)
				mu.Unlock()
				_, _ = chromedp.Call(stubCtx, fetch.FulfillRequest, fetch.FulfillRequestParams{
					RequestID: ev.RequestID, ResponseCode: 200,
					ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "text/html; charset=utf-8"}},
					Body:            []byte(`<!doctype html><title>Stripe Checkout</title><h1>Stripe Checkout (stand-in)</h1>`),
				})
			case <-stubCtx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { stopStub(); <-stubDone })

	if !t.Run("AddCreditsListsPacks", func(t *testing.T) {
		tab.t = t
		if st := tab.signIn(s.loginLink("alice")); st != 200 {
			t.Fatalf("sign-in link: %d", st)
		}
		tab.open(s.url + "/app/settings/account/billing")
		if st := tab.submit(`.hero a[href$="/billing/add-credits"]`); st != 200 {
			t.Fatalf("add credits: %d", st)
		}
		tab.waitText(`h1`, "Add credits", 5*time.Second)
		if got := tab.eval(`Array.from(document.querySelectorAll(".pack")).map(p => p.dataset.pack + " " + p.querySelector(".pack-price").textContent).join(", ")`); got != "small $5.00, large $20.00" {
			t.Fatalf("packs: %q", got)
		}
		tab.screenshot("add-credits-packs")
	}) {
		return
	}

	if !t.Run("BuyGoesToStripeCheckout", func(t *testing.T) {
		tab.t = t
		if st := tab.submit(`.pack[data-pack="small"] button[type=submit]`); st != 200 {
			t.Fatalf("checkout page: %d", st)
		}
		if loc := tab.location(); loc != checkoutURL {
			t.Fatalf("the browser is at %s, want stripe-mock's checkout URL %s", loc, checkoutURL)
		}
		mu.Lock()
		defer mu.Unlock()
		i := slices.IndexFunc(redirects, func(r redirect) bool { return r.to == checkoutURL })
		if i < 0 {
			t.Fatalf("no redirect to %s: %+v", checkoutURL, redirects)
		}
		if r := redirects[i]; r.status != http.StatusSeeOther || r.from != s.url+"/app/settings/account/billing/add-credits" {
			t.Fatalf("redirect %+v, want 303 from the add-credits form", r)
		}
		if !slices.Contains(intercepted, checkoutURL) {
			t.Fatalf("requests to Stripe: %v", intercepted)
		}
		s.wantBalance("alice", 45, 0)
	}) {
		return
	}

	if !t.Run("CancelledCheckout", func(t *testing.T) {
		tab.t = t
		tab.open(s.url + billing.DefaultCancelPath)
		tab.waitText(`.notice`, "Checkout cancelled; nothing was charged.", 5*time.Second)
		tab.screenshot("add-credits-cancelled")
	}) {
		return
	}

	t.Run("CreditsArriveLive", func(t *testing.T) {
		tab.t = t
		const session = "cs_test_browser_1"
		tab.open(s.url + strings.Replace(billing.DefaultSuccessPath, "{CHECKOUT_SESSION_ID}", session, 1))
		tab.waitFor("the thank-you notice", `(document.querySelector('[data-region="checkout"]') || {}).textContent.includes("Thanks — your credits arrive as soon as the payment is confirmed")`, 5*time.Second)
		tab.waitText(`.hero [data-live="available"]`, "45", 5*time.Second)
		tab.eval(`window.kiraLoaded = "success-1"`)
		tab.screenshot("billing-checkout-pending")
		s.stripeWebhook(200, stripeEvent("evt_e2e_browser_paid", stripe.EventTypeCheckoutSessionCompleted, map[string]any{
			"id": session, "object": "checkout.session", "mode": "payment", "payment_status": "paid",
			"client_reference_id": "alice", "metadata": map[string]any{"pack": "small"},
		}), time.Now(), billingWebhookSecret)
		tab.waitFor("the credits-added notice", `(document.querySelector('[data-region="checkout"]') || {}).textContent.includes("100 credits added")`, 10*time.Second)
		tab.waitText(`.hero [data-live="available"]`, "145", 5*time.Second)
		tab.waitFor("the purchase in the history", `document.querySelector(".history").textContent.includes("Purchased credits: +100")`, 10*time.Second)
		if tab.eval(`window.kiraLoaded`) != "success-1" {
			t.Fatal("the billing page reloaded: the notice must update live")
		}
		tab.screenshot("billing-checkout-credited")
		s.wantBalance("alice", 145, 0)
		s.verify()
	})
}
