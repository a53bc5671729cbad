package web

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/creditd/creditd/internal/httpx"
	"github.com/creditd/creditd/ledger"
)

// Post/redirect/get: no page is rendered at a POST URL. Every form is
// answered with a 303 to a GET page, so that reloading or sharing the
// address never repeats the form or lands on a 404. What the answer has to
// say travels in a flash: a short-lived cookie, signed so that only this
// server can write it.
//
//   - An error about a form (a refused start, an upload over budget) goes
//     back to the form's page with the values sent (in the query), and the
//     page shows the flash's text once, with its status.
//   - A page of its own (signed out, a sign-in link that does not work, a
//     refused request) is the message page, GET /app/message, which shows
//     the flash until it expires (so a reload shows it again).
const (
	flashCookie = "creditd_flash"
	// flashTTL is how long a flash is shown.
	flashTTL = 5 * time.Minute
	// flashPurpose keys the flash's HMAC apart from other signed values.
	flashPurpose = "flash"
	// messagePath is the message page.
	messagePath = "/app/message"
)

// flash is what a form's answer tells the page it redirects to.
type flash struct {
	ExpiresAt int64 `json:"exp"`
	Status    int   `json:"status"`
	// Error is shown once by the form's own page.
	Error string `json:"error,omitempty"`
	// Title and Message are the message page's.
	Title   string   `json:"title,omitempty"`
	Message *message `json:"message,omitempty"`
}

// isForm reports whether r is a form submission (anything but a read).
func isForm(r *http.Request) bool { return r.Method != http.MethodGet && r.Method != http.MethodHead }

// setFlash sets the flash cookie for the next page.
func (a *App) setFlash(w http.ResponseWriter, r *http.Request, f flash) {
	f.ExpiresAt = a.svc.Now().Add(flashTTL).Unix()
	b, _ := json.Marshal(f)
	payload := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: payload + "." + a.svc.MAC(flashPurpose, payload), Path: "/app",
		MaxAge: int(flashTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: httpx.IsHTTPS(r)})
}

// readFlash returns the request's flash, if it has a valid one.
func (a *App) readFlash(r *http.Request) (flash, bool) {
	ck, err := r.Cookie(flashCookie)
	if err != nil {
		return flash{}, false
	}
	payload, mac, ok := strings.Cut(ck.Value, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(a.svc.MAC(flashPurpose, payload))) {
		return flash{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	var f flash
	if err != nil || json.Unmarshal(b, &f) != nil || a.svc.Now().Unix() >= f.ExpiresAt {
		return flash{}, false
	}
	return f, true
}

// clearFlash removes the flash cookie.
func clearFlash(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: "/app", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: httpx.IsHTTPS(r)})
}

// back answers a form whose action was refused: a 303 to the form's page
// (to), which shows err's message once with err's status.
func (a *App) back(w http.ResponseWriter, r *http.Request, to string, err error) {
	a.setFlash(w, r, flash{Status: statusOf(err), Error: ledger.ErrorMessage(err)})
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// withValues adds form values to a page's address (for the form to show
// them again), leaving out the CSRF token and the one-time key.
func withValues(path string, q url.Values, form url.Values) string {
	for k, vs := range form {
		if k == "csrf" || k == "idem" || len(vs) == 0 {
			continue
		}
		q.Set(k, vs[0])
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// messagePage shows the message of the form that redirected here, until
// it expires.
func (a *App) messagePage(w http.ResponseWriter, r *http.Request) {
	s := a.optionalSession(r)
	f, ok := a.readFlash(r)
	if !ok || f.Message == nil {
		a.render(w, r, http.StatusOK, "message", s, view{Title: "Nothing to show", Page: message{
			Heading: "Nothing to show here", Text: "This page showed the answer to a form, and that answer has expired.",
			Link: "Go to Create", LinkTo: "/app/create",
		}})
		return
	}
	a.render(w, r, f.Status, "message", s, view{Title: f.Title, Page: *f.Message})
}
