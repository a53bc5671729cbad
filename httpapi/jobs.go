package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/jobs"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

type jobBody struct {
	AccountID string          `json:"account_id"`
	Action    string          `json:"action"`
	Quantity  *int64          `json:"quantity"`
	Params    json.RawMessage `json:"params"`
}

func renderJob(status int) func(any) (int, []byte) {
	return func(v any) (int, []byte) { return status, mustJSON(v.(*ledger.Job)) }
}

// ValidateJobParams validates a job's params for its action and returns
// them compacted: a JSON object within the size limit; for built-in
// actions, the action's own rules, a source asset that the account owns,
// and params that change that image (a crop inside it and smaller than it;
// imageops refuses the other no-op params), so that nothing is charged
// for an unchanged copy.
func (s *Server) ValidateJobParams(ctx context.Context, accountID, action string, params json.RawMessage) (json.RawMessage, error) {
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
	a, err := s.Store.GetAsset(ctx, src)
	if err != nil || a.AccountID != accountID || !s.Engine.AssetVisible(ctx, a) {
		return nil, ledger.Errorf(ledger.EInvalid, "params.source: no asset %q on this account", src)
	}
	if err := imageops.ValidateForSource(action, params, int(a.Width), int(a.Height)); err != nil {
		return nil, err
	}
	return params, nil
}

func (s *Server) postJob(w http.ResponseWriter, r *http.Request, p Principal) {
	var in jobBody
	body, ok := s.readJSON(w, r, &in)
	if !ok {
		return
	}
	if p.Kind == kindUser && in.AccountID == "" {
		in.AccountID = p.ID
	}
	if in.AccountID == "" || in.Action == "" {
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "account_id and action are required"))
		return
	}
	if !p.canAccess(in.AccountID) {
		s.writeError(w, r, ledger.Errorf(ledger.ENotFound, "no account %q", in.AccountID))
		return
	}
	jp := ledger.CreateJobParams{Action: in.Action, Quantity: 1}
	if in.Quantity != nil {
		jp.Quantity = *in.Quantity
	}
	if _, err := ledger.ValidateReserve(s.cfg, ledger.ReserveParams{Action: jp.Action, Quantity: jp.Quantity}); err != nil {
		s.writeError(w, r, err)
		return
	}
	defer s.LockAssetsForJob(in.AccountID)()
	params, err := s.ValidateJobParams(r.Context(), in.AccountID, in.Action, in.Params)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	jp.Params = params
	render := renderJob(http.StatusCreated)
	idem, done := s.idempotency(w, r, p, body, render)
	if done {
		return
	}
	v, err := s.Engine.CreateJob(r.Context(), engine.CreateJobParams{AccountID: in.AccountID, CreateJobParams: jp, Idem: idem})
	s.respond(w, r, v, err, render)
}

// ownedJob reads a job the principal may see (others' jobs are 404).
func (s *Server) ownedJob(r *http.Request, p Principal) (ledger.Job, error) {
	j, err := s.Engine.GetJob(r.Context(), r.PathValue("id"))
	if err != nil {
		return j, err
	}
	if !p.canAccess(j.AccountID) {
		return ledger.Job{}, ledger.Errorf(ledger.ENotFound, "no job %q", r.PathValue("id"))
	}
	return j, nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, p Principal) {
	j, err := s.ownedJob(r, p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, p Principal) {
	cursor, limit, err := s.pageParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	js, next, err := s.Engine.ListJobs(r.Context(), r.PathValue("id"), cursor, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := listResponse{Object: "list", Data: js, HasMore: next != 0}
	if next != 0 {
		resp.NextCursor = strconv.FormatInt(next, 10)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request, p Principal) {
	var in struct{}
	body, ok := s.readJSON(w, r, &in)
	if !ok {
		return
	}
	if _, err := s.ownedJob(r, p); err != nil {
		s.writeError(w, r, err)
		return
	}
	render := renderJob(http.StatusOK)
	idem, done := s.idempotency(w, r, p, body, render)
	if done {
		return
	}
	v, err := s.Engine.CancelJob(r.Context(), engine.JobOp{JobID: r.PathValue("id"), Idem: idem})
	s.respond(w, r, v, err, render)
}

func (s *Server) patchJob(w http.ResponseWriter, r *http.Request, p Principal) {
	var in struct {
		Params json.RawMessage `json:"params"`
	}
	body, ok := s.readJSON(w, r, &in)
	if !ok {
		return
	}
	if len(in.Params) == 0 {
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "params is required"))
		return
	}
	j, err := s.ownedJob(r, p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer s.LockAssetsForJob(j.AccountID)()
	params, err := s.ValidateJobParams(r.Context(), j.AccountID, j.Action, in.Params)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	render := renderJob(http.StatusOK)
	idem, done := s.idempotency(w, r, p, body, render)
	if done {
		return
	}
	v, err := s.Engine.UpdateJobParams(r.Context(), engine.JobOp{JobID: j.ID, Params: params, Idem: idem})
	s.respond(w, r, v, err, render)
}

// Worker protocol (bodies: package jobs).

func (s *Server) workerLease(w http.ResponseWriter, r *http.Request, p Principal) {
	var in jobs.LeaseRequest
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	if err := in.Check(s.cfg); err != nil {
		s.writeError(w, r, err)
		return
	}
	j, err := s.Engine.Lease(r.Context(), in.Actions, time.Duration(in.WaitSeconds)*time.Second)
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		s.writeError(w, r, err)
		return
	}
	if j == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, jobs.LeaseOf(j))
}

