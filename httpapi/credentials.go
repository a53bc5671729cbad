package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/creditd/creditd/ledger"
)

// Lifetimes of the credentials creditd signs for users.
const (
	// LoginLinkTTL is how long a sign-in link can be opened (once).
	LoginLinkTTL = 15 * time.Minute
	// SessionTTL is how long a web session lasts after sign-in.
	SessionTTL = 30 * 24 * time.Hour
	// UserTokenTTLDefault and UserTokenTTLMax bound user tokens.
	UserTokenTTLDefault = 24 * time.Hour
	UserTokenTTLMax     = 30 * 24 * time.Hour
	// SessionKeyBytesMin is the shortest HMAC key accepted.
	SessionKeyBytesMin = 16
	// credentialBytesMax bounds a credential we are asked to check.
	credentialBytesMax = 1024
)

// Purposes of signed credentials: one signed for a purpose is refused for
// any other (a sign-in link is not a session, a session is not a token).
const (
	PurposeUserToken = "user-token"
	PurposeLoginLink = "login-link"
	PurposeSession   = "session"
	PurposeCSRF      = "csrf"
)

// Prefixes that make credentials recognisable in logs and headers.
const (
	UserTokenPrefix = "ut_"
	LoginLinkPrefix = "ll_"
)

// loginLinkScope is the Engine.ConsumeOnce scope of sign-in link nonces.
const loginLinkScope = "login-link"

// Errors of Open and RedeemLoginLink.
var (
	ErrCredentialInvalid = errors.New("the credential is not valid")
	ErrCredentialExpired = errors.New("the credential has expired")
	ErrLinkUsed          = errors.New("the sign-in link was already used")
)

