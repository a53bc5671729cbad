package ledger

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"
)

// Category groups actions for the purpose of which credits may pay for them.
type Category string

const (
	CategoryImage Category = "image"
	CategoryVideo Category = "video"
)

// Source is where a grant's credits came from.
type Source string

const (
	SourceSignup   Source = "signup"
	SourceDaily    Source = "daily"
	SourcePurchase Source = "purchase"
	SourcePromo    Source = "promo"
	SourceAdmin    Source = "admin"
)

// Plan is an account's plan. Daily free credits accrue only on PlanFree.
type Plan string

const (
	PlanFree Plan = "free"
	PlanPaid Plan = "paid"
)

// Price is the cost of one output of an action.
type Price struct {
	Action      string   `json:"action"`
	Category    Category `json:"category"`
	UnitCredits int64    `json:"unit_credits"`
}

// SourceRule says which categories a source pays for and where it ranks in
// the burn-down order (lower ranks are spent first among buckets with the
// same expiry).
type SourceRule struct {
	Source     Source     `json:"source"`
	Categories []Category `json:"categories"`
	Rank       int        `json:"rank"`
	// Grantable sources may be granted through the API; signup and daily are
	// issued by the rules themselves.
	Grantable bool `json:"grantable"`
}

// Limits names every bound the service enforces. All are configuration.
type Limits struct {
	// RequestBodyBytesMax bounds every request body.
	RequestBodyBytesMax int64 `json:"request_body_bytes_max"`
	// HoldQuantityMax bounds the outputs one hold may reserve.
	HoldQuantityMax int64 `json:"hold_quantity_max"`
	// HoldTTLSecondsDefault is used when a reserve names no ttl.
	HoldTTLSecondsDefault int64 `json:"hold_ttl_seconds_default"`
	// HoldTTLSecondsMax bounds ttl_seconds on reserve and extend.
	HoldTTLSecondsMax int64 `json:"hold_ttl_seconds_max"`
	// PendingHoldsPerAccountMax bounds concurrent pending holds per account.
	PendingHoldsPerAccountMax int `json:"pending_holds_per_account_max"`
	// GrantCreditsMax bounds a single grant.
	GrantCreditsMax int64 `json:"grant_credits_max"`
	// AccountCreditsMax bounds the sum of an account's buckets, so no sum overflows.
	AccountCreditsMax int64 `json:"account_credits_max"`
	// PageSizeDefault and PageSizeMax bound list endpoints.
	PageSizeDefault int `json:"page_size_default"`
	PageSizeMax     int `json:"page_size_max"`
	// BatchOpsMax bounds the operations committed in one transaction.
	BatchOpsMax int `json:"batch_ops_max"`
	// IdempotencyKeyTTLSeconds is how long idempotency keys are kept (>= 24h).
	IdempotencyKeyTTLSeconds int64 `json:"idempotency_key_ttl_seconds"`
	// IdempotencyKeyBytesMax bounds the Idempotency-Key header.
	IdempotencyKeyBytesMax int `json:"idempotency_key_bytes_max"`
	// IDBytesMax bounds client-chosen ids (account ids, references).
	IDBytesMax int `json:"id_bytes_max"`
	// OpQueueMax bounds operations waiting for the committer; beyond it
	// requests get 503 instead of growing a queue.
	OpQueueMax int `json:"op_queue_max"`
	// BatchRequestOpsMax bounds the operations of one POST /v1/batch.
	BatchRequestOpsMax int `json:"batch_request_ops_max"`
	// BatchRequestBytesMax bounds the body of one POST /v1/batch (each of
	// its operations is still bounded by RequestBodyBytesMax).
	BatchRequestBytesMax int64 `json:"batch_request_bytes_max"`

	// JobLeaseSeconds is how long a worker's lease lasts without a heartbeat.
	JobLeaseSeconds int64 `json:"job_lease_seconds"`
	// JobLeaseWaitSecondsMax bounds a lease long-poll.
	JobLeaseWaitSecondsMax int64 `json:"job_lease_wait_seconds_max"`
	// JobAttemptsMax bounds leases per job (first run plus retries).
	JobAttemptsMax int64 `json:"job_attempts_max"`
	// JobQueueSecondsMax is how long a job may wait queued; its hold lives
	// that long, after which the job ends interrupted and costs nothing.
	JobQueueSecondsMax int64 `json:"job_queue_seconds_max"`
	// JobNoWorkerSecondsMax is how long a job may wait queued while no
	// worker serves its action: once it has waited this long and no
	// worker polled for (or heartbeat a job of) its action within this
	// long, it ends interrupted and costs nothing. A job whose action has
	// a worker keeps waiting up to JobQueueSecondsMax.
	JobNoWorkerSecondsMax int64 `json:"job_no_worker_seconds_max"`
	// JobHoldGraceSeconds is how much longer than its lease a running
	// job's hold lives, so a job never loses its hold while alive.
	JobHoldGraceSeconds int64 `json:"job_hold_grace_seconds"`
	// JobParamsBytesMax bounds a job's params.
	JobParamsBytesMax int `json:"job_params_bytes_max"`
	// ActiveJobsPerAccountMax bounds queued+running jobs per account.
	ActiveJobsPerAccountMax int `json:"active_jobs_per_account_max"`

	// AssetsPerAccountMax and AssetBytesPerAccountMax bound an account's
	// stored uploads: their number and the sum of their sizes. Outputs of
	// jobs are paid for and do not count.
	AssetsPerAccountMax     int64 `json:"assets_per_account_max"`
	AssetBytesPerAccountMax int64 `json:"asset_bytes_per_account_max"`
	// AssetUploadsPerMinutePerAccount bounds an account's uploads on each
	// node: a token bucket of this many uploads, refilled at this many per
	// minute.
	AssetUploadsPerMinutePerAccount int `json:"asset_uploads_per_minute_per_account"`

	// CachedAccountsMax bounds the accounts whose committed state the
	// engine keeps in memory; beyond it the least recently used (CLOCK)
	// are evicted and reloaded from the store when next needed. A cached
	// account (a few buckets, no pending hold) takes 0.7-0.9 KiB of heap
	// (BenchmarkCachedAccountMemory in ledger/engine), so the default of
	// 250 000 keeps a full cache within about 256 MiB, and a process with
	// a million accounts well under 1 GiB even with the GC's headroom.
	CachedAccountsMax int `json:"cached_accounts_max"`

	// RequestsPerSecondPerUser is the sustained request rate of one
	// account's user tokens and web sessions together, per node; up to
	// RequestsBurstPerUser requests may come at once. 0 turns the limit
	// off. The admin and worker keys are not limited.
	RequestsPerSecondPerUser int `json:"requests_per_second_per_user"`
	RequestsBurstPerUser     int `json:"requests_burst_per_user"`
	// AuthFailuresPerMinutePerAddress is the sustained rate of failed
	// authentications (wrong, expired or altered keys, tokens, session
	// cookies and sign-in links) one client address may make, per node;
	// up to AuthFailuresBurstPerAddress may come at once. 0 turns the
	// throttle off. A valid credential is never refused by it.
	AuthFailuresPerMinutePerAddress int `json:"auth_failures_per_minute_per_address"`
	AuthFailuresBurstPerAddress     int `json:"auth_failures_burst_per_address"`
}

