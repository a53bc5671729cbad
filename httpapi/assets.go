package httpapi

import (
	"context"
	"net/http"

	"github.com/creditd/creditd/blob"
	"github.com/creditd/creditd/ledger"
)

// Uploads, their budget and rate, asset deletion and the asset locks that
// keep a job from naming an asset being deleted are the application
// layer's (app.Service: StoreUpload, DeleteAsset, LockAssetsForJob).

// deletedAsset is the answer to a delete.
type deletedAsset struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

// visibleAsset reads asset id for a caller that may see the assets of the
// accounts may admits: a missing asset, another account's, or a staged
// output answers notFound; a failure of the store is itself.
func (s *Server) visibleAsset(ctx context.Context, id string, may func(accountID string) bool, notFound error) (*ledger.Asset, error) {
	a, err := s.Store.GetAsset(ctx, id)
	if err != nil && ledger.ErrorCode(err) != ledger.ENotFound {
		return nil, err
	}
	if err != nil || !may(a.AccountID) || !s.Engine.AssetVisible(ctx, a) {
		return nil, notFound
	}
	return a, nil
}

func (s *Server) deleteAsset(w http.ResponseWriter, r *http.Request, p Principal) {
	id := r.PathValue("id")
	notFound := ledger.Errorf(ledger.ENotFound, "no asset %q", id)
	if !blob.ValidID(id) {
		s.writeError(w, r, notFound)
		return
	}
	a, err := s.visibleAsset(r.Context(), id, p.canAccess, notFound)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.App.DeleteAsset(r.Context(), a); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deletedAsset{ID: a.ID, Object: "asset", Deleted: true})
}
