package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/internal/httpx"
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
	defer s.App.LockAssetsForJob(in.AccountID)()
	params, err := s.App.ValidateJobParams(r.Context(), in.AccountID, in.Action, in.Params)
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
	defer s.App.LockAssetsForJob(j.AccountID)()
	params, err := s.App.ValidateJobParams(r.Context(), j.AccountID, j.Action, in.Params)
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

// Worker protocol.

type leaseBody struct {
	Actions     []string `json:"actions"`
	WaitSeconds int64    `json:"wait_seconds"`
}

type leaseResponse struct {
	Job            ledger.Job `json:"job"`
	LeaseID        string     `json:"lease_id"`
	LeaseExpiresAt time.Time  `json:"lease_expires_at"`
	ParamsVersion  int64      `json:"params_version"`
}

func (s *Server) workerLease(w http.ResponseWriter, r *http.Request, p Principal) {
	var in leaseBody
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	if len(in.Actions) == 0 || len(in.Actions) > len(s.cfg.Prices) {
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "actions must list the actions this worker serves"))
		return
	}
	for _, a := range in.Actions {
		if _, ok := s.cfg.Price(a); !ok {
			s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "unknown action %q", a))
			return
		}
	}
	if in.WaitSeconds < 0 || in.WaitSeconds > s.cfg.Limits.JobLeaseWaitSecondsMax {
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "wait_seconds must be between 0 and %d", s.cfg.Limits.JobLeaseWaitSecondsMax))
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
	writeJSON(w, http.StatusOK, leaseResponse{Job: *j, LeaseID: j.LeaseID, LeaseExpiresAt: j.LeaseExpiresAt, ParamsVersion: j.ParamsVersion})
}

type leaseOnly struct {
	LeaseID string `json:"lease_id"`
}

func (s *Server) workerHeartbeat(w http.ResponseWriter, r *http.Request, p Principal) {
	var in leaseOnly
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	if in.LeaseID == "" {
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "lease_id is required"))
		return
	}
	res, err := s.Engine.Heartbeat(r.Context(), engine.JobOp{JobID: r.PathValue("id"), LeaseID: in.LeaseID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	j := res.Job
	out := map[string]any{
		"job": j, "cancelled": j.Status == ledger.JobCancelled, "changed": res.Changed,
		"params": j.Params, "params_version": j.ParamsVersion,
	}
	if j.Status == ledger.JobRunning {
		out["lease_expires_at"] = j.LeaseExpiresAt
	}
	writeJSON(w, http.StatusOK, out)
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
	if !paramsName(j.Params, id) {
		s.writeError(w, r, notFound)
		return
	}
	a, err := s.visibleAsset(r.Context(), id, func(acct string) bool { return acct == j.AccountID }, notFound)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpx.ServeAsset(w, r, s.App, s.log, a)
}

// paramsName reports whether a job's params hold the string id as a value,
// at any depth (object keys do not count).
func paramsName(params json.RawMessage, id string) bool {
	var v any
	if id == "" || json.Unmarshal(params, &v) != nil {
		return false
	}
	var walk func(v any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case string:
			return x == id
		case []any:
			return slices.ContainsFunc(x, walk)
		case map[string]any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

func (s *Server) workerOutput(w http.ResponseWriter, r *http.Request, p Principal) {
	j, err := s.leasedJob(r, r.URL.Query().Get("lease_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a, err := s.storeOutput(w, r, j.AccountID, j.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a)
}

type completeBody struct {
	LeaseID string   `json:"lease_id"`
	Outputs []string `json:"outputs"`
}

func (s *Server) workerComplete(w http.ResponseWriter, r *http.Request, p Principal) {
	var in completeBody
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	if in.LeaseID == "" {
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "lease_id is required"))
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

type failBody struct {
	LeaseID   string `json:"lease_id"`
	Error     string `json:"error"`
	Retryable bool   `json:"retryable"`
}

func (s *Server) workerFail(w http.ResponseWriter, r *http.Request, p Principal) {
	var in failBody
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	if in.LeaseID == "" {
		s.writeError(w, r, ledger.Errorf(ledger.EInvalid, "lease_id is required"))
		return
	}
	// The body kept the text rule (decode); a long message is cut, at a
	// character boundary.
	in.Error = ledger.CleanText(in.Error, ledger.JobErrorBytesMax)
	v, err := s.Engine.FailJob(r.Context(), engine.JobOp{JobID: r.PathValue("id"), LeaseID: in.LeaseID, Error: in.Error, Retryable: in.Retryable})
	s.respond(w, r, v, err, renderJob(http.StatusOK))
}

// Assets.

// storeOutput reads a job's output image (raw bytes with their
// Content-Type, or a multipart form with a "file" field), checks it,
// writes the blob and then its metadata (staged until the job completes).
func (s *Server) storeOutput(w http.ResponseWriter, r *http.Request, accountID, jobID string) (*ledger.Asset, error) {
	data, ctype, err := readImageBody(w, r)
	if err != nil {
		return nil, err
	}
	a, err := s.App.NewImageAsset(accountID, jobID, ledger.AssetOutput, data, ctype)
	if err != nil {
		return nil, err
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
		return nil, "", &ledger.Error{Code: ledger.ETooLarge, Message: "the image exceeds " + strconv.FormatInt(limit, 10) + " bytes"}
	}
	return data, ctype, nil
}

func (s *Server) postAsset(w http.ResponseWriter, r *http.Request, p Principal) {
	a, err := s.App.StoreUpload(r.Context(), r.PathValue("id"), func() ([]byte, string, error) { return readImageBody(w, r) })
	if err != nil {
		httpx.SetRetryAfter(w, err)
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
	httpx.ServeAsset(w, r, s.App, s.log, a)
}
