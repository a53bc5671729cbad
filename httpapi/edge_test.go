package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/creditd/creditd/billing"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ledger"
)

// The text rule at the edge (issue 19): every string that can reach a
// store is valid UTF-8 without NUL and within its length, or the request
// is 400 invalid_request naming the field, with nothing written, on both
// stores. PostgreSQL refuses such text together with the whole shared
// commit that carries it; SQLite stored it and echoed invalid JSON.

// eachStoreOpt runs fn on SQLite and on PostgreSQL; fn passes the options to
// newEnv.
func eachStoreOpt(t *testing.T, fn func(t *testing.T, store envOpt)) {
	t.Run("SQLite", func(t *testing.T) { fn(t, func(*envOptions) {}) })
	t.Run("PostgreSQL", func(t *testing.T) { fn(t, onPostgres()) })
}

const (
	edgeWorkerKey = "sk_test_worker_edge"
	edgeWhsec     = "whsec_test_edge"
)

// withEdgeServices gives the server a worker key and billing with a
// webhook secret. Stripe's API is never called by the events these tests
// send (a completed checkout, a deleted subscription).
func withEdgeServices() envOpt {
	return withAPI(func(s *httpapi.Server) {
		s.WorkerKey = edgeWorkerKey
		cfg := billing.DefaultConfig()
		cfg.SecretKey, cfg.WebhookSecret = "sk_test_edge", edgeWhsec
		cfg.APIBase = "http://127.0.0.1:1"
		cfg.PaidPriceIDs = []string{"price_paid"}
		svc, err := billing.New(cfg, s.App, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			panic(err)
		}
		s.Billing = svc
	})
}

// snapshot is what bad input must not change: an account's balance and
// entries, and its jobs.
func (e *env) snapshot(id string) string {
	e.t.Helper()
	return string(e.balance(id).raw) + fmt.Sprint(e.entryCount(id)) + string(e.must(200, "GET", "/v1/accounts/"+id+"/jobs", nil).raw)
}

// wantError asserts an error answer: its status, code and a part of its
// message, in valid UTF-8 JSON.
func (r resp) wantError(t *testing.T, status int, code, message string) {
	t.Helper()
	if r.status != status || r.errCode() != code || !strings.Contains(r.str("error.message"), message) {
		t.Fatalf("got %d %s, want %d %s %q", r.status, r.raw, status, code, message)
	}
	if !utf8.Valid(r.raw) || !json.Valid(r.raw) {
		t.Fatalf("the answer is not valid UTF-8 JSON: %q", r.raw)
	}
}

