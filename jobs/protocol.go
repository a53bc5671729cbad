package jobs

import (
	"encoding/json"
	"time"

	"github.com/creditd/creditd/ledger"
)

// The worker protocol's bodies (docs/worker-protocol.md), as the server
// (httpapi) decodes and renders them and the worker client (package
// worker) sends and reads them. The answers are generic in the job: the
// server renders a ledger.Job, the client decodes its own view of it.

// LeaseRequest is the body of POST /v1/worker/lease.
type LeaseRequest struct {
	Actions     []string `json:"actions"`
	WaitSeconds int64    `json:"wait_seconds"`
}

// Check validates a lease request: actions lists known actions (no more
// than there are prices), and the wait is within
// Limits.JobLeaseWaitSecondsMax.
func (r *LeaseRequest) Check(cfg *ledger.Config) error {
	if len(r.Actions) == 0 || len(r.Actions) > len(cfg.Prices) {
		return ledger.Errorf(ledger.EInvalid, "actions must list the actions this worker serves")
	}
	for _, a := range r.Actions {
		if _, ok := cfg.Price(a); !ok {
			return ledger.Errorf(ledger.EInvalid, "unknown action %q", a)
		}
	}
	if r.WaitSeconds < 0 || r.WaitSeconds > cfg.Limits.JobLeaseWaitSecondsMax {
		return ledger.Errorf(ledger.EInvalid, "wait_seconds must be between 0 and %d", cfg.Limits.JobLeaseWaitSecondsMax)
	}
	return nil
}

// Lease is the answer to a lease that got a job (a lease that got none
// is 204 without a body).
type Lease[J any] struct {
	Job            J         `json:"job"`
	LeaseID        string    `json:"lease_id"`
	LeaseExpiresAt time.Time `json:"lease_expires_at"`
	ParamsVersion  int64     `json:"params_version"`
}

// LeaseOf is the answer to a lease that got j.
func LeaseOf(j *ledger.Job) Lease[ledger.Job] {
	return Lease[ledger.Job]{Job: *j, LeaseID: j.LeaseID, LeaseExpiresAt: j.LeaseExpiresAt, ParamsVersion: j.ParamsVersion}
}

// HeartbeatRequest is the body of POST /v1/worker/jobs/{id}/heartbeat.
type HeartbeatRequest struct {
	LeaseID string `json:"lease_id"`
}

// Check requires the lease id.
func (r *HeartbeatRequest) Check() error { return requireLease(r.LeaseID) }

// Heartbeat is the answer to a heartbeat.
type Heartbeat[J any] struct {
	Job J `json:"job"`
	// LeaseExpiresAt is the renewed lease (absent, and zero, when the job
	// is no longer running).
	LeaseExpiresAt time.Time `json:"lease_expires_at,omitzero"`
	// Cancelled means the job was cancelled: drop the work.
	Cancelled bool `json:"cancelled"`
	// Changed means the params changed since this lease last heard:
	// restart with Params.
	Changed       bool            `json:"changed"`
	Params        json.RawMessage `json:"params"`
	ParamsVersion int64           `json:"params_version"`
}

// HeartbeatOf is the answer to a heartbeat of j; changed says whether its
// params changed since its worker last heard.
func HeartbeatOf(j ledger.Job, changed bool) Heartbeat[ledger.Job] {
	h := Heartbeat[ledger.Job]{
		Job: j, Cancelled: j.Status == ledger.JobCancelled, Changed: changed, Params: j.Params, ParamsVersion: j.ParamsVersion,
	}
	if j.Status == ledger.JobRunning {
		h.LeaseExpiresAt = j.LeaseExpiresAt
	}
	return h
}

// CompleteRequest is the body of POST /v1/worker/jobs/{id}/complete.
type CompleteRequest struct {
	LeaseID string   `json:"lease_id"`
	Outputs []string `json:"outputs"`
}

// Check requires the lease id.
func (r *CompleteRequest) Check() error { return requireLease(r.LeaseID) }

// FailRequest is the body of POST /v1/worker/jobs/{id}/fail.
type FailRequest struct {
	LeaseID   string `json:"lease_id"`
	Error     string `json:"error"`
	Retryable bool   `json:"retryable"`
}

// Check requires the lease id and cuts a long message to
// ledger.JobErrorBytesMax, at a character boundary (the body kept the text
// rule when it was decoded).
func (r *FailRequest) Check() error {
	if err := requireLease(r.LeaseID); err != nil {
		return err
	}
	r.Error = ledger.CleanText(r.Error, ledger.JobErrorBytesMax)
	return nil
}

func requireLease(id string) error {
	if id == "" {
		return ledger.Errorf(ledger.EInvalid, "lease_id is required")
	}
	return nil
}
