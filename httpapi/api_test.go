package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
)

func TestAccounts(t *testing.T) {
	e := newEnv(t)
	t.Run("CreateGrantsSignupAndDaily", func(t *testing.T) {
		r := e.createAccount("alice", nil)
		if r.str("plan") != "free" || r.str("timezone") != "UTC" {
			t.Fatalf("account: %s", r.raw)
		}
		b := e.balance("alice")
		if b.num("available") != 45 || b.num("held") != 0 {
			t.Fatalf("balance: %s", b.raw)
		}
		if got := bucketsBySource(b); got["signup"] != 30 || got["daily"] != 15 {
			t.Fatalf("buckets: %v", got)
		}
		if b.str("next_daily_refresh_at") != "2026-06-16T00:00:00Z" {
			t.Fatalf("next refresh: %s", b.raw)
		}
	})
	t.Run("PutAgainUpdates", func(t *testing.T) {
		r := e.must(200, "PUT", "/v1/accounts/alice", map[string]any{"timezone": "Europe/Berlin"})
		if r.str("timezone") != "Europe/Berlin" {
			t.Fatalf("%s", r.raw)
		}
		if e.available("alice") != 45 {
			t.Fatal("update changed the balance")
		}
		if got := e.must(200, "GET", "/v1/accounts/alice", nil); got.str("timezone") != "Europe/Berlin" {
			t.Fatalf("%s", got.raw)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		for _, p := range []string{"/v1/accounts/nobody", "/v1/accounts/nobody/balance", "/v1/accounts/nobody/entries", "/v1/accounts/nobody/quote?action=generate"} {
			if r := e.do("GET", p, nil); r.status != 404 || r.errCode() != "not_found" {
				t.Errorf("%s: %d %s", p, r.status, r.raw)
			}
		}
	})
	t.Run("SignupOnce", func(t *testing.T) {
		n := 0
		for _, en := range e.entries("alice") {
			if en["source"] == "signup" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d signup grants", n)
		}
	})
	e.verify()
}

func TestDailyCredits(t *testing.T) {
	t.Run("MidnightRolloverInTokyo", func(t *testing.T) {
		e := newEnv(t, startingAt(mustTime("2026-03-10T14:50:00Z"))) // 23:50 in Tokyo
		e.createAccount("a", map[string]any{"timezone": "Asia/Tokyo"})
		b := e.balance("a")
		if b.str("next_daily_refresh_at") != "2026-03-10T15:00:00Z" {
			t.Fatalf("next refresh: %s", b.raw)
		}
		h := e.reserve("a", "generate", 2)
		e.must(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 2})
		if got := bucketsBySource(e.balance("a")); got["daily"] != 5 || got["signup"] != 30 {
			t.Fatalf("daily credits spent first: %v", got)
		}
		e.advance(9*time.Minute + 59*time.Second)
		if e.available("a") != 35 {
			t.Fatal("refreshed before local midnight")
		}
		e.advance(time.Second)
		b = e.balance("a")
		if b.num("available") != 45 || bucketsBySource(b)["daily"] != 15 {
			t.Fatalf("after midnight: %s", b.raw)
		}
		if b.str("next_daily_refresh_at") != "2026-03-11T15:00:00Z" {
			t.Fatalf("next refresh: %s", b.raw)
		}
		es := e.entries("a")
		if es[0]["type"] != "daily_refresh" || es[0]["reason"] != "2026-03-11" || es[1]["type"] != "expiry" || es[1]["amount"].(float64) != 5 {
			t.Fatalf("entries: %v %v", es[0], es[1])
		}
		e.verify()
	})
	t.Run("DSTSpringForwardNewYork", func(t *testing.T) {
		e := newEnv(t, startingAt(mustTime("2026-03-08T05:00:00Z"))) // 00:00 EST, a 23-hour day
		e.createAccount("a", map[string]any{"timezone": "America/New_York"})
		if got := e.balance("a").str("next_daily_refresh_at"); got != "2026-03-09T04:00:00Z" {
			t.Fatalf("next refresh %s, want 00:00 EDT", got)
		}
		h := e.reserve("a", "generate", 1)
		e.must(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 1})
		e.advance(23*time.Hour - time.Second)
		if e.available("a") != 40 {
			t.Fatal("refreshed early")
		}
		e.advance(time.Second)
		b := e.balance("a")
		if bucketsBySource(b)["daily"] != 15 || b.str("next_daily_refresh_at") != "2026-03-10T04:00:00Z" {
			t.Fatalf("after DST midnight: %s", b.raw)
		}
		e.verify()
	})
	t.Run("DSTFallBackBerlin", func(t *testing.T) {
		e := newEnv(t, startingAt(mustTime("2026-10-24T22:00:00Z"))) // 00:00 CEST, a 25-hour day
		e.createAccount("a", map[string]any{"timezone": "Europe/Berlin"})
		if got := e.balance("a").str("next_daily_refresh_at"); got != "2026-10-25T23:00:00Z" {
			t.Fatalf("next refresh %s, want 00:00 CET", got)
		}
		h := e.reserve("a", "edit", 1)
		e.must(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 1})
		e.advance(24 * time.Hour)
		if bucketsBySource(e.balance("a"))["daily"] != 10 {
			t.Fatal("refreshed after 24h on a 25-hour day")
		}
		e.advance(time.Hour)
		if bucketsBySource(e.balance("a"))["daily"] != 15 {
			t.Fatal("no refresh at local midnight")
		}
		e.verify()
	})
	t.Run("NoCarryOver", func(t *testing.T) {
		e := newEnv(t)
		e.createAccount("a", nil)
		e.advance(3 * 24 * time.Hour)
		if e.available("a") != 45 {
			t.Fatalf("available %d after 3 idle days, want 45", e.available("a"))
		}
		n := 0
		for _, en := range e.entries("a") {
			if en["type"] == "daily_refresh" {
				n++
			}
		}
		if n != 2 {
			t.Fatalf("%d daily refreshes, want 2 (creation day and the day it was next seen)", n)
		}
		e.verify()
	})
	t.Run("ReleasedAfterMidnightExpires", func(t *testing.T) {
		e := newEnv(t, startingAt(mustTime("2026-06-15T23:50:00Z")))
		e.createAccount("a", nil)
		h := e.must(201, "POST", "/v1/holds", map[string]any{"account_id": "a", "action": "generate", "quantity": 3, "ttl_seconds": 3600}) // all 15 daily credits
		if e.available("a") != 30 {
			t.Fatal("reserve did not take daily credits")
		}
		e.advance(20 * time.Minute)
		if e.available("a") != 45 {
			t.Fatal("no new daily credits")
		}
		r := e.must(200, "POST", "/v1/holds/"+h.str("id")+"/release", map[string]any{"reason": "failed"})
		if r.str("status") != "released" {
			t.Fatalf("%s", r.raw)
		}
		if got := e.available("a"); got != 45 {
			t.Fatalf("available %d after releasing yesterday's daily credits, want 45", got)
		}
		es := e.entries("a")
		legs := es[0]["legs"].([]any)
		if es[0]["type"] != "release" || legs[0].(map[string]any)["to"] != "expired" {
			t.Fatalf("release entry: %v", es[0])
		}
		e.verify()
	})
}

