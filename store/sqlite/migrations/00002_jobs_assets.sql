-- Jobs (generations and edits, each paid for by a hold) and assets (image
-- metadata; the bytes live in a blob store).
--
-- seq is the rowid: the database assigns it on insert (max(seq)+1, so
-- greater than every existing row's) and an upsert keeps it; a PostgreSQL
-- store uses a bigint identity column. It orders an account's jobs and
-- assets for pagination.
--
-- Times are INTEGER unix microseconds UTC; 0 means none (the zero time).
-- params is the job's raw JSON, stored verbatim ('{}' when empty); outputs
-- is a JSON array of asset ids.

-- +goose Up
CREATE TABLE jobs (
    seq              INTEGER NOT NULL PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    account_id       TEXT    NOT NULL,
    action           TEXT    NOT NULL,
    category         TEXT    NOT NULL,
    quantity         INTEGER NOT NULL,
    params           TEXT    NOT NULL DEFAULT '{}',
    params_version   INTEGER NOT NULL DEFAULT 0,
    status           TEXT    NOT NULL,
    hold_id          TEXT    NOT NULL DEFAULT '',
    cost             INTEGER NOT NULL DEFAULT 0,
    charged          INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_id         TEXT    NOT NULL DEFAULT '',
    lease_expires_at INTEGER NOT NULL DEFAULT 0,
    outputs          TEXT    NOT NULL DEFAULT '[]',
    error            TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER NOT NULL DEFAULT 0
) STRICT;

-- An account's jobs newest first (ListJobs).
CREATE INDEX jobs_account ON jobs (account_id, seq);
-- Active jobs, per account (LoadState) and all of them (ListActiveJobs).
-- Queries must repeat the WHERE term verbatim.
CREATE INDEX jobs_active ON jobs (account_id, seq)
    WHERE status IN ('queued', 'running');

CREATE TABLE assets (
    seq          INTEGER NOT NULL PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    account_id   TEXT    NOT NULL,
    job_id       TEXT    NOT NULL DEFAULT '',
    kind         TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    width        INTEGER NOT NULL DEFAULT 0,
    height       INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    sha256       TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL
) STRICT;

-- An account's assets newest first (ListAssets).
CREATE INDEX assets_account ON assets (account_id, seq);
-- A job's outputs.
CREATE INDEX assets_job ON assets (job_id);

-- +goose Down
DROP TABLE assets;
DROP TABLE jobs;
