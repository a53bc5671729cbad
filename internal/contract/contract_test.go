package contract_test

import (
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
