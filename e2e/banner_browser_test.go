package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserBillingLowBalanceBanner drives the balance states of the web
// app in Chromium: Billing says when purchased credits expire, in the
// account's time zone; the user sets the low-balance line there (bad input
// is refused and writes nothing); the banner with Add credits appears and
// disappears live on another page as credits are spent and granted, and
// says when the account is out of credits.
func TestBrowserBillingLowBalanceBanner(t *testing.T) {
	browser := newBrowser(t)
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"limits": {"requests_burst_per_user": 1000}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--builtin-worker", "0", "--config", cfg)
	now, err := time.Parse(time.RFC3339Nano, s.admin(200, "GET", "/v1/test-clock", nil).str("now"))
	if err != nil {
		t.Fatal(err)
	}
	s.admin(201, "PUT", "/v1/accounts/alice", map[string]any{"timezone": "Asia/Kolkata"})
	expires := now.Add(10 * 24 * time.Hour).Truncate(time.Hour)
	s.admin(201, "POST", "/v1/accounts/alice/grants", map[string]any{"amount": 50, "source": "purchase", "expires_at": expires})
	s.wantBalance("alice", 95, 0) // 30 sign-up + 15 daily + 50 purchased
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	threshold := func() int64 { return s.admin(200, "GET", "/v1/accounts/alice", nil).num("low_balance_threshold") }
	spend := func(images int) {
		h := s.admin(201, "POST", "/v1/holds", map[string]any{"account_id": "alice", "action": "generate", "quantity": images})
		s.admin(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": images})
	}
	const billing = "/app/settings/account/billing"
	bannerState := `document.querySelector("[data-region=balance-alert]").dataset.balanceAlert`

	main := newTab(t, browser)
	if st := main.signIn(s.loginLink("alice")); st != 200 {
		t.Fatalf("sign in: %d", st)
	}
	if !t.Run("ExpiringCredits", func(t *testing.T) {
		main.t = t
		main.open(s.url + billing)
		want := "50 credits expire on " + expires.In(kolkata).Format("Jan 2, 2006, 15:04")
		main.waitText(`.sources .expiring li`, want, 5*time.Second)
		if got := main.eval(bannerState); got != "" {
			t.Fatalf("banner %q at 95 credits with the default line", got)
		}
		main.screenshot("billing-expiring")
	}) {
		return
	}

	if !t.Run("ThresholdFormRefusesBadInput", func(t *testing.T) {
		main.t = t
		before := threshold()
		// The browser's own checks stop a bad number; past them (a script,
		// an old browser), the server refuses it and writes nothing.
		main.eval(`(() => { const i = document.querySelector("#threshold"); i.type = "text"; i.removeAttribute("min"); i.removeAttribute("required"); return "ok"; })()`)
		main.do(chromedp.SetValue(chromedp.CSS(`#threshold`), "-5"))
		if st := main.submit(`form[action$="/low-balance"] button[type=submit]`); st != http.StatusBadRequest {
			t.Fatalf("threshold -5: %d", st)
		}
		main.waitText(`.alert`, "Enter a whole number of credits from 0 to 1,000,000,000,000.", 5*time.Second)
		main.waitText(`#threshold-error`, "Enter a whole number of credits from 0 to 1,000,000,000,000.", 5*time.Second)
		if got := main.eval(`document.querySelector("#threshold").value`); got != "-5" {
			t.Fatalf("the refused value is not back in the form: %q", got)
		}
		if got := threshold(); got != before {
			t.Fatalf("threshold %d after a refused form, want %d", got, before)
		}
		main.screenshot("billing-threshold-refused")
	}) {
		return
	}

	gallery := newTab(t, browser)
	if !t.Run("BannerAppearsLiveBelowTheLine", func(t *testing.T) {
		main.t, gallery.t = t, t
		main.do(chromedp.SetValue(chromedp.CSS(`#threshold`), "90"))
		if st := main.submit(`form[action$="/low-balance"] button[type=submit]`); st != 200 {
			t.Fatalf("threshold 90: %d", st)
		}
		main.waitText(`.notice`, "Low-balance warning saved.", 5*time.Second)
		if got := threshold(); got != 90 {
			t.Fatalf("threshold %d, want 90", got)
		}
		if got := main.eval(bannerState); got != "" {
			t.Fatalf("banner %q at 95 credits with the line at 90", got)
		}
		gallery.open(s.url + "/app/gallery")
		gallery.eval(`window.kiraLoaded = "gallery-1"`)
		spend(1) // 90: not below the line
		gallery.waitText(`.who-credits [data-live="available"]`, "90", 10*time.Second)
		if got := gallery.eval(bannerState); got != "" {
			t.Fatalf("banner %q at 90 credits with the line at 90", got)
		}
		spend(1) // 85: below it
		gallery.waitFor("the banner to appear live", `document.querySelector(".banner-low") !== null`, 10*time.Second)
		if got := gallery.text(`.banner-low strong`); got != "You're running low on credits: 85 left" {
			t.Fatalf("banner says %q", got)
		}
		if href := gallery.eval(`document.querySelector(".banner-low a.btn").getAttribute("href")`); href != billing+"/add-credits" {
			t.Fatalf("the banner's Add credits leads to %s", href)
		}
		spend(1) // 80: the banner follows
		gallery.waitFor("the banner's number", `document.querySelector(".banner-low strong").textContent.includes("80 left")`, 10*time.Second)
		if gallery.eval(`window.kiraLoaded`) != "gallery-1" {
			t.Fatal("the gallery reloaded: the banner must update in place")
		}
		gallery.screenshot("gallery-low-balance")
		main.open(s.url + billing)
		main.waitFor("the banner on Billing", `document.querySelector(".banner-low") !== null`, 5*time.Second)
		main.screenshot("billing-low-balance")
	}) {
		return
	}

	if !t.Run("GrantRemovesTheBannerLive", func(t *testing.T) {
		gallery.t = t
		s.admin(201, "POST", "/v1/accounts/alice/grants", map[string]any{"amount": 100, "source": "admin"})
		gallery.waitFor("the banner to go", `document.querySelector(".banner-low") === null && `+bannerState+` === ""`, 10*time.Second)
		if gallery.eval(`window.kiraLoaded`) != "gallery-1" {
			t.Fatal("the gallery reloaded: the banner must update in place")
		}
	}) {
		return
	}

	if !t.Run("OutOfCredits", func(t *testing.T) {
		gallery.t = t
		spend(36) // 180 credits: none left
		s.wantBalance("alice", 0, 0)
		gallery.waitFor("the out-of-credits banner", `document.querySelector(".banner-empty") !== null`, 10*time.Second)
		if got := gallery.text(`.banner-empty strong`); got != "You're out of credits." {
			t.Fatalf("banner says %q", got)
		}
		if gallery.eval(`window.kiraLoaded`) != "gallery-1" {
			t.Fatal("the gallery reloaded: the banner must update in place")
		}
		gallery.screenshot("gallery-out-of-credits-banner")
		// Every page says it, on a fresh load too.
		main.t = t
		for _, path := range []string{"/app/create", billing, "/app/settings/account/profile"} {
			main.open(s.url + path)
			if got := main.eval(bannerState); got != "depleted" || !strings.Contains(main.text(`.banner-empty`), "Add credits") {
				t.Fatalf("%s: banner %q", path, got)
			}
		}
	}) {
		return
	}
	s.verify()
}
