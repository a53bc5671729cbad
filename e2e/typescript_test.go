package e2e

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/contract"
)

// tsClientDir is the TypeScript client (clients/typescript).
const tsClientDir = "../clients/typescript"

// TestTypeScriptClient runs the TypeScript client's own test (node --test)
// against a live `creditd serve` with its built-in worker: it creates an
// account, runs a job to completion and, where the server has webhook
// endpoints, verifies a delivery with the standardwebhooks package. Before
// that it checks that the committed types (src/schema.d.ts) are what
// openapi-typescript makes of api/openapi.yaml now, and that the client
// and its test type-check (tsc --noEmit). A fresh clone gets its
// node_modules by `npm ci` from package-lock.json.
func TestTypeScriptClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = exec.LookPath("npm")
	}
	if err != nil {
		if os.Getenv("CREDITD_CI") == "1" {
			t.Fatalf("Node.js and npm are needed for the TypeScript client's test: %v", err)
		}
		t.Skipf("no Node.js or npm: %v", err)
	}
	run := func(timeout time.Duration, env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = tsClientDir
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s %v: %v\n%s", name, args, err, out.String())
			}
		case <-time.After(timeout):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%s %v: no answer in %v\n%s", name, args, timeout, out.String())
		}
		return out.String()
	}
	if _, err := os.Stat(filepath.Join(tsClientDir, "node_modules")); err != nil {
		run(5*time.Minute, nil, "npm", "ci", "--no-audit", "--no-fund")
	}
	bins := filepath.Join("node_modules", ".bin")

	// The committed types are current.
	fresh := filepath.Join(t.TempDir(), "schema.d.ts")
	run(2*time.Minute, nil, filepath.Join(bins, "openapi-typescript"), "../../api/openapi.yaml", "-o", fresh)
	want, err := os.ReadFile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(tsClientDir, "src", "schema.d.ts"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("clients/typescript/src/schema.d.ts is stale: run `npm run generate` in clients/typescript and commit it")
	}
	run(2*time.Minute, nil, filepath.Join(bins, "tsc"), "--noEmit", "-p", ".")

	// Real time and the built-in worker: the job runs as in production.
	s := launch(t, []string{"--builtin-worker", "1"}, "CREDITD_WEBHOOKS_ALLOW_PRIVATE_URLS=true")
	png := filepath.Join(t.TempDir(), "in.png")
	if err := os.WriteFile(png, quadrants(16, 16), 0o600); err != nil {
		t.Fatal(err)
	}
	// The client talks through a proxy that checks every exchange against
	// api/openapi.yaml.
	target, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(contract.Handler(t, httputil.NewSingleHostReverseProxy(target)))
	defer proxy.Close()
	// The webhook part runs where the server has webhook endpoints (asked
	// past the proxy: an unrouted path is no operation of the document).
	webhooks := "0"
	probe, err := http.NewRequest("GET", s.url+"/v1/webhook-endpoints", nil)
	if err != nil {
		t.Fatal(err)
	}
	probe.Header.Set("Authorization", "Bearer "+adminKey)
	res, err := http.DefaultClient.Do(probe)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		webhooks = "1"
	}
	out := run(3*time.Minute, []string{"CREDITD_URL=" + proxy.URL, "CREDITD_ADMIN_KEY=" + adminKey, "CREDITD_TEST_PNG=" + png,
		"CREDITD_TEST_WEBHOOKS=" + webhooks},
		node, "--test", "--test-reporter=spec", "test/")
	t.Logf("node --test:\n%s", out)
	s.verify()
}
