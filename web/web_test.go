package web_test

import (
	"bytes"
	"context"
	"html"
	"image"
	"image/png"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/blob"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/sqlite"
	"github.com/creditd/creditd/web"
)

// env is the API with the web app mounted, over SQLite, with a test clock.
type env struct {
	t     *testing.T
	url   string
	api   *httpapi.Server
	app   *app.Service
	eng   *engine.Engine
	clock *ledger.TestClock
}

// apiStores are the stores of the envs' API servers (storeOf).
var apiStores sync.Map

// storeOf returns the store of an env's API server, for tests that read
// it directly.
func storeOf(s *httpapi.Server) ledger.Store {
	st, _ := apiStores.Load(s)
	return st.(ledger.Store)
}

// newEnv starts the app; opts adjust the API server (e.g. add billing)
// before it serves.
func newEnv(t *testing.T, opts ...func(*httpapi.Server)) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "creditd.db"))
	if err != nil {
		t.Fatal(err)
	}
	return newEnvOn(t, st, opts...)
}

// newEnvOn is newEnv on a store of the caller's.
func newEnvOn(t *testing.T, st ledger.Store, opts ...func(*httpapi.Server)) *env {
	t.Helper()
	return newEnvConfigOn(t, st, nil, opts...)
}

// newEnvConfigOn is newEnvOn with a configuration of the caller's (nil:
// the defaults).
func newEnvConfigOn(t *testing.T, st ledger.Store, cfg *ledger.Config, opts ...func(*httpapi.Server)) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	clock := ledger.NewTestClock(time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	blobs, err := blob.NewDir(filepath.Join(dir, "assets"))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(ctx, engine.Options{Config: cfg, Store: st, Clock: clock, Logger: log, SweepInterval: time.Hour, Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	svc := app.New(app.Options{Engine: eng, Store: st, Blobs: blobs, Logger: log})
	api := &httpapi.Server{App: svc, AdminKey: "sk_admin", TestClock: clock, Logger: log}
	apiStores.Store(api, st)
	t.Cleanup(func() { apiStores.Delete(api) })
	for _, o := range opts {
		o(api)
	}
	webApp := web.New(svc)
	if b, ok := api.Billing.(web.Purchases); ok {
		webApp.Billing = b
	}
	api.Web = webApp
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		svc.CloseEvents()
		srv.Close()
		eng.Close()
		st.Close()
	})
	return &env{t: t, url: srv.URL, api: api, app: svc, eng: eng, clock: clock}
}

