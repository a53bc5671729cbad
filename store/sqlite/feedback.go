package sqlite

import (
	"context"
	"fmt"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

// Queries of help article feedback (migration 12). They are not prepared
// at Open: they run rarely, and `creditd verify` (OpenReadOnly) may read a
// database that lacks the table.
const (
	// qSaveFeedback takes the next seq in the statement itself: the one
	// writer connection runs one save at a time.
	qSaveFeedback = `INSERT INTO feedback (account_id, article, helpful, comment, created_at, updated_at, seq)
		VALUES (?, ?, ?, ?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM feedback))
		ON CONFLICT (account_id, article) DO UPDATE SET helpful = excluded.helpful, comment = excluded.comment,
			updated_at = excluded.updated_at, seq = excluded.seq
		RETURNING created_at, seq`
	qGetFeedback  = `SELECT ` + rowscan.FeedbackCols + ` FROM feedback WHERE account_id = ? AND article = ?`
	qListFeedback = `SELECT ` + rowscan.FeedbackCols + ` FROM feedback WHERE seq < ?
		ORDER BY seq DESC LIMIT ?`
	qListArticleFeedback = `SELECT ` + rowscan.FeedbackCols + ` FROM feedback WHERE article = ? AND seq < ?
		ORDER BY seq DESC LIMIT ?`
)

// SaveFeedback inserts or replaces an account's feedback on an article
// through the writer connection, in its own transaction (it waits for a
// running batch).
func (s *Store) SaveFeedback(ctx context.Context, f *ledger.Feedback) error {
	const op = "save feedback"
	if s.w == nil {
		return fmt.Errorf("sqlite: %s: %w", op, ErrReadOnly)
	}
	var created int64
	err := s.w.QueryRowContext(ctx, qSaveFeedback, f.AccountID, f.Article, f.Helpful, f.Comment,
		rowscan.Micros(f.CreatedAt), rowscan.Micros(f.UpdatedAt)).Scan(&created, &f.Seq)
	if err != nil {
		return wrap(op+" of "+f.AccountID, err, "")
	}
	f.CreatedAt = rowscan.FromMicros(created)
	return nil
}

// GetFeedback reads an account's feedback on an article.
func (s *Store) GetFeedback(ctx context.Context, k ledger.FeedbackKey) (*ledger.Feedback, error) {
	f, err := rowscan.Feedback(s.r.QueryRowContext(ctx, qGetFeedback, k.AccountID, k.Article))
	if err != nil {
		return nil, wrap("get feedback of "+k.AccountID+" on "+k.Article, err, "")
	}
	return f, nil
}

// ListFeedback pages feedback latest answer first (by Seq). A Limit <= 0
// means no limit.
func (s *Store) ListFeedback(ctx context.Context, p ledger.ListFeedbackParams) ([]ledger.Feedback, error) {
	before, limit := cursor(p.BeforeSeq, p.Limit)
	q, args := qListFeedback, []any{before, limit}
	if p.Article != "" {
		q, args = qListArticleFeedback, []any{p.Article, before, limit}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list feedback", err, "")
	}
	defer rows.Close()
	var out []ledger.Feedback
	for rows.Next() {
		f, err := rowscan.Feedback(rows)
		if err != nil {
			return nil, wrap("list feedback", err, "")
		}
		out = append(out, *f)
	}
	return out, wrap("list feedback", rows.Err(), "")
}
