// Package rowscan reads rows of the tables that the SQLite and the
// PostgreSQL stores share column for column (the same names, order and
// encodings: times as unix microseconds, slices as JSON text) into ledger
// values, for both stores' queries, and lists the columns each reads.
package rowscan

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/creditd/creditd/ledger"
)

// Micros is t as stored: unix microseconds, 0 for the zero time.
func Micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// FromMicros is the time stored as us (Micros), in UTC.
func FromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// The columns each scanner reads, in its order. A query whose rows a
// scanner reads selects these (Job and Asset then read seq, which the
// database assigns, after them).
const (
	AccountCols = `id, plan, timezone, created_at, updated_at, daily_last_date, daily_not_before, version, low_balance_threshold, alerts`
	GrantCols   = `id, account_id, source, reference, amount, remaining, held, charged, expired, expires_at, created_at, notices`
	HoldCols    = `id, account_id, action, category, quantity, unit_price, amount, status, portions, created_at,
		expires_at, resolved_at, captured_quantity, captured_amount, release_reason`
	EntryCols = `id, account_id, type, amount, source, grant_id, hold_id, action, quantity, reason, legs, created_at`
	IdemCols  = `principal, "key", fingerprint, status, body, created_at`
	// JobCols and AssetCols are the written columns; seq is assigned by the
	// database and selected after them.
	JobCols = `id, account_id, action, category, quantity, params, params_version, status, hold_id, cost, charged,
		attempts, lease_id, lease_expires_at, outputs, error, created_at, updated_at, finished_at, lease_params_version`
	AssetCols = `id, account_id, job_id, kind, content_type, width, height, bytes, sha256, created_at, state`
)

// EventCols are the columns of webhook_events that Event reads.
const EventCols = `seq, id, type, account_id, created_at, data`

// Event reads a webhook_events row.
func Event(sc Scanner) (*ledger.WebhookEvent, error) {
	var e ledger.WebhookEvent
	var created int64
	var data string
	if err := sc.Scan(&e.Seq, &e.ID, &e.Type, &e.AccountID, &created, &data); err != nil {
		return nil, err
	}
	e.CreatedAt, e.Data = FromMicros(created), json.RawMessage(data)
	return &e, nil
}

// Scanner is a row: *sql.Row(s) or pgx.Row(s).
type Scanner interface{ Scan(dest ...any) error }

// Account reads an accounts row.
func Account(sc Scanner) (*ledger.Account, error) {
	var a ledger.Account
	var plan string
	var created, updated, notBefore int64
	if err := sc.Scan(&a.ID, &plan, &a.Timezone, &created, &updated, &a.DailyLastDate, &notBefore, &a.Version,
		&a.LowBalanceThreshold, &a.Alerts); err != nil {
		return nil, err
	}
	a.Plan = ledger.Plan(plan)
	a.CreatedAt, a.UpdatedAt, a.DailyNotBefore = FromMicros(created), FromMicros(updated), FromMicros(notBefore)
	return &a, nil
}

// Grant reads a grants row.
func Grant(sc Scanner) (*ledger.Grant, error) {
	var g ledger.Grant
	var source string
	var expires, created int64
	if err := sc.Scan(&g.ID, &g.AccountID, &source, &g.Reference, &g.AmountCredits, &g.RemainingCredits,
		&g.HeldCredits, &g.ChargedCredits, &g.ExpiredCredits, &expires, &created, &g.Notices); err != nil {
		return nil, err
	}
	g.Source = ledger.Source(source)
	g.ExpiresAt, g.CreatedAt = FromMicros(expires), FromMicros(created)
	return &g, nil
}