// Config is every rule number. DefaultConfig holds the product's defaults.
type Config struct {
	Prices        []Price      `json:"prices"`
	Sources       []SourceRule `json:"sources"`
	SignupCredits int64        `json:"signup_credits"`
	DailyCredits  int64        `json:"daily_credits"`
	Limits        Limits       `json:"limits"`

	prices  map[string]Price
	sources map[Source]SourceRule
}

var imageActions = []string{
	"generate", "edit", "style_transfer", "upscale", "expand", "inpaint", "erase",
	"replace_background", "remove_background", "redux", "adjust", "filter", "crop",
}

// DefaultConfig returns the product defaults from the help page.
func DefaultConfig() *Config {
	c := &Config{
		SignupCredits: 30,
		DailyCredits:  15,
		Sources: []SourceRule{
			{Source: SourceDaily, Categories: []Category{CategoryImage}, Rank: 0},
			{Source: SourcePromo, Categories: []Category{CategoryImage}, Rank: 1, Grantable: true},
			{Source: SourceSignup, Categories: []Category{CategoryImage}, Rank: 2},
			{Source: SourceAdmin, Categories: []Category{CategoryImage, CategoryVideo}, Rank: 3, Grantable: true},
			{Source: SourcePurchase, Categories: []Category{CategoryImage, CategoryVideo}, Rank: 4, Grantable: true},
		},
		Limits: Limits{
			RequestBodyBytesMax:       64 << 10,
			HoldQuantityMax:           100,
			HoldTTLSecondsDefault:     600,
			HoldTTLSecondsMax:         86400,
			PendingHoldsPerAccountMax: 10000,
			GrantCreditsMax:           1_000_000_000,
			AccountCreditsMax:         1_000_000_000_000,
			PageSizeDefault:           50,
			PageSizeMax:               500,
			BatchOpsMax:               4096,
			IdempotencyKeyTTLSeconds:  86400,
			IdempotencyKeyBytesMax:    255,
			IDBytesMax:                64,
			OpQueueMax:                65536,
			BatchRequestOpsMax:        1000,
			BatchRequestBytesMax:      1 << 20,
			JobLeaseSeconds:           30,
			JobLeaseWaitSecondsMax:    30,
			JobAttemptsMax:            3,
			JobQueueSecondsMax:        86400,
			JobNoWorkerSecondsMax:     600,
			JobHoldGraceSeconds:       60,
			JobParamsBytesMax:         16 << 10,
			ActiveJobsPerAccountMax:   100,
			CachedAccountsMax:         250_000,

			RequestsPerSecondPerUser:        20,
			RequestsBurstPerUser:            40,
			AuthFailuresPerMinutePerAddress: 60,
			AuthFailuresBurstPerAddress:     30,
			AssetsPerAccountMax:             1000,
			AssetBytesPerAccountMax:         512 << 20,
			AssetUploadsPerMinutePerAccount: 30,
		},
	}
	for _, a := range imageActions {
		c.Prices = append(c.Prices, Price{Action: a, Category: CategoryImage, UnitCredits: 5})
	}
	c.Prices = append(c.Prices, Price{Action: "video", Category: CategoryVideo, UnitCredits: 60})
	if err := c.Validate(); err != nil {
		panic(err)
	}
	return c
}

