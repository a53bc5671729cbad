package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestServeSignInAndSupportURLs: CREDITD_SIGNIN_URL and CREDITD_SUPPORT_URL
// reach the web app's signed-out page through `creditd serve`; a value that
// is not a URL a browser can follow stops the start, naming the setting.
func TestServeSignInAndSupportURLs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	serveRefused(t, t.TempDir(), []string{"CREDITD_SUPPORT_URL=javascript:alert(1)"}, "CREDITD_SUPPORT_URL", "must be an http(s) URL")
	serveRefused(t, t.TempDir(), []string{"CREDITD_SIGNIN_URL=kira.example/signin"}, "CREDITD_SIGNIN_URL")

	env := []string{"CREDITD_ADMIN_KEY=" + testAdminKey, "CREDITD_SIGNIN_URL=https://kira.example/signin", "CREDITD_SUPPORT_URL=mailto:help@kira.example"}
	srv := startServerArgs(t, t.TempDir(), []string{"--builtin-worker", "0"}, env...)
	st, body := call(t, "GET", srv.URL+"/app/create", "", "", "")
	if st != http.StatusUnauthorized || !strings.Contains(body, `href="https://kira.example/signin"`) || !strings.Contains(body, `href="mailto:help@kira.example"`) {
		t.Fatalf("signed-out page: %d\n%s", st, body)
	}
	srv.stop()

	srv = startServerArgs(t, t.TempDir(), []string{"--builtin-worker", "0"}, "CREDITD_ADMIN_KEY="+testAdminKey)
	if st, body := call(t, "GET", srv.URL+"/app/create", "", "", ""); st != http.StatusUnauthorized || strings.Contains(body, "Contact support") || strings.Contains(body, "creditd serve") {
		t.Fatalf("signed-out page without the settings: %d\n%s", st, body)
	}
}
