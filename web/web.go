// Package web is creditd's web app: server-rendered pages under /app/ where
// a user signs in with a single-use link, sees their credits (Settings →
// Account → Billing, and before every generation or edit), uploads images,
// starts, watches, changes and cancels jobs, downloads results, buys
// credit packs through Stripe Checkout (package billing), is warned by a
// banner on every page when credits run low (alerts.go), and reads the
// help article (Help → Credits & usage, with the configured numbers) and
// says whether it helped.
//
// It is an edge beside httpapi and billing, over the application layer
// (package app: accounts, jobs, uploads and downloads, signed credentials,
// rate limits, event streams); it holds no credit rules and imports
// neither httpapi nor billing (purchases come through Purchases). Pages
// work without JavaScript: forms POST and redirect (PRG). A small script
// adds the live updates: it listens to /app/events (Server-Sent Events)
// and updates balances and refreshes marked regions of the page in place.
//
// Sessions are signed cookies (HttpOnly, SameSite=Lax, Secure behind TLS)
// that last app.SessionTTL unless they are revoked: signing out revokes
// the session, and "Sign out everywhere" (Profile) every session and token
// of the account, on every node (app checks each use against the store). Every POST carries a CSRF token
// bound to the session (an HMAC of the session id), and cross-origin
// writes are refused outright. Every form is answered with a 303 to a GET
// page (flash.go). Templates and assets are embedded in the
// binary; no CDN is used.
package web

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/internal/httpx"
	"github.com/creditd/creditd/ledger"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Limits of the web app.
const (
	// SessionCookie is the name of the session cookie.
	SessionCookie = "creditd_session"
	// formBytesMax bounds a urlencoded form; uploads are bounded by
	// imageops.UploadBytesMax plus this much for the other fields.
	formBytesMax = 64 << 10
	// uploadMemoryBytes is how much of a multipart upload is kept in memory.
	uploadMemoryBytes = 8 << 20
	// historyPageSize, galleryPageSize and recentImagesMax size the lists.
	historyPageSize = 20
	galleryPageSize = 24
	recentImagesMax = 8
	// assetScanMax bounds the asset rows read to fill one gallery page.
	assetScanMax = 1000
	// demoAccount is the account `creditd serve` creates on first start.
	demoAccount = "demo"
	// profilePath is the Profile page.
	profilePath = "/app/settings/account/profile"
)

// App serves the web app. Create it with New and mount it under /app/
// (httpapi.Server.Web does).
type App struct {
	svc   *app.Service
	cfg   *ledger.Config
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *httpx.RouteMux
	// rules are the configured numbers the pages state.
	rules *rules
	// timezones are the time zones Profile offers.
	timezones []string
	// assetVersion is a content hash appended to static URLs so they can
	// be cached for long.
	assetVersion string

	// SignInURL is the product's page where a user gets a sign-in link,
	// and SupportURL its support page (CheckLinkURL). Pages link to them;
	// without them they offer no such link rather than a dead one. Set
	// them before serving.
	SignInURL, SupportURL string
	// Billing, when non-nil, sells credit packs (package billing's
	// Service); without it the Add credits page says purchases are not
	// configured. Set it before serving.
	Billing Purchases
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client whose failed sign-ins are counted (httpx.ClientAddr).
	TrustedProxies []netip.Prefix
}

// Purchases is what the app needs of billing: whether purchases are
// configured, the packs for sale, a Stripe Checkout for one, and whether a
// checkout's purchase has reached the account.
type Purchases interface {
	Enabled() bool
	Packs() []app.Pack
	CheckoutFrom(ctx context.Context, accountID, packID, baseURL string) (url, sessionID string, err error)
	Status(ctx context.Context, accountID, sessionID string) (app.CheckoutStatus, error)
}

// CheckLinkURL checks a SignInURL or SupportURL: empty, an absolute
// http(s) URL, a path on this server, or a mailto: address.
func CheckLinkURL(name, v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return fmt.Errorf("%s %q is not a URL: %v", name, v, err)
	case u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(v, "//"):
		return nil
	case (u.Scheme == "https" || u.Scheme == "http") && u.Host != "", u.Scheme == "mailto" && strings.Contains(u.Opaque, "@"):
		return nil
	}
	return fmt.Errorf("%s %q must be an http(s) URL such as https://example.com/help, a path such as /help, or a mailto: address", name, v)
}

