package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/billing"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/web"
)

// The authorization matrix: every route of the API and of the web app,
// each with every kind of credential, and the status it must answer. The
// routes come from the routers themselves (Server.Routes, App.Routes), so
// a route added without a row here fails TestAuthorizationMatrix.

// Credentials, the matrix's columns.
const (
	credNone           = iota // no credential at all
	credWrong                 // Authorization: Bearer sk_wrong
	credAdmin                 // the admin key
	credWorker                // the worker key
	credOwn                   // alice's user token (alice owns the resources)
	credOther                 // bob's user token
	credExpired               // alice's user token, expired
	credAltered               // alice's user token, signature altered
	credOwnSession            // alice's web session cookie
	credOtherSession          // bob's web session cookie
	credExpiredSession        // alice's session cookie, expired
	credAlteredSession        // alice's session cookie, signature altered
	credCount
)

var credNames = [credCount]string{"none", "wrong key", "admin", "worker", "own token", "other token",
	"expired token", "altered token", "own session", "other session", "expired session", "altered session"}

// statuses is one row's expected status per credential.
type statuses [credCount]int

// Row shapes. Every credential that is not admitted answers 401 when it is
// not valid (or absent) and 403 when it is a valid key of another kind.

// public: the same status whoever asks.
func public(st int) statuses {
	var s statuses
	for i := range s {
		s[i] = st
	}
	return s
}

// unauthenticated is the API's answer to every column without a valid
// bearer credential (cookies are not API credentials).
func unauthenticated() statuses {
	s := public(401)
	return s
}

// adminOnly: the admin key gets ok; the worker key and user tokens 403.
func adminOnly(ok int) statuses {
	s := unauthenticated()
	s[credAdmin], s[credWorker], s[credOwn], s[credOther] = ok, 403, 403, 403
	return s
}

// workerRoute: the admin and worker keys get ok; user tokens 403.
func workerRoute(ok int) statuses {
	s := unauthenticated()
	s[credAdmin], s[credWorker], s[credOwn], s[credOther] = ok, ok, 403, 403
	return s
}

// userRoute: the admin key and alice's token get ok, bob's token gets
// other (404 for alice's resources: their existence does not leak), the
// worker key 403.
func userRoute(ok, other int) statuses {
	s := unauthenticated()
	s[credAdmin], s[credWorker], s[credOwn], s[credOther] = ok, 403, ok, other
	return s
}

// webPage: a signed-in page of the web app. Without a valid session
// cookie (bearer keys are not web credentials) it answers the sign-in
// page, 401.
func webPage(own, other int) statuses {
	s := public(401)
	s[credOwnSession], s[credOtherSession] = own, other
	return s
}

// authzReq is one request of a cell.
type authzReq struct {
	method, path string
	json         any        // a JSON body
	raw          []byte     // or a raw body with ctype
	ctype        string     //
	form         url.Values // or a web form (the session's csrf is added)
	upload       []byte     // or a multipart upload of a PNG (with csrf)
}

// authzRow is one route: a request per cell (built anew for each, so
// writes of one cell do not change another's answer) and the statuses.
type authzRow struct {
	pattern string
	want    statuses
	req     func(f *authzFixture) authzReq
}

// authzCred is a column's credential.
type authzCred struct {
	bearer string
	cookie string
	csrf   string
}

// authzFixture holds alice's resources and the credentials.
type authzFixture struct {
	e     *env
	creds [credCount]authzCred
	asset string // alice's image
	job   string // alice's queued job
	hold  string // alice's pending hold
	n     int
}

// fresh is a new unique suffix.
func (f *authzFixture) fresh() string {
	f.n++
	return fmt.Sprint(f.n)
}

func (f *authzFixture) newJob(action string, params map[string]any) string {
	f.e.t.Helper()
	return f.e.must(201, "POST", "/v1/jobs", map[string]any{"account_id": "alice", "action": action, "params": params}).str("id")
}

// newUpload uploads a PNG of alice's (for a cell that deletes one).
func (f *authzFixture) newUpload() string {
	f.e.t.Helper()
	return f.e.as(adminKey, 201, "POST", "/v1/accounts/alice/assets", pngImage(2, 2), hdr{"Content-Type": "image/png"}).str("id")
}

func (f *authzFixture) newHold() string {
	f.e.t.Helper()
	return f.e.reserve("alice", "crop", 1).str("id")
}

