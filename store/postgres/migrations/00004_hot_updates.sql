-- Let the rows that every charge rewrites be updated in place (HOT: heap-
-- only tuples), without a new entry in each of their indexes.
--
-- PostgreSQL updates a row as a HOT update only when no column that any of
-- its indexes uses (in its key or in its WHERE predicate) changes value,
-- and the row's page has room for the new version. Every reserve and
-- capture rewrites a grant and its account:
--
-- * grants_live was partial on (remaining > 0 OR held > 0), so every change
--   of remaining or held (every reserve, capture, release) rewrote all of
--   the grant's indexes. It is now partial on a stored generated column,
--   live, which changes only when a bucket becomes exhausted or (never
--   today) comes back: the other updates touch no indexed column.
--   Generated, not written by the store, so it cannot disagree with
--   remaining and held, whatever node version writes the row.
-- * fillfactor 75 on accounts, grants and jobs (rewritten by every batch
--   that touches them: versions, balances, leases) leaves a quarter of
--   each new page free for their new versions. Pages written before this
--   migration stay full until rewritten (VACUUM FULL or pg_repack packs
--   them at the new fill factor).
--
-- Holds are not changed: a hold is rewritten once (resolved), and that
-- update changes status, on which holds_pending depends, so it cannot be
-- HOT whatever the fill factor.
--
-- Adding a stored generated column rewrites the grants table under an
-- exclusive lock: on a large ledger, run `creditd migrate` in a quiet
-- moment.

-- +goose Up
ALTER TABLE grants ADD COLUMN live BOOLEAN NOT NULL GENERATED ALWAYS AS (remaining > 0 OR held > 0) STORED;
DROP INDEX grants_live;
-- Live buckets, for LoadState, in the order it returns them. Queries must
-- say "AND live" for the planner to use it.
CREATE INDEX grants_live ON grants (account_id, created_at, id) WHERE live;
ALTER TABLE accounts SET (fillfactor = 75);
ALTER TABLE grants SET (fillfactor = 75);
ALTER TABLE jobs SET (fillfactor = 75);

-- +goose Down
ALTER TABLE jobs RESET (fillfactor);
ALTER TABLE grants RESET (fillfactor);
ALTER TABLE accounts RESET (fillfactor);
DROP INDEX grants_live;
ALTER TABLE grants DROP COLUMN live;
CREATE INDEX grants_live ON grants (account_id, created_at, id)
    WHERE remaining > 0 OR held > 0;