// New returns the web app over an application layer.
func New(svc *app.Service) *App {
	a := &App{svc: svc, cfg: svc.Config(), log: svc.Logger()}
	a.rules = newRules(a.cfg)
	h := sha256.New()
	_ = fs.WalkDir(staticFS, "static", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := staticFS.ReadFile(path)
			h.Write(b)
		}
		return nil
	})
	a.assetVersion = hex.EncodeToString(h.Sum(nil))[:12]
	a.timezones = timezones()
	a.pages = map[string]*template.Template{}
	for _, p := range []string{"create", "job", "gallery", "billing", "addcredits", "profile", "signin", "signinlink", "message", "help"} {
		a.pages[p] = template.Must(template.New("layout.html").Funcs(a.funcs()).ParseFS(templateFS,
			"templates/layout.html", "templates/parts.html", "templates/"+p+".html"))
	}

	m := httpx.NewRouteMux()
	a.mux = m
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/app/static/", http.FileServerFS(static))
	m.Handle("GET /app/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		files.ServeHTTP(w, r)
	}))
	m.HandleFunc("GET /app/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/app/create", http.StatusSeeOther)
	})
	m.HandleFunc("GET "+messagePath, a.messagePage)
	m.HandleFunc("GET /app/login", a.login)
	m.HandleFunc("POST /app/login", a.redeem)
	m.HandleFunc("POST /app/logout", a.form(a.logout))
	m.HandleFunc("POST /app/logout-everywhere", a.form(a.logoutEverywhere))
	m.HandleFunc("GET /app/create", a.page(a.create))
	m.HandleFunc("POST /app/uploads", a.form(a.upload))
	m.HandleFunc("POST /app/jobs", a.form(a.startJob))
	m.HandleFunc("GET /app/jobs/{id}", a.page(a.jobPage))
	m.HandleFunc("POST /app/jobs/{id}/cancel", a.form(a.cancelJob))
	m.HandleFunc("POST /app/jobs/{id}/params", a.form(a.changeJob))
	m.HandleFunc("GET /app/gallery", a.page(a.gallery))
	m.HandleFunc("GET /app/assets/{id}", a.page(a.asset))
	m.HandleFunc("POST /app/assets/{id}/delete", a.form(a.deleteAsset))
	m.HandleFunc("GET /app/events", a.page(a.events))
	m.HandleFunc("GET /app/settings", a.page(redirectTo("/app/settings/account/profile")))
	m.HandleFunc("GET /app/settings/account", a.page(redirectTo("/app/settings/account/profile")))
	m.HandleFunc("GET "+profilePath, a.page(a.profile))
	m.HandleFunc("POST "+profilePath+"/timezone", a.form(a.setTimezone))
	m.HandleFunc("GET "+billingPath, a.page(a.billing))
	m.HandleFunc("POST "+lowBalancePath, a.form(a.setLowBalance))
	m.HandleFunc("GET "+addCreditsPath, a.page(a.addCredits))
	m.HandleFunc("POST "+addCreditsPath, a.form(a.buyCredits))
	m.HandleFunc("GET /app/help", a.page(redirectTo(creditsPath)))
	m.HandleFunc("GET "+creditsPath, a.page(a.creditsArticle))
	m.HandleFunc("POST "+creditsPath+"/feedback", a.form(a.sendFeedback))
	m.HandleFunc("/app/", func(w http.ResponseWriter, r *http.Request) {
		a.notFound(w, r, a.optionalSession(r))
	})
	return a
}

// Routes lists the app's route patterns, in the order New registered them.
func (a *App) Routes() []string { return a.mux.Patterns() }

var crossOrigin = http.NewCrossOriginProtection()

