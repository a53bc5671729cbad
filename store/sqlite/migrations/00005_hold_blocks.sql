-- Settled holds (captured, released, expired) are written in blocks: one row
-- per account, id millisecond (the creation time in a hold id) and
-- materializer transaction (seq: the last journal record it covers), holding
-- the codec-encoded holds (codec.go), ascending ids, last_id the greatest. A
-- hold reserved and settled within one materializer window is never a row of
-- its own; pending holds stay in holds (and leave it when they settle). See
-- docs/design.md.

-- +goose Up
CREATE TABLE hold_blocks (
    account_id TEXT    NOT NULL,
    ms         INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    last_id    TEXT    NOT NULL,
    data       BLOB    NOT NULL,
    PRIMARY KEY (account_id, ms, seq, last_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX hold_blocks_ms ON hold_blocks (ms);

-- +goose Down
DROP TABLE hold_blocks;