func TestVideoNeedsPaidCredits(t *testing.T) {
	e := newEnv(t)
	e.createAccount("a", nil)
	q := e.must(200, "GET", "/v1/accounts/a/quote?action=video", nil)
	if q.num("cost") != 60 || q.num("available") != 0 || q.get("affordable") != false {
		t.Fatalf("quote: %s", q.raw)
	}
	before := e.entryCount("a")
	r := e.do("POST", "/v1/holds", map[string]any{"account_id": "a", "action": "video"})
	if r.status != 402 || r.errCode() != "insufficient_credits" || r.num("error.required") != 60 || r.num("error.available") != 0 {
		t.Fatalf("video on free credits: %d %s", r.status, r.raw)
	}
	if e.entryCount("a") != before || e.available("a") != 45 {
		t.Fatal("a refused reserve changed something")
	}
	e.must(201, "POST", "/v1/accounts/a/grants", map[string]any{"amount": 100, "source": "purchase"})
	h := e.reserve("a", "video", 1)
	if h.num("amount") != 60 || h.num("unit_price") != 60 {
		t.Fatalf("%s", h.raw)
	}
	b := e.balance("a")
	if b.num("available") != 85 || b.num("available_by_category.video") != 40 || b.num("held") != 60 {
		t.Fatalf("%s", b.raw)
	}
	q = e.must(200, "GET", "/v1/accounts/a/quote?action=generate&quantity=4", nil)
	if q.num("cost") != 20 || q.num("available") != 85 || q.get("affordable") != true {
		t.Fatalf("quote: %s", q.raw)
	}
	e.verify()
}

func TestBurnDownOrder(t *testing.T) {
	e := newEnv(t)
	e.createAccount("a", nil)
	soon := e.clock.Now().Add(time.Hour).Format(time.RFC3339)
	e.must(201, "POST", "/v1/accounts/a/grants", map[string]any{"amount": 10, "source": "purchase"})
	e.must(201, "POST", "/v1/accounts/a/grants", map[string]any{"amount": 10, "source": "admin"})
	e.must(201, "POST", "/v1/accounts/a/grants", map[string]any{"amount": 10, "source": "promo"})
	e.must(201, "POST", "/v1/accounts/a/grants", map[string]any{"amount": 10, "source": "promo", "expires_at": soon})
	// 35 credits: the promo expiring in an hour (10), today's daily (15), then the non-expiring promo (10).
	e.reserve("a", "generate", 7)
	got := bucketsBySource(e.balance("a"))
	if got["promo"] != 0 || got["daily"] != 0 || got["signup"] != 30 || got["admin"] != 10 || got["purchase"] != 10 {
		t.Fatalf("after first reserve: %v", got)
	}
	// 40 more: signup (30) before admin (10); purchased credits are spent last.
	e.reserve("a", "generate", 8)
	got = bucketsBySource(e.balance("a"))
	if got["signup"] != 0 || got["admin"] != 0 || got["purchase"] != 10 {
		t.Fatalf("after second reserve: %v", got)
	}
	e.verify()
}

