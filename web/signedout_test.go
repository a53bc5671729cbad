package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/creditd/creditd/web"
)

// links sets the app's sign-in and support pages (before any request).
func (e *env) links(signIn, support string) {
	app := e.api.Web.(*web.App)
	app.SignInURL, app.SupportURL = signIn, support
}

// hrefs lists a page's link targets.
func hrefs(body string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestSignedOutPages reproduces issue 20 (the signed-out page showed
// operator text, and "Ask for a new sign-in link" / "Contact support" led
// nowhere): with CREDITD_SIGNIN_URL and CREDITD_SUPPORT_URL the pages a
// user meets signed out (and Add credits) link to the product's own pages;
// without them they show neither operator text nor a dead link.
func TestSignedOutPages(t *testing.T) {
	// pages returns the pages to check, signed out and in.
	pages := func(t *testing.T, e *env) map[string]page {
		e.account("alice")
		used := e.link("alice")
		e.newUser().useLink(used)
		out := e.signIn("alice")
		ps := map[string]page{
			"SignIn":     must(t, e.newUser().get("/app/create"), http.StatusUnauthorized, "Sign in"),
			"LinkUsed":   must(t, e.newUser().get(used), http.StatusGone, "already used"),
			"LinkBroken": must(t, e.newUser().get("/app/login?token=ll_bad.link"), http.StatusBadRequest, "does not work"),
			"SignedOut":  must(t, out.post("/app/logout", url.Values{}), http.StatusOK, "You are signed out"),
		}
		in := e.signIn("alice")
		ps["AddCredits"] = must(t, in.get("/app/settings/account/billing/add-credits"), http.StatusOK, "Purchases are not configured")
		ps["BuyRefused"] = must(t, in.post("/app/settings/account/billing/add-credits", url.Values{"pack": {"small"}}), http.StatusServiceUnavailable, "nothing was charged")
		return ps
	}

	t.Run("WithoutLinks", func(t *testing.T) {
		e := newEnv(t)
		for name, p := range pages(t, e) {
			for _, bad := range []string{"creditd serve", "demo", "Ask for a new sign-in link", "Contact support", "Ask support", "data-signin-url", "data-support-url"} {
				if strings.Contains(p.body, bad) {
					t.Errorf("%s page shows %q", name, bad)
				}
			}
			for _, h := range hrefs(p.body) {
				if h == "" || h == "#" {
					t.Errorf("%s page has a dead link %q", name, h)
				}
			}
		}
	})

	t.Run("WithLinks", func(t *testing.T) {
		e := newEnv(t)
		e.links("https://kira.example/signin", "/support")
		ps := pages(t, e)
		for _, name := range []string{"SignIn", "LinkUsed", "LinkBroken", "SignedOut"} {
			must(t, ps[name], ps[name].status, `href="https://kira.example/signin"`)
			if strings.Contains(ps[name].body, "creditd serve") {
				t.Errorf("%s page shows operator text", name)
			}
		}
		must(t, ps["SignIn"], http.StatusUnauthorized, `href="/support" data-support-url>Contact support</a>`)
		must(t, ps["AddCredits"], http.StatusOK, "Ask us.", `href="/support" data-support-url>Contact support</a>`)
		must(t, ps["BuyRefused"], http.StatusServiceUnavailable, `href="/support">Contact support</a>`)
	})
}

func TestCheckLinkURL(t *testing.T) {
	for _, ok := range []string{"", "https://kira.example/signin", "http://localhost:3000/help", "/help", "/help?topic=sign-in", "mailto:help@kira.example"} {
		if err := web.CheckLinkURL("CREDITD_SUPPORT_URL", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"kira.example/signin", "javascript:alert(1)", "mailto:", "ftp://kira.example/help", "//evil.example/x", "https://", "help"} {
		err := web.CheckLinkURL("CREDITD_SUPPORT_URL", bad)
		if err == nil || !strings.Contains(err.Error(), "CREDITD_SUPPORT_URL") {
			t.Errorf("%q: %v, want a refusal naming the setting", bad, err)
		}
	}
}
