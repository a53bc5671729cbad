package httpapi_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/ledger"
)

// events returns every webhook event, oldest first, following cursors.
func (e *env) events() []resp {
	e.t.Helper()
	var out []resp
	cursor := ""
	for {
		path := "/v1/events?limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := e.must(200, "GET", path, nil)
		for _, d := range r.body["data"].([]any) {
			out = append(out, resp{status: 200, body: d.(map[string]any)})
		}
		if r.body["has_more"] != true {
			return out
		}
		cursor = r.str("next_cursor")
	}
}

// eventsOf returns the events of one type for an account after skip of
// all events.
func eventsOf(evs []resp, typ, account string) []resp {
	var out []resp
	for _, ev := range evs {
		if ev.str("type") == typ && ev.str("account_id") == account {
			out = append(out, ev)
		}
	}
	return out
}

func wantEvents(t *testing.T, evs []resp, typ, account string, n int) []resp {
	t.Helper()
	got := eventsOf(evs, typ, account)
	if len(got) != n {
		var types []string
		for _, ev := range evs {
			types = append(types, ev.str("type")+"/"+ev.str("account_id"))
		}
		t.Fatalf("%d %s events of %s, want %d; all: %v", len(got), typ, account, n, types)
	}
	return got
}

// TestEventsOfLedgerChanges: each change writes its event in its commit,
// with the API's shapes in data; GET /v1/events pages them oldest first and
// GET /v1/events/{id} reads one.
func TestEventsOfLedgerChanges(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		e.createAccount("ev", map[string]any{"plan": "paid"})
		grant := e.must(201, "POST", "/v1/accounts/ev/grants", map[string]any{"amount": 20, "source": "purchase", "reference": "cs_1"})
		e.must(200, "POST", "/v1/accounts/ev/grants", map[string]any{"amount": 20, "source": "purchase", "reference": "cs_1"})
		e.must(201, "POST", "/v1/accounts/ev/grants", map[string]any{"amount": 5, "source": "promo"})
		evs := e.events()
		created := wantEvents(t, evs, ledger.EventAccountCreated, "ev", 1)[0]
		if created.str("data.account.id") != "ev" || created.str("data.account_id") != "ev" || created.num("data.account.low_balance_threshold") != 10 {
			t.Errorf("account.created = %v", created.body)
		}
		grants := wantEvents(t, evs, ledger.EventGrantCreated, "ev", 3) // signup, purchase, promo
		if grants[1].str("data.grant.id") != grant.str("id") || grants[1].str("data.entry.type") != "grant" || grants[1].num("data.grant.amount") != 20 {
			t.Errorf("grant.created = %v", grants[1].body)
		}
		purchase := wantEvents(t, evs, ledger.EventPurchaseCompleted, "ev", 1)[0]
		if purchase.str("data.grant.id") != grant.str("id") {
			t.Errorf("purchase.completed = %v", purchase.body)
		}
		if evs[0].str("type") != ledger.EventAccountCreated || len(evs) != 5 {
			t.Errorf("events: %d, first %s", len(evs), evs[0].str("type"))
		}
		one := e.must(200, "GET", "/v1/events/"+purchase.str("id"), nil)
		if one.str("type") != ledger.EventPurchaseCompleted || one.str("timestamp") != purchase.str("timestamp") {
			t.Errorf("GET /v1/events/{id} = %s", one.raw)
		}
		e.must(404, "GET", "/v1/events/evt_01ABCDEFGHJKMNPQRSTVWXYZ00", nil)
		e.must(400, "GET", "/v1/events?limit=0", nil)
		e.must(400, "GET", "/v1/events?cursor=x", nil)

		// A hold that expires on an idle account: written and announced
		// when due, at its expiry.
		h := e.must(201, "POST", "/v1/holds", map[string]any{"account_id": "ev", "action": "crop", "quantity": 1, "ttl_seconds": 60})
		e.advance(61 * time.Second)
		exp := wantEvents(t, e.events(), ledger.EventHoldExpired, "ev", 1)[0]
		if exp.str("data.hold.id") != h.str("id") || exp.str("data.hold.status") != "expired" || exp.str("timestamp") != h.str("expires_at") {
			t.Errorf("hold.expired = %v, hold %s", exp.body, h.raw)
		}

		// Refunds: purchase.refunded once, however often Stripe says so.
		for range 2 {
			if _, err := e.app.Refund(t.Context(), "ev", ledger.SourcePurchase, "cs_1", "ch_1"); err != nil {
				t.Fatal(err)
			}
		}
		ref := wantEvents(t, e.events(), ledger.EventPurchaseRefunded, "ev", 1)[0]
		if ref.str("data.grant.id") != grant.str("id") || ref.num("data.taken") != 20 {
			t.Errorf("purchase.refunded = %v", ref.body)
		}
		e.verify()
	})
}

