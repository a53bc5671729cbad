package ledger

import (
	"encoding/json"
	"slices"
	"time"
)

// Job rules. Invariant: an active (queued or running) job's hold is
// pending; every ending of a job resolves its hold in the same step.

func (s *State) job(id string, ch *Changes) *Job {
	j := s.Jobs[id]
	if ch.Jobs[id] != j {
		c := *j
		j = &c
		s.Jobs[id] = j
		ch.Jobs[id] = j
		s.touchAccount(ch)
	}
	return j
}

func (s *State) jobHold(j *Job) *Hold {
	h := s.Holds[j.HoldID]
	if h == nil || h.Status != HoldPending {
		invariantf("active job %s without a pending hold %s", j.ID, j.HoldID)
	}
	return h
}

// CreateJobParams starts a job.
type CreateJobParams struct {
	Action   string
	Quantity int64
	Params   json.RawMessage
}

// CreateJob reserves the job's credits and queues it. It changes nothing
// when the account cannot afford it.
func (s *State) CreateJob(cfg *Config, now time.Time, p CreateJobParams, ch *Changes) (*Job, error) {
	if len(s.Jobs) >= cfg.Limits.ActiveJobsPerAccountMax {
		return nil, Errorf(EConflict, "account has %d active jobs, the limit", len(s.Jobs))
	}
	h, err := s.Reserve(cfg, now, ReserveParams{Action: p.Action, Quantity: p.Quantity, TTLSeconds: cfg.Limits.JobQueueSecondsMax}, ch)
	if err != nil {
		return nil, err
	}
	j := &Job{
		ID: NewID("job"), AccountID: s.Account.ID, Action: p.Action, Category: h.Category, Quantity: p.Quantity,
		Params: p.Params, ParamsVersion: 1, Status: JobQueued, HoldID: h.ID, CostCredits: h.AmountCredits,
		Outputs: []string{}, CreatedAt: now, UpdatedAt: now,
	}
	ch.Entries[len(ch.Entries)-1].Reason = j.ID
	if s.Jobs == nil {
		s.Jobs = map[string]*Job{}
	}
	s.Jobs[j.ID] = j
	ch.Jobs[j.ID] = j
	return j, nil
}

// setHoldExpiry moves a job's hold expiry (the hold follows the job).
func (s *State) setHoldExpiry(j *Job, at time.Time, ch *Changes) {
	s.jobHold(j)
	h := s.hold(j.HoldID, ch)
	h.ExpiresAt = at
}

// LeaseJob hands a queued job to a worker.
func (s *State) LeaseJob(cfg *Config, now time.Time, id, leaseID string, ch *Changes) (*Job, error) {
	if j := s.Jobs[id]; j == nil || j.Status != JobQueued {
		return nil, Errorf(EConflict, "job %s is not queued", id)
	}
	j := s.job(id, ch)
	j.Status = JobRunning
	j.Attempts++
	j.LeaseID = leaseID
	j.LeaseExpiresAt = now.Add(time.Duration(cfg.Limits.JobLeaseSeconds) * time.Second)
	j.LeaseParamsVersion = j.ParamsVersion
	j.UpdatedAt = now
	s.setHoldExpiry(j, j.LeaseExpiresAt.Add(time.Duration(cfg.Limits.JobHoldGraceSeconds)*time.Second), ch)
	return j, nil
}

// leaseErr explains why a worker's lease is no longer valid.
func leaseErr(j *Job) error {
	e := Errorf(EConflict, "lease lost: job %s is %s", j.ID, j.Status)
	if j.Status == JobRunning || j.Status == JobQueued {
		e.Message = "lease lost: job " + j.ID + " was handed to another worker"
	}
	e.Details = map[string]any{"job": j}
	return e
}

// CheckLease reports whether leaseID holds j's lease: nil when j is
// running under that lease, else the EConflict error (details: the job)
// that heartbeat, complete and fail answer. The caller applies lease loss
// first (a lease whose time has passed is no longer j's), as the engine
// does when it reads a job.
func CheckLease(j *Job, leaseID string) error {
	if j.Status != JobRunning || j.LeaseID != leaseID {
		return leaseErr(j)
	}
	return nil
}

