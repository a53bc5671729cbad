-- The journal (see journal.go): batches are first appended to
-- <name>.journal.db, then written into these tables many at a time.
-- applied_seq is the last journaled batch whose rows are in the tables; it
-- changes in the same transaction as those rows.

-- +goose Up
CREATE TABLE journal_state (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    applied_seq INTEGER NOT NULL
) STRICT;

INSERT INTO journal_state (id, applied_seq) VALUES (1, 0);

-- +goose Down
DROP TABLE journal_state;
