package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	// chromiumPath is Debian's chromium, which scripts/test installs.
	chromiumPath = "/usr/bin/chromium"
	// screenshotDir collects screenshots for review (git-ignored).
	screenshotDir = "../test-output/screenshots"
	// browserStepTimeout bounds one step in the browser.
	browserStepTimeout = 30 * time.Second
)

// Viewports the screenshots are taken at.
var viewports = []struct {
	name          string
	width, height int64
	mobile        bool
}{
	{"desktop", 1280, 900, false},
	{"phone", 390, 844, true},
}

// newBrowser starts headless Chromium for the test. Without Chromium the
// test is skipped, except under CREDITD_CI=1, where it fails.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CREDITD_CI") == "1" {
			t.Fatalf("browser tests need Chromium at %s (CREDITD_CI=1 forbids skipping): run scripts/test, which installs Debian's chromium", chromiumPath)
		}
		t.Skipf("browser tests skipped: no Chromium at %s (apt-get install chromium, or run scripts/test, which installs it)", chromiumPath)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser; it must not run under a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tab is one browser tab driven by a test.
type tab struct {
	t   *testing.T
	ctx context.Context
}

// newTab opens another tab of the browser (sharing its cookies).
func newTab(t *testing.T, browser context.Context) *tab {
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	// The first action opens the tab, which lives as long as the context
	// of that action: it must not run under a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return &tab{t: t, ctx: ctx}
}

func (b *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v (at %s)", err, b.location())
	}
}

func (b *tab) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

// open navigates and returns the HTTP status of the page.
func (b *tab) open(url string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	res, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
	return res.Status
}

// submit clicks a button that submits a form and waits for the next page.
func (b *tab) submit(sel string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("submit %s: %v (at %s)", sel, err, b.location())
	}
	return res.Status
}

// signIn opens a sign-in link and presses the Continue button of its page;
// it returns the status of the page it lands on.
func (b *tab) signIn(link string) int64 {
	b.t.Helper()
	if st := b.open(link); st != 200 {
		b.t.Fatalf("sign-in link: %d", st)
	}
	return b.submit(signInButton)
}

// signInButton is the Continue button of a sign-in link's page.
const signInButton = "#signin-form button[type=submit]"

// text returns the text of the first element matching a CSS selector.
func (b *tab) text(sel string) string {
	b.t.Helper()
	return b.eval(fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
}

// eval evaluates a JavaScript expression (awaiting promises) as a string.
func (b *tab) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	for {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`Promise.resolve(`+expr+`).then(String)`, chromedp.EvalAwaitPromise))
		if err == nil {
			return v
		}
		if !contextGone(err) || ctx.Err() != nil {
			b.t.Fatalf("eval %s: %v", expr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// contextGone reports an error of a script that ran while the page was
// being replaced (a navigation finishing): worth trying again.
func contextGone(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Cannot find context") || strings.Contains(msg, "Execution context was destroyed") ||
		strings.Contains(msg, "Inspected target navigated or closed")
}

// waitFor waits until a JavaScript predicate holds.
func (b *tab) waitFor(what, predicate string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+5*time.Second)
	defer cancel()
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
		if err == nil {
			return
		}
		if !contextGone(err) || ctx.Err() != nil {
			b.t.Fatalf("waiting for %s: %v (at %s)", what, err, b.location())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitText waits until an element's text (trimmed) is want.
func (b *tab) waitText(sel, want string, timeout time.Duration) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("%s to read %q (reads %q)", sel, want, b.text(sel)),
		fmt.Sprintf(`((document.querySelector(%q) || {}).textContent || "").trim() === %q`, sel, want), timeout)
}

// fetchStatus fetches a URL from the page (with its cookies) and returns
// "status content-type".
func (b *tab) fetchStatus(url string) string {
	b.t.Helper()
	return b.eval(fmt.Sprintf(`fetch(%q, {credentials: "same-origin"}).then(r => r.status + " " + (r.headers.get("Content-Type") || ""))`, url))
}

// screenshot saves full-page screenshots of the current page at every
// viewport as <name>-<viewport>.png under screenshotDir.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	for _, vp := range viewports {
		opts := []chromedp.EmulateViewportOption{}
		if vp.mobile {
			opts = append(opts, chromedp.EmulateMobile, chromedp.EmulatePortrait)
		}
		b.do(chromedp.EmulateViewport(vp.width, vp.height, opts...), chromedp.Sleep(150*time.Millisecond))
		ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(screenshotDir, name+"-"+vp.name+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.do(chromedp.EmulateViewport(viewports[0].width, viewports[0].height))
}

// loginLink asks the server for a sign-in link for an account.
func (s *server) loginLink(acct string) string {
	s.t.Helper()
	return s.admin(201, "POST", "/v1/accounts/"+acct+"/login-links", map[string]any{}).str("url")
}

// userToken asks the server for a user-scoped API token.
func (s *server) userToken(acct string) string {
	s.t.Helper()
	return s.admin(201, "POST", "/v1/accounts/"+acct+"/tokens", map[string]any{}).str("token")
}

// upload stores an image for an account through the API.
func (s *server) upload(acct string, png []byte) string {
	s.t.Helper()
	r := s.req(adminKey, "POST", "/v1/accounts/"+acct+"/assets", png, "image/png")
	if r.status != 201 {
		s.t.Fatalf("upload: %d %s", r.status, r.raw)
	}
	return r.str("id")
}

// demoLink starts `creditd serve --demo` on a fresh data directory, reads the demo
// sign-in link it prints, and returns it with the server's URL. The
// process is stopped when the test ends.
func demoLink(t *testing.T) (url, link string) {
	t.Helper()
	creditd, _ := binaries(t)
	cmd := exec.Command(creditd, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--builtin-worker", "0", "--demo")
	cmd.Env = append(os.Environ(), "CREDITD_ADMIN_KEY="+adminKey, "CREDITD_WORKER_KEY="+workerKey)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(30 * time.Second)
	for url == "" || link == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("creditd serve exited before printing the demo sign-in link")
			}
			if u, ok := strings.CutPrefix(l, "creditd listening on "); ok {
				url = u
			}
			if u, ok := strings.CutPrefix(l, "demo sign-in: "); ok {
				link = u
			}
		case <-deadline:
			t.Fatal("creditd serve printed no demo sign-in link")
		}
	}
	go func() {
		for range lines {
		}
	}()
	return url, link
}

// cookieClient is an HTTP client with a cookie jar.
func cookieClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}
