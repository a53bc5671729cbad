package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/creditd/creditd/ledger"
)

// TestTrustedProxiesSetting: `creditd serve` takes CREDITD_TRUSTED_PROXIES
// from the environment (behind 127.0.0.1, X-Forwarded-For names the client
// whose failures are throttled) and refuses to start on a value it cannot
// parse.
func TestTrustedProxiesSetting(t *testing.T) {
	s := launch(t, []string{"--test-clock", "--builtin-worker", "0"}, "CREDITD_TRUSTED_PROXIES=127.0.0.1")
	wrong := func(client string) int {
		r, _ := http.NewRequest("GET", s.url+"/v1/prices", nil)
		r.Header.Set("Authorization", "Bearer sk_wrong")
		r.Header.Set("X-Forwarded-For", client)
		res, err := apiClient(t).Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusTooManyRequests && res.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
		return res.StatusCode
	}
	for i := range ledger.DefaultConfig().Limits.AuthFailuresBurstPerAddress {
		if st := wrong("198.51.100.7"); st != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, st)
		}
	}
	if st := wrong("198.51.100.7"); st != http.StatusTooManyRequests {
		t.Fatalf("after the burst: %d", st)
	}
	if st := wrong("198.51.100.8"); st != http.StatusUnauthorized {
		t.Fatalf("another client behind the proxy: %d", st)
	}
	s.admin(200, "GET", "/v1/prices", nil)

	creditd, _ := binaries(t)
	cmd := exec.Command(creditd, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir())
	cmd.Env = append(os.Environ(), "CREDITD_ADMIN_KEY="+adminKey, "CREDITD_TRUSTED_PROXIES=10.0.0.0/8,proxy.internal")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `CREDITD_TRUSTED_PROXIES: "proxy.internal" is not an IP address`) {
		t.Fatalf("serve with a bad CREDITD_TRUSTED_PROXIES: %v\n%s", err, out)
	}
}
