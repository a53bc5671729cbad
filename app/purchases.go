package app

import (
	"context"
	"errors"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// Purchases (package billing): a paid pack is a grant whose reference is
// its checkout session, taken back by a refund with the same reference;
// a subscription moves its account between plans.

// GrantOnce grants credits with a reference at most once: the same
// (account, source, reference) again returns created false and the first
// grant, also after a refund ended it (a refund sets its expiry).
func (s *Service) GrantOnce(ctx context.Context, accountID string, source ledger.Source, credits int64, reference string) (g ledger.Grant, created bool, err error) {
	v, err := s.eng.Grant(ctx, engine.GrantParams{AccountID: accountID, GrantParams: ledger.GrantParams{
		Source: source, AmountCredits: credits, Reference: reference,
	}})
	if err != nil {
		// Granting a refunded reference again is a conflict naming the
		// first grant: that reference has been granted.
		var le *ledger.Error
		if errors.As(err, &le) && le.Code == ledger.EConflict {
			if g, ok := le.Details["grant"].(*ledger.Grant); ok && g.Reference == reference {
				return *g, false, nil
			}
		}
		return ledger.Grant{}, false, err
	}
	return v.Value.Grant, v.Value.Created, nil
}

// RefundResult says what a refund took back. Found is false when no grant
// has the reference.
type RefundResult = engine.RefundResult

// Refund takes back what is left of the grant of an account with a source
// and reference (never more than is left); reason is shown in the history.
func (s *Service) Refund(ctx context.Context, accountID string, source ledger.Source, reference, reason string) (*RefundResult, error) {
	return s.eng.Refund(ctx, engine.RefundParams{AccountID: accountID, Source: source, Reference: reference, Reason: reason})
}

// GrantByReference returns the live grant of an account with a source and
// reference (ok false when there is none, or it is spent in full or
// refunded).
func (s *Service) GrantByReference(ctx context.Context, accountID string, source ledger.Source, reference string) (g ledger.Grant, ok bool, err error) {
	if _, err := s.eng.GetAccount(ctx, accountID); err != nil {
		return ledger.Grant{}, false, err
	}
	st, err := s.store.LoadState(ctx, accountID)
	if err != nil {
		return ledger.Grant{}, false, err
	}
	for _, gr := range st.Grants {
		if gr.Source == source && gr.Reference == reference {
			g, ok = *gr, true
		}
	}
	return g, ok, nil
}

// SetPlan moves an existing account to plan (leaving free ends today's
// daily credits at once) and reports whether it changed. It never creates
// an account.
func (s *Service) SetPlan(ctx context.Context, accountID string, plan ledger.Plan) (changed bool, err error) {
	acct, err := s.eng.GetAccount(ctx, accountID)
	if err != nil {
		return false, err
	}
	if acct.Plan == plan {
		return false, nil
	}
	if _, err := s.eng.PutAccount(ctx, engine.PutAccountParams{ID: accountID, Plan: plan}); err != nil {
		return false, err
	}
	return true, nil
}
