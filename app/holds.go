package app

import (
	"context"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// ReserveRequest asks for a hold of Quantity (nil: 1) outputs of Action on
// an account, for TTLSeconds (nil: hold_ttl_seconds_default).
type ReserveRequest struct {
	AccountID  string
	Action     string
	Quantity   *int64
	TTLSeconds *int64
	Idem       *Idempotency
}

// Reserve creates a pending hold; it answers 201 with the hold.
func (s *Service) Reserve(ctx context.Context, r ReserveRequest) (Outcome[*ledger.Hold], error) {
	if r.AccountID == "" || r.Action == "" {
		return Outcome[*ledger.Hold]{}, ledger.Errorf(ledger.EInvalid, "account_id and action are required")
	}
	rp := ledger.ReserveParams{Action: r.Action, Quantity: 1}
	if r.Quantity != nil {
		rp.Quantity = *r.Quantity
	}
	if r.TTLSeconds != nil {
		if *r.TTLSeconds < 1 {
			return Outcome[*ledger.Hold]{}, ledger.Errorf(ledger.EInvalid, "ttl_seconds must be between 1 and %d", s.cfg.Limits.HoldTTLSecondsMax)
		}
		rp.TTLSeconds = *r.TTLSeconds
	}
	return write(s, r.Idem, renderHoldCreated, func(idem *engine.Idempotency[*ledger.Hold]) (engine.Outcome[*ledger.Hold], error) {
		return s.eng.Reserve(ctx, engine.ReserveParams{AccountID: r.AccountID, ReserveParams: rp, Idem: idem})
	})
}

// CaptureRequest charges a hold for Quantity outputs delivered (required).
type CaptureRequest struct {
	HoldID   string
	Quantity *int64
	Idem     *Idempotency
}

// Capture charges a hold and returns the rest; it answers 200 with the
// hold.
func (s *Service) Capture(ctx context.Context, r CaptureRequest) (Outcome[*ledger.Hold], error) {
	if r.Quantity == nil {
		return Outcome[*ledger.Hold]{}, ledger.Errorf(ledger.EInvalid, "quantity (the number of outputs delivered) is required")
	}
	return s.holdWrite(ctx, engine.HoldParams{HoldID: r.HoldID, Quantity: *r.Quantity}, r.Idem, s.eng.Capture)
}

// ReleaseRequest returns all of a hold's credits, for Reason (required).
type ReleaseRequest struct {
	HoldID string
	Reason string
	Idem   *Idempotency
}

// Release releases a hold; it answers 200 with the hold.
func (s *Service) Release(ctx context.Context, r ReleaseRequest) (Outcome[*ledger.Hold], error) {
	if r.Reason == "" {
		return Outcome[*ledger.Hold]{}, ledger.Errorf(ledger.EInvalid, "reason is required: failed, cancelled, error or interrupted")
	}
	return s.holdWrite(ctx, engine.HoldParams{HoldID: r.HoldID, Reason: r.Reason}, r.Idem, s.eng.Release)
}

// ExtendRequest moves a pending hold's expiry to now + TTLSeconds
// (required).
type ExtendRequest struct {
	HoldID     string
	TTLSeconds *int64
	Idem       *Idempotency
}

// Extend extends a hold; it answers 200 with the hold.
func (s *Service) Extend(ctx context.Context, r ExtendRequest) (Outcome[*ledger.Hold], error) {
	if r.TTLSeconds == nil {
		return Outcome[*ledger.Hold]{}, ledger.Errorf(ledger.EInvalid, "ttl_seconds is required")
	}
	return s.holdWrite(ctx, engine.HoldParams{HoldID: r.HoldID, TTLSeconds: *r.TTLSeconds}, r.Idem, s.eng.Extend)
}

// holdWrite runs a write on an existing hold: call is the engine method.
func (s *Service) holdWrite(ctx context.Context, hp engine.HoldParams, key *Idempotency, call func(context.Context, engine.HoldParams) (engine.Outcome[*ledger.Hold], error)) (Outcome[*ledger.Hold], error) {
	if hp.HoldID == "" {
		return Outcome[*ledger.Hold]{}, ledger.Errorf(ledger.EInvalid, "hold_id is required")
	}
	return write(s, key, renderHold, func(idem *engine.Idempotency[*ledger.Hold]) (engine.Outcome[*ledger.Hold], error) {
		hp.Idem = idem
		return call(ctx, hp)
	})
}

// Hold reads a hold (expiring it first if its time has passed).
func (s *Service) Hold(ctx context.Context, id string) (ledger.Hold, error) {
	return s.eng.GetHold(ctx, id)
}