// leased creates one adjust job and leases it (adjust jobs are leased as
// soon as they are made, so the lease takes this one), returning its id
// and lease id.
func (f *authzFixture) leased() (job, lease string) {
	f.e.t.Helper()
	id := f.newJob("adjust", map[string]any{"source": f.asset, "brightness": 10})
	r := f.e.as(workerKeyForMatrix, 200, "POST", "/v1/worker/lease", map[string]any{"actions": []string{"adjust"}})
	if r.str("job.id") != id {
		f.e.t.Fatalf("leased %s, want %s", r.str("job.id"), id)
	}
	return id, r.str("lease_id")
}

const workerKeyForMatrix = "sk_test_worker"

// apiRows are the JSON API's routes.
func apiRows() []authzRow {
	get := func(path string) func(*authzFixture) authzReq {
		return func(*authzFixture) authzReq { return authzReq{method: "GET", path: path} }
	}
	crop := func(f *authzFixture) map[string]any {
		return map[string]any{"source": f.asset, "width": 2, "height": 2}
	}
	return []authzRow{
		{"GET /healthz", public(200), get("/healthz")},
		{"GET /readyz", public(200), get("/readyz")},
		{"GET /metrics", public(200), get("/metrics")},
		{"GET /openapi.json", public(200), get("/openapi.json")},
		{"PUT /v1/accounts/{id}", adminOnly(201), func(f *authzFixture) authzReq {
			return authzReq{method: "PUT", path: "/v1/accounts/new-" + f.fresh(), json: map[string]any{}}
		}},
		{"GET /v1/accounts/{id}", userRoute(200, 404), get("/v1/accounts/alice")},
		{"GET /v1/accounts/{id}/balance", userRoute(200, 404), get("/v1/accounts/alice/balance")},
		{"GET /v1/accounts/{id}/entries", userRoute(200, 404), get("/v1/accounts/alice/entries")},
		{"POST /v1/accounts/{id}/grants", adminOnly(201), func(*authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/accounts/alice/grants", json: map[string]any{"amount": 1, "source": "admin"}}
		}},
		{"GET /v1/accounts/{id}/quote", userRoute(200, 404), get("/v1/accounts/alice/quote?action=crop")},
		{"GET /v1/accounts/{id}/events", userRoute(200, 404), get("/v1/accounts/alice/events")},
		{"POST /v1/accounts/{id}/login-links", adminOnly(201), func(*authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/accounts/alice/login-links", json: map[string]any{}}
		}},
		{"POST /v1/accounts/{id}/tokens", adminOnly(201), func(*authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/accounts/alice/tokens", json: map[string]any{}}
		}},
		// carol's: revoking alice's would end the next cells' credentials.
		{"POST /v1/accounts/{id}/revoke-sessions", adminOnly(200), func(*authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/accounts/carol/revoke-sessions", json: map[string]any{}}
		}},
		{"POST /v1/holds", adminOnly(201), func(*authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/holds", json: map[string]any{"account_id": "alice", "action": "crop"}}
		}},
		{"GET /v1/holds/{id}", adminOnly(200), func(f *authzFixture) authzReq {
			return authzReq{method: "GET", path: "/v1/holds/" + f.hold}
		}},
		{"POST /v1/holds/{id}/capture", adminOnly(200), func(f *authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/holds/" + f.newHold() + "/capture", json: map[string]any{"quantity": 1}}
		}},
		{"POST /v1/holds/{id}/release", adminOnly(200), func(f *authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/holds/" + f.newHold() + "/release", json: map[string]any{"reason": "failed"}}
		}},
		{"POST /v1/holds/{id}/extend", adminOnly(200), func(f *authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/holds/" + f.hold + "/extend", json: map[string]any{"ttl_seconds": 600}}
		}},
		{"GET /v1/feedback", adminOnly(200), get("/v1/feedback")},
		// The matrix's server has no Backup (as a node on PostgreSQL):
		// the admin key gets its 409; creditd's backup tests get the 200.
		{"GET /v1/admin/backup", adminOnly(409), get("/v1/admin/backup")},
		{"POST /v1/batch", adminOnly(200), func(*authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/batch", json: map[string]any{"operations": []any{
				map[string]any{"op": "reserve", "account_id": "alice", "action": "crop"}}}}
		}},
		{"GET /v1/prices", userRoute(200, 200), get("/v1/prices")},
		// bob's token may create jobs, but not on alice's account.
		{"POST /v1/jobs", userRoute(201, 404), func(f *authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/jobs", json: map[string]any{"account_id": "alice", "action": "crop", "params": crop(f)}}
		}},
		{"GET /v1/jobs/{id}", userRoute(200, 404), func(f *authzFixture) authzReq {
			return authzReq{method: "GET", path: "/v1/jobs/" + f.job}
		}},
		{"PATCH /v1/jobs/{id}", userRoute(200, 404), func(f *authzFixture) authzReq {
			return authzReq{method: "PATCH", path: "/v1/jobs/" + f.newJob("crop", crop(f)),
				json: map[string]any{"params": map[string]any{"source": f.asset, "width": 3, "height": 3}}}
		}},
		{"POST /v1/jobs/{id}/cancel", userRoute(200, 404), func(f *authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/jobs/" + f.newJob("crop", crop(f)) + "/cancel", json: map[string]any{}}
		}},
		{"GET /v1/accounts/{id}/jobs", userRoute(200, 404), get("/v1/accounts/alice/jobs")},
		{"POST /v1/accounts/{id}/assets", userRoute(201, 404), func(*authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/accounts/alice/assets", raw: pngImage(2, 2), ctype: "image/png"}
		}},
		{"GET /v1/accounts/{id}/assets", userRoute(200, 404), get("/v1/accounts/alice/assets")},
		{"GET /v1/assets/{id}", userRoute(200, 404), func(f *authzFixture) authzReq {
			return authzReq{method: "GET", path: "/v1/assets/" + f.asset}
		}},
		{"DELETE /v1/assets/{id}", userRoute(200, 404), func(f *authzFixture) authzReq {
			return authzReq{method: "DELETE", path: "/v1/assets/" + f.newUpload()}
		}},
		// Each lease takes the oldest queued upscale job; with none queued
		// it would be 204, so one is queued for every cell.
		{"POST /v1/worker/lease", workerRoute(200), func(f *authzFixture) authzReq {
			f.newJob("upscale", map[string]any{"source": f.asset, "factor": 2})
			return authzReq{method: "POST", path: "/v1/worker/lease", json: map[string]any{"actions": []string{"upscale"}}}
		}},
		{"POST /v1/worker/jobs/{id}/heartbeat", workerRoute(200), func(f *authzFixture) authzReq {
			job, lease := f.leased()
			return authzReq{method: "POST", path: "/v1/worker/jobs/" + job + "/heartbeat", json: map[string]any{"lease_id": lease}}
		}},
		{"GET /v1/worker/jobs/{id}/inputs/{asset}", workerRoute(200), func(f *authzFixture) authzReq {
			job, lease := f.leased()
			return authzReq{method: "GET", path: "/v1/worker/jobs/" + job + "/inputs/" + f.asset + "?lease_id=" + url.QueryEscape(lease)}
		}},
		{"POST /v1/worker/jobs/{id}/outputs", workerRoute(201), func(f *authzFixture) authzReq {
			job, lease := f.leased()
			return authzReq{method: "POST", path: "/v1/worker/jobs/" + job + "/outputs?lease_id=" + url.QueryEscape(lease),
				raw: pngImage(2, 2), ctype: "image/png"}
		}},
		{"POST /v1/worker/jobs/{id}/complete", workerRoute(200), func(f *authzFixture) authzReq {
			job, lease := f.leased()
			out := f.e.as(workerKeyForMatrix, 201, "POST", "/v1/worker/jobs/"+job+"/outputs?lease_id="+url.QueryEscape(lease),
				pngImage(2, 2), hdr{"Content-Type": "image/png"}).str("id")
			return authzReq{method: "POST", path: "/v1/worker/jobs/" + job + "/complete", json: map[string]any{"lease_id": lease, "outputs": []string{out}}}
		}},
		{"POST /v1/worker/jobs/{id}/fail", workerRoute(200), func(f *authzFixture) authzReq {
			job, lease := f.leased()
			return authzReq{method: "POST", path: "/v1/worker/jobs/" + job + "/fail", json: map[string]any{"lease_id": lease, "error": "boom"}}
		}},
		{"GET /v1/packs", userRoute(200, 200), get("/v1/packs")},
		// Purchases are not configured (no Stripe keys): the owner and the
		// admin learn that; bob still learns nothing of alice.
		{"POST /v1/accounts/{id}/checkout", userRoute(503, 404), func(*authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/accounts/alice/checkout", json: map[string]any{"pack": "small"}}
		}},
		{"POST /v1/webhooks/stripe", public(503), func(*authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/webhooks/stripe", json: map[string]any{}}
		}},
		{"GET /v1/test-clock", adminOnly(200), get("/v1/test-clock")},
		{"POST /v1/test-clock", adminOnly(200), func(*authzFixture) authzReq {
			return authzReq{method: "POST", path: "/v1/test-clock", json: map[string]any{"advance_seconds": 1}}
		}},
		{"GET /{$}", public(303), get("/")},
	}
}