// TestJobEvents: job.succeeded, job.failed, job.cancelled and
// job.interrupted, each with the job as the API shows it.
func TestJobEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		e.createAccount("jb", map[string]any{"plan": "paid"})
		src := e.upload(adminKey, "jb", pngImage(8, 8), 201).str("id")
		ok := e.cropJob("jb", src)
		job, lease := e.leaseJob()
		out := e.must(201, "POST", "/v1/worker/jobs/"+job+"/outputs?lease_id="+lease, pngImage(4, 4), pngType).str("id")
		e.must(200, "POST", "/v1/worker/jobs/"+job+"/complete", map[string]any{"lease_id": lease, "outputs": []string{out}})
		failed := e.cropJob("jb", src)
		_, lease = e.leaseJob()
		e.must(200, "POST", "/v1/worker/jobs/"+failed+"/fail", map[string]any{"lease_id": lease, "error": "bad input", "retryable": false})
		cancelled := e.cropJob("jb", src)
		e.must(200, "POST", "/v1/jobs/"+cancelled+"/cancel", nil)
		// No worker serves generate: the job is interrupted when it has
		// waited job_no_worker_seconds_max.
		unserved := e.generateJob("jb", 1)
		e.advance(11 * time.Minute)
		evs := e.events()
		if i := wantEvents(t, evs, ledger.EventJobInterrupted, "jb", 1)[0]; i.str("data.job.id") != unserved || i.str("data.job.status") != "interrupted" {
			t.Errorf("job.interrupted = %v", i.body)
		}
		if s := wantEvents(t, evs, ledger.EventJobSucceeded, "jb", 1)[0]; s.str("data.job.id") != ok || s.str("data.job.status") != "succeeded" || s.num("data.job.charged") != 5 {
			t.Errorf("job.succeeded = %v", s.body)
		}
		if f := wantEvents(t, evs, ledger.EventJobFailed, "jb", 1)[0]; f.str("data.job.id") != failed {
			t.Errorf("job.failed = %v", f.body)
		}
		if c := wantEvents(t, evs, ledger.EventJobCancelled, "jb", 1)[0]; c.str("data.job.id") != cancelled {
			t.Errorf("job.cancelled = %v", c.body)
		}
	})
}

// TestBalanceAlerts: credits.low fires once as credits fall through the
// line and keep falling; credits.depleted once when no image action is
// affordable; releasing credits does not re-arm them, a grant that lifts
// the account above the line does.
func TestBalanceAlerts(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		e.createAccount("al", map[string]any{"plan": "paid"}) // 30 signup credits
		count := func(typ string) int { return len(eventsOf(e.events(), typ, "al")) }
		h1 := e.reserve("al", "generate", 4) // 10 left: not below 10
		if n := count(ledger.EventCreditsLow); n != 0 {
			t.Fatalf("credits.low at the line: %d", n)
		}
		h2 := e.reserve("al", "generate", 1) // 5 left
		low := wantEvents(t, e.events(), ledger.EventCreditsLow, "al", 1)[0]
		if low.num("data.balance.available") != 5 || low.num("data.low_balance_threshold") != 10 {
			t.Errorf("credits.low = %v", low.body)
		}
		h3 := e.reserve("al", "generate", 1) // 0 left: depleted, and no second credits.low
		if count(ledger.EventCreditsLow) != 1 || count(ledger.EventCreditsDepleted) != 1 {
			t.Fatalf("after depletion: %d credits.low, %d credits.depleted", count(ledger.EventCreditsLow), count(ledger.EventCreditsDepleted))
		}
		for _, h := range []resp{h1, h2, h3} {
			e.must(200, "POST", "/v1/holds/"+h.str("id")+"/release", map[string]any{"reason": "failed"})
		}
		h := e.reserve("al", "generate", 6) // down to 0 again: no re-arm without a grant
		if count(ledger.EventCreditsLow) != 1 || count(ledger.EventCreditsDepleted) != 1 {
			t.Fatalf("a release re-armed: %d credits.low, %d credits.depleted", count(ledger.EventCreditsLow), count(ledger.EventCreditsDepleted))
		}
		e.must(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 6})
		e.must(201, "POST", "/v1/accounts/al/grants", map[string]any{"amount": 8, "source": "promo"}) // 8: above depleted, below low
		e.reserve("al", "generate", 1)                                                                // 3 left
		if count(ledger.EventCreditsLow) != 1 || count(ledger.EventCreditsDepleted) != 2 {
			t.Fatalf("a grant below the line: %d credits.low, %d credits.depleted; want 1, 2", count(ledger.EventCreditsLow), count(ledger.EventCreditsDepleted))
		}
		e.must(201, "POST", "/v1/accounts/al/grants", map[string]any{"amount": 100, "source": "purchase"})
		e.reserve("al", "generate", 20) // 3 left
		if count(ledger.EventCreditsLow) != 2 {
			t.Fatalf("a purchase did not re-arm credits.low: %d", count(ledger.EventCreditsLow))
		}
		e.verify()
	})
}