// TestTextRuleAtTheEdge sends, on every input path, strings that break the
// rule (raw invalid UTF-8, \u0000 escapes, bad path ids and headers) and
// malformed, wrong-typed and oversized bodies: each is a 4xx with its code
// and a message naming the field, nothing is written, never a 5xx.
func TestTextRuleAtTheEdge(t *testing.T) {
	eachStoreOpt(t, func(t *testing.T, store envOpt) {
		e := newEnv(t, store, withEdgeServices())
		e.createAccount("a", nil)
		user := e.userToken("a")
		hold := e.reserve("a", "generate", 1).str("id")
		job := e.as(user, 201, "POST", "/v1/jobs", map[string]any{"action": "generate", "params": map[string]any{"prompt": "a cat"}}).str("id")
		queued := e.as(user, 201, "POST", "/v1/jobs", map[string]any{"action": "generate", "params": map[string]any{"prompt": "a dog"}}).str("id")
		lease := e.as(edgeWorkerKey, 200, "POST", "/v1/worker/lease", map[string]any{"actions": []string{"generate"}})
		// Both jobs were created at the same instant of the test clock, so
		// the queue orders them by id: either may be the one leased.
		switch lease.str("job.id") {
		case job:
		case queued:
			job, queued = queued, job
		default:
			t.Fatalf("leased %s, want %s or %s", lease.str("job.id"), job, queued)
		}
		leaseID := lease.str("lease_id")
		before := e.snapshot("a")
		const rule = " must be valid UTF-8 without NUL bytes"
		long := strings.Repeat("x", 65)
		cases := []struct {
			name, key, method, path string
			body                    any
			headers                 hdr
			status                  int
			code, message           string
		}{
			// Bodies: raw invalid UTF-8 and \u0000 escapes, in every kind of field.
			{"JobPromptRawFF", user, "POST", "/v1/jobs", "{\"action\":\"generate\",\"params\":{\"prompt\":\"\xff\"}}", nil, 400, "invalid_request", "params.prompt" + rule},
			{"JobPromptNUL", user, "POST", "/v1/jobs", `{"action":"generate","params":{"prompt":"a\u0000b"}}`, nil, 400, "invalid_request", "params.prompt" + rule},
			{"JobParamsDeep", user, "POST", "/v1/jobs", `{"action":"generate","params":{"styles":[{"name":"ok"},{"name":"\u0000"}]}}`, nil, 400, "invalid_request", "params.styles[1].name" + rule},
			{"JobParamsKey", user, "POST", "/v1/jobs", "{\"action\":\"generate\",\"params\":{\"\xc3\":1}}", nil, 400, "invalid_request", "a member name in params" + rule},
			{"JobActionNUL", user, "POST", "/v1/jobs", `{"action":"gen\u0000"}`, nil, 400, "invalid_request", "action" + rule},
			{"JobParamsPatch", user, "PATCH", "/v1/jobs/" + queued, `{"params":{"prompt":"\u0000"}}`, nil, 400, "invalid_request", "params.prompt" + rule},
			{"HoldAccountNUL", adminKey, "POST", "/v1/holds", `{"account_id":"x\u0000y","action":"generate"}`, nil, 400, "invalid_request", "account_id" + rule},
			{"HoldAccountRaw80", adminKey, "POST", "/v1/holds", "{\"account_id\":\"a\x80\",\"action\":\"generate\"}", nil, 400, "invalid_request", "account_id" + rule},
			{"GrantReferenceNUL", adminKey, "POST", "/v1/accounts/a/grants", `{"amount":5,"source":"admin","reference":"r\u0000"}`, nil, 400, "invalid_request", "reference" + rule},
			{"GrantReferenceTooLong", adminKey, "POST", "/v1/accounts/a/grants", `{"amount":5,"source":"admin","reference":"` + strings.Repeat("r", 256) + `"}`, nil, 400, "invalid_request", "reference must be 1-255 characters"},
			{"ReleaseReasonNUL", adminKey, "POST", "/v1/holds/" + hold + "/release", `{"reason":"failed\u0000"}`, nil, 400, "invalid_request", "reason" + rule},
			{"TimezoneNUL", adminKey, "PUT", "/v1/accounts/b", `{"timezone":"UTC\u0000"}`, nil, 400, "invalid_request", "timezone" + rule},
			{"TokenBodyRawFF", adminKey, "POST", "/v1/accounts/a/tokens", "{\"ttl_seconds\":\"\xff\"}", nil, 400, "invalid_request", "ttl_seconds" + rule},
			{"CheckoutPackNUL", user, "POST", "/v1/accounts/a/checkout", `{"pack":"small\u0000"}`, nil, 400, "invalid_request", "pack" + rule},
			{"WorkerFailErrorNUL", edgeWorkerKey, "POST", "/v1/worker/jobs/" + job + "/fail", `{"lease_id":"` + leaseID + `","error":"boom\u0000"}`, nil, 400, "invalid_request", "error" + rule},
			{"WorkerFailErrorRawFF", edgeWorkerKey, "POST", "/v1/worker/jobs/" + job + "/fail", "{\"lease_id\":\"" + leaseID + "\",\"error\":\"\xff\"}", nil, 400, "invalid_request", "error" + rule},
			{"WorkerHeartbeatLeaseNUL", edgeWorkerKey, "POST", "/v1/worker/jobs/" + job + "/heartbeat", `{"lease_id":"\u0000"}`, nil, 400, "invalid_request", "lease_id" + rule},
			{"WorkerLeaseActionNUL", edgeWorkerKey, "POST", "/v1/worker/lease", `{"actions":["generate","\u0000"]}`, nil, 400, "invalid_request", "actions[1]" + rule},
			{"WorkerCompleteOutputNUL", edgeWorkerKey, "POST", "/v1/worker/jobs/" + job + "/complete", `{"lease_id":"` + leaseID + `","outputs":["asset_\u0000"]}`, nil, 400, "invalid_request", "outputs[0]" + rule},
			// Path ids that cannot exist.
			{"JobPathNUL", user, "GET", "/v1/jobs/%00", nil, nil, 400, "invalid_request", "job id" + rule},
			{"JobPathFF", adminKey, "POST", "/v1/jobs/job_%FF/cancel", `{}`, nil, 400, "invalid_request", "job id" + rule},
			{"AccountPathFF", adminKey, "GET", "/v1/accounts/%FF", nil, nil, 400, "invalid_request", "account id" + rule},
			{"AccountPathFFUser", user, "GET", "/v1/accounts/%FF/balance", nil, nil, 400, "invalid_request", "account id" + rule},
			{"AccountPutNUL", adminKey, "PUT", "/v1/accounts/x%00y", `{}`, nil, 400, "invalid_request", "account id" + rule},
			{"AccountPathTooLong", adminKey, "GET", "/v1/accounts/" + long + "/entries", nil, nil, 400, "invalid_request", "account id must be at most 64 bytes"},
			{"HoldPathFF", adminKey, "GET", "/v1/holds/hold_%FF", nil, nil, 400, "invalid_request", "hold id" + rule},
			{"HoldPathTooLong", adminKey, "POST", "/v1/holds/" + long + "/capture", `{"quantity":1}`, nil, 400, "invalid_request", "hold id must be at most 64 bytes"},
			{"AssetPathNUL", user, "GET", "/v1/assets/%00", nil, nil, 400, "invalid_request", "asset id" + rule},
			{"WorkerInputAssetFF", edgeWorkerKey, "GET", "/v1/worker/jobs/" + job + "/inputs/%FF", nil, nil, 400, "invalid_request", "asset id" + rule},
			{"WorkerJobPathNUL", edgeWorkerKey, "POST", "/v1/worker/jobs/%00/heartbeat", `{"lease_id":"x"}`, nil, 400, "invalid_request", "job id" + rule},
			{"EventsPathFF", user, "GET", "/v1/accounts/%FF/events", nil, nil, 400, "invalid_request", "account id" + rule},
			// Idempotency-Key: bytes >= 0x80 that are not UTF-8, and length.
			{"IdempotencyKey80", adminKey, "POST", "/v1/accounts/a/grants", `{"amount":5,"source":"admin"}`, hdr{"Idempotency-Key": "\x80"}, 400, "invalid_request", "Idempotency-Key" + rule},
			{"IdempotencyKeyFF", user, "POST", "/v1/jobs", `{"action":"generate"}`, hdr{"Idempotency-Key": "k\xffk"}, 400, "invalid_request", "Idempotency-Key" + rule},
			{"IdempotencyKeyTooLong", adminKey, "POST", "/v1/holds", `{"account_id":"a","action":"generate"}`, hdr{"Idempotency-Key": strings.Repeat("k", 256)}, 400, "invalid_request", "Idempotency-Key must be at most 255 bytes"},
			// Malformed, wrong-typed and oversized bodies.
			{"Malformed", user, "POST", "/v1/jobs", `{"action":`, nil, 400, "invalid_request", "malformed JSON"},
			{"MalformedWithBadByte", adminKey, "POST", "/v1/holds", "{\"account_id\" \"\xff\"}", nil, 400, "invalid_request", rule},
			{"WrongType", user, "POST", "/v1/jobs", `{"action":"generate","params":"a cat"}`, nil, 400, "invalid_request", "params"},
			{"Oversized", user, "POST", "/v1/jobs", `{"action":"generate","params":{"prompt":"` + strings.Repeat("p", 70<<10) + `"}}`, nil, 413, "request_too_large", "exceeds"},
			{"ParamsOverLimit", user, "POST", "/v1/jobs", `{"action":"generate","params":{"prompt":"` + strings.Repeat("p", 17<<10) + `"}}`, nil, 400, "invalid_request", "params exceed"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := e.as(c.key, 0, c.method, c.path, c.body, c.headers)
				r.wantError(t, c.status, c.code, c.message)
			})
		}

		if after := e.snapshot("a"); after != before {
			t.Fatalf("bad input changed account a:\n%s\n%s", before, after)
		}
		// The job still runs under its lease: no bad fail reached it.
		if got := e.must(200, "GET", "/v1/jobs/"+job, nil); got.str("status") != "running" || got.str("error") != "" {
			t.Fatalf("job after bad fails: %s", got.raw)
		}
		e.must(404, "GET", "/v1/accounts/b", nil)

		// POST /v1/batch: a bad operation fails alone, named by its field.
		entries := e.entryCount("a")
		r := e.must(200, "POST", "/v1/batch", `{"operations":[`+
			`{"op":"reserve","account_id":"a","action":"generate"},`+
			`{"op":"reserve","account_id":"a\u0000","action":"generate"},`+
			"{\"op\":\"grant\",\"account_id\":\"a\",\"amount\":5,\"source\":\"admin\",\"reference\":\"\xff\"},"+
			`{"op":"release","hold_id":"`+hold+`","reason":"failed","idempotency_key":"k\u0000"}]}`)
		if !utf8.Valid(r.raw) {
			t.Fatalf("batch answer is not UTF-8: %q", r.raw)
		}
		want := []struct {
			status  int
			message string
		}{{201, ""}, {400, "account_id" + rule}, {400, "reference" + rule}, {400, "idempotency_key" + rule}}
		for i, w := range want {
			res, _ := r.get(fmt.Sprintf("results.%d", i)).(map[string]any)
			if st, _ := res["status"].(float64); int(st) != w.status {
				t.Fatalf("operation %d: %v, want %d", i, res, w.status)
			}
			if w.message != "" {
				if msg, _ := res["error"].(map[string]any)["message"].(string); msg != w.message {
					t.Fatalf("operation %d: %q, want %q", i, msg, w.message)
				}
			}
		}
		if got := e.entryCount("a"); got != entries+1 {
			t.Fatalf("the batch wrote %d entries, want 1 (its one good reserve)", got-entries)
		}
		e.verify()
	})
}

