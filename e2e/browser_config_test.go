package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// configuredNumbers is a config far from the defaults (daily 15, sign-up
// 30, images 5, video 60, only purchased and support credits on video).
const configuredNumbers = `{
  "daily_credits": 20,
  "signup_credits": 50,
  "prices": [
    {"action": "generate", "category": "image", "unit_credits": 6},
    {"action": "edit", "category": "image", "unit_credits": 6},
    {"action": "crop", "category": "image", "unit_credits": 6},
    {"action": "upscale", "category": "image", "unit_credits": 6},
    {"action": "expand", "category": "image", "unit_credits": 6},
    {"action": "adjust", "category": "image", "unit_credits": 6},
    {"action": "filter", "category": "image", "unit_credits": 6},
    {"action": "video", "category": "video", "unit_credits": 70}
  ],
  "sources": [
    {"source": "daily", "categories": ["image"], "rank": 0},
    {"source": "promo", "categories": ["image", "video"], "rank": 1, "grantable": true},
    {"source": "signup", "categories": ["image"], "rank": 2},
    {"source": "admin", "categories": ["image", "video"], "rank": 3, "grantable": true},
    {"source": "purchase", "categories": ["image", "video"], "rank": 4, "grantable": true}
  ],
  "limits": {"requests_burst_per_user": 1000}
}`

// The defaults' numbers as pages would state them, and other forms the
// pages must not use (ISO dates, "5.00 USD").
var defaultNumbers = regexp.MustCompile(`\b(15|30) (free )?credits?\b|\b5 credits?\b|\b60 credits\b|\b\d{4}-\d{2}-\d{2}\b|\bUSD\b|\b\d+\.\d{2} [A-Z]{3}\b`)

// TestBrowserConfiguredNumbers starts `creditd serve` with a non-default
// config and credit pack and reads every page a signed-in user can reach:
// each states the configured numbers, none the defaults, money reads in its
// currency and every date and time in one format in the account's zone.
func TestBrowserConfiguredNumbers(t *testing.T) {
	browser := newBrowser(t)
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(configuredNumbers), 0o644); err != nil {
		t.Fatal(err)
	}
	s := launch(t, []string{"--test-clock", "--builtin-worker", "1", "--config", cfg},
		"CREDITD_STRIPE_SECRET_KEY=sk_test_numbers", "CREDITD_STRIPE_WEBHOOK_SECRET=whsec_numbers",
		"CREDITD_STRIPE_API_BASE=http://127.0.0.1:9", // never called: the test buys nothing
		`CREDITD_PACKS=[{"id":"mega","name":"Mega pack","credits":700,"amount":1250,"currency":"eur"}]`)
	now, err := time.Parse(time.RFC3339Nano, s.admin(200, "GET", "/v1/test-clock", nil).str("now"))
	if err != nil {
		t.Fatal(err)
	}
	// A zone far from UTC, so a date in UTC would differ for hours a day.
	const zone = "Pacific/Auckland"
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	s.admin(201, "PUT", "/v1/accounts/alice", map[string]any{"timezone": zone})
	s.wantBalance("alice", 70, 0) // 50 sign-up + 20 daily
	src := s.upload("alice", quadrants(16, 12))
	done := s.waitStatus(s.createJob("alice", "filter", 1, map[string]any{"source": src, "name": "invert"}).str("id"), "succeeded")
	queued := s.createJob("alice", "generate", 2, map[string]any{"prompt": "a lighthouse"}).str("id") // no generation worker: it waits
	s.wantBalance("alice", 52, 12)

	tab := newTab(t, browser)
	if st := tab.signIn(s.loginLink("alice")); st != 200 {
		t.Fatalf("sign in: %d", st)
	}
	timeRE := regexp.MustCompile(`^[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{2}:\d{2}$`)
	// read opens a page and requires each of want in its text, none of the
	// defaults, and every <time> in the one format.
	read := func(path string, want ...string) string {
		t.Helper()
		if st := tab.open(s.url + path); st != 200 {
			t.Fatalf("%s: %d", path, st)
		}
		text := tab.eval(`document.body.innerText`)
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s does not say %q:\n%s", path, w, text)
			}
		}
		if m := defaultNumbers.FindAllString(text, -1); len(m) > 0 {
			t.Errorf("%s states %q, not the configured numbers:\n%s", path, m, text)
		}
		for _, tm := range strings.Split(tab.eval(`Array.from(document.querySelectorAll("time")).map(e => e.textContent.trim()).join("\n")`), "\n") {
			if tm != "" && !timeRE.MatchString(tm) {
				t.Errorf("%s shows a time as %q, not like %q", path, tm, now.In(loc).Format("Jan 2, 2006, 15:04"))
			}
		}
		return text
	}
	day := now.In(loc).Format("Jan 2, 2006")
	at := now.In(loc).Format("Jan 2, 2006, 15:04")

	read("/app/create", "6 credits per image", "6 credits", "52")
	read("/app/create?action=generate&quantity=2", "Cost\n12 credits", "6 credits per image")
	read("/app/create?action=crop", "6 credits", "up to 20 MB")
	read("/app/create?action=crop&source="+src, "Cost\n6 credits")
	read("/app/jobs/"+done.str("id"), "Charged\n6 credits", "Started\n"+at)
	read("/app/jobs/"+queued, "Reserved\n12 credits")
	read("/app/gallery", at)
	read("/app/gallery?show=uploads", at)
	read("/app/settings/account/billing",
		"Every image generation or edit costs 6 credits per result",
		"Video generation", "70", "paid with promotional credits, credits from support or purchased credits",
		"Sign-up credits", "+50", "Daily free credits", "+20", "Refreshed for "+day, at)
	read("/app/settings/account/billing/add-credits",
		"Mega pack", "€12.50", "700 credits", "Enough for 116 images",
		"you get 20 credits every day", "Every account gets 50 credits once")
	read("/app/settings/account/profile", "Free: 20 free credits every day", "Member since "+day, zone)
	tab.screenshot("configured-billing")
}
