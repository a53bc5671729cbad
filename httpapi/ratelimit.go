package httpapi

import (
	"net/http"

	"github.com/creditd/creditd/internal/httpx"
)

// Rate limits (per user, per client address for failed authentications,
// per account for uploads) are the application layer's (app.Service's
// LimitUser, AuthFailed, LimitUpload); over one the answer is 429
// too_many_requests with Retry-After. The client's address is the peer's,
// or behind TrustedProxies the one X-Forwarded-For names
// (httpx.ClientAddr).

// limitUser counts one request of a user principal of an account; over the
// limit it sets Retry-After on w and returns the error to answer with.
func (s *Server) limitUser(w http.ResponseWriter, accountID string) error {
	err := s.App.LimitUser(accountID)
	httpx.SetRetryAfter(w, err)
	return err
}

// authFailed counts a failed authentication of r's client address; beyond
// the limit it sets Retry-After on w and returns the error to answer with.
func (s *Server) authFailed(w http.ResponseWriter, r *http.Request) error {
	err := s.App.AuthFailed(httpx.ClientAddr(r, s.TrustedProxies))
	httpx.SetRetryAfter(w, err)
	return err
}