// Claims is the signed payload of a credential. Times are Unix seconds.
type Claims struct {
	Account   string `json:"a"`
	Nonce     string `json:"n,omitempty"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
}

// key returns the HMAC key, generating a random one when none was given.
func (s *Server) key() []byte {
	s.keyOnce.Do(func() {
		if len(s.SessionKey) == 0 {
			s.SessionKey = make([]byte, 32)
			_, _ = rand.Read(s.SessionKey)
		}
	})
	return s.SessionKey
}

func (s *Server) sum(purpose string, msg []byte) []byte {
	m := hmac.New(sha256.New, s.key())
	m.Write([]byte("creditd/" + purpose + "\x00"))
	m.Write(msg)
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

// Seal signs claims for purpose: base64url(JSON) "." base64url(HMAC-SHA256
// over the purpose and the payload).
func (s *Server) Seal(purpose string, c Claims) string {
	payload := b64.EncodeToString(mustJSON(c))
	return payload + "." + b64.EncodeToString(s.sum(purpose, []byte(payload)))
}

// Open checks a sealed credential's signature and purpose, and its expiry
// against the engine's clock.
func (s *Server) Open(purpose, sealed string) (Claims, error) {
	var c Claims
	payload, sig, ok := strings.Cut(sealed, ".")
	if !ok || len(sealed) > credentialBytesMax {
		return c, ErrCredentialInvalid
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.sum(purpose, []byte(payload))) {
		return c, ErrCredentialInvalid
	}
	raw, err := b64.DecodeString(payload)
	if err != nil {
		return c, ErrCredentialInvalid
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.Account == "" {
		return Claims{}, ErrCredentialInvalid
	}
	if s.Engine.Now().Unix() >= c.ExpiresAt {
		return c, ErrCredentialExpired
	}
	return c, nil
}

// MAC returns a base64url HMAC of msg for purpose (e.g. a session's CSRF
// token).
func (s *Server) MAC(purpose, msg string) string {
	return b64.EncodeToString(s.sum(purpose, []byte(msg)))
}

// NewClaims returns claims for an account issued now and valid for ttl.
func (s *Server) NewClaims(accountID string, ttl time.Duration) Claims {
	now := s.Engine.Now()
	return Claims{Account: accountID, IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix()}
}

// NewLoginLink returns a single-use sign-in link to the web app for an
// account, valid for LoginLinkTTL. baseURL is used when PublicURL is unset.
func (s *Server) NewLoginLink(accountID, baseURL string) (link string, expiresAt time.Time) {
	c := s.NewClaims(accountID, LoginLinkTTL)
	c.Nonce = rand.Text()
	if s.PublicURL != "" {
		baseURL = s.PublicURL
	}
	link = strings.TrimRight(baseURL, "/") + "/app/login?token=" + url.QueryEscape(LoginLinkPrefix+s.Seal(PurposeLoginLink, c))
	return link, time.Unix(c.ExpiresAt, 0).UTC()
}

// CheckLoginLink checks a sign-in link's token without consuming it: it
// returns the account the link signs in to, ErrLinkUsed once it has been
// redeemed, or the token's error. The app shows it on GET, so that a mail
// scanner or a link preview opening the link does not use it up.
func (s *Server) CheckLoginLink(ctx context.Context, token string) (string, error) {
	c, err := s.openLoginLink(token)
	if err != nil {
		return "", err
	}
	used, err := s.Engine.Consumed(ctx, loginLinkScope, c.Nonce)
	if err != nil {
		return "", err
	}
	if used {
		return "", ErrLinkUsed
	}
	return c.Account, nil
}

// RedeemLoginLink checks a sign-in link's token and consumes it: it
// returns the account to sign in once, and ErrLinkUsed afterwards. The
// nonce is recorded durably through the engine, so a link works once
// across restarts and nodes.
func (s *Server) RedeemLoginLink(ctx context.Context, token string) (string, error) {
	c, err := s.openLoginLink(token)
	if err != nil {
		return "", err
	}
	first, err := s.Engine.ConsumeOnce(ctx, c.Account, loginLinkScope, c.Nonce)
	if err != nil {
		if ledger.ErrorCode(err) == ledger.ENotFound {
			return "", ErrCredentialInvalid
		}
		return "", err
	}
	if !first {
		return "", ErrLinkUsed
	}
	return c.Account, nil
}

// openLoginLink verifies a sign-in link's token (prefix, seal, expiry,
// nonce) and returns its claims.
func (s *Server) openLoginLink(token string) (Claims, error) {
	sealed, ok := strings.CutPrefix(token, LoginLinkPrefix)
	if !ok {
		return Claims{}, ErrCredentialInvalid
	}
	c, err := s.Open(PurposeLoginLink, sealed)
	if err != nil {
		return Claims{}, err
	}
	if c.Nonce == "" {
		return Claims{}, ErrCredentialInvalid
	}
	return c, nil
}

// requestBaseURL is scheme://host of the request, honouring a TLS proxy's
// X-Forwarded-Proto.
func requestBaseURL(r *http.Request) string {
	scheme := "http"
	if IsHTTPS(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// IsHTTPS reports whether the client reached us over TLS (directly or
// through a proxy that says so): session cookies are Secure then.
func IsHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

type loginLinkBody struct{}

func (s *Server) postLoginLink(w http.ResponseWriter, r *http.Request, p Principal) {
	if _, ok := s.readJSON(w, r, &loginLinkBody{}); !ok {
		return
	}
	id := r.PathValue("id")
	if _, err := s.Engine.GetAccount(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	link, exp := s.NewLoginLink(id, requestBaseURL(r))
	writeJSON(w, http.StatusCreated, map[string]any{"url": link, "account_id": id, "expires_at": exp})
}

type tokenBody struct {
	TTLSeconds *int64 `json:"ttl_seconds"`
}

func (s *Server) postToken(w http.ResponseWriter, r *http.Request, p Principal) {
	var in tokenBody
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	ttl := UserTokenTTLDefault
	if in.TTLSeconds != nil {
		maxSeconds := int64(UserTokenTTLMax / time.Second)
		if *in.TTLSeconds < 1 || *in.TTLSeconds > maxSeconds {
			s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "ttl_seconds must be between 1 and %d", maxSeconds))
			return
		}
		ttl = time.Duration(*in.TTLSeconds) * time.Second
	}
	id := r.PathValue("id")
	if _, err := s.Engine.GetAccount(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	c := s.NewClaims(id, ttl)
	writeJSON(w, http.StatusCreated, map[string]any{
		"token": UserTokenPrefix + s.Seal(PurposeUserToken, c), "account_id": id,
		"expires_at": time.Unix(c.ExpiresAt, 0).UTC(),
	})
}
