package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
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
	// QueuedJobsMax bounds the jobs waiting for a worker (on one node's
	// lease queue, which on PostgreSQL holds every node's); beyond it a new
	// job is refused with 503 and Retry-After instead of growing the queue.
	QueuedJobsMax int `json:"queued_jobs_max"`

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
	// are evicted and reloaded from the store when next needed. The
	// default keeps a full cache within the 256 MiB that
	// TestCachedAccountMemoryWithinBudget checks, so a process with a
	// million accounts stays under 1 GiB even with the GC's headroom
	// (docs/performance.md, Cached accounts, has the measurements).
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
	Alerts        Alerts       `json:"alerts"`
	Webhooks      Webhooks     `json:"webhooks"`

	prices  map[string]Price
	sources map[Source]SourceRule
}

// Alerts configure the balance alerts (docs/webhooks.md, "Balance
// alerts").
type Alerts struct {
	// LowBalanceThreshold is a new account's low_balance_threshold.
	LowBalanceThreshold int64 `json:"low_balance_threshold"`
	// ExpiringNoticeHours is how long before a purchased, promo or admin
	// bucket expires its credits.expiring is sent.
	ExpiringNoticeHours int64 `json:"expiring_notice_hours"`
}

// Webhooks configure the delivery of outbound webhooks (docs/webhooks.md,
// "Delivery, retries and deduplication").
type Webhooks struct {
	// RetryScheduleSeconds is the wait after each failed attempt of a
	// delivery before the next (each lengthened at random by up to a
	// tenth); a delivery is attempted once more than it has entries.
	RetryScheduleSeconds []int64 `json:"retry_schedule_seconds"`
	// DisableAfterSeconds disables an endpoint none of whose attempts
	// succeeded for this long since its first failed one.
	DisableAfterSeconds int64 `json:"disable_after_seconds"`
}

// Bounds of the webhooks section.
const (
	WebhookRetriesMax             = 32
	WebhookRetryWaitSecondsMax    = 7 * 86400
	WebhookDisableAfterSecondsMax = 30 * 86400
)

// Schedule is RetryScheduleSeconds as durations.
func (w Webhooks) Schedule() []time.Duration {
	out := make([]time.Duration, len(w.RetryScheduleSeconds))
	for i, s := range w.RetryScheduleSeconds {
		out[i] = time.Duration(s) * time.Second
	}
	return out
}

// DisableAfter is DisableAfterSeconds as a duration.
func (w Webhooks) DisableAfter() time.Duration {
	return time.Duration(w.DisableAfterSeconds) * time.Second
}

// ExpiringNotice is Alerts.ExpiringNoticeHours as a duration.
func (c *Config) ExpiringNotice() time.Duration {
	return time.Duration(c.Alerts.ExpiringNoticeHours) * time.Hour
}

// CheapestImageCredits is the unit price of the cheapest image action: an
// account with fewer image credits available is depleted.
func (c *Config) CheapestImageCredits() int64 {
	var m int64
	for _, p := range c.Prices {
		if p.Category == CategoryImage && (m == 0 || p.UnitCredits < m) {
			m = p.UnitCredits
		}
	}
	return m
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
			IdempotencyKeyBytesMax:    idempotencyKeyBytesMaxDefault,
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
			QueuedJobsMax:             100_000,
			CachedAccountsMax:         250_000,

			RequestsPerSecondPerUser:        20,
			RequestsBurstPerUser:            40,
			AuthFailuresPerMinutePerAddress: 60,
			AuthFailuresBurstPerAddress:     30,
			AssetsPerAccountMax:             1000,
			AssetBytesPerAccountMax:         512 << 20,
			AssetUploadsPerMinutePerAccount: 30,
		},
		Alerts: Alerts{LowBalanceThreshold: 10, ExpiringNoticeHours: 72},
		// Roughly exponential waits, 3 days in all: 9 attempts, the last at
		// least 3 days after the first.
		Webhooks: Webhooks{RetryScheduleSeconds: []int64{60, 540, 3000, 7200, 18000, 36000, 86400, 108000},
			DisableAfterSeconds: 3 * 86400},
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
// file replace the defaults' lists; absent fields keep their defaults; a
// field the config does not have is an error. The result is checked whole
// (Validate, then each of checks, which add what the caller serves, e.g.
// the built-in worker's actions): every problem is named in one error.
func LoadConfig(path string, checks ...func(*Config) []string) (*Config, error) {
	c := DefaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(c); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("config %s: trailing data after the JSON object", path)
		}
	}
	problems := c.problems()
	for _, check := range checks {
		problems = append(problems, check(c)...)
	}
	name := "the built-in config"
	if path != "" {
		name = "config " + path
	}
	return c, problemsError(name, problems)
}

