-- An output is its account's only once delivered (ledger.Asset.State): a
-- job's output is 'staged' from its upload until the job's complete lists
-- it, then 'delivered'; uploads are 'delivered'. Listings show delivered
-- assets only; the engine's sweep deletes the staged outputs of ended jobs
-- with their bytes.
--
-- Existing rows: uploads, and outputs their succeeded job lists, stay
-- visible ('delivered'). Every other output (its job failed, was
-- cancelled or interrupted, is still active, or did not list it) was
-- never the user's and becomes 'staged', so the sweep removes it (or
-- delivers it, if a job still in the journal lists it).

-- +goose Up
ALTER TABLE assets ADD COLUMN state TEXT NOT NULL DEFAULT 'delivered';
UPDATE assets SET state = 'staged'
WHERE kind = 'output' AND NOT EXISTS (
    SELECT 1 FROM jobs, json_each(jobs.outputs) o
    WHERE jobs.id = assets.job_id AND jobs.status = 'succeeded' AND o.value = assets.id);
-- Staged assets, oldest first (ListStagedOutputs).
CREATE INDEX assets_staged ON assets (seq) WHERE state = 'staged';

-- +goose Down
DROP INDEX assets_staged;
ALTER TABLE assets DROP COLUMN state;
