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

// WorkerPoll reads a worker_polls row: action, last_poll_at (µs).
func WorkerPoll(sc Scanner) (ledger.WorkerPoll, error) {
	var p ledger.WorkerPoll
	var us int64
	if err := sc.Scan(&p.Action, &us); err != nil {
		return p, err
	}
	p.At = FromMicros(us)
	return p, nil
}