// ServeHTTP serves the app with its security headers. Cross-origin
// non-GET requests are refused before any handler runs.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", contentSecurityPolicy("'self'"))
	if err := crossOrigin.Check(r); err != nil {
		a.render(w, r, http.StatusForbidden, "message", a.optionalSession(r), view{Title: "Request refused",
			Page: message{Heading: "Request refused", Text: "This form was sent from another site, so we did not act on it."}})
		return
	}
	if err := checkAddress(r); err != nil {
		a.fail(w, r, a.optionalSession(r), err)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// session is a signed-in user.
type session struct {
	Account string
	CSRF    string
	claims  app.Claims
}

// sessionOf returns the request's session: nil without a valid one (none,
// altered, expired or revoked), and an error only when the store could not
// say whether it was revoked.
func (a *App) sessionOf(r *http.Request) (*session, error) {
	ck, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil, nil
	}
	c, err := a.svc.OpenSession(r.Context(), ck.Value)
	switch {
	case err == nil:
		return &session{Account: c.Account, CSRF: a.svc.MAC(app.PurposeCSRF, c.Account+"\x00"+c.Nonce), claims: c}, nil
	case errors.Is(err, app.ErrCredentialInvalid), errors.Is(err, app.ErrCredentialExpired), errors.Is(err, app.ErrCredentialRevoked):
		return nil, nil
	default:
		return nil, err
	}
}

// optionalSession is sessionOf for pages that show a signed-out view when
// the session cannot be checked.
func (a *App) optionalSession(r *http.Request) *session {
	s, _ := a.sessionOf(r)
	return s
}

// page admits signed-in users within their account's request rate
// (app.Service.LimitUser); others get the sign-in page.
func (a *App) page(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := a.sessionOf(r)
		if err != nil {
			a.fail(w, r, nil, err)
			return
		}
		if s == nil {
			// A cookie that is not a valid session counts as a failed
			// authentication of the client's address; no cookie does not.
			if _, err := r.Cookie(SessionCookie); err == nil {
				if err := a.authFailed(w, r); err != nil {
					a.fail(w, r, nil, err)
					return
				}
			}
			a.render(w, r, http.StatusUnauthorized, "signin", nil, view{Title: "Sign in"})
			return
		}
		if err := a.svc.LimitUser(s.Account); err != nil {
			httpx.SetRetryAfter(w, err)
			a.fail(w, r, nil, err) // without the account's chrome: no store reads
			return
		}
		h(w, r, s)
	}
}

// form admits POSTs of signed-in users that carry the session's CSRF token.
// It parses the form (multipart for uploads) within the size limits.
func (a *App) form(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return a.page(func(w http.ResponseWriter, r *http.Request, s *session) {
		var err error
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
			r.Body = http.MaxBytesReader(w, r.Body, imageops.UploadBytesMax+formBytesMax)
			err = r.ParseMultipartForm(uploadMemoryBytes)
		} else {
			r.Body = http.MaxBytesReader(w, r.Body, formBytesMax)
			err = r.ParseForm()
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				a.fail(w, r, s, &ledger.Error{Code: ledger.ETooLarge, Message: "The file is too large: images can be up to 20 MB."})
				return
			}
			a.fail(w, r, s, ledger.Errorf(ledger.EInvalid, "The form could not be read. Please try again."))
			return
		}
		if !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.CSRF)) {
			a.render(w, r, http.StatusForbidden, "message", s, view{Title: "Session check failed", Page: message{
				Heading: "Please try that again",
				Text:    "We could not confirm this form came from your session (it may be from an older tab). Reload the page and send it again.",
			}})
			return
		}
		if err := checkValues("The form field ", r.PostForm); err != nil {
			a.fail(w, r, s, err)
			return
		}
		h(w, r, s)
	})
}

func redirectTo(path string) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, _ *session) {
		http.Redirect(w, r, path, http.StatusSeeOther)
	}
}

// login shows a sign-in link's page: the account it signs in to and a
// button that sends the link's token back (redeem). Opening the link
// consumes nothing, so a mail scanner or a chat's link preview fetching it
// does not use it up; only the button, a same-origin POST, does.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	acct, err := a.svc.CheckLoginLink(r.Context(), token)
	if err != nil {
		a.linkFailed(w, r, err)
		return
	}
	// The token is in this page's address: no Referer carries it anywhere.
	w.Header().Set("Referrer-Policy", "no-referrer")
	a.render(w, r, http.StatusOK, "signinlink", nil, view{Title: "Sign in", Page: signInLink{Account: acct, Token: token}})
}

// signInLink is the page of a valid sign-in link.
type signInLink struct {
	Account string
	Token   string
}