// TestDailyRefreshDoesNotRearm: a free user who spends the daily allowance
// hears credits.low once, not every day.
func TestDailyRefreshDoesNotRearm(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		e.createAccount("fr", nil) // 30 signup + 15 daily
		count := func() int { return len(eventsOf(e.events(), ledger.EventCreditsLow, "fr")) }
		h := e.reserve("fr", "generate", 8) // 5 left
		e.must(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 8})
		if count() != 1 {
			t.Fatalf("credits.low: %d, want 1", count())
		}
		for range 3 {
			e.advance(24 * time.Hour)
			if got := e.available("fr"); got < 15 {
				t.Fatalf("available %d after a daily refresh", got)
			}
			h := e.reserve("fr", "generate", 3)
			e.must(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 3})
		}
		if count() != 1 {
			t.Fatalf("credits.low after three daily refreshes: %d, want 1", count())
		}
	})
}

// TestIdleAccountExpiry: an idle account's purchased bucket gets its
// credits.expiring notice and its expiry written and announced when due,
// at the due times, without anybody touching the account.
func TestIdleAccountExpiry(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		e.createAccount("idle", map[string]any{"plan": "paid"})
		expires := e.app.Now().Add(100 * time.Hour).UTC().Truncate(time.Second)
		g := e.must(201, "POST", "/v1/accounts/idle/grants", map[string]any{"amount": 40, "source": "purchase", "expires_at": expires})
		e.advance(27 * time.Hour)
		wantEvents(t, e.events(), ledger.EventCreditsExpiring, "idle", 0)
		e.advance(2 * time.Hour)
		n := wantEvents(t, e.events(), ledger.EventCreditsExpiring, "idle", 1)[0]
		if n.str("data.grant.id") != g.str("id") || n.num("data.expiring") != 40 || n.str("timestamp") != expires.Add(-72*time.Hour).Format(time.RFC3339) {
			t.Errorf("credits.expiring = %v", n.body)
		}
		wantEvents(t, e.events(), ledger.EventGrantExpired, "idle", 0)
		e.advance(72 * time.Hour)
		ex := wantEvents(t, e.events(), ledger.EventGrantExpired, "idle", 1)[0]
		if ex.str("data.grant.id") != g.str("id") || ex.num("data.grant.expired") != 40 || ex.str("timestamp") != expires.Format(time.RFC3339) {
			t.Errorf("grant.expired = %v", ex.body)
		}
		wantEvents(t, e.events(), ledger.EventCreditsExpiring, "idle", 1)
		e.verify()
	})
}

// TestLowBalanceThresholdInput: PUT /v1/accounts/{id} sets the threshold;
// anything but an integer 0..10^12 is 400 and changes nothing.
func TestLowBalanceThresholdInput(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		if got := e.createAccount("th", map[string]any{"low_balance_threshold": 25}).num("low_balance_threshold"); got != 25 {
			t.Fatalf("created with threshold %d, want 25", got)
		}
		for _, bad := range []string{`{"low_balance_threshold":-1}`, `{"low_balance_threshold":"10"}`, `{"low_balance_threshold":1.5}`,
			`{"low_balance_threshold":1000000000001}`, `{"low_balance_threshold":true}`, `{"low_balance_threshold":99999999999999999999}`} {
			if r := e.do("PUT", "/v1/accounts/th", bad, hdr{"Content-Type": "application/json"}); r.status != 400 {
				t.Errorf("%s: %d %s, want 400", bad, r.status, r.raw)
			}
		}
		if r := e.do("PUT", "/v1/accounts/new", `{"low_balance_threshold":-5}`); r.status != 400 {
			t.Errorf("creating with a negative threshold: %d, want 400", r.status)
		}
		e.must(404, "GET", "/v1/accounts/new", nil)
		if got := e.must(200, "GET", "/v1/accounts/th", nil).num("low_balance_threshold"); got != 25 {
			t.Errorf("threshold %d after bad input, want 25", got)
		}
		if got := e.must(200, "PUT", "/v1/accounts/th", map[string]any{"low_balance_threshold": 0}).num("low_balance_threshold"); got != 0 {
			t.Errorf("threshold %d, want 0", got)
		}
		// Raising the line above the credits available fires credits.low.
		e.must(200, "PUT", "/v1/accounts/th", map[string]any{"low_balance_threshold": 1000})
		wantEvents(t, e.events(), ledger.EventCreditsLow, "th", 1)
	})
}

