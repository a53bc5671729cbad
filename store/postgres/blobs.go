package postgres

import (
	"bytes"
	"context"
	"errors"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/creditd/creditd/ledger"
)

// blobTimeout bounds one blob read or write.
const blobTimeout = 30_000_000_000 // 30 s

// Blobs keeps asset bytes in the shared database (table blobs), so that any
// node serves any asset. Images are bounded by imageops.UploadBytesMax.
type Blobs struct{ s *Store }

// Blobs returns the blob store of this database.
func (s *Store) Blobs() *Blobs { return &Blobs{s: s} }

// Put writes a blob; writing the same id twice keeps the first.
func (b *Blobs) Put(id string, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
	defer cancel()
	_, err := b.s.pool.Exec(ctx, `INSERT INTO blobs (id, data) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, id, data)
	return err
}

// Delete removes a blob; a missing id is not an error.
func (b *Blobs) Delete(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
	defer cancel()
	_, err := b.s.pool.Exec(ctx, `DELETE FROM blobs WHERE id = $1`, id)
	return err
}

// Open reads a blob.
func (b *Blobs) Open(id string) (io.ReadSeekCloser, error) {
	ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
	defer cancel()
	var data []byte
	err := b.s.pool.QueryRow(ctx, `SELECT data FROM blobs WHERE id = $1`, id).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ledger.Errorf(ledger.ENotFound, "no asset %q", id)
	}
	if err != nil {
		return nil, err
	}
	return nopCloser{bytes.NewReader(data)}, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