// Issue 19, item 1: a user token's job with a raw 0xFF byte in its prompt
// is 400 on both stores, and nothing is stored (SQLite stored it, and
// echoed it back as invalid JSON).
func TestIssue19Item1BadBytePromptFromUserToken(t *testing.T) {
	eachStoreOpt(t, func(t *testing.T, store envOpt) {
		e := newEnv(t, store)
		e.createAccount("alice", nil)
		user := e.userToken("alice")
		before := e.snapshot("alice")
		r := e.as(user, 0, "POST", "/v1/jobs", "{\"action\":\"generate\",\"params\":{\"prompt\":\"\xff\"}}")
		r.wantError(t, 400, "invalid_request", "params.prompt must be valid UTF-8 without NUL bytes")
		if after := e.snapshot("alice"); after != before {
			t.Fatalf("the refused job changed alice:\n%s\n%s", before, after)
		}
		// A prompt of valid UTF-8 beyond ASCII is text like any other.
		j := e.as(user, 201, "POST", "/v1/jobs", map[string]any{"action": "generate", "params": map[string]any{"prompt": "Katze im Schnee ❄"}})
		if got := e.as(user, 200, "GET", "/v1/jobs/"+j.str("id"), nil); got.str("params.prompt") != "Katze im Schnee ❄" || !utf8.Valid(got.raw) {
			t.Fatalf("job: %s", got.raw)
		}
		e.verify()
	})
}

