package engine

import (
	"context"
	"time"

	"github.com/creditd/creditd/ledger"
)

// PutAccountParams creates or updates an account. Empty Plan or Timezone
// keep the current value (free and UTC on creation); a nil
// LowBalanceThreshold keeps it (alerts.low_balance_threshold on creation).
type PutAccountParams struct {
	ID                  string
	Plan                ledger.Plan
	Timezone            string
	LowBalanceThreshold *int64
	Idem                *Idempotency[*AccountResult]
}

// AccountResult is an account and whether this call created it.
type AccountResult struct {
	Account ledger.Account
	Created bool
}

// PutAccount creates an account (with its signup grant, and today's daily
// credits on the free plan) or updates its plan and time zone.
func (e *Engine) PutAccount(ctx context.Context, p PutAccountParams) (Outcome[*AccountResult], error) {
	if out, ok, err := stored(ctx, e, p.Idem); ok {
		return out, err
	}
	if !ledger.ValidID(p.ID, e.cfg.Limits.IDBytesMax) {
		return Outcome[*AccountResult]{}, ledger.Errorf(ledger.EInvalid, "account id must be 1-%d characters of letters, digits, '_', '-', '.', ':'", e.cfg.Limits.IDBytesMax)
	}
	if p.Plan != "" && p.Plan != ledger.PlanFree && p.Plan != ledger.PlanPaid {
		return Outcome[*AccountResult]{}, ledger.Errorf(ledger.EInvalid, "plan must be \"free\" or \"paid\"")
	}
	if p.Timezone != "" && !ledger.ValidTimezone(p.Timezone) {
		return Outcome[*AccountResult]{}, ledger.Errorf(ledger.EInvalid, "unknown time zone %q (use an IANA name such as Europe/Berlin)", p.Timezone)
	}
	if t := p.LowBalanceThreshold; t != nil && (*t < 0 || *t > ledger.LowBalanceThresholdMax) {
		return Outcome[*AccountResult]{}, ledger.Errorf(ledger.EInvalid, "low_balance_threshold must be an integer between 0 and %d", int64(ledger.LowBalanceThresholdMax))
	}
	return submitWrite(ctx, e, &op{kind: "put_account", account: p.ID, apply: func(b *batch, st *ledger.State) (any, error) {
		if st == nil {
			plan, tz := p.Plan, p.Timezone
			if plan == "" {
				plan = ledger.PlanFree
			}
			if tz == "" {
				tz = "UTC"
			}
			st = ledger.NewAccount(e.cfg, b.now, p.ID, plan, tz, b.ch)
			if t := p.LowBalanceThreshold; t != nil {
				st.Account.LowBalanceThreshold = *t
				st.InitAlerts(e.cfg, b.now)
			}
			b.states[p.ID] = st
			b.touched[p.ID] = true
			return &AccountResult{Account: st.Account, Created: true}, nil
		}
		st.UpdateAccount(e.cfg, b.now, p.Plan, p.Timezone, b.ch)
		if t := p.LowBalanceThreshold; t != nil {
			if err := st.SetLowBalanceThreshold(e.cfg, b.now, *t, b.ch); err != nil {
				return nil, err
			}
		}
		return &AccountResult{Account: st.Account}, nil
	}}, p.Idem)
}

// GetAccount reads an account.
func (e *Engine) GetAccount(ctx context.Context, id string) (ledger.Account, error) {
	st, err := e.state(ctx, id)
	if err != nil {
		return ledger.Account{}, err
	}
	return st.Account, nil
}

// Balance returns an account's balance now.
func (e *Engine) Balance(ctx context.Context, id string) (ledger.Balance, error) {
	st, err := e.state(ctx, id)
	if err != nil {
		return ledger.Balance{}, err
	}
	return st.View(e.cfg, e.clock.Now()), nil
}

// Quote prices quantity outputs of action against the balance now.
func (e *Engine) Quote(ctx context.Context, id, action string, quantity int64) (ledger.Quote, error) {
	if _, err := ledger.ValidateReserve(e.cfg, ledger.ReserveParams{Action: action, Quantity: quantity}); err != nil {
		return ledger.Quote{}, err
	}
	st, err := e.state(ctx, id)
	if err != nil {
		return ledger.Quote{}, err
	}
	return st.Quote(e.cfg, e.clock.Now(), action, quantity)
}

