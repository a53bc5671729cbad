package app

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/creditd/creditd/jobs"
	"slices"
	"time"

	"github.com/creditd/creditd/imageops"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// CreateJobRequest starts a job of Quantity (nil: 1) outputs of Action on
// an account, with Params for its worker. May limits the accounts the
// caller may create jobs on (nil: any).
type CreateJobRequest struct {
	AccountID string
	Action    string
	Quantity  *int64
	Params    json.RawMessage
	May       Access
	Idem      *Idempotency
}

// CreateJob validates the params (ValidateJobParams), reserves the job's
// credits and queues it, in one step; it answers 201 with the job.
func (s *Service) CreateJob(ctx context.Context, r CreateJobRequest) (Outcome[*ledger.Job], error) {
	if r.AccountID == "" || r.Action == "" {
		return Outcome[*ledger.Job]{}, ledger.Errorf(ledger.EInvalid, "account_id and action are required")
	}
	if !r.May.admits(r.AccountID) {
		return Outcome[*ledger.Job]{}, ledger.Errorf(ledger.ENotFound, "no account %q", r.AccountID)
	}
	jp := ledger.CreateJobParams{Action: r.Action, Quantity: 1}
	if r.Quantity != nil {
		jp.Quantity = *r.Quantity
	}
	if _, err := ledger.ValidateReserve(s.cfg, ledger.ReserveParams{Action: jp.Action, Quantity: jp.Quantity}); err != nil {
		return Outcome[*ledger.Job]{}, err
	}
	defer s.LockAssetsForJob(r.AccountID)()
	params, err := s.ValidateJobParams(ctx, r.AccountID, r.Action, r.Params)
	if err != nil {
		return Outcome[*ledger.Job]{}, err
	}
	jp.Params = params
	return write(s, r.Idem, renderJobCreated, func(idem *engine.Idempotency[*ledger.Job]) (engine.Outcome[*ledger.Job], error) {
		return s.eng.CreateJob(ctx, engine.CreateJobParams{AccountID: r.AccountID, CreateJobParams: jp, Idem: idem})
	})
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
	a, err := s.store.GetAsset(ctx, src)
	if err != nil || a.AccountID != accountID || !s.eng.AssetVisible(ctx, a) {
		return nil, ledger.Errorf(ledger.EInvalid, "params.source: no asset %q on this account", src)
	}
	if err := imageops.ValidateForSource(action, params, int(a.Width), int(a.Height)); err != nil {
		return nil, err
	}
	return params, nil
}

// Job reads a job the caller may see (others' jobs are 404), applying
// lease loss first if its time has passed.
func (s *Service) Job(ctx context.Context, id string, may Access) (ledger.Job, error) {
	j, err := s.eng.GetJob(ctx, id)
	if err != nil {
		return j, err
	}
	if !may.admits(j.AccountID) {
		return ledger.Job{}, ledger.Errorf(ledger.ENotFound, "no job %q", id)
	}
	return j, nil
}

// Jobs pages an account's jobs, newest first.
func (s *Service) Jobs(ctx context.Context, r PageRequest) (Page[ledger.Job], error) {
	js, next, err := s.eng.ListJobs(ctx, r.AccountID, r.Cursor, r.Limit)
	return Page[ledger.Job]{Items: js, Next: next}, err
}

// CancelJobRequest cancels a job the caller may see.
type CancelJobRequest struct {
	JobID string
	May   Access
	Idem  *Idempotency
}

// CancelJob cancels a queued or running job and releases its credits; it
// answers 200 with the job.
func (s *Service) CancelJob(ctx context.Context, r CancelJobRequest) (Outcome[*ledger.Job], error) {
	if _, err := s.Job(ctx, r.JobID, r.May); err != nil {
		return Outcome[*ledger.Job]{}, err
	}
	return write(s, r.Idem, renderJob, func(idem *engine.Idempotency[*ledger.Job]) (engine.Outcome[*ledger.Job], error) {
		return s.eng.CancelJob(ctx, engine.JobOp{JobID: r.JobID, Idem: idem})
	})
}

// PatchJobRequest changes the params (required) of a job the caller may
// see.
type PatchJobRequest struct {
	JobID  string
	Params json.RawMessage
	May    Access
	Idem   *Idempotency
}

