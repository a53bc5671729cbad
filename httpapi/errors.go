package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/ledger"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"code":"internal","message":"internal error"}}`, http.StatusInternalServerError)
		return
	}
	writeRaw(w, status, b)
}

// newline ends every JSON body; a variable, as []byte("\n") passed to
// Write would allocate on every response.
var newline = []byte("\n")

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_, _ = w.Write(newline)
}

// errorBody renders {"error": {"code", "message", ...details}}.
func errorBody(err error) (int, map[string]any) {
	code := ledger.ErrorCode(err)
	obj := map[string]any{"code": code, "message": ledger.ErrorMessage(err)}
	var e *ledger.Error
	if errors.As(err, &e) {
		for k, v := range e.Details {
			if k != "code" && k != "message" {
				obj[k] = v
			}
		}
	}
	return app.Status(code), map[string]any{"error": obj}
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := errorBody(err)
	SetRetryAfter(w, err)
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, body)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
