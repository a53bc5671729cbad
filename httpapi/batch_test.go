package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/sqlite"
)

type op = map[string]any

// batch posts operations to /v1/batch and expects 200.
func (e *env) batch(ops ...op) resp {
	e.t.Helper()
	return e.must(200, "POST", "/v1/batch", map[string]any{"operations": ops})
}

// results returns a batch response's results.
func (r resp) results() []map[string]any {
	rs, _ := r.body["results"].([]any)
	out := make([]map[string]any, len(rs))
	for i, x := range rs {
		out[i], _ = x.(map[string]any)
	}
	return out
}

// statuses lists the results' statuses.
func (r resp) statuses() []int {
	var out []int
	for _, x := range r.results() {
		f, _ := x["status"].(float64)
		out = append(out, int(f))
	}
	return out
}

func (e *env) wantStatuses(r resp, want ...int) {
	e.t.Helper()
	if got := r.statuses(); fmt.Sprint(got) != fmt.Sprint(want) {
		e.t.Fatalf("statuses %v, want %v: %s", got, want, r.raw)
	}
}

// holdOf returns the hold of result i.
func holdOf(r resp, i int) map[string]any {
	h, _ := r.results()[i]["hold"].(map[string]any)
	return h
}

func errOf(r resp, i int) (code string, e map[string]any) {
	e, _ = r.results()[i]["error"].(map[string]any)
	code, _ = e["code"].(string)
	return code, e
}

func reserveOp(account, action string, qty int64) op {
	return op{"op": "reserve", "account_id": account, "action": action, "quantity": qty}
}