// webhookProblems adds the problems of the webhooks section.
func (c *Config) webhookProblems(add func(format string, args ...any)) {
	if n := len(c.Webhooks.RetryScheduleSeconds); n < 1 || n > WebhookRetriesMax {
		add("webhooks.retry_schedule_seconds has %d waits: give 1..%d", n, WebhookRetriesMax)
	}
	for i, w := range c.Webhooks.RetryScheduleSeconds {
		if w < 1 || w > WebhookRetryWaitSecondsMax {
			add("webhooks.retry_schedule_seconds[%d] is %d: use 1..%d", i, w, WebhookRetryWaitSecondsMax)
		}
	}
	if d := c.Webhooks.DisableAfterSeconds; d < 60 || d > WebhookDisableAfterSecondsMax {
		add("webhooks.disable_after_seconds is %d: use 60..%d", d, WebhookDisableAfterSecondsMax)
	}
}

// problemsError is nil without problems, else one error naming them all.
func problemsError(name string, problems []string) error {
	switch len(problems) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%s: %s", name, problems[0])
	}
	return fmt.Errorf("%s has %d problems:\n  - %s", name, len(problems), strings.Join(problems, "\n  - "))
}

// KnownActions are the actions a config may price: the product's catalog.
func KnownActions() []string {
	return append(slices.Clone(imageActions), "video")
}

// knownSources are the sources a config must list, each once.
var knownSources = []Source{SourceSignup, SourceDaily, SourcePurchase, SourcePromo, SourceAdmin}

// Validate checks the configuration and builds its lookup tables.
func (c *Config) Validate() error {
	return problemsError("config", c.problems())
}

// problems checks the configuration whole, builds its lookup tables and
// returns every problem found, each saying how to fix it.
func (c *Config) problems() []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	known := KnownActions()
	c.prices = make(map[string]Price, len(c.Prices))
	for _, p := range c.Prices {
		switch {
		case !slices.Contains(known, p.Action):
			add("prices: unknown action %q: use one of %s", p.Action, strings.Join(known, ", "))
		case p.UnitCredits < 1 || p.UnitCredits > unitCreditsMax:
			add("prices: %q costs %d credits: unit_credits must be 1..%d", p.Action, p.UnitCredits, unitCreditsMax)
		case p.Category != CategoryImage && p.Category != CategoryVideo:
			add("prices: %q has category %q: use \"image\" or \"video\"", p.Action, p.Category)
		default:
			if _, dup := c.prices[p.Action]; dup {
				add("prices: %q is listed twice: keep one", p.Action)
			}
			c.prices[p.Action] = p
		}
	}
	if len(c.Prices) == 0 {
		add("prices is empty: price at least one action")
	}
	if c.Alerts.LowBalanceThreshold < 0 || c.Alerts.LowBalanceThreshold > LowBalanceThresholdMax {
		add("alerts.low_balance_threshold is %d: use 0..%d", c.Alerts.LowBalanceThreshold, int64(LowBalanceThresholdMax))
	}
	c.webhookProblems(add)
	if c.Alerts.ExpiringNoticeHours < 0 || c.Alerts.ExpiringNoticeHours > 24*366 {
		add("alerts.expiring_notice_hours is %d: use 0..%d", c.Alerts.ExpiringNoticeHours, 24*366)
	}
	c.sources = make(map[Source]SourceRule, len(c.Sources))
	for _, s := range c.Sources {
		switch {
		case !slices.Contains(knownSources, s.Source):
			add("sources: unknown source %q: the sources are %s", s.Source, sourceNames(knownSources))
		case len(s.Categories) == 0:
			add("sources: %q pays for no category: give it \"categories\", e.g. [\"image\"]", s.Source)
		default:
			for _, cat := range s.Categories {
				if cat != CategoryImage && cat != CategoryVideo {
					add("sources: %q has category %q: use \"image\" or \"video\"", s.Source, cat)
				}
			}
			if _, dup := c.sources[s.Source]; dup {
				add("sources: %q is listed twice: keep one", s.Source)
			}
			c.sources[s.Source] = s
		}
	}
	var missing []Source
	for _, s := range knownSources {
		if _, ok := c.sources[s]; !ok && !slices.ContainsFunc(c.Sources, func(r SourceRule) bool { return r.Source == s }) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		add("sources lacks %s: a config that gives \"sources\" lists all of %s (lists replace lists)", sourceNames(missing), sourceNames(knownSources))
	}
	if c.SignupCredits < 0 || c.DailyCredits < 0 {
		add("signup_credits and daily_credits must be 0 or more")
	}
	if m := c.Limits.GrantCreditsMax; c.SignupCredits > m || c.DailyCredits > m {
		add("signup_credits and daily_credits must be at most limits.grant_credits_max (%d)", m)
	}
	out = append(out, c.Limits.problems()...)
	return out
}

