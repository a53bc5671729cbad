package client_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/creditd/creditd/internal/contract"
)

// notCovered are the document's /v1 operations the client does not call,
// and why.
var notCovered = map[string]string{
	"POST /v1/webhooks/stripe": "Stripe's webhook, not a client's",
}

// TestClientCoversTheDocument: every /v1 operation of the document was
// called by the client's tests (or is listed in notCovered): against a
// live server, and the webhook endpoints and event log against a stand-in
// (client_webhooks_test.go). It reads what
// they recorded, so it runs after them (this file comes after client_test.go).
func TestClientCoversTheDocument(t *testing.T) {
	exercised.Lock()
	reqs := slices.Clone(exercised.reqs)
	exercised.Unlock()
	if len(reqs) == 0 {
		t.Skip("run with the client's live-server tests (go test ./client)")
	}
	doc, err := contract.Load()
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = nil // any host: the test servers listen on random ports
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, req := range reqs {
		if route, _, err := router.FindRoute(req); err == nil {
			seen[route.Method+" "+route.Path] = true
		}
	}
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/v1/") {
			continue
		}
		for method := range item.Operations() {
			op := method + " " + path
			if seen[op] || notCovered[op] != "" {
				continue
			}
			t.Errorf("the client tests never call %s", op)
		}
	}
}
