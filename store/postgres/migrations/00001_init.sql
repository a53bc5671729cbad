-- Initial schema of the creditd PostgreSQL store: the SQLite schema of the
-- same version, column for column.
--
-- Times are BIGINT unix microseconds UTC; 0 means none (the zero time).
-- Slices (hold portions, entry legs) are JSON text: TEXT, not jsonb, so
-- both stores keep one encoding. Every text column is COLLATE "C": ids
-- compare and sort bytewise, as in SQLite, whatever the database's locale.

-- +goose Up
CREATE TABLE accounts (
    id               TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    plan             TEXT   COLLATE "C" NOT NULL,
    timezone         TEXT   COLLATE "C" NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    daily_last_date  TEXT   COLLATE "C" NOT NULL DEFAULT '',
    daily_not_before BIGINT NOT NULL DEFAULT 0,
    version          BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE grants (
    id         TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    account_id TEXT   COLLATE "C" NOT NULL,
    source     TEXT   COLLATE "C" NOT NULL,
    reference  TEXT   COLLATE "C" NOT NULL DEFAULT '',
    amount     BIGINT NOT NULL,
    remaining  BIGINT NOT NULL,
    held       BIGINT NOT NULL,
    charged    BIGINT NOT NULL,
    expired    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- A reference identifies at most one grant per account and source.
CREATE UNIQUE INDEX grants_reference ON grants (account_id, source, reference)
    WHERE reference <> '';
-- Live buckets, for LoadState, in the order it returns them. Queries must
-- repeat the WHERE term for the planner to prove the index applies.
CREATE INDEX grants_live ON grants (account_id, created_at, id)
    WHERE remaining > 0 OR held > 0;
-- All buckets of an account, for LoadHistory (verify).
CREATE INDEX grants_account ON grants (account_id, created_at, id);

CREATE TABLE holds (
    id                TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    account_id        TEXT   COLLATE "C" NOT NULL,
    action            TEXT   COLLATE "C" NOT NULL,
    category          TEXT   COLLATE "C" NOT NULL,
    quantity          BIGINT NOT NULL,
    unit_price        BIGINT NOT NULL,
    amount            BIGINT NOT NULL,
    status            TEXT   COLLATE "C" NOT NULL,
    portions          TEXT   COLLATE "C" NOT NULL DEFAULT 'null',
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL DEFAULT 0,
    resolved_at       BIGINT NOT NULL DEFAULT 0,
    captured_quantity BIGINT NOT NULL DEFAULT 0,
    captured_amount   BIGINT NOT NULL DEFAULT 0,
    release_reason    TEXT   COLLATE "C" NOT NULL DEFAULT ''
);

-- Pending holds, per account (LoadState) and all of them (ListPendingHolds).
CREATE INDEX holds_pending ON holds (account_id, expires_at)
    WHERE status = 'pending';
-- All holds of an account, for LoadHistory (verify).
CREATE INDEX holds_account ON holds (account_id, created_at, id);

-- id is assigned by the database, increasing in insertion order.
CREATE TABLE entries (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id TEXT   COLLATE "C" NOT NULL,
    type       TEXT   COLLATE "C" NOT NULL,
    amount     BIGINT NOT NULL,
    source     TEXT   COLLATE "C" NOT NULL DEFAULT '',
    grant_id   TEXT   COLLATE "C" NOT NULL DEFAULT '',
    hold_id    TEXT   COLLATE "C" NOT NULL DEFAULT '',
    action     TEXT   COLLATE "C" NOT NULL DEFAULT '',
    quantity   BIGINT NOT NULL DEFAULT 0,
    reason     TEXT   COLLATE "C" NOT NULL DEFAULT '',
    legs       TEXT   COLLATE "C" NOT NULL DEFAULT 'null',
    created_at BIGINT NOT NULL
);

CREATE INDEX entries_account ON entries (account_id, id);

CREATE TABLE idempotency_keys (
    principal   TEXT   COLLATE "C" NOT NULL,
    "key"       TEXT   COLLATE "C" NOT NULL,
    fingerprint TEXT   COLLATE "C" NOT NULL,
    status      BIGINT NOT NULL,
    body        BYTEA  NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (principal, "key")
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE entries;
DROP TABLE holds;
DROP TABLE grants;
DROP TABLE accounts;