// balanceStatus is the status of GET /v1/accounts/alice/balance with the
// user token tok.
func (e *env) balanceStatus(tok string) int {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+"/v1/accounts/alice/balance", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func (e *env) account(id string) {
	e.t.Helper()
	if _, err := e.eng.PutAccount(context.Background(), engine.PutAccountParams{ID: id}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) link(id string) string {
	e.t.Helper()
	link, _, err := e.app.NewLoginLink(context.Background(), id, e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	return link
}

// user is a browser-like client: a cookie jar, no automatic redirects.
type user struct {
	e    *env
	c    *http.Client
	csrf string
}

type page struct {
	status   int
	body     string
	location string
	header   http.Header
	// posted is the answer to a form itself (a 303), when the page is
	// the one it redirected to.
	posted *page
}

func (e *env) newUser() *user {
	jar, _ := cookiejar.New(nil)
	return &user{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// signIn opens a sign-in link, presses its Continue button and returns
// the user, signed in.
func (e *env) signIn(id string) *user {
	e.t.Helper()
	u := e.newUser()
	if p := u.useLink(e.link(id)); p.status != http.StatusOK || p.location != "/app/create" {
		e.t.Fatalf("sign in: %d %s", p.status, p.location)
	}
	return u
}

var linkTokenRE = regexp.MustCompile(`name="token" value="([^"]+)"`)

// useLink opens a sign-in link and, when its page offers the Continue
// button, presses it (POST /app/login with the page's token); it returns
// the last response.
func (u *user) useLink(link string, headers ...map[string]string) page {
	u.e.t.Helper()
	req, _ := http.NewRequest("GET", link, nil)
	for _, h := range headers {
		for k, v := range h {
			req.Header.Set(k, v)
		}
	}
	p := u.do(req)
	m := linkTokenRE.FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil {
		return p
	}
	return u.post("/app/login", url.Values{"token": {html.UnescapeString(m[1])}}, headers...)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (u *user) do(req *http.Request) page {
	u.e.t.Helper()
	res, err := u.c.Do(req)
	if err != nil {
		u.e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	p := page{status: res.StatusCode, body: string(b), location: res.Header.Get("Location"), header: res.Header}
	if m := csrfRE.FindStringSubmatch(p.body); m != nil {
		u.csrf = m[1]
	}
	return p
}

// submit sends a form. No page is rendered at a POST URL: the answer must
// be a 303 (post/redirect/get); a redirect within the app is followed, and
// the page it leads to is returned, with location the form's redirect.
func (u *user) submit(req *http.Request) page {
	u.e.t.Helper()
	p := u.do(req)
	if p.status != http.StatusSeeOther {
		u.e.t.Fatalf("POST %s answered %d, want 303 to a GET page (post/redirect/get):\n%s", req.URL.Path, p.status, p.body)
	}
	if !strings.HasPrefix(p.location, "/app/") {
		return p // an external page (Stripe Checkout)
	}
	next := u.get(p.location)
	next.location, next.posted = p.location, &p
	return next
}

func (u *user) get(path string) page {
	u.e.t.Helper()
	if strings.HasPrefix(path, "/") {
		path = u.e.url + path
	}
	req, _ := http.NewRequest("GET", path, nil)
	return u.do(req)
}

// post sends a form, with the session's CSRF token unless form has one.
func (u *user) post(path string, form url.Values, headers ...map[string]string) page {
	u.e.t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", u.csrf)
	}
	req, _ := http.NewRequest("POST", u.e.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, h := range headers {
		for k, v := range h {
			req.Header.Set(k, v)
		}
	}
	return u.submit(req)
}

func (u *user) upload(png []byte, action string) page {
	u.e.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("csrf", u.csrf)
	_ = mw.WriteField("action", action)
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{`form-data; name="file"; filename="a.png"`}
	h["Content-Type"] = []string{"image/png"}
	fw, _ := mw.CreatePart(h)
	_, _ = fw.Write(png)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", u.e.url+"/app/uploads", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return u.submit(req)
}

func pngImage(w, h int) []byte {
	var buf bytes.Buffer
	_ = png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, w, h)))
	return buf.Bytes()
}

func (e *env) available(id string) int64 {
	e.t.Helper()
	b, err := e.eng.Balance(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return b.AvailableCredits
}

func must(t *testing.T, p page, status int, contains ...string) page {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d:\n%s", p.status, status, p.body)
	}
	for _, c := range contains {
		if !strings.Contains(p.body, c) {
			t.Fatalf("page lacks %q:\n%s", c, p.body)
		}
	}
	return p
}

// linkToken is the token of a sign-in link (its token query parameter).
func linkToken(link string) string {
	u, err := url.Parse(link)
	if err != nil {
		panic(err)
	}
	return u.Query().Get("token")
}

func TestSignIn(t *testing.T) {
	e := newEnv(t)
	e.account("alice")

	t.Run("LinkWorksOnceAndStartsASession", func(t *testing.T) {
		u := e.newUser()
		link := e.link("alice")
		// Opening the link shows whom it signs in and consumes nothing:
		// a mail scanner fetching it first does not use it up.
		for range 2 {
			p := must(t, e.newUser().get(link), 200, "signs you in as", "alice", `action="/app/login"`, "Continue")
			if ck := p.header.Get("Set-Cookie"); ck != "" {
				t.Fatalf("opening the link set a cookie: %q", ck)
			}
			if rp := p.header.Get("Referrer-Policy"); rp != "no-referrer" {
				t.Fatalf("Referrer-Policy %q", rp)
			}
		}
		p := u.useLink(link)
		if p.status != http.StatusOK || p.location != "/app/create" {
			t.Fatalf("%d %s", p.status, p.location)
		}
		ck := p.posted.header.Get("Set-Cookie")
		for _, want := range []string{web.SessionCookie + "=", "HttpOnly", "SameSite=Lax", "Path=/app", "Max-Age=2592000"} {
			if !strings.Contains(ck, want) {
				t.Errorf("cookie %q lacks %q", ck, want)
			}
		}
		if strings.Contains(ck, "Secure") {
			t.Errorf("cookie over plain HTTP is Secure: %q", ck)
		}
		must(t, u.get("/app/create"), 200, `data-live="available">45<`, "alice")
		// Used: opening it again says so, and its token no longer signs in.
		must(t, e.newUser().get(link), http.StatusGone, "already used")
		must(t, e.newUser().post("/app/login", url.Values{"token": {linkToken(link)}}), http.StatusGone, "already used")
	})

	t.Run("OpenedTwiceBeforeUseSignsInOnce", func(t *testing.T) {
		// Two tabs show the same link's page; the first Continue wins.
		link := e.link("alice")
		a, b := e.newUser(), e.newUser()
		pa, pb := must(t, a.get(link), 200), must(t, b.get(link), 200)
		tok := html.UnescapeString(linkTokenRE.FindStringSubmatch(pa.body)[1])
		if got := html.UnescapeString(linkTokenRE.FindStringSubmatch(pb.body)[1]); got != tok {
			t.Fatalf("pages carry different tokens")
		}
		if p := a.post("/app/login", url.Values{"token": {tok}}); p.status != http.StatusOK {
			t.Fatalf("first: %d", p.status)
		}
		must(t, b.post("/app/login", url.Values{"token": {tok}}), http.StatusGone, "already used")
		must(t, b.get("/app/create"), http.StatusUnauthorized)
	})

	t.Run("CrossSiteSignInRefused", func(t *testing.T) {
		// Another site cannot post a token of its own to sign a visitor in.
		link := e.link("alice")
		tok := linkToken(link)
		u := e.newUser()
		p := u.post("/app/login", url.Values{"token": {tok}}, map[string]string{"Sec-Fetch-Site": "cross-site"})
		must(t, p, http.StatusForbidden, "another site")
		if ck := p.posted.header.Get("Set-Cookie"); strings.Contains(ck, web.SessionCookie) {
			t.Fatalf("cookie set: %q", ck)
		}
		// The link was not consumed by the refused request.
		if p := u.useLink(link); p.status != http.StatusOK {
			t.Fatalf("link after the refused post: %d", p.status)
		}
	})

	t.Run("SecureCookieBehindTLS", func(t *testing.T) {
		p := e.newUser().useLink(e.link("alice"), map[string]string{"X-Forwarded-Proto": "https"})
		if !strings.Contains(p.posted.header.Get("Set-Cookie"), "Secure") {
			t.Fatalf("cookie %q", p.posted.header.Get("Set-Cookie"))
		}
	})

	t.Run("ExpiredLinkFails", func(t *testing.T) {
		link := e.link("alice")
		tok := linkToken(link)
		if err := e.clock.Advance(app.LoginLinkTTL + time.Second); err != nil {
			t.Fatal(err)
		}
		must(t, e.newUser().get(link), http.StatusGone, "expired")
		must(t, e.newUser().post("/app/login", url.Values{"token": {tok}}), http.StatusGone, "expired")
	})

	t.Run("BadLinksFail", func(t *testing.T) {
		link := e.link("alice")
		bad := []string{
			strings.Replace(link, "token=ll_", "token=ll_x", 1),
			link[:len(link)-3] + "abc",
			e.url + "/app/login",
			e.url + "/app/login?token=" + strings.Replace(e.userTokenFor("alice"), "ut_", "ll_", 1),
		}
		for _, b := range bad {
			must(t, e.newUser().get(b), http.StatusBadRequest, "does not work")
			must(t, e.newUser().post("/app/login", url.Values{"token": {linkToken(b)}}), http.StatusBadRequest, "does not work")
		}
	})

	t.Run("PagesNeedASession", func(t *testing.T) {
		u := e.newUser()
		for _, p := range []string{"/app/create", "/app/gallery", "/app/settings/account/billing", "/app/events"} {
			must(t, u.get(p), http.StatusUnauthorized, "Sign in to Kira")
		}
		// A credential signed for another purpose is not a session.
		jar := u.c.Jar
		base, _ := url.Parse(e.url + "/app")
		jar.SetCookies(base, []*http.Cookie{{Name: web.SessionCookie, Value: strings.TrimPrefix(e.userTokenFor("alice"), "ut_"), Path: "/app"}})
		must(t, u.get("/app/create"), http.StatusUnauthorized)
	})

	t.Run("SignOut", func(t *testing.T) {
		u := e.signIn("alice")
		must(t, u.post("/app/logout", url.Values{}), 200, "You are signed out")
		must(t, u.get("/app/create"), http.StatusUnauthorized)
	})
}

func (e *env) userTokenFor(id string) string {
	c, err := e.app.NewClaims(context.Background(), id, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return app.UserTokenPrefix + e.app.Seal(app.PurposeUserToken, c)
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	e.account("alice")
	u := e.signIn("alice")
	start := url.Values{"action": {"generate"}, "prompt": {"a fox"}}
	for name, form := range map[string]url.Values{
		"Missing": {"action": {"generate"}, "prompt": {"a fox"}, "csrf": {""}},
		"Wrong":   {"action": {"generate"}, "prompt": {"a fox"}, "csrf": {"not-the-token"}},
	} {
		t.Run(name, func(t *testing.T) {
			must(t, u.post("/app/jobs", form), http.StatusForbidden)
			must(t, u.post("/app/logout", url.Values{"csrf": form["csrf"]}), http.StatusForbidden)
		})
	}
	t.Run("OtherSessionsToken", func(t *testing.T) {
		e.account("mallory")
		m := e.signIn("mallory")
		must(t, u.post("/app/jobs", url.Values{"action": {"generate"}, "prompt": {"x"}, "csrf": {m.csrf}}), http.StatusForbidden)
	})
	t.Run("CrossOrigin", func(t *testing.T) {
		must(t, u.post("/app/jobs", start, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}), http.StatusForbidden)
	})
	if e.available("alice") != 45 {
		t.Fatal("a refused form started a job")
	}
	t.Run("WithTheTokenWorks", func(t *testing.T) {
		p := u.post("/app/jobs", start)
		if p.status != http.StatusOK || !strings.HasPrefix(p.location, "/app/jobs/job_") {
			t.Fatalf("%d %s\n%s", p.status, p.location, p.body)
		}
		if e.available("alice") != 40 {
			t.Fatal("the job did not start")
		}
	})
}

func TestCreateAndManageJobs(t *testing.T) {
	e := newEnv(t)
	e.account("alice")
	u := e.signIn("alice")

	p := u.upload(pngImage(20, 10), "crop")
	if p.status != http.StatusOK || !strings.Contains(p.location, "source=asset_") {
		t.Fatalf("upload: %d %s\n%s", p.status, p.location, p.body)
	}
	loc, _ := url.Parse(p.location)
	src := loc.Query().Get("source")
	page := u.get(p.location)
	// The crop defaults to the largest centred square.
	must(t, page, 200, "Image uploaded.", "20 × 10 px", `id="p-x" name="x" type="number" value="5"`, `id="p-width" name="width" type="number" value="10"`, "Start Crop")

	t.Run("BadParamsAreExplained", func(t *testing.T) {
		form := url.Values{"action": {"crop"}, "source": {src}, "x": {"0"}, "y": {"0"}, "width": {"0"}, "height": {"5"}}
		must(t, u.post("/app/jobs", form), http.StatusBadRequest, "width", "must be &gt; 0")
		form.Set("width", "abc")
		must(t, u.post("/app/jobs", form), http.StatusBadRequest, "Width (px) must be a whole number.")
	})

	t.Run("StartOnceEvenWhenSentTwice", func(t *testing.T) {
		form := url.Values{"action": {"crop"}, "source": {src}, "x": {"0"}, "y": {"0"}, "width": {"5"}, "height": {"5"}, "idem": {"form-1"}}
		a, b := u.post("/app/jobs", form), u.post("/app/jobs", form)
		if a.location == "" || a.location != b.location {
			t.Fatalf("two submits: %q %q", a.location, b.location)
		}
		if e.available("alice") != 40 {
			t.Fatalf("available %d", e.available("alice"))
		}
		must(t, u.get(a.location), 200, "Waiting to start", "Reserved", "Cancel")
		// Changing the settings while it waits is free.
		change := url.Values{"x": {"1"}, "y": {"1"}, "width": {"4"}, "height": {"4"}}
		c := u.post(a.location+"/params", change)
		if c.status != http.StatusOK {
			t.Fatalf("change: %d\n%s", c.status, c.body)
		}
		must(t, u.get(c.location), 200, "Settings changed", `value="4"`)
		jobID := strings.TrimPrefix(a.location, "/app/jobs/")
		j, err := e.eng.GetJob(context.Background(), jobID)
		if err != nil || j.ParamsVersion != 2 {
			t.Fatalf("job %+v %v", j, err)
		}
		// Cancelling returns the credits.
		c = u.post(a.location+"/cancel", url.Values{})
		must(t, c, 200, "Cancelled before it started. You were not charged.")
		if e.available("alice") != 45 {
			t.Fatalf("available %d after cancel", e.available("alice"))
		}
		// Cancelling again answers the first outcome.
		if again := u.post(a.location+"/cancel", url.Values{}); again.status != http.StatusOK {
			t.Fatalf("cancel again: %d", again.status)
		}
	})

	t.Run("GeneratePromptChange", func(t *testing.T) {
		p := u.post("/app/jobs", url.Values{"action": {"generate"}, "prompt": {"a red fox"}, "quantity": {"3"}})
		if e.available("alice") != 30 {
			t.Fatalf("available %d", e.available("alice"))
		}
		must(t, u.get(p.location), 200, "Change the prompt", "a red fox", "0 of 3")
		c := u.post(p.location+"/params", url.Values{"prompt": {"a blue fox"}})
		must(t, u.get(c.location), 200, "a blue fox")
		u.post(p.location+"/cancel", url.Values{})
	})

	t.Run("PagesRender", func(t *testing.T) {
		must(t, u.get("/app/gallery"), 200, "No results yet")
		must(t, u.get("/app/settings/account/billing"), 200, "Available credits", "s free credits", "Sign-up credits",
			"Purchased credits", "Held by running jobs", "What things cost", "Video generation", "Crop cancelled", "Add credits")
		must(t, u.get("/app/settings/account/billing/add-credits"), 200, "Purchases are not configured")
		must(t, u.get("/app/settings/account/profile"), 200, "Time zone", "UTC")
		if p := u.get("/app/settings"); p.status != http.StatusSeeOther {
			t.Fatalf("settings: %d", p.status)
		}
		must(t, u.get("/app/nope"), http.StatusNotFound, "find that page")
		st := u.get("/app/static/app.css")
		if st.status != 200 || !strings.Contains(st.header.Get("Cache-Control"), "immutable") {
			t.Fatalf("static: %d %v", st.status, st.header)
		}
	})
}

func TestOtherAccountsAreNotFound(t *testing.T) {
	e := newEnv(t)
	e.account("alice")
	e.account("bob")
	bob := e.signIn("bob")
	p := bob.upload(pngImage(8, 8), "crop")
	loc, _ := url.Parse(p.location)
	bobAsset := loc.Query().Get("source")
	bobJob := bob.post("/app/jobs", url.Values{"action": {"crop"}, "source": {bobAsset}, "x": {"0"}, "y": {"0"}, "width": {"2"}, "height": {"2"}}).location

	alice := e.signIn("alice")
	must(t, alice.get(bobJob), http.StatusNotFound)
	must(t, alice.get("/app/assets/"+bobAsset), http.StatusNotFound)
	must(t, alice.post(bobJob+"/cancel", url.Values{}), http.StatusNotFound)
	must(t, alice.post(bobJob+"/params", url.Values{"width": {"1"}}), http.StatusNotFound)
	// Nor can alice crop bob's image.
	must(t, alice.post("/app/jobs", url.Values{"action": {"crop"}, "source": {bobAsset}, "width": {"1"}, "height": {"1"}, "x": {"0"}, "y": {"0"}}), http.StatusBadRequest)
	if e.available("bob") != 40 || e.available("alice") != 45 {
		t.Fatal("balances changed")
	}
	must(t, bob.get(bobJob), 200)
	must(t, bob.get("/app/assets/"+bobAsset), 200)
}

func TestOutOfCredits(t *testing.T) {
	e := newEnv(t)
	e.account("carol")
	u := e.signIn("carol")
	p := u.upload(pngImage(8, 8), "crop")
	loc, _ := url.Parse(p.location)
	src := loc.Query().Get("source")
	// Spend everything.
	ctx := context.Background()
	v, err := e.eng.Reserve(ctx, engine.ReserveParams{AccountID: "carol", ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: 9}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.eng.Capture(ctx, engine.HoldParams{HoldID: v.Value.ID, Quantity: 9}); err != nil {
		t.Fatal(err)
	}
	page := u.get(p.location)
	must(t, page, 200, "out of credits", "disabled", "How to add credits")
	must(t, u.post("/app/jobs", url.Values{"action": {"crop"}, "source": {src}, "x": {"0"}, "y": {"0"}, "width": {"2"}, "height": {"2"}}),
		http.StatusPaymentRequired, "enough credits")
	// Existing images stay available.
	must(t, u.get("/app/gallery"), 200)
	if d := u.get("/app/assets/" + src + "?download=1"); d.status != 200 || !strings.HasPrefix(d.body, "\x89PNG") || !strings.Contains(d.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %v", d.status, d.header)
	}
}

func TestBillingHistoryPages(t *testing.T) {
	e := newEnv(t)
	e.account("dave")
	for i := range 25 {
		_, err := e.eng.Grant(context.Background(), engine.GrantParams{AccountID: "dave", GrantParams: ledger.GrantParams{Source: ledger.SourcePromo, AmountCredits: int64(i + 1)}})
		if err != nil {
			t.Fatal(err)
		}
	}
	u := e.signIn("dave")
	first := u.get("/app/settings/account/billing")
	must(t, first, 200, "Promotional credits", "Older")
	m := regexp.MustCompile(`href="(/app/settings/account/billing\?cursor=\d+)#history-h"`).FindStringSubmatch(first.body)
	if m == nil {
		t.Fatal("no Older link")
	}
	must(t, u.get(m[1]), 200, "Sign-up credits", "Newest")
}

func TestEventsStreamForTheSession(t *testing.T) {
	e := newEnv(t)
	e.account("alice")
	u := e.signIn("alice")
	req, _ := http.NewRequest("GET", e.url+"/app/events", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := u.c.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	buf := make([]byte, 4096)
	n, _ := io.ReadAtLeast(res.Body, buf, 20)
	for !strings.Contains(string(buf[:n]), `"available":45`) {
		m, err := res.Body.Read(buf[n:])
		if err != nil {
			t.Fatalf("%v: %s", err, buf[:n])
		}
		n += m
	}
}

func TestDemoSignIn(t *testing.T) {
	e := newEnv(t)
	link, err := web.DemoSignIn(context.Background(), e.app, e.url)
	if err != nil {
		t.Fatal(err)
	}
	u := e.newUser()
	if p := u.useLink(link); p.status != http.StatusOK {
		t.Fatalf("%d", p.status)
	}
	must(t, u.get("/app/create"), 200, `data-live="available">45<`)
	// Again: the account is kept, a new link is made.
	if _, err := web.DemoSignIn(context.Background(), e.app, e.url); err != nil {
		t.Fatal(err)
	}
	if e.available("demo") != 45 {
		t.Fatal("demo account recreated")
	}
}
