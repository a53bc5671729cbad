package app

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/creditd/creditd/ledger"
)

// Users are authenticated with stateless credentials signed with one HMAC
// key (Options.SessionKey), so several nodes sharing the key accept each
// other's: user tokens ("ut_…", for the JSON API), single-use sign-in
// links and the web app's session cookies. What ends one early is stored
// (a signed-out session's id, an account's credential generation after
// "sign out everywhere"; see ledger.CredentialRevocation) and every use is
// checked against the store, so revocations hold at once on every node.

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

// loginLinkScope is the ConsumeOnce scope of sign-in link nonces.
const loginLinkScope = "login-link"

// Errors of Open, OpenActive, OpenUserToken, OpenSession and
// RedeemLoginLink.
var (
	ErrCredentialInvalid = errors.New("the credential is not valid")
	ErrCredentialExpired = errors.New("the credential has expired")
	ErrCredentialRevoked = errors.New("the credential was revoked")
	ErrLinkUsed          = errors.New("the sign-in link was already used")
)

// Claims is the signed payload of a credential. Times are Unix seconds.
// Generation is the account's credential generation when the credential
// was issued (see ledger.CredentialRevocation): one below the account's
// current generation was revoked by "sign out everywhere". It is left out
// at 0, so credentials of accounts that never revoked read as before, and
// credentials issued before generations existed decode as generation 0.
// Nonce identifies a session (and makes a sign-in link single-use).
type Claims struct {
	Account    string `json:"a"`
	Nonce      string `json:"n,omitempty"`
	IssuedAt   int64  `json:"iat"`
	ExpiresAt  int64  `json:"exp"`
	Generation int64  `json:"g,omitempty"`
}

func (s *Service) sum(purpose string, msg []byte) []byte {
	m := hmac.New(sha256.New, s.sessionKey)
	m.Write([]byte("creditd/" + purpose + "\x00"))
	m.Write(msg)
	return m.Sum(nil)
}

// b64 decodes strictly: one credential has one encoding (a changed last
// character must not decode to the same signature).
var b64 = base64.RawURLEncoding.Strict()

// Seal signs claims for purpose: base64url(JSON) "." base64url(HMAC-SHA256
// over the purpose and the payload).
func (s *Service) Seal(purpose string, c Claims) string {
	raw, err := json.Marshal(c)
	if err != nil {
		panic(err) // Claims always marshal
	}
	payload := b64.EncodeToString(raw)
	return payload + "." + b64.EncodeToString(s.sum(purpose, []byte(payload)))
}

// Open checks a sealed credential's signature and purpose, and its expiry
// against the engine's clock.
func (s *Service) Open(purpose, sealed string) (Claims, error) {
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
	if s.eng.Now().Unix() >= c.ExpiresAt {
		return c, ErrCredentialExpired
	}
	return c, nil
}

// MAC returns a base64url HMAC of msg for purpose (e.g. a session's CSRF
// token).
func (s *Service) MAC(purpose, msg string) string {
	return b64.EncodeToString(s.sum(purpose, []byte(msg)))
}

// NewClaims returns claims for an account issued now, valid for ttl, at
// the account's current credential generation (read from the store).
func (s *Service) NewClaims(ctx context.Context, accountID string, ttl time.Duration) (Claims, error) {
	st, err := s.eng.CredentialStatus(ctx, accountID, "")
	if err != nil {
		return Claims{}, err
	}
	now := s.eng.Now()
	return Claims{Account: accountID, IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix(), Generation: st.Generation}, nil
}

// OpenActive is Open followed by the revocation check: it answers
// ErrCredentialRevoked for a credential whose id (Nonce) was revoked or
// whose generation is below its account's. The check reads the store, so
// a revocation made through any node holds at once on every node.
func (s *Service) OpenActive(ctx context.Context, purpose, sealed string) (Claims, error) {
	c, err := s.Open(purpose, sealed)
	if err != nil {
		return c, err
	}
	return c, s.checkRevoked(ctx, c)
}

// checkRevoked answers ErrCredentialRevoked when c's id was revoked or its
// generation is below its account's, and nil when c is still active.
func (s *Service) checkRevoked(ctx context.Context, c Claims) error {
	st, err := s.eng.CredentialStatus(ctx, c.Account, c.Nonce)
	if err != nil {
		return err
	}
	if st.Revoked || c.Generation < st.Generation {
		return ErrCredentialRevoked
	}
	return nil
}

// OpenUserToken checks a user token ("ut_…"): its prefix, seal, expiry
// and revocation.
func (s *Service) OpenUserToken(ctx context.Context, token string) (Claims, error) {
	sealed, ok := strings.CutPrefix(token, UserTokenPrefix)
	if !ok {
		return Claims{}, ErrCredentialInvalid
	}
	return s.OpenActive(ctx, PurposeUserToken, sealed)
}

// NewUserToken issues a user token for an existing account, valid for ttl
// (UserTokenTTLDefault when 0; at most UserTokenTTLMax).
func (s *Service) NewUserToken(ctx context.Context, accountID string, ttl time.Duration) (token string, expiresAt time.Time, err error) {
	if ttl == 0 {
		ttl = UserTokenTTLDefault
	}
	if ttl < time.Second || ttl > UserTokenTTLMax {
		return "", time.Time{}, ledger.Errorf(ledger.EInvalid, "ttl_seconds must be between 1 and %d", int64(UserTokenTTLMax/time.Second))
	}
	if _, err := s.eng.GetAccount(ctx, accountID); err != nil {
		return "", time.Time{}, err
	}
	c, err := s.NewClaims(ctx, accountID, ttl)
	if err != nil {
		return "", time.Time{}, err
	}
	return UserTokenPrefix + s.Seal(PurposeUserToken, c), time.Unix(c.ExpiresAt, 0).UTC(), nil
}

