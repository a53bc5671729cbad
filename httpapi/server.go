// Package httpapi is creditd's JSON API over HTTP: routing, authentication
// (admin, worker and user-scoped keys), request decoding with limits, the
// Idempotency-Key header and its fingerprint, the live event streams
// (SSE), the test clock, /healthz, /metrics and the OpenAPI document
// (/openapi.json, package api). It holds no credit rules
// and no store: each handler decodes a request, calls the application
// layer (package app, Server.App) and encodes its answer, with the status
// of app.Status for an error. The web app (package web) and billing
// (package billing) stand beside it; it imports neither: their routes
// are mounted from outside (Server.Web, Server.Billing).
//
// Users are authenticated with stateless credentials signed by the
// application layer (app.Service: user tokens "ut_…", sign-in links, the
// web app's sessions); every use is checked against the store, so
// revocations hold at once on every node. A user principal sees its own
// account only; another account's resources answer 404, not 403, so that
// their existence does not leak.
package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/internal/httpx"
	"github.com/creditd/creditd/ledger"
)

// Server serves the API.
type Server struct {
	// App runs the use cases; the handlers decode a request, call it and
	// encode its answer.
	App      *app.Service
	AdminKey string
	// WorkerKey authenticates generation workers (only /v1/worker/*).
	WorkerKey string
	// Billing, when non-nil, serves credit packs, checkout and Stripe
	// webhooks (package billing; mounted with the API's authentication).
	Billing httpx.RouteProvider
	// TestClock, when non-nil, enables /v1/test-clock.
	TestClock *ledger.TestClock
	Logger    *slog.Logger
	Registry  *prometheus.Registry
	// Readiness answers GET /readyz (see package readiness); nil: the
	// node is always ready.
	Readiness Readiness

	// Web, when non-nil, serves the web app under /app/ (see package web).
	Web http.Handler
	// Backup, when non-nil, makes the snapshot GET /v1/admin/backup
	// streams; nil (a node on PostgreSQL): the route answers 409.
	Backup BackupFunc
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client (see httpx.ParseTrustedProxies); empty: the peer is the
	// client.
	TrustedProxies []netip.Prefix

	log     *slog.Logger
	cfg     *ledger.Config
	mux     *http.ServeMux
	reqs    *prometheus.CounterVec
	latency *prometheus.HistogramVec
	batch   *batchMetrics
	routes  []string

	healthzFailures prometheus.Counter
}

// Routes lists the patterns Handler registered, in order. "/app/" is the
// web app's (its own routes: web.App.Routes).
func (s *Server) Routes() []string { return slices.Clone(s.routes) }

// Principal kinds.
const (
	kindAdmin  = "admin"
	kindWorker = "worker"
	kindUser   = "user"
)

// Principal is who is calling. A user principal's ID is its account id,
// and Claims are its credential's (nil for the admin and worker keys).
type Principal struct {
	Kind   string
	ID     string
	Claims *app.Claims
}

// canAccess reports whether p may see an account's resources.
func (p Principal) canAccess(accountID string) bool {
	return p.Kind == kindAdmin || p.Kind == kindUser && p.ID == accountID
}

type ctxKey struct{}

