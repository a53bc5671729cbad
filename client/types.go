package client

import (
	"encoding/json"
	"time"

	"github.com/creditd/creditd/jobs"
)

// The API's objects as the server renders them (docs/api.md and the
// OpenAPI document). Credits are whole numbers (int64).

// Account is an account (PUT and GET /v1/accounts/{id}).
type Account struct {
	ID                  string    `json:"id"`
	Plan                string    `json:"plan"` // free or paid
	Timezone            string    `json:"timezone"`
	LowBalanceThreshold *int64    `json:"low_balance_threshold,omitempty"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// PutAccountRequest creates an account or changes it; an empty field keeps
// the account's value (free and UTC for a new account).
type PutAccountRequest struct {
	Plan     string `json:"plan,omitempty"`
	Timezone string `json:"timezone,omitempty"`
	// LowBalanceThreshold, when set, is the account's credits.low line.
	LowBalanceThreshold *int64 `json:"low_balance_threshold,omitempty"`
}

// Grant is a grant of credits: a bucket of the account.
type Grant struct {
	ID        string     `json:"id"`
	AccountID string     `json:"account_id"`
	Source    string     `json:"source"`
	Reference string     `json:"reference,omitempty"`
	Amount    int64      `json:"amount"`
	Remaining int64      `json:"remaining"`
	Held      int64      `json:"held"`
	Charged   int64      `json:"charged"`
	Expired   int64      `json:"expired"`
	ExpiresAt *time.Time `json:"expires_at"`
	CreatedAt time.Time  `json:"created_at"`
}

// GrantRequest is the body of POST /v1/accounts/{id}/grants. A Reference
// makes the grant idempotent: the same reference again answers the first
// grant; with other figures it is a 409.
type GrantRequest struct {
	Amount    int64      `json:"amount"`
	Source    string     `json:"source"` // admin, promo or purchase
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Reference string     `json:"reference,omitempty"`
}

// Balance is an account's balance.
type Balance struct {
	AccountID           string           `json:"account_id"`
	Plan                string           `json:"plan"`
	Timezone            string           `json:"timezone"`
	Available           int64            `json:"available"`
	AvailableByCategory map[string]int64 `json:"available_by_category"`
	Held                int64            `json:"held"`
	Buckets             []Bucket         `json:"buckets"`
	NextDailyRefreshAt  *time.Time       `json:"next_daily_refresh_at"`
	AsOf                time.Time        `json:"as_of"`
}

// Bucket is one grant's credits in a Balance.
type Bucket struct {
	GrantID    string     `json:"grant_id"`
	Source     string     `json:"source"`
	Remaining  int64      `json:"remaining"`
	Held       int64      `json:"held"`
	ExpiresAt  *time.Time `json:"expires_at"`
	Categories []string   `json:"categories"`
}

// Quote is what an action would cost an account now.
type Quote struct {
	AccountID  string `json:"account_id"`
	Action     string `json:"action"`
	Category   string `json:"category"`
	Quantity   int64  `json:"quantity"`
	UnitPrice  int64  `json:"unit_price"`
	Cost       int64  `json:"cost"`
	Available  int64  `json:"available"`
	Affordable bool   `json:"affordable"`
}

// Entry is a ledger entry.
type Entry struct {
	ID        int64     `json:"id"`
	AccountID string    `json:"account_id"`
	Type      string    `json:"type"`
	Amount    int64     `json:"amount"`
	Source    string    `json:"source,omitempty"`
	GrantID   string    `json:"grant_id,omitempty"`
	HoldID    string    `json:"hold_id,omitempty"`
	Action    string    `json:"action,omitempty"`
	Quantity  int64     `json:"quantity,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Legs      []Leg     `json:"legs"`
	CreatedAt time.Time `json:"created_at"`
}

// Leg moves credits between two parts of one bucket.
type Leg struct {
	GrantID string `json:"grant_id"`
	From    string `json:"from"`
	To      string `json:"to"`
	Credits int64  `json:"credits"`
}

// Hold reserves credits for work in progress.
type Hold struct {
	ID               string     `json:"id"`
	AccountID        string     `json:"account_id"`
	Action           string     `json:"action"`
	Category         string     `json:"category"`
	Quantity         int64      `json:"quantity"`
	UnitPrice        int64      `json:"unit_price"`
	Amount           int64      `json:"amount"`
	Status           string     `json:"status"` // pending, captured, released, expired
	Portions         []Portion  `json:"portions"`
	CreatedAt        time.Time  `json:"created_at"`
	ExpiresAt        time.Time  `json:"expires_at"`
	CapturedQuantity int64      `json:"captured_quantity"`
	CapturedAmount   int64      `json:"captured_amount"`
	ReleaseReason    string     `json:"release_reason,omitempty"`
	ResolvedAt       *time.Time `json:"resolved_at"`
}

// Portion is the part of a hold taken from one grant.
type Portion struct {
	GrantID string `json:"grant_id"`
	Credits int64  `json:"credits"`
}

// ReserveRequest is the body of POST /v1/holds.
type ReserveRequest struct {
	AccountID  string `json:"account_id"`
	Action     string `json:"action"`
	Quantity   *int64 `json:"quantity,omitempty"`
	TTLSeconds *int64 `json:"ttl_seconds,omitempty"`
}

// Job is a generation job.
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

