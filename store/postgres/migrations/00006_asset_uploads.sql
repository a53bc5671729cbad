-- An account's uploads, for its upload budget (ledger.Limits
-- assets_per_account_max and asset_bytes_per_account_max): UploadUsage
-- counts and sums them from this index alone, however many job outputs
-- the account has. Existing uploads are counted as they are.

-- +goose Up
CREATE INDEX assets_uploads ON assets (account_id, bytes) WHERE kind = 'upload';

-- +goose Down
DROP INDEX assets_uploads;
