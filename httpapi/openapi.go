package httpapi

import (
	"net/http"

	"github.com/creditd/creditd/api"
)

// getOpenAPI serves the API's OpenAPI 3.1 document (package api) as JSON;
// no key is needed.
func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	writeRaw(w, http.StatusOK, api.JSON())
}
