-- An output is its account's only once delivered (ledger.Asset.State): a
-- job's output is 'staged' from its upload until the job's complete lists
-- it, then 'delivered'; uploads are 'delivered'. Listings show delivered
-- assets only; the engine's sweep deletes the staged outputs of ended jobs
-- with their bytes.
--
-- Existing rows: uploads, and outputs their succeeded job lists, stay
-- visible ('delivered'). Every other output (its job failed, was
-- cancelled or interrupted, is still active, or did not list it) was
-- never the user's and becomes 'staged', so the sweep removes it.

-- +goose Up
ALTER TABLE assets ADD COLUMN state TEXT COLLATE "C" NOT NULL DEFAULT 'delivered';
UPDATE assets SET state = 'staged'
WHERE kind = 'output' AND NOT EXISTS (
    SELECT 1 FROM jobs
    WHERE jobs.id = assets.job_id AND jobs.status = 'succeeded'
      AND assets.id IN (SELECT jsonb_array_elements_text(jobs.outputs::jsonb)));
-- Staged assets, oldest first (ListStagedOutputs).
CREATE INDEX assets_staged ON assets (seq) WHERE state = 'staged';

-- +goose Down
DROP INDEX assets_staged;
ALTER TABLE assets DROP COLUMN state;