func TestCapture(t *testing.T) {
	e := newEnv(t)
	e.createAccount("a", nil)
	t.Run("PartialBatchChargesDeliveredOutputsOnly", func(t *testing.T) {
		h := e.reserve("a", "generate", 4)
		if h.num("amount") != 20 || h.str("status") != "pending" {
			t.Fatalf("%s", h.raw)
		}
		if b := e.balance("a"); b.num("available") != 25 || b.num("held") != 20 {
			t.Fatalf("%s", b.raw)
		}
		c := e.must(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 3})
		if c.str("status") != "captured" || c.num("captured_amount") != 15 || c.num("captured_quantity") != 3 {
			t.Fatalf("%s", c.raw)
		}
		if b := e.balance("a"); b.num("available") != 30 || b.num("held") != 0 {
			t.Fatalf("%s", b.raw)
		}
		es := e.entries("a")
		if es[0]["type"] != "capture" || es[0]["amount"].(float64) != 15 {
			t.Fatalf("%v", es[0])
		}
	})
	t.Run("ZeroDeliveredChargesNothing", func(t *testing.T) {
		h := e.reserve("a", "crop", 1)
		c := e.must(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 0})
		if c.num("captured_amount") != 0 || e.available("a") != 30 {
			t.Fatalf("%s", c.raw)
		}
	})
	t.Run("ErrQuantityAboveReserved", func(t *testing.T) {
		h := e.reserve("a", "crop", 2)
		for _, q := range []any{3, -1, "2", 1.5} {
			r := e.do("POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": q})
			if r.status != 400 || r.errCode() != "invalid_request" {
				t.Errorf("quantity %v: %d %s", q, r.status, r.raw)
			}
		}
		if got := e.must(200, "GET", "/v1/holds/"+h.str("id"), nil); got.str("status") != "pending" {
			t.Fatalf("%s", got.raw)
		}
	})
	e.verify()
}

