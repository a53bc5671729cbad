package e2e

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowser drives the web app in headless Chromium against a real
// `creditd serve` with its built-in image worker, as a user would, and
// saves screenshots of every page at desktop and phone width.
func TestBrowser(t *testing.T) {
	browser := newBrowser(t)
	// The test clock stands still, so an account's request budget
	// (limits.requests_per_second_per_user) never refills: the browser's
	// page and image loads would spend the default burst of 40 before the
	// test ends.
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"limits": {"requests_burst_per_user": 1000}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--builtin-worker", "1", "--config", cfg)
	s.admin(201, "PUT", "/v1/accounts/alice", map[string]any{"timezone": "Europe/Berlin"})
	s.admin(201, "PUT", "/v1/accounts/bob", map[string]any{})
	img := filepath.Join(t.TempDir(), "quadrants.png")
	if err := os.WriteFile(img, quadrants(16, 12), 0o644); err != nil {
		t.Fatal(err)
	}
	main := newTab(t, browser)
	var jobURL string

	if !t.Run("SignInShows45Credits", func(t *testing.T) {
		main.t = t
		link := s.loginLink("alice")
		// Opening the link shows whom it signs in and consumes nothing (a
		// mail scanner may fetch it first); Continue signs in.
		for range 2 {
			if st := main.open(link); st != 200 {
				t.Fatalf("sign-in link: %d", st)
			}
		}
		main.waitText(".signin-account", "alice", 5*time.Second)
		main.screenshot("signin-link")
		if st := main.submit(signInButton); st != 200 {
			t.Fatalf("continue: %d", st)
		}
		if loc := main.location(); !strings.HasSuffix(loc, "/app/create") {
			t.Fatalf("landed on %s", loc)
		}
		main.waitText(`.who-credits [data-live="available"]`, "45", 5*time.Second)
		main.waitText(`.balance-card [data-live="available"]`, "45", 5*time.Second)
		main.screenshot("create")
		// The link works once.
		if st := main.open(link); st != http.StatusGone {
			t.Fatalf("second use of the link: %d", st)
		}
		main.screenshot("signin-link-used")
	}) {
		return
	}

	billing := newTab(t, browser)
	if !t.Run("BillingBeforeTheJob", func(t *testing.T) {
		billing.t = t
		if st := billing.open(s.url + "/app/settings/account/billing"); st != 200 {
			t.Fatalf("billing: %d", st)
		}
		billing.waitText(`.hero [data-live="available"]`, "45", 5*time.Second)
		// Marks this page load: it must survive the live updates below.
		billing.eval(`window.kiraLoaded = "billing-1"`)
	}) {
		return
	}

	if !t.Run("UploadAndCrop", func(t *testing.T) {
		main.t = t
		main.open(s.url + "/app/create")
		// A pointer click on an action chooses it.
		main.submit(`label.action-card:has(input[value="crop"])`)
		main.do(chromedp.WaitVisible(chromedp.CSS(`#file`)))
		main.do(chromedp.SetUploadFiles(chromedp.CSS(`#file`), []string{img}))
		if st := main.submit(`form[data-upload] button[type=submit]`); st != 200 {
			t.Fatalf("upload: %d", st)
		}
		main.waitText(`.notice`, "Image uploaded.", 5*time.Second)
		if got := main.text(`.source .muted`); !strings.HasPrefix(got, "16 × 12 px") {
			t.Fatalf("source: %q", got)
		}
		main.do(
			chromedp.SetValue(chromedp.CSS(`#p-x`), "0"), chromedp.SetValue(chromedp.CSS(`#p-y`), "0"),
			chromedp.SetValue(chromedp.CSS(`#p-width`), "8"), chromedp.SetValue(chromedp.CSS(`#p-height`), "6"),
		)
		main.screenshot("create-crop")
		if st := main.submit(`#start-form button[type=submit]`); st != 200 {
			t.Fatalf("start: %d", st)
		}
		jobURL = main.location()
		if !strings.Contains(jobURL, "/app/jobs/job_") {
			t.Fatalf("after start: %s", jobURL)
		}
		main.eval(`window.kiraLoaded = "job-1"`)
		main.waitText(`[data-job-status]`, "Done", 30*time.Second)
		main.waitFor("the result image", `document.querySelectorAll(".results img").length === 1`, 10*time.Second)
		if main.eval(`window.kiraLoaded`) != "job-1" {
			t.Fatal("the job page reloaded instead of updating in place")
		}
		main.waitFor("the result to load", `document.querySelector(".results img").complete && document.querySelector(".results img").naturalWidth === 8`, 10*time.Second)
		main.screenshot("job-done")
	}) {
		return
	}

	if !t.Run("BalanceDropsLiveTo40", func(t *testing.T) {
		billing.t = t
		billing.waitText(`.hero [data-live="available"]`, "40", 10*time.Second)
		billing.waitText(`.who-credits [data-live="available"]`, "40", 10*time.Second)
		billing.waitText(`[data-live="held"]`, "0", 10*time.Second)
		billing.waitFor("the history to show the charge", `document.querySelector(".history").textContent.includes("Crop: 1 result delivered")`, 10*time.Second)
		if billing.eval(`window.kiraLoaded`) != "billing-1" {
			t.Fatal("the billing page reloaded: the balance must update live")
		}
		billing.screenshot("billing")
		s.wantBalance("alice", 40, 0)
	}) {
		return
	}

	if !t.Run("ResultInGallery", func(t *testing.T) {
		main.t = t
		main.open(s.url + "/app/gallery")
		main.waitFor("one result", `document.querySelectorAll(".gallery img").length === 1`, 5*time.Second)
		href := main.eval(`document.querySelector(".gallery a[download]").getAttribute("href")`)
		if got := main.fetchStatus(href); got != "200 image/png" {
			t.Fatalf("download %s: %s", href, got)
		}
		main.screenshot("gallery")
		main.open(s.url + "/app/settings/account/profile")
		main.screenshot("profile")
		main.open(s.url + "/app/settings/account/billing/add-credits")
		main.screenshot("add-credits")
		// The profile menu in the navigation leads to Settings, then Billing.
		main.open(s.url + "/app/gallery")
		main.do(chromedp.Click(chromedp.CSS(`.profile summary`)))
		main.submit(`.profile .menu a[href$="/account/profile"]`)
		main.submit(`.subnav a[href$="/billing"]`)
		main.waitText(`h1`, "Billing", 5*time.Second)
	}) {
		return
	}

	if !t.Run("AnotherAccountIsNotFound", func(t *testing.T) {
		main.t = t
		bobAsset := s.upload("bob", quadrants(8, 8))
		bobJob := s.createJob("bob", "crop", 1, map[string]any{"source": bobAsset, "width": 4, "height": 4}).str("id")
		if st := main.open(s.url + "/app/jobs/" + bobJob); st != 404 {
			t.Fatalf("bob's job page: %d", st)
		}
		main.waitText(`h1`, "We couldn't find that page", 5*time.Second)
		main.screenshot("not-found")
		if got := main.fetchStatus("/app/assets/" + bobAsset); !strings.HasPrefix(got, "404") {
			t.Fatalf("bob's image: %s", got)
		}
		// The JSON API with alice's user token: bob's resources are 404.
		tok := s.userToken("alice")
		for _, p := range []string{"/v1/accounts/bob/balance", "/v1/accounts/bob/entries", "/v1/accounts/bob/jobs",
			"/v1/accounts/bob/assets", "/v1/accounts/bob/events", "/v1/jobs/" + bobJob, "/v1/assets/" + bobAsset} {
			if r := s.req(tok, "GET", p, nil, ""); r.status != 404 {
				t.Errorf("GET %s as alice: %d %s", p, r.status, r.raw)
			}
		}
		if r := s.req(tok, "GET", "/v1/accounts/alice/balance", nil, ""); r.status != 200 || r.num("available") != 40 {
			t.Errorf("own balance as alice: %d %s", r.status, r.raw)
		}
	}) {
		return
	}

	var carolUpload string
	if !t.Run("OutOfCreditsCannotStartButCanDownload", func(t *testing.T) {
		main.t = t
		s.admin(201, "PUT", "/v1/accounts/carol", map[string]any{})
		src := s.upload("carol", quadrants(16, 16))
		carolUpload = src
		done := s.waitStatus(s.createJob("carol", "filter", 1, map[string]any{"source": src, "name": "invert"}).str("id"), "succeeded")
		out := done.body["outputs"].([]any)[0].(string)
		// Spend the other 40 credits.
		h := s.admin(201, "POST", "/v1/holds", map[string]any{"account_id": "carol", "action": "generate", "quantity": 8})
		s.admin(200, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 8})
		s.wantBalance("carol", 0, 0)

		main.signIn(s.loginLink("carol"))
		main.waitText(`.balance-card [data-live="available"]`, "0", 5*time.Second)
		main.waitFor("the out-of-credits banner", `document.querySelector(".banner-empty") !== null`, 5*time.Second)
		main.open(s.url + "/app/create?action=crop&source=" + src)
		if got := main.eval(`document.querySelector("#start-form button[type=submit]").disabled`); got != "true" {
			t.Fatalf("start button disabled = %s", got)
		}
		if why := main.text(`#start-why`); !strings.Contains(why, "out of credits") || !strings.Contains(why, "add credits") {
			t.Fatalf("message: %q", why)
		}
		main.screenshot("create-out-of-credits")
		// Forcing the button does not start anything either.
		main.eval(`document.querySelector("#start-form button[type=submit]").disabled = false`)
		if st := main.submit(`#start-form button[type=submit]`); st != http.StatusPaymentRequired {
			t.Fatalf("start at 0 credits: %d", st)
		}
		main.waitText(`.alert`, "You don't have enough credits for this: it costs 5.", 5*time.Second)
		s.wantBalance("carol", 0, 0)
		// The refusal came back to the Create page (post/redirect/get), so
		// reloading it works and starts nothing.
		back := main.location()
		if !strings.Contains(back, "/app/create?") || !strings.Contains(back, "source="+src) {
			t.Fatalf("after the refused start the browser is at %s, want the Create page", back)
		}
		if st := main.open(back); st != 200 {
			t.Fatalf("reloading %s: %d", back, st)
		}
		if n := main.eval(`document.querySelectorAll(".alert").length`); n != "0" {
			t.Fatalf("the refusal shows again after a reload")
		}
		s.wantBalance("carol", 0, 0)
		// Earlier results stay downloadable.
		main.open(s.url + "/app/gallery")
		main.waitFor("carol's result", `document.querySelectorAll(".gallery img").length === 1`, 5*time.Second)
		if got := main.fetchStatus("/app/assets/" + out + "?download=1"); got != "200 image/png" {
			t.Fatalf("download at 0 credits: %s", got)
		}
		main.screenshot("gallery-out-of-credits")
		main.open(s.url + "/app/settings/account/billing")
		main.screenshot("billing-out-of-credits")
	}) {
		return
	}

	if !t.Run("DeleteAnUploadFromTheGallery", func(t *testing.T) {
		main.t = t
		main.open(s.url + "/app/gallery?show=uploads")
		main.waitFor("carol's upload", `document.querySelectorAll(".gallery img").length === 1`, 5*time.Second)
		main.waitFor("the upload budget", `document.querySelector("[data-upload-usage]").textContent.startsWith("1 of 1000 uploads")`, 5*time.Second)
		main.screenshot("gallery-uploads")
		if st := main.submit(`.tile-delete button[type=submit]`); st != 200 {
			t.Fatalf("delete: %d", st)
		}
		main.waitText(`.notice`, "Image deleted.", 5*time.Second)
		main.waitFor("the freed budget", `document.querySelector("[data-upload-usage]").textContent.startsWith("0 of 1000 uploads")`, 5*time.Second)
		if n := main.eval(`document.querySelectorAll(".gallery img").length`); n != "0" {
			t.Fatalf("%s uploads listed after the delete", n)
		}
		// Past the browser's cache, which may keep the image it showed.
		if got := main.eval(`fetch("/app/assets/` + carolUpload + `", {cache: "no-store"}).then(r => r.status)`); got != "404" {
			t.Fatalf("the deleted upload: %s", got)
		}
		// The result made from it stays.
		main.open(s.url + "/app/gallery")
		main.waitFor("carol's result", `document.querySelectorAll(".gallery img").length === 1`, 5*time.Second)
	}) {
		return
	}

	if !t.Run("SignOut", func(t *testing.T) {
		main.t = t
		main.open(s.url + "/app/create")
		main.do(chromedp.Click(chromedp.CSS(`.profile summary`)))
		main.submit(`.profile .menu button[type=submit]`)
		main.waitText(`h1`, "You are signed out", 5*time.Second)
		if st := main.open(s.url + "/app/create"); st != http.StatusUnauthorized {
			t.Fatalf("after sign-out: %d", st)
		}
		main.screenshot("signin")
	}) {
		return
	}
	s.verify()
}

