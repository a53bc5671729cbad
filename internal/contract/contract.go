// Package contract checks HTTP traffic against creditd's OpenAPI document
// (package api), for the test suites: a middleware for a server under test
// (Handler) and a client transport for a server in another process
// (Transport). Both report every mismatch to the test.
//
// What is checked, per exchange:
//   - the route is in the document, unless the server answered it 404 or
//     405 (tests ask for unknown paths and methods on purpose) with the
//     error object;
//   - the response: its status is listed for the operation, its
//     Content-Type is one the document gives for that status, and a JSON
//     body matches its schema (JSON Schema 2020-12, as OpenAPI 3.1 has it);
//   - the request: parameters and a JSON body match the operation. Tests
//     send invalid requests on purpose, so a request the document refuses
//     is a mismatch only when the server accepted it (a 2xx): the server
//     must refuse at least what the document refuses.
//
// Bodies that are not JSON (images, the backup archive, the event
// stream, metrics) are checked for their Content-Type only; a streamed
// body (text/event-stream) is passed through without being held.
//
// kin-openapi validates requests and responses; its loader also checks
// the document's structure (doc.Validate). Documents with `openapi:
// 3.1.x` are validated with JSON Schema 2020-12 (type arrays with "null",
// const, unevaluatedProperties).
package contract

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/creditd/creditd/api"
)

// TB is the part of testing.TB the checks use.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Cleanup(func())
}

// Load parses and validates the document.
func Load() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.YAML)
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	return doc, nil
}

var shared = sync.OnceValues(func() (*Checker, error) {
	doc, err := Load()
	if err != nil {
		return nil, err
	}
	// Match paths on any host: the servers under test listen on random
	// ports.
	doc.Servers = nil
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &Checker{Doc: doc, router: r}, nil
})

// Checker checks exchanges against the document.
type Checker struct {
	Doc    *openapi3.T
	router routers.Router
}

// Shared returns the process's Checker.
func Shared() (*Checker, error) { return shared() }

// Exchange is one request and its response as seen on the wire.
type Exchange struct {
	Req     *http.Request // its Body is not read; ReqBody holds it
	ReqBody []byte
	Status  int
	Header  http.Header
	Body    []byte // nil when not held (a stream)
}

// Check returns the mismatches of one exchange (nil: none).
func (c *Checker) Check(x Exchange) []string {
	var out []string
	ctx := context.Background()
	req := x.Req.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(x.ReqBody))
	req.ContentLength = int64(len(x.ReqBody))
	name := x.Req.Method + " " + x.Req.URL.RequestURI()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		if x.Status == http.StatusNotFound || x.Status == http.StatusMethodNotAllowed {
			if msg := c.checkErrorBody(x); msg != "" {
				out = append(out, name+": "+msg)
			}
			return out
		}
		return []string{fmt.Sprintf("%s: answered %d but the document has no such operation (%v)", name, x.Status, err)}
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		MultiError:            true,
		SkipSettingDefaults:   true,
	}
	if rb := route.Operation.RequestBody; rb != nil && rb.Value != nil && len(rb.Value.Content) == 1 && rb.Value.Content.Get("application/json") != nil {
		// A JSON-only route reads its body as JSON whatever its
		// Content-Type says (most clients send none).
		req.Header.Set("Content-Type", "application/json")
	}
	reqIn := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if !isJSON(req.Header.Get("Content-Type")) && len(x.ReqBody) > 0 {
		o := *opts
		o.ExcludeRequestBody = true
		reqIn.Options = &o
		if !declares(route.Operation.RequestBody, req.Header.Get("Content-Type")) && x.Status/100 == 2 {
			out = append(out, fmt.Sprintf("%s: request Content-Type %q is not in the document, yet answered %d", name, req.Header.Get("Content-Type"), x.Status))
		}
	}
	if err := openapi3filter.ValidateRequest(ctx, reqIn); err != nil && x.Status/100 == 2 {
		out = append(out, fmt.Sprintf("%s: the document refuses the request, the server answered %d: %v", name, x.Status, err))
	}
	ct := x.Header.Get("Content-Type")
	respOpts := *opts
	if x.Body == nil || !isJSON(ct) {
		respOpts.ExcludeResponseBody = true
	}
	respIn := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqIn, Status: x.Status, Header: x.Header,
		Body: io.NopCloser(bytes.NewReader(x.Body)), Options: &respOpts,
	}
	if err := openapi3filter.ValidateResponse(ctx, respIn); err != nil {
		out = append(out, fmt.Sprintf("%s: response %d does not match the document: %v\nbody: %.2000s", name, x.Status, err, x.Body))
	} else if respOpts.ExcludeResponseBody && len(ct) > 0 {
		if resp := route.Operation.Responses.Status(x.Status); resp != nil && resp.Value != nil && len(resp.Value.Content) > 0 {
			if resp.Value.Content.Get(mediaType(ct)) == nil {
				out = append(out, fmt.Sprintf("%s: response %d has Content-Type %q, which the document does not give", name, x.Status, ct))
			}
		}
	}
	return out
}

// checkErrorBody checks that x's body is the error object.
func (c *Checker) checkErrorBody(x Exchange) string {
	if x.Body == nil || !isJSON(x.Header.Get("Content-Type")) {
		return fmt.Sprintf("answered %d with Content-Type %q, not the JSON error object", x.Status, x.Header.Get("Content-Type"))
	}
	s := c.Doc.Components.Schemas["Error"]
	var v any
	if err := decodeJSON(x.Body, &v); err != nil {
		return "error body: " + err.Error()
	}
	if err := s.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Sprintf("error body does not match Error: %v: %s", err, x.Body)
	}
	return ""
}

func declares(rb *openapi3.RequestBodyRef, ct string) bool {
	return rb != nil && rb.Value != nil && rb.Value.Content.Get(mediaType(ct)) != nil
}

func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.TrimSpace(strings.ToLower(ct))
	}
	return mt
}

func isJSON(ct string) bool {
	mt := mediaType(ct)
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// streaming reports whether a response's body is a stream the checks must
// not hold.
func streaming(ct string) bool { return mediaType(ct) == "text/event-stream" }