func TestBatch(t *testing.T) {
	e := newEnv(t)
	e.createAccount("a", nil) // 30 signup + 15 daily, image actions only

	t.Run("MixedResultsInRequestOrder", func(t *testing.T) {
		before := e.entryCount("a")
		r := e.batch(
			reserveOp("a", "generate", 2),                                                 // 10 credits
			reserveOp("a", "video", 1),                                                    // 402: free credits do not pay for video
			reserveOp("nobody", "generate", 1),                                            // 404
			reserveOp("a", "generate", 0),                                                 // 400, as on POST /v1/holds
			op{"op": "reserve", "account_id": "a"},                                        // 400: no action
			op{"op": "reserve", "account_id": "a", "action": "generate", "colour": "red"}, // 400: unknown field
			op{"op": "capture", "hold_id": "hold_nope", "quantity": 1},                    // 404
			op{"op": "capture", "quantity": 1},                                            // 400: no hold_id
			op{"op": "grant", "account_id": "a", "amount": 100, "source": "promo"},        // 201
			op{"op": "grant", "amount": 100, "source": "promo"},                           // 400: no account_id
			reserveOp("a", "edit", 1),                                                     // 5 credits
		)
		e.wantStatuses(r, 201, 402, 404, 400, 400, 400, 404, 400, 201, 400, 201)
		if h := holdOf(r, 0); h["status"] != "pending" || h["amount"].(float64) != 10 || h["account_id"] != "a" {
			t.Fatalf("hold: %v", h)
		}
		if code, er := errOf(r, 1); code != "insufficient_credits" || er["required"].(float64) != 60 || er["message"] == "" {
			t.Fatalf("video: %s %v", code, er)
		}
		for i, want := range map[int]string{2: "not_found", 3: "invalid_request", 4: "invalid_request", 5: "invalid_request", 6: "not_found", 7: "invalid_request", 9: "invalid_request"} {
			if code, er := errOf(r, i); code != want {
				t.Errorf("result %d: %s %v, want %s", i, code, er, want)
			}
			if _, ok := r.results()[i]["hold"]; ok {
				t.Errorf("result %d: an error with a hold: %v", i, r.results()[i])
			}
		}
		if _, er := errOf(r, 5); !strings.Contains(er["message"].(string), "colour") {
			t.Errorf("unknown field message: %v", er)
		}
		if g, _ := r.results()[8]["grant"].(map[string]any); g["source"] != "promo" || g["amount"].(float64) != 100 {
			t.Fatalf("grant: %v", r.results()[8])
		}
		if holdOf(r, 10)["action"] != "edit" {
			t.Fatalf("last hold: %v", holdOf(r, 10))
		}
		// Only the three successful operations wrote anything.
		b := e.balance("a")
		if b.num("available") != 45+100-15 || b.num("held") != 15 {
			t.Fatalf("balance: %s", b.raw)
		}
		if n := e.entryCount("a"); n != before+3 {
			t.Fatalf("%d new entries, want 3", n-before)
		}
	})

	t.Run("ResultsAreTheSingleRoutesObjects", func(t *testing.T) {
		r := e.batch(reserveOp("a", "generate", 1))
		id := holdOf(r, 0)["id"].(string)
		got, _ := json.Marshal(holdOf(r, 0))
		single := e.must(200, "GET", "/v1/holds/"+id, nil)
		want, _ := json.Marshal(single.body)
		if !bytes.Equal(got, want) {
			t.Fatalf("batch hold %s\nGET hold   %s", got, want)
		}
	})

	t.Run("CaptureReleaseExtend", func(t *testing.T) {
		r := e.batch(reserveOp("a", "generate", 3), reserveOp("a", "generate", 1), reserveOp("a", "generate", 1))
		h1, h2, h3 := holdOf(r, 0)["id"], holdOf(r, 1)["id"], holdOf(r, 2)["id"]
		avail := e.available("a")
		r = e.batch(
			op{"op": "capture", "hold_id": h1, "quantity": 2},
			op{"op": "release", "hold_id": h2, "reason": "failed"},
			op{"op": "extend", "hold_id": h3, "ttl_seconds": 3600},
			op{"op": "release", "hold_id": h3, "reason": "nonsense"},
		)
		e.wantStatuses(r, 200, 200, 200, 400)
		if h := holdOf(r, 0); h["status"] != "captured" || h["captured_amount"].(float64) != 10 {
			t.Fatalf("capture: %v", h)
		}
		if h := holdOf(r, 1); h["status"] != "released" || h["release_reason"] != "failed" {
			t.Fatalf("release: %v", h)
		}
		if h := holdOf(r, 2); h["status"] != "pending" || h["expires_at"] != e.clock.Now().Add(time.Hour).Format(time.RFC3339) {
			t.Fatalf("extend: %v", h)
		}
		if got := e.available("a"); got != avail+5+5 {
			t.Fatalf("available %d, want %d (5 of the capture and 5 of the release returned)", got, avail+10)
		}
		// Resolving again: the same outcome answers it, another is a 409
		// with the hold, as on the single routes.
		r = e.batch(op{"op": "capture", "hold_id": h1, "quantity": 2}, op{"op": "release", "hold_id": h1, "reason": "failed"})
		e.wantStatuses(r, 200, 409)
		if code, er := errOf(r, 1); code != "conflict" || er["hold"].(map[string]any)["id"] != h1 {
			t.Fatalf("conflict: %s %v", code, er)
		}
		// Time rules hold: an expired hold cannot be captured.
		e.advance(time.Hour + time.Second)
		r = e.batch(op{"op": "capture", "hold_id": h3, "quantity": 1})
		e.wantStatuses(r, 409)
		if code, er := errOf(r, 0); code != "conflict" || er["hold"].(map[string]any)["status"] != "expired" {
			t.Fatalf("capture after expiry: %s %v", code, er)
		}
	})

	t.Run("PerOperationIdempotency", func(t *testing.T) {
		keyed := func(o op, key string) op { o["idempotency_key"] = key; return o }
		held := e.balance("a").num("held")
		first := e.batch(keyed(reserveOp("a", "generate", 1), "b-k1"), keyed(reserveOp("a", "generate", 1), "b-k2"))
		e.wantStatuses(first, 201, 201)
		again := e.batch(keyed(reserveOp("a", "generate", 1), "b-k2"), keyed(reserveOp("a", "generate", 1), "b-k1"), reserveOp("a", "generate", 1))
		e.wantStatuses(again, 201, 201, 201)
		for i, j := range []int{1, 0} {
			res := again.results()[i]
			if res["idempotent_replayed"] != true || holdOf(again, i)["id"] != holdOf(first, j)["id"] {
				t.Fatalf("replay %d: %v (first: %v)", i, res, first.results()[j])
			}
		}
		if _, ok := again.results()[2]["idempotent_replayed"]; ok {
			t.Fatalf("an operation without a key was replayed: %v", again.results()[2])
		}
		if got := e.balance("a").num("held"); got != held+15 {
			t.Fatalf("held %d, want %d: replays reserved again", got, held+15)
		}
		// The same key with another operation is a mismatch for that operation only.
		r := e.batch(keyed(reserveOp("a", "generate", 2), "b-k1"), reserveOp("a", "generate", 1))
		e.wantStatuses(r, 422, 201)
		if code, _ := errOf(r, 0); code != "idempotency_mismatch" {
			t.Fatalf("%s", r.raw)
		}
		// Keys share the admin key's namespace with the Idempotency-Key
		// header, and a batch operation is another request than a single
		// route's: reusing a key across them is a mismatch.
		r = e.do("POST", "/v1/holds", map[string]any{"account_id": "a", "action": "generate", "quantity": 1}, hdr{"Idempotency-Key": "b-k1"})
		if r.status != 422 || r.errCode() != "idempotency_mismatch" {
			t.Fatalf("header reuse of a batch key: %d %s", r.status, r.raw)
		}
		e.must(201, "POST", "/v1/holds", map[string]any{"account_id": "a", "action": "generate"}, hdr{"Idempotency-Key": "single-k"})
		r = e.batch(keyed(op{"op": "reserve", "account_id": "a", "action": "generate"}, "single-k"))
		e.wantStatuses(r, 422)
		// One key twice in one request: runs once, both answered with it.
		held = e.balance("a").num("held")
		r = e.batch(keyed(reserveOp("a", "generate", 1), "b-twice"), keyed(reserveOp("a", "generate", 1), "b-twice"))
		e.wantStatuses(r, 201, 201)
		if holdOf(r, 0)["id"] != holdOf(r, 1)["id"] || (r.results()[0]["idempotent_replayed"] == true) == (r.results()[1]["idempotent_replayed"] == true) {
			t.Fatalf("one key twice: %s", r.raw)
		}
		if got := e.balance("a").num("held"); got != held+5 {
			t.Fatalf("held %d, want %d", got, held+5)
		}
		// A refused operation is not stored: the same key runs again.
		r = e.batch(keyed(reserveOp("a", "video", 1), "b-video"))
		e.wantStatuses(r, 402)
		e.must(201, "POST", "/v1/accounts/a/grants", map[string]any{"amount": 60, "source": "purchase"})
		r = e.batch(keyed(reserveOp("a", "video", 1), "b-video"))
		e.wantStatuses(r, 201)
		if _, ok := r.results()[0]["idempotent_replayed"]; ok {
			t.Fatalf("%s", r.raw)
		}
		// Resolutions replay too.
		rel := keyed(op{"op": "release", "hold_id": holdOf(r, 0)["id"], "reason": "cancelled"}, "b-rel")
		r1, r2 := e.batch(rel), e.batch(rel)
		e.wantStatuses(r1, 200)
		e.wantStatuses(r2, 200)
		if r2.results()[0]["idempotent_replayed"] != true || fmt.Sprint(holdOf(r1, 0)) != fmt.Sprint(holdOf(r2, 0)) {
			t.Fatalf("release replay: %s / %s", r1.raw, r2.raw)
		}
		long := keyed(reserveOp("a", "generate", 1), strings.Repeat("k", 256))
		e.wantStatuses(e.batch(long), 400)
	})

	t.Run("ConcurrentBatchesNeverOverspend", func(t *testing.T) {
		e.createAccount("c", nil) // 45 credits: 9 holds of 5
		ops := make([]op, 10)
		for i := range ops {
			ops[i] = reserveOp("c", "generate", 1)
		}
		var wg sync.WaitGroup
		counts := make([]map[int]int, 3)
		for i := range counts {
			wg.Go(func() {
				counts[i] = map[int]int{}
				for _, st := range e.batch(ops...).statuses() {
					counts[i][st]++
				}
			})
		}
		wg.Wait()
		total := map[int]int{}
		for _, c := range counts {
			for k, v := range c {
				total[k] += v
			}
		}
		if total[201] != 9 || total[402] != 21 || len(total) != 2 {
			t.Fatalf("outcomes %v, want 9 × 201 and 21 × 402", total)
		}
		if b := e.balance("c"); b.num("available") != 0 || b.num("held") != 45 {
			t.Fatalf("%s", b.raw)
		}
	})

	t.Run("Metrics", func(t *testing.T) {
		res, err := http.Get(e.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		for _, want := range []string{
			`creditd_http_requests_total{route="POST /v1/batch",status="200"}`,
			`creditd_http_batch_ops_total{op="reserve",status="201"}`,
			`creditd_http_batch_ops_total{op="reserve",status="402"}`,
			`creditd_http_batch_ops_total{op="capture",status="409"}`,
			`creditd_http_batch_request_ops_count`,
		} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
	e.verify()
}

func TestBatchMalformedRunsNothing(t *testing.T) {
	cfg := ledger.DefaultConfig()
	cfg.Limits.BatchRequestOpsMax = 5
	cfg.Limits.RequestBodyBytesMax = 2048
	cfg.Limits.BatchRequestBytesMax = 4096
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withConfig(cfg))
	e.createAccount("a", nil)
	good := `{"op":"reserve","account_id":"a","action":"generate"}`
	many := func(n int, extra ...string) string {
		ops := make([]string, n)
		for i := range ops {
			ops[i] = good
		}
		return `{"operations":[` + strings.Join(append(ops, extra...), ",") + `]}`
	}
	entries := e.entryCount("a")
	for _, c := range []struct {
		name, body string
		headers    hdr
		status     int
		code, msg  string
	}{
		{"BadJSON", `{"operations":[` + good + `,`, nil, 400, "invalid_request", "malformed JSON"},
		{"NoOperations", `{}`, nil, 400, "invalid_request", "at least one"},
		{"EmptyBody", ``, nil, 400, "invalid_request", "at least one"},
		{"EmptyList", `{"operations":[]}`, nil, 400, "invalid_request", "at least one"},
		{"OperationsNotAList", `{"operations":{"op":"reserve"}}`, nil, 400, "invalid_request", "operations"},
		{"UnknownMember", `{"operations":[` + good + `],"atomic":true}`, nil, 400, "invalid_request", "atomic"},
		{"TooManyOperations", many(6), nil, 400, "invalid_request", "at most 5"},
		{"UnknownOp", many(2, `{"op":"transfer","account_id":"a"}`), nil, 400, "invalid_request", `operations[2]: unknown op "transfer"`},
		{"NoOp", many(1, `{"account_id":"a","action":"generate"}`), nil, 400, "invalid_request", "operations[1]: op is required"},
		{"OpNotAString", many(1, `{"op":7}`), nil, 400, "invalid_request", "op must be a string"},
		{"OperationNotAnObject", many(1, `"reserve"`), nil, 400, "invalid_request", "must be a JSON object"},
		{"NullOperation", many(1, `null`), nil, 400, "invalid_request", "must be a JSON object"},
		{"IdempotencyKeyHeader", many(1), hdr{"Idempotency-Key": "whole"}, 400, "invalid_request", "idempotency_key"},
		{"BodyOverTheLimit", `{"operations":[` + good + `],"x":"` + strings.Repeat("x", 4096) + `"}`, nil, 413, "request_too_large", "4096"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("POST", "/v1/batch", c.body, c.headers)
			if r.status != c.status || r.errCode() != c.code || !strings.Contains(r.str("error.message"), c.msg) {
				t.Fatalf("%d %s, want %d %s %q", r.status, r.raw, c.status, c.code, c.msg)
			}
			if r.body["results"] != nil {
				t.Fatalf("results in a refused request: %s", r.raw)
			}
		})
	}
	if n := e.entryCount("a"); n != entries {
		t.Fatalf("refused batches wrote %d entries", n-entries)
	}
	if b := e.balance("a"); b.num("held") != 0 {
		t.Fatalf("refused batches reserved: %s", b.raw)
	}
	t.Run("AtTheLimit", func(t *testing.T) {
		r := e.must(200, "POST", "/v1/batch", many(5))
		e.wantStatuses(r, 201, 201, 201, 201, 201)
	})
	t.Run("OperationOverTheBodyLimitIs413", func(t *testing.T) {
		big := `{"op":"release","hold_id":"hold_x","reason":"` + strings.Repeat("r", 2048) + `"}`
		r := e.must(200, "POST", "/v1/batch", many(1, big))
		e.wantStatuses(r, 201, 413)
		if code, _ := errOf(r, 1); code != "request_too_large" {
			t.Fatalf("%s", r.raw)
		}
	})
	e.verify()
}

func TestBatchAuth(t *testing.T) {
	const workerKey = "sk_test_worker"
	e := newEnv(t, withAPI(func(s *httpapi.Server) { s.WorkerKey = workerKey }))
	e.createAccount("a", nil)
	user := e.userToken("a")
	body := map[string]any{"operations": []op{reserveOp("a", "generate", 1)}}
	for _, c := range []struct {
		name, key string
		status    int
		code      string
	}{
		{"WorkerKey", workerKey, 403, "forbidden"},
		{"UserToken", user, 403, "forbidden"},
		{"WrongKey", "sk_wrong", 401, "unauthenticated"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if r := e.as(c.key, c.status, "POST", "/v1/batch", body); r.errCode() != c.code {
				t.Fatalf("%s", r.raw)
			}
		})
	}
	t.Run("NoKey", func(t *testing.T) {
		if r := e.do("POST", "/v1/batch", body, hdr{"Authorization": ""}); r.status != 401 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	if b := e.balance("a"); b.num("held") != 0 || b.num("available") != 45 {
		t.Fatalf("a refused caller reserved: %s", b.raw)
	}
	e.batch(reserveOp("a", "generate", 1)) // the admin key may
	e.verify()
}

// servedEnv is creditd's API wired as `creditd serve` wires it: the
// engine's metrics and the HTTP metrics in one registry, at /metrics.
func servedEnv(tb testing.TB) (url string, st ledger.Store, cfg *ledger.Config) {
	tb.Helper()
	h, st, cfg := servedHandler(tb)
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv.URL, st, cfg
}

// servedHandler is servedEnv's handler, for calling ServeHTTP directly.
func servedHandler(tb testing.TB) (h http.Handler, st ledger.Store, cfg *ledger.Config) {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "creditd.db"))
	if err != nil {
		tb.Fatal(err)
	}
	cfg = ledger.DefaultConfig()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := engine.New(ctx, engine.Options{Config: cfg, Store: st, Logger: log, Metrics: engine.NewMetrics(reg),
		Clock: ledger.NewTestClock(mustTime("2026-06-15T10:00:00Z")), SweepInterval: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	api := &httpapi.Server{App: app.New(app.Options{Engine: eng, Store: st, Logger: log}), AdminKey: adminKey, Logger: log, Registry: reg}
	h = api.Handler()
	tb.Cleanup(func() {
		api.App.CloseEvents()
		eng.Close()
		st.Close()
	})
	return h, st, cfg
}

// metric reads one sample from /metrics.
func metric(tb testing.TB, url, name string) float64 {
	tb.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				tb.Fatal(err)
			}
			return f
		}
	}
	tb.Fatalf("no %s in /metrics", name)
	return 0
}

