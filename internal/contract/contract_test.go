package contract_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/creditd/creditd/api"
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
		{"event unlike its webhook payload", exchange("GET", "/v1/events/evt_1", "", 200, "application/json",
			`{"id":"evt_1","type":"account.created","timestamp":"2026-06-15T10:00:00Z","account_id":"alice","data":{"account_id":"alice"}}`), "webhook payload"},
		{"event like its webhook payload", exchange("GET", "/v1/events/evt_1", "", 200, "application/json",
			`{"id":"evt_1","type":"account.created","timestamp":"2026-06-15T10:00:00Z","account_id":"alice","data":{"account_id":"alice","account":`+account+`}}`), ""},
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

// TestSchemasAreJSONSchema2020: every schema of the document (components,
// and through their references everything the operations and webhooks
// use) compiles as JSON Schema 2020-12, the dialect of OpenAPI 3.1, and is
// checked against that draft's meta-schema on the way.
func TestSchemasAreJSONSchema2020(t *testing.T) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(bytes.ReplaceAll(api.JSON(), []byte(`"#/components/schemas/`), []byte(`"#/$defs/`))))
	if err != nil {
		t.Fatal(err)
	}
	schemas := doc.(map[string]any)["components"].(map[string]any)["schemas"].(map[string]any)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("mem:///openapi.json", map[string]any{"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": schemas}); err != nil {
		t.Fatal(err)
	}
	if len(schemas) < 50 {
		t.Fatalf("only %d schemas", len(schemas))
	}
	for name := range schemas {
		if _, err := c.Compile("mem:///openapi.json#/$defs/" + name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
