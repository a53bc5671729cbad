-- The params version last delivered to the worker holding a running job's
-- lease (ledger.Job.LeaseParamsVersion). Kept only in memory before, so a
-- restarted server (or, on PostgreSQL, another node) told a worker the
-- params had changed when they had not, and refused its completion. Jobs
-- running across the upgrade read 0: their worker hears "changed" once at
-- its next heartbeat, costing nothing but a restart; assuming the worker
-- had heard the newest params could accept a result made with old ones.

-- +goose Up
ALTER TABLE jobs ADD COLUMN lease_params_version INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE jobs DROP COLUMN lease_params_version;