// Handler builds the routes.
func (s *Server) Handler() http.Handler {
	s.log = s.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.cfg = s.App.Config()
	if s.Registry == nil {
		s.Registry = prometheus.NewRegistry()
	}
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "creditd_http_requests_total", Help: "HTTP requests by route and status.",
	}, []string{"route", "status"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "creditd_http_request_seconds", Help: "HTTP request latency by route.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"route"})
	s.healthzFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "creditd_healthz_failures_total", Help: "GET /healthz answers of 503: the store did not answer.",
	})
	s.Registry.MustRegister(s.reqs, s.latency, s.healthzFailures)
	s.batch = newBatchMetrics(s.Registry)

	m := httpx.NewRouteMux()
	s.mux = m.ServeMux
	defer func() { s.routes = m.Patterns() }()
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))
	m.Handle("GET /openapi.json", s.instrument("GET /openapi.json", http.HandlerFunc(s.getOpenAPI)))

	admin := func(pattern string, h func(http.ResponseWriter, *http.Request, Principal)) {
		m.Handle(pattern, s.instrument(pattern, s.auth(s.pathIDs(pattern, h), kindAdmin)))
	}
	worker := func(pattern string, h func(http.ResponseWriter, *http.Request, Principal)) {
		m.Handle(pattern, s.instrument(pattern, s.auth(s.pathIDs(pattern, h), kindAdmin, kindWorker)))
	}
	// user routes admit the admin key and user tokens; handlers check that
	// a user touches its own account only (own, ownedJob, canAccess).
	user := func(pattern string, h func(http.ResponseWriter, *http.Request, Principal)) {
		m.Handle(pattern, s.instrument(pattern, s.auth(s.pathIDs(pattern, h), kindAdmin, kindUser)))
	}
	own := s.ownAccount
	admin("PUT /v1/accounts/{id}", s.putAccount)
	user("GET /v1/accounts/{id}", own(s.getAccount))
	user("GET /v1/accounts/{id}/balance", own(s.getBalance))
	user("GET /v1/accounts/{id}/entries", own(s.listEntries))
	admin("POST /v1/accounts/{id}/grants", s.postGrant)
	user("GET /v1/accounts/{id}/quote", own(s.getQuote))
	user("GET /v1/accounts/{id}/events", own(s.getEvents))
	admin("POST /v1/accounts/{id}/login-links", s.postLoginLink)
	admin("POST /v1/accounts/{id}/tokens", s.postToken)
	admin("POST /v1/accounts/{id}/revoke-sessions", s.postRevokeSessions)
	admin("POST /v1/holds", s.postHold)
	admin("GET /v1/holds/{id}", s.getHold)
	admin("POST /v1/holds/{id}/capture", s.captureHold)
	admin("POST /v1/holds/{id}/release", s.releaseHold)
	admin("POST /v1/holds/{id}/extend", s.extendHold)
	admin("POST /v1/batch", s.postBatch)
	admin("GET /v1/feedback", s.listFeedback)
	admin("GET /v1/admin/backup", s.getBackup)
	user("GET /v1/prices", s.getPrices)
	user("POST /v1/jobs", s.postJob)
	user("GET /v1/jobs/{id}", s.getJob)
	user("PATCH /v1/jobs/{id}", s.patchJob)
	user("POST /v1/jobs/{id}/cancel", s.cancelJob)
	user("GET /v1/accounts/{id}/jobs", own(s.listJobs))
	user("POST /v1/accounts/{id}/assets", own(s.postAsset))
	user("GET /v1/accounts/{id}/assets", own(s.listAssets))
	user("GET /v1/assets/{id}", s.getAsset)
	user("DELETE /v1/assets/{id}", s.deleteAsset)
	worker("POST /v1/worker/lease", s.workerLease)
	worker("POST /v1/worker/jobs/{id}/heartbeat", s.workerHeartbeat)
	worker("GET /v1/worker/jobs/{id}/inputs/{asset}", s.workerInput)
	worker("POST /v1/worker/jobs/{id}/outputs", s.workerOutput)
	worker("POST /v1/worker/jobs/{id}/complete", s.workerComplete)
	worker("POST /v1/worker/jobs/{id}/fail", s.workerFail)
	if s.Billing != nil {
		for _, rt := range s.Billing.Routes() {
			h := rt.Handler
			wrapped := func(w http.ResponseWriter, r *http.Request, _ Principal) { h(w, r) }
			switch rt.Auth {
			case httpx.AuthPublic:
				m.Handle(rt.Pattern, s.instrument(rt.Pattern, h))
			case httpx.AuthUser:
				user(rt.Pattern, wrapped)
			case httpx.AuthOwn:
				user(rt.Pattern, own(wrapped))
			default:
				panic("billing route " + rt.Pattern + ": unknown auth " + rt.Auth)
			}
		}
	}
	if s.TestClock != nil {
		admin("GET /v1/test-clock", s.getTestClock)
		admin("POST /v1/test-clock", s.postTestClock)
	}
	if s.Web != nil {
		m.Handle("/app/", s.instrument("/app/", s.Web))
		m.Handle("GET /{$}", http.RedirectHandler("/app/", http.StatusSeeOther))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := m.Handler(r)
		if pattern == "" {
			// Distinguish unknown paths (404) from known paths with another
			// method (405), both as JSON errors.
			s.notFound(w, r)
			return
		}
		m.ServeHTTP(w, r)
	})
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		if method == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, p := s.mux.Handler(probe); p != "" {
			s.writeError(w, r, &ledger.Error{Code: ledger.EMethodNotAllowed, Message: r.Method + " is not allowed on " + r.URL.Path})
			return
		}
	}
	s.writeError(w, r, ledger.Errorf(ledger.ENotFound, "no route %s %s", r.Method, r.URL.Path))
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (event streams
// set their own write deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) instrument(route string, next http.Handler) http.Handler {
	// The route's series, resolved on first use (see statusCounters).
	reqs := newStatusCounters(s.reqs, route)
	latency := sync.OnceValue(func() prometheus.Observer { return s.latency.WithLabelValues(route) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		next.ServeHTTP(sw, r)
		d := time.Since(start)
		reqs.inc(sw.status)
		latency().Observe(d.Seconds())
		level := slog.LevelDebug
		if sw.status >= 400 {
			level = slog.LevelInfo
		}
		// Checked first: building the attributes costs allocations even
		// when the level is off (successes log at debug).
		if ctx := context.Background(); s.log.Enabled(ctx, level) {
			s.log.Log(ctx, level, "request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "duration_ms", d.Milliseconds())
		}
	})
}

// principal identifies the caller from its bearer key.
func (s *Server) principal(r *http.Request) (Principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return Principal{}, ledger.Errorf(ledger.EUnauthenticated, "send Authorization: Bearer <key>")
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.AdminKey)) == 1 {
		return Principal{Kind: kindAdmin, ID: kindAdmin}, nil
	}
	if s.WorkerKey != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.WorkerKey)) == 1 {
		return Principal{Kind: kindWorker, ID: kindWorker}, nil
	}
	if strings.HasPrefix(tok, app.UserTokenPrefix) {
		c, err := s.App.OpenUserToken(r.Context(), tok)
		switch {
		case err == nil:
			return Principal{Kind: kindUser, ID: c.Account, Claims: &c}, nil
		case errors.Is(err, app.ErrCredentialExpired):
			return Principal{}, ledger.Errorf(ledger.EUnauthenticated, "the user token has expired; ask for a new one")
		case errors.Is(err, app.ErrCredentialRevoked):
			return Principal{}, ledger.Errorf(ledger.EUnauthenticated, "the user token was revoked; ask for a new one")
		case !errors.Is(err, app.ErrCredentialInvalid):
			return Principal{}, err // the store could not say whether it was revoked
		}
	}
	return Principal{}, ledger.Errorf(ledger.EUnauthenticated, "invalid API key")
}