// PatchJob validates new params for a queued or running job
// (ValidateJobParams) and changes them at no cost; it answers 200 with the
// job.
func (s *Service) PatchJob(ctx context.Context, r PatchJobRequest) (Outcome[*ledger.Job], error) {
	if len(r.Params) == 0 {
		return Outcome[*ledger.Job]{}, ledger.Errorf(ledger.EInvalid, "params is required")
	}
	j, err := s.Job(ctx, r.JobID, r.May)
	if err != nil {
		return Outcome[*ledger.Job]{}, err
	}
	defer s.LockAssetsForJob(j.AccountID)()
	params, err := s.ValidateJobParams(ctx, j.AccountID, j.Action, r.Params)
	if err != nil {
		return Outcome[*ledger.Job]{}, err
	}
	return write(s, r.Idem, renderJob, func(idem *engine.Idempotency[*ledger.Job]) (engine.Outcome[*ledger.Job], error) {
		return s.eng.UpdateJobParams(ctx, engine.JobOp{JobID: j.ID, Params: params, Idem: idem})
	})
}

// LeaseRequest is a worker's request for a job (the protocol's body,
// shared with the worker client).
type LeaseRequest = jobs.LeaseRequest

// Lease hands the oldest queued job of the actions to a worker, or nil
// when none arrived in time.
func (s *Service) Lease(ctx context.Context, r LeaseRequest) (*ledger.Job, error) {
	if err := r.Check(s.cfg); err != nil {
		return nil, err
	}
	return s.eng.Lease(ctx, r.Actions, time.Duration(r.WaitSeconds)*time.Second)
}

// LeaseRef names a job and the lease a worker holds on it.
type LeaseRef struct {
	JobID   string
	LeaseID string
}

// Heartbeat extends a worker's lease and says whether to go on.
func (s *Service) Heartbeat(ctx context.Context, r LeaseRef) (*engine.HeartbeatResult, error) {
	if r.LeaseID == "" {
		return nil, leaseIDRequired()
	}
	return s.eng.Heartbeat(ctx, engine.JobOp{JobID: r.JobID, LeaseID: r.LeaseID})
}

func leaseIDRequired() error { return ledger.Errorf(ledger.EInvalid, "lease_id is required") }

// LeasedJob reads a job and checks that the lease holds it now (the
// engine's check, ledger.CheckLease, as heartbeat, complete and fail make
// it inside the committer): a missing lease id is 400, a lease that is not
// the job's live one 409. A worker's calls outside the committer (input
// downloads, output uploads) pass it before they touch the job's assets.
func (s *Service) LeasedJob(ctx context.Context, r LeaseRef) (ledger.Job, error) {
	if r.LeaseID == "" {
		return ledger.Job{}, leaseIDRequired()
	}
	return s.eng.LeasedJob(ctx, r.JobID, r.LeaseID)
}

// CompleteRequest records a leased job's outputs (assets uploaded for it
// with StoreOutput) and charges for them.
type CompleteRequest struct {
	LeaseRef
	Outputs []string
}

// CompleteJob completes a job; it answers 200 with the job.
func (s *Service) CompleteJob(ctx context.Context, r CompleteRequest) (Outcome[*ledger.Job], error) {
	if r.LeaseID == "" {
		return Outcome[*ledger.Job]{}, leaseIDRequired()
	}
	for _, o := range r.Outputs {
		a, err := s.store.GetAsset(ctx, o)
		if err != nil || a.JobID != r.JobID || a.Kind != ledger.AssetOutput {
			return Outcome[*ledger.Job]{}, ledger.Errorf(ledger.EInvalid, "outputs: %q is not an output uploaded for job %s", o, r.JobID)
		}
	}
	return write(s, nil, renderJob, func(*engine.Idempotency[*ledger.Job]) (engine.Outcome[*ledger.Job], error) {
		return s.eng.CompleteJob(ctx, engine.JobOp{JobID: r.JobID, LeaseID: r.LeaseID, Outputs: r.Outputs})
	})
}

// FailRequest reports a leased job's failed attempt; Error is cut to
// ledger.JobErrorBytesMax at a character boundary.
type FailRequest struct {
	LeaseRef
	Error     string
	Retryable bool
}

// FailJob records a failed attempt (retried or final; never charged); it
// answers 200 with the job.
func (s *Service) FailJob(ctx context.Context, r FailRequest) (Outcome[*ledger.Job], error) {
	if r.LeaseID == "" {
		return Outcome[*ledger.Job]{}, leaseIDRequired()
	}
	msg := ledger.CleanText(r.Error, ledger.JobErrorBytesMax)
	return write(s, nil, renderJob, func(*engine.Idempotency[*ledger.Job]) (engine.Outcome[*ledger.Job], error) {
		return s.eng.FailJob(ctx, engine.JobOp{JobID: r.JobID, LeaseID: r.LeaseID, Error: msg, Retryable: r.Retryable})
	})
}
