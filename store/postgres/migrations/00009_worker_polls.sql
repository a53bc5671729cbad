-- When a worker last asked for work of each action, on any node
-- (ledger.WorkerPoll): one row per action, raised (never lowered) by
-- RecordWorkerPolls, which each node calls at most every few seconds per
-- action. The engine interrupts a queued job whose action no worker served
-- for limits.job_no_worker_seconds_max.
--
-- Times are BIGINT unix microseconds UTC.

-- +goose Up
CREATE TABLE worker_polls (
    action       TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    last_poll_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE worker_polls;
