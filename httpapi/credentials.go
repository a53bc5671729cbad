package httpapi

import (
	"net/http"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/internal/publicurl"
	"github.com/creditd/creditd/ledger"
)

// User credentials (tokens, sign-in links, sessions) are signed and
// checked by the application layer (app.Service: NewUserToken,
// OpenUserToken, NewLoginLink, RevokeAccountCredentials, …); these are
// their admin routes.

type loginLinkBody struct{}

func (s *Server) postLoginLink(w http.ResponseWriter, r *http.Request, p Principal) {
	if _, ok := s.readJSON(w, r, &loginLinkBody{}); !ok {
		return
	}
	id := r.PathValue("id")
	if _, err := s.App.Account(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	base := s.App.PublicURL()
	if base == "" {
		var err error
		if base, err = publicurl.FromRequest(r); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	link, exp, err := s.App.NewLoginLink(r.Context(), id, base)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"url": link, "account_id": id, "expires_at": exp})
}

type revokeSessionsBody struct{}

// postRevokeSessions ends every credential of an account issued so far
// (as its Profile's "Sign out everywhere" does).
func (s *Server) postRevokeSessions(w http.ResponseWriter, r *http.Request, p Principal) {
	if _, ok := s.readJSON(w, r, &revokeSessionsBody{}); !ok {
		return
	}
	rev, err := s.App.RevokeAccountCredentials(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"account_id": rev.AccountID, "revoked_at": rev.RevokedAt})
}

type tokenBody struct {
	TTLSeconds *int64 `json:"ttl_seconds"`
}

func (s *Server) postToken(w http.ResponseWriter, r *http.Request, p Principal) {
	var in tokenBody
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	ttl := app.UserTokenTTLDefault
	if in.TTLSeconds != nil {
		maxSeconds := int64(app.UserTokenTTLMax / time.Second)
		if *in.TTLSeconds < 1 || *in.TTLSeconds > maxSeconds {
			s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "ttl_seconds must be between 1 and %d", maxSeconds))
			return
		}
		ttl = time.Duration(*in.TTLSeconds) * time.Second
	}
	id := r.PathValue("id")
	tok, exp, err := s.App.NewUserToken(r.Context(), id, ttl)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "account_id": id, "expires_at": exp})
}
