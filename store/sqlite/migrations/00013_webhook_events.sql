-- The webhook outbox and the balance alerts (docs/webhooks.md).
--
-- webhook_events holds every event the engine raised, written by the
-- materializer from the same journal record as the change it announces
-- (ledger.WebhookEvent). seq is assigned by the store in commit order
-- (one batch at a time) and is the rowid. data is the event's JSON data.
--
-- accounts gain low_balance_threshold (the line of credits.low; existing
-- accounts get 10, the default of alerts.low_balance_threshold) and
-- alerts, the bits of the alerts already sent (ledger.AlertLow,
-- ledger.AlertDepleted): 0, armed. grants gain notices, the bits of the
-- once-per-bucket events already sent (ledger.NoticeExpiring,
-- ledger.NoticeRefunded).
--
-- grants_deadlines finds the buckets whose expiry (or expiry notice) the
-- sweeper commits when due; it is partial on columns a charge does not
-- change. Times are INTEGER unix microseconds UTC.

-- +goose Up
ALTER TABLE accounts ADD COLUMN low_balance_threshold INTEGER NOT NULL DEFAULT 10;
ALTER TABLE accounts ADD COLUMN alerts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN notices INTEGER NOT NULL DEFAULT 0;
CREATE INDEX grants_deadlines ON grants (expires_at) WHERE expires_at <> 0 AND source <> 'daily';
CREATE TABLE webhook_events (
    seq        INTEGER NOT NULL PRIMARY KEY,
    id         TEXT    NOT NULL UNIQUE,
    type       TEXT    NOT NULL,
    account_id TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    data       TEXT    NOT NULL
) STRICT;

-- +goose Down
DROP TABLE webhook_events;
DROP INDEX grants_deadlines;
ALTER TABLE grants DROP COLUMN notices;
ALTER TABLE accounts DROP COLUMN alerts;
ALTER TABLE accounts DROP COLUMN low_balance_threshold;