// Issue 19, item 1 under load: while a user token sends a stream of
// bad-byte requests, valid reserves of other accounts all succeed and
// each bad request is a 400. Bounded by counts, not time.
func TestIssue19Item1BadBytesDoNotFailOthers(t *testing.T) {
	eachStoreOpt(t, func(t *testing.T, store envOpt) {
		// The bad stream is faster than a person: it would be rate-limited
		// (429) before its 400s were seen.
		cfg := ledger.DefaultConfig()
		cfg.Limits.RequestsPerSecondPerUser = 0
		e := newEnv(t, store, withConfig(cfg))
		const (
			accounts      = 8
			reservesEach  = 60
			badRequests   = 400
			creditsGrant  = 10_000
			reserveCredit = 5 // generate, one output
		)
		for i := range accounts {
			id := fmt.Sprintf("load%d", i)
			e.createAccount(id, nil)
			e.must(201, "POST", "/v1/accounts/"+id+"/grants", map[string]any{"amount": creditsGrant, "source": "admin"})
		}
		e.createAccount("mallory", nil)
		user := e.userToken("mallory")
		bad := []struct {
			key, method, path string
			body              string
			headers           hdr
		}{
			{user, "POST", "/v1/jobs", "{\"action\":\"generate\",\"params\":{\"prompt\":\"\xff\"}}", nil},
			{user, "POST", "/v1/jobs", `{"action":"generate","params":{"prompt":"\u0000"}}`, nil},
			{user, "POST", "/v1/jobs", `{"action":"generate"}`, hdr{"Idempotency-Key": "\x80"}},
			{adminKey, "POST", "/v1/holds", `{"account_id":"x\u0000y","action":"generate"}`, nil},
			{adminKey, "PUT", "/v1/accounts/x%00y", `{}`, nil},
			{user, "GET", "/v1/jobs/%00", "", nil},
			{user, "GET", "/v1/accounts/%FF", "", nil},
		}
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			failures []string
		)
		fail := func(format string, args ...any) {
			mu.Lock()
			failures = append(failures, fmt.Sprintf(format, args...))
			mu.Unlock()
		}
		for i := range accounts {
			wg.Go(func() {
				body := fmt.Sprintf(`{"account_id":"load%d","action":"generate"}`, i)
				for range reservesEach {
					if r := e.do("POST", "/v1/holds", body); r.status != 201 {
						fail("valid reserve for load%d: %d %s", i, r.status, r.raw)
					}
				}
			})
		}
		wg.Go(func() {
			for n := range badRequests {
				b := bad[n%len(bad)]
				var body any
				if b.body != "" {
					body = b.body
				}
				h := hdr{"Authorization": "Bearer " + b.key}
				for k, v := range b.headers {
					h[k] = v
				}
				if r := e.do(b.method, b.path, body, h); r.status != 400 {
					fail("bad request %s %s: %d %s", b.method, b.path, r.status, r.raw)
				}
			}
		})
		wg.Wait()
		for _, f := range failures[:min(len(failures), 10)] {
			t.Error(f)
		}
		if len(failures) > 0 {
			t.Fatalf("%d failures", len(failures))
		}
		for i := range accounts {
			b := e.balance(fmt.Sprintf("load%d", i))
			if held := b.num("held"); held != reservesEach*reserveCredit {
				t.Fatalf("load%d holds %d credits, want %d", i, held, reservesEach*reserveCredit)
			}
		}
		e.verify()
	})
}

