package httpapi

import (
	"net/http"

	"github.com/creditd/creditd/app"
)

// listFeedback lists the answers to the help articles' "Was this article
// helpful?" (the web app takes them), latest first; ?article= narrows it
// to one article.
func (s *Server) listFeedback(w http.ResponseWriter, r *http.Request, p Principal) {
	pr, err := s.pageRequest(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pg, err := s.App.ListFeedback(r.Context(), app.FeedbackRequest{Article: r.URL.Query().Get("article"), Cursor: pr.Cursor, Limit: pr.Limit})
	writePage(s, w, r, pg, err)
}