// TestDemoUserSignIn checks that a fresh `creditd serve` prints a sign-in
// link for a demo user that starts a session with the usual 45 credits.
func TestDemoUserSignIn(t *testing.T) {
	_, link := demoLink(t)
	c := cookieClient(t)
	// The link's page, then its Continue button (a POST of the token).
	res, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `action="/app/login"`) {
		t.Fatalf("demo link: %d:\n%s", res.StatusCode, body)
	}
	u, _ := url.Parse(link)
	res, err = c.PostForm(u.Scheme+"://"+u.Host+"/app/login", url.Values{"token": {u.Query().Get("token")}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasSuffix(res.Request.URL.Path, "/app/create") {
		t.Fatalf("continue: %d at %s", res.StatusCode, res.Request.URL)
	}
	if !strings.Contains(string(body), `data-live="available">45<`) {
		t.Fatalf("demo user does not see 45 credits:\n%s", body)
	}
}

// TestBrowserHelpFeedback opens Help → Credits & usage from the profile
// menu, reads the configured numbers there, answers "Was this article
// helpful?" with a comment, changes the answer, and finds one answer, the
// latest, in the admin's GET /v1/feedback.
func TestBrowserHelpFeedback(t *testing.T) {
	browser := newBrowser(t)
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"daily_credits": 20, "signup_credits": 50,
		"limits": {"requests_burst_per_user": 1000}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--builtin-worker", "0", "--config", cfg)
	s.admin(201, "PUT", "/v1/accounts/alice", map[string]any{"timezone": "Europe/Berlin"})
	main := newTab(t, browser)
	if st := main.signIn(s.loginLink("alice")); st != 200 {
		t.Fatalf("sign in: %d", st)
	}
	main.do(chromedp.Click(chromedp.CSS(`.profile summary`)))
	main.submit(`.profile .menu a[href="/app/help/credits-and-usage"]`)
	main.waitText(`h1`, "Credits & usage", 5*time.Second)
	if body := main.text(`main`); !strings.Contains(body, "20 free credits a day") || !strings.Contains(body, "50 credits once") ||
		!strings.Contains(body, "midnight in your time zone (Europe/Berlin)") {
		t.Fatalf("the article does not show the configured numbers:\n%s", body)
	}
	main.screenshot("help")

	main.do(chromedp.SendKeys(chromedp.CSS(`#feedback-comment`), "Say what video costs."))
	main.submit(`.feedback-answers button[value=no]`)
	main.waitText(`.feedback .notice`, "Thanks for the feedback! You can change your answer at any time.", 5*time.Second)
	if loc := main.location(); !strings.HasSuffix(loc, "/app/help/credits-and-usage?feedback=thanks#feedback") {
		t.Fatalf("after sending: at %s, want the article (post/redirect/get)", loc)
	}
	main.submit(`.feedback-answers button[value=yes]`)
	main.waitText(`.feedback .muted strong`, "Yes", 5*time.Second)

	// A comment the server refuses (over 2,000 characters: maxlength
	// stops typing, not a script) is not lost: the article says why and
	// the comment is back in the box; the stored answer is unchanged.
	long := strings.Repeat("x", 2001)
	main.do(chromedp.SetValue(chromedp.CSS(`#feedback-comment`), long))
	main.submit(`.feedback-answers button[value=no]`)
	main.waitText(`.feedback .alert`, "Your feedback was not sent: a comment can be at most 2,000 characters. Please shorten it and send it again.", 5*time.Second)
	if got := main.eval(`document.querySelector("#feedback-comment").value.length`); got != "2001" {
		t.Fatalf("the refused comment is not back in the box: length %s", got)
	}

	r := s.admin(200, "GET", "/v1/feedback", nil)
	data, _ := r.body["data"].([]any)
	if len(data) != 1 {
		t.Fatalf("feedback: %s, want one answer", r.raw)
	}
	f := data[0].(map[string]any)
	if f["account_id"] != "alice" || f["helpful"] != true || f["comment"] != "Say what video costs." {
		t.Fatalf("stored answer: %v", f)
	}
}
