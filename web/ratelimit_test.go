package web_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/creditd/creditd/web"
)

// cookieUser is a client that sends a given session cookie value.
func (e *env) cookieUser(value string) *user {
	u := e.newUser()
	req, _ := http.NewRequest("GET", e.url+"/app/", nil)
	u.c.Jar.SetCookies(req.URL, []*http.Cookie{{Name: web.SessionCookie, Value: value, Path: "/app"}})
	return u
}

func retryAfter(t *testing.T, p page) {
	t.Helper()
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" {
		t.Fatalf("want 429 with Retry-After, got %d %q", p.status, p.header.Get("Retry-After"))
	}
}

// TestFailedSessionsAreThrottled: bad session cookies and sign-in links
// from one address are throttled after the burst; a valid session from the
// same address, and visitors without any cookie, are not.
func TestFailedSessionsAreThrottled(t *testing.T) {
	e := newEnv(t)
	e.account("alice")
	burst := e.eng.Config().Limits.AuthFailuresBurstPerAddress
	alice := e.signIn("alice")
	forged := e.cookieUser("eyJhIjoiYWxpY2UifQ.AAAA")
	anonymous := e.newUser()

	for i := range burst {
		if i%2 == 0 {
			must(t, forged.get("/app/create"), http.StatusUnauthorized, "Sign in")
		} else {
			must(t, e.newUser().get("/app/login?token=ll_bad.link"), http.StatusBadRequest)
		}
	}
	retryAfter(t, forged.get("/app/create"))
	retryAfter(t, e.newUser().get("/app/login?token=ll_bad.link"))
	must(t, alice.get("/app/create"), http.StatusOK)
	must(t, anonymous.get("/app/create"), http.StatusUnauthorized, "Sign in")
	// A sign-in link that works is a valid credential too.
	if p := e.newUser().useLink(e.link("alice")); p.status != http.StatusOK || p.location != "/app/create" {
		t.Fatalf("a valid link from a throttled address: %d", p.status)
	}

	e.clock.Advance(time.Minute)
	must(t, forged.get("/app/create"), http.StatusUnauthorized)
}

// TestSessionRateLimit: an account's web sessions and user tokens share one
// request rate; over it, pages answer 429 with Retry-After and other
// accounts are unaffected.
func TestSessionRateLimit(t *testing.T) {
	e := newEnv(t)
	e.account("alice")
	e.account("bob")
	l := e.eng.Config().Limits
	alice, bob := e.signIn("alice"), e.signIn("bob") // each spent one request
	token := e.userTokenFor("alice")
	for range l.RequestsBurstPerUser - 2 {
		must(t, alice.get("/app/gallery"), http.StatusOK)
	}
	if st := e.balanceStatus(token); st != http.StatusOK {
		t.Fatalf("last request of the burst: %d", st)
	}
	retryAfter(t, alice.get("/app/gallery"))
	if st := e.balanceStatus(token); st != http.StatusTooManyRequests {
		t.Fatalf("token after the session spent the budget: %d", st)
	}
	must(t, bob.get("/app/gallery"), http.StatusOK)

	e.clock.Advance(time.Second)
	must(t, alice.get("/app/gallery"), http.StatusOK)
}
