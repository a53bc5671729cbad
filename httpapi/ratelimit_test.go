package httpapi_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/httpx"
	"github.com/creditd/creditd/ledger"
)

// retryAfter is a 429's Retry-After in seconds, checked to agree with the
// body's retry_after_seconds and its code.
func retryAfter(t *testing.T, r resp) int64 {
	t.Helper()
	if r.status != http.StatusTooManyRequests || r.errCode() != "too_many_requests" {
		t.Fatalf("want 429 too_many_requests, got %d: %s", r.status, r.raw)
	}
	secs, err := strconv.ParseInt(r.header.Get("Retry-After"), 10, 64)
	if err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if got := r.num("error.retry_after_seconds"); got != secs {
		t.Fatalf("retry_after_seconds %d, Retry-After %d", got, secs)
	}
	return secs
}

// TestAuthFailureThrottle is issue 19's item 8: 3,000 wrong keys from one
// address went through at full speed. Now the address's failures beyond
// the burst answer 429, while valid credentials from that same address
// still get through.
func TestAuthFailureThrottle(t *testing.T) {
	e := newEnv(t)
	burst := e.cfg.Limits.AuthFailuresBurstPerAddress
	e.createAccount("alice", nil)
	alice := e.userToken("alice")
	expired := e.must(201, "POST", "/v1/accounts/alice/tokens", map[string]any{"ttl_seconds": 1}).str("token")
	e.advance(2 * time.Second)

	// No credential at all is not a failed attempt: it never counts.
	for range 2 * burst {
		if r := e.do("GET", "/v1/accounts/alice/balance", nil, hdr{"Authorization": ""}); r.status != 401 {
			t.Fatalf("no key: %d %s", r.status, r.raw)
		}
	}
	wrong := []string{"sk_wrong", alice[:len(alice)-2] + "xx", expired, "ut_abc.def"}
	unauthorized, limited := 0, 0
	for i := range 3000 {
		r := e.as(wrong[i%len(wrong)], 0, "GET", "/v1/accounts/alice/balance", nil)
		switch r.status {
		case 401:
			if limited > 0 {
				t.Fatalf("attempt %d: 401 after 429s", i)
			}
			unauthorized++
		case 429:
			if limited == 0 {
				retryAfter(t, r)
			}
			limited++
		default:
			t.Fatalf("attempt %d: %d %s", i, r.status, r.raw)
		}
		// A valid key and a valid token from the same address are never
		// throttled by those failures.
		if i%500 == 499 {
			e.must(200, "GET", "/v1/accounts/alice/balance", nil)
			e.as(alice, 200, "GET", "/v1/accounts/alice/balance", nil)
		}
	}
	if unauthorized != burst || limited != 3000-burst {
		t.Fatalf("%d answered 401 and %d 429, want %d and %d", unauthorized, limited, burst, 3000-burst)
	}

	// The bucket refills on the engine's clock.
	r := e.as("sk_wrong", 429, "GET", "/v1/accounts/alice/balance", nil)
	e.advance(time.Duration(retryAfter(t, r)) * time.Second)
	e.as("sk_wrong", 401, "GET", "/v1/accounts/alice/balance", nil)
	e.as("sk_wrong", 429, "GET", "/v1/accounts/alice/balance", nil)
}

