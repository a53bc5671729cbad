package web_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/postgres"
)

const lowBalancePath = "/app/settings/account/billing/low-balance"

const billingPage = "/app/settings/account/billing"

// grant gives an account credits of a source through the admin API
// (expires: RFC 3339, or "" for never).
func (e *env) grant(id, source string, amount int64, expires string) {
	e.t.Helper()
	body := map[string]any{"amount": amount, "source": source}
	if expires != "" {
		body["expires_at"] = expires
	}
	e.mustCall(201, "POST", "/v1/accounts/"+id+"/grants", body, "")
}

// TestBillingShowsExpiringCredits: Billing lists each purchased,
// promotional and support bucket that expires, with its amount and time
// in the account's time zone; buckets of a source that expire together
// add up, and credits that never expire are not listed.
func TestBillingShowsExpiringCredits(t *testing.T) {
	eachStore(t, func(t *testing.T, mk func(t *testing.T, opts ...func(*httpapi.Server)) *env) {
		e := mk(t) // the clock starts at 2026-06-15 10:00 UTC
		e.mustCall(201, "PUT", "/v1/accounts/alice", map[string]any{"timezone": "Europe/Berlin"}, "")
		e.grant("alice", "purchase", 100, "2026-07-01T10:00:00Z")
		e.grant("alice", "purchase", 20, "2026-07-01T10:00:00Z")
		e.grant("alice", "purchase", 1, "2026-06-20T22:30:00Z")
		e.grant("alice", "purchase", 500, "")
		e.grant("alice", "promo", 30, "2026-06-18T08:00:00Z")
		e.grant("alice", "admin", 7, "")
		u := e.signIn("alice")
		p := must(t, u.get(billingPage), http.StatusOK,
			// Berlin is UTC+2 in summer: the time shown is the account's.
			`<strong>1 credit</strong> expires on <time datetime="2026-06-20T22:30:00Z">Jun 21, 2026, 00:30</time>`,
			`<strong>120 credits</strong> expire on <time datetime="2026-07-01T10:00:00Z">Jul 1, 2026, 12:00</time>`,
			// Within alerts.expiring_notice_hours (72): it says how long is left.
			`<li class="soon"><strong>30 credits</strong> expire on <time datetime="2026-06-18T08:00:00Z">Jun 18, 2026, 10:00</time> (in <span data-countdown="2026-06-18T08:00:00Z">2 days</span>)</li>`,
			`<li><strong>1 credit</strong> expires`,
			"Credits from support")
		// Soonest first within a source; the purchase that never expires
		// and the support credits are not listed.
		if i, j := strings.Index(p.body, "Jun 21, 2026, 00:30"), strings.Index(p.body, "Jul 1, 2026, 12:00"); i < 0 || j < i {
			t.Errorf("expiring purchases out of order")
		}
		if n := strings.Count(p.body, `class="expiring"`); n != 2 {
			t.Errorf("%d expiring lists, want 2 (purchased, promotional):\n%s", n, p.body)
		}
		// Once past, expired credits are no longer listed.
		e.clock.Set(mustTime(t, "2026-06-19T00:00:00Z"))
		p = must(t, u.get(billingPage), http.StatusOK, "Jun 21, 2026, 00:30")
		if strings.Contains(p.body, "Jun 18, 2026, 10:00") {
			t.Errorf("the expired promotional credits are still listed")
		}
	})
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// spend charges an account n generate results (5 credits each) directly
// through the engine.
func (e *env) spend(id string, n int64) {
	e.t.Helper()
	ctx := context.Background()
	for n > 0 {
		q := min(n, 100) // a hold's quantity limit
		n -= q
		v, err := e.eng.Reserve(ctx, engine.ReserveParams{AccountID: id, ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: q}})
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.eng.Capture(ctx, engine.HoldParams{HoldID: v.Value.ID, Quantity: q}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// threshold reads an account's low-balance line from the store.
func (e *env) threshold(id string) int64 {
	e.t.Helper()
	acct, err := e.eng.GetAccount(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return acct.LowBalanceThreshold
}

// banner is the state of a page's low-balance banner: "low", "depleted"
// or "" (none), checked against what the banner says.
func banner(t *testing.T, p page) string {
	t.Helper()
	m := bannerRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no banner region on the page:\n%s", p.body)
	}
	low := strings.Contains(p.body, `class="banner banner-low"`)
	empty := strings.Contains(p.body, `class="banner banner-empty"`)
	switch {
	case m[1] == "low" && low && !empty && strings.Contains(p.body, "running low on credits"):
	case m[1] == "depleted" && empty && !low:
	case m[1] == "" && !low && !empty:
	default:
		t.Fatalf("banner state %q does not match the page (low %v, empty %v):\n%s", m[1], low, empty, p.body)
	}
	if m[1] != "" && !strings.Contains(p.body, `<a class="btn primary small" href="/app/settings/account/billing/add-credits">Add credits</a>`) {
		t.Fatalf("the %s banner has no Add credits", m[1])
	}
	return m[1]
}

var bannerRE = regexp.MustCompile(`data-region="balance-alert" data-refresh-on="balance-alert" data-balance-alert="(\w*)"`)

// eachStoreWithConfig runs fn with an env of configuration cfg on SQLite
// and on PostgreSQL.
func eachStoreWithConfig(t *testing.T, cfg *ledger.Config, fn func(t *testing.T, e *env)) {
	t.Run("SQLite", func(t *testing.T) { fn(t, newEnvWithConfig(t, cfg)) })
	t.Run("PostgreSQL", func(t *testing.T) {
		st, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		fn(t, newEnvConfigOn(t, st, cfg))
	})
}

// TestLowBalanceBanner: every signed-in page shows the banner while the
// credits for images are below the account's line, with Add credits; it
// says when they no longer pay for an image; a grant that lifts the
// account above the line removes it. The line is set on Billing (a form
// with post/redirect/get); bad input writes nothing and says why, on both
// stores.
func TestLowBalanceBanner(t *testing.T) {
	// The test clock stands still, so the account's request budget never
	// refills: give it room for the test's pages.
	cfg := ledger.DefaultConfig()
	cfg.Limits.RequestsBurstPerUser = 1000
	eachStoreWithConfig(t, cfg, func(t *testing.T, e *env) {
		e.account("alice") // 30 sign-up + 15 daily credits
		u := e.signIn("alice")
		pages := []string{"/app/create", "/app/gallery", billingPage, "/app/settings/account/profile", "/app/help/credits-and-usage"}
		for _, path := range pages {
			if got := banner(t, must(t, u.get(path), http.StatusOK)); got != "" {
				t.Fatalf("%s at 45 credits with the default line: banner %q", path, got)
			}
		}
		must(t, u.get(billingPage), http.StatusOK, `<input id="threshold" name="threshold" type="number"`,
			`value="`+strconv.FormatInt(e.threshold("alice"), 10)+`"`)

		t.Run("BadInputWritesNothing", func(t *testing.T) {
			before := e.threshold("alice")
			for _, v := range []string{"", "abc", "-1", "1.5", "1e3", "1000000000001", "99999999999999999999", "0x10"} {
				p := must(t, u.post(lowBalancePath, url.Values{"threshold": {v}}), http.StatusBadRequest,
					"Enter a whole number of credits from 0 to 1,000,000,000,000.")
				if !strings.HasPrefix(p.location, billingPage) {
					t.Errorf("%q: back at %s, want Billing", v, p.location)
				}
				if !strings.Contains(p.body, `value="`+html.EscapeString(v)+`"`) {
					t.Errorf("%q: the form does not show the value sent again", v)
				}
				if !strings.Contains(p.body, `aria-invalid="true"`) || !strings.Contains(p.body, `<p class="field-error" id="threshold-error">Enter a whole number`) {
					t.Errorf("%q: the field does not say what is wrong", v)
				}
				if got := e.threshold("alice"); got != before {
					t.Fatalf("%q: threshold %d, want %d unchanged", v, got, before)
				}
			}
			// A good value without the session's CSRF token, or from
			// another site, is refused too.
			for _, csrf := range []string{"", "not-the-token"} {
				must(t, u.post(lowBalancePath, url.Values{"threshold": {"500"}, "csrf": {csrf}}), http.StatusForbidden)
			}
			must(t, u.post(lowBalancePath, url.Values{"threshold": {"500"}}, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}),
				http.StatusForbidden)
			if got := e.threshold("alice"); got != before {
				t.Fatalf("threshold %d after refused forms, want %d unchanged", got, before)
			}
		})

		// A line above the balance: the banner shows on every page.
		p := must(t, u.post(lowBalancePath, url.Values{"threshold": {"1,000"}}), http.StatusOK, "Low-balance warning saved.", `value="1000"`)
		if p.location != billingPage+"?notice=low-balance#low-balance-h" {
			t.Fatalf("saved to %s", p.location)
		}
		if got := e.threshold("alice"); got != 1000 {
			t.Fatalf("threshold %d, want 1000", got)
		}
		for _, path := range pages {
			p := must(t, u.get(path), http.StatusOK)
			if got := banner(t, p); got != "low" {
				t.Fatalf("%s below the line: banner %q", path, got)
			}
			if !strings.Contains(p.body, "running low on credits: 45 left</strong>, enough for 9 images. This warning shows below 1,000 credits") {
				t.Fatalf("%s: the banner does not say the balance and line:\n%s", path, p.body)
			}
		}
		must(t, u.get("/app/help/credits-and-usage"), http.StatusOK, "fall below your warning level (now 1,000 credits)")
		// A grant that lifts the account above it removes the banner.
		e.grant("alice", "purchase", 1000, "")
		if got := banner(t, must(t, u.get("/app/create"), http.StatusOK)); got != "" {
			t.Fatalf("after a grant above the line: banner %q", got)
		}

		// Spending it all: the banner says the account cannot start
		// anything, and when free credits come back.
		e.spend("alice", 209) // 1,045 credits
		p = must(t, u.get("/app/gallery"), http.StatusOK, "You're out of credits.", `your free credits come back in <span data-countdown="2026-06-16T00:00:00Z">14 h</span>`)
		if got := banner(t, p); got != "depleted" {
			t.Fatalf("at 0 credits: banner %q", got)
		}
		// 0 turns the low warning off; running out is still said.
		must(t, u.post(lowBalancePath, url.Values{"threshold": {"0"}}), http.StatusOK, "Low-balance warning saved.", `value="0"`)
		if got := banner(t, must(t, u.get("/app/create"), http.StatusOK)); got != "depleted" {
			t.Fatalf("at 0 credits with the warning off: banner %q", got)
		}
		must(t, u.get("/app/help/credits-and-usage"), http.StatusOK, "fall below your warning level (you have turned it off)")
		e.grant("alice", "promo", 3, "")
		must(t, u.get("/app/create"), http.StatusOK, "You have 3 credits left, not enough for an image</strong> (5 each).")
		e.grant("alice", "promo", 2, "")
		if got := banner(t, must(t, u.get("/app/create"), http.StatusOK)); got != "" {
			t.Fatalf("at 5 credits with the warning off: banner %q", got)
		}
	})
}
