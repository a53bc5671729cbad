package worker

import (
	"context"
	"net/http"
	"time"

	"github.com/creditd/creditd/client"
	"github.com/creditd/creditd/imageops"
)

// LeaseWaitMax is the longest long-poll the protocol allows.
const LeaseWaitMax = client.LeaseWaitMax

// inputBytesMax bounds an input asset: the server refuses larger images.
const inputBytesMax = imageops.UploadBytesMax

// Client speaks the worker protocol to one creditd server over the typed
// API client (package client). Every call sends Authorization: Bearer Key.
// A non-2xx answer is an *APIError; anything else that fails (connection
// refused, timeout, unreadable body) is a transport error. The zero HTTP
// uses a client without a global timeout; each call is bounded by its own
// deadline instead (the lease long-poll by its wait plus 30 s). A Client
// is safe for concurrent use.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Key     string // the worker key (or the admin key)
	HTTP    *http.Client
}

// Job is a job as the server renders it.
type Job = client.Job

// Lease is a job handed to this worker until LeaseExpiresAt (the
// protocol's answer, jobs.Lease).
type Lease = client.Lease

// HeartbeatResult is the answer to a heartbeat (jobs.Heartbeat): whether
// the job was cancelled or its params changed, and the renewed lease.
type HeartbeatResult = client.Heartbeat

// Asset is a stored image (an uploaded output, here).
type Asset = client.Asset

// APIError is a non-2xx answer: {"error":{"code","message",...}}. Code is
// empty when the body was not a creditd error (a proxy's 502, say).
type APIError = client.Error

// IsConflict reports whether err is a 409: the lease was lost, the job was
// cancelled or its params changed before complete.
func IsConflict(err error) bool { return client.IsConflict(err) }

// Temporary reports whether err is worth retrying unchanged: a transport
// error (including a call's own timeout), a 5xx, 408 or 429. A cancelled
// context is not.
func Temporary(err error) bool { return client.Temporary(err) }

func (c *Client) api() *client.Client {
	return &client.Client{BaseURL: c.BaseURL, Key: c.Key, HTTP: c.HTTP, DownloadBytesMax: inputBytesMax}
}

// Lease long-polls for a job of one of actions, waiting up to wait (whole
// seconds, 0..30 s). It returns nil, nil when no job arrived in time.
func (c *Client) Lease(ctx context.Context, actions []string, wait time.Duration) (*Lease, error) {
	return c.api().LeaseJob(ctx, actions, wait)
}

// Heartbeat renews the lease on job id and reports whether the job was
// cancelled or its params changed. A 409 (IsConflict) means the lease was
// lost.
func (c *Client) Heartbeat(ctx context.Context, id, leaseID string) (*HeartbeatResult, error) {
	return c.api().Heartbeat(ctx, id, leaseID)
}

// Input downloads an input asset of job id under its lease and returns its
// bytes and Content-Type. The server serves only assets the job's params
// name (params.source, say) while leaseID holds the job: any other asset is
// a 404, and a lease that is no longer the job's a 409 (IsConflict).
func (c *Client) Input(ctx context.Context, id, leaseID, assetID string) ([]byte, string, error) {
	return c.api().JobInput(ctx, id, leaseID, assetID)
}

// UploadOutput stores one output image of job id under its lease and
// returns the asset; contentType is image/png, image/jpeg or image/webp.
func (c *Client) UploadOutput(ctx context.Context, id, leaseID string, data []byte, contentType string) (*Asset, error) {
	return c.api().UploadOutput(ctx, id, leaseID, data, contentType)
}

// Complete finishes job id with the uploaded outputs (asset ids); the
// server charges unit price × len(outputs). A repeat with the same outputs
// returns the same job. A 409 means the job was cancelled (nothing is
// charged), the lease was lost, or the params changed since the last
// heartbeat (heartbeat, then restart).
func (c *Client) Complete(ctx context.Context, id, leaseID string, outputs []string) (*Job, error) {
	return c.api().CompleteJob(ctx, id, leaseID, outputs)
}

// Fail reports a failed attempt of job id. The job is requeued when
// retryable and attempts remain, else it fails; nothing is charged.
func (c *Client) Fail(ctx context.Context, id, leaseID, msg string, retryable bool) (*Job, error) {
	return c.api().FailJob(ctx, id, leaseID, msg, retryable)
}
