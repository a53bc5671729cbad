// Package client is a typed Go client for creditd's /v1 HTTP API: accounts,
// grants, holds, batches, jobs, assets, prices, user credentials, feedback,
// the test clock, backups and the worker protocol. The CLI (cmd/creditd)
// and the worker package use it; the API's contract is the OpenAPI document
// (openapi.json), against which the client's tests validate every request
// and response it makes.
//
// Every call takes a context. A call whose context has no earlier deadline
// is bounded by the call's own timeout (CallTimeout, TransferTimeout, a
// lease's wait plus CallTimeout). A non-2xx answer is an *Error (its Code,
// Message, Status, extra Details and a parsed Retry-After); anything else
// that fails (connection refused, a timeout, an unreadable body) is a
// transport error. Response bodies are read up to a bound (JSONBytesMax
// for JSON, DownloadBytesMax for asset downloads); the backup is a stream
// the caller reads.
//
// Writes take options (WithIdempotencyKey) and report how the server
// answered (WithResponseInfo: status, Idempotent-Replayed). Lists answer a
// Page; Iterate walks all pages.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Bounds the Client applies.
const (
	// CallTimeout bounds a JSON call when ctx has no earlier deadline.
	CallTimeout = 30 * time.Second
	// TransferTimeout bounds an upload or a download of an asset.
	TransferTimeout = 2 * time.Minute
	// LeaseWaitMax is the longest long-poll the worker protocol allows.
	LeaseWaitMax = 30 * time.Second
	// JSONBytesMax bounds a JSON response body.
	JSONBytesMax = 16 << 20
	// DownloadBytesMaxDefault bounds an asset download when the Client's
	// DownloadBytesMax is 0.
	DownloadBytesMaxDefault = 64 << 20
	// errorBytesMax bounds an error body.
	errorBytesMax = 64 << 10
)

// Client talks to one creditd server. Every call sends Authorization:
// Bearer Key (the admin key, the worker key or a user token "ut_…"). The
// zero HTTP uses http.DefaultClient; calls are bounded by their own
// deadlines rather than a global timeout. A Client is safe for concurrent
// use once set up.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Key     string
	HTTP    *http.Client
	// DownloadBytesMax bounds an asset download (0: DownloadBytesMaxDefault).
	DownloadBytesMax int64
	// UserAgent, when set, is sent as User-Agent.
	UserAgent string
}

// New returns a client of the server at baseURL with key.
func New(baseURL, key string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Key: key}
}

// Error is a non-2xx answer: {"error":{"code","message",...}}. Code is
// empty when the body was not a creditd error (a proxy's 502, say); then
// Message is the start of the body.
type Error struct {
	Status  int
	Code    string
	Message string
	// Details are the error's other members (e.g. "limit",
	// "retry_after_seconds").
	Details map[string]any
	// RetryAfter is the answer's Retry-After (0 when absent).
	RetryAfter time.Duration
	// Method and Path are the request's ("GET", "/v1/accounts/a1").
	Method, Path string
	// Body is the error body as received (up to 64 KiB).
	Body []byte
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("creditd: %d %s", e.Status, e.Message)
	}
	return fmt.Sprintf("creditd: %d %s: %s", e.Status, e.Code, e.Message)
}

// Error codes the server answers with (Error.Code).
const (
	CodeInvalid             = "invalid_request"
	CodeUnauthenticated     = "unauthenticated"
	CodeForbidden           = "forbidden"
	CodeNotFound            = "not_found"
	CodeInsufficient        = "insufficient_credits"
	CodeConflict            = "conflict"
	CodeIdempotencyMismatch = "idempotency_mismatch"
	CodeQuotaExceeded       = "quota_exceeded"
	CodeUnavailable         = "unavailable"
	CodeInternal            = "internal"
	CodeTooLarge            = "request_too_large"
	CodeMethodNotAllowed    = "method_not_allowed"
	CodeTooManyRequests     = "too_many_requests"
)

// ErrorCode is err's Error.Code ("" when err is not an *Error).
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// StatusOf is err's Error.Status (0 when err is not an *Error).
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsNotFound reports whether err is a 404.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// IsConflict reports whether err is a 409 (for a worker: the lease was
// lost, the job was cancelled or its params changed before complete).
func IsConflict(err error) bool { return StatusOf(err) == http.StatusConflict }

// Temporary reports whether err is worth retrying unchanged: a transport
// error (including a call's own timeout), a 5xx, 408 or 429. A cancelled
// context is not.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status >= 500 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests
	}
	return true
}

// ResponseInfo is how the server answered a call (WithResponseInfo).
type ResponseInfo struct {
	Status int
	// Replayed: the answer was replayed for a repeated Idempotency-Key.
	Replayed bool
	Header   http.Header
}

// Option adjusts one call.
type Option func(*callOptions)

type callOptions struct {
	header http.Header
	query  url.Values
	info   *ResponseInfo
}

