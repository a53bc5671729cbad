package httpapi_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/ledger"
)

// onBothStores runs f on SQLite and on PostgreSQL (a database of its own;
// envs that f makes share it).
func onBothStores(t *testing.T, f func(t *testing.T, opts ...envOpt)) {
	t.Run("SQLite", func(t *testing.T) { f(t) })
	t.Run("PostgreSQL", func(t *testing.T) { f(t, onPostgresDSN(pgtest.DSN(t))) })
}

// fastHeartbeat makes event streams check their credential every 20 ms.
func fastHeartbeat() envOpt {
	return withApp(func(o *app.Options) { o.EventHeartbeat = 20 * time.Millisecond })
}

// ended waits until the stream has ended (the server closed it).
func (s *stream) ended(timeout time.Duration) {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.t.Fatalf("the stream is still open after %s", timeout)
	}
}

// open reports whether the stream is still open after a few heartbeats.
func (s *stream) openAfterHeartbeats(n int) bool {
	s.t.Helper()
	for n > 0 {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return false
			}
			if ev.name == "comment" {
				n--
			}
		case <-time.After(5 * time.Second):
			s.t.Fatal("no heartbeat within 5 s")
		}
	}
	return true
}

func bearer(tok string) hdr { return hdr{"Authorization": "Bearer " + tok} }

// TestRevokeSessions is the admin route POST /v1/accounts/{id}/revoke-sessions:
// every user token of the account issued before stops working, on both
// stores; tokens issued after (even at the same instant) work; other
// accounts are untouched.
func TestRevokeSessions(t *testing.T) {
	onBothStores(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		e.createAccount("alice", nil)
		e.createAccount("bob", nil)
		a1, a2, b1 := e.userToken("alice"), e.userToken("alice"), e.userToken("bob")
		e.as(a1, 200, "GET", "/v1/accounts/alice/balance", nil)

		r := e.must(200, "POST", "/v1/accounts/alice/revoke-sessions", map[string]any{})
		if r.str("account_id") != "alice" || r.str("revoked_at") != e.clock.Now().Format(time.RFC3339Nano) {
			t.Fatalf("revoke: %s", r.raw)
		}
		for _, tok := range []string{a1, a2} {
			if r := e.as(tok, 401, "GET", "/v1/accounts/alice/balance", nil); r.errCode() != "unauthenticated" || !strings.Contains(r.str("error.message"), "revoked") {
				t.Fatalf("a token issued before: %s", r.raw)
			}
		}
		e.as(b1, 200, "GET", "/v1/accounts/bob/balance", nil)
		// Issued after, at the very same instant of the test clock.
		a3 := e.userToken("alice")
		e.as(a3, 200, "GET", "/v1/accounts/alice/balance", nil)
		// Again: a3 ends too, and a later one works.
		e.advance(time.Second)
		e.must(200, "POST", "/v1/accounts/alice/revoke-sessions", map[string]any{})
		e.as(a3, 401, "GET", "/v1/accounts/alice/balance", nil)
		e.as(e.userToken("alice"), 200, "GET", "/v1/accounts/alice/balance", nil)

		e.must(404, "POST", "/v1/accounts/nobody/revoke-sessions", map[string]any{})
		e.must(400, "POST", "/v1/accounts/alice/revoke-sessions", map[string]any{"all": true})
		e.as(b1, 403, "POST", "/v1/accounts/bob/revoke-sessions", map[string]any{})
		e.verify()
	})
}