// ownAccount admits a principal to /v1/accounts/{id}/… routes of accounts
// it may access; for others it answers 404 exactly as for a missing
// account, so a user cannot learn which other accounts exist.
func (s *Server) ownAccount(h func(http.ResponseWriter, *http.Request, Principal)) func(http.ResponseWriter, *http.Request, Principal) {
	return func(w http.ResponseWriter, r *http.Request, p Principal) {
		if id := r.PathValue("id"); !p.canAccess(id) {
			s.writeError(w, r, ledger.Errorf(ledger.ENotFound, "no account %q", id))
			return
		}
		h(w, r, p)
	}
}

// pathIDs checks the ids in a route's path ({id}, {asset}) by the text
// rule before h runs: an account id within id_bytes_max, any other id
// (holds, jobs, assets) within ledger.ResourceIDBytesMax. An id that
// breaks it names nothing that could exist; it is 400 invalid_request
// naming the field, and never reaches the engine or the store.
func (s *Server) pathIDs(pattern string, h func(http.ResponseWriter, *http.Request, Principal)) func(http.ResponseWriter, *http.Request, Principal) {
	type pathID struct {
		name, field string
		maxBytes    int
	}
	var ids []pathID
	segs := strings.Split(pattern, "/")
	for i, seg := range segs {
		name, ok := strings.CutPrefix(seg, "{")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(name, "}")
		kind := name // {asset}
		if name == "id" {
			kind = strings.TrimSuffix(segs[i-1], "s") // /accounts/{id}
		}
		maxBytes := ledger.ResourceIDBytesMax
		if kind == "account" {
			maxBytes = s.cfg.Limits.IDBytesMax
		}
		ids = append(ids, pathID{name: name, field: kind + " id", maxBytes: maxBytes})
	}
	if len(ids) == 0 {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request, p Principal) {
		for _, id := range ids {
			if err := ledger.CheckText(id.field, r.PathValue(id.name), id.maxBytes); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		h(w, r, p)
	}
}

// auth admits callers of the given kinds; other valid keys get 403. User
// principals are rate-limited per account, and failed credentials per
// client address (ratelimit.go); admin and worker keys are not limited.
func (s *Server) auth(h func(http.ResponseWriter, *http.Request, Principal), kinds ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.principal(r)
		if err != nil {
			// A credential was presented and is not valid: count it against
			// the client's address (none presented is not a failure).
			if _, sent := r.Header["Authorization"]; sent {
				if terr := s.authFailed(w, r); terr != nil {
					err = terr
				}
			}
			s.writeError(w, r, err)
			return
		}
		if p.Kind == kindUser {
			if err := s.limitUser(w, p.ID); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		if !slices.Contains(kinds, p.Kind) {
			s.writeError(w, r, ledger.Errorf(ledger.EForbidden, "a %s key cannot use %s %s", p.Kind, r.Method, r.URL.Path))
			return
		}
		h(w, r, p)
	})
}

