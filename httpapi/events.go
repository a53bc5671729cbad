package httpapi

import (
	"net/http"

	"github.com/creditd/creditd/internal/httpx"
)

// getEvents streams an account's events as Server-Sent Events (the hub is
// the application layer's, app.Service.SubscribeEvents; httpx.ServeEvents
// writes the stream).
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request, p Principal) {
	httpx.ServeEvents(w, r, s.App, s.log, r.PathValue("id"), p.Claims)
}
