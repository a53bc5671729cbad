package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"github.com/creditd/creditd/jobs"
	"hash/fnv"
	"io"
	"sync"

	"github.com/creditd/creditd/blob"
	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/ledger"
)

// An account's uploads have a budget (ledger.Limits):
// assets_per_account_max and asset_bytes_per_account_max bound what its
// uploads take in the store. The store admits an upload atomically
// against the account's other uploads on every node (SaveUpload), so
// concurrent uploads never overshoot; over budget, the answer is
// quota_exceeded and nothing is stored. Job outputs do not count. (The
// upload rate, asset_uploads_per_minute_per_account, is the edges': they
// take it in the Read of an UploadRequest, before the body is read.)
//
// Deleting an asset frees its part of the budget. An asset that a queued
// or running job of its account uses (ledger.Job.UsesAsset) cannot be
// deleted; assetLocks keeps a job that names an asset from being created
// on this node while that asset is being deleted.

// ImageReader reads an image body: its bytes and their Content-Type.
type ImageReader func() (data []byte, contentType string, err error)

// UploadRequest stores an image uploaded by an account. Read is called
// once the account is known to exist.
type UploadRequest struct {
	AccountID string
	Read      ImageReader
}

// Upload checks an uploaded image and stores its bytes and then its
// metadata, within the account's upload budget.
func (s *Service) Upload(ctx context.Context, r UploadRequest) (*ledger.Asset, error) {
	if _, err := s.eng.GetAccount(ctx, r.AccountID); err != nil {
		return nil, err
	}
	a, data, err := s.readImage(r.AccountID, "", ledger.AssetUpload, r.Read)
	if err != nil {
		return nil, err
	}
	return a, s.saveUpload(ctx, a, data)
}

// OutputRequest stores an output image of a leased job, staged until the
// job completes listing it.
type OutputRequest struct {
	LeaseRef
	Read ImageReader
}