func (s *Server) workerHeartbeat(w http.ResponseWriter, r *http.Request, p Principal) {
	var in jobs.HeartbeatRequest
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	if err := in.Check(); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.Engine.Heartbeat(r.Context(), engine.JobOp{JobID: r.PathValue("id"), LeaseID: in.LeaseID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, jobs.HeartbeatOf(res.Job, res.Changed))
}

// leasedJob reads a job and checks that leaseID holds its lease (the
// engine's check, as heartbeat, complete and fail make it): a missing
// lease_id is 400, a lease that is not the job's live one 409.
func (s *Server) leasedJob(r *http.Request, leaseID string) (ledger.Job, error) {
	if leaseID == "" {
		return ledger.Job{}, ledger.Errorf(ledger.EInvalid, "lease_id is required")
	}
	return s.Engine.LeasedJob(r.Context(), r.PathValue("id"), leaseID)
}

// workerInput serves an input of a leased job: an asset of the job's
// account that the job's params name (as any value, at any depth), while
// lease_id holds the job's lease. Any other asset is 404, whether or not it
// exists, so the worker key reads nothing a job did not ask for.
func (s *Server) workerInput(w http.ResponseWriter, r *http.Request, p Principal) {
	j, err := s.leasedJob(r, r.URL.Query().Get("lease_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id := r.PathValue("asset")
	notFound := ledger.Errorf(ledger.ENotFound, "no asset %q among the inputs of job %s", id, j.ID)
	if !jobs.ParamsName(j.Params, id) {
		s.writeError(w, r, notFound)
		return
	}
	a, err := s.visibleAsset(r.Context(), id, func(acct string) bool { return acct == j.AccountID }, notFound)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.ServeAsset(w, r, a)
}

func (s *Server) workerOutput(w http.ResponseWriter, r *http.Request, p Principal) {
	j, err := s.leasedJob(r, r.URL.Query().Get("lease_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a, err := s.storeImage(w, r, j.AccountID, j.ID, ledger.AssetOutput)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a)
}

func (s *Server) workerComplete(w http.ResponseWriter, r *http.Request, p Principal) {
	var in jobs.CompleteRequest
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	if err := in.Check(); err != nil {
		s.writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	for _, o := range in.Outputs {
		a, err := s.Store.GetAsset(r.Context(), o)
		if err != nil || a.JobID != id || a.Kind != ledger.AssetOutput {
			s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "outputs: %q is not an output uploaded for job %s", o, id))
			return
		}
	}
	v, err := s.Engine.CompleteJob(r.Context(), engine.JobOp{JobID: id, LeaseID: in.LeaseID, Outputs: in.Outputs})
	s.respond(w, r, v, err, renderJob(http.StatusOK))
}

func (s *Server) workerFail(w http.ResponseWriter, r *http.Request, p Principal) {
	var in jobs.FailRequest
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	if err := in.Check(); err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := s.Engine.FailJob(r.Context(), engine.JobOp{JobID: r.PathValue("id"), LeaseID: in.LeaseID, Error: in.Error, Retryable: in.Retryable})
	s.respond(w, r, v, err, renderJob(http.StatusOK))
}

// Assets.

// storeImage reads an image body (raw bytes with their Content-Type, or a
// multipart form with a "file" field), checks it, writes the blob and then
// its metadata.
func (s *Server) storeImage(w http.ResponseWriter, r *http.Request, accountID, jobID, kind string) (*ledger.Asset, error) {
	data, ctype, err := readImageBody(w, r)
	if err != nil {
		return nil, err
	}
	info, err := imageops.Inspect(data, ctype)
	if err != nil {
		return nil, err
	}
	sum := sha256Hex(data)
	a := &ledger.Asset{
		ID: ledger.NewID("asset"), AccountID: accountID, JobID: jobID, Kind: kind, ContentType: info.ContentType,
		Width: int64(info.Width), Height: int64(info.Height), Bytes: int64(len(data)), SHA256: sum,
		CreatedAt: s.Engine.Now(), State: ledger.AssetDelivered,
	}
	if kind == ledger.AssetOutput {
		a.State = ledger.AssetStaged // the user's once complete lists it
	}
	if kind == ledger.AssetUpload {
		return a, s.saveUpload(r.Context(), a, data)
	}
	if err := s.Blobs.Put(a.ID, data); err != nil {
		return nil, err
	}
	if err := s.Store.SaveAsset(r.Context(), a); err != nil {
		return nil, err
	}
	return a, nil
}

func readImageBody(w http.ResponseWriter, r *http.Request) ([]byte, string, error) {
	limit := int64(imageops.UploadBytesMax)
	r.Body = http.MaxBytesReader(w, r.Body, limit+(64<<10))
	ctype := r.Header.Get("Content-Type")
	var rd io.Reader = r.Body
	if mt := mediaType(ctype); mt == "multipart/form-data" {
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			return nil, "", tooLargeOr(err, "could not read the multipart form")
		}
		f, fh, err := r.FormFile("file")
		if err != nil {
			return nil, "", ledger.Errorf(ledger.EInvalid, "the form needs a \"file\" field with the image")
		}
		defer f.Close()
		rd, ctype = f, fh.Header.Get("Content-Type")
	}
	data, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return nil, "", tooLargeOr(err, "could not read the image")
	}
	if int64(len(data)) > limit {
		return nil, "", &ledger.Error{Code: ETooLarge, Message: "the image exceeds " + strconv.FormatInt(limit, 10) + " bytes"}
	}
	return data, ctype, nil
}

// StoreUpload stores an image uploaded by an account (the raw body with
// its Content-Type, or a multipart form with a "file" field), within the
// account's upload rate and budget (see saveUpload).
func (s *Server) StoreUpload(w http.ResponseWriter, r *http.Request, accountID string) (*ledger.Asset, error) {
	if _, err := s.Engine.GetAccount(r.Context(), accountID); err != nil {
		return nil, err
	}
	if err := s.takeUpload(accountID); err != nil {
		return nil, err
	}
	return s.storeImage(w, r, accountID, "", ledger.AssetUpload)
}

func (s *Server) postAsset(w http.ResponseWriter, r *http.Request, p Principal) {
	a, err := s.StoreUpload(w, r, r.PathValue("id"))
	if err != nil {
		SetRetryAfter(w, err)
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a)
}

func (s *Server) listAssets(w http.ResponseWriter, r *http.Request, p Principal) {
	cursor, limit, err := s.pageParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if limit == 0 {
		limit = s.cfg.Limits.PageSizeDefault
	}
	id := r.PathValue("id")
	if _, err := s.Engine.GetAccount(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	as, err := s.Store.ListAssets(r.Context(), ledger.ListAssetsParams{AccountID: id, BeforeSeq: cursor, Limit: limit + 1})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := listResponse{Object: "list", Data: as}
	if len(as) > limit {
		as = as[:limit]
		resp.Data, resp.HasMore, resp.NextCursor = as, true, strconv.FormatInt(as[limit-1].Seq, 10)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) getAsset(w http.ResponseWriter, r *http.Request, p Principal) {
	a, err := s.visibleAsset(r.Context(), r.PathValue("id"), p.canAccess, ledger.Errorf(ledger.ENotFound, "no asset %q", r.PathValue("id")))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.ServeAsset(w, r, a)
}

// ServeAsset streams an asset's bytes (as an attachment with ?download=1).
// Downloads never depend on the balance: existing results stay
// accessible at zero credits. The caller must have checked access.
func (s *Server) ServeAsset(w http.ResponseWriter, r *http.Request, a *ledger.Asset) {
	f, err := s.Blobs.Open(a.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", a.ContentType)
	w.Header().Set("ETag", `"`+a.SHA256+`"`)
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("download") != "" {
		w.Header().Set("Content-Disposition", `attachment; filename="`+a.ID+extFor(a.ContentType)+`"`)
	}
	http.ServeContent(w, r, "", a.CreatedAt, f)
}

func extFor(ct string) string {
	switch ct {
	case "image/png":
		return ".png"
	case "image/jpeg":
		return ".jpg"
	case "image/webp":
		return ".webp"
	}
	return ""
}
