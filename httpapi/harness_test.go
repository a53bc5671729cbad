package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/blob"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/contract"
	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/postgres"
	"github.com/creditd/creditd/store/sqlite"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const adminKey = "sk_test_admin"

// env is a real HTTP server over a real SQLite file with a test clock.
type env struct {
	t     *testing.T
	api   *httpapi.Server
	app   *app.Service
	url   string
	clock *ledger.TestClock
	store ledger.Store
	blobs blob.Store
	eng   *engine.Engine
	cfg   *ledger.Config
	dir   string
	dsn   string // the PostgreSQL database (onPostgres), else ""
	close func()
}

type envOpt func(*envOptions)

type envOptions struct {
	cfg       *ledger.Config
	noClock   bool
	start     time.Time
	dir       string
	keepClock *ledger.TestClock
	api       func(*httpapi.Server)
	app       func(*app.Options)
	server    func(*httptest.Server)
	bus       engine.Bus
	pg        bool
	pgDSN     string
}

func withConfig(c *ledger.Config) envOpt   { return func(o *envOptions) { o.cfg = c } }
func withoutTestClock() envOpt             { return func(o *envOptions) { o.noClock = true } }
func startingAt(t time.Time) envOpt        { return func(o *envOptions) { o.start = t } }
func inDir(d string) envOpt                { return func(o *envOptions) { o.dir = d } }
func withClock(c *ledger.TestClock) envOpt { return func(o *envOptions) { o.keepClock = c } }

// onPostgres runs the server on a new PostgreSQL database (pgtest.DSN)
// with its blobs table, instead of SQLite and a blob directory.
func onPostgres() envOpt { return func(o *envOptions) { o.pg = true } }

// onPostgresDSN runs the server on the PostgreSQL database dsn (several
// envs on one dsn are several nodes).
func onPostgresDSN(dsn string) envOpt {
	return func(o *envOptions) { o.pg, o.pgDSN = true, dsn }
}

// eachStore runs f as a subtest on SQLite and on PostgreSQL.
func eachStore(t *testing.T, f func(t *testing.T, opts ...envOpt)) {
	t.Run("SQLite", func(t *testing.T) { f(t) })
	t.Run("PostgreSQL", func(t *testing.T) { f(t, onPostgres()) })
}

// withBus gives the engine an event bus (to inject other nodes' events).
func withBus(b engine.Bus) envOpt { return func(o *envOptions) { o.bus = b } }

// apiStores are the stores of the envs' API servers (storeOf).
var apiStores sync.Map

// storeOf returns the store of an env's API server, for services that
// still take one (billing).
func storeOf(s *httpapi.Server) ledger.Store {
	st, _ := apiStores.Load(s)
	return st.(ledger.Store)
}

// apiEngines are the engines of the envs' API servers (engineOf).
var apiEngines sync.Map

// engineOf returns the engine of an env's API server, for parts of a node
// that run beside the API (the readiness probe).
func engineOf(s *httpapi.Server) *engine.Engine {
	e, _ := apiEngines.Load(s)
	return e.(*engine.Engine)
}

// withAPI adjusts the API server before it starts.
func withAPI(fn func(*httpapi.Server)) envOpt { return func(o *envOptions) { o.api = fn } }

// withApp adjusts the application layer's options (session key, public
// URL, event heartbeat) before it is made.
func withApp(fn func(*app.Options)) envOpt { return func(o *envOptions) { o.app = fn } }

