package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

func esc(id string) string { return url.PathEscape(id) }

func accountPath(id, rest string) string {
	p := "/v1/accounts/" + esc(id)
	if rest != "" {
		p += "/" + rest
	}
	return p
}

// query adds a page request (and extra parameters) to path.
func query(path string, p ListParams, extra url.Values) string {
	q := url.Values{}
	for k, v := range extra {
		q[k] = v
	}
	if p.Limit != 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.Cursor != "" {
		q.Set("cursor", p.Cursor)
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// Accounts.

// PutAccount creates the account id (201, with its sign-up credits) or
// changes its plan, time zone or low-balance line (200).
func (c *Client) PutAccount(ctx context.Context, id string, req PutAccountRequest, opts ...Option) (*Account, error) {
	var a Account
	if _, err := c.do(ctx, "PUT", accountPath(id, ""), req, &a, opts); err != nil {
		return nil, err
	}
	return &a, nil
}

// Account gets an account.
func (c *Client) Account(ctx context.Context, id string, opts ...Option) (*Account, error) {
	var a Account
	if _, err := c.do(ctx, "GET", accountPath(id, ""), nil, &a, opts); err != nil {
		return nil, err
	}
	return &a, nil
}

// Balance gets an account's balance.
func (c *Client) Balance(ctx context.Context, id string, opts ...Option) (*Balance, error) {
	var b Balance
	if _, err := c.do(ctx, "GET", accountPath(id, "balance"), nil, &b, opts); err != nil {
		return nil, err
	}
	return &b, nil
}

// Quote says what quantity × action would cost account id now (quantity
// 0: one).
func (c *Client) Quote(ctx context.Context, id, action string, quantity int64, opts ...Option) (*Quote, error) {
	q := url.Values{"action": {action}}
	if quantity != 0 {
		q.Set("quantity", strconv.FormatInt(quantity, 10))
	}
	var out Quote
	if _, err := c.do(ctx, "GET", accountPath(id, "quote")+"?"+q.Encode(), nil, &out, opts); err != nil {
		return nil, err
	}
	return &out, nil
}

// Entries lists a page of an account's ledger entries, newest first.
func (c *Client) Entries(ctx context.Context, id string, p ListParams, opts ...Option) (*Page[Entry], error) {
	return getPage[Entry](ctx, c, query(accountPath(id, "entries"), p, nil), opts)
}

// Grant grants credits to account id (201; 200 for a repeated reference).
func (c *Client) Grant(ctx context.Context, id string, req GrantRequest, opts ...Option) (*Grant, error) {
	var g Grant
	if _, err := c.do(ctx, "POST", accountPath(id, "grants"), req, &g, opts); err != nil {
		return nil, err
	}
	return &g, nil
}

// Holds.

// Reserve holds credits for an action (201).
func (c *Client) Reserve(ctx context.Context, req ReserveRequest, opts ...Option) (*Hold, error) {
	return c.hold(ctx, "POST", "/v1/holds", req, opts)
}

// Hold gets a hold.
func (c *Client) Hold(ctx context.Context, id string, opts ...Option) (*Hold, error) {
	return c.hold(ctx, "GET", "/v1/holds/"+esc(id), nil, opts)
}

// Capture charges a pending hold: quantity units (nil: the hold's own).
func (c *Client) Capture(ctx context.Context, id string, quantity *int64, opts ...Option) (*Hold, error) {
	return c.hold(ctx, "POST", "/v1/holds/"+esc(id)+"/capture", struct {
		Quantity *int64 `json:"quantity,omitempty"`
	}{quantity}, opts)
}

// Release gives a pending hold's credits back.
func (c *Client) Release(ctx context.Context, id, reason string, opts ...Option) (*Hold, error) {
	return c.hold(ctx, "POST", "/v1/holds/"+esc(id)+"/release", struct {
		Reason string `json:"reason,omitempty"`
	}{reason}, opts)
}

// Extend moves a pending hold's expiry to ttl from now (0: the default).
func (c *Client) Extend(ctx context.Context, id string, ttl time.Duration, opts ...Option) (*Hold, error) {
	var body struct {
		TTLSeconds *int64 `json:"ttl_seconds,omitempty"`
	}
	if ttl > 0 {
		s := int64(ttl / time.Second)
		body.TTLSeconds = &s
	}
	return c.hold(ctx, "POST", "/v1/holds/"+esc(id)+"/extend", body, opts)
}

func (c *Client) hold(ctx context.Context, method, path string, in any, opts []Option) (*Hold, error) {
	var h Hold
	if _, err := c.do(ctx, method, path, in, &h, opts); err != nil {
		return nil, err
	}
	return &h, nil
}

// Batch runs operations (independent, not atomic) and answers each one's
// result in order. A batch takes no Idempotency-Key: give each operation
// its own.
func (c *Client) Batch(ctx context.Context, ops []BatchOp, opts ...Option) ([]BatchResult, error) {
	var out struct {
		Results []BatchResult `json:"results"`
	}
	if _, err := c.do(ctx, "POST", "/v1/batch", struct {
		Operations []BatchOp `json:"operations"`
	}{ops}, &out, opts); err != nil {
		return nil, err
	}
	return out.Results, nil
}

// Jobs.

// CreateJob queues a job (201), reserving its cost.
func (c *Client) CreateJob(ctx context.Context, req JobRequest, opts ...Option) (*Job, error) {
	return c.job(ctx, "POST", "/v1/jobs", req, opts)
}

// Job gets a job.
func (c *Client) Job(ctx context.Context, id string, opts ...Option) (*Job, error) {
	return c.job(ctx, "GET", "/v1/jobs/"+esc(id), nil, opts)
}

// Jobs lists a page of an account's jobs, newest first.
func (c *Client) Jobs(ctx context.Context, accountID string, p ListParams, opts ...Option) (*Page[Job], error) {
	return getPage[Job](ctx, c, query(accountPath(accountID, "jobs"), p, nil), opts)
}

// CancelJob cancels a queued or running job; its hold is released.
func (c *Client) CancelJob(ctx context.Context, id string, opts ...Option) (*Job, error) {
	return c.job(ctx, "POST", "/v1/jobs/"+esc(id)+"/cancel", struct{}{}, opts)
}

// PatchJob changes a queued or running job's params.
func (c *Client) PatchJob(ctx context.Context, id string, params json.RawMessage, opts ...Option) (*Job, error) {
	return c.job(ctx, "PATCH", "/v1/jobs/"+esc(id), struct {
		Params json.RawMessage `json:"params"`
	}{params}, opts)
}

func (c *Client) job(ctx context.Context, method, path string, in any, opts []Option) (*Job, error) {
	var j Job
	if _, err := c.do(ctx, method, path, in, &j, opts); err != nil {
		return nil, err
	}
	return &j, nil
}

// Assets.

// UploadAsset stores an image (image/png, image/jpeg or image/webp) for
// account id (201).
func (c *Client) UploadAsset(ctx context.Context, accountID string, data []byte, contentType string, opts ...Option) (*Asset, error) {
	return c.upload(ctx, accountPath(accountID, "assets"), data, contentType, opts)
}

func (c *Client) upload(ctx context.Context, path string, data []byte, contentType string, opts []Option) (*Asset, error) {
	if data == nil {
		data = []byte{}
	}
	var a Asset
	if _, err := c.doCall(ctx, call{method: "POST", path: path, body: data, contentType: contentType, timeout: TransferTimeout, opts: opts}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Assets lists a page of an account's assets, newest first.
func (c *Client) Assets(ctx context.Context, accountID string, p ListParams, opts ...Option) (*Page[Asset], error) {
	return getPage[Asset](ctx, c, query(accountPath(accountID, "assets"), p, nil), opts)
}

// GetAsset fetches an asset's bytes (up to DownloadBytesMax).
func (c *Client) GetAsset(ctx context.Context, id string, opts ...Option) (*AssetContent, error) {
	return c.download(ctx, "/v1/assets/"+esc(id), id, opts)
}

// DownloadAsset fetches an asset's bytes as an attachment (?download=1),
// with its file name.
func (c *Client) DownloadAsset(ctx context.Context, id string, opts ...Option) (*AssetContent, error) {
	return c.download(ctx, "/v1/assets/"+esc(id)+"?download=1", id, opts)
}

// DeleteAsset deletes an asset (a job's outputs included).
func (c *Client) DeleteAsset(ctx context.Context, id string, opts ...Option) (*Deleted, error) {
	var d Deleted
	if _, err := c.do(ctx, "DELETE", "/v1/assets/"+esc(id), nil, &d, opts); err != nil {
		return nil, err
	}
	return &d, nil
}

func (c *Client) download(ctx context.Context, path, what string, opts []Option) (*AssetContent, error) {
	resp, cancel, err := c.send(ctx, call{method: "GET", path: path, timeout: TransferTimeout, opts: opts})
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	limit := c.downloadMax()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("creditd: asset %s exceeds %d bytes", what, limit)
	}
	out := &AssetContent{Data: data, ContentType: resp.Header.Get("Content-Type"), ETag: resp.Header.Get("ETag")}
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		out.Filename = params["filename"]
	}
	return out, nil
}

// Prices lists the actions' prices and the grant sources.
func (c *Client) Prices(ctx context.Context, opts ...Option) (*PriceList, error) {
	var p PriceList
	if _, err := c.do(ctx, "GET", "/v1/prices", nil, &p, opts); err != nil {
		return nil, err
	}
	return &p, nil
}

// User credentials.

// CreateLoginLink makes a sign-in link to the web app for account id.
func (c *Client) CreateLoginLink(ctx context.Context, id string, opts ...Option) (*LoginLink, error) {
	var l LoginLink
	if _, err := c.do(ctx, "POST", accountPath(id, "login-links"), struct{}{}, &l, opts); err != nil {
		return nil, err
	}
	return &l, nil
}

// CreateUserToken makes a user token for account id, valid for ttl (0:
// the server's default).
func (c *Client) CreateUserToken(ctx context.Context, id string, ttl time.Duration, opts ...Option) (*UserToken, error) {
	var body struct {
		TTLSeconds *int64 `json:"ttl_seconds,omitempty"`
	}
	if ttl > 0 {
		s := int64(ttl / time.Second)
		body.TTLSeconds = &s
	}
	var t UserToken
	if _, err := c.do(ctx, "POST", accountPath(id, "tokens"), body, &t, opts); err != nil {
		return nil, err
	}
	return &t, nil
}

// RevokeSessions ends every credential of account id issued so far.
func (c *Client) RevokeSessions(ctx context.Context, id string, opts ...Option) (*Revocation, error) {
	var r Revocation
	if _, err := c.do(ctx, "POST", accountPath(id, "revoke-sessions"), struct{}{}, &r, opts); err != nil {
		return nil, err
	}
	return &r, nil
}

// Feedback lists a page of help-article feedback, latest first; article
// ("": all) narrows it to one article.
func (c *Client) Feedback(ctx context.Context, article string, p ListParams, opts ...Option) (*Page[Feedback], error) {
	var extra url.Values
	if article != "" {
		extra = url.Values{"article": {article}}
	}
	return getPage[Feedback](ctx, c, query("/v1/feedback", p, extra), opts)
}

// Test clock (a server started with --test-clock).

// TestClock reads the server's test clock.
func (c *Client) TestClock(ctx context.Context, opts ...Option) (time.Time, error) {
	var tc TestClock
	_, err := c.do(ctx, "GET", "/v1/test-clock", nil, &tc, opts)
	return tc.Now, err
}

// AdvanceTestClock moves the test clock forward by d (whole seconds) and
// answers the new time.
func (c *Client) AdvanceTestClock(ctx context.Context, d time.Duration, opts ...Option) (time.Time, error) {
	var tc TestClock
	_, err := c.do(ctx, "POST", "/v1/test-clock", map[string]int64{"advance_seconds": int64(d / time.Second)}, &tc, opts)
	return tc.Now, err
}

// SetTestClock sets the test clock to now (never backwards).
func (c *Client) SetTestClock(ctx context.Context, now time.Time, opts ...Option) (time.Time, error) {
	var tc TestClock
	_, err := c.do(ctx, "POST", "/v1/test-clock", map[string]time.Time{"now": now}, &tc, opts)
	return tc.Now, err
}

// Backup asks the server for a snapshot of its data (a gzip-compressed
// tar) and returns the stream; the caller reads and closes it. Only ctx
// bounds it: give the Client an HTTP client with a ResponseHeaderTimeout.
// A node on PostgreSQL answers 409.
func (c *Client) Backup(ctx context.Context, opts ...Option) (io.ReadCloser, error) {
	resp, cancel, err := c.send(ctx, call{method: "GET", path: "/v1/admin/backup", opts: opts})
	if err != nil {
		return nil, err
	}
	return &cancelBody{ReadCloser: resp.Body, cancel: cancel}, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// Pages.

func getPage[T any](ctx context.Context, c *Client, path string, opts []Option) (*Page[T], error) {
	var p Page[T]
	if _, err := c.do(ctx, "GET", path, nil, &p, opts); err != nil {
		return nil, err
	}
	if p.Data == nil {
		p.Data = []T{}
	}
	return &p, nil
}

// Iterate walks a list page by page from p, yielding each item, and stops
// at the first error (yielded with a zero item):
//
//	for e, err := range client.Iterate(ctx, client.ListParams{Limit: 100},
//		func(ctx context.Context, p client.ListParams) (*client.Page[client.Entry], error) {
//			return c.Entries(ctx, "a1", p)
//		}) { … }
func Iterate[T any](ctx context.Context, p ListParams, fetch func(context.Context, ListParams) (*Page[T], error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			pg, err := fetch(ctx, p)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range pg.Data {
				if !yield(it, nil) {
					return
				}
			}
			if !pg.HasMore || pg.NextCursor == "" || pg.NextCursor == p.Cursor {
				return
			}
			p.Cursor = pg.NextCursor
		}
	}
}

// AllEntries walks all of an account's ledger entries, newest first.
func (c *Client) AllEntries(ctx context.Context, id string, pageSize int) iter.Seq2[Entry, error] {
	return Iterate(ctx, ListParams{Limit: pageSize}, func(ctx context.Context, p ListParams) (*Page[Entry], error) {
		return c.Entries(ctx, id, p)
	})
}

// AllJobs walks all of an account's jobs, newest first.
func (c *Client) AllJobs(ctx context.Context, accountID string, pageSize int) iter.Seq2[Job, error] {
	return Iterate(ctx, ListParams{Limit: pageSize}, func(ctx context.Context, p ListParams) (*Page[Job], error) {
		return c.Jobs(ctx, accountID, p)
	})
}

// AllAssets walks all of an account's assets, newest first.
func (c *Client) AllAssets(ctx context.Context, accountID string, pageSize int) iter.Seq2[Asset, error] {
	return Iterate(ctx, ListParams{Limit: pageSize}, func(ctx context.Context, p ListParams) (*Page[Asset], error) {
		return c.Assets(ctx, accountID, p)
	})
}

// Worker protocol (docs/worker-protocol.md); bodies: package jobs.

func workerJobPath(id, rest string) string {
	return "/v1/worker/jobs/" + esc(id) + "/" + rest
}

// LeaseJob long-polls for a job of one of actions, waiting up to wait
// (whole seconds, 0..LeaseWaitMax). It returns nil, nil when no job
// arrived in time (204).
func (c *Client) LeaseJob(ctx context.Context, actions []string, wait time.Duration, opts ...Option) (*Lease, error) {
	wait = min(max(wait, 0), LeaseWaitMax)
	body, err := json.Marshal(leaseRequest(actions, wait))
	if err != nil {
		return nil, err
	}
	var l Lease
	status, err := c.doCall(ctx, call{method: "POST", path: "/v1/worker/lease", body: body, contentType: "application/json",
		timeout: wait + CallTimeout, opts: opts}, &l)
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
func (c *Client) Heartbeat(ctx context.Context, id, leaseID string, opts ...Option) (*Heartbeat, error) {
	var h Heartbeat
	if _, err := c.do(ctx, "POST", workerJobPath(id, "heartbeat"), heartbeatRequest(leaseID), &h, opts); err != nil {
		return nil, err
	}
	return &h, nil
}

// JobInput downloads an input asset of job id under its lease (up to
// DownloadBytesMax) and returns its bytes and Content-Type. The server
// serves only assets the job's params name while leaseID holds the job:
// any other asset is a 404, a lost lease a 409.
func (c *Client) JobInput(ctx context.Context, id, leaseID, assetID string, opts ...Option) ([]byte, string, error) {
	path := workerJobPath(id, "inputs/"+esc(assetID)) + "?lease_id=" + url.QueryEscape(leaseID)
	a, err := c.download(ctx, path, "input "+assetID, opts)
	if err != nil {
		return nil, "", err
	}
	return a.Data, a.ContentType, nil
}

// UploadOutput stores one output image of job id under its lease.
func (c *Client) UploadOutput(ctx context.Context, id, leaseID string, data []byte, contentType string, opts ...Option) (*Asset, error) {
	return c.upload(ctx, workerJobPath(id, "outputs")+"?lease_id="+url.QueryEscape(leaseID), data, contentType, opts)
}

// CompleteJob finishes job id with its uploaded outputs (asset ids); the
// server charges unit price × len(outputs). A repeat with the same outputs
// answers the same job; a 409 means the job was cancelled, the lease lost
// or the params changed since the last heartbeat.
func (c *Client) CompleteJob(ctx context.Context, id, leaseID string, outputs []string, opts ...Option) (*Job, error) {
	return c.job(ctx, "POST", workerJobPath(id, "complete"), completeRequest(leaseID, outputs), opts)
}

// FailJob reports a failed attempt of job id: it is requeued when
// retryable and attempts remain, else it fails; nothing is charged.
func (c *Client) FailJob(ctx context.Context, id, leaseID, msg string, retryable bool, opts ...Option) (*Job, error) {
	return c.job(ctx, "POST", workerJobPath(id, "fail"), failRequest(leaseID, msg, retryable), opts)
}

// Billing (a server with billing configured).

// Packs lists the credit packs for sale.
func (c *Client) Packs(ctx context.Context, opts ...Option) (*PackList, error) {
	var p PackList
	if _, err := c.do(ctx, "GET", "/v1/packs", nil, &p, opts); err != nil {
		return nil, err
	}
	return &p, nil
}

// Checkout starts a Stripe Checkout Session for account id to buy pack
// (201); the credits are granted when Stripe reports the payment.
func (c *Client) Checkout(ctx context.Context, id, pack string, opts ...Option) (*Checkout, error) {
	var out Checkout
	if _, err := c.do(ctx, "POST", accountPath(id, "checkout"), struct {
		Pack string `json:"pack"`
	}{pack}, &out, opts); err != nil {
		return nil, err
	}
	return &out, nil
}
