package httpx_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/creditd/creditd/internal/httpx"
	"github.com/creditd/creditd/ledger"
)

// TestErrorBody: an error answers with app.Status of its code and its
// details beside code and message; an error that is not a ledger.Error is
// internal (500).
func TestErrorBody(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
	}{
		{ledger.Errorf(ledger.EInvalid, "bad"), 400},
		{&ledger.Error{Code: ledger.ETooMany, Message: "slow down", Details: map[string]any{"retry_after_seconds": int64(3)}}, 429},
		{&ledger.Error{Code: ledger.ETooLarge, Message: "big"}, 413},
		{&ledger.Error{Code: ledger.EMethodNotAllowed, Message: "no"}, 405},
		{errors.New("boom"), 500},
	} {
		status, body := httpx.ErrorBody(c.err)
		if status != c.status {
			t.Errorf("%v: status %d, want %d", c.err, status, c.status)
		}
		e := body["error"].(map[string]any)
		if e["code"] != ledger.ErrorCode(c.err) {
			t.Errorf("%v: code %v", c.err, e["code"])
		}
		if c.status == 429 && e["retry_after_seconds"] != int64(3) {
			t.Errorf("details were dropped: %v", e)
		}
	}
}

// TestSetRetryAfter: a too_many_requests error that says when to retry
// sets Retry-After; any other error sets nothing.
func TestSetRetryAfter(t *testing.T) {
	w := httptest.NewRecorder()
	httpx.SetRetryAfter(w, &ledger.Error{Code: ledger.ETooMany, Details: map[string]any{"retry_after_seconds": int64(7)}})
	if got := w.Header().Get("Retry-After"); got != "7" {
		t.Errorf("Retry-After %q, want 7", got)
	}
	w = httptest.NewRecorder()
	httpx.SetRetryAfter(w, ledger.Errorf(ledger.EConflict, "no"))
	httpx.SetRetryAfter(w, nil)
	if got := w.Header().Get("Retry-After"); got != "" {
		t.Errorf("Retry-After %q on a conflict", got)
	}
	if w.Code != http.StatusOK {
		t.Errorf("status written: %d", w.Code)
	}
}