// redeem consumes a sign-in link (the token its page posts), starts a
// session and lands on the app. Cross-origin POSTs are refused before it
// runs (ServeHTTP), so another site cannot sign a visitor in to an account
// of its choosing.
func (a *App) redeem(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, formBytesMax)
	if err := r.ParseForm(); err != nil {
		a.fail(w, r, nil, ledger.Errorf(ledger.EInvalid, "The form could not be read. Please try again."))
		return
	}
	link, err := a.svc.RedeemLoginLink(r.Context(), r.PostFormValue("token"))
	if err != nil {
		a.linkFailed(w, r, err)
		return
	}
	value, _ := a.svc.NewSession(link)
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: value, Path: "/app",
		MaxAge: int(app.SessionTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: httpx.IsHTTPS(r),
	})
	http.Redirect(w, r, "/app/create", http.StatusSeeOther)
}

// linkFailed answers a sign-in link that does not work: 400 when it is not
// a valid link, 410 when it was used or has expired; each counts as a
// failed authentication of the client's address (429 beyond the limit).
func (a *App) linkFailed(w http.ResponseWriter, r *http.Request, err error) {
	msg := message{Heading: "This sign-in link does not work", Text: "The link is incomplete or not valid."}
	status := http.StatusBadRequest
	switch {
	case errors.Is(err, app.ErrLinkUsed):
		msg = message{Heading: "This sign-in link was already used", Text: "For your security each link works only once."}
		status = http.StatusGone
	case errors.Is(err, app.ErrCredentialExpired):
		msg = message{Heading: "This sign-in link has expired", Text: fmt.Sprintf("Sign-in links work for %d minutes.", a.rules.SignInLinkMinutes)}
		status = http.StatusGone
	case errors.Is(err, app.ErrCredentialRevoked):
		msg = message{Heading: "This sign-in link no longer works", Text: "The account was signed out everywhere after this link was made."}
		status = http.StatusGone
	case !errors.Is(err, app.ErrCredentialInvalid):
		a.fail(w, r, nil, err)
		return
	}
	if err := a.authFailed(w, r); err != nil {
		a.fail(w, r, nil, err)
		return
	}
	a.render(w, r, status, "message", nil, view{Title: "Sign in", Page: a.signInAgain(msg)})
}

// logout revokes the session on every node (the cookie alone would keep
// working until it expires) and clears the cookie.
func (a *App) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := a.svc.RevokeSession(r.Context(), s.claims); err != nil {
		a.fail(w, r, s, err)
		return
	}
	a.signedOut(w, r, "You are signed out", "")
}

// logoutEverywhere revokes every session and user token of the account,
// this one included.
func (a *App) logoutEverywhere(w http.ResponseWriter, r *http.Request, s *session) {
	if _, err := a.svc.RevokeAccountCredentials(r.Context(), s.Account); err != nil {
		a.fail(w, r, s, err)
		return
	}
	a.signedOut(w, r, "You are signed out everywhere",
		"Every browser and app signed in to this account has been signed out.")
}

func (a *App) signedOut(w http.ResponseWriter, r *http.Request, heading, text string) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/app", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: httpx.IsHTTPS(r)})
	a.render(w, r, http.StatusOK, "message", nil, view{Title: "Signed out", Page: a.signInAgain(message{Heading: heading, Text: text})})
}

// signInAgain adds to a signed-out message how to sign in again: with the
// product's sign-in page, a link to it; without, no link (rather than a
// dead one).
func (a *App) signInAgain(m message) message {
	if a.SignInURL != "" {
		m.Text = strings.TrimSpace(m.Text + " Get a new sign-in link on the sign-in page.")
		m.Link, m.LinkTo = "Get a sign-in link", a.SignInURL
	} else {
		m.Text = strings.TrimSpace(m.Text + " To sign in again, open a new sign-in link.")
	}
	return m
}

// events streams the signed-in account's events (balance and jobs) until
// the session expires or is revoked.
func (a *App) events(w http.ResponseWriter, r *http.Request, s *session) {
	httpx.ServeEvents(w, r, a.svc, a.log, s.Account, &s.claims)
}