// WithQuery sets a query parameter of the request, over the method's own
// (a list's "limit" exactly as given, say, or a parameter this client
// does not know yet).
func WithQuery(name, value string) Option {
	return func(o *callOptions) {
		if o.query == nil {
			o.query = url.Values{}
		}
		o.query.Set(name, value)
	}
}

// WithIdempotencyKey sends Idempotency-Key: key; the server answers a
// repeat of the same request with the first answer (ResponseInfo.Replayed)
// and a reuse with another body with a 409.
func WithIdempotencyKey(key string) Option {
	return WithHeader("Idempotency-Key", key)
}

// WithHeader sets a request header.
func WithHeader(name, value string) Option {
	return func(o *callOptions) {
		if o.header == nil {
			o.header = http.Header{}
		}
		o.header.Set(name, value)
	}
}

// WithResponseInfo fills info with the answer's status and headers.
func WithResponseInfo(info *ResponseInfo) Option {
	return func(o *callOptions) { o.info = info }
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) downloadMax() int64 {
	if c.DownloadBytesMax > 0 {
		return c.DownloadBytesMax
	}
	return DownloadBytesMaxDefault
}

// withTimeout bounds ctx by d unless it has an earlier deadline; d <= 0
// leaves ctx unbounded.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// call is one request.
type call struct {
	method, path string
	body         []byte
	contentType  string
	timeout      time.Duration
	opts         []Option
}

// send sends a call and returns the 2xx response (the caller closes its
// body and the cancel); a non-2xx answer is an *Error.
func (c *Client) send(ctx context.Context, cl call) (*http.Response, context.CancelFunc, error) {
	var o callOptions
	for _, fn := range cl.opts {
		fn(&o)
	}
	ctx, cancel := withTimeout(ctx, cl.timeout)
	var rd io.Reader
	if cl.body != nil {
		rd = bytes.NewReader(cl.body)
	}
	target := strings.TrimRight(c.BaseURL, "/") + cl.path
	if len(o.query) > 0 {
		u, err := url.Parse(target)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		q := u.Query()
		for k, v := range o.query {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		target = u.String()
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, target, rd)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	req.Header.Set("Accept", "application/json")
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	if cl.contentType != "" {
		req.Header.Set("Content-Type", cl.contentType)
	}
	for k, v := range o.header { // the call's own headers win
		req.Header[k] = v
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	if o.info != nil {
		*o.info = ResponseInfo{Status: resp.StatusCode, Replayed: resp.Header.Get("Idempotent-Replayed") == "true", Header: resp.Header}
	}
	if resp.StatusCode/100 != 2 {
		defer cancel()
		defer resp.Body.Close()
		return nil, nil, readError(resp, cl.method, cl.path)
	}
	return resp, cancel, nil
}

// do sends a call with a JSON body (in; nil: none) and decodes a 2xx JSON
// answer into out (nil, a 204 or an empty body leave out alone). It
// returns the status.
func (c *Client) do(ctx context.Context, method, path string, in, out any, opts []Option) (int, error) {
	cl := call{method: method, path: path, timeout: CallTimeout, opts: opts}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		cl.body, cl.contentType = b, "application/json"
	}
	return c.doCall(ctx, cl, out)
}

func (c *Client) doCall(ctx context.Context, cl call, out any) (int, error) {
	resp, cancel, err := c.send(ctx, cl)
	if err != nil {
		return StatusOf(err), err
	}
	defer cancel()
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, JSONBytesMax+1))
	if err != nil {
		return resp.StatusCode, err
	}
	if len(b) > JSONBytesMax {
		return resp.StatusCode, fmt.Errorf("creditd: %s %s: answer exceeds %d bytes", cl.method, cl.path, JSONBytesMax)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent || len(bytes.TrimSpace(b)) == 0 {
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, fmt.Errorf("creditd: %s %s: bad JSON answer: %w", cl.method, cl.path, err)
	}
	return resp.StatusCode, nil
}

func readError(resp *http.Response, method, path string) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, errorBytesMax))
	e := &Error{Status: resp.StatusCode, Method: method, Path: path, Body: b}
	if v := resp.Header.Get("Retry-After"); v != "" {
		if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && secs >= 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	var env struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &env) == nil && env.Error != nil {
		_ = json.Unmarshal(env.Error["code"], &e.Code)
		_ = json.Unmarshal(env.Error["message"], &e.Message)
		for k, raw := range env.Error {
			if k == "code" || k == "message" {
				continue
			}
			var v any
			if json.Unmarshal(raw, &v) == nil {
				if e.Details == nil {
					e.Details = map[string]any{}
				}
				e.Details[k] = v
			}
		}
		if e.Code != "" {
			return e
		}
	}
	e.Message = strings.TrimSpace(string(b))
	if len(e.Message) > 200 {
		e.Message = e.Message[:200] + "…"
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}
