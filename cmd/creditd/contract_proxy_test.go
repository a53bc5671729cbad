package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/creditd/creditd/internal/contract"
)

// checkedProxy serves a reverse proxy to target whose every exchange is
// checked against the API's document (api/openapi.yaml, with kin-openapi:
// contract.Transport), and returns its URL: the client commands pointed at
// it are held to the contract.
func checkedProxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = contract.Transport(t, http.DefaultTransport)
	p.FlushInterval = -1
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL
}