// JobRequest is the body of POST /v1/jobs. A user token may leave
// AccountID empty (its own account).
type JobRequest struct {
	AccountID string          `json:"account_id,omitempty"`
	Action    string          `json:"action"`
	Quantity  *int64          `json:"quantity,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
}

// Asset is a stored image: an upload or a job's output.
type Asset struct {
	ID          string    `json:"id"`
	AccountID   string    `json:"account_id"`
	JobID       string    `json:"job_id,omitempty"`
	Kind        string    `json:"kind"` // upload or output
	ContentType string    `json:"content_type"`
	Width       int64     `json:"width"`
	Height      int64     `json:"height"`
	Bytes       int64     `json:"bytes"`
	SHA256      string    `json:"sha256"`
	CreatedAt   time.Time `json:"created_at"`
}

// AssetContent is an asset's bytes as served.
type AssetContent struct {
	Data        []byte
	ContentType string
	ETag        string
	// Filename is the attachment's name (DownloadAsset), else "".
	Filename string
}

// Deleted is the answer to a delete.
type Deleted struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

// PriceList is the answer to GET /v1/prices.
type PriceList struct {
	Object  string   `json:"object"`
	Data    []Price  `json:"data"`
	Sources []Source `json:"sources"`
}

// Price is an action's price; Available says whether a worker serves it.
type Price struct {
	Action      string `json:"action"`
	Category    string `json:"category"`
	UnitCredits int64  `json:"unit_credits"`
	Available   bool   `json:"available"`
}

// Source is a grant source and the categories its credits pay for.
type Source struct {
	Source  string   `json:"source"`
	PaysFor []string `json:"pays_for"`
}

// LoginLink is a sign-in link for the web app.
type LoginLink struct {
	URL       string    `json:"url"`
	AccountID string    `json:"account_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// UserToken is a user-scoped API token ("ut_…").
type UserToken struct {
	Token     string    `json:"token"`
	AccountID string    `json:"account_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Revocation is the answer to revoke-sessions.
type Revocation struct {
	AccountID string    `json:"account_id"`
	RevokedAt time.Time `json:"revoked_at"`
}

// Feedback is an answer to a help article's "Was this article helpful?".
type Feedback struct {
	AccountID string    `json:"account_id"`
	Article   string    `json:"article"`
	Helpful   bool      `json:"helpful"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TestClock is the server's test clock.
type TestClock struct {
	Now time.Time `json:"now"`
}

// BatchOp is one operation of POST /v1/batch: Op ("reserve", "capture",
// "release", "extend", "grant"), the route's path parameter (HoldID or
// AccountID), an optional IdempotencyKey, and the route's body.
type BatchOp struct {
	Op             string `json:"op"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	HoldID         string `json:"hold_id,omitempty"`
	AccountID      string `json:"account_id,omitempty"`
	// reserve, capture
	Action     string `json:"action,omitempty"`
	Quantity   *int64 `json:"quantity,omitempty"`
	TTLSeconds *int64 `json:"ttl_seconds,omitempty"`
	// release
	Reason string `json:"reason,omitempty"`
	// grant
	Amount    int64      `json:"amount,omitempty"`
	Source    string     `json:"source,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Reference string     `json:"reference,omitempty"`
}

// BatchResult is one operation's answer: the status and object (or error)
// its route would have answered.
type BatchResult struct {
	Status             int        `json:"status"`
	IdempotentReplayed bool       `json:"idempotent_replayed,omitempty"`
	Hold               *Hold      `json:"hold,omitempty"`
	Grant              *Grant     `json:"grant,omitempty"`
	Error              *ErrorBody `json:"error,omitempty"`
}

// ErrorBody is an error object as the API renders it (in a batch result).
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Page is a page of a list, newest first; NextCursor (when HasMore) asks
// for the next one.
type Page[T any] struct {
	Object     string `json:"object"`
	Data       []T    `json:"data"`
	HasMore    bool   `json:"has_more"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// ListParams asks for a page: Limit items (0: the server's default; any
// other value is sent, and the server refuses one out of its range) after
// Cursor (a previous page's NextCursor; "": the first page).
type ListParams struct {
	Limit  int
	Cursor string
}

// Worker protocol answers (package jobs' bodies over this package's Job).
type (
	// Lease is a job handed to a worker until LeaseExpiresAt.
	Lease = jobs.Lease[Job]
	// Heartbeat is the answer to a heartbeat: whether the job was
	// cancelled or its params changed, and the renewed lease.
	Heartbeat = jobs.Heartbeat[Job]
)

// PackList is the answer to GET /v1/packs: the credit packs for sale, and
// whether purchases are enabled (Message says why not).
type PackList struct {
	Object           string `json:"object"`
	Data             []Pack `json:"data"`
	HasMore          bool   `json:"has_more"`
	PurchasesEnabled bool   `json:"purchases_enabled"`
	Message          string `json:"message,omitempty"`
}

// Pack is a credit pack for sale.
type Pack struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Credits  int64  `json:"credits"`
	Amount   int64  `json:"amount"` // in the currency's minor unit
	Currency string `json:"currency"`
	Price    string `json:"price"` // for people, e.g. "$5.00"
}

// Checkout is a Stripe Checkout Session for a pack: send the user to URL.
type Checkout struct {
	URL       string `json:"url"`
	SessionID string `json:"session_id"`
}
