-- Initial schema of the creditd SQLite store.
--
-- Times are INTEGER unix microseconds UTC; 0 means none (the zero time).
-- Slices (hold portions, entry legs) are JSON text.

-- +goose Up
CREATE TABLE accounts (
    id               TEXT    NOT NULL PRIMARY KEY,
    plan             TEXT    NOT NULL,
    timezone         TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    daily_last_date  TEXT    NOT NULL DEFAULT '',
    daily_not_before INTEGER NOT NULL DEFAULT 0,
    version          INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

CREATE TABLE grants (
    id         TEXT    NOT NULL PRIMARY KEY,
    account_id TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    reference  TEXT    NOT NULL DEFAULT '',
    amount     INTEGER NOT NULL,
    remaining  INTEGER NOT NULL,
    held       INTEGER NOT NULL,
    charged    INTEGER NOT NULL,
    expired    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- A reference identifies at most one grant per account and source.
CREATE UNIQUE INDEX grants_reference ON grants (account_id, source, reference)
    WHERE reference <> '';
-- Live buckets, for LoadState. Queries must repeat the WHERE term verbatim.
CREATE INDEX grants_live ON grants (account_id, created_at)
    WHERE remaining > 0 OR held > 0;
-- All buckets of an account, for LoadHistory (verify).
CREATE INDEX grants_account ON grants (account_id, created_at);

CREATE TABLE holds (
    id                TEXT    NOT NULL PRIMARY KEY,
    account_id        TEXT    NOT NULL,
    action            TEXT    NOT NULL,
    category          TEXT    NOT NULL,
    quantity          INTEGER NOT NULL,
    unit_price        INTEGER NOT NULL,
    amount            INTEGER NOT NULL,
    status            TEXT    NOT NULL,
    portions          TEXT    NOT NULL DEFAULT 'null',
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL DEFAULT 0,
    resolved_at       INTEGER NOT NULL DEFAULT 0,
    captured_quantity INTEGER NOT NULL DEFAULT 0,
    captured_amount   INTEGER NOT NULL DEFAULT 0,
    release_reason    TEXT    NOT NULL DEFAULT ''
) STRICT, WITHOUT ROWID;

-- Pending holds, per account (LoadState) and all of them (ListPendingHolds;
-- covering: the primary key id is part of every index of a WITHOUT ROWID
-- table).
CREATE INDEX holds_pending ON holds (account_id, expires_at)
    WHERE status = 'pending';
-- All holds of an account, for LoadHistory (verify).
CREATE INDEX holds_account ON holds (account_id, created_at);

CREATE TABLE entries (
    id         INTEGER NOT NULL PRIMARY KEY,
    account_id TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    amount     INTEGER NOT NULL,
    source     TEXT    NOT NULL DEFAULT '',
    grant_id   TEXT    NOT NULL DEFAULT '',
    hold_id    TEXT    NOT NULL DEFAULT '',
    action     TEXT    NOT NULL DEFAULT '',
    quantity   INTEGER NOT NULL DEFAULT 0,
    reason     TEXT    NOT NULL DEFAULT '',
    legs       TEXT    NOT NULL DEFAULT 'null',
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX entries_account ON entries (account_id, id);

CREATE TABLE idempotency_keys (
    principal   TEXT    NOT NULL,
    "key"       TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    status      INTEGER NOT NULL,
    body        BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (principal, "key")
) STRICT;

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE entries;
DROP TABLE holds;
DROP TABLE grants;
DROP TABLE accounts;
