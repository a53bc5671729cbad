package httpapi

import (
	"net/http"
)

// Uploads, their budget and rate, asset deletion and the asset locks that
// keep a job from naming an asset being deleted are the application
// layer's (app.Service: Upload, LimitUpload, DeleteAsset, LockAssetsForJob).

// deletedAsset is the answer to a delete.
type deletedAsset struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

func (s *Server) deleteAsset(w http.ResponseWriter, r *http.Request, p Principal) {
	a, err := s.App.Asset(r.Context(), r.PathValue("id"), p.canAccess)
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
