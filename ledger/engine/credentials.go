package engine

import (
	"context"
	"time"

	"github.com/creditd/creditd/ledger"
)

// RevokeAccountCredentials ends every credential of an account issued so
// far ("sign out everywhere"): it moves the account's credential
// generation up by one (see ledger.CredentialRevocation). Credentials
// issued afterwards carry the new generation and work. It answers
// ENotFound for an unknown account. The store writes it durably before it
// returns, so every node sharing the store sees it at its next check.
func (e *Engine) RevokeAccountCredentials(ctx context.Context, accountID string) (ledger.CredentialRevocation, error) {
	if _, err := e.GetAccount(ctx, accountID); err != nil {
		return ledger.CredentialRevocation{}, err
	}
	r, err := e.store.RevokeAccountCredentials(ctx, accountID, e.clock.Now())
	if err != nil {
		return ledger.CredentialRevocation{}, err
	}
	return *r, nil
}

// RevokeCredential ends one credential (a web session, by its nonce) until
// expiresAt, when it would have expired anyway; the record is swept after
// that. It is durable before it returns.
func (e *Engine) RevokeCredential(ctx context.Context, accountID, id string, expiresAt time.Time) error {
	if id == "" {
		return ledger.Errorf(ledger.EInvalid, "a credential without an id cannot be revoked alone")
	}
	return e.store.RevokeCredential(ctx, ledger.RevokedCredential{ID: id, AccountID: accountID, RevokedAt: e.clock.Now(), ExpiresAt: expiresAt})
}

// CredentialStatus reads, from the store, an account's credential
// generation and whether the credential id ("" for none) was revoked.
func (e *Engine) CredentialStatus(ctx context.Context, accountID, id string) (ledger.CredentialStatus, error) {
	return e.store.GetCredentialStatus(ctx, ledger.CredentialStatusParams{AccountID: accountID, CredentialID: id})
}

// SweepRevokedCredentials deletes the revocations of credentials that have
// expired at now (they are refused for their expiry from then on).
func (e *Engine) SweepRevokedCredentials(ctx context.Context, now time.Time) {
	if n, err := e.store.DeleteRevokedCredentialsBefore(ctx, now); err != nil {
		e.log.Warn("revoked credential sweep failed", "err", err)
	} else if n > 0 {
		e.log.Info("revoked credentials expired", "count", n)
	}
}
