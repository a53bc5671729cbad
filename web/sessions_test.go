package web_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/creditd/creditd/web"
)

// cookie is the user's session cookie value.
func (u *user) cookie() string {
	u.e.t.Helper()
	base, _ := url.Parse(u.e.url + "/app/")
	for _, c := range u.c.Jar.Cookies(base) {
		if c.Name == web.SessionCookie {
			return c.Value
		}
	}
	u.e.t.Fatal("no session cookie")
	return ""
}

// withCookie is a new browser that sends a copied session cookie (an
// attacker's copy, or a tab that never saw the sign-out).
func (e *env) withCookie(value string) *user {
	u := e.newUser()
	base, _ := url.Parse(e.url + "/app/")
	u.c.Jar.SetCookies(base, []*http.Cookie{{Name: web.SessionCookie, Value: value, Path: "/app"}})
	return u
}

// openEvents opens /app/events and returns a channel closed when the
// server ends the stream.
func (u *user) openEvents() <-chan struct{} {
	u.e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", u.e.url+"/app/events", nil)
	res, err := u.c.Do(req)
	if err != nil || res.StatusCode != 200 {
		cancel()
		u.e.t.Fatalf("events: %v %v", res, err)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}()
	u.e.t.Cleanup(func() { cancel(); <-ended })
	return ended
}

func waitEnded(t *testing.T, ended <-chan struct{}) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream is still open 5 s after its session was revoked")
	}
}

// TestSignOutEndsTheSession: after sign-out the old cookie no longer
// works (it used to for 30 days), and its event stream ends; the
// account's other sessions go on.
func TestSignOutEndsTheSession(t *testing.T) {
	e := newEnv(t)
	e.account("alice")
	u, other := e.signIn("alice"), e.signIn("alice")
	old := u.cookie()
	stream := u.openEvents()
	must(t, u.post("/app/logout", url.Values{}), 200, "You are signed out")
	waitEnded(t, stream)

	copied := e.withCookie(old)
	must(t, copied.get("/app/create"), http.StatusUnauthorized)
	must(t, copied.get("/app/events"), http.StatusUnauthorized)
	copied.csrf = u.csrf
	must(t, copied.post("/app/jobs", url.Values{"action": {"generate"}}), http.StatusUnauthorized)
	must(t, other.get("/app/create"), 200)
	// Still refused once the test clock is near the session's end.
	e.clock.Advance(29 * 24 * time.Hour)
	must(t, copied.get("/app/create"), http.StatusUnauthorized)
}

// TestSignOutEverywhere: Profile's "Sign out everywhere" ends every
// session, user token and unused sign-in link of the account issued
// before, and their event streams; signing in again right away works;
// other accounts are untouched.
func TestSignOutEverywhere(t *testing.T) {
	e := newEnv(t)
	e.account("alice")
	e.account("bob")
	u1, u2, bob := e.signIn("alice"), e.signIn("alice"), e.signIn("bob")
	c1, c2 := u1.cookie(), u2.cookie()
	tok := e.userTokenFor("alice")
	pending := e.link("alice")
	stream := u2.openEvents()
	if st := e.balanceStatus(tok); st != 200 {
		t.Fatalf("token before: %d", st)
	}

	must(t, u1.get("/app/settings/account/profile"), 200, `action="/app/logout-everywhere"`, "Sign out everywhere")
	must(t, u1.post("/app/logout-everywhere", url.Values{}), 200, "You are signed out everywhere")
	waitEnded(t, stream)
	for _, c := range []string{c1, c2} {
		must(t, e.withCookie(c).get("/app/create"), http.StatusUnauthorized)
	}
	if st := e.balanceStatus(tok); st != http.StatusUnauthorized {
		t.Fatalf("token issued before: %d", st)
	}
	must(t, e.newUser().useLink(pending), http.StatusGone, "no longer works")
	must(t, bob.get("/app/create"), 200)

	// At the same instant of the test clock: a new sign-in and token work.
	again := e.signIn("alice")
	must(t, again.get("/app/create"), 200)
	if st := e.balanceStatus(e.userTokenFor("alice")); st != 200 {
		t.Fatalf("token issued after: %d", st)
	}
	// The form needs the session's CSRF token like every other.
	again.csrf = "forged"
	must(t, again.post("/app/logout-everywhere", url.Values{}), http.StatusForbidden)
	must(t, again.get("/app/create"), 200)
}
