package main

// Tests of `creditd serve`'s start-up rules through the real binary: which
// keys it refuses, the demo account only with --demo, and where sign-in
// links point without CREDITD_PUBLIC_URL.

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Keys an operator might set: long enough, and distinct.
const (
	testAdminKey   = "sk_admin_serve_test_0123456789abcdef"
	testWorkerKey  = "sk_worker_serve_test_0123456789abcdef"
	testSessionKey = "ss_serve_test_0123456789abcdef"
)

// serveRefused runs `creditd serve` with env and requires it to exit 1
// before serving, with every one of want in its error message.
func serveRefused(t *testing.T, data string, env []string, want ...string) {
	t.Helper()
	_, errOut := wantCLI(t, 1, env, "serve", "--addr", "127.0.0.1:0", "--data", data, "--builtin-worker", "0")
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr does not say %q:\n%s", w, errOut)
		}
	}
}

func TestServeRefusesWeakOrSharedKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	for _, c := range []struct {
		name string
		env  []string
		want []string
	}{
		{"ShortAdminKey", []string{"CREDITD_ADMIN_KEY=x"},
			[]string{"CREDITD_ADMIN_KEY is 1 characters long", "at least 32"}},
		{"ShortWorkerKey", []string{"CREDITD_ADMIN_KEY=" + testAdminKey, "CREDITD_WORKER_KEY=sk_worker_31_characters_long_xx"},
			[]string{"CREDITD_WORKER_KEY is 31 characters long", "worker key must be at least 32"}},
		{"WorkerKeyIsAdminKey", []string{"CREDITD_ADMIN_KEY=" + testAdminKey, "CREDITD_WORKER_KEY=" + testAdminKey},
			[]string{"the admin key (CREDITD_ADMIN_KEY) and the worker key (CREDITD_WORKER_KEY) are the same key"}},
		{"SessionSecretIsAdminKey", []string{"CREDITD_ADMIN_KEY=" + testAdminKey, "CREDITD_WORKER_KEY=" + testWorkerKey, "CREDITD_SESSION_SECRET=" + testAdminKey},
			[]string{"the admin key (CREDITD_ADMIN_KEY) and the session secret (CREDITD_SESSION_SECRET) are the same key"}},
		{"SessionSecretIsWorkerKey", []string{"CREDITD_ADMIN_KEY=" + testAdminKey, "CREDITD_WORKER_KEY=" + testWorkerKey, "CREDITD_SESSION_SECRET=" + testWorkerKey},
			[]string{"the worker key (CREDITD_WORKER_KEY) and the session secret (CREDITD_SESSION_SECRET) are the same key"}},
		{"ShortSessionSecret", []string{"CREDITD_SESSION_SECRET=fifteen-chars-x"},
			[]string{"the session secret (CREDITD_SESSION_SECRET) must be at least 16 characters"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := t.TempDir()
			serveRefused(t, data, c.env, c.want...)
			if _, err := os.Stat(filepath.Join(data, dbFileName)); !os.IsNotExist(err) {
				t.Errorf("a refused start opened the database (%v)", err)
			}
		})
	}

	// A key set in the environment equal to one stored in the data
	// directory is refused as well.
	t.Run("AdminKeyIsStoredWorkerKey", func(t *testing.T) {
		data := t.TempDir()
		if err := os.WriteFile(filepath.Join(data, workerKeyFileName), []byte(testAdminKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		serveRefused(t, data, []string{"CREDITD_ADMIN_KEY=" + testAdminKey},
			"the admin key (CREDITD_ADMIN_KEY) and the worker key ("+filepath.Join(data, workerKeyFileName)+") are the same key")
	})
}

// TestServeKeepsShortStoredKeys: keys that an earlier version stored in a
// data directory keep working however short, with a warning in the log.
func TestServeKeepsShortStoredKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	data := t.TempDir()
	for file, key := range map[string]string{adminKeyFileName: "sk_admin_short", workerKeyFileName: "sk_worker_short"} {
		if err := os.WriteFile(filepath.Join(data, file), []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := startServerArgs(t, data, []string{"--builtin-worker", "0"})
	if srv.Key != "sk_admin_short" {
		t.Fatalf("admin key %q, want the stored one", srv.Key)
	}
	for _, k := range []struct{ key, path string }{{"sk_admin_short", "/v1/accounts/nobody"}, {"sk_worker_short", "/v1/worker/jobs/nojob/inputs/noasset?lease_id=nolease"}} {
		// 404, not 401: the key is accepted.
		if st, body := call(t, "GET", srv.URL+k.path, k.key, "", ""); st != http.StatusNotFound {
			t.Errorf("the stored key %s: %d %s, want 404", k.key, st, body)
		}
	}
	logs := srv.stderr.String()
	for _, name := range []string{"the admin key is short", "the worker key is short"} {
		if !strings.Contains(logs, name) {
			t.Errorf("no warning %q in the log:\n%s", name, logs)
		}
	}
}

// TestServeGeneratesLongKeys: keys generated on a fresh data directory are
// at least 32 characters, prefixed, and all different.
func TestServeGeneratesLongKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	data := t.TempDir()
	srv := startServerArgs(t, data, []string{"--builtin-worker", "0"})
	seen := map[string]bool{}
	for file, prefix := range map[string]string{adminKeyFileName: "sk_admin_", workerKeyFileName: "sk_worker_", sessionKeyFile: "ss_"} {
		b, err := os.ReadFile(filepath.Join(data, file))
		if err != nil {
			t.Fatal(err)
		}
		k := strings.TrimSpace(string(b))
		if len(k) < keyCharsMin || !strings.HasPrefix(k, prefix) || seen[k] {
			t.Errorf("%s holds %q: want a new key of at least %d characters starting %q", file, k, keyCharsMin, prefix)
		}
		seen[k] = true
	}
	if strings.Contains(srv.stderr.String(), "is short") {
		t.Errorf("a warning about generated keys:\n%s", srv.stderr.String())
	}
}

// TestServeDemo: without --demo, serve creates no demo account and prints
// no sign-in link; with it, it does; an existing demo account stays.
func TestServeDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	data := t.TempDir()
	env := []string{"CREDITD_ADMIN_KEY=" + testAdminKey}
	srv := startServerArgs(t, data, []string{"--builtin-worker", "0"}, env...)
	if st, body := call(t, "GET", srv.URL+"/v1/accounts/demo", testAdminKey, "", ""); st != http.StatusNotFound {
		t.Fatalf("without --demo: GET /v1/accounts/demo %d %s", st, body)
	}
	srv.stop()
	if out := srv.stdout.String(); strings.Contains(out, "sign-in") || strings.Contains(out, "/app/login") {
		t.Fatalf("without --demo, serve printed a sign-in link:\n%s", out)
	}

	srv = startServerArgs(t, data, []string{"--builtin-worker", "0", "--demo"}, env...)
	link := ""
	for _, l := range strings.Split(srv.stdout.String(), "\n") {
		if u, ok := strings.CutPrefix(l, "demo sign-in: "); ok {
			link = u
		}
	}
	if !strings.HasPrefix(link, srv.URL+"/app/login?token=ll_") {
		t.Fatalf("with --demo: link %q\nstdout:\n%s", link, srv.stdout.String())
	}
	if st, body := call(t, "GET", srv.URL+"/v1/accounts/demo/balance", testAdminKey, "", ""); st != 200 || !strings.Contains(body, `"available":45`) {
		t.Fatalf("with --demo: demo balance %d %s", st, body)
	}
	if st, _ := call(t, "GET", link, "", "", ""); st != 200 {
		t.Fatalf("the demo link does not open: %d", st)
	}
	srv.stop()

	// Without --demo again: the account stays, and no link is printed.
	srv = startServerArgs(t, data, []string{"--builtin-worker", "0"}, env...)
	if st, _ := call(t, "GET", srv.URL+"/v1/accounts/demo", testAdminKey, "", ""); st != 200 {
		t.Fatalf("the existing demo account is gone: %d", st)
	}
	if strings.Contains(srv.stdout.String(), "sign-in") {
		t.Fatalf("without --demo, serve printed a sign-in link:\n%s", srv.stdout.String())
	}
}