// LoadConfig reads a JSON config file over the defaults. Lists given in the
// file replace the defaults' lists; absent fields keep their defaults.
func LoadConfig(path string) (*Config, error) {
	c := DefaultConfig()
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Validate checks the configuration and builds its lookup tables.
func (c *Config) Validate() error {
	c.prices = make(map[string]Price, len(c.Prices))
	for _, p := range c.Prices {
		if p.Action == "" || p.UnitCredits <= 0 || p.UnitCredits > 1_000_000 {
			return fmt.Errorf("price %q: unit_credits must be 1..1000000", p.Action)
		}
		if p.Category != CategoryImage && p.Category != CategoryVideo {
			return fmt.Errorf("price %q: unknown category %q", p.Action, p.Category)
		}
		if _, dup := c.prices[p.Action]; dup {
			return fmt.Errorf("price %q listed twice", p.Action)
		}
		c.prices[p.Action] = p
	}
	c.sources = make(map[Source]SourceRule, len(c.Sources))
	for _, s := range c.Sources {
		if _, dup := c.sources[s.Source]; dup {
			return fmt.Errorf("source %q listed twice", s.Source)
		}
		c.sources[s.Source] = s
	}
	for _, s := range []Source{SourceSignup, SourceDaily, SourcePurchase, SourcePromo, SourceAdmin} {
		if _, ok := c.sources[s]; !ok {
			return fmt.Errorf("source %q missing", s)
		}
	}
	l := c.Limits
	if c.SignupCredits < 0 || c.DailyCredits < 0 || l.HoldQuantityMax < 1 || l.HoldTTLSecondsDefault < 1 ||
		l.HoldTTLSecondsMax < l.HoldTTLSecondsDefault || l.GrantCreditsMax < 1 || l.AccountCreditsMax < l.GrantCreditsMax ||
		l.AccountCreditsMax > 1<<60 || l.PageSizeDefault < 1 || l.PageSizeMax < l.PageSizeDefault || l.BatchOpsMax < 1 ||
		l.IdempotencyKeyTTLSeconds < 86400 || l.RequestBodyBytesMax < 1024 || l.PendingHoldsPerAccountMax < 1 ||
		l.IdempotencyKeyBytesMax < 1 || l.IDBytesMax < 1 || l.OpQueueMax < 1 ||
		l.JobLeaseSeconds < 1 || l.JobLeaseWaitSecondsMax < 0 || l.JobAttemptsMax < 1 || l.JobHoldGraceSeconds < 1 ||
		l.JobQueueSecondsMax < 1 || l.JobQueueSecondsMax > l.HoldTTLSecondsMax || l.JobLeaseSeconds+l.JobHoldGraceSeconds > l.HoldTTLSecondsMax ||
		l.JobParamsBytesMax < 2 || l.ActiveJobsPerAccountMax < 1 ||
		l.BatchRequestOpsMax < 1 || l.BatchRequestOpsMax > l.OpQueueMax || l.BatchRequestBytesMax < l.RequestBodyBytesMax {
		return fmt.Errorf("limits out of range")
	}
	if l.AssetsPerAccountMax < 1 || l.AssetBytesPerAccountMax < 1 || l.AssetUploadsPerMinutePerAccount < 1 {
		return fmt.Errorf("limits: assets_per_account_max, asset_bytes_per_account_max and asset_uploads_per_minute_per_account must be at least 1")
	}
	if l.JobNoWorkerSecondsMax < l.JobLeaseSeconds || l.JobNoWorkerSecondsMax > l.JobQueueSecondsMax {
		return fmt.Errorf("limits: job_no_worker_seconds_max must be between job_lease_seconds (%d) and job_queue_seconds_max (%d)", l.JobLeaseSeconds, l.JobQueueSecondsMax)
	}
	if l.CachedAccountsMax < 1 || l.CachedAccountsMax > 1<<30 {
		return fmt.Errorf("limits: cached_accounts_max must be 1..%d", 1<<30)
	}
	if l.RequestsPerSecondPerUser < 0 || l.RequestsBurstPerUser < 1 {
		return fmt.Errorf("limits: requests_per_second_per_user must be >= 0 and requests_burst_per_user >= 1")
	}
	if l.AuthFailuresPerMinutePerAddress < 0 || l.AuthFailuresBurstPerAddress < 1 {
		return fmt.Errorf("limits: auth_failures_per_minute_per_address must be >= 0 and auth_failures_burst_per_address >= 1")
	}
	return nil
}

// Price returns the price of an action.
func (c *Config) Price(action string) (Price, bool) {
	p, ok := c.prices[action]
	return p, ok
}

// SourceRule returns the rule of a source.
func (c *Config) SourceRule(s Source) (SourceRule, bool) {
	r, ok := c.sources[s]
	return r, ok
}

// Pays reports whether credits from source s may pay for category cat.
func (c *Config) Pays(s Source, cat Category) bool {
	return slices.Contains(c.sources[s].Categories, cat)
}

// HoldTTL returns the default hold time-to-live.
func (c *Config) HoldTTL() time.Duration {
	return time.Duration(c.Limits.HoldTTLSecondsDefault) * time.Second
}
