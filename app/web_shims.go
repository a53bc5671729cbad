package app

// Use cases the web app and the JSON API share, in the shape the edges
// call them. They delegate to the engine and the store; where the
// application layer types a use case of its own, it replaces the shim.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash/fnv"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"net/http"
)

// Now returns the engine clock's time.
func (s *Service) Now() time.Time { return s.eng.Now() }

// GetAccount reads an account.
func (s *Service) GetAccount(ctx context.Context, id string) (ledger.Account, error) {
	return s.eng.GetAccount(ctx, id)
}

// EnsureAccount creates an account with the usual sign-up and daily
// credits when it does not exist yet, and leaves an existing one as it is.
func (s *Service) EnsureAccount(ctx context.Context, id string) error {
	if _, err := s.eng.GetAccount(ctx, id); err == nil || ledger.ErrorCode(err) != ledger.ENotFound {
		return err
	}
	_, err := s.eng.PutAccount(ctx, engine.PutAccountParams{ID: id})
	return err
}

// SetTimezone sets an existing account's time zone (an IANA name; its days
// and daily credits follow it).
func (s *Service) SetTimezone(ctx context.Context, accountID, tz string) error {
	_, err := s.eng.PutAccount(ctx, engine.PutAccountParams{ID: accountID, Timezone: tz})
	return err
}

// Balance reads an account's balance.
func (s *Service) Balance(ctx context.Context, id string) (ledger.Balance, error) {
	return s.eng.Balance(ctx, id)
}

// Quote prices an action for an account.
func (s *Service) Quote(ctx context.Context, id, action string, quantity int64) (ledger.Quote, error) {
	return s.eng.Quote(ctx, id, action, quantity)
}

// LiveActions reports the actions a worker serves now.
func (s *Service) LiveActions(ctx context.Context) map[string]bool { return s.eng.LiveActions(ctx) }

// ListEntries lists an account's entries, newest first.
func (s *Service) ListEntries(ctx context.Context, accountID string, beforeID int64, limit int) ([]ledger.Entry, int64, error) {
	return s.eng.ListEntries(ctx, accountID, beforeID, limit)
}

// GetHold reads a hold.
func (s *Service) GetHold(ctx context.Context, id string) (ledger.Hold, error) {
	return s.eng.GetHold(ctx, id)
}

// CreateJobOnce creates a job of an account and holds its price, and
// returns its id. With a key (a form's one-time key, in the caller's
// namespace), the same key again for the same job returns the first job's
// id instead of creating another; for another job it is
// idempotency_mismatch.
func (s *Service) CreateJobOnce(ctx context.Context, accountID string, p ledger.CreateJobParams, key string) (jobID string, err error) {
	jp := engine.CreateJobParams{AccountID: accountID, CreateJobParams: p}
	if key != "" {
		fp, err := json.Marshal(p)
		if err != nil {
			return "", err
		}
		jp.Idem = &engine.Idempotency{
			Principal: "user:" + accountID, Key: key, Fingerprint: "web " + string(fp),
			Render: func(v any) (int, []byte) { return http.StatusCreated, mustJSON(v) },
		}
	}
	v, err := s.eng.CreateJob(ctx, jp)
	if err != nil {
		return "", err
	}
	return createdJobID(v), nil
}

// createdJobID is the id of the job of CreateJob's result: the job, the
// job rendered and stored under an idempotency key, or the stored answer
// replayed.
func createdJobID(v any) string {
	switch x := v.(type) {
	case *ledger.Job:
		return x.ID
	case engine.Rendered:
		return createdJobID(x.Result)
	case engine.Replay:
		var j struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(x.Body, &j)
		return j.ID
	}
	return ""
}

// GetJob reads a job.
func (s *Service) GetJob(ctx context.Context, id string) (ledger.Job, error) {
	return s.eng.GetJob(ctx, id)
}

// CancelJobByID cancels a job (its hold is released).
func (s *Service) CancelJobByID(ctx context.Context, jobID string) error {
	_, err := s.eng.CancelJob(ctx, engine.JobOp{JobID: jobID})
	return err
}

// ChangeJobParams changes a queued job's params (validated by the caller
// with ValidateJobParams, under LockAssetsForJob).
func (s *Service) ChangeJobParams(ctx context.Context, jobID string, params json.RawMessage) error {
	_, err := s.eng.UpdateJobParams(ctx, engine.JobOp{JobID: jobID, Params: params})
	return err
}

// ListJobs lists an account's jobs, newest first.
func (s *Service) ListJobs(ctx context.Context, accountID string, beforeSeq int64, limit int) ([]ledger.Job, int64, error) {
	return s.eng.ListJobs(ctx, accountID, beforeSeq, limit)
}

// Feedback reads an account's feedback on a help article.
func (s *Service) Feedback(ctx context.Context, accountID, article string) (ledger.Feedback, bool, error) {
	return s.eng.Feedback(ctx, accountID, article)
}

// SaveFeedback records an account's answer on a help article (whether it
// helped, and a comment), replacing its earlier one.
func (s *Service) SaveFeedback(ctx context.Context, accountID, article string, helpful bool, comment string) (ledger.Feedback, error) {
	return s.eng.SaveFeedback(ctx, engine.SaveFeedbackParams{AccountID: accountID, Article: article, Helpful: helpful, Comment: comment})
}

// ListAssets lists an account's delivered assets, newest first.
func (s *Service) ListAssets(ctx context.Context, p ledger.ListAssetsParams) ([]ledger.Asset, error) {
	return s.store.ListAssets(ctx, p)
}

