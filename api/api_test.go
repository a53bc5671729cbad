package api_test

import (
	"encoding/json"
	"testing"

	"github.com/creditd/creditd/api"
)

// TestJSON: the document converts to JSON that holds the YAML's members.
func TestJSON(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(api.JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi = %v", doc["openapi"])
	}
	for _, k := range []string{"paths", "webhooks", "components"} {
		if _, ok := doc[k].(map[string]any); !ok {
			t.Errorf("no %s", k)
		}
	}
}
