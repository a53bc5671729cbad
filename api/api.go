// Package api holds creditd's HTTP API contract: the OpenAPI 3.1 document
// openapi.yaml, written by hand beside the code it describes. The server
// serves it as JSON at GET /openapi.json (package httpapi), the clients are
// generated from it (clients/typescript), and the test suites check every
// request and response they make against it (internal/contract), so the
// document cannot drift from the routes.
package api

import (
	_ "embed"
	"sync"
)

// YAML is the document as written.
//
//go:embed openapi.yaml
var YAML []byte

// JSON returns the document as JSON, with the members in the order they
// are written. It panics if the embedded document is not valid YAML (a
// test holds it to that).
var JSON = sync.OnceValue(func() []byte {
	b, err := yamlToJSON(YAML)
	if err != nil {
		panic("api: openapi.yaml: " + err.Error())
	}
	return b
})