// webRows are the web app's routes (mounted at "/app/" of the API). A
// form (POST) must answer 303 (post/redirect/get): its cells are the
// status of the page the 303 leads to (send follows it).
func webRows() []authzRow {
	get := func(path string) func(*authzFixture) authzReq {
		return func(*authzFixture) authzReq { return authzReq{method: "GET", path: path} }
	}
	post := func(path string, form url.Values) func(*authzFixture) authzReq {
		return func(*authzFixture) authzReq { return authzReq{method: "POST", path: path, form: form} }
	}
	link := func(f *authzFixture) string {
		u := f.e.must(201, "POST", "/v1/accounts/alice/login-links", map[string]any{}).str("url")
		return strings.TrimPrefix(u, f.e.url)
	}
	filter := func(f *authzFixture) string {
		return f.newJob("filter", map[string]any{"source": f.asset, "name": "invert"})
	}
	return []authzRow{
		{"GET /app/static/", public(200), get("/app/static/app.css")},
		{"GET /app/{$}", public(303), get("/app/")},
		// The answer to a form (without one: "nothing to show").
		{"GET /app/message", public(200), get("/app/message")},
		// A sign-in link is its own credential: any caller may open and
		// redeem a fresh one.
		{"GET /app/login", public(200), func(f *authzFixture) authzReq { return authzReq{method: "GET", path: link(f)} }},
		{"POST /app/login", public(200), func(f *authzFixture) authzReq {
			u, _ := url.Parse(link(f))
			return authzReq{method: "POST", path: "/app/login", form: url.Values{"token": {u.Query().Get("token")}}}
		}},
		{"POST /app/logout", webPage(200, 200), post("/app/logout", url.Values{})},
		{"POST /app/logout-everywhere", webPage(200, 200), post("/app/logout-everywhere", url.Values{})},
		{"GET /app/create", webPage(200, 200), get("/app/create")},
		{"POST /app/uploads", webPage(200, 200), func(*authzFixture) authzReq {
			return authzReq{method: "POST", path: "/app/uploads", upload: pngImage(2, 2)}
		}},
		// bob cannot start a job on alice's image: it is not one of his.
		{"POST /app/jobs", webPage(200, 400), func(f *authzFixture) authzReq {
			return authzReq{method: "POST", path: "/app/jobs", form: url.Values{"action": {"filter"}, "source": {f.asset}, "name": {"invert"}}}
		}},
		{"GET /app/jobs/{id}", webPage(200, 404), func(f *authzFixture) authzReq {
			return authzReq{method: "GET", path: "/app/jobs/" + f.job}
		}},
		{"POST /app/jobs/{id}/cancel", webPage(200, 404), func(f *authzFixture) authzReq {
			return authzReq{method: "POST", path: "/app/jobs/" + filter(f) + "/cancel", form: url.Values{}}
		}},
		{"POST /app/jobs/{id}/params", webPage(200, 404), func(f *authzFixture) authzReq {
			return authzReq{method: "POST", path: "/app/jobs/" + filter(f) + "/params", form: url.Values{"name": {"grayscale"}}}
		}},
		{"GET /app/gallery", webPage(200, 200), get("/app/gallery")},
		{"GET /app/assets/{id}", webPage(200, 404), func(f *authzFixture) authzReq {
			return authzReq{method: "GET", path: "/app/assets/" + f.asset}
		}},
		{"POST /app/assets/{id}/delete", webPage(200, 404), func(f *authzFixture) authzReq {
			return authzReq{method: "POST", path: "/app/assets/" + f.newUpload() + "/delete", form: url.Values{}}
		}},
		{"GET /app/events", webPage(200, 200), get("/app/events")},
		{"GET /app/settings", webPage(303, 303), get("/app/settings")},
		{"GET /app/settings/account", webPage(303, 303), get("/app/settings/account")},
		{"GET /app/settings/account/profile", webPage(200, 200), get("/app/settings/account/profile")},
		// Each session sets its own account's time zone.
		{"POST /app/settings/account/profile/timezone", webPage(200, 200),
			post("/app/settings/account/profile/timezone", url.Values{"timezone": {"UTC"}})},
		{"GET /app/settings/account/billing", webPage(200, 200), get("/app/settings/account/billing")},
		{"GET /app/settings/account/billing/add-credits", webPage(200, 200), get("/app/settings/account/billing/add-credits")},
		// Purchases are not configured (no Stripe keys).
		{"POST /app/settings/account/billing/add-credits", webPage(503, 503),
			post("/app/settings/account/billing/add-credits", url.Values{"pack": {"small"}})},
		{"GET /app/help", webPage(303, 303), get("/app/help")},
		{"GET /app/help/credits-and-usage", webPage(200, 200), get("/app/help/credits-and-usage")},
		// Each account answers for itself: bob's answer is his own.
		{"POST /app/help/credits-and-usage/feedback", webPage(200, 200),
			post("/app/help/credits-and-usage/feedback", url.Values{"helpful": {"yes"}})},
		{"/app/", public(404), get("/app/no-such-page")},
	}
}

