package publicurl_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/creditd/creditd/internal/publicurl"
	"github.com/creditd/creditd/ledger"
)

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "localhost:8080": true, "LOCALHOST.": true, "app.localhost:80": true,
		"127.0.0.1": true, "127.0.0.1:8080": true, "127.9.9.9:1": true, "[::1]:8080": true, "::1": true, "[::ffff:127.0.0.1]:80": true,
		"evil.example": false, "evil.example:8080": false, "localhost.evil.example": false, "evillocalhost": false,
		"10.0.0.1:8080": false, "[::2]:80": false, "0.0.0.0:8080": false, "": false,
	} {
		if got := publicurl.LoopbackHost(host); got != want {
			t.Errorf("LoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// request is a request that arrived on a connection whose local (server)
// address is local, with a Host header.
func request(local, host string, headers ...string) *http.Request {
	r := httptest.NewRequest("POST", "/v1/accounts/alice/login-links", nil)
	r.Host = host
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	addr, _ := net.ResolveTCPAddr("tcp", local)
	return r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, addr))
}

func TestFromRequest(t *testing.T) {
	for _, c := range []struct {
		name, local, host string
		headers           []string
		want              string
	}{
		{"LoopbackConnectionAndHost", "127.0.0.1:8080", "127.0.0.1:8080", nil, "http://127.0.0.1:8080"},
		{"Localhost", "[::1]:8080", "localhost:8080", nil, "http://localhost:8080"},
		{"BehindTLS", "127.0.0.1:8080", "localhost:8080", []string{"X-Forwarded-Proto", "https"}, "https://localhost:8080"},
		// A proxy on the same machine passes the client's Host along.
		{"LoopbackConnectionOtherHost", "127.0.0.1:8080", "evil.example", nil, ""},
		// Reached on a public address, whatever the Host says.
		{"PublicAddress", "10.1.2.3:8080", "evil.example", nil, ""},
		{"PublicAddressLoopbackHost", "10.1.2.3:8080", "localhost:8080", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := publicurl.FromRequest(request(c.local, c.host, c.headers...))
			if c.want != "" {
				if err != nil || got != c.want {
					t.Fatalf("got %q, %v; want %q", got, err, c.want)
				}
				return
			}
			if err == nil || ledger.ErrorCode(err) != ledger.EConflict {
				t.Fatalf("got %q, %v; want a conflict", got, err)
			}
			if msg := ledger.ErrorMessage(err); !strings.Contains(msg, publicurl.Env) {
				t.Fatalf("message does not name %s: %s", publicurl.Env, msg)
			}
		})
	}
	// Without a connection address (not a server request) nothing is trusted.
	r := httptest.NewRequest("POST", "/", nil)
	r.Host = "localhost"
	if _, err := publicurl.FromRequest(r); err == nil {
		t.Fatal("a request without a local address was trusted")
	}
}
