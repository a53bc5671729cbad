-- What ends a user's credentials before they expire (ledger.CredentialRevocation).
-- Credentials stay stateless and signed; these tables only list revocations.
--
-- credential_generations: an account's credential generation, moved up by
-- one by "sign out everywhere" (and the admin route that does the same);
-- credentials carry the generation they were issued at, and one below the
-- account's is revoked. Accounts without a row are at generation 0, which
-- credentials issued before this table existed carry as well, so they keep
-- working until their account first revokes.
--
-- revoked_credentials: single credentials (a web session, on sign-out) by
-- id, kept until expires_at, when the credential would have expired anyway.
--
-- Times are INTEGER unix microseconds UTC.

-- +goose Up
CREATE TABLE credential_generations (
    account_id TEXT    NOT NULL PRIMARY KEY,
    generation INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
) STRICT;

CREATE TABLE revoked_credentials (
    id         TEXT    NOT NULL PRIMARY KEY,
    account_id TEXT    NOT NULL,
    revoked_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

-- The sweep of expired revocations (DeleteRevokedCredentialsBefore).
CREATE INDEX revoked_credentials_expiry ON revoked_credentials (expires_at);

-- +goose Down
DROP TABLE revoked_credentials;
DROP TABLE credential_generations;
