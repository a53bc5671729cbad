-- When a worker last asked for work of each action (ledger.WorkerPoll):
-- one row per action, raised (never lowered) by RecordWorkerPolls. The
-- engine interrupts a queued job whose action no worker served for
-- limits.job_no_worker_seconds_max. Kept across restarts, so a restart does
-- not make actions look unserved.
--
-- Times are INTEGER unix microseconds UTC.

-- +goose Up
CREATE TABLE worker_polls (
    action       TEXT    NOT NULL PRIMARY KEY,
    last_poll_at INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE worker_polls;