// Issue 19, item 2: /healthz is 200 {"status":"ok"} on both stores (it
// looked up an id with a NUL, which PostgreSQL refuses: 503 always), and
// 503 {"status":"unavailable"} when the store does not answer, with the
// cause in the log and a metric, never in the answer.
func TestIssue19Item2Healthz(t *testing.T) {
	eachStoreOpt(t, func(t *testing.T, store envOpt) {
		e := newEnv(t, store)
		for range 3 {
			r := e.must(200, "GET", "/healthz", nil, hdr{"Authorization": ""})
			if strings.TrimSpace(string(r.raw)) != `{"status":"ok"}` {
				t.Fatalf("healthz: %s", r.raw)
			}
		}
		if n := e.metric("creditd_healthz_failures_total"); n != 0 {
			t.Fatalf("creditd_healthz_failures_total %v, want 0", n)
		}
		if err := e.store.Close(); err != nil {
			t.Fatal(err)
		}
		r := e.must(503, "GET", "/healthz", nil, hdr{"Authorization": ""})
		if strings.TrimSpace(string(r.raw)) != `{"status":"unavailable"}` {
			t.Fatalf("healthz with the store closed: %s", r.raw)
		}
		if n := e.metric("creditd_healthz_failures_total"); n != 1 {
			t.Fatalf("creditd_healthz_failures_total %v, want 1", n)
		}
	})
}

