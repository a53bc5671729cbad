package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/httpapi"
)

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
			`<strong>30 credits</strong> expire on <time datetime="2026-06-18T08:00:00Z">Jun 18, 2026, 10:00</time>`,
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
