package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/creditd/creditd/ledger"
)

// The upload budget, the asset locks and deletion are app.Service's (see
// package app); the per-node upload rate is this edge's:
// asset_uploads_per_minute_per_account bounds an account's upload requests
// on each node (uploadLimiter); over it, the answer is 429
// too_many_requests with Retry-After, before the body is read.

// takeUpload admits one upload of the account under
// asset_uploads_per_minute_per_account on this node (a token bucket of
// that many, refilled at that many a minute), or returns
// too_many_requests with the seconds to wait (see SetRetryAfter).
func (s *Server) takeUpload(accountID string) error {
	t := s.rateLimits().uploads
	wait, ok := t.take(accountID, s.App.Now())
	if ok {
		return nil
	}
	s.countLimited("upload")
	secs := max(int64((wait+time.Second-1)/time.Second), 1)
	e := ledger.Errorf(ledger.ETooMany, "at most %d uploads per minute; try again in %d s", t.burst, secs)
	e.Details = map[string]any{"retry_after_seconds": secs}
	return e
}

// SetRetryAfter sets the Retry-After header of an error that says when to
// retry (details.retry_after_seconds): too_many_requests, or unavailable
// for a job refused because the lease queue is full.
func SetRetryAfter(w http.ResponseWriter, err error) {
	var e *ledger.Error
	if errors.As(err, &e) {
		if secs, ok := e.Details["retry_after_seconds"].(int64); ok {
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		}
	}
}

// deletedAsset is the answer to a delete.
type deletedAsset struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

func (s *Server) deleteAsset(w http.ResponseWriter, r *http.Request, p Principal) {
	a, err := s.App.Asset(r.Context(), r.PathValue("id"), p.canAccess)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.App.DeleteAsset(r.Context(), a); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deletedAsset{ID: a.ID, Object: "asset", Deleted: true})
}