func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return mt
}

func tooLargeOr(err error, msg string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &ledger.Error{Code: ledger.ETooLarge, Message: fmt.Sprintf("request body exceeds %d bytes", mbe.Limit)}
	}
	return ledger.Errorf(ledger.EInvalid, "%s", msg)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// healthzTimeout bounds /healthz's store probe.
const healthzTimeout = 2 * time.Second

// healthz is liveness: 200 {"status":"ok"} when the process and its store
// answer, 503 {"status":"unavailable"} when the store does not. Callers
// need no key, so the answer says no more; the cause goes to the log and
// to creditd_healthz_failures_total.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthzTimeout)
	defer cancel()
	if err := s.App.Ping(ctx); err != nil {
		s.healthzFailures.Inc()
		s.log.Error("healthz: the store does not answer", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

// readBody reads a body of at most request_body_bytes_max.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return s.readBodyMax(w, r, s.cfg.Limits.RequestBodyBytesMax)
}

// readJSON reads the request body and decodes it into v; on failure it
// answers with the error and returns ok false. The body is returned for
// the Idempotency-Key fingerprint.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any) (body []byte, ok bool) {
	body, err := s.readBody(w, r)
	if err == nil {
		err = decode(body, v)
	}
	if err != nil {
		s.writeError(w, r, err)
		return nil, false
	}
	return body, true
}

// readBodyMax reads a body of at most limit bytes.
func (s *Server) readBodyMax(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &ledger.Error{Code: ledger.ETooLarge, Message: fmt.Sprintf("request body exceeds %d bytes", limit)}
		}
		return nil, ledger.Errorf(ledger.EInvalid, "could not read the request body")
	}
	return b, nil
}

// decode parses a JSON object strictly: no unknown fields, no trailing
// data, every string by the text rule (ledger.CheckJSON: invalid UTF-8 or
// a NUL anywhere is 400 naming the field, before either decoder runs).
// Plain bodies of the hot routes take a faster path with the same result
// (see fastdecode.go).
func decode(body []byte, v any) error {
	if err := ledger.CheckJSON("", body); err != nil {
		return err
	}
	return decodeChecked(body, v)
}

// decodeChecked is decode for a body whose strings are checked elsewhere
// (POST /v1/batch checks each operation on its own).
func decodeChecked(body []byte, v any) error {
	if fb, ok := v.(fastBody); ok && decodeFast(body, fb.fastFields()) {
		return nil
	}
	return decodeJSON(body, v)
}

// decodeJSON is decode through encoding/json, for every body.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &ute) && ute.Field == "":
			return ledger.Errorf(ledger.EInvalid, "the request body must be a JSON object")
		case errors.As(err, &ute):
			return ledger.Errorf(ledger.EInvalid, "field %q must be %s", ute.Field, typeName(ute.Type.String()))
		case errors.As(err, &se):
			return ledger.Errorf(ledger.EInvalid, "malformed JSON at byte %d", se.Offset)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return ledger.Errorf(ledger.EInvalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return ledger.Errorf(ledger.EInvalid, "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	if dec.More() {
		return ledger.Errorf(ledger.EInvalid, "malformed JSON: data after the object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return ledger.Errorf(ledger.EInvalid, "malformed JSON: data after the object")
	}
	return nil
}

// typeName says in JSON's terms what a field of Go type t takes.
func typeName(t string) string {
	switch {
	case t == "int64" || t == "int":
		return "an integer within 64-bit range"
	case t == "string" || t == "ledger.Plan" || t == "ledger.Source":
		return "a string"
	case t == "bool":
		return "true or false"
	case t == "float64":
		return "a number"
	case t == "[]string":
		return "an array of strings"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	default: // maps, structs, json.RawMessage
		return "a JSON object"
	}
}