// TestBatchSharesGroupCommits checks that a batch's operations reach the
// engine together: one after another, n reserves would take n commits.
func TestBatchSharesGroupCommits(t *testing.T) {
	url, st, cfg := servedEnv(t)
	e := &env{t: t, url: url, store: st, cfg: cfg}
	e.must(201, "PUT", "/v1/accounts/a", map[string]any{"plan": "paid"})
	e.must(201, "POST", "/v1/accounts/a/grants", map[string]any{"amount": 100_000, "source": "admin"})
	const n = 200
	ops := make([]op, n)
	for i := range ops {
		ops[i] = reserveOp("a", "generate", 1)
	}
	commits := metric(t, url, "creditd_engine_batch_ops_count")
	r := e.batch(ops...)
	commits = metric(t, url, "creditd_engine_batch_ops_count") - commits
	for i, st := range r.statuses() {
		if st != 201 {
			t.Fatalf("result %d: %v", i, r.results()[i])
		}
	}
	t.Logf("%d reserves in %.0f commits", n, commits)
	if commits < 1 || commits > n/4 {
		t.Fatalf("%d reserves took %.0f commits; submitted together they share a few", n, commits)
	}
	e.verify()
}

// BenchmarkBatchChargeCycles runs charge cycles through POST /v1/batch:
// 100 reserves in one request, then their 100 captures in another. One
// iteration is one cycle.
func BenchmarkBatchChargeCycles(b *testing.B) {
	url, _, _ := servedEnv(b)
	post := func(method, path, body string) []byte {
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		out, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 300 {
			b.Fatalf("%s %s: %d %s", method, path, res.StatusCode, out)
		}
		return out
	}
	post("PUT", "/v1/accounts/a", `{"plan":"paid"}`)
	post("POST", "/v1/accounts/a/grants", `{"amount":1000000000,"source":"admin"}`)
	const n = 100
	reserves := `{"operations":[` + strings.TrimSuffix(strings.Repeat(`{"op":"reserve","account_id":"a","action":"generate"},`, n), ",") + `]}`
	type result struct {
		Status int `json:"status"`
		Hold   struct {
			ID string `json:"id"`
		} `json:"hold"`
	}
	var out struct{ Results []result }
	var captures strings.Builder
	reportCPU(b)
	b.ResetTimer()
	for done := 0; done < b.N; done += n {
		if err := json.Unmarshal(post("POST", "/v1/batch", reserves), &out); err != nil {
			b.Fatal(err)
		}
		captures.Reset()
		captures.WriteString(`{"operations":[`)
		for i, r := range out.Results {
			if r.Status != 201 {
				b.Fatalf("reserve %d: %d", i, r.Status)
			}
			if i > 0 {
				captures.WriteByte(',')
			}
			captures.WriteString(`{"op":"capture","hold_id":"` + r.Hold.ID + `","quantity":1}`)
		}
		captures.WriteString(`]}`)
		if err := json.Unmarshal(post("POST", "/v1/batch", captures.String()), &out); err != nil {
			b.Fatal(err)
		}
		for i, r := range out.Results {
			if r.Status != 200 {
				b.Fatalf("capture %d: %d", i, r.Status)
			}
		}
	}
}