// Hold reads a holds row.
func Hold(sc Scanner) (*ledger.Hold, error) {
	var h ledger.Hold
	var category, status string
	var portions []byte
	var created, expires, resolved int64
	if err := sc.Scan(&h.ID, &h.AccountID, &h.Action, &category, &h.Quantity, &h.UnitPriceCredits,
		&h.AmountCredits, &status, &portions, &created, &expires, &resolved, &h.CapturedQuantity,
		&h.CapturedCredits, &h.ReleaseReason); err != nil {
		return nil, err
	}
	h.Category, h.Status = ledger.Category(category), ledger.HoldStatus(status)
	if err := json.Unmarshal(portions, &h.Portions); err != nil {
		return nil, fmt.Errorf("hold %s: portions: %w", h.ID, err)
	}
	h.CreatedAt, h.ExpiresAt, h.ResolvedAt = FromMicros(created), FromMicros(expires), FromMicros(resolved)
	return &h, nil
}

// Entry reads an entries row.
func Entry(sc Scanner) (ledger.Entry, error) {
	var e ledger.Entry
	var typ, source string
	var legs []byte
	var created int64
	if err := sc.Scan(&e.ID, &e.AccountID, &typ, &e.AmountCredits, &source, &e.GrantID, &e.HoldID,
		&e.Action, &e.Quantity, &e.Reason, &legs, &created); err != nil {
		return e, err
	}
	e.Type, e.Source = ledger.EntryType(typ), ledger.Source(source)
	if err := json.Unmarshal(legs, &e.Legs); err != nil {
		return e, fmt.Errorf("entry %d: legs: %w", e.ID, err)
	}
	e.CreatedAt = FromMicros(created)
	return e, nil
}

// Job reads a jobs row.
func Job(sc Scanner) (*ledger.Job, error) {
	var j ledger.Job
	var category, status string
	var params, outputs []byte
	var leaseExpires, created, updated, finished int64
	if err := sc.Scan(&j.ID, &j.AccountID, &j.Action, &category, &j.Quantity, &params, &j.ParamsVersion,
		&status, &j.HoldID, &j.CostCredits, &j.ChargedCredits, &j.Attempts, &j.LeaseID, &leaseExpires,
		&outputs, &j.Error, &created, &updated, &finished, &j.LeaseParamsVersion, &j.Seq); err != nil {
		return nil, err
	}
	j.Category, j.Status, j.Params = ledger.Category(category), ledger.JobStatus(status), json.RawMessage(params)
	if err := json.Unmarshal(outputs, &j.Outputs); err != nil {
		return nil, fmt.Errorf("job %s: outputs: %w", j.ID, err)
	}
	if len(j.Outputs) == 0 {
		j.Outputs = nil
	}
	j.LeaseExpiresAt, j.CreatedAt = FromMicros(leaseExpires), FromMicros(created)
	j.UpdatedAt, j.FinishedAt = FromMicros(updated), FromMicros(finished)
	return &j, nil
}

// Asset reads an assets row.
func Asset(sc Scanner) (*ledger.Asset, error) {
	var a ledger.Asset
	var created int64
	if err := sc.Scan(&a.ID, &a.AccountID, &a.JobID, &a.Kind, &a.ContentType, &a.Width, &a.Height,
		&a.Bytes, &a.SHA256, &created, &a.State, &a.Seq); err != nil {
		return nil, err
	}
	a.CreatedAt = FromMicros(created)
	return &a, nil
}

// Idempotency reads an idempotency_keys row.
func Idempotency(sc Scanner) (*ledger.IdempotencyRecord, error) {
	var r ledger.IdempotencyRecord
	var created, status int64
	if err := sc.Scan(&r.Principal, &r.Key, &r.Fingerprint, &status, &r.Body, &created); err != nil {
		return nil, err
	}
	r.Status = int(status)
	if len(r.Body) == 0 {
		r.Body = nil
	}
	r.CreatedAt = FromMicros(created)
	return &r, nil
}

// ID reads a single text column.
func ID(sc Scanner) (string, error) {
	var id string
	err := sc.Scan(&id)
	return id, err
}

// HoldExpiry reads a pending hold's id, account and expiry.
func HoldExpiry(sc Scanner) (ledger.HoldExpiry, error) {
	var h ledger.HoldExpiry
	var expires int64
	err := sc.Scan(&h.HoldID, &h.AccountID, &expires)
	h.ExpiresAt = FromMicros(expires)
	return h, err
}
