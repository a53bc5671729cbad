package postgres

import (
	"context"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

// Queries of help article feedback (migration 10).
const (
	qSaveFeedback = `INSERT INTO feedback AS f (account_id, article, helpful, comment, created_at, updated_at, seq)
		VALUES ($1, $2, $3, $4, $5, $6, nextval('feedback_seq'))
		ON CONFLICT (account_id, article) DO UPDATE SET helpful = excluded.helpful, comment = excluded.comment,
			updated_at = excluded.updated_at, seq = excluded.seq
		RETURNING created_at, seq`
	qGetFeedback  = `SELECT ` + rowscan.FeedbackCols + ` FROM feedback WHERE account_id = $1 AND article = $2`
	qListFeedback = `SELECT ` + rowscan.FeedbackCols + ` FROM feedback WHERE seq < $1
		ORDER BY seq DESC LIMIT $2`
	qListArticleFeedback = `SELECT ` + rowscan.FeedbackCols + ` FROM feedback WHERE article = $1 AND seq < $2
		ORDER BY seq DESC LIMIT $3`
)

// SaveFeedback inserts or replaces an account's feedback on an article in
// its own transaction (the upsert's row lock orders saves of the same
// answer from several nodes).
func (s *Store) SaveFeedback(ctx context.Context, f *ledger.Feedback) error {
	var created int64
	err := s.pool.QueryRow(ctx, qSaveFeedback, f.AccountID, f.Article, f.Helpful, f.Comment,
		rowscan.Micros(f.CreatedAt), rowscan.Micros(f.UpdatedAt)).Scan(&created, &f.Seq)
	if err != nil {
		return wrap("save feedback of "+f.AccountID, err, "")
	}
	f.CreatedAt = rowscan.FromMicros(created)
	return nil
}

// GetFeedback reads an account's feedback on an article.
func (s *Store) GetFeedback(ctx context.Context, k ledger.FeedbackKey) (*ledger.Feedback, error) {
	return getOne(ctx, s, "get feedback of "+k.AccountID+" on "+k.Article, rowscan.Feedback, qGetFeedback, k.AccountID, k.Article)
}

// ListFeedback pages feedback latest answer first (by Seq). A Limit <= 0
// means no limit.
func (s *Store) ListFeedback(ctx context.Context, p ledger.ListFeedbackParams) ([]ledger.Feedback, error) {
	before, limit := cursor(p.BeforeSeq, p.Limit)
	var out []*ledger.Feedback
	var err error
	if p.Article != "" {
		out, err = getAll(ctx, s, "list feedback", rowscan.Feedback, qListArticleFeedback, p.Article, before, limit)
	} else {
		out, err = getAll(ctx, s, "list feedback", rowscan.Feedback, qListFeedback, before, limit)
	}
	return values(out), err
}
