package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/jobs"
)

// Request timeouts the Client applies when ctx has no earlier deadline.
const (
	// callTimeout bounds a JSON call (heartbeat, complete, fail).
	callTimeout = 30 * time.Second
	// transferTimeout bounds an input download or output upload.
	transferTimeout = 2 * time.Minute
	// LeaseWaitMax is the longest long-poll the protocol allows.
	LeaseWaitMax = 30 * time.Second
	// jsonBytesMax bounds a JSON response body.
	jsonBytesMax = 16 << 20
	// inputBytesMax bounds an input asset: the server refuses larger images.
	inputBytesMax = imageops.UploadBytesMax
)

// Client speaks the worker protocol to one creditd server. Every call sends
// Authorization: Bearer Key. A non-2xx answer is an *APIError; anything
// else that fails (connection refused, timeout, unreadable body) is a
// transport error. The zero HTTP uses a client without a global timeout;
// each call is bounded by its own deadline instead (the lease long-poll by
// its wait plus 30 s). A Client is safe for concurrent use.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Key     string // the worker key (or the admin key)
	HTTP    *http.Client
}

// Job is a job as the server renders it.
type Job struct {
	ID            string          `json:"id"`
	AccountID     string          `json:"account_id"`
	Action        string          `json:"action"`
	Category      string          `json:"category"`
	Quantity      int64           `json:"quantity"`
	Params        json.RawMessage `json:"params"`
	ParamsVersion int64           `json:"params_version"`
	Status        string          `json:"status"` // queued, running, succeeded, failed, cancelled, interrupted
	HoldID        string          `json:"hold_id"`
	Cost          int64           `json:"cost"`    // credits reserved
	Charged       int64           `json:"charged"` // credits captured on success
	Attempts      int64           `json:"attempts"`
	Outputs       []string        `json:"outputs"`
	Error         string          `json:"error,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
	FinishedAt    *time.Time      `json:"finished_at"`
}

// Lease is a job handed to this worker until LeaseExpiresAt (the
// protocol's answer, jobs.Lease).
type Lease = jobs.Lease[Job]

// HeartbeatResult is the answer to a heartbeat (jobs.Heartbeat): whether
// the job was cancelled or its params changed, and the renewed lease.
type HeartbeatResult = jobs.Heartbeat[Job]

// Asset is a stored image (an uploaded output, here).
type Asset struct {
	ID          string    `json:"id"`
	AccountID   string    `json:"account_id"`
	JobID       string    `json:"job_id,omitempty"`
	Kind        string    `json:"kind"`
	ContentType string    `json:"content_type"`
	Width       int64     `json:"width"`
	Height      int64     `json:"height"`
	Bytes       int64     `json:"bytes"`
	SHA256      string    `json:"sha256"`
	CreatedAt   time.Time `json:"created_at"`
}

// APIError is a non-2xx answer: {"error":{"code","message",...}}. Code is
// empty when the body was not a creditd error (a proxy's 502, say).
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("creditd: %d %s", e.Status, e.Message)
	}
	return fmt.Sprintf("creditd: %d %s: %s", e.Status, e.Code, e.Message)
}

// IsConflict reports whether err is a 409: the lease was lost, the job was
// cancelled or its params changed before complete.
func IsConflict(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusConflict
}

// Temporary reports whether err is worth retrying unchanged: a transport
// error (including a call's own timeout), a 5xx, 408 or 429. A cancelled
// context is not.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var e *APIError
	if errors.As(err, &e) {
		return e.Status >= 500 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests
	}
	return true
}

// Lease long-polls for a job of one of actions, waiting up to wait (whole
// seconds, 0..30 s). It returns nil, nil when no job arrived in time.
func (c *Client) Lease(ctx context.Context, actions []string, wait time.Duration) (*Lease, error) {
	wait = min(max(wait, 0), LeaseWaitMax)
	body := jobs.LeaseRequest{Actions: actions, WaitSeconds: int64(wait / time.Second)}
	var l Lease
	status, err := c.doJSON(ctx, wait+callTimeout, "POST", "/v1/worker/lease", body, &l)
	if err != nil || status == http.StatusNoContent {
		return nil, err
	}
	if l.Job.ID == "" || l.LeaseID == "" {
		return nil, fmt.Errorf("creditd: lease answer without a job or lease id")
	}
	return &l, nil
}

// Heartbeat renews the lease on job id and reports whether the job was
// cancelled or its params changed. A 409 (IsConflict) means the lease was
// lost.
func (c *Client) Heartbeat(ctx context.Context, id, leaseID string) (*HeartbeatResult, error) {
	var h HeartbeatResult
	if _, err := c.doJSON(ctx, callTimeout, "POST", jobPath(id, "heartbeat"), jobs.HeartbeatRequest{LeaseID: leaseID}, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Input downloads an input asset of job id under its lease and returns its
// bytes and Content-Type. The server serves only assets the job's params
// name (params.source, say) while leaseID holds the job: any other asset is
// a 404, and a lease that is no longer the job's a 409 (IsConflict).
func (c *Client) Input(ctx context.Context, id, leaseID, assetID string) ([]byte, string, error) {
	ctx, cancel := withTimeout(ctx, transferTimeout)
	defer cancel()
	path := jobPath(id, "inputs/"+url.PathEscape(assetID)) + "?lease_id=" + url.QueryEscape(leaseID)
	req, err := c.request(ctx, "GET", path, nil, "")
	if err != nil {
		return nil, "", err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, "", readAPIError(resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, inputBytesMax+1))
	if err != nil {
		return nil, "", err
	}
	if len(data) > inputBytesMax {
		return nil, "", fmt.Errorf("creditd: input %s exceeds %d bytes", assetID, inputBytesMax)
	}
	return data, resp.Header.Get("Content-Type"), nil
}

// UploadOutput stores one output image of job id under its lease and
// returns the asset; contentType is image/png, image/jpeg or image/webp.
func (c *Client) UploadOutput(ctx context.Context, id, leaseID string, data []byte, contentType string) (*Asset, error) {
	var a Asset
	path := jobPath(id, "outputs") + "?lease_id=" + url.QueryEscape(leaseID)
	if _, err := c.do(ctx, transferTimeout, "POST", path, data, contentType, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Complete finishes job id with the uploaded outputs (asset ids); the
// server charges unit price × len(outputs). A repeat with the same outputs
// returns the same job. A 409 means the job was cancelled (nothing is
// charged), the lease was lost, or the params changed since the last
// heartbeat (heartbeat, then restart).
func (c *Client) Complete(ctx context.Context, id, leaseID string, outputs []string) (*Job, error) {
	var j Job
	body := jobs.CompleteRequest{LeaseID: leaseID, Outputs: outputs}
	if _, err := c.doJSON(ctx, callTimeout, "POST", jobPath(id, "complete"), body, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// Fail reports a failed attempt of job id. The job is requeued when
// retryable and attempts remain, else it fails; nothing is charged.
func (c *Client) Fail(ctx context.Context, id, leaseID, msg string, retryable bool) (*Job, error) {
	var j Job
	body := jobs.FailRequest{LeaseID: leaseID, Error: msg, Retryable: retryable}
	if _, err := c.doJSON(ctx, callTimeout, "POST", jobPath(id, "fail"), body, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

func jobPath(id, rest string) string {
	return "/v1/worker/jobs/" + url.PathEscape(id) + "/" + rest
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

func (c *Client) request(ctx context.Context, method, path string, body []byte, contentType string) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req, nil
}

func (c *Client) doJSON(ctx context.Context, timeout time.Duration, method, path string, in, out any) (int, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	return c.do(ctx, timeout, method, path, b, "application/json", out)
}

// do sends one request and decodes a 2xx JSON answer into out (a 204 or an
// empty body leaves out alone).
func (c *Client) do(ctx context.Context, timeout time.Duration, method, path string, body []byte, contentType string, out any) (int, error) {
	ctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	req, err := c.request(ctx, method, path, body, contentType)
	if err != nil {
		return 0, err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, readAPIError(resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, jsonBytesMax))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == http.StatusNoContent || len(bytes.TrimSpace(b)) == 0 {
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, fmt.Errorf("creditd: %s %s: bad JSON answer: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

func readAPIError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(b, &env) == nil && env.Error.Code != "" {
		e.Code, e.Message = env.Error.Code, env.Error.Message
		return e
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