// StoreOutput checks the lease (LeasedJob), then the image, and stores it
// as a staged output of the job.
func (s *Service) StoreOutput(ctx context.Context, r OutputRequest) (*ledger.Asset, error) {
	j, err := s.LeasedJob(ctx, r.LeaseRef)
	if err != nil {
		return nil, err
	}
	a, data, err := s.readImage(j.AccountID, j.ID, ledger.AssetOutput, r.Read)
	if err != nil {
		return nil, err
	}
	if err := s.blobs.Put(a.ID, data); err != nil {
		return nil, err
	}
	if err := s.store.SaveAsset(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

// readImage reads and inspects an image and returns its asset, not yet
// stored.
func (s *Service) readImage(accountID, jobID, kind string, read ImageReader) (*ledger.Asset, []byte, error) {
	data, ctype, err := read()
	if err != nil {
		return nil, nil, err
	}
	info, err := imageops.Inspect(data, ctype)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(data)
	a := &ledger.Asset{
		ID: ledger.NewID("asset"), AccountID: accountID, JobID: jobID, Kind: kind, ContentType: info.ContentType,
		Width: int64(info.Width), Height: int64(info.Height), Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
		CreatedAt: s.eng.Now(), State: ledger.AssetDelivered,
	}
	if kind == ledger.AssetOutput {
		a.State = ledger.AssetStaged // the user's once complete lists it
	}
	return a, data, nil
}

// saveUpload stores an upload's bytes and then its metadata within the
// account's budget. An upload over the budget is refused before its bytes
// are written, by the usage read first; one that a concurrent upload
// pushed over it is refused by the store, and its bytes deleted again.
func (s *Service) saveUpload(ctx context.Context, a *ledger.Asset, data []byte) error {
	limits := &s.cfg.Limits
	u, err := s.store.UploadUsage(ctx, a.AccountID)
	if err != nil {
		return err
	}
	if err := limits.AdmitUpload(u, a.Bytes); err != nil {
		return err
	}
	if err := s.blobs.Put(a.ID, data); err != nil {
		return err
	}
	err = s.store.SaveUpload(ctx, ledger.SaveUploadParams{Asset: a, Admit: func(u ledger.UploadUsage) error {
		return limits.AdmitUpload(u, a.Bytes)
	}})
	if err != nil {
		if derr := s.blobs.Delete(a.ID); derr != nil {
			s.log.Error("the bytes of a refused upload were not deleted", "asset", a.ID, "err", derr)
		}
		return err
	}
	return nil
}

// UploadUsage returns what an account's uploads take of its budget.
func (s *Service) UploadUsage(ctx context.Context, accountID string) (ledger.UploadUsage, error) {
	return s.store.UploadUsage(ctx, accountID)
}

// Assets pages an account's assets, newest first.
func (s *Service) Assets(ctx context.Context, r PageRequest) (Page[ledger.Asset], error) {
	limit := r.Limit
	if limit == 0 {
		limit = s.cfg.Limits.PageSizeDefault
	}
	if _, err := s.eng.GetAccount(ctx, r.AccountID); err != nil {
		return Page[ledger.Asset]{}, err
	}
	as, err := s.store.ListAssets(ctx, ledger.ListAssetsParams{AccountID: r.AccountID, BeforeSeq: r.Cursor, Limit: limit + 1})
	if err != nil {
		return Page[ledger.Asset]{}, err
	}
	var next int64
	if len(as) > limit {
		as = as[:limit]
		next = as[limit-1].Seq
	}
	return Page[ledger.Asset]{Items: as, Next: next}, nil
}

// Asset reads an asset the caller may see: a missing asset, another
// account's, or a staged output answers 404 "no asset"; a failure of the
// store is itself.
func (s *Service) Asset(ctx context.Context, id string, may Access) (*ledger.Asset, error) {
	return s.visibleAsset(ctx, id, may, ledger.Errorf(ledger.ENotFound, "no asset %q", id))
}

// visibleAsset reads asset id for a caller that may see the assets of the
// accounts may admits: a missing asset, another account's, or a staged
// output answers notFound; a failure of the store is itself.
func (s *Service) visibleAsset(ctx context.Context, id string, may Access, notFound error) (*ledger.Asset, error) {
	if !blob.ValidID(id) {
		return nil, notFound
	}
	a, err := s.store.GetAsset(ctx, id)
	if err != nil && ledger.ErrorCode(err) != ledger.ENotFound {
		return nil, err
	}
	if err != nil || !may.admits(a.AccountID) || !s.eng.AssetVisible(ctx, a) {
		return nil, notFound
	}
	return a, nil
}

// InputRequest asks for an input of a leased job: an asset of the job's
// account that the job's params name.
type InputRequest struct {
	LeaseRef
	AssetID string
}

// JobInput returns an input of a leased job: an asset of the job's
// account that the job's params name (as any value, at any depth), while
// the lease holds the job. Any other asset is 404, whether or not it
// exists, so the worker key reads nothing a job did not ask for.
func (s *Service) JobInput(ctx context.Context, r InputRequest) (*ledger.Asset, error) {
	j, err := s.LeasedJob(ctx, r.LeaseRef)
	if err != nil {
		return nil, err
	}
	notFound := ledger.Errorf(ledger.ENotFound, "no asset %q among the inputs of job %s", r.AssetID, j.ID)
	if !jobs.ParamsName(j.Params, r.AssetID) {
		return nil, notFound
	}
	return s.visibleAsset(ctx, r.AssetID, func(acct string) bool { return acct == j.AccountID }, notFound)
}

// OpenAsset opens an asset's bytes. Downloads never depend on the
// balance: existing results stay accessible at zero credits. The caller
// must have read the asset with access checked (Asset, JobInput).
func (s *Service) OpenAsset(a *ledger.Asset) (io.ReadSeekCloser, error) {
	return s.blobs.Open(a.ID)
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
// create or change the job hold it across both (CreateJob and PatchJob
// do).
func (s *Service) LockAssetsForJob(accountID string) (unlock func()) {
	mu := s.assetLocks.of(accountID)
	mu.RLock()
	return mu.RUnlock
}

// DeleteAsset deletes an asset's metadata and then its bytes, which frees
// its part of the account's upload budget. An asset that a queued or
// running job of the account uses is a conflict, and stays. The caller
// must have read the asset with access checked (Asset).
func (s *Service) DeleteAsset(ctx context.Context, a *ledger.Asset) error {
	mu := s.assetLocks.of(a.AccountID)
	mu.Lock()
	defer mu.Unlock()
	jobs, err := s.eng.ActiveJobs(ctx, a.AccountID)
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
	if err := s.store.DeleteAsset(ctx, a.ID); err != nil {
		return err
	}
	if err := s.blobs.Delete(a.ID); err != nil {
		// The asset is gone for every reader; its bytes stay behind.
		s.log.Error("asset deleted, its bytes not", "asset", a.ID, "err", err)
	}
	return nil
}