// authFailed counts a failed sign-in of r's client address; beyond the
// limit it sets Retry-After and returns the error to answer with.
func (a *App) authFailed(w http.ResponseWriter, r *http.Request) error {
	err := a.svc.AuthFailed(httpx.ClientAddr(r, a.TrustedProxies))
	httpx.SetRetryAfter(w, err)
	return err
}

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string // the active navigation item
	Session *session
	Account ledger.Account
	Balance ledger.Balance
	Now     time.Time
	Notice  string
	Error   string
	// Refresh, when > 0, reloads the page every so many seconds when
	// JavaScript is off (live updates do it otherwise).
	Refresh int
	Page    any
	// Rules are the configured numbers every page may state.
	Rules *rules
	// SignInURL and SupportURL are the App's (empty: no such link).
	SignInURL, SupportURL string
}

// message is the page of a short message (errors, sign-out, link problems).
type message struct {
	Heading string
	Text    string
	Link    string
	LinkTo  string
}

// render executes a page. With a session it loads the account and balance
// for the navigation.
func (a *App) render(w http.ResponseWriter, r *http.Request, status int, page string, s *session, v view) {
	if isForm(r) {
		a.answerForm(w, r, status, page, v)
		return
	}
	if page != "message" {
		if f, ok := a.readFlash(r); ok && f.Error != "" {
			clearFlash(w, r)
			if v.Error == "" {
				v.Error = f.Error
				if status == http.StatusOK {
					status = f.Status
				}
			}
		}
	}
	v.Session = s
	v.Now = a.svc.Now()
	v.Rules = a.rules
	v.SignInURL, v.SupportURL = a.SignInURL, a.SupportURL
	if s != nil && v.Account.ID == "" {
		acct, err := a.svc.Account(r.Context(), s.Account)
		if err != nil {
			// The account is gone or unreadable: show the page without the
			// signed-in chrome.
			v.Session = nil
		} else {
			v.Account = acct
		}
	}
	if v.Session != nil && v.Balance.AccountID == "" {
		// The navigation's balance and the low-balance banner; a page
		// that passed the account only still gets them.
		if bal, err := a.svc.Balance(r.Context(), s.Account); err == nil {
			v.Balance = bal
		}
	}
	var buf bytes.Buffer
	if err := a.pages[page].Execute(&buf, v); err != nil {
		a.log.Error("render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// answerForm answers a form with a page to show: a 303 to the message
// page (post/redirect/get; see flash.go), or for the sign-in page to a
// page that shows it.
func (a *App) answerForm(w http.ResponseWriter, r *http.Request, status int, page string, v view) {
	if page == "signin" {
		http.Redirect(w, r, "/app/create", http.StatusSeeOther)
		return
	}
	m, ok := v.Page.(message)
	if !ok {
		// A form handler answers with a redirect of its own; this is a bug,
		// but the user still gets a page that works on reload.
		a.log.Error("web form answered with a page", "path", r.URL.Path, "page", page)
		m = message{Heading: v.Title, Text: v.Error, Link: "Back to Create", LinkTo: "/app/create"}
	}
	a.setFlash(w, r, flash{Status: status, Title: v.Title, Message: &m})
	http.Redirect(w, r, messagePath, http.StatusSeeOther)
}

func (a *App) notFound(w http.ResponseWriter, r *http.Request, s *session) {
	a.render(w, r, http.StatusNotFound, "message", s, view{Title: "Not found", Page: message{
		Heading: "We couldn't find that page", Text: "It may have been moved, or the address is mistyped.",
		Link: "Go to Create", LinkTo: "/app/create",
	}})
}

// fail renders an error as a page with the API's status for its code.
func (a *App) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	code := ledger.ErrorCode(err)
	status := app.Status(code)
	if code == ledger.ENotFound {
		a.notFound(w, r, s)
		return
	}
	text := ledger.ErrorMessage(err)
	if status >= 500 {
		a.log.Error("web request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		text = "Something went wrong on our side. Please try again in a moment."
	}
	a.render(w, r, status, "message", s, view{Title: "Something went wrong", Page: message{
		Heading: "That didn't work", Text: text, Link: "Back to Create", LinkTo: "/app/create",
	}})
}

// DemoSignIn makes sure the demo account exists (creating it with the
// usual sign-up and daily credits when absent) and returns a fresh sign-in
// link for it, for `creditd serve` to print on start.
func DemoSignIn(ctx context.Context, svc *app.Service, baseURL string) (string, error) {
	if err := svc.EnsureAccount(ctx, demoAccount); err != nil {
		return "", err
	}
	link, _, err := svc.NewLoginLink(ctx, demoAccount, baseURL)
	return link, err
}
