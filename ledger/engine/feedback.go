package engine

import (
	"context"

	"github.com/creditd/creditd/ledger"
)

// SaveFeedbackParams is an account's answer to a help article's "Was
// this article helpful?".
type SaveFeedbackParams struct {
	AccountID string
	Article   string
	Helpful   bool
	Comment   string
}

// SaveFeedback records an account's answer on an article, replacing its
// earlier one (see ledger.Feedback). The comment is cleaned and checked
// (ledger.CleanFeedbackComment): a comment that breaks the text rule or
// is longer than ledger.FeedbackCommentCharsMax is invalid_request, and
// nothing is stored. An unknown account is ENotFound. The store writes
// it durably before it returns.
func (e *Engine) SaveFeedback(ctx context.Context, p SaveFeedbackParams) (ledger.Feedback, error) {
	if err := ledger.CheckID("article", p.Article, e.cfg.Limits.IDBytesMax); err != nil {
		return ledger.Feedback{}, err
	}
	comment, err := ledger.CleanFeedbackComment(p.Comment)
	if err != nil {
		return ledger.Feedback{}, err
	}
	if _, err := e.GetAccount(ctx, p.AccountID); err != nil {
		return ledger.Feedback{}, err
	}
	now := e.clock.Now()
	f := ledger.Feedback{AccountID: p.AccountID, Article: p.Article, Helpful: p.Helpful, Comment: comment,
		CreatedAt: now, UpdatedAt: now}
	if err := e.store.SaveFeedback(ctx, &f); err != nil {
		return ledger.Feedback{}, err
	}
	f.CreatedAt, f.UpdatedAt = f.CreatedAt.UTC(), f.UpdatedAt.UTC()
	return f, nil
}

// Feedback reads an account's answer on an article; ok is false when it
// has none.
func (e *Engine) Feedback(ctx context.Context, accountID, article string) (f ledger.Feedback, ok bool, err error) {
	got, err := e.store.GetFeedback(ctx, ledger.FeedbackKey{AccountID: accountID, Article: article})
	if ledger.ErrorCode(err) == ledger.ENotFound {
		return ledger.Feedback{}, false, nil
	}
	if err != nil {
		return ledger.Feedback{}, false, err
	}
	return *got, true, nil
}

// ListFeedback pages the answers on an article ("" for every article),
// latest first; next is the cursor of the next page (0 on the last).
func (e *Engine) ListFeedback(ctx context.Context, article string, beforeSeq int64, limit int) ([]ledger.Feedback, int64, error) {
	if limit == 0 {
		limit = e.cfg.Limits.PageSizeDefault
	}
	if limit < 1 || limit > e.cfg.Limits.PageSizeMax || beforeSeq < 0 {
		return nil, 0, ledger.Errorf(ledger.EInvalid, "limit must be between 1 and %d", e.cfg.Limits.PageSizeMax)
	}
	if article != "" {
		if err := ledger.CheckID("article", article, e.cfg.Limits.IDBytesMax); err != nil {
			return nil, 0, err
		}
	}
	fs, err := e.store.ListFeedback(ctx, ledger.ListFeedbackParams{Article: article, BeforeSeq: beforeSeq, Limit: limit + 1})
	if err != nil {
		return nil, 0, err
	}
	var next int64
	if len(fs) > limit {
		fs = fs[:limit]
		next = fs[limit-1].Seq
	}
	if fs == nil {
		fs = []ledger.Feedback{}
	}
	return fs, next, nil
}