func TestAuthorizationMatrix(t *testing.T) {
	for _, store := range []struct {
		name string
		opts []envOpt
	}{{"SQLite", nil}, {"PostgreSQL", []envOpt{onPostgres()}}} {
		t.Run(store.name, func(t *testing.T) {
			t.Parallel()
			authorizationMatrix(t, store.name == "PostgreSQL", store.opts...)
		})
	}
}

func authorizationMatrix(t *testing.T, onPG bool, opts ...envOpt) {
	cfg := ledger.DefaultConfig()
	// Authorization only: no rate limit may answer a cell.
	cfg.Limits.RequestsPerSecondPerUser = 0
	cfg.Limits.AuthFailuresPerMinutePerAddress = 0
	cfg.Limits.ActiveJobsPerAccountMax = 100_000
	cfg.Limits.AssetUploadsPerMinutePerAccount = 100_000
	var app *web.App
	e := newEnv(t, append(opts, withConfig(cfg), withAPI(func(s *httpapi.Server) {
		s.WorkerKey = workerKeyForMatrix
		b, err := billing.New(billing.DefaultConfig(), s.App, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		s.Billing = b
		app = web.New(s.App)
		app.Billing = b
		s.Web = app
	}))...)

	// Every route has a row, and every row a route.
	rows := map[string]authzRow{}
	for _, r := range append(apiRows(), webRows()...) {
		if _, dup := rows[r.pattern]; dup {
			t.Fatalf("two rows for %q", r.pattern)
		}
		rows[r.pattern] = r
	}
	var routes []string
	for _, p := range e.api.Routes() {
		if p == "/app/" { // the web app's mount: its own routes follow
			routes = append(routes, app.Routes()...)
			continue
		}
		routes = append(routes, p)
	}
	for _, p := range routes {
		if _, ok := rows[p]; !ok {
			t.Errorf("route %q has no row in the authorization matrix: add one to apiRows or webRows in httpapi/authz_test.go", p)
		}
	}
	for p := range rows {
		if !slices.Contains(routes, p) {
			t.Errorf("the authorization matrix has a row for %q, which is not a route", p)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	f := newAuthzFixture(e)
	for _, p := range routes {
		row := rows[p]
		f.renew()
		for c := range credCount {
			got, body := f.send(row.req(f), f.creds[c])
			if got != row.want[c] {
				t.Errorf("%s as %s: %d, want %d: %.300s", p, credNames[c], got, row.want[c], body)
			}
		}
	}
	e.verify()
}

func newAuthzFixture(e *env) *authzFixture {
	e.t.Helper()
	f := &authzFixture{e: e}
	for _, id := range []string{"alice", "bob", "carol"} {
		e.createAccount(id, nil)
		e.must(201, "POST", "/v1/accounts/"+id+"/grants", map[string]any{"amount": 1_000_000, "source": "admin"})
	}
	f.asset = e.must(201, "POST", "/v1/accounts/alice/assets", pngImage(4, 4), hdr{"Content-Type": "image/png"}).str("id")
	f.job = f.newJob("crop", map[string]any{"source": f.asset, "width": 2, "height": 2})
	f.hold = e.reserve("alice", "crop", 1).str("id")

	expiredToken := e.must(201, "POST", "/v1/accounts/alice/tokens", map[string]any{"ttl_seconds": 1}).str("token")
	expiredSession := f.session("alice", time.Second)
	e.advance(2 * time.Second)
	f.creds[credExpired], f.creds[credExpiredSession] = authzCred{bearer: expiredToken}, expiredSession
	f.renew()
	return f
}

// session signs a web session of account with a nonce of its own.
func (f *authzFixture) session(account string, ttl time.Duration) authzCred {
	f.e.t.Helper()
	c, err := f.e.app.NewClaims(context.Background(), account, ttl)
	if err != nil {
		f.e.t.Fatal(err)
	}
	c.Nonce = "nonce-" + account + "-" + f.fresh()
	return authzCred{cookie: f.e.app.Seal(app.PurposeSession, c), csrf: f.e.app.MAC(app.PurposeCSRF, account+"\x00"+c.Nonce)}
}

// renew issues the valid credentials anew: a row that signs out (one
// session, or every credential of alice's) must not change the next
// row's answers. (The expired ones stay expired.)
func (f *authzFixture) renew() {
	own := f.e.userToken("alice")
	ownSession := f.session("alice", app.SessionTTL)
	f.creds[credNone] = authzCred{}
	f.creds[credWrong] = authzCred{bearer: "sk_wrong"}
	f.creds[credAdmin] = authzCred{bearer: adminKey}
	f.creds[credWorker] = authzCred{bearer: workerKeyForMatrix}
	f.creds[credOwn] = authzCred{bearer: own}
	f.creds[credOther] = authzCred{bearer: f.e.userToken("bob")}
	f.creds[credAltered] = authzCred{bearer: alter(own)}
	f.creds[credOwnSession] = ownSession
	f.creds[credOtherSession] = f.session("bob", app.SessionTTL)
	f.creds[credAlteredSession] = authzCred{cookie: alter(ownSession.cookie), csrf: ownSession.csrf}
}

// alter changes a signed credential's last signature character.
func alter(sealed string) string {
	last := sealed[len(sealed)-1]
	repl := byte('A')
	if last == 'A' {
		repl = 'B'
	}
	return sealed[:len(sealed)-1] + string(repl)
}

// noRedirects is a client that reports redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// send makes one cell's request and returns its status (and the start of
// its body, for messages). Event streams are closed once their status is in.
func (f *authzFixture) send(q authzReq, c authzCred) (int, []byte) {
	f.e.t.Helper()
	var body io.Reader
	ctype := q.ctype
	switch {
	case q.json != nil:
		b, _ := json.Marshal(q.json)
		body, ctype = bytes.NewReader(b), "application/json"
	case q.raw != nil:
		body = bytes.NewReader(q.raw)
	case q.form != nil:
		form := url.Values{}
		for k, v := range q.form {
			form[k] = v
		}
		if c.csrf != "" {
			form.Set("csrf", c.csrf)
		}
		body, ctype = strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"
	case q.upload != nil:
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("csrf", c.csrf)
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="a.png"`)
		h.Set("Content-Type", "image/png")
		fw, _ := mw.CreatePart(h)
		_, _ = fw.Write(q.upload)
		_ = mw.Close()
		body, ctype = &buf, mw.FormDataContentType()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, q.method, f.e.url+q.path, body)
	if err != nil {
		f.e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: c.cookie})
	}
	res, err := noRedirects.Do(req)
	if err != nil {
		f.e.t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	defer res.Body.Close()
	if q.method == "POST" && strings.HasPrefix(q.path, "/app/") {
		// Post/redirect/get: a web form is answered with a 303; the cell
		// is the status of the page it leads to.
		if res.StatusCode != http.StatusSeeOther {
			f.e.t.Errorf("POST %s answered %d, want 303 to a GET page", q.path, res.StatusCode)
		} else if loc := res.Header.Get("Location"); strings.HasPrefix(loc, "/app/") {
			return f.follow(loc, c, res.Cookies())
		}
	}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		return res.StatusCode, nil
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, b
}

// follow GETs the page a web form redirected to, with the cell's session
// and the cookies the form's answer set (a new session, a flash).
func (f *authzFixture) follow(loc string, c authzCred, set []*http.Cookie) (int, []byte) {
	f.e.t.Helper()
	req, err := http.NewRequest("GET", f.e.url+loc, nil)
	if err != nil {
		f.e.t.Fatal(err)
	}
	session := c.cookie
	for _, ck := range set {
		switch {
		case ck.Name == web.SessionCookie:
			session = ck.Value // "" when it was cleared
		case ck.MaxAge >= 0:
			req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		}
	}
	if session != "" {
		req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: session})
	}
	res, err := noRedirects.Do(req)
	if err != nil {
		f.e.t.Fatalf("GET %s: %v", loc, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, b
}
