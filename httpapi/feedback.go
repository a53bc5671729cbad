package httpapi

import (
	"net/http"
	"strconv"
)

// listFeedback lists the answers to the help articles' "Was this article
// helpful?" (the web app takes them), latest first; ?article= narrows it
// to one article.
func (s *Server) listFeedback(w http.ResponseWriter, r *http.Request, p Principal) {
	cursor, limit, err := s.pageParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	fs, next, err := s.Engine.ListFeedback(r.Context(), r.URL.Query().Get("article"), cursor, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := listResponse{Object: "list", Data: fs, HasMore: next != 0}
	if next != 0 {
		resp.NextCursor = strconv.FormatInt(next, 10)
	}
	writeJSON(w, http.StatusOK, resp)
}
