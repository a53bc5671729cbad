package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/creditd/creditd/internal/httpx"
)

// Errors are *ledger.Error values; their codes map to HTTP statuses in the
// application layer's one table (app.Status), through httpx.

func writeJSON(w http.ResponseWriter, status int, v any) { httpx.WriteJSON(w, status, v) }

func writeRaw(w http.ResponseWriter, status int, body []byte) { httpx.WriteRaw(w, status, body) }

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	httpx.WriteError(w, r, s.log, err)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
