-- Answers to a help article's "Was this article helpful?" (ledger.Feedback):
-- one row per account and article; answering again replaces the row's
-- helpful, comment, updated_at and seq, and keeps created_at.
--
-- seq orders the answers for the admin's list (GET /v1/feedback), latest
-- first: every save takes the next value of feedback_seq.
--
-- Times are BIGINT unix microseconds UTC. The table is new: existing
-- databases gain it empty.

-- +goose Up
CREATE SEQUENCE feedback_seq;

CREATE TABLE feedback (
    account_id TEXT    COLLATE "C" NOT NULL,
    article    TEXT    COLLATE "C" NOT NULL,
    helpful    BOOLEAN NOT NULL,
    comment    TEXT    COLLATE "C" NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    seq        BIGINT  NOT NULL UNIQUE,
    PRIMARY KEY (account_id, article)
);

-- One article's answers, latest first.
CREATE INDEX feedback_article_seq ON feedback (article, seq);

-- +goose Down
DROP TABLE feedback;
DROP SEQUENCE feedback_seq;