// NewSession returns a web session's cookie value and claims for the
// account a sign-in link signed in to. The session inherits the link's
// generation, so "sign out everywhere" between the link's redemption and
// this call still ends it.
func (s *Service) NewSession(link Claims) (value string, c Claims) {
	now := s.eng.Now()
	c = Claims{Account: link.Account, Nonce: rand.Text(), IssuedAt: now.Unix(), ExpiresAt: now.Add(SessionTTL).Unix(), Generation: link.Generation}
	return s.Seal(PurposeSession, c), c
}

// OpenSession checks a web session's cookie value: its seal, expiry, nonce
// and revocation.
func (s *Service) OpenSession(ctx context.Context, value string) (Claims, error) {
	c, err := s.Open(PurposeSession, value)
	if err != nil {
		return c, err
	}
	if c.Nonce == "" {
		return Claims{}, ErrCredentialInvalid
	}
	return c, s.checkRevoked(ctx, c)
}

// RevokeSession ends one web session (sign-out) on every node: its nonce
// is recorded durably until the session would have expired. This node's
// event streams of the session end at once; other nodes' at their next
// heartbeat.
func (s *Service) RevokeSession(ctx context.Context, c Claims) error {
	if err := s.eng.RevokeCredential(ctx, c.Account, c.Nonce, time.Unix(c.ExpiresAt, 0)); err != nil {
		return err
	}
	s.events.revoke(c.Account, func(sc *Claims) bool { return sc.Nonce == c.Nonce })
	return nil
}

// RevokeAccountCredentials ends every session, user token and unused
// sign-in link of an account issued so far ("sign out everywhere").
// Credentials issued afterwards work. This node's event streams opened
// with an ended credential end at once; other nodes' at their next
// heartbeat.
func (s *Service) RevokeAccountCredentials(ctx context.Context, accountID string) (ledger.CredentialRevocation, error) {
	r, err := s.eng.RevokeAccountCredentials(ctx, accountID)
	if err != nil {
		return r, err
	}
	s.events.revoke(accountID, func(sc *Claims) bool { return sc.Generation < r.Generation })
	return r, nil
}

// NewLoginLink returns a single-use sign-in link to the web app for an
// account, valid for LoginLinkTTL. baseURL is used when PublicURL is
// unset; it must be one that may be trusted (see package publicurl).
func (s *Service) NewLoginLink(ctx context.Context, accountID, baseURL string) (link string, expiresAt time.Time, err error) {
	c, err := s.NewClaims(ctx, accountID, LoginLinkTTL)
	if err != nil {
		return "", time.Time{}, err
	}
	c.Nonce = rand.Text()
	if s.publicURL != "" {
		baseURL = s.publicURL
	}
	link = strings.TrimRight(baseURL, "/") + "/app/login?token=" + url.QueryEscape(LoginLinkPrefix+s.Seal(PurposeLoginLink, c))
	return link, time.Unix(c.ExpiresAt, 0).UTC(), nil
}

// PublicURL is the configured base URL users reach the web app at ("" when
// none is configured).
func (s *Service) PublicURL() string { return s.publicURL }

// CheckLoginLink checks a sign-in link's token without consuming it: it
// returns the account the link signs in to, ErrLinkUsed once it has been
// redeemed, or the token's error. The app shows it on GET, so that a mail
// scanner or a link preview opening the link does not use it up.
func (s *Service) CheckLoginLink(ctx context.Context, token string) (string, error) {
	c, err := s.openLoginLink(ctx, token)
	if err != nil {
		return "", err
	}
	used, err := s.Consumed(ctx, loginLinkScope, c.Nonce)
	if err != nil {
		return "", err
	}
	if used {
		return "", ErrLinkUsed
	}
	return c.Account, nil
}

// RedeemLoginLink checks a sign-in link's token and consumes it: it
// returns the link's claims (the account to sign in, see NewSession) once,
// and ErrLinkUsed afterwards. The nonce is recorded durably through the
// engine, so a link works once across restarts and nodes.
func (s *Service) RedeemLoginLink(ctx context.Context, token string) (Claims, error) {
	c, err := s.openLoginLink(ctx, token)
	if err != nil {
		return Claims{}, err
	}
	first, err := s.ConsumeOnce(ctx, c.Account, loginLinkScope, c.Nonce)
	if err != nil {
		if ledger.ErrorCode(err) == ledger.ENotFound {
			return Claims{}, ErrCredentialInvalid
		}
		return Claims{}, err
	}
	if !first {
		return Claims{}, ErrLinkUsed
	}
	return c, nil
}

// openLoginLink verifies a sign-in link's token (prefix, seal, expiry,
// nonce, revocation) and returns its claims.
func (s *Service) openLoginLink(ctx context.Context, token string) (Claims, error) {
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
	if err := s.checkRevoked(ctx, c); err != nil {
		return Claims{}, err
	}
	return c, nil
}
