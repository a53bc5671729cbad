package httpapi

import "net/http"

// Readiness says whether the node should get traffic now.
type Readiness interface{ Ready() bool }

// readyz is readiness: 200 {"status":"ready"} while the store takes writes
// and the node is not draining, else 503 {"status":"unavailable"}. Callers
// need no key, so the answer says no more; the cause is in the log and in
// creditd_store_writable.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.Readiness != nil && !s.Readiness.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}