// TestUserRateLimit: one account's user tokens share a request rate; over
// it they get 429 with Retry-After, other accounts and the admin key are
// unaffected, and the bucket refills as the clock advances.
func TestUserRateLimit(t *testing.T) {
	e := newEnv(t)
	l := e.cfg.Limits
	for _, id := range []string{"alice", "bob"} {
		e.createAccount(id, nil)
	}
	alice1, alice2, bob := e.userToken("alice"), e.userToken("alice"), e.userToken("bob")
	for i := range l.RequestsBurstPerUser {
		e.as([]string{alice1, alice2}[i%2], 200, "GET", "/v1/accounts/alice/balance", nil)
	}
	// Both of alice's tokens are over the limit, on any route, even ones
	// they may not use.
	secs := retryAfter(t, e.as(alice1, 429, "GET", "/v1/accounts/alice/balance", nil))
	if want := int64(1); secs != want { // one request at 20/s is 50 ms away
		t.Fatalf("Retry-After %d, want %d", secs, want)
	}
	retryAfter(t, e.as(alice2, 429, "POST", "/v1/holds", map[string]any{}))
	// Others are not.
	e.as(bob, 200, "GET", "/v1/accounts/bob/balance", nil)
	e.must(200, "GET", "/v1/accounts/alice/balance", nil)

	e.advance(time.Second)
	for range l.RequestsPerSecondPerUser {
		e.as(alice1, 200, "GET", "/v1/prices", nil)
	}
	e.as(alice2, 429, "GET", "/v1/prices", nil)
}

// TestRateLimitsOff: a rate of 0 turns a limit off.
func TestRateLimitsOff(t *testing.T) {
	cfg := ledger.DefaultConfig()
	cfg.Limits.RequestsPerSecondPerUser = 0
	cfg.Limits.AuthFailuresPerMinutePerAddress = 0
	e := newEnv(t, withConfig(cfg))
	e.createAccount("alice", nil)
	alice := e.userToken("alice")
	for range 3 * cfg.Limits.RequestsBurstPerUser {
		e.as(alice, 200, "GET", "/v1/prices", nil)
		e.as("sk_wrong", 401, "GET", "/v1/prices", nil)
	}
}

// TestTrustedProxies: behind a trusted proxy X-Forwarded-For names the
// client whose failures count; from any other peer it is ignored.
func TestTrustedProxies(t *testing.T) {
	wrong := func(e *env, xff string) resp {
		return e.as("sk_wrong", 0, "GET", "/v1/prices", nil, hdr{"X-Forwarded-For": xff})
	}
	exhaust := func(t *testing.T, e *env, xff string) {
		t.Helper()
		for range e.cfg.Limits.AuthFailuresBurstPerAddress {
			if r := wrong(e, xff); r.status != 401 {
				t.Fatalf("%s: %d before the burst was spent", xff, r.status)
			}
		}
		if r := wrong(e, xff); r.status != 429 {
			t.Fatalf("%s: %d after the burst, want 429", xff, r.status)
		}
	}

	t.Run("BehindATrustedProxyTheForwardedClientCounts", func(t *testing.T) {
		proxies, err := httpx.ParseTrustedProxies("127.0.0.1, 10.0.0.0/8")
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, withAPI(func(s *httpapi.Server) { s.TrustedProxies = proxies }))
		exhaust(t, e, "198.51.100.7")
		// Another client behind the same proxy is not throttled.
		if r := wrong(e, "198.51.100.8"); r.status != 401 {
			t.Fatalf("another client: %d", r.status)
		}
		// The right-most untrusted address decides: what the client put
		// in front is ignored, trusted hops behind it are skipped.
		if r := wrong(e, "203.0.113.1, 198.51.100.7, 10.1.2.3"); r.status != 429 {
			t.Fatalf("spoofed prefix: %d", r.status)
		}
		// One IPv6 client is its /64.
		exhaust(t, e, "2001:db8:1:2::1")
		if r := wrong(e, "2001:db8:1:2::ffff"); r.status != 429 {
			t.Fatalf("same /64: %d", r.status)
		}
		if r := wrong(e, "2001:db8:1:3::1"); r.status != 401 {
			t.Fatalf("another /64: %d", r.status)
		}
	})

	t.Run("WithoutTrustedProxiesTheHeaderIsIgnored", func(t *testing.T) {
		e := newEnv(t)
		for i := range e.cfg.Limits.AuthFailuresBurstPerAddress {
			if r := wrong(e, "198.51.100."+strconv.Itoa(i)); r.status != 401 {
				t.Fatalf("%d: %d", i, r.status)
			}
		}
		if r := wrong(e, "198.51.100.250"); r.status != 429 {
			t.Fatalf("a new X-Forwarded-For escaped the throttle: %d", r.status)
		}
	})
}