// UploadUsage counts an account's uploads against its budget.
func (s *Service) UploadUsage(ctx context.Context, accountID string) (ledger.UploadUsage, error) {
	return s.store.UploadUsage(ctx, accountID)
}

// VisibleAsset reads an asset of accountID that its owner may see: a
// missing asset, another account's, or a staged output is nil with
// ok false; a failure of the store is an error.
func (s *Service) VisibleAsset(ctx context.Context, accountID, id string) (a *ledger.Asset, ok bool, err error) {
	a, err = s.store.GetAsset(ctx, id)
	if err != nil && ledger.ErrorCode(err) != ledger.ENotFound {
		return nil, false, err
	}
	if err != nil || a.AccountID != accountID || !s.eng.AssetVisible(ctx, a) {
		return nil, false, nil
	}
	return a, true, nil
}

// OpenAsset opens an asset's bytes. Downloads never depend on the
// balance: existing results stay accessible at zero credits. The caller
// must have checked access.
func (s *Service) OpenAsset(a *ledger.Asset) (io.ReadSeekCloser, error) {
	return s.blobs.Open(a.ID)
}

// An account's uploads have a budget and a rate (ledger.Limits):
//
//   - assets_per_account_max and asset_bytes_per_account_max bound what its
//     uploads take in the store. The store admits an upload atomically
//     against the account's other uploads on every node (SaveUpload), so
//     concurrent uploads never overshoot; over budget, the answer is
//     quota_exceeded and nothing is stored. Job outputs do not count.
//   - asset_uploads_per_minute_per_account bounds its upload requests on
//     each node (LimitUpload); over it, the answer is too_many_requests,
//     before the body is read.
//
// Deleting an asset frees its part of the budget. An asset that a queued
// or running job of its account uses (ledger.Job.UsesAsset) cannot be
// deleted; assetLocks keeps a job that names an asset from being created
// on this node while that asset is being deleted.

// StoreUpload stores an image uploaded by an account within its upload
// rate and budget. read returns the image's bytes and Content-Type (the
// edge reads its request body within imageops.UploadBytesMax); it is
// called after the account and its upload rate are checked, so a refused
// upload's body is never read.
func (s *Service) StoreUpload(ctx context.Context, accountID string, read func() (data []byte, contentType string, err error)) (*ledger.Asset, error) {
	if _, err := s.eng.GetAccount(ctx, accountID); err != nil {
		return nil, err
	}
	if err := s.LimitUpload(accountID); err != nil {
		return nil, err
	}
	data, ctype, err := read()
	if err != nil {
		return nil, err
	}
	a, err := s.NewImageAsset(accountID, "", ledger.AssetUpload, data, ctype)
	if err != nil {
		return nil, err
	}
	return a, s.saveUpload(ctx, a, data)
}

// NewImageAsset checks an image and describes it as an asset of an
// account (of a job, for outputs), not yet stored. An output is staged:
// the user's once its job completes.
func (s *Service) NewImageAsset(accountID, jobID, kind string, data []byte, ctype string) (*ledger.Asset, error) {
	info, err := imageops.Inspect(data, ctype)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	a := &ledger.Asset{
		ID: ledger.NewID("asset"), AccountID: accountID, JobID: jobID, Kind: kind, ContentType: info.ContentType,
		Width: int64(info.Width), Height: int64(info.Height), Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
		CreatedAt: s.eng.Now(), State: ledger.AssetDelivered,
	}
	if kind == ledger.AssetOutput {
		a.State = ledger.AssetStaged
	}
	return a, nil
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
func (s *Service) LockAssetsForJob(accountID string) (unlock func()) {
	mu := s.assetLocks.of(accountID)
	mu.RLock()
	return mu.RUnlock
}

// DeleteAsset deletes an asset's metadata and then its bytes, which frees
// its part of the account's upload budget. An asset that a queued or
// running job of the account uses is a conflict, and stays. The caller
// must have checked access.
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

// ValidateJobParams validates a job's params for its action and returns
// them compacted: a JSON object within the size limit; for built-in
// actions, the action's own rules, a source asset that the account owns,
// and params that change that image (a crop inside it and smaller than it;
// imageops refuses the other no-op params), so that nothing is charged
// for an unchanged copy.
func (s *Service) ValidateJobParams(ctx context.Context, accountID, action string, params json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(params)) == 0 || string(bytes.TrimSpace(params)) == "null" {
		params = json.RawMessage("{}")
	}
	if len(params) > s.cfg.Limits.JobParamsBytesMax {
		return nil, ledger.Errorf(ledger.EInvalid, "params exceed %d bytes", s.cfg.Limits.JobParamsBytesMax)
	}
	if err := ledger.CheckJSON("params", params); err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := json.Unmarshal(params, &obj); err != nil || obj == nil {
		return nil, ledger.Errorf(ledger.EInvalid, "params must be a JSON object")
	}
	compact := new(bytes.Buffer)
	if err := json.Compact(compact, params); err != nil {
		return nil, ledger.Errorf(ledger.EInvalid, "params must be a JSON object")
	}
	params = compact.Bytes()
	if !slices.Contains(imageops.Actions, action) {
		return params, nil
	}
	if err := imageops.Validate(action, params); err != nil {
		return nil, err
	}
	src, err := imageops.SourceID(params)
	if err != nil {
		return nil, err
	}
	a, ok, _ := s.VisibleAsset(ctx, accountID, src)
	if !ok {
		return nil, ledger.Errorf(ledger.EInvalid, "params.source: no asset %q on this account", src)
	}
	if err := imageops.ValidateForSource(action, params, int(a.Width), int(a.Height)); err != nil {
		return nil, err
	}
	return params, nil
}
