package rowscan

import "github.com/creditd/creditd/ledger"

// FeedbackCols are the columns Feedback reads, in its order.
const FeedbackCols = `account_id, article, helpful, comment, created_at, updated_at, seq`

// Feedback reads a feedback row.
func Feedback(sc Scanner) (*ledger.Feedback, error) {
	var f ledger.Feedback
	var created, updated int64
	if err := sc.Scan(&f.AccountID, &f.Article, &f.Helpful, &f.Comment, &created, &updated, &f.Seq); err != nil {
		return nil, err
	}
	f.CreatedAt, f.UpdatedAt = FromMicros(created), FromMicros(updated)
	return &f, nil
}