// TestLinksNeedPublicURL: without CREDITD_PUBLIC_URL, a link is made from
// the request's Host only for a loopback request; on a public address,
// Host: evil.example (or any Host) is refused with 409 naming the setting,
// and the server keeps running. With the setting, links use it whatever
// the Host says.
func TestLinksNeedPublicURL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real binary")
	}
	public := nonLoopbackIP(t)
	env := []string{"CREDITD_ADMIN_KEY=" + testAdminKey}
	srv := startServerArgs(t, t.TempDir(), []string{"--builtin-worker", "0", "--addr", net.JoinHostPort(public, "0")}, env...)
	if st, body := call(t, "PUT", srv.URL+"/v1/accounts/alice", testAdminKey, "", "{}"); st != 201 {
		t.Fatalf("create: %d %s", st, body)
	}
	linkURL := srv.URL + "/v1/accounts/alice/login-links"
	for _, host := range []string{"evil.example", "localhost", u(t, srv.URL).Host} {
		st, body := call(t, "POST", linkURL, testAdminKey, host, "{}")
		if st != http.StatusConflict || !strings.Contains(body, "CREDITD_PUBLIC_URL") || strings.Contains(body, "evil.example") {
			t.Errorf("Host %s on a public address: %d %s", host, st, body)
		}
	}
	srv.stop()

	// The same server on loopback: a loopback Host gets a link to itself,
	// another Host (say, passed on by a proxy) does not.
	srv = startServerArgs(t, t.TempDir(), []string{"--builtin-worker", "0"}, env...)
	call(t, "PUT", srv.URL+"/v1/accounts/alice", testAdminKey, "", "{}")
	linkURL = srv.URL + "/v1/accounts/alice/login-links"
	if st, body := call(t, "POST", linkURL, testAdminKey, "", "{}"); st != 201 || !strings.Contains(body, `"url":"`+srv.URL+"/app/login?token=ll_") {
		t.Errorf("loopback: %d %s", st, body)
	}
	if st, body := call(t, "POST", linkURL, testAdminKey, "evil.example", "{}"); st != http.StatusConflict || strings.Contains(body, "evil.example/") {
		t.Errorf("loopback with Host evil.example: %d %s", st, body)
	}
	srv.stop()

	// With CREDITD_PUBLIC_URL, on a public address.
	srv = startServerArgs(t, t.TempDir(), []string{"--builtin-worker", "0", "--addr", net.JoinHostPort(public, "0")},
		append(env, "CREDITD_PUBLIC_URL=https://app.example.com")...)
	call(t, "PUT", srv.URL+"/v1/accounts/alice", testAdminKey, "", "{}")
	st, body := call(t, "POST", srv.URL+"/v1/accounts/alice/login-links", testAdminKey, "evil.example", "{}")
	if st != 201 || !strings.Contains(body, `"url":"https://app.example.com/app/login?token=ll_`) {
		t.Errorf("with CREDITD_PUBLIC_URL: %d %s", st, body)
	}
}

// nonLoopbackIP returns an IPv4 address of this machine that is not a
// loopback one, or skips the test.
func nonLoopbackIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address on this machine")
	return ""
}

func u(t *testing.T, s string) *url.URL {
	p, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// call sends one request (key: bearer key or none; host: a Host header or
// the URL's) and returns the status and body.
func call(t *testing.T, method, url, key, host, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if host != "" {
		req.Host = host
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