// withHTTPServer adjusts the HTTP server (listener, timeouts) before it starts.
func withHTTPServer(fn func(*httptest.Server)) envOpt { return func(o *envOptions) { o.server = fn } }
func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	o := envOptions{cfg: ledger.DefaultConfig(), start: mustTime("2026-06-15T10:00:00Z"), dir: t.TempDir()}
	for _, fn := range opts {
		fn(&o)
	}
	ctx := context.Background()
	st, blobs, dsn := openStore(t, o)
	clock := o.keepClock
	if clock == nil {
		clock = ledger.NewTestClock(o.start)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := engine.New(ctx, engine.Options{Config: o.cfg, Store: st, Clock: clock, Logger: log, SweepInterval: time.Hour, Bus: o.bus, Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	// The tests' webhook receivers listen on loopback addresses.
	ao := app.Options{Engine: eng, Store: st, Blobs: blobs, Logger: log, Registry: reg, WebhooksAllowPrivate: true}
	if o.app != nil {
		o.app(&ao)
	}
	svc := app.New(ao)
	api := &httpapi.Server{App: svc, AdminKey: adminKey, Logger: log, Registry: reg}
	if !o.noClock {
		api.TestClock = clock
	}
	apiStores.Store(api, st)
	apiEngines.Store(api, eng)
	t.Cleanup(func() { apiStores.Delete(api) })
	if o.api != nil {
		o.api(api)
	}
	// Every exchange is checked against api/openapi.yaml.
	srv := httptest.NewUnstartedServer(contract.Handler(t, api.Handler()))
	if o.server != nil {
		o.server(srv)
	}
	srv.Start()
	e := &env{t: t, api: api, app: svc, url: srv.URL, clock: clock, store: st, blobs: blobs, eng: eng, cfg: o.cfg, dir: o.dir, dsn: dsn}
	closed := false
	e.close = func() {
		if closed {
			return
		}
		closed = true
		svc.CloseEvents()
		srv.Close()
		eng.Close()
		st.Close()
	}
	t.Cleanup(e.close)
	return e
}

// openStore opens the env's store and blob store, and says the DSN of
// its PostgreSQL database ("" on SQLite).
func openStore(t *testing.T, o envOptions) (ledger.Store, blob.Store, string) {
	t.Helper()
	ctx := context.Background()
	if o.pg {
		dsn := o.pgDSN
		if dsn == "" {
			dsn = pgtest.DSN(t)
		}
		st, err := postgres.Open(ctx, dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st, st.Blobs(), dsn
	}
	st, err := sqlite.Open(ctx, filepath.Join(o.dir, "creditd.db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.NewDir(filepath.Join(o.dir, "assets"))
	if err != nil {
		t.Fatal(err)
	}
	return st, blobs, ""
}

// resp is a decoded response.
type resp struct {
	status int
	body   map[string]any
	raw    []byte
	header http.Header
}

func (r resp) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r resp) num(path string) int64 {
	v := r.get(path)
	f, ok := v.(float64)
	if !ok {
		panic("not a number at " + path + ": " + string(r.raw))
	}
	return int64(f)
}

func (r resp) str(path string) string {
	s, _ := r.get(path).(string)
	return s
}

// get walks a dotted path ("error.code", "buckets.0.source").
func (r resp) get(path string) any {
	var cur any = r.body
	for _, p := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			var i int
			if _, err := jsonNumber(p, &i); err != nil || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

func jsonNumber(s string, i *int) (int, error) { return *i, json.Unmarshal([]byte(s), i) }

type hdr map[string]string

func (e *env) do(method, path string, body any, headers ...hdr) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	for _, h := range headers {
		for k, v := range h {
			if v == "" {
				req.Header.Del(k)
			} else {
				req.Header.Set(k, v)
			}
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, raw: raw, header: res.Header}
	if len(bytes.TrimSpace(raw)) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: non-JSON response %d: %s", method, path, res.StatusCode, raw)
		}
	}
	return r
}

// must asserts a status and returns the response.
func (e *env) must(status int, method, path string, body any, headers ...hdr) resp {
	e.t.Helper()
	r := e.do(method, path, body, headers...)
	if r.status != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, status, r.raw)
	}
	return r
}

func (e *env) createAccount(id string, body map[string]any) resp {
	e.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	return e.must(201, "PUT", "/v1/accounts/"+id, body)
}

func (e *env) balance(id string) resp {
	e.t.Helper()
	return e.must(200, "GET", "/v1/accounts/"+id+"/balance", nil)
}

func (e *env) available(id string) int64 {
	e.t.Helper()
	return e.balance(id).num("available")
}

func (e *env) reserve(id, action string, qty int64) resp {
	e.t.Helper()
	return e.must(201, "POST", "/v1/holds", map[string]any{"account_id": id, "action": action, "quantity": qty})
}

func (e *env) advance(d time.Duration) {
	e.t.Helper()
	e.must(200, "POST", "/v1/test-clock", map[string]any{"advance_seconds": int64(d / time.Second)})
}

func (e *env) setClock(t time.Time) {
	e.t.Helper()
	e.must(200, "POST", "/v1/test-clock", map[string]any{"now": t.Format(time.RFC3339Nano)})
}

// entries returns all entries of an account, newest first, following cursors.
func (e *env) entries(id string) []map[string]any {
	e.t.Helper()
	var out []map[string]any
	cursor := ""
	for {
		path := "/v1/accounts/" + id + "/entries?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := e.must(200, "GET", path, nil)
		for _, d := range r.body["data"].([]any) {
			out = append(out, d.(map[string]any))
		}
		if r.body["has_more"] != true {
			return out
		}
		cursor = r.str("next_cursor")
	}
}

func (e *env) entryCount(id string) int { return len(e.entries(id)) }

// verify replays the whole ledger and fails the test on any mismatch.
func (e *env) verify() {
	e.t.Helper()
	rep, err := ledger.VerifyStore(context.Background(), e.cfg, e.store)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range rep.Problems {
		e.t.Errorf("verify: %s", p)
	}
}

func bucketsBySource(r resp) map[string]int64 {
	out := map[string]int64{}
	bs, _ := r.body["buckets"].([]any)
	for _, b := range bs {
		m := b.(map[string]any)
		out[m["source"].(string)] += int64(m["remaining"].(float64))
	}
	return out
}