// runningWithLease returns the job if leaseID holds its lease now.
func (s *State) runningWithLease(id, leaseID string) (*Job, error) {
	j := s.Jobs[id]
	if j == nil {
		return nil, nil
	}
	if err := CheckLease(j, leaseID); err != nil {
		return nil, err
	}
	return j, nil
}

// Heartbeat extends a lease. It returns the job and whether its params
// changed since the worker last heard. A nil job means it is no longer
// active (the caller reads the stored job: cancelled, for instance).
func (s *State) Heartbeat(cfg *Config, now time.Time, id, leaseID string, ch *Changes) (*Job, bool, error) {
	j, err := s.runningWithLease(id, leaseID)
	if j == nil || err != nil {
		return nil, false, err
	}
	j = s.job(id, ch)
	changed := j.LeaseParamsVersion != j.ParamsVersion
	j.LeaseParamsVersion = j.ParamsVersion
	j.LeaseExpiresAt = now.Add(time.Duration(cfg.Limits.JobLeaseSeconds) * time.Second)
	j.UpdatedAt = now
	s.setHoldExpiry(j, j.LeaseExpiresAt.Add(time.Duration(cfg.Limits.JobHoldGraceSeconds)*time.Second), ch)
	return j, changed, nil
}

// CompleteJob records a running job's outputs and captures its hold for
// them, in one step. A nil job means it is no longer active.
func (s *State) CompleteJob(cfg *Config, now time.Time, id, leaseID string, outputs []string, ch *Changes) (*Job, error) {
	j, err := s.runningWithLease(id, leaseID)
	if j == nil || err != nil {
		return nil, err
	}
	if len(outputs) < 1 || int64(len(outputs)) > j.Quantity {
		return nil, Errorf(EInvalid, "outputs must list 1 to %d asset ids (report a failure when nothing was produced)", j.Quantity)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(outputs)))) != len(outputs) {
		return nil, Errorf(EInvalid, "outputs lists an asset twice")
	}
	if j.LeaseParamsVersion != j.ParamsVersion {
		e := Errorf(EConflict, "the job's params changed (version %d); restart with them before completing", j.ParamsVersion)
		e.Details = map[string]any{"job": j}
		return nil, e
	}
	j = s.job(id, ch)
	h := s.resolve(now, j.HoldID, HoldCaptured, int64(len(outputs)), "", ch)
	j.Status = JobSucceeded
	delete(s.Jobs, id) // only active jobs are live
	j.Outputs = slices.Clone(outputs)
	j.ChargedCredits = h.CapturedCredits
	j.LeaseID, j.LeaseExpiresAt = "", time.Time{}
	j.UpdatedAt, j.FinishedAt = now, now
	return j, nil
}

// FailJob records a failed attempt: retryable failures are requeued while
// attempts remain; otherwise the job fails and its hold is released.
func (s *State) FailJob(cfg *Config, now time.Time, id, leaseID, msg string, retryable bool, ch *Changes) (*Job, error) {
	j, err := s.runningWithLease(id, leaseID)
	if j == nil || err != nil {
		return nil, err
	}
	j = s.job(id, ch)
	j.Error = msg
	if retryable && j.Attempts < cfg.Limits.JobAttemptsMax {
		s.requeue(cfg, now, j, ch)
		return j, nil
	}
	s.endJob(now, j, JobFailed, "failed", ch)
	return j, nil
}

func (s *State) requeue(cfg *Config, now time.Time, j *Job, ch *Changes) {
	j.Status = JobQueued
	j.LeaseID, j.LeaseExpiresAt = "", time.Time{}
	j.UpdatedAt = now
	s.setHoldExpiry(j, now.Add(time.Duration(cfg.Limits.JobQueueSecondsMax)*time.Second), ch)
}

