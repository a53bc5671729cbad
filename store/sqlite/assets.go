package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/internal/rowscan"
)

// Queries of assets that name their state column (migration 10). They are
// prepared by Open only (in assetStmts), not by OpenReadOnly: `creditd
// verify` may read a database that a newer server has not migrated yet.
//
// An account's visible assets are its delivered ones; qListAssets reads
// assets_account and skips the few staged rows. qListStagedOutputs reads
// the partial index assets_staged (staged rows only) and joins the jobs
// table by its unique id (ListStagedOutputs first waits until every
// committed batch is written into the tables).
const (
	qGetAsset       = `SELECT ` + rowscan.AssetCols + `, seq FROM assets WHERE id = ?`
	qListAssets     = `SELECT ` + rowscan.AssetCols + `, seq FROM assets INDEXED BY assets_account WHERE account_id = ? AND seq < ? AND state = 'delivered' ORDER BY seq DESC LIMIT ?`
	qInsertAsset    = `INSERT INTO assets (` + rowscan.AssetCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`
	qDeliverOutputs = `UPDATE assets SET state = 'delivered' WHERE job_id = ? AND kind = 'output' AND state = 'staged' AND id IN (SELECT value FROM json_each(?))`
)

var qListStagedOutputs = `SELECT ` + prefixed("a.", rowscan.AssetCols) + `, a.seq FROM assets a INDEXED BY assets_staged
	LEFT JOIN jobs j ON j.id = a.job_id
	WHERE a.state = 'staged' AND a.seq > ? AND (j.status IS NULL OR j.status NOT IN ('queued', 'running'))
	ORDER BY a.seq LIMIT ?`

// prefixed qualifies each column of a column list with p.
func prefixed(p, list string) string {
	f := cols(list)
	for i := range f {
		f[i] = p + f[i]
	}
	return strings.Join(f, ", ")
}

// prepareAssets prepares the asset queries: the reads on the readers, the
// writes on the writer.
func (s *Store) prepareAssets(ctx context.Context) error {
	r, err := prepareAll(ctx, s.r, []string{qGetAsset, qListAssets, qListStagedOutputs})
	if err != nil {
		return err
	}
	for q, st := range r {
		s.assetStmts[q] = st
	}
	w, err := prepareAll(ctx, s.w, []string{qInsertAsset, qDeliverOutputs})
	if err != nil {
		return err
	}
	for q, st := range w {
		s.assetStmts[q] = st
	}
	return nil
}

// assetStmt returns a prepared asset query, or ErrReadOnly on a read-only
// store.
func (s *Store) assetStmt(op, q string) (*sql.Stmt, error) {
	st := s.assetStmts[q]
	if st == nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, ErrReadOnly)
	}
	return st, nil
}

// GetAsset returns a committed asset in any state.
func (s *Store) GetAsset(ctx context.Context, id string) (*ledger.Asset, error) {
	st, err := s.assetStmt("get asset", qGetAsset)
	if err != nil {
		return nil, err
	}
	a, err := rowscan.Asset(st.QueryRowContext(ctx, id))
	if err != nil {
		return nil, wrap("get asset "+id, err, "")
	}
	return a, nil
}

// ListAssets pages an account's delivered assets newest first (by Seq). A
// Limit <= 0 means no limit.
func (s *Store) ListAssets(ctx context.Context, p ledger.ListAssetsParams) ([]ledger.Asset, error) {
	st, err := s.assetStmt("list assets", qListAssets)
	if err != nil {
		return nil, err
	}
	before, limit := cursor(p.BeforeSeq, p.Limit)
	out, err := queryAll(ctx, st, rowscan.Asset, p.AccountID, before, limit)
	if err != nil {
		return nil, wrap("list assets of "+p.AccountID, err, "")
	}
	return values(out), nil
}

// DeliverOutputs marks staged outputs of a job delivered, through the
// writer connection in its own transaction.
func (s *Store) DeliverOutputs(ctx context.Context, p ledger.DeliverOutputsParams) error {
	st, err := s.assetStmt("deliver outputs", qDeliverOutputs)
	if err != nil {
		return err
	}
	ids, err := json.Marshal(p.AssetIDs)
	if err != nil {
		return fmt.Errorf("sqlite: deliver outputs of %s: %w", p.JobID, err)
	}
	_, err = st.ExecContext(ctx, p.JobID, string(ids))
	return wrap("deliver outputs of "+p.JobID, err, "")
}

// ListStagedOutputs lists staged outputs whose job is ended or missing,
// oldest first, once every committed batch is in the tables.
func (s *Store) ListStagedOutputs(ctx context.Context, p ledger.ListStagedOutputsParams) ([]ledger.Asset, error) {
	st, err := s.assetStmt("list staged outputs", qListStagedOutputs)
	if err != nil {
		return nil, err
	}
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	out, err := queryAll(ctx, st, rowscan.Asset, p.AfterSeq, p.Limit)
	if err != nil {
		return nil, wrap("list staged outputs", err, "")
	}
	return values(out), nil
}
