package ledger

import "time"

// Credentials that creditd signs for users (user tokens, sign-in links,
// web sessions) are stateless; what ends them early is stored:
//
//   - an account's credential generation: every credential carries the
//     generation its account had when it was issued, and one of an older
//     generation is revoked. Revoking an account's credentials ("sign out
//     everywhere") moves the generation up by one, so credentials issued
//     before stop working and those issued after work, even within the
//     same microsecond. Accounts that never revoked are at generation 0,
//     which credentials issued before generations existed carry too.
//   - revoked credentials by id (a web session's nonce, on sign-out),
//     kept until the credential would have expired anyway.

// CredentialRevocation is an account's credential generation and when it
// last moved up (the zero time when it never did).
type CredentialRevocation struct {
	AccountID  string
	Generation int64
	RevokedAt  time.Time
}

// RevokedCredential is one credential revoked before its expiry. A store
// keeps it at least until ExpiresAt.
type RevokedCredential struct {
	ID        string
	AccountID string
	RevokedAt time.Time
	ExpiresAt time.Time
}

// CredentialStatusParams asks for an account's credential generation and
// whether the credential with id CredentialID ("" for none) is revoked.
type CredentialStatusParams struct {
	AccountID    string
	CredentialID string
}

// CredentialStatus answers CredentialStatusParams.
type CredentialStatus struct {
	Generation int64
	Revoked    bool
}
