package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/creditd/creditd/billing"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// fakeStripe answers Checkout Session creation like Stripe does (the fields
// creditd reads) and records the requests.
type fakeStripe struct {
	url  string
	mu   sync.Mutex
	reqs []url.Values
	// fail, when set, answers every request with this status.
	fail int
	// checkoutURL is the session URL answered (fakeCheckoutURL if empty).
	checkoutURL string
}

const fakeSessionID = "cs_test_web_1"

var fakeCheckoutURL = "https://checkout.stripe.com/c/pay/" + fakeSessionID

func newFakeStripe(t *testing.T) *fakeStripe {
	f := &fakeStripe{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f.mu.Lock()
		f.reqs = append(f.reqs, r.PostForm)
		fail, checkoutURL := f.fail, f.checkoutURL
		f.mu.Unlock()
		if checkoutURL == "" {
			checkoutURL = fakeCheckoutURL
		}
		w.Header().Set("Content-Type", "application/json")
		if fail != 0 {
			w.WriteHeader(fail)
			_, _ = io.WriteString(w, `{"error":{"type":"api_error","message":"down"}}`)
			return
		}
		if r.Method != "POST" || r.URL.Path != "/v1/checkout/sessions" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"type":"invalid_request_error","message":"unknown"}}`)
			return
		}
		_, _ = io.WriteString(w, `{"id":"`+fakeSessionID+`","object":"checkout.session","mode":"payment","url":"`+checkoutURL+`"}`)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fakeStripe) requests() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.reqs...)
}

func (f *fakeStripe) setCheckoutURL(u string) {
	f.mu.Lock()
	f.checkoutURL = u
	f.mu.Unlock()
}

func (f *fakeStripe) setFail(status int) {
	f.mu.Lock()
	f.fail = status
	f.mu.Unlock()
}

// withBilling adds a billing service with cfg to the API server.
func withBilling(t *testing.T, cfg billing.Config) func(*httpapi.Server) {
	return func(api *httpapi.Server) {
		b, err := billing.New(cfg, api.App, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		api.Billing = b
	}
}

func stripeConfig(apiBase string) billing.Config {
	cfg := billing.DefaultConfig()
	cfg.SecretKey, cfg.WebhookSecret, cfg.APIBase = "sk_test_web", "whsec_web", apiBase
	return cfg
}

const addCredits = "/app/settings/account/billing/add-credits"

// priceRE matches a pack's price as the page shows it ("$5.00").
var priceRE = regexp.MustCompile(`\$[0-9,]+\.[0-9]{2}\b`)

func TestAddCreditsWithoutPurchases(t *testing.T) {
	for name, opts := range map[string][]func(*httpapi.Server){
		"NoBillingService": nil,
		"NoStripeKeys":     {withBilling(t, billing.DefaultConfig())},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opts...)
			e.account("alice")
			u := e.signIn("alice")
			p := u.get(addCredits)
			must(t, p, 200, "Purchases are not configured", "Daily free credits", "Sign-up credits")
			// A price reads "$5.00".
			for _, no := range []string{`name="pack"`, "Buy ", `class="pack-price"`} {
				if strings.Contains(p.body, no) {
					t.Errorf("the page offers a purchase (%q) while purchases are disabled:\n%s", no, p.body)
				}
			}
			if m := priceRE.FindString(p.body); m != "" {
				t.Errorf("the page shows a price (%q) while purchases are disabled:\n%s", m, p.body)
			}
			if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self';") {
				t.Errorf("CSP %q", csp)
			}
			// A forged purchase form is refused clearly, and nothing changes.
			must(t, u.post(addCredits, url.Values{"pack": {"small"}}), http.StatusServiceUnavailable, "not configured", "nothing was charged")
			if e.available("alice") != 45 {
				t.Fatal("balance changed")
			}
		})
	}
}

func TestBuyCredits(t *testing.T) {
	stripe := newFakeStripe(t)
	e := newEnv(t, withBilling(t, stripeConfig(stripe.url)))
	e.account("alice")
	e.account("bob")
	u := e.signIn("alice")

	t.Run("PacksWithBuyButtons", func(t *testing.T) {
		p := u.get(addCredits)
		must(t, p, 200, "Buy a credit pack", "100 credits", "$5.00", "500 credits", "$20.00",
			`name="pack" value="small"`, `name="pack" value="large"`, `action="/app/settings/account/billing/add-credits"`,
			"Enough for 20 images", "Daily free credits")
		if strings.Contains(p.body, "not configured") {
			t.Error("purchases enabled, yet the page says they are not configured")
		}
		// The buy forms redirect to Stripe Checkout, which the page's
		// form-action must allow; other pages keep 'self' only.
		if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://checkout.stripe.com;") {
			t.Errorf("add credits CSP %q", csp)
		}
		if csp := u.get("/app/settings/account/billing").header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self';") {
			t.Errorf("billing CSP %q", csp)
		}
	})

	t.Run("CSRFIsEnforced", func(t *testing.T) {
		m := e.signIn("bob")
		for name, form := range map[string]url.Values{
			"Missing":           {"pack": {"small"}, "csrf": {""}},
			"Wrong":             {"pack": {"small"}, "csrf": {"not-the-token"}},
			"OtherSessionToken": {"pack": {"small"}, "csrf": {m.csrf}},
		} {
			t.Run(name, func(t *testing.T) {
				p := u.post(addCredits, form)
				must(t, p, http.StatusForbidden, "Please try that again")
				if p.location != "/app/message" {
					t.Fatalf("redirected to %s, want the message page", p.location)
				}
			})
		}
		must(t, u.post(addCredits, url.Values{"pack": {"small"}}, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}),
			http.StatusForbidden, "another site")
		if r := stripe.requests(); len(r) != 0 {
			t.Fatalf("refused forms reached Stripe: %v", r)
		}
		// Signed out: the sign-in page, no checkout.
		must(t, e.newUser().post(addCredits, url.Values{"pack": {"small"}, "csrf": {u.csrf}}), http.StatusUnauthorized, "Sign in")
		if r := stripe.requests(); len(r) != 0 {
			t.Fatalf("a signed-out form reached Stripe: %v", r)
		}
	})

	t.Run("BuyRedirectsToCheckout", func(t *testing.T) {
		u.get(addCredits)
		p := u.post(addCredits, url.Values{"pack": {"small"}})
		if p.status != http.StatusSeeOther || p.location != fakeCheckoutURL {
			t.Fatalf("buy: %d %q, want 303 to %s\n%s", p.status, p.location, fakeCheckoutURL, p.body)
		}
		r := stripe.requests()
		if len(r) != 1 {
			t.Fatalf("%d requests to Stripe", len(r))
		}
		for k, want := range map[string]string{
			"mode":                                   "payment",
			"client_reference_id":                    "alice",
			"metadata[pack]":                         "small",
			"success_url":                            e.url + billing.DefaultSuccessPath,
			"cancel_url":                             e.url + billing.DefaultCancelPath,
			"line_items[0][price_data][unit_amount]": "500",
			"line_items[0][price_data][currency]":    "usd",
		} {
			if got := r[0].Get(k); got != want {
				t.Errorf("checkout %s = %q, want %q", k, got, want)
			}
		}
		if e.available("alice") != 45 {
			t.Fatal("starting a checkout changed the balance")
		}
	})

	t.Run("CheckoutOnAnotherDomainIsALink", func(t *testing.T) {
		// form-action would block a redirect off checkout.stripe.com.
		stripe.setCheckoutURL("https://pay.example.com/c/pay/" + fakeSessionID)
		defer stripe.setCheckoutURL("")
		must(t, u.post(addCredits, url.Values{"pack": {"large"}}), 200, "Continue to checkout", `href="https://pay.example.com/c/pay/`+fakeSessionID+`"`)
	})

	t.Run("Errors", func(t *testing.T) {
		must(t, u.post(addCredits, url.Values{"pack": {"huge"}}), http.StatusBadRequest, "The checkout could not start", "not for sale", "Back to Add credits")
		must(t, u.post(addCredits, url.Values{}), http.StatusBadRequest, "not for sale")
		stripe.setFail(http.StatusServiceUnavailable)
		defer stripe.setFail(0)
		must(t, u.post(addCredits, url.Values{"pack": {"large"}}), http.StatusServiceUnavailable,
			"The checkout could not start", "payment provider", "Nothing was charged")
		stripe.setFail(http.StatusBadRequest)
		must(t, u.post(addCredits, url.Values{"pack": {"large"}}), http.StatusInternalServerError, "Nothing was charged")
	})

	t.Run("CancelledCheckout", func(t *testing.T) {
		must(t, u.get(billing.DefaultCancelPath), 200, "Checkout cancelled; nothing was charged.", `name="pack" value="small"`)
	})

	t.Run("SuccessNoticeUntilCredited", func(t *testing.T) {
		success := "/app/settings/account/billing?checkout=success&session_id=" + fakeSessionID
		p := u.get(success)
		must(t, p, 200, "Thanks — your credits arrive as soon as the payment is confirmed", `data-region="checkout" data-refresh-on="balance"`, "Check again")
		if strings.Contains(p.body, "credits added") {
			t.Fatal("credited before the payment was confirmed")
		}
		// Stripe's return URL without a session id still thanks the user.
		must(t, u.get("/app/settings/account/billing?checkout=success&session_id={CHECKOUT_SESSION_ID}"), 200, "Thanks — your credits arrive")
		must(t, u.get("/app/settings/account/billing?checkout=success"), 200, "Thanks — your credits arrive")
		// No notice without the parameter.
		if strings.Contains(u.get("/app/settings/account/billing").body, `data-region="checkout"`) {
			t.Fatal("notice without a checkout")
		}

		// The webhook grants the pack with the session as reference.
		ctx := context.Background()
		if _, err := e.eng.Grant(ctx, engine.GrantParams{AccountID: "alice", GrantParams: ledger.GrantParams{
			Source: ledger.SourcePurchase, AmountCredits: 100, Reference: fakeSessionID,
		}}); err != nil {
			t.Fatal(err)
		}
		p = u.get(success)
		must(t, p, 200, "100 credits added.", `data-credited="true"`, "Purchased credits: &#43;100", `data-live="available">145<`)
		if strings.Contains(p.body, "Thanks — your credits arrive") {
			t.Fatal("still waiting after the grant")
		}
		// Another account's session id is not theirs to see.
		b := e.signIn("bob")
		if p := b.get(success); strings.Contains(p.body, "credits added") {
			t.Fatal("bob sees alice's purchase as his")
		}

		// A refund takes back what is left and shows in the history.
		if _, err := e.eng.Refund(ctx, engine.RefundParams{AccountID: "alice", Source: ledger.SourcePurchase, Reference: fakeSessionID, Reason: "ch_1"}); err != nil {
			t.Fatal(err)
		}
		must(t, u.get("/app/settings/account/billing"), 200,
			"Refund of purchase: 100 credits taken back", "credits already used stay used", "−100", "Purchased credits: &#43;100")
		if e.available("alice") != 45 {
			t.Fatalf("available %d after the refund", e.available("alice"))
		}
	})
}

func TestConfiguredPacks(t *testing.T) {
	stripe := newFakeStripe(t)
	cfg := stripeConfig(stripe.url)
	cfg.Packs = []billing.Pack{
		{ID: "starter", Name: "Starter pack", Credits: 50, AmountMinor: 300, Currency: "jpy"},
		{ID: "big", Name: "1,000 credits", Credits: 1000, AmountMinor: 1999, Currency: "eur"},
	}
	e := newEnv(t, withBilling(t, cfg))
	e.account("alice")
	u := e.signIn("alice")
	p := u.get(addCredits)
	must(t, p, 200, `<p class="pack-name">Starter pack</p>`, "¥300", "Buy Starter pack", "€19.99", "Buy 1,000 credits", `name="pack" value="big"`)
	if strings.Contains(p.body, `<p class="pack-name">1,000 credits</p>`) {
		t.Error("a pack named after its credits repeats them")
	}
	if p := u.post(addCredits, url.Values{"pack": {"starter"}}); p.status != http.StatusSeeOther {
		t.Fatalf("buy: %d", p.status)
	}
	if r := stripe.requests(); len(r) != 1 || r[0].Get("line_items[0][price_data][unit_amount]") != "300" || r[0].Get("metadata[pack]") != "starter" {
		t.Fatalf("checkout: %v", r)
	}
}