// Issue 19, item 3: bad bytes in path ids and in the Idempotency-Key
// header are a 4xx on both stores (on PostgreSQL they were 500 or 503).
func TestIssue19Item3BadBytesInPathsAndHeaders(t *testing.T) {
	eachStoreOpt(t, func(t *testing.T, store envOpt) {
		e := newEnv(t, store)
		e.createAccount("a", nil)
		entries, available := e.entryCount("a"), e.available("a")
		for _, c := range []struct {
			method, path string
			body         any
			headers      hdr
		}{
			{"GET", "/v1/jobs/%00", nil, nil},
			{"GET", "/v1/accounts/%FF", nil, nil},
			{"GET", "/v1/holds/%00%FF", nil, nil},
			{"POST", "/v1/holds", `{"account_id":"a","action":"generate"}`, hdr{"Idempotency-Key": "\x80"}},
			{"POST", "/v1/holds", `{"account_id":"a","action":"generate"}`, hdr{"Idempotency-Key": "key-\xc3\x28"}},
			{"POST", "/v1/accounts/a/grants", `{"amount":5,"source":"admin"}`, hdr{"Idempotency-Key": "\xff\xfe"}},
		} {
			r := e.do(c.method, c.path, c.body, c.headers)
			if r.status < 400 || r.status >= 500 || r.errCode() != "invalid_request" {
				t.Errorf("%s %s %v: %d %s, want 400 invalid_request", c.method, c.path, c.headers, r.status, r.raw)
			}
		}
		// A key of valid UTF-8 beyond ASCII works as any key does.
		first := e.must(201, "POST", "/v1/holds", `{"account_id":"a","action":"generate"}`, hdr{"Idempotency-Key": "schlüssel-1"})
		again := e.must(201, "POST", "/v1/holds", `{"account_id":"a","action":"generate"}`, hdr{"Idempotency-Key": "schlüssel-1"})
		if first.str("id") != again.str("id") || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %s then %s", first.raw, again.raw)
		}
		e.must(200, "POST", "/v1/holds/"+first.str("id")+"/release", map[string]any{"reason": "cancelled"})
		// The refused requests wrote nothing: the entries are the replayed
		// hold and its release only.
		if got := e.entryCount("a"); got != entries+2 || e.available("a") != available {
			t.Fatalf("%d entries (want %d), available %d (want %d)", got, entries+2, e.available("a"), available)
		}
		e.verify()
	})
}

// signedEvent is a Stripe event posted to the webhook, signed at at.
func (e *env) signedEvent(id string, typ stripe.EventType, obj map[string]any, at time.Time) resp {
	e.t.Helper()
	payload, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": stripe.APIVersion, "created": at.Unix(),
		"type": typ, "data": map[string]any{"object": obj},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: edgeWhsec, Timestamp: at})
	return e.do("POST", "/v1/webhooks/stripe", sp.Payload, hdr{"Stripe-Signature": sp.Header, "Authorization": ""})
}

func paidSession(id, account string) map[string]any {
	return map[string]any{
		"id": id, "object": "checkout.session", "mode": "payment", "client_reference_id": account,
		"metadata": map[string]any{"pack": "small"}, "payment_status": "paid",
	}
}

