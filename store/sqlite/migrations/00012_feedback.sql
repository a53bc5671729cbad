-- Answers to a help article's "Was this article helpful?" (ledger.Feedback):
-- one row per account and article; answering again replaces the row's
-- helpful, comment, updated_at and seq, and keeps created_at.
--
-- seq orders the answers for the admin's list (GET /v1/feedback), latest
-- first: every save takes one more than the greatest (the store has one
-- writer connection, so no two saves race for it).
--
-- Times are INTEGER unix microseconds UTC. The table is new: existing
-- databases gain it empty.

-- +goose Up
CREATE TABLE feedback (
    account_id TEXT    NOT NULL,
    article    TEXT    NOT NULL,
    helpful    INTEGER NOT NULL CHECK (helpful IN (0, 1)),
    comment    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    seq        INTEGER NOT NULL UNIQUE,
    PRIMARY KEY (account_id, article)
) STRICT;

-- One article's answers, latest first.
CREATE INDEX feedback_article_seq ON feedback (article, seq);

-- +goose Down
DROP TABLE feedback;
