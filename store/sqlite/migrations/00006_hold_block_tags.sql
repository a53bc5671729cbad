-- A hold block now holds the settled holds of one account whose ids share
-- a quantum of time (q: the id's milliseconds >> 12, about 4 s) and a tag
-- (ledger.IDTag: for ids from ledger.NewHoldID, a hash of the account id),
-- across many milliseconds; ms is its first hold's. GetHold finds a hold
-- through (q, tag). Blocks written before this migration have q and tag
-- NULL and hold one millisecond each; they are still found through ms. See
-- docs/design.md.
--
-- There is no Down: blocks written after it span many milliseconds, which
-- the earlier lookup by ms would not find.

-- +goose Up
ALTER TABLE hold_blocks ADD COLUMN q INTEGER;
ALTER TABLE hold_blocks ADD COLUMN tag INTEGER;
DROP INDEX hold_blocks_ms;
CREATE INDEX hold_blocks_ms ON hold_blocks (ms) WHERE q IS NULL;
CREATE INDEX hold_blocks_q ON hold_blocks (q, tag, seq) WHERE q IS NOT NULL;
