package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/creditd/creditd/internal/contract"
)

// checkedProxy serves a reverse proxy to target whose every exchange is
// checked against the API's document, and returns its URL: a process
// pointed at it (examples/worker) is held to the contract without
// knowing it.
func checkedProxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = checkTransport(t, http.DefaultTransport)
	p.FlushInterval = -1
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL
}

// checkTransport checks every exchange against the API's document
// (api/openapi.yaml, with kin-openapi: contract.Transport).
func checkTransport(t *testing.T, rt http.RoundTripper) http.RoundTripper {
	return contract.Transport(t, rt)
}