// endJob ends an active job without a result: nothing is charged.
func (s *State) endJob(now time.Time, j *Job, status JobStatus, reason string, ch *Changes) {
	s.jobHold(j)
	s.resolve(now, j.HoldID, HoldReleased, 0, reason, ch)
	j.Status = status
	delete(s.Jobs, j.ID)
	j.LeaseID, j.LeaseExpiresAt = "", time.Time{}
	j.UpdatedAt, j.FinishedAt = now, now
}

// CancelJob cancels an active job and releases its hold. A nil job means
// it is no longer active.
func (s *State) CancelJob(cfg *Config, now time.Time, id string, ch *Changes) (*Job, error) {
	if s.Jobs[id] == nil {
		return nil, nil
	}
	j := s.job(id, ch)
	s.endJob(now, j, JobCancelled, "cancelled", ch)
	return j, nil
}

// UpdateJobParams replaces an active job's params. A running job's worker
// learns of it at its next heartbeat and restarts; nothing extra is charged.
func (s *State) UpdateJobParams(cfg *Config, now time.Time, id string, params json.RawMessage, ch *Changes) (*Job, error) {
	if s.Jobs[id] == nil {
		return nil, nil
	}
	j := s.job(id, ch)
	j.Params = params
	j.ParamsVersion++
	j.UpdatedAt = now
	return j, nil
}

// touchJobs applies lease loss: a running job whose lease passed is
// requeued while attempts remain, else interrupted with its hold released.
func (s *State) touchJobs(cfg *Config, now time.Time, ch *Changes) {
	var due []string
	for id, j := range s.Jobs {
		if j.Status == JobRunning && !now.Before(j.LeaseExpiresAt) {
			due = append(due, id)
		}
	}
	slices.Sort(due)
	for _, id := range due {
		j := s.job(id, ch)
		if j.Attempts < cfg.Limits.JobAttemptsMax {
			j.Error = "lease lost: the worker stopped heartbeating"
			s.requeue(cfg, now, j, ch)
		} else {
			j.Error = "interrupted: the worker stopped heartbeating and no attempts remain"
			s.endJob(now, j, JobInterrupted, "interrupted", ch)
		}
	}
}

// touchOrphanJobs ends active jobs whose hold expired (queued too long).
func (s *State) touchOrphanJobs(now time.Time, ch *Changes) {
	var due []string
	for id, j := range s.Jobs {
		if h := s.Holds[j.HoldID]; h == nil || h.Status != HoldPending {
			due = append(due, id)
		}
	}
	slices.Sort(due)
	for _, id := range due {
		j := s.job(id, ch)
		j.Status = JobInterrupted
		delete(s.Jobs, id)
		j.Error = "interrupted: no worker took the job in time"
		j.LeaseID, j.LeaseExpiresAt = "", time.Time{}
		j.UpdatedAt, j.FinishedAt = now, now
	}
}

// JobErrorNoWorker is the error of a job interrupted because no worker
// served its action (InterruptUnservedJob).
const JobErrorNoWorker = "interrupted: no worker is available for this action"

// InterruptUnservedJob ends a queued job that has waited at least
// Limits.JobNoWorkerSecondsMax, for an action that the caller found no
// worker serving all that time: the job ends interrupted
// (JobErrorNoWorker) and its hold is released. A nil job means the rule
// does not apply (the job is not queued, or has not waited long enough).
func (s *State) InterruptUnservedJob(cfg *Config, now time.Time, id string, ch *Changes) *Job {
	j := s.Jobs[id]
	wait := time.Duration(cfg.Limits.JobNoWorkerSecondsMax) * time.Second
	if j == nil || j.Status != JobQueued || now.Sub(j.CreatedAt) < wait {
		return nil
	}
	j = s.job(id, ch)
	j.Error = JobErrorNoWorker
	s.endJob(now, j, JobInterrupted, "interrupted", ch)
	return j
}

// jobsDue reports whether a lease has passed.
func (s *State) jobsDue(now time.Time) bool {
	for _, j := range s.Jobs {
		if j.Status == JobRunning && !now.Before(j.LeaseExpiresAt) {
			return true
		}
	}
	return false
}
