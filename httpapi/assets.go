package httpapi

import (
	"context"
	"errors"
	"hash/fnv"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/creditd/creditd/blob"
	"github.com/creditd/creditd/ledger"
)

// An account's uploads have a budget and a rate (ledger.Limits):
//
//   - assets_per_account_max and asset_bytes_per_account_max bound what its
//     uploads take in the store. The store admits an upload atomically
//     against the account's other uploads on every node (SaveUpload), so
//     concurrent uploads never overshoot; over budget, the answer is
//     quota_exceeded and nothing is stored. Job outputs do not count.
//   - asset_uploads_per_minute_per_account bounds its upload requests on
//     each node (uploadLimiter); over it, the answer is 429
//     too_many_requests with Retry-After, before the body is read.
//
// Deleting an asset frees its part of the budget. An asset that a queued
// or running job of its account uses (ledger.Job.UsesAsset) cannot be
// deleted; assetLocks keeps a job that names an asset from being created
// on this node while that asset is being deleted.

// saveUpload stores an upload's bytes and then its metadata within the
// account's budget. An upload over the budget is refused before its bytes
// are written, by the usage read first; one that a concurrent upload
// pushed over it is refused by the store, and its bytes deleted again.
func (s *Server) saveUpload(ctx context.Context, a *ledger.Asset, data []byte) error {
	limits := &s.cfg.Limits
	u, err := s.Store.UploadUsage(ctx, a.AccountID)
	if err != nil {
		return err
	}
	if err := limits.AdmitUpload(u, a.Bytes); err != nil {
		return err
	}
	if err := s.Blobs.Put(a.ID, data); err != nil {
		return err
	}
	err = s.Store.SaveUpload(ctx, ledger.SaveUploadParams{Asset: a, Admit: func(u ledger.UploadUsage) error {
		return limits.AdmitUpload(u, a.Bytes)
	}})
	if err != nil {
		if derr := s.Blobs.Delete(a.ID); derr != nil {
			s.log.Error("the bytes of a refused upload were not deleted", "asset", a.ID, "err", derr)
		}
		return err
	}
	return nil
}

// takeUpload admits one upload of the account under
// asset_uploads_per_minute_per_account on this node (a token bucket of
// that many, refilled at that many a minute), or returns
// too_many_requests with the seconds to wait (see SetRetryAfter).
func (s *Server) takeUpload(accountID string) error {
	t := s.rateLimits().uploads
	wait, ok := t.take(accountID, s.Engine.Now())
	if ok {
		return nil
	}
	s.countLimited("upload")
	secs := max(int64((wait+time.Second-1)/time.Second), 1)
	e := ledger.Errorf(ETooMany, "at most %d uploads per minute; try again in %d s", t.burst, secs)
	e.Details = map[string]any{"retry_after_seconds": secs}
	return e
}

// SetRetryAfter sets the Retry-After header of an error that says when to
// retry (details.retry_after_seconds): too_many_requests, or unavailable
// for a job refused because the lease queue is full.
func SetRetryAfter(w http.ResponseWriter, err error) {
	var e *ledger.Error
	if errors.As(err, &e) {
		if secs, ok := e.Details["retry_after_seconds"].(int64); ok {
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		}
	}
}

// assetLocks are read-write locks on accounts' assets, by hash of the
// account id into a fixed set: a request that creates or changes a job
// holds its account's read lock from validating the params (the assets
// they name exist) to the job's commit; a delete holds the write lock from
// reading the account's active jobs to deleting the asset. So on one node
// no job commits naming an asset that is being deleted. Across nodes
// sharing PostgreSQL this does not hold: a job created on another node at
// the moment of the delete may name the deleted asset; it then fails when
// its worker cannot read the asset (404), and its hold is released.
type assetLocks [assetLockStripes]sync.RWMutex

// assetLockStripes is the number of locks accounts share.
const assetLockStripes = 64

func (l *assetLocks) of(accountID string) *sync.RWMutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(accountID))
	return &l[h.Sum32()%assetLockStripes]
}

// LockAssetsForJob takes the account's asset read lock (see assetLocks)
// and returns its unlock: callers that validate a job's params and then
// create or change the job hold it across both.
func (s *Server) LockAssetsForJob(accountID string) (unlock func()) {
	mu := s.assetLocks.of(accountID)
	mu.RLock()
	return mu.RUnlock
}

// DeleteAsset deletes an asset's metadata and then its bytes, which frees
// its part of the account's upload budget. An asset that a queued or
// running job of the account uses is a conflict, and stays. The caller
// must have checked access.
func (s *Server) DeleteAsset(ctx context.Context, a *ledger.Asset) error {
	mu := s.assetLocks.of(a.AccountID)
	mu.Lock()
	defer mu.Unlock()
	jobs, err := s.Engine.ActiveJobs(ctx, a.AccountID)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.UsesAsset(a) {
			e := ledger.Errorf(ledger.EConflict, "asset %s is in use by job %s, which is %s; cancel the job or wait for it to end", a.ID, j.ID, j.Status)
			e.Details = map[string]any{"job_id": j.ID}
			return e
		}
	}
	if err := s.Store.DeleteAsset(ctx, a.ID); err != nil {
		return err
	}
	if err := s.Blobs.Delete(a.ID); err != nil {
		// The asset is gone for every reader; its bytes stay behind.
		s.log.Error("asset deleted, its bytes not", "asset", a.ID, "err", err)
	}
	return nil
}

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
	if err := s.DeleteAsset(r.Context(), a); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, deletedAsset{ID: a.ID, Object: "asset", Deleted: true})
}
