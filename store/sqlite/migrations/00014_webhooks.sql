-- Outbound webhooks (ledger.WebhookEndpoint, ledger.WebhookDelivery).
--
-- webhook_endpoints: the URLs an admin registered; events is a JSON array
-- of event types ("*": all). seq orders them for the admin's list (each
-- insert takes one more than the greatest: the store has one writer
-- connection).
--
-- webhook_deliveries: one row per event and endpoint, written by the
-- dispatcher's fan-out in the same transaction that moves
-- webhook_cursor.seq past the event, so no event is skipped or fanned out
-- twice, across crashes. A row is pending until an attempt succeeds or
-- its retries run out; lease_until is the claim of the node sending it.
-- Deleting an endpoint deletes its deliveries in the same transaction.
--
-- Times are INTEGER unix microseconds UTC, 0 for none. The tables are new:
-- existing databases gain them empty.

-- +goose Up
CREATE TABLE webhook_endpoints (
    id                          TEXT    PRIMARY KEY,
    seq                         INTEGER NOT NULL UNIQUE,
    url                         TEXT    NOT NULL,
    events                      TEXT    NOT NULL,
    description                 TEXT    NOT NULL,
    status                      TEXT    NOT NULL CHECK (status IN ('enabled', 'disabled')),
    secret                      TEXT    NOT NULL,
    previous_secret             TEXT    NOT NULL,
    previous_secret_expires_at  INTEGER NOT NULL,
    failing_since               INTEGER NOT NULL,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL
) STRICT;

CREATE TABLE webhook_deliveries (
    id              TEXT    PRIMARY KEY,
    seq             INTEGER NOT NULL UNIQUE,
    endpoint_id     TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    event_seq       INTEGER NOT NULL,
    attempt         INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    response_status INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    error           TEXT    NOT NULL,
    next_retry_at   INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (endpoint_id, event_id)
) STRICT;

-- An endpoint's list, newest first; and its due deliveries.
CREATE INDEX webhook_deliveries_endpoint_seq ON webhook_deliveries (endpoint_id, seq);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_retry_at) WHERE status = 'pending';

-- The fan-out cursor: the seq of the last event whose deliveries are
-- written. One row.
CREATE TABLE webhook_cursor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
) STRICT;
INSERT INTO webhook_cursor (id, seq) VALUES (1, 0);

-- +goose Down
DROP TABLE webhook_cursor;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