// GrantParams adds credits to an account.
type GrantParams struct {
	AccountID string
	ledger.GrantParams
	Idem *Idempotency[*GrantResult]
}

// GrantResult is a grant and whether this call created it (false when the
// reference had already been granted with the same amount and expiry).
type GrantResult struct {
	Grant   ledger.Grant
	Created bool
}

// Grant adds a bucket. A reference makes it idempotent: the same
// (account, source, reference) again returns the first grant, or a
// conflict if amount or expiry differ.
func (e *Engine) Grant(ctx context.Context, p GrantParams) (Outcome[*GrantResult], error) {
	if out, ok, err := stored(ctx, e, p.Idem); ok {
		return out, err
	}
	if p.Reference != "" {
		if err := ledger.CheckReference(p.Reference); err != nil {
			return Outcome[*GrantResult]{}, err
		}
	}
	if err := ledger.ValidateGrant(e.cfg, e.clock.Now(), p.GrantParams); err != nil {
		return Outcome[*GrantResult]{}, err
	}
	return submitWrite(ctx, e, &op{kind: "grant", account: p.AccountID, apply: func(b *batch, st *ledger.State) (any, error) {
		if st == nil {
			return nil, accountNotFound(p.AccountID)
		}
		if p.Reference != "" {
			key := ledger.GrantReferenceParams{AccountID: p.AccountID, Source: p.Source, Reference: p.Reference}
			prev := b.refs[key]
			if prev == nil {
				g, err := b.tx.GetGrantByReference(b.ctx, key)
				if err != nil && ledger.ErrorCode(err) != ledger.ENotFound {
					return nil, err
				}
				prev = g
			}
			if prev != nil {
				if prev.AmountCredits != p.AmountCredits || !prev.ExpiresAt.Equal(p.ExpiresAt) {
					err := ledger.Errorf(ledger.EConflict, "reference %q was already granted with a different amount or expiry", p.Reference)
					err.Details = map[string]any{"grant": prev}
					return nil, err
				}
				return &GrantResult{Grant: *prev}, nil
			}
		}
		g, err := st.Grant(e.cfg, b.now, p.GrantParams, b.ch)
		if err != nil {
			return nil, err
		}
		if p.Reference != "" {
			b.refs[ledger.GrantReferenceParams{AccountID: p.AccountID, Source: p.Source, Reference: p.Reference}] = g
		}
		return &GrantResult{Grant: *g, Created: true}, nil
	}}, p.Idem)
}

// ReserveParams asks for a hold on an account.
type ReserveParams struct {
	AccountID string
	ledger.ReserveParams
	Idem *Idempotency[*ledger.Hold]
}

// Reserve creates a pending hold for quantity outputs of an action.
func (e *Engine) Reserve(ctx context.Context, p ReserveParams) (Outcome[*ledger.Hold], error) {
	if out, ok, err := stored(ctx, e, p.Idem); ok {
		return out, err
	}
	if _, err := ledger.ValidateReserve(e.cfg, p.ReserveParams); err != nil {
		return Outcome[*ledger.Hold]{}, err
	}
	return submitWrite(ctx, e, &op{kind: "reserve", account: p.AccountID, apply: func(b *batch, st *ledger.State) (any, error) {
		if st == nil {
			return nil, accountNotFound(p.AccountID)
		}
		h, err := st.Reserve(e.cfg, b.now, p.ReserveParams, b.ch)
		if err != nil {
			return nil, err
		}
		c := *h
		return &c, nil
	}}, p.Idem)
}

// holdAccount finds the account of a hold.
func (e *Engine) holdAccount(ctx context.Context, holdID string) (string, error) {
	e.holdMu.Lock()
	acct, ok := e.holdAcct[holdID]
	e.holdMu.Unlock()
	if ok {
		return acct, nil
	}
	h, err := e.store.GetHold(ctx, holdID)
	if err != nil {
		if ledger.ErrorCode(err) == ledger.ENotFound {
			return "", holdNotFound(holdID)
		}
		return "", err
	}
	return h.AccountID, nil
}

func holdNotFound(id string) error { return ledger.Errorf(ledger.ENotFound, "no hold %q", id) }

