package contract_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/creditd/creditd/internal/contract"
)

// TestDocumentValid: the document loads and validates as OpenAPI 3.1.
func TestDocumentValid(t *testing.T) {
	doc, err := contract.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !doc.IsOpenAPI31OrLater() || doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if len(doc.Webhooks) == 0 {
		t.Fatal("no webhooks")
	}
}

func exchange(method, target, reqBody string, status int, ctype, body string) contract.Exchange {
	req := httptest.NewRequest(method, target, strings.NewReader(reqBody))
	h := http.Header{}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	return contract.Exchange{Req: req, ReqBody: []byte(reqBody), Status: status, Header: h, Body: []byte(body)}
}

// TestCheckFindsMismatches: the checks catch what drifts, and pass what
// matches.
func TestCheckFindsMismatches(t *testing.T) {
	c, err := contract.Shared()
	if err != nil {
		t.Fatal(err)
	}
	const account = `{"id":"alice","plan":"free","timezone":"UTC","created_at":"2026-06-15T10:00:00Z","updated_at":"2026-06-15T10:00:00Z"}`
	for _, tc := range []struct {
		name string
		x    contract.Exchange
		want string // a mismatch containing it; "" none
	}{
		{"matches", exchange("GET", "/v1/accounts/alice", "", 200, "application/json", account), ""},
		{"undocumented member", exchange("GET", "/v1/accounts/alice", "", 200, "application/json",
			strings.Replace(account, `"plan"`, `"colour":"red","plan"`, 1)), "colour"},
		{"missing member", exchange("GET", "/v1/accounts/alice", "", 200, "application/json",
			strings.Replace(account, `"timezone":"UTC",`, "", 1)), "timezone"},
		{"undocumented status", exchange("GET", "/v1/accounts/alice", "", 418, "application/json", `{"error":{"code":"internal","message":"x"}}`), "418"},
		{"unknown error code", exchange("GET", "/v1/accounts/alice", "", 404, "application/json", `{"error":{"code":"gone","message":"x"}}`), "gone"},
		{"undocumented route", exchange("GET", "/v1/nothing", "", 200, "application/json", `{}`), "no such operation"},
		{"unknown route answered 404", exchange("GET", "/v1/nothing", "", 404, "application/json", `{"error":{"code":"not_found","message":"no route"}}`), ""},
		{"refused request answered 400", exchange("PUT", "/v1/accounts/alice", `{"plan":"gold"}`, 400, "application/json", `{"error":{"code":"invalid_request","message":"x"}}`), ""},
		{"refused request accepted", exchange("PUT", "/v1/accounts/alice", `{"plan":"gold"}`, 200, "application/json", account), "refuses the request"},
		{"undocumented content type", exchange("GET", "/v1/accounts/alice", "", 200, "text/html", "<p>"), "text/html"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(c.Check(tc.x), "\n")
			switch {
			case tc.want == "" && got != "":
				t.Fatalf("mismatches: %s", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Fatalf("want a mismatch naming %q, got %q", tc.want, got)
			}
		})
	}
}
