package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
)

// Snapshot writes a consistent copy of the database to dst, a file that
// must not exist yet, while the store keeps serving, and returns the seq
// of the last batch the copy holds.
//
// The copy holds every batch whose Commit returned before Snapshot was
// called: it waits until the materializer has written them into the
// tables, then copies the tables in one read transaction (VACUUM INTO) on
// a connection of its own, so neither batches nor the materializer wait
// for it. A materializer transaction ends only where the tables hold
// exactly the state after its last batch, and it records that batch
// (journal_state.applied_seq) in the same transaction, so the copy is the
// ledger as of one point in the sequence of committed batches, with no
// journal records to replay: opening it needs nothing but the file.
func (s *Store) Snapshot(ctx context.Context, dst string) (seq int64, err error) {
	if s.readOnly {
		return 0, fmt.Errorf("sqlite: snapshot: %w", ErrReadOnly)
	}
	if _, err := os.Lstat(dst); !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("sqlite: snapshot: %s exists already", dst)
	}
	if err := s.j.sync(ctx); err != nil {
		return 0, fmt.Errorf("sqlite: snapshot: %w", err)
	}
	// Not a query_only connection (mode=ro, query_only): SQLite counts
	// writing the INTO file as a write. This connection runs only VACUUM
	// INTO, a read of this database.
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(s.path), RawQuery: q.Encode()}).String())
	if err != nil {
		return 0, fmt.Errorf("sqlite: snapshot: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		os.Remove(dst)
		return 0, fmt.Errorf("sqlite: snapshot into %s: %w", dst, err)
	}
	if seq, _, err = SnapshotInfo(ctx, dst); err != nil {
		os.Remove(dst)
		return 0, err
	}
	return seq, nil
}

// SnapshotInfo reads, from the database file at path, the seq of the
// last batch in its tables (journal_state.applied_seq) and the ids of its
// assets (each has a blob), without opening it as a store.
func SnapshotInfo(ctx context.Context, path string) (seq int64, assetIDs []string, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, nil, fmt.Errorf("sqlite: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(abs, modeReadOnly))
	if err != nil {
		return 0, nil, fmt.Errorf("sqlite: %w", err)
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, `SELECT applied_seq FROM journal_state WHERE id = 1`).Scan(&seq); err != nil {
		return 0, nil, fmt.Errorf("sqlite: read journal state of %s: %w", path, err)
	}
	rows, err := db.QueryContext(ctx, `SELECT id FROM assets ORDER BY id`)
	if err != nil {
		return 0, nil, fmt.Errorf("sqlite: read assets of %s: %w", path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return 0, nil, fmt.Errorf("sqlite: read assets of %s: %w", path, err)
		}
		assetIDs = append(assetIDs, id)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("sqlite: read assets of %s: %w", path, err)
	}
	return seq, assetIDs, nil
}
