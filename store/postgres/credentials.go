package postgres

import (
	"context"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

// Queries of credential revocations.
const (
	qCredentialStatus = `SELECT coalesce((SELECT generation FROM credential_generations WHERE account_id = $1), 0),
		EXISTS (SELECT 1 FROM revoked_credentials WHERE id = $2)`
	qRevokeAccountCredentials = `INSERT INTO credential_generations AS g (account_id, generation, revoked_at) VALUES ($1, 1, $2)
		ON CONFLICT (account_id) DO UPDATE SET generation = g.generation + 1, revoked_at = excluded.revoked_at
		RETURNING generation, revoked_at`
	qRevokeCredential = `INSERT INTO revoked_credentials (id, account_id, revoked_at, expires_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO NOTHING`
	qDeleteRevokedCredentials = `DELETE FROM revoked_credentials WHERE id IN (
		SELECT id FROM revoked_credentials WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`
	deleteRevokedCredentialsBy = 1000 // rows per DELETE, so batches are not held up long
)

// RevokeAccountCredentials moves an account's credential generation up by
// one, in its own transaction (the row lock of the upsert orders
// concurrent revocations from several nodes).
func (s *Store) RevokeAccountCredentials(ctx context.Context, accountID string, at time.Time) (*ledger.CredentialRevocation, error) {
	r := &ledger.CredentialRevocation{AccountID: accountID}
	var us int64
	if err := s.pool.QueryRow(ctx, qRevokeAccountCredentials, accountID, rowscan.Micros(at)).Scan(&r.Generation, &us); err != nil {
		return nil, wrap("revoke account credentials of "+accountID, err, "")
	}
	r.RevokedAt = rowscan.FromMicros(us)
	return r, nil
}

// RevokeCredential records a revoked credential (the first record of an
// id is kept).
func (s *Store) RevokeCredential(ctx context.Context, c ledger.RevokedCredential) error {
	_, err := s.pool.Exec(ctx, qRevokeCredential, c.ID, c.AccountID, rowscan.Micros(c.RevokedAt), rowscan.Micros(c.ExpiresAt))
	return wrap("revoke credential", err, "")
}

// GetCredentialStatus reads an account's credential generation and whether
// a credential id is revoked, in one round trip.
func (s *Store) GetCredentialStatus(ctx context.Context, p ledger.CredentialStatusParams) (ledger.CredentialStatus, error) {
	var out ledger.CredentialStatus
	if err := s.pool.QueryRow(ctx, qCredentialStatus, p.AccountID, p.CredentialID).Scan(&out.Generation, &out.Revoked); err != nil {
		return ledger.CredentialStatus{}, wrap("get credential status of "+p.AccountID, err, "")
	}
	return out, nil
}

// DeleteRevokedCredentialsBefore deletes the revoked credentials that
// expired before before, 1000 rows per statement.
func (s *Store) DeleteRevokedCredentialsBefore(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		ct, err := s.pool.Exec(ctx, qDeleteRevokedCredentials, rowscan.Micros(before), deleteRevokedCredentialsBy)
		if err != nil {
			return total, wrap("delete revoked credentials", err, "")
		}
		total += ct.RowsAffected()
		if ct.RowsAffected() < deleteRevokedCredentialsBy {
			return total, nil
		}
	}
}