// TestEventsAcrossNodes: three nodes on one PostgreSQL database write
// events concurrently while a reader follows them by seq, as the webhook
// dispatcher does: the reader never skips an event that commits later
// with a smaller seq, and every change has exactly one event.
func TestEventsAcrossNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	clock := ledger.NewTestClock(mustTime("2026-06-15T10:00:00Z"))
	var nodes []*env
	for range 3 {
		nodes = append(nodes, newEnv(t, onPostgresDSN(dsn), withClock(clock)))
	}
	const perNode = 40
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i, e := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perNode {
				id := fmt.Sprintf("n%d-%d", i, k)
				if r := e.do("PUT", "/v1/accounts/"+id, map[string]any{}); r.status != 201 {
					t.Errorf("create %s: %d %s", id, r.status, r.raw)
					return
				}
				if r := e.do("POST", "/v1/accounts/"+id+"/grants", map[string]any{"amount": 7, "source": "admin"}); r.status != 201 {
					t.Errorf("grant %s: %d %s", id, r.status, r.raw)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	seen := map[string]bool{}
	var last int64
	follow := func() {
		for {
			evs, err := nodes[0].app.Events(t.Context(), last, 50)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) == 0 {
				return
			}
			for _, ev := range evs {
				if ev.Seq <= last {
					t.Fatalf("seq %d after %d", ev.Seq, last)
				}
				last = ev.Seq
				if seen[ev.ID] {
					t.Fatalf("event %s twice", ev.ID)
				}
				seen[ev.ID] = true
			}
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		follow()
	}
	follow()
	all, err := nodes[1].app.Events(t.Context(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	// Per account: account.created, grant.created (signup) and, for the
	// admin grant, grant.created; free accounts also get their daily
	// allowance, which is not announced.
	if want := 3 * perNode * 3; len(all) != want {
		t.Errorf("%d events, want %d", len(all), want)
	}
	for _, ev := range all {
		if !seen[ev.ID] {
			t.Errorf("the follower skipped event %d (%s %s): it committed after a larger seq was read", ev.Seq, ev.Type, ev.AccountID)
		}
	}
}

// TestDeadlineOfAnotherNode: a bucket granted on a node that then stops
// gets its expiry notice and expiry from another node on the same
// PostgreSQL database, at the due times, the account untouched.
func TestDeadlineOfAnotherNode(t *testing.T) {
	dsn := pgtest.DSN(t)
	clock := ledger.NewTestClock(mustTime("2026-06-15T10:00:00Z"))
	a := newEnv(t, onPostgresDSN(dsn), withClock(clock))
	a.createAccount("far", map[string]any{"plan": "paid"})
	expires := clock.Now().Add(100 * time.Hour)
	g := a.must(201, "POST", "/v1/accounts/far/grants", map[string]any{"amount": 40, "source": "promo", "expires_at": expires})
	a.close()
	b := newEnv(t, onPostgresDSN(dsn), withClock(clock))
	b.advance(29 * time.Hour)
	n := wantEvents(t, b.events(), ledger.EventCreditsExpiring, "far", 1)[0]
	if n.str("data.grant.id") != g.str("id") || n.str("timestamp") != expires.Add(-72*time.Hour).Format(time.RFC3339) {
		t.Errorf("credits.expiring = %v", n.body)
	}
	b.advance(72 * time.Hour)
	if ex := wantEvents(t, b.events(), ledger.EventGrantExpired, "far", 1)[0]; ex.str("timestamp") != expires.Format(time.RFC3339) {
		t.Errorf("grant.expired = %v", ex.body)
	}
	wantEvents(t, b.events(), ledger.EventCreditsExpiring, "far", 1)
}
