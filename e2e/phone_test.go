package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// overflowJS lists the elements of the page that stick out: wider than the
// viewport (or past its right edge) or past the right edge of their card.
// Screen-reader-only text and hidden elements do not count.
const overflowJS = `(() => {
  const vw = document.documentElement.clientWidth, out = [];
  const name = e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string" ? "." + e.className.trim().split(/\s+/).join(".") : "");
  if (document.documentElement.scrollWidth > vw + 1) out.push("page scrolls sideways: " + document.documentElement.scrollWidth + " > " + vw);
  for (const e of document.querySelectorAll("body *")) {
    if (e.closest(".sr-only") || e.closest("template")) continue;
    const cs = getComputedStyle(e);
    if (cs.display === "none" || cs.visibility === "hidden" || cs.position === "fixed") continue;
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if (r.left < -1 || r.right > vw + 1) { out.push(name(e) + " spans " + Math.round(r.left) + ".." + Math.round(r.right) + " of a " + vw + " px viewport"); continue; }
    const card = e.parentElement && e.parentElement.closest(".card");
    if (card && !e.closest(".table-wrap")) {
      const c = card.getBoundingClientRect();
      if (r.left < c.left - 1 || r.right > c.right + 1) out.push(name(e) + " spans " + Math.round(r.left) + ".." + Math.round(r.right) + " outside its card " + Math.round(c.left) + ".." + Math.round(c.right));
    }
  }
  return JSON.stringify(out.slice(0, 20));
})()`

// TestPhoneLayout reproduces issue 20 (on a 390 px phone the upload block
// overflowed its card): at 390 px every page a user sees fits the viewport
// and every element stays inside its card.
func TestPhoneLayout(t *testing.T) {
	browser := newBrowser(t)
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"limits": {"requests_burst_per_user": 1000}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--builtin-worker", "1", "--config", cfg)
	s.admin(201, "PUT", "/v1/accounts/alice", map[string]any{})
	src := s.upload("alice", quadrants(1600, 400))
	job := s.waitStatus(s.createJob("alice", "crop", 1, map[string]any{"source": src, "width": 1200, "height": 300}).str("id"), "succeeded").str("id")
	tab := newTab(t, browser)
	tab.signIn(s.loginLink("alice"))
	tab.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait))

	for _, path := range []string{
		"/app/create", "/app/create?action=crop", "/app/create?action=crop&source=" + src, "/app/create?action=generate",
		"/app/create?action=expand&source=" + src, "/app/jobs/" + job, "/app/gallery", "/app/gallery?show=uploads",
		"/app/settings/account/profile", "/app/settings/account/billing", "/app/settings/account/billing/add-credits",
	} {
		t.Run(strings.TrimPrefix(path, "/app/"), func(t *testing.T) {
			tab.t = t
			if st := tab.open(s.url + path); st != 200 {
				t.Fatalf("%s: %d", path, st)
			}
			tab.do(chromedp.Sleep(100 * time.Millisecond))
			var bad []string
			if err := json.Unmarshal([]byte(tab.eval(overflowJS)), &bad); err != nil {
				t.Fatal(err)
			}
			if len(bad) > 0 {
				t.Errorf("at 390 px, %s:\n%s", path, strings.Join(bad, "\n"))
			}
		})
	}
	tab.t = t
	tab.open(s.url + "/app/create?action=crop")
	tab.screenshot("phone-create-upload")
}
