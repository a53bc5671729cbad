package client_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/creditd/creditd/internal/contract"
)

// checkTransport checks every exchange of the client tests against the
// API's document (api/openapi.yaml): each request the client makes and
// each answer it decodes (contract.Transport, over kin-openapi). It also
// records the operations the tests exercised (TestClientCoversTheDocument).
func checkTransport(t *testing.T, rt http.RoundTripper) http.RoundTripper {
	return recorder{contract.Transport(t, rt)}
}

// exercised are the requests the live-server tests sent.
var exercised struct {
	sync.Mutex
	reqs []*http.Request
}

type recorder struct{ next http.RoundTripper }

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	exercised.Lock()
	exercised.reqs = append(exercised.reqs, req.Clone(req.Context()))
	exercised.Unlock()
	return r.next.RoundTrip(req)
}
