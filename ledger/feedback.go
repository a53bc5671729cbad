package ledger

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Feedback is an account's answer to a help article's "Was this article
// helpful?": at most one per account and article. Answering again
// replaces the answer and its comment; CreatedAt stays the first answer's
// time.
type Feedback struct {
	AccountID string    `json:"account_id"`
	Article   string    `json:"article"`
	Helpful   bool      `json:"helpful"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Seq orders feedback for pagination (assigned by the store on every
	// save): the latest answer has the greatest.
	Seq int64 `json:"-"`
}

// FeedbackCommentCharsMax bounds a feedback comment, in characters
// (Unicode code points, after CRLF line ends become LF).
const FeedbackCommentCharsMax = 2000

// FeedbackKey names one account's feedback on one article.
type FeedbackKey struct {
	AccountID string
	Article   string
}

// ListFeedbackParams pages feedback newest answer first (by Seq).
// Article "" lists every article's; BeforeSeq 0 starts at the newest.
type ListFeedbackParams struct {
	Article   string
	BeforeSeq int64
	Limit     int
}

// CleanFeedbackComment is a comment as it is stored: line ends as LF
// (browsers send a textarea's as CRLF) and surrounding space trimmed.
// It checks the result against the text rule and FeedbackCommentCharsMax.
func CleanFeedbackComment(s string) (string, error) {
	if err := CheckText("comment", s, 0); err != nil {
		return "", err
	}
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	if n := utf8.RuneCountInString(s); n > FeedbackCommentCharsMax {
		return "", &Error{Code: EInvalid,
			Message: "comment must be at most " + strconv.Itoa(FeedbackCommentCharsMax) + " characters (it has " + strconv.Itoa(n) + ")",
			Details: map[string]any{"field": "comment", "characters": n, "characters_max": FeedbackCommentCharsMax}}
	}
	return s, nil
}
