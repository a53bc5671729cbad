-- Outbound webhooks (ledger.WebhookEndpoint, ledger.WebhookDelivery).
--
-- webhook_endpoints: the URLs an admin registered; events is a JSON array
-- of event types ("*": all). seq orders them for the admin's list.
--
-- webhook_deliveries: one row per event and endpoint, written by a
-- dispatcher's fan-out in the same transaction that moves
-- webhook_cursor.seq past the event (compare-and-set: of several nodes
-- fanning out the same events, one wins), so no event is skipped or
-- fanned out twice, across crashes. A row is pending until an attempt
-- succeeds or its retries run out; a node claims due rows with FOR UPDATE
-- SKIP LOCKED and a lease (lease_until), so one node sends each attempt.
--
-- Times are BIGINT unix microseconds UTC, 0 for none. The tables are new:
-- existing databases gain them empty.

-- +goose Up
CREATE SEQUENCE webhook_endpoint_seq;
CREATE SEQUENCE webhook_delivery_seq;

CREATE TABLE webhook_endpoints (
    id                          TEXT    COLLATE "C" PRIMARY KEY,
    seq                         BIGINT  NOT NULL UNIQUE DEFAULT nextval('webhook_endpoint_seq'),
    url                         TEXT    COLLATE "C" NOT NULL,
    events                      TEXT    COLLATE "C" NOT NULL,
    description                 TEXT    COLLATE "C" NOT NULL,
    status                      TEXT    COLLATE "C" NOT NULL CHECK (status IN ('enabled', 'disabled')),
    secret                      TEXT    COLLATE "C" NOT NULL,
    previous_secret             TEXT    COLLATE "C" NOT NULL,
    previous_secret_expires_at  BIGINT  NOT NULL,
    failing_since               BIGINT  NOT NULL,
    created_at                  BIGINT  NOT NULL,
    updated_at                  BIGINT  NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT    COLLATE "C" PRIMARY KEY,
    seq             BIGINT  NOT NULL UNIQUE DEFAULT nextval('webhook_delivery_seq'),
    endpoint_id     TEXT    COLLATE "C" NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        TEXT    COLLATE "C" NOT NULL,
    event_type      TEXT    COLLATE "C" NOT NULL,
    event_seq       BIGINT  NOT NULL,
    attempt         INTEGER NOT NULL,
    status          TEXT    COLLATE "C" NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    response_status INTEGER NOT NULL,
    duration_ms     BIGINT  NOT NULL,
    error           TEXT    COLLATE "C" NOT NULL,
    next_retry_at   BIGINT  NOT NULL,
    lease_until     BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    UNIQUE (endpoint_id, event_id)
);

-- An endpoint's list, newest first; and its due deliveries.
CREATE INDEX webhook_deliveries_endpoint_seq ON webhook_deliveries (endpoint_id, seq);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_retry_at) WHERE status = 'pending';

-- The fan-out cursor: the seq of the last event whose deliveries are
-- written. One row.
CREATE TABLE webhook_cursor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT  NOT NULL
);
INSERT INTO webhook_cursor (id, seq) VALUES (1, 0);

-- +goose Down
DROP TABLE webhook_cursor;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP SEQUENCE webhook_delivery_seq;
DROP SEQUENCE webhook_endpoint_seq;
