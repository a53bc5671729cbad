package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/internal/httpx"
	"github.com/creditd/creditd/jobs"
	"github.com/creditd/creditd/ledger"
)

type jobBody struct {
	AccountID string          `json:"account_id"`
	Action    string          `json:"action"`
	Quantity  *int64          `json:"quantity"`
	Params    json.RawMessage `json:"params"`
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
	out, err := s.App.CreateJob(r.Context(), app.CreateJobRequest{AccountID: in.AccountID, Action: in.Action, Quantity: in.Quantity,
		Params: in.Params, May: p.canAccess, Idem: idemKey(r, p, body)})
	respond(s, w, r, out, err)
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, p Principal) {
	j, err := s.App.Job(r.Context(), r.PathValue("id"), p.canAccess)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, p Principal) {
	pr, err := s.pageRequest(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pg, err := s.App.Jobs(r.Context(), pr)
	writePage(s, w, r, pg, err)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request, p Principal) {
	var in struct{}
	body, ok := s.readJSON(w, r, &in)
	if !ok {
		return
	}
	out, err := s.App.CancelJob(r.Context(), app.CancelJobRequest{JobID: r.PathValue("id"), May: p.canAccess, Idem: idemKey(r, p, body)})
	respond(s, w, r, out, err)
}

func (s *Server) patchJob(w http.ResponseWriter, r *http.Request, p Principal) {
	var in struct {
		Params json.RawMessage `json:"params"`
	}
	body, ok := s.readJSON(w, r, &in)
	if !ok {
		return
	}
	out, err := s.App.PatchJob(r.Context(), app.PatchJobRequest{JobID: r.PathValue("id"), Params: in.Params, May: p.canAccess, Idem: idemKey(r, p, body)})
	respond(s, w, r, out, err)
}

// Worker protocol (bodies: package jobs).

func (s *Server) workerLease(w http.ResponseWriter, r *http.Request, p Principal) {
	var in jobs.LeaseRequest
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	j, err := s.App.Lease(r.Context(), in)
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
	res, err := s.App.Heartbeat(r.Context(), app.LeaseRef{JobID: r.PathValue("id"), LeaseID: in.LeaseID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, jobs.HeartbeatOf(res.Job, res.Changed))
}

// leaseRef is the job in the path and the lease in ?lease_id=.
func leaseRef(r *http.Request) app.LeaseRef {
	return app.LeaseRef{JobID: r.PathValue("id"), LeaseID: r.URL.Query().Get("lease_id")}
}

// workerInput serves an input of a leased job (app.Service.JobInput).
func (s *Server) workerInput(w http.ResponseWriter, r *http.Request, p Principal) {
	a, err := s.App.JobInput(r.Context(), app.InputRequest{LeaseRef: leaseRef(r), AssetID: r.PathValue("asset")})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpx.ServeAsset(w, r, s.App, s.log, a)
}

func (s *Server) workerOutput(w http.ResponseWriter, r *http.Request, p Principal) {
	a, err := s.App.StoreOutput(r.Context(), app.OutputRequest{LeaseRef: leaseRef(r), Read: func() ([]byte, string, error) {
		return readImageBody(w, r)
	}})
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
	out, err := s.App.CompleteJob(r.Context(), app.CompleteRequest{LeaseRef: app.LeaseRef{JobID: r.PathValue("id"), LeaseID: in.LeaseID}, Outputs: in.Outputs})
	respond(s, w, r, out, err)
}

func (s *Server) workerFail(w http.ResponseWriter, r *http.Request, p Principal) {
	var in jobs.FailRequest
	if _, ok := s.readJSON(w, r, &in); !ok {
		return
	}
	out, err := s.App.FailJob(r.Context(), app.FailRequest{LeaseRef: app.LeaseRef{JobID: r.PathValue("id"), LeaseID: in.LeaseID},
		Error: in.Error, Retryable: in.Retryable})
	respond(s, w, r, out, err)
}

// Assets.

// readImageBody reads an image body: raw bytes with their Content-Type,
// or a multipart form with a "file" field.
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
	// The upload rate (app.Service.LimitUpload) is taken once the account
	// is known, before the body is read.
	id := r.PathValue("id")
	a, err := s.App.Upload(r.Context(), app.UploadRequest{AccountID: id, Read: func() ([]byte, string, error) {
		if err := s.App.LimitUpload(id); err != nil {
			return nil, "", err
		}
		return readImageBody(w, r)
	}})
	if err != nil {
		httpx.SetRetryAfter(w, err)
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a)
}

func (s *Server) listAssets(w http.ResponseWriter, r *http.Request, p Principal) {
	pr, err := s.pageRequest(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pg, err := s.App.Assets(r.Context(), pr)
	writePage(s, w, r, pg, err)
}

func (s *Server) getAsset(w http.ResponseWriter, r *http.Request, p Principal) {
	a, err := s.App.Asset(r.Context(), r.PathValue("id"), p.canAccess)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpx.ServeAsset(w, r, s.App, s.log, a)
}