func TestHoldResolvedOnce(t *testing.T) {
	e := newEnv(t)
	e.createAccount("a", nil)
	capture := func(id string, q int) resp {
		return e.do("POST", "/v1/holds/"+id+"/capture", map[string]any{"quantity": q})
	}
	release := func(id, reason string) resp {
		return e.do("POST", "/v1/holds/"+id+"/release", map[string]any{"reason": reason})
	}
	t.Run("RepeatedCaptureReturnsFirstOutcome", func(t *testing.T) {
		h := e.reserve("a", "generate", 2).str("id")
		first := capture(h, 2)
		again := capture(h, 2)
		if first.status != 200 || again.status != 200 || string(first.raw) != string(again.raw) {
			t.Fatalf("%s\n%s", first.raw, again.raw)
		}
		if e.available("a") != 35 {
			t.Fatal("charged twice")
		}
	})
	t.Run("CaptureWithOtherQuantityConflicts", func(t *testing.T) {
		h := e.reserve("a", "generate", 2).str("id")
		capture(h, 1)
		r := capture(h, 2)
		if r.status != 409 || r.errCode() != "conflict" || r.str("error.hold.status") != "captured" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("CaptureAfterReleaseConflicts", func(t *testing.T) {
		h := e.reserve("a", "generate", 1).str("id")
		if r := release(h, "cancelled"); r.status != 200 || r.str("release_reason") != "cancelled" {
			t.Fatalf("%s", r.raw)
		}
		r := capture(h, 1)
		if r.status != 409 || r.str("error.hold.status") != "released" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if r := release(h, "cancelled"); r.status != 200 || r.str("status") != "released" {
			t.Fatalf("repeated release: %s", r.raw)
		}
	})
	t.Run("ReleaseAfterCaptureConflicts", func(t *testing.T) {
		h := e.reserve("a", "generate", 1).str("id")
		capture(h, 1)
		r := release(h, "failed")
		if r.status != 409 || r.str("error.hold.status") != "captured" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		r = e.do("POST", "/v1/holds/"+h+"/extend", map[string]any{"ttl_seconds": 60})
		if r.status != 409 {
			t.Fatalf("extend after capture: %d %s", r.status, r.raw)
		}
	})
	t.Run("ErrUnknownHold", func(t *testing.T) {
		if r := capture("hold_nope", 1); r.status != 404 || r.errCode() != "not_found" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if r := e.do("GET", "/v1/holds/hold_nope", nil); r.status != 404 {
			t.Fatalf("%d", r.status)
		}
	})
	t.Run("ErrBadReason", func(t *testing.T) {
		h := e.reserve("a", "generate", 1).str("id")
		if r := release(h, "bored"); r.status != 400 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	e.verify()
}

func TestExpiry(t *testing.T) {
	t.Run("HoldExpiresAndCannotBeCaptured", func(t *testing.T) {
		e := newEnv(t)
		e.createAccount("a", nil)
		h := e.must(201, "POST", "/v1/holds", map[string]any{"account_id": "a", "action": "generate", "quantity": 2, "ttl_seconds": 60})
		id := h.str("id")
		if h.str("expires_at") != "2026-06-15T10:01:00Z" {
			t.Fatalf("%s", h.raw)
		}
		e.advance(59 * time.Second)
		if got := e.must(200, "GET", "/v1/holds/"+id, nil); got.str("status") != "pending" {
			t.Fatalf("%s", got.raw)
		}
		e.advance(time.Second)
		if got := e.must(200, "GET", "/v1/holds/"+id, nil); got.str("status") != "expired" {
			t.Fatalf("%s", got.raw)
		}
		if b := e.balance("a"); b.num("available") != 45 || b.num("held") != 0 {
			t.Fatalf("%s", b.raw)
		}
		r := e.do("POST", "/v1/holds/"+id+"/capture", map[string]any{"quantity": 2})
		if r.status != 409 || r.str("error.hold.status") != "expired" {
			t.Fatalf("capture after expiry: %d %s", r.status, r.raw)
		}
		e.verify()
	})
	t.Run("SweeperExpiresWithoutReads", func(t *testing.T) {
		e := newEnv(t)
		e.createAccount("a", nil)
		id := e.must(201, "POST", "/v1/holds", map[string]any{"account_id": "a", "action": "generate", "ttl_seconds": 30}).str("id")
		e.advance(31 * time.Second) // the test-clock endpoint sweeps before answering
		h, err := e.store.GetHold(t.Context(), id)
		if err != nil || h.Status != ledger.HoldExpired {
			t.Fatalf("stored hold %+v, %v", h, err)
		}
	})
	t.Run("ExtendKeepsHoldAlive", func(t *testing.T) {
		e := newEnv(t)
		e.createAccount("a", nil)
		id := e.must(201, "POST", "/v1/holds", map[string]any{"account_id": "a", "action": "generate", "ttl_seconds": 60}).str("id")
		e.advance(50 * time.Second)
		x := e.must(200, "POST", "/v1/holds/"+id+"/extend", map[string]any{"ttl_seconds": 120})
		if x.str("expires_at") != "2026-06-15T10:02:50Z" {
			t.Fatalf("%s", x.raw)
		}
		e.advance(100 * time.Second)
		e.must(200, "POST", "/v1/holds/"+id+"/capture", map[string]any{"quantity": 1})
		if e.available("a") != 40 {
			t.Fatal("wrong charge")
		}
		e.verify()
	})
	t.Run("DefaultTTLIsTenMinutes", func(t *testing.T) {
		e := newEnv(t)
		e.createAccount("a", nil)
		h := e.reserve("a", "generate", 1)
		if h.str("expires_at") != "2026-06-15T10:10:00Z" {
			t.Fatalf("%s", h.raw)
		}
	})
	t.Run("GrantExpires", func(t *testing.T) {
		e := newEnv(t)
		e.createAccount("a", map[string]any{"plan": "paid"})
		exp := e.clock.Now().Add(time.Hour).Format(time.RFC3339)
		g := e.must(201, "POST", "/v1/accounts/a/grants", map[string]any{"amount": 10, "source": "promo", "expires_at": exp})
		if g.str("expires_at") != "2026-06-15T11:00:00Z" {
			t.Fatalf("%s", g.raw)
		}
		h := e.reserve("a", "generate", 1) // from the expiring promo
		if e.available("a") != 35 {
			t.Fatalf("available %d", e.available("a"))
		}
		e.advance(time.Hour)
		if e.available("a") != 30 {
			t.Fatalf("available %d after promo expiry, want 30", e.available("a"))
		}
		e.must(200, "POST", "/v1/holds/"+h.str("id")+"/release", map[string]any{"reason": "error"})
		if e.available("a") != 30 {
			t.Fatal("credits returned to an expired grant became spendable")
		}
		found := false
		for _, en := range e.entries("a") {
			if en["type"] == "expiry" && en["source"] == "promo" && en["amount"].(float64) == 5 {
				found = true
			}
		}
		if !found {
			t.Fatalf("no expiry entry: %v", e.entries("a"))
		}
		e.verify()
	})
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t)
	e.createAccount("a", nil)
	key := func(k string) hdr { return hdr{"Idempotency-Key": k} }
	body := map[string]any{"account_id": "a", "action": "generate", "quantity": 1}
	t.Run("SameKeySameBodyReturnsFirstResponse", func(t *testing.T) {
		first := e.must(201, "POST", "/v1/holds", body, key("k1"))
		again := e.must(201, "POST", "/v1/holds", body, key("k1"))
		if string(first.raw) != string(again.raw) || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("%s\n%s", first.raw, again.raw)
		}
		if b := e.balance("a"); b.num("held") != 5 {
			t.Fatalf("replay reserved again: %s", b.raw)
		}
	})
	t.Run("SameKeyOtherBodyIsMismatch", func(t *testing.T) {
		other := map[string]any{"account_id": "a", "action": "generate", "quantity": 2}
		r := e.do("POST", "/v1/holds", other, key("k1"))
		if r.status != 422 || r.errCode() != "idempotency_mismatch" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		r = e.do("POST", "/v1/accounts/a/grants", map[string]any{"amount": 1, "source": "admin"}, key("k1"))
		if r.status != 422 {
			t.Fatalf("same key on another path: %d %s", r.status, r.raw)
		}
	})
	t.Run("ConcurrentSameKeyRunsOnce", func(t *testing.T) {
		var wg sync.WaitGroup
		ids := make([]string, 20)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.do("POST", "/v1/holds", body, key("k-concurrent"))
				ids[i] = fmt.Sprint(r.status, r.str("id"))
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] || !strings.HasPrefix(id, "201hold_") {
				t.Fatalf("responses differ: %v", ids)
			}
		}
		if b := e.balance("a"); b.num("held") != 10 {
			t.Fatalf("%s", b.raw)
		}
	})
	t.Run("CaptureReplay", func(t *testing.T) {
		h := e.reserve("a", "generate", 2).str("id")
		c := map[string]any{"quantity": 2}
		first := e.must(200, "POST", "/v1/holds/"+h+"/capture", c, key("cap"))
		again := e.must(200, "POST", "/v1/holds/"+h+"/capture", c, key("cap"))
		if string(first.raw) != string(again.raw) {
			t.Fatal("replayed capture differs")
		}
	})
	t.Run("RefusedRequestIsNotStored", func(t *testing.T) {
		v := map[string]any{"account_id": "a", "action": "video"}
		if r := e.do("POST", "/v1/holds", v, key("vid")); r.status != 402 {
			t.Fatalf("%d", r.status)
		}
		e.must(201, "POST", "/v1/accounts/a/grants", map[string]any{"amount": 60, "source": "purchase"})
		e.must(201, "POST", "/v1/holds", v, key("vid"))
	})
	t.Run("GrantReference", func(t *testing.T) {
		g := map[string]any{"amount": 100, "source": "purchase", "reference": "cs_test_123"}
		first := e.must(201, "POST", "/v1/accounts/a/grants", g)
		again := e.must(200, "POST", "/v1/accounts/a/grants", g)
		if first.str("id") != again.str("id") {
			t.Fatal("reference granted twice")
		}
		g["amount"] = 50
		if r := e.do("POST", "/v1/accounts/a/grants", g); r.status != 409 || r.str("error.grant.id") != first.str("id") {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("PutAccountWithKey", func(t *testing.T) {
		first := e.must(201, "PUT", "/v1/accounts/b", map[string]any{}, key("acct-b"))
		again := e.must(201, "PUT", "/v1/accounts/b", map[string]any{}, key("acct-b"))
		if string(first.raw) != string(again.raw) {
			t.Fatal("replay differs")
		}
	})
	t.Run("KeysAreKeptForADayThenForgotten", func(t *testing.T) {
		e.advance(23 * time.Hour)
		e.eng.SweepIdempotencyKeys(t.Context(), e.clock.Now())
		if r := e.do("POST", "/v1/holds", body, key("k1")); r.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("key forgotten within 24h: %d %s", r.status, r.raw)
		}
		e.advance(2 * time.Hour)
		e.eng.SweepIdempotencyKeys(t.Context(), e.clock.Now())
		if r := e.do("POST", "/v1/holds", body, key("k1")); r.status != 201 || r.header.Get("Idempotent-Replayed") == "true" {
			t.Fatalf("key still answered after 25h: %d %s", r.status, r.raw)
		}
	})
	e.verify()
}

func TestLockedPrice(t *testing.T) {
	dir := t.TempDir()
	clock := ledger.NewTestClock(mustTime("2026-06-15T10:00:00Z"))
	e := newEnv(t, inDir(dir), withClock(clock))
	e.createAccount("a", nil)
	h := e.reserve("a", "generate", 2).str("id")
	e.close()

	cfg := ledger.DefaultConfig()
	for i := range cfg.Prices {
		if cfg.Prices[i].Action == "generate" {
			cfg.Prices[i].UnitCredits = 10
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e = newEnv(t, inDir(dir), withClock(clock), withConfig(cfg))
	c := e.must(200, "POST", "/v1/holds/"+h+"/capture", map[string]any{"quantity": 2})
	if c.num("captured_amount") != 10 || c.num("unit_price") != 5 {
		t.Fatalf("price changed under a hold: %s", c.raw)
	}
	if n := e.reserve("a", "generate", 1); n.num("unit_price") != 10 {
		t.Fatalf("new price not applied: %s", n.raw)
	}
	e.verify()
}

func TestPlanAndTimezoneChanges(t *testing.T) {
	t.Run("LeavingFreeEndsDailyCredits", func(t *testing.T) {
		e := newEnv(t)
		e.createAccount("a", nil)
		b := e.must(200, "PUT", "/v1/accounts/a", map[string]any{"plan": "paid"})
		if b.str("plan") != "paid" {
			t.Fatalf("%s", b.raw)
		}
		bal := e.balance("a")
		if bal.num("available") != 30 || bal.get("next_daily_refresh_at") != nil {
			t.Fatalf("%s", bal.raw)
		}
		e.advance(48 * time.Hour)
		if e.available("a") != 30 {
			t.Fatal("daily credits on the paid plan")
		}
		es := e.entries("a")
		found := false
		for _, en := range es {
			if en["type"] == "expiry" && en["reason"] == "plan_change" && en["amount"].(float64) == 15 {
				found = true
			}
		}
		if !found {
			t.Fatalf("no plan_change expiry: %v", es)
		}
		e.must(200, "PUT", "/v1/accounts/a", map[string]any{"plan": "free"})
		if e.available("a") != 45 {
			t.Fatal("back on free on a new day: no allowance")
		}
		e.verify()
	})
	t.Run("PlanFlipSameDayNoSecondAllowance", func(t *testing.T) {
		e := newEnv(t)
		e.createAccount("a", nil)
		e.reserve("a", "generate", 1)
		e.must(200, "PUT", "/v1/accounts/a", map[string]any{"plan": "paid"})
		e.must(200, "PUT", "/v1/accounts/a", map[string]any{"plan": "free"})
		if b := e.balance("a"); b.num("available") != 30 || b.num("held") != 5 {
			t.Fatalf("want signup 30 available and 5 held from the ended daily bucket: %s", b.raw)
		}
		if got := bucketsBySource(e.balance("a"))["daily"]; got != 0 {
			t.Fatalf("second allowance on the same day: %d", got)
		}
		bal := e.balance("a")
		if bal.str("next_daily_refresh_at") != "2026-06-16T00:00:00Z" {
			t.Fatalf("%s", bal.raw)
		}
		e.verify()
	})
	t.Run("TimezoneEastwardTakesEffectAtNextRefresh", func(t *testing.T) {
		e := newEnv(t, startingAt(mustTime("2026-06-15T23:00:00Z")))
		e.createAccount("a", nil)
		e.must(200, "PUT", "/v1/accounts/a", map[string]any{"timezone": "Asia/Tokyo"}) // already 06-16 08:00 there
		b := e.balance("a")
		if b.num("available") != 45 || b.str("next_daily_refresh_at") != "2026-06-16T00:00:00Z" {
			t.Fatalf("%s", b.raw)
		}
		e.advance(time.Hour)
		b = e.balance("a")
		if bucketsBySource(b)["daily"] != 15 || b.str("next_daily_refresh_at") != "2026-06-16T15:00:00Z" {
			t.Fatalf("%s", b.raw)
		}
		e.verify()
	})
	t.Run("TimezoneWestwardNoSecondAllowance", func(t *testing.T) {
		e := newEnv(t, startingAt(mustTime("2026-06-15T16:00:00Z"))) // 06-16 01:00 in Tokyo
		e.createAccount("a", map[string]any{"timezone": "Asia/Tokyo"})
		e.must(200, "PUT", "/v1/accounts/a", map[string]any{"timezone": "America/Los_Angeles"}) // 06-15 09:00 there
		b := e.balance("a")
		if b.str("next_daily_refresh_at") != "2026-06-17T07:00:00Z" {
			t.Fatalf("next refresh %s, want LA midnight after 06-16", b.str("next_daily_refresh_at"))
		}
		e.setClock(mustTime("2026-06-16T15:00:00Z")) // Tokyo midnight: the 06-16 bucket ends; LA is still on 06-16
		if e.available("a") != 30 {
			t.Fatalf("available %d, want 30", e.available("a"))
		}
		e.setClock(mustTime("2026-06-17T07:00:00Z"))
		if e.available("a") != 45 {
			t.Fatalf("available %d at LA midnight, want 45", e.available("a"))
		}
		e.verify()
	})
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	e.createAccount("a", nil)
	hold := e.reserve("a", "generate", 1).str("id")
	beforeEntries := e.entryCount("a")
	beforeBalance := string(e.balance("a").raw)
	past := e.clock.Now().Add(-time.Hour).Format(time.RFC3339)
	big := `{"amount":5,"source":"admin","reference":"` + strings.Repeat("x", 70<<10) + `"}`
	cases := []struct {
		name, method, path string
		body               any
		headers            hdr
		status             int
		code               string
	}{
		{"MalformedJSON", "POST", "/v1/accounts/a/grants", `{"amount":`, nil, 400, "invalid_request"},
		{"NotAnObject", "POST", "/v1/accounts/a/grants", `[1,2]`, nil, 400, "invalid_request"},
		{"TrailingData", "POST", "/v1/accounts/a/grants", `{"amount":5,"source":"admin"} {}`, nil, 400, "invalid_request"},
		{"UnknownField", "POST", "/v1/accounts/a/grants", `{"amount":5,"source":"admin","bogus":1}`, nil, 400, "invalid_request"},
		{"ZeroAmount", "POST", "/v1/accounts/a/grants", `{"amount":0,"source":"admin"}`, nil, 400, "invalid_request"},
		{"NegativeAmount", "POST", "/v1/accounts/a/grants", `{"amount":-5,"source":"admin"}`, nil, 400, "invalid_request"},
		{"OverflowingAmount", "POST", "/v1/accounts/a/grants", `{"amount":99999999999999999999,"source":"admin"}`, nil, 400, "invalid_request"},
		{"AmountOverLimit", "POST", "/v1/accounts/a/grants", `{"amount":9223372036854775807,"source":"admin"}`, nil, 400, "invalid_request"},
		{"FractionalAmount", "POST", "/v1/accounts/a/grants", `{"amount":5.5,"source":"admin"}`, nil, 400, "invalid_request"},
		{"StringAmount", "POST", "/v1/accounts/a/grants", `{"amount":"5","source":"admin"}`, nil, 400, "invalid_request"},
		{"UnknownSource", "POST", "/v1/accounts/a/grants", `{"amount":5,"source":"gift"}`, nil, 400, "invalid_request"},
		{"MissingSource", "POST", "/v1/accounts/a/grants", `{"amount":5}`, nil, 400, "invalid_request"},
		{"SignupNotGrantable", "POST", "/v1/accounts/a/grants", `{"amount":5,"source":"signup"}`, nil, 400, "invalid_request"},
		{"DailyNotGrantable", "POST", "/v1/accounts/a/grants", `{"amount":5,"source":"daily"}`, nil, 400, "invalid_request"},
		{"ExpiryInPast", "POST", "/v1/accounts/a/grants", `{"amount":5,"source":"admin","expires_at":"` + past + `"}`, nil, 400, "invalid_request"},
		{"BadExpiry", "POST", "/v1/accounts/a/grants", `{"amount":5,"source":"admin","expires_at":"tomorrow"}`, nil, 400, "invalid_request"},
		{"BadReference", "POST", "/v1/accounts/a/grants", `{"amount":5,"source":"admin","reference":"a b"}`, nil, 400, "invalid_request"},
		{"BodyTooLarge", "POST", "/v1/accounts/a/grants", big, nil, 413, "request_too_large"},
		{"GrantUnknownAccount", "POST", "/v1/accounts/zz/grants", `{"amount":5,"source":"admin"}`, nil, 404, "not_found"},
		{"UnknownAction", "POST", "/v1/holds", `{"account_id":"a","action":"teleport"}`, nil, 400, "invalid_request"},
		{"MissingAction", "POST", "/v1/holds", `{"account_id":"a"}`, nil, 400, "invalid_request"},
		{"ZeroQuantity", "POST", "/v1/holds", `{"account_id":"a","action":"generate","quantity":0}`, nil, 400, "invalid_request"},
		{"NegativeQuantity", "POST", "/v1/holds", `{"account_id":"a","action":"generate","quantity":-1}`, nil, 400, "invalid_request"},
		{"HugeQuantity", "POST", "/v1/holds", `{"account_id":"a","action":"generate","quantity":9223372036854775807}`, nil, 400, "invalid_request"},
		{"ZeroTTL", "POST", "/v1/holds", `{"account_id":"a","action":"generate","ttl_seconds":0}`, nil, 400, "invalid_request"},
		{"TTLOverLimit", "POST", "/v1/holds", `{"account_id":"a","action":"generate","ttl_seconds":100000000}`, nil, 400, "invalid_request"},
		{"HoldUnknownAccount", "POST", "/v1/holds", `{"account_id":"zz","action":"generate"}`, nil, 404, "not_found"},
		{"BadTimezone", "PUT", "/v1/accounts/b", `{"timezone":"Mars/Olympus"}`, nil, 400, "invalid_request"},
		{"LocalTimezone", "PUT", "/v1/accounts/b", `{"timezone":"Local"}`, nil, 400, "invalid_request"},
		{"BadPlan", "PUT", "/v1/accounts/b", `{"plan":"gold"}`, nil, 400, "invalid_request"},
		{"BadAccountID", "PUT", "/v1/accounts/bad%20id", `{}`, nil, 400, "invalid_request"},
		{"LongAccountID", "PUT", "/v1/accounts/" + strings.Repeat("x", 65), `{}`, nil, 400, "invalid_request"},
		{"UpdateBadTimezone", "PUT", "/v1/accounts/a", `{"timezone":"Nowhere"}`, nil, 400, "invalid_request"},
		{"CaptureWithoutQuantity", "POST", "/v1/holds/" + hold + "/capture", `{}`, nil, 400, "invalid_request"},
		{"ReleaseWithoutReason", "POST", "/v1/holds/" + hold + "/release", `{}`, nil, 400, "invalid_request"},
		{"ExtendZero", "POST", "/v1/holds/" + hold + "/extend", `{"ttl_seconds":0}`, nil, 400, "invalid_request"},
		{"QuoteUnknownAction", "GET", "/v1/accounts/a/quote?action=teleport", nil, nil, 400, "invalid_request"},
		{"QuoteZeroQuantity", "GET", "/v1/accounts/a/quote?action=generate&quantity=0", nil, nil, 400, "invalid_request"},
		{"QuoteBadQuantity", "GET", "/v1/accounts/a/quote?action=generate&quantity=x", nil, nil, 400, "invalid_request"},
		{"EntriesZeroLimit", "GET", "/v1/accounts/a/entries?limit=0", nil, nil, 400, "invalid_request"},
		{"EntriesLimitOverMax", "GET", "/v1/accounts/a/entries?limit=100000", nil, nil, 400, "invalid_request"},
		{"EntriesBadCursor", "GET", "/v1/accounts/a/entries?cursor=abc", nil, nil, 400, "invalid_request"},
		{"LongIdempotencyKey", "POST", "/v1/accounts/a/grants", `{"amount":5,"source":"admin"}`, hdr{"Idempotency-Key": strings.Repeat("k", 256)}, 400, "invalid_request"},
		{"NoAuth", "GET", "/v1/accounts/a", nil, hdr{"Authorization": ""}, 401, "unauthenticated"},
		{"WrongKey", "POST", "/v1/accounts/a/grants", `{"amount":5,"source":"admin"}`, hdr{"Authorization": "Bearer nope"}, 401, "unauthenticated"},
		{"NotBearer", "GET", "/v1/accounts/a", nil, hdr{"Authorization": "Basic " + adminKey}, 401, "unauthenticated"},
		{"UnknownRoute", "GET", "/v1/nothing", nil, nil, 404, "not_found"},
		{"WrongMethod", "DELETE", "/v1/holds/" + hold, nil, nil, 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hs []hdr
			if c.headers != nil {
				hs = append(hs, c.headers)
			}
			r := e.do(c.method, c.path, c.body, hs...)
			if r.status != c.status || r.errCode() != c.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, c.status, c.code)
			}
			if msg := r.str("error.message"); msg == "" {
				t.Fatal("no error message")
			}
		})
	}
	// Type errors are told in JSON's terms, not Go's.
	for _, c := range []struct{ path, body, want string }{
		{"/v1/accounts/a/grants", `[1,2]`, "the request body must be a JSON object"},
		{"/v1/holds", `"x"`, "the request body must be a JSON object"},
		{"/v1/holds", `{"account_id":"a","action":"generate","quantity":"3"}`, `field "quantity" must be an integer within 64-bit range`},
		{"/v1/holds", `{"account_id":7,"action":"generate"}`, `field "account_id" must be a string`},
	} {
		if r := e.do("POST", c.path, c.body); r.status != 400 || r.str("error.message") != c.want {
			t.Errorf("POST %s %s: %d %q, want 400 %q", c.path, c.body, r.status, r.str("error.message"), c.want)
		}
	}
	if got := e.entryCount("a"); got != beforeEntries {
		t.Fatalf("bad input wrote entries: %d → %d", beforeEntries, got)
	}
	if got := string(e.balance("a").raw); got != beforeBalance {
		t.Fatalf("bad input changed the balance:\n%s\n%s", beforeBalance, got)
	}
	if r := e.do("GET", "/v1/accounts/b", nil); r.status != 404 {
		t.Fatal("a refused PUT created the account")
	}
	e.verify()
}

func TestServiceEndpoints(t *testing.T) {
	e := newEnv(t)
	t.Run("HealthzNeedsNoKey", func(t *testing.T) {
		r := e.must(200, "GET", "/healthz", nil, hdr{"Authorization": ""})
		if r.str("status") != "ok" {
			t.Fatalf("%s", r.raw)
		}
	})
	t.Run("Metrics", func(t *testing.T) {
		e.createAccount("a", nil)
		res, err := http.Get(e.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if !strings.Contains(string(b), "creditd_http_requests_total") {
			t.Fatalf("metrics: %s", b)
		}
	})
	t.Run("Prices", func(t *testing.T) {
		r := e.must(200, "GET", "/v1/prices", nil)
		prices := map[string]float64{}
		for _, p := range r.body["data"].([]any) {
			m := p.(map[string]any)
			prices[m["action"].(string)] = m["unit_credits"].(float64)
		}
		for _, a := range []string{"generate", "edit", "style_transfer", "upscale", "expand", "inpaint", "erase", "replace_background", "remove_background", "redux", "adjust", "filter", "crop"} {
			if prices[a] != 5 {
				t.Errorf("%s costs %v", a, prices[a])
			}
		}
		if prices["video"] != 60 {
			t.Errorf("video costs %v", prices["video"])
		}
	})
	t.Run("TestClock", func(t *testing.T) {
		r := e.must(200, "GET", "/v1/test-clock", nil)
		if r.str("now") != "2026-06-15T10:00:00Z" {
			t.Fatalf("%s", r.raw)
		}
		if r := e.do("POST", "/v1/test-clock", map[string]any{"now": "2020-01-01T00:00:00Z"}); r.status != 400 {
			t.Fatalf("moved backwards: %d", r.status)
		}
		if r := e.do("POST", "/v1/test-clock", map[string]any{"advance_seconds": 1, "now": "2030-01-01T00:00:00Z"}); r.status != 400 {
			t.Fatalf("both fields: %d", r.status)
		}
	})
	t.Run("NoTestClockWithoutFlag", func(t *testing.T) {
		p := newEnv(t, withoutTestClock())
		for _, m := range []string{"GET", "POST"} {
			if r := p.do(m, "/v1/test-clock", map[string]any{"advance_seconds": 1}); r.status != 404 {
				t.Fatalf("%s: %d", m, r.status)
			}
		}
	})
}

func TestConcurrentReservesNeverOverspend(t *testing.T) {
	e := newEnv(t)
	e.createAccount("a", nil) // 45 available
	const n = 200
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i] = e.do("POST", "/v1/holds", map[string]any{"account_id": "a", "action": "generate"}).status
		}()
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[201] != 9 || count[402] != n-9 {
		t.Fatalf("statuses %v, want 9×201 and %d×402", count, n-9)
	}
	if b := e.balance("a"); b.num("available") != 0 || b.num("held") != 45 {
		t.Fatalf("%s", b.raw)
	}
	e.verify()
}