// storedHold returns a hold no longer pending in st: resolved earlier in
// this batch, or from the store.
func (b *batch) storedHold(id, account string) (*ledger.Hold, error) {
	if h := b.ch.Holds[id]; h != nil {
		return h, nil
	}
	h, err := b.tx.GetHold(b.ctx, id)
	if err != nil {
		if ledger.ErrorCode(err) == ledger.ENotFound {
			return nil, holdNotFound(id)
		}
		return nil, err
	}
	if h.AccountID != account {
		return nil, holdNotFound(id)
	}
	return h, nil
}

// HoldParams names a hold and what to do with it.
type HoldParams struct {
	HoldID     string
	Quantity   int64  // capture
	Reason     string // release
	TTLSeconds int64  // extend
	Idem       *Idempotency[*ledger.Hold]
}

func (e *Engine) holdOp(ctx context.Context, kind string, p HoldParams, fn func(b *batch, st *ledger.State) (*ledger.Hold, error)) (Outcome[*ledger.Hold], error) {
	if out, ok, err := stored(ctx, e, p.Idem); ok {
		return out, err
	}
	acct, err := e.holdAccount(ctx, p.HoldID)
	if err != nil {
		return Outcome[*ledger.Hold]{}, err
	}
	return submitWrite(ctx, e, &op{kind: kind, account: acct, apply: func(b *batch, st *ledger.State) (any, error) {
		if st == nil {
			return nil, holdNotFound(p.HoldID)
		}
		h, err := fn(b, st)
		if err != nil {
			return nil, err
		}
		c := *h
		return &c, nil
	}}, p.Idem)
}

// Capture charges unit price × quantity delivered and returns the rest.
func (e *Engine) Capture(ctx context.Context, p HoldParams) (Outcome[*ledger.Hold], error) {
	return e.holdOp(ctx, "capture", p, func(b *batch, st *ledger.State) (*ledger.Hold, error) {
		if st.Pending(p.HoldID) != nil {
			return st.Capture(e.cfg, b.now, p.HoldID, p.Quantity, b.ch)
		}
		h, err := b.storedHold(p.HoldID, st.Account.ID)
		if err != nil {
			return nil, err
		}
		return ledger.Repeat(h, ledger.Resolution{Capture: true, Quantity: p.Quantity})
	})
}

// Release returns all of a hold's credits.
func (e *Engine) Release(ctx context.Context, p HoldParams) (Outcome[*ledger.Hold], error) {
	return e.holdOp(ctx, "release", p, func(b *batch, st *ledger.State) (*ledger.Hold, error) {
		if st.Pending(p.HoldID) != nil {
			return st.Release(e.cfg, b.now, p.HoldID, p.Reason, b.ch)
		}
		h, err := b.storedHold(p.HoldID, st.Account.ID)
		if err != nil {
			return nil, err
		}
		return ledger.Repeat(h, ledger.Resolution{Reason: p.Reason})
	})
}

// Extend moves a pending hold's expiry to now + ttl.
func (e *Engine) Extend(ctx context.Context, p HoldParams) (Outcome[*ledger.Hold], error) {
	return e.holdOp(ctx, "extend", p, func(b *batch, st *ledger.State) (*ledger.Hold, error) {
		if st.Pending(p.HoldID) != nil {
			return st.Extend(e.cfg, b.now, p.HoldID, p.TTLSeconds, b.ch)
		}
		h, err := b.storedHold(p.HoldID, st.Account.ID)
		if err != nil {
			return nil, err
		}
		e := ledger.Errorf(ledger.EConflict, "hold %s is %s and can no longer be extended", h.ID, h.Status)
		e.Details = map[string]any{"hold": h}
		return nil, e
	})
}

// GetHold reads a hold (expiring it first if its time has passed).
func (e *Engine) GetHold(ctx context.Context, id string) (ledger.Hold, error) {
	acct, err := e.holdAccount(ctx, id)
	if err != nil {
		return ledger.Hold{}, err
	}
	st, err := e.state(ctx, acct)
	if err != nil {
		return ledger.Hold{}, err
	}
	if h := st.Pending(id); h != nil {
		return *h, nil
	}
	h, err := e.store.GetHold(ctx, id)
	if err != nil {
		if ledger.ErrorCode(err) == ledger.ENotFound {
			return ledger.Hold{}, holdNotFound(id)
		}
		return ledger.Hold{}, err
	}
	return *h, nil
}

