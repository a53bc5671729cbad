-- +goose Up
-- Asset bytes, so that every node serves every asset.
CREATE TABLE blobs (
    id   TEXT COLLATE "C" PRIMARY KEY,
    data BYTEA NOT NULL
);

-- +goose Down
DROP TABLE blobs;