// TestCredentialsOfThePreviousVersion: a user token sealed as before
// credential generations existed (no "g" claim) keeps working, and is
// ended by a revocation like any other.
func TestCredentialsOfThePreviousVersion(t *testing.T) {
	key := []byte("a-session-key-of-at-least-16")
	e := newEnv(t, withApp(func(o *app.Options) { o.SessionKey = key }))
	e.createAccount("alice", nil)
	now := e.clock.Now().Unix()
	payload := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"a":"alice","iat":%d,"exp":%d}`, now, now+3600)))
	m := hmac.New(sha256.New, key)
	m.Write([]byte("creditd/" + app.PurposeUserToken + "\x00" + payload))
	old := app.UserTokenPrefix + payload + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))

	e.as(old, 200, "GET", "/v1/accounts/alice/balance", nil)
	e.must(200, "POST", "/v1/accounts/alice/revoke-sessions", map[string]any{})
	e.as(old, 401, "GET", "/v1/accounts/alice/balance", nil)
}

// TestEventStreamEndsWithItsCredential: an open event stream ends when its
// token expires (on the test clock) or is revoked; the admin's stream of
// the same account goes on.
func TestEventStreamEndsWithItsCredential(t *testing.T) {
	onBothStores(t, func(t *testing.T, opts ...envOpt) {
		t.Run("Expiry", func(t *testing.T) {
			e := newEnv(t, append(opts, fastHeartbeat())...)
			e.createAccount("alice", nil)
			tok := e.must(201, "POST", "/v1/accounts/alice/tokens", map[string]any{"ttl_seconds": 60}).str("token")
			s := e.openStream("alice", bearer(tok))
			s.nextBalance(5 * time.Second)
			e.advance(59 * time.Second)
			if !s.openAfterHeartbeats(3) {
				t.Fatal("the stream ended before its token expired")
			}
			e.advance(time.Second)
			s.ended(5 * time.Second)
			e.as(tok, 401, "GET", "/v1/accounts/alice/events", nil)
		})

		t.Run("Revocation", func(t *testing.T) {
			// The default heartbeat (15 s): a revocation through this node
			// ends the stream at once, not at the next heartbeat.
			e := newEnv(t, opts...)
			e.createAccount("carol", nil)
			user := e.openStream("carol", bearer(e.userToken("carol")))
			admin := e.openStream("carol")
			user.nextBalance(5 * time.Second)
			admin.nextBalance(5 * time.Second)
			e.must(200, "POST", "/v1/accounts/carol/revoke-sessions", map[string]any{})
			user.ended(5 * time.Second)
			e.grant("carol", 5)
			if ev := admin.nextBalance(5 * time.Second); ev.available() != 50 {
				t.Fatalf("admin stream: %+v", ev)
			}
			// A stream opened with a token issued after the revocation lives.
			after := e.openStream("carol", bearer(e.userToken("carol")))
			if ev := after.nextBalance(5 * time.Second); ev.available() != 50 {
				t.Fatalf("new stream: %+v", ev)
			}
		})
	})
}

// TestRevocationAcrossNodes: two nodes on one PostgreSQL database. A
// revocation through one is refused at once by the other (it reads the
// store for every use), and ends the other's open event stream at its
// next heartbeat.
func TestRevocationAcrossNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	key := []byte("shared-session-key-0123456789")
	clock := ledger.NewTestClock(mustTime("2026-06-15T10:00:00Z"))
	shared := withApp(func(o *app.Options) { o.SessionKey, o.EventHeartbeat = key, 20*time.Millisecond })
	a := newEnv(t, onPostgresDSN(dsn), withClock(clock), shared)
	b := newEnv(t, onPostgresDSN(dsn), withClock(clock), shared)
	a.createAccount("alice", nil)
	tok := a.userToken("alice")
	b.as(tok, 200, "GET", "/v1/accounts/alice/balance", nil)
	s := b.openStream("alice", bearer(tok))
	s.nextBalance(5 * time.Second)

	a.must(200, "POST", "/v1/accounts/alice/revoke-sessions", map[string]any{})
	b.as(tok, http.StatusUnauthorized, "GET", "/v1/accounts/alice/balance", nil)
	s.ended(5 * time.Second)
	a.as(b.userToken("alice"), 200, "GET", "/v1/accounts/alice/balance", nil)
}

// TestRevokedSessionsAreKeptUntilTheyExpire: a signed-out session's record
// stays while the session could still be used, and the sweep deletes it
// once the session has expired (it is refused for its expiry from then on).
func TestRevokedSessionsAreKeptUntilTheyExpire(t *testing.T) {
	onBothStores(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, opts...)
		e.createAccount("alice", nil)
		ctx := t.Context()
		link, err := e.app.NewClaims(ctx, "alice", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		value, c := e.app.NewSession(link)
		if err := e.app.RevokeSession(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := e.app.OpenSession(ctx, value); !errors.Is(err, app.ErrCredentialRevoked) {
			t.Fatalf("OpenSession after sign-out: %v", err)
		}
		revoked := func() bool {
			st, err := e.store.GetCredentialStatus(ctx, ledger.CredentialStatusParams{AccountID: "alice", CredentialID: c.Nonce})
			if err != nil {
				t.Fatal(err)
			}
			return st.Revoked
		}
		e.eng.SweepRevokedCredentials(ctx, e.clock.Now().Add(app.SessionTTL-time.Second))
		if !revoked() {
			t.Fatal("the record was swept before the session expired")
		}
		e.eng.SweepRevokedCredentials(ctx, e.clock.Now().Add(app.SessionTTL+time.Second))
		if revoked() {
			t.Fatal("the record was kept after the session expired")
		}
		if err := e.clock.Advance(app.SessionTTL); err != nil {
			t.Fatal(err)
		}
		if _, err := e.app.OpenSession(ctx, value); !errors.Is(err, app.ErrCredentialExpired) {
			t.Fatalf("OpenSession after expiry: %v", err)
		}
	})
}
