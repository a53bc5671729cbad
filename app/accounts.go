package app

import (
	"context"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// PutAccountRequest creates or updates an account (see engine.PutAccount).
type PutAccountRequest struct {
	ID       string
	Plan     ledger.Plan
	Timezone string
	// LowBalanceThreshold sets the line of credits.low (nil keeps it).
	LowBalanceThreshold *int64
	Idem                *Idempotency
}

// PutAccount creates an account or updates its plan and time zone; it
// answers 201 with the account when it created it, 200 otherwise.
func (s *Service) PutAccount(ctx context.Context, r PutAccountRequest) (Outcome[*engine.AccountResult], error) {
	return write(s, r.Idem, renderAccount, func(idem *engine.Idempotency[*engine.AccountResult]) (engine.Outcome[*engine.AccountResult], error) {
		return s.eng.PutAccount(ctx, engine.PutAccountParams{ID: r.ID, Plan: r.Plan, Timezone: r.Timezone,
			LowBalanceThreshold: r.LowBalanceThreshold, Idem: idem})
	})
}

// Account reads an account.
func (s *Service) Account(ctx context.Context, id string) (ledger.Account, error) {
	return s.eng.GetAccount(ctx, id)
}

// Balance returns an account's balance now.
func (s *Service) Balance(ctx context.Context, id string) (ledger.Balance, error) {
	return s.eng.Balance(ctx, id)
}

// QuoteRequest prices Quantity outputs of Action for an account.
type QuoteRequest struct {
	AccountID string
	Action    string
	Quantity  int64
}

// Quote prices outputs of an action against the account's balance now.
func (s *Service) Quote(ctx context.Context, r QuoteRequest) (ledger.Quote, error) {
	if r.Action == "" {
		return ledger.Quote{}, ledger.Errorf(ledger.EInvalid, "action is required")
	}
	return s.eng.Quote(ctx, r.AccountID, r.Action, r.Quantity)
}

// Entries pages an account's ledger entries, newest first.
func (s *Service) Entries(ctx context.Context, r PageRequest) (Page[ledger.Entry], error) {
	es, next, err := s.eng.ListEntries(ctx, r.AccountID, r.Cursor, r.Limit)
	return Page[ledger.Entry]{Items: es, Next: next}, err
}

// GrantRequest adds credits to an account. A Reference makes it
// idempotent per (account, source, reference).
type GrantRequest struct {
	AccountID string
	Amount    int64
	Source    ledger.Source
	ExpiresAt *time.Time
	Reference string
	Idem      *Idempotency
}

// Grant adds a bucket of credits; it answers 201 with the grant, or 200
// with the earlier grant of the same reference.
func (s *Service) Grant(ctx context.Context, r GrantRequest) (Outcome[*engine.GrantResult], error) {
	if r.AccountID == "" {
		return Outcome[*engine.GrantResult]{}, ledger.Errorf(ledger.EInvalid, "account_id is required")
	}
	if r.Source == "" {
		return Outcome[*engine.GrantResult]{}, ledger.Errorf(ledger.EInvalid, "source is required (purchase, promo or admin)")
	}
	if r.Reference != "" {
		if err := ledger.CheckReference(r.Reference); err != nil {
			return Outcome[*engine.GrantResult]{}, err
		}
	}
	gp := ledger.GrantParams{Source: r.Source, AmountCredits: r.Amount, Reference: r.Reference}
	if r.ExpiresAt != nil {
		gp.ExpiresAt = r.ExpiresAt.UTC().Truncate(time.Microsecond)
	}
	return write(s, r.Idem, renderGrant, func(idem *engine.Idempotency[*engine.GrantResult]) (engine.Outcome[*engine.GrantResult], error) {
		return s.eng.Grant(ctx, engine.GrantParams{AccountID: r.AccountID, GrantParams: gp, Idem: idem})
	})
}

// PriceList is what GET /v1/prices answers: the prices, whether a worker
// serves each action now, and what each credit source pays for.
type PriceList struct {
	Prices  []PriceView
	Sources []SourceView
}

// PriceView is an action's price and whether a worker serves it now
// (engine.LiveActions).
type PriceView struct {
	ledger.Price
	Available bool `json:"available"`
}

// SourceView is a credit source and the categories it pays for.
type SourceView struct {
	Source     ledger.Source     `json:"source"`
	Categories []ledger.Category `json:"pays_for"`
}

// Prices lists the prices and sources.
func (s *Service) Prices(ctx context.Context) PriceList {
	var out PriceList
	for _, sr := range s.cfg.Sources {
		out.Sources = append(out.Sources, SourceView{sr.Source, sr.Categories})
	}
	live := s.eng.LiveActions(ctx)
	out.Prices = make([]PriceView, 0, len(s.cfg.Prices))
	for _, p := range s.cfg.Prices {
		out.Prices = append(out.Prices, PriceView{p, live[p.Action]})
	}
	return out
}

// FeedbackRequest pages the answers to the help articles' "Was this
// article helpful?", latest first; Article narrows it to one article.
type FeedbackRequest struct {
	Article string
	Cursor  int64
	Limit   int
}

// ListFeedback lists help-article feedback.
func (s *Service) ListFeedback(ctx context.Context, r FeedbackRequest) (Page[ledger.Feedback], error) {
	fs, next, err := s.eng.ListFeedback(ctx, r.Article, r.Cursor, r.Limit)
	return Page[ledger.Feedback]{Items: fs, Next: next}, err
}
