package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

// Queries of credential revocations. They are prepared by Open only (in
// credStmts), not by OpenReadOnly: `creditd verify` may read a database
// that a newer server has not migrated yet, which lacks these tables.
const (
	qCredentialStatus = `SELECT coalesce((SELECT generation FROM credential_generations WHERE account_id = ?), 0),
		EXISTS (SELECT 1 FROM revoked_credentials WHERE id = ?)`
	qRevokeAccountCredentials = `INSERT INTO credential_generations (account_id, generation, revoked_at) VALUES (?, 1, ?)
		ON CONFLICT (account_id) DO UPDATE SET generation = generation + 1, revoked_at = excluded.revoked_at
		RETURNING generation, revoked_at`
	qRevokeCredential = `INSERT INTO revoked_credentials (id, account_id, revoked_at, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`
	qDeleteRevokedCredentials = `DELETE FROM revoked_credentials WHERE rowid IN (
		SELECT rowid FROM revoked_credentials WHERE expires_at < ? LIMIT ?)`
	deleteRevokedCredentialsBy = 1000 // rows per DELETE, so batches are not held up long
)

// prepareCredentials prepares the queries of credential revocations: the
// read on the readers, the writes on the writer.
func (s *Store) prepareCredentials(ctx context.Context) error {
	r, err := prepareAll(ctx, s.r, []string{qCredentialStatus, qListWorkerPolls})
	if err != nil {
		return err
	}
	w, err := prepareAll(ctx, s.w, []string{qRevokeAccountCredentials, qRevokeCredential, qDeleteRevokedCredentials, qRecordWorkerPoll})
	for q, st := range r {
		s.credStmts[q] = st
	}
	if err != nil {
		return err
	}
	for q, st := range w {
		s.credStmts[q] = st
	}
	return nil
}

// credStmt returns a prepared credential query, or ErrReadOnly on a
// read-only store.
func (s *Store) credStmt(op, q string) (*sql.Stmt, error) {
	st := s.credStmts[q]
	if st == nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, ErrReadOnly)
	}
	return st, nil
}

// RevokeAccountCredentials moves an account's credential generation up by
// one. It writes through the writer connection in its own transaction, so
// it waits for a running batch.
func (s *Store) RevokeAccountCredentials(ctx context.Context, accountID string, at time.Time) (*ledger.CredentialRevocation, error) {
	const op = "revoke account credentials"
	st, err := s.credStmt(op, qRevokeAccountCredentials)
	if err != nil {
		return nil, err
	}
	r := &ledger.CredentialRevocation{AccountID: accountID}
	var us int64
	if err := st.QueryRowContext(ctx, accountID, rowscan.Micros(at)).Scan(&r.Generation, &us); err != nil {
		return nil, wrap(op+" of "+accountID, err, "")
	}
	r.RevokedAt = rowscan.FromMicros(us)
	return r, nil
}

// RevokeCredential records a revoked credential (the first record of an
// id is kept).
func (s *Store) RevokeCredential(ctx context.Context, c ledger.RevokedCredential) error {
	const op = "revoke credential"
	st, err := s.credStmt(op, qRevokeCredential)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx, c.ID, c.AccountID, rowscan.Micros(c.RevokedAt), rowscan.Micros(c.ExpiresAt))
	return wrap(op, err, "")
}

// GetCredentialStatus reads an account's credential generation and whether
// a credential id is revoked.
func (s *Store) GetCredentialStatus(ctx context.Context, p ledger.CredentialStatusParams) (ledger.CredentialStatus, error) {
	const op = "get credential status"
	var out ledger.CredentialStatus
	st, err := s.credStmt(op, qCredentialStatus)
	if err != nil {
		return out, err
	}
	if err := st.QueryRowContext(ctx, p.AccountID, p.CredentialID).Scan(&out.Generation, &out.Revoked); err != nil {
		return ledger.CredentialStatus{}, wrap(op+" of "+p.AccountID, err, "")
	}
	return out, nil
}

// DeleteRevokedCredentialsBefore deletes the revoked credentials that
// expired before before, 1000 rows per transaction.
func (s *Store) DeleteRevokedCredentialsBefore(ctx context.Context, before time.Time) (int64, error) {
	const op = "delete revoked credentials"
	st, err := s.credStmt(op, qDeleteRevokedCredentials)
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		res, err := st.ExecContext(ctx, rowscan.Micros(before), deleteRevokedCredentialsBy)
		if err != nil {
			return total, wrap(op, err, "")
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, wrap(op, err, "")
		}
		total += n
		if n < deleteRevokedCredentialsBy {
			return total, nil
		}
	}
}
