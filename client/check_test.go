package client_test

import (
	"net/http"
	"testing"

	"github.com/creditd/creditd/internal/contract"
)

// checkTransport checks every exchange of the client tests against the
// API's document (api/openapi.yaml): each request the client makes and
// each answer it decodes (contract.Transport, over kin-openapi).
func checkTransport(t *testing.T, rt http.RoundTripper) http.RoundTripper {
	return contract.Transport(t, rt)
}