// Issue 19, item 11: a Stripe event signed more than the tolerance in the
// future is refused, and the ids an event hands to the ledger pass the
// API's rules: a NUL in client_reference_id, in the session id that
// becomes the grant's reference, or in a subscription's account is a 400,
// before the engine, on both stores. A good event still grants.
func TestIssue19Item11Webhooks(t *testing.T) {
	eachStoreOpt(t, func(t *testing.T, store envOpt) {
		e := newEnv(t, store, withEdgeServices())
		e.createAccount("alice", nil)
		before := e.snapshot("alice")
		now := time.Now()
		for _, c := range []struct {
			name    string
			r       func() resp
			message string
		}{
			{"Future", func() resp {
				return e.signedEvent("evt_future", stripe.EventTypeCheckoutSessionCompleted, paidSession("cs_future", "alice"), now.Add(billing.DefaultWebhookTolerance+time.Minute))
			}, "in the future"},
			{"FarFuture", func() resp {
				return e.signedEvent("evt_far", stripe.EventTypeCheckoutSessionCompleted, paidSession("cs_far", "alice"), now.Add(365*24*time.Hour))
			}, "in the future"},
			{"ClientReferenceNUL", func() resp {
				return e.signedEvent("evt_nul1", stripe.EventTypeCheckoutSessionCompleted, paidSession("cs_nul1", "alice\x00"), now)
			}, "client_reference_id must be valid UTF-8 without NUL bytes"},
			{"ClientReferenceNotAnID", func() resp {
				return e.signedEvent("evt_nul2", stripe.EventTypeCheckoutSessionCompleted, paidSession("cs_nul2", "alice smith"), now)
			}, "client_reference_id must be 1-64 characters"},
			{"SessionIDNUL", func() resp {
				return e.signedEvent("evt_nul3", stripe.EventTypeCheckoutSessionCompleted, paidSession("cs_\x00", "alice"), now)
			}, "data.object.id must be valid UTF-8 without NUL bytes"},
			{"SessionIDTooLong", func() resp {
				return e.signedEvent("evt_long", stripe.EventTypeCheckoutSessionCompleted, paidSession("cs_"+strings.Repeat("x", 300), "alice"), now)
			}, "data.object.id must be 1-255 characters"},
			{"EventIDNUL", func() resp {
				return e.signedEvent("evt_\x00", stripe.EventTypeCheckoutSessionCompleted, paidSession("cs_ok", "alice"), now)
			}, "id must be valid UTF-8 without NUL bytes"},
			{"PaymentFailedAccountNUL", func() resp {
				return e.signedEvent("evt_nul4", stripe.EventTypeCheckoutSessionAsyncPaymentFailed, paidSession("cs_nul4", "alice\x00"), now)
			}, "client_reference_id must be valid UTF-8 without NUL bytes"},
			{"SubscriptionAccountNUL", func() resp {
				return e.signedEvent("evt_nul5", stripe.EventTypeCustomerSubscriptionDeleted, map[string]any{
					"id": "sub_1", "object": "subscription", "status": "canceled", "metadata": map[string]any{"account_id": "alice\x00"},
					"items": map[string]any{"object": "list", "data": []any{map[string]any{"id": "si_1", "object": "subscription_item", "price": map[string]any{"id": "price_paid", "object": "price"}}}},
				}, now)
			}, "metadata.account_id must be valid UTF-8 without NUL bytes"},
		} {
			t.Run(c.name, func(t *testing.T) {
				c.r().wantError(t, http.StatusBadRequest, "invalid_request", c.message)
			})
		}
		if after := e.snapshot("alice"); after != before {
			t.Fatalf("refused events changed alice:\n%s\n%s", before, after)
		}
		// Within the tolerance either way, a good event grants.
		if r := e.signedEvent("evt_good", stripe.EventTypeCheckoutSessionCompleted, paidSession("cs_good", "alice"), now.Add(time.Minute)); r.status != 200 || r.str("outcome") != billing.OutcomeGranted {
			t.Fatalf("good event: %d %s", r.status, r.raw)
		}
		if got := e.available("alice"); got != 145 {
			t.Fatalf("available %d after the good event, want 145", got)
		}
		e.verify()
	})
}

// A worker's failure message longer than ledger.JobErrorBytesMax is cut
// at a character boundary: the stored error is valid UTF-8 (it was cut
// inside a character, and echoed as invalid JSON).
func TestWorkerFailMessageCutAtCharacterBoundary(t *testing.T) {
	eachStoreOpt(t, func(t *testing.T, store envOpt) {
		e := newEnv(t, store, withEdgeServices())
		e.createAccount("a", nil)
		job := e.must(201, "POST", "/v1/jobs", map[string]any{"account_id": "a", "action": "generate"}).str("id")
		lease := e.as(edgeWorkerKey, 200, "POST", "/v1/worker/lease", map[string]any{"actions": []string{"generate"}}).str("lease_id")
		msg := strings.Repeat("x", ledger.JobErrorBytesMax-1) + "é and more" // é straddles the limit
		r := e.as(edgeWorkerKey, 200, "POST", "/v1/worker/jobs/"+job+"/fail", map[string]any{"lease_id": lease, "error": msg})
		if !utf8.Valid(r.raw) {
			t.Fatalf("fail answer is not UTF-8: %q", r.raw[len(r.raw)-40:])
		}
		got := e.must(200, "GET", "/v1/jobs/"+job, nil)
		if want := strings.Repeat("x", ledger.JobErrorBytesMax-1); got.str("error") != want || got.str("status") != "failed" {
			t.Fatalf("stored error of %d bytes (status %s), want the %d bytes before the cut character", len(got.str("error")), got.str("status"), len(want))
		}
		e.verify()
	})
}
