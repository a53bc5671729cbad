-- The webhook outbox and the balance alerts (docs/webhooks.md).
--
-- webhook_events holds every event the engine raised, inserted by the same
-- transaction as the change it announces (ledger.WebhookEvent). seq comes
-- from a sequence, drawn under a transaction-level advisory lock that the
-- inserting transaction holds until it commits: seqs become visible in
-- increasing order, so a reader that has seen seq n never later finds a
-- smaller one committed (rolled-back seqs are gaps, never filled).
--
-- accounts gain low_balance_threshold (the line of credits.low; existing
-- accounts get 10, the default of alerts.low_balance_threshold) and
-- alerts, the bits of the alerts already sent; grants gain notices, the
-- bits of the once-per-bucket events already sent. Neither changes on a
-- charge, and no index covers them, so charges stay HOT updates.
--
-- grants_deadlines finds the live buckets whose expiry (or expiry notice)
-- the sweeper commits when due; it is partial on live (see 00004) and on
-- columns a charge does not change.

-- +goose Up
ALTER TABLE accounts ADD COLUMN low_balance_threshold BIGINT NOT NULL DEFAULT 10;
ALTER TABLE accounts ADD COLUMN alerts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN notices BIGINT NOT NULL DEFAULT 0;
CREATE INDEX grants_deadlines ON grants (expires_at) WHERE live AND expires_at <> 0 AND source <> 'daily';
CREATE TABLE webhook_events (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT   COLLATE "C" NOT NULL UNIQUE,
    type       TEXT   COLLATE "C" NOT NULL,
    account_id TEXT   COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    data       TEXT   COLLATE "C" NOT NULL
);

-- +goose Down
DROP TABLE webhook_events;
DROP INDEX grants_deadlines;
ALTER TABLE grants DROP COLUMN notices;
ALTER TABLE accounts DROP COLUMN alerts;
ALTER TABLE accounts DROP COLUMN low_balance_threshold;
