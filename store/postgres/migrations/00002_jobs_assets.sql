-- Jobs (generations and edits, each paid for by a hold) and assets (image
-- metadata; the bytes live in a blob store).
--
-- seq is a bigint identity column: the database assigns it on insert from
-- a sequence (so greater than every existing row's) and an upsert keeps it.
-- It orders an account's jobs and assets for pagination. id is the primary
-- key (lookups, ON CONFLICT); seq needs no index of its own.
--
-- Times are BIGINT unix microseconds UTC; 0 means none (the zero time).
-- params is the job's raw JSON, stored verbatim as TEXT ('{}' when empty;
-- jsonb would normalise it); outputs is a JSON array of asset ids.

-- +goose Up
CREATE TABLE jobs (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY,
    id               TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    account_id       TEXT   COLLATE "C" NOT NULL,
    action           TEXT   COLLATE "C" NOT NULL,
    category         TEXT   COLLATE "C" NOT NULL,
    quantity         BIGINT NOT NULL,
    params           TEXT   COLLATE "C" NOT NULL DEFAULT '{}',
    params_version   BIGINT NOT NULL DEFAULT 0,
    status           TEXT   COLLATE "C" NOT NULL,
    hold_id          TEXT   COLLATE "C" NOT NULL DEFAULT '',
    cost             BIGINT NOT NULL DEFAULT 0,
    charged          BIGINT NOT NULL DEFAULT 0,
    attempts         BIGINT NOT NULL DEFAULT 0,
    lease_id         TEXT   COLLATE "C" NOT NULL DEFAULT '',
    lease_expires_at BIGINT NOT NULL DEFAULT 0,
    outputs          TEXT   COLLATE "C" NOT NULL DEFAULT '[]',
    error            TEXT   COLLATE "C" NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT NOT NULL DEFAULT 0
);

-- An account's jobs newest first (ListJobs).
CREATE INDEX jobs_account ON jobs (account_id, seq);
-- Active jobs, per account (LoadState) and all of them (ListActiveJobs).
-- Queries must repeat the WHERE term.
CREATE INDEX jobs_active ON jobs (account_id, seq)
    WHERE status IN ('queued', 'running');

CREATE TABLE assets (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY,
    id           TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    account_id   TEXT   COLLATE "C" NOT NULL,
    job_id       TEXT   COLLATE "C" NOT NULL DEFAULT '',
    kind         TEXT   COLLATE "C" NOT NULL,
    content_type TEXT   COLLATE "C" NOT NULL,
    width        BIGINT NOT NULL DEFAULT 0,
    height       BIGINT NOT NULL DEFAULT 0,
    bytes        BIGINT NOT NULL DEFAULT 0,
    sha256       TEXT   COLLATE "C" NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL
);

-- An account's assets newest first (ListAssets).
CREATE INDEX assets_account ON assets (account_id, seq);
-- A job's outputs.
CREATE INDEX assets_job ON assets (job_id);

-- +goose Down
DROP TABLE assets;
DROP TABLE jobs;