// unitCreditsMax bounds a price.
const unitCreditsMax = 1_000_000

func sourceNames(ss []Source) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// problems checks the limits.
func (l Limits) problems() []string {
	var out []string
	for _, c := range []struct {
		bad  bool
		rule string
	}{
		{l.RequestBodyBytesMax < 1024, "request_body_bytes_max must be at least 1024"},
		{l.HoldQuantityMax < 1, "hold_quantity_max must be at least 1"},
		{l.HoldTTLSecondsDefault < 1, "hold_ttl_seconds_default must be at least 1"},
		{l.HoldTTLSecondsMax < l.HoldTTLSecondsDefault, "hold_ttl_seconds_max must be at least hold_ttl_seconds_default"},
		{l.PendingHoldsPerAccountMax < 1, "pending_holds_per_account_max must be at least 1"},
		{l.GrantCreditsMax < 1, "grant_credits_max must be at least 1"},
		{l.AccountCreditsMax < l.GrantCreditsMax || l.AccountCreditsMax > 1<<60, fmt.Sprintf("account_credits_max must be between grant_credits_max and %d", int64(1<<60))},
		{l.PageSizeDefault < 1 || l.PageSizeMax < l.PageSizeDefault, "page_size_default must be at least 1 and page_size_max at least page_size_default"},
		{l.BatchOpsMax < 1, "batch_ops_max must be at least 1"},
		{l.IdempotencyKeyTTLSeconds < 86400, "idempotency_key_ttl_seconds must be at least 86400 (a day)"},
		{l.IdempotencyKeyBytesMax < 1 || l.IDBytesMax < 1, "idempotency_key_bytes_max and id_bytes_max must be at least 1"},
		{l.OpQueueMax < 1, "op_queue_max must be at least 1"},
		{l.BatchRequestOpsMax < 1 || l.BatchRequestOpsMax > l.OpQueueMax, "batch_request_ops_max must be between 1 and op_queue_max"},
		{l.BatchRequestBytesMax < l.RequestBodyBytesMax, "batch_request_bytes_max must be at least request_body_bytes_max"},
		{l.JobLeaseSeconds < 1 || l.JobHoldGraceSeconds < 1, "job_lease_seconds and job_hold_grace_seconds must be at least 1"},
		{l.JobLeaseWaitSecondsMax < 0, "job_lease_wait_seconds_max must be 0 or more"},
		{l.JobAttemptsMax < 1, "job_attempts_max must be at least 1"},
		{l.JobQueueSecondsMax < 1 || l.JobQueueSecondsMax > l.HoldTTLSecondsMax, "job_queue_seconds_max must be between 1 and hold_ttl_seconds_max"},
		{l.JobLeaseSeconds+l.JobHoldGraceSeconds > l.HoldTTLSecondsMax, "job_lease_seconds + job_hold_grace_seconds must be at most hold_ttl_seconds_max"},
		{l.JobParamsBytesMax < 2, "job_params_bytes_max must be at least 2"},
		{l.ActiveJobsPerAccountMax < 1, "active_jobs_per_account_max must be at least 1"},
		{l.QueuedJobsMax < 1, "queued_jobs_max must be at least 1"},
	} {
		if c.bad {
			out = append(out, "limits: "+c.rule)
		}
	}
	if l.AssetsPerAccountMax < 1 || l.AssetBytesPerAccountMax < 1 || l.AssetUploadsPerMinutePerAccount < 1 {
		out = append(out, "limits: assets_per_account_max, asset_bytes_per_account_max and asset_uploads_per_minute_per_account must be at least 1")
	}
	if l.JobNoWorkerSecondsMax < l.JobLeaseSeconds || l.JobNoWorkerSecondsMax > l.JobQueueSecondsMax {
		out = append(out, fmt.Sprintf("limits: job_no_worker_seconds_max must be between job_lease_seconds (%d) and job_queue_seconds_max (%d)", l.JobLeaseSeconds, l.JobQueueSecondsMax))
	}
	if l.CachedAccountsMax < 1 || l.CachedAccountsMax > 1<<30 {
		out = append(out, fmt.Sprintf("limits: cached_accounts_max must be 1..%d", 1<<30))
	}
	if l.RequestsPerSecondPerUser < 0 || l.RequestsBurstPerUser < 1 {
		out = append(out, "limits: requests_per_second_per_user must be >= 0 and requests_burst_per_user >= 1")
	}
	if l.AuthFailuresPerMinutePerAddress < 0 || l.AuthFailuresBurstPerAddress < 1 {
		out = append(out, "limits: auth_failures_per_minute_per_address must be >= 0 and auth_failures_burst_per_address >= 1")
	}
	return out
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