// ListEntries pages an account's ledger newest first. It returns the
// cursor for the next page, 0 when there is none.
func (e *Engine) ListEntries(ctx context.Context, accountID string, beforeID int64, limit int) ([]ledger.Entry, int64, error) {
	if limit == 0 {
		limit = e.cfg.Limits.PageSizeDefault
	}
	if limit < 1 || limit > e.cfg.Limits.PageSizeMax {
		return nil, 0, ledger.Errorf(ledger.EInvalid, "limit must be between 1 and %d", e.cfg.Limits.PageSizeMax)
	}
	if beforeID < 0 {
		return nil, 0, ledger.Errorf(ledger.EInvalid, "bad cursor")
	}
	if _, err := e.state(ctx, accountID); err != nil {
		return nil, 0, err
	}
	es, err := e.store.ListEntries(ctx, ledger.ListEntriesParams{AccountID: accountID, BeforeID: beforeID, Limit: limit + 1})
	if err != nil {
		return nil, 0, err
	}
	var next int64
	if len(es) > limit {
		es = es[:limit]
		next = es[limit-1].ID
	}
	return es, next, nil
}

// Now returns the engine clock's time.
func (e *Engine) Now() time.Time { return e.clock.Now() }

// ConsumeOnce durably records key under scope for an account and reports
// whether this call was the first to do so (for single-use tokens such as
// sign-in links). Records live as long as idempotency keys (≥ 24 h).
func (e *Engine) ConsumeOnce(ctx context.Context, accountID, scope, key string) (first bool, err error) {
	r := e.submitResult(ctx, &op{kind: "consume_once", account: accountID,
		idem:   &IdempotencyKey{Principal: scope, Key: key, Fingerprint: "once"},
		render: func(any) (int, []byte) { return 200, []byte("{}") },
		apply: func(b *batch, st *ledger.State) (any, error) {
			if st == nil {
				return nil, accountNotFound(accountID)
			}
			return nil, nil
		}})
	if r.err != nil {
		return false, r.err
	}
	return !r.replayed, nil
}

// Consumed reports whether ConsumeOnce has recorded key under scope (and
// the record is still kept). It reads the store and records nothing: a
// check before the consuming step, which stays the one that decides.
func (e *Engine) Consumed(ctx context.Context, scope, key string) (bool, error) {
	_, err := e.store.GetIdempotency(ctx, scope, key)
	switch {
	case err == nil:
		return true, nil
	case ledger.ErrorCode(err) == ledger.ENotFound:
		return false, nil
	default:
		return false, err
	}
}

// RefundParams takes back the credits of a refunded purchase.
type RefundParams struct {
	AccountID string
	Source    ledger.Source
	Reference string // the grant's reference (e.g. the checkout session)
	Reason    string // shown in the history, e.g. the refund id
}

// RefundResult says what a refund took back. Found is false when no grant
// has the reference (yet).
type RefundResult struct {
	Found        bool
	GrantID      string
	TakenCredits int64
}

// Refund takes back what is left of the grant with the reference, never
// below zero, and ends the grant. Repeating it takes nothing more.
func (e *Engine) Refund(ctx context.Context, p RefundParams) (*RefundResult, error) {
	v, err := e.submit(ctx, &op{kind: "refund", account: p.AccountID, apply: func(b *batch, st *ledger.State) (any, error) {
		if st == nil {
			return nil, accountNotFound(p.AccountID)
		}
		key := ledger.GrantReferenceParams{AccountID: p.AccountID, Source: p.Source, Reference: p.Reference}
		g := b.refs[key]
		if g == nil {
			found, err := b.tx.GetGrantByReference(b.ctx, key)
			if err != nil {
				if ledger.ErrorCode(err) == ledger.ENotFound {
					return &RefundResult{}, nil
				}
				return nil, err
			}
			g = found
		}
		taken := st.RefundGrant(e.cfg, b.now, g.ID, p.Reason, b.ch)
		b.refunded(st, g, taken)
		return &RefundResult{Found: true, GrantID: g.ID, TakenCredits: taken}, nil
	}})
	if err != nil {
		return nil, err
	}
	return v.(*RefundResult), nil
}
