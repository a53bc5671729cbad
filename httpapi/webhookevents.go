package httpapi

import (
	"net/http"
)

// listWebhookEvents pages the webhook events oldest first
// (?cursor=&limit=, as the other lists).
func (s *Server) listWebhookEvents(w http.ResponseWriter, r *http.Request, p Principal) {
	pr, err := s.pageRequest(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pg, err := s.App.ListEvents(r.Context(), pr)
	writePage(s, w, r, pg, err)
}

// getWebhookEvent reads one webhook event.
func (s *Server) getWebhookEvent(w http.ResponseWriter, r *http.Request, p Principal) {
	ev, err := s.App.Event(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, &ev)
}
