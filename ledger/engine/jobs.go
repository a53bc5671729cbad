package engine

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/creditd/creditd/jobs"
	"github.com/creditd/creditd/ledger"
)

// jobQueue is this node's lease queue (jobs.Queue), fed with the jobs the
// committer commits.
type jobQueue struct{ *jobs.Queue }

// queuedJob is a job taken off the queue.
type queuedJob struct {
	id, account, action string
	createdAt           time.Time
}

func newJobQueue() *jobQueue { return &jobQueue{jobs.NewQueue()} }

func (q *jobQueue) push(j *ledger.Job) { q.Push(jobs.EntryOf(j)) }

func (q *jobQueue) remove(id string) { q.Remove(id) }

func queued(e jobs.Entry) queuedJob {
	return queuedJob{id: e.ID, account: e.AccountID, action: e.Action, createdAt: e.CreatedAt}
}

// pop takes the oldest queued job among actions, or returns the channel
// that is closed on the next push.
func (q *jobQueue) pop(actions []string) (queuedJob, bool, <-chan struct{}) {
	e, ok, notify := q.Pop(actions)
	return queued(e), ok, notify
}

// unserved returns up to limit queued jobs for which due(action,
// created at) holds, leaving them queued.
func (q *jobQueue) unserved(due func(action string, createdAt time.Time) bool, limit int) []queuedJob {
	var out []queuedJob
	for _, e := range q.Unserved(due, limit) {
		out = append(out, queued(e))
	}
	return out
}

// CreateJobParams starts a job.
type CreateJobParams struct {
	AccountID string
	ledger.CreateJobParams
	Idem *Idempotency[*ledger.Job]
}

// CreateJob reserves a job's credits and queues it, in one step.
func (e *Engine) CreateJob(ctx context.Context, p CreateJobParams) (Outcome[*ledger.Job], error) {
	if out, ok, err := stored(ctx, e, p.Idem); ok {
		return out, err
	}
	if _, err := ledger.ValidateReserve(e.cfg, ledger.ReserveParams{Action: p.Action, Quantity: p.Quantity}); err != nil {
		return Outcome[*ledger.Job]{}, err
	}
	return submitWrite(ctx, e, &op{kind: "create_job", account: p.AccountID, apply: func(b *batch, st *ledger.State) (any, error) {
		if st == nil {
			return nil, accountNotFound(p.AccountID)
		}
		// After the idempotency check (a replay is answered even when the
		// queue is full); the queue counts the jobs of committed batches.
		if err := e.queue.Admit(e.cfg.Limits.QueuedJobsMax); err != nil {
			return nil, err
		}
		j, err := st.CreateJob(e.cfg, b.now, p.CreateJobParams, b.ch)
		if err != nil {
			return nil, err
		}
		c := *j
		return &c, nil
	}}, p.Idem)
}

func jobNotFound(id string) error { return ledger.Errorf(ledger.ENotFound, "no job %q", id) }

// jobAccount finds the account of a job.
func (e *Engine) jobAccount(ctx context.Context, id string) (string, error) {
	e.holdMu.Lock()
	acct, ok := e.jobAcct[id]
	e.holdMu.Unlock()
	if ok {
		return acct, nil
	}
	j, err := e.store.GetJob(ctx, id)
	if err != nil {
		if ledger.ErrorCode(err) == ledger.ENotFound {
			return "", jobNotFound(id)
		}
		return "", err
	}
	return j.AccountID, nil
}

// storedJob returns a job that is not active in st: ended earlier in this
// batch, or from the store.
func (b *batch) storedJob(id, account string) (*ledger.Job, error) {
	if j := b.ch.Jobs[id]; j != nil {
		return j, nil
	}
	j, err := b.tx.GetJob(b.ctx, id)
	if err != nil {
		if ledger.ErrorCode(err) == ledger.ENotFound {
			return nil, jobNotFound(id)
		}
		return nil, err
	}
	if j.AccountID != account {
		return nil, jobNotFound(id)
	}
	return j, nil
}

// JobOp names a job and what to do with it.
type JobOp struct {
	JobID     string
	LeaseID   string
	Outputs   []string
	Error     string
	Retryable bool
	Params    json.RawMessage
	Idem      *Idempotency[*ledger.Job]
}

// HeartbeatResult tells a worker whether to go on.
type HeartbeatResult struct {
	Job     ledger.Job
	Changed bool
}

// jobOp runs an operation on a job: fn's result, with p's idempotency.
func (e *Engine) jobOp(ctx context.Context, kind string, p JobOp, fn func(b *batch, st *ledger.State) (*ledger.Job, error)) (Outcome[*ledger.Job], error) {
	if out, ok, err := stored(ctx, e, p.Idem); ok {
		return out, err
	}
	acct, err := e.jobAccount(ctx, p.JobID)
	if err != nil {
		return Outcome[*ledger.Job]{}, err
	}
	return submitWrite(ctx, e, &op{kind: kind, account: acct, apply: func(b *batch, st *ledger.State) (any, error) {
		if st == nil {
			return nil, jobNotFound(p.JobID)
		}
		j, err := fn(b, st)
		if err != nil {
			return nil, err
		}
		return copyJob(j), nil
	}}, p.Idem)
}

// ended answers an operation on a job that is no longer active.
func (b *batch) ended(st *ledger.State, id, kind string, p JobOp) (*ledger.Job, error) {
	j, err := b.storedJob(id, st.Account.ID)
	if err != nil {
		return nil, err
	}
	return jobs.Repeat(j, kind, p.Outputs)
}

func copyJob(j *ledger.Job) *ledger.Job {
	c := *j
	return &c
}

// CancelJob cancels a queued or running job and releases its credits.
func (e *Engine) CancelJob(ctx context.Context, p JobOp) (Outcome[*ledger.Job], error) {
	return e.jobOp(ctx, "cancel_job", p, func(b *batch, st *ledger.State) (*ledger.Job, error) {
		j, err := st.CancelJob(e.cfg, b.now, p.JobID, b.ch)
		if err == nil && j == nil {
			j, err = b.ended(st, p.JobID, "cancel", p)
		}
		return j, err
	})
}

// UpdateJobParams changes a queued or running job's params at no cost.
func (e *Engine) UpdateJobParams(ctx context.Context, p JobOp) (Outcome[*ledger.Job], error) {
	return e.jobOp(ctx, "update_job", p, func(b *batch, st *ledger.State) (*ledger.Job, error) {
		j, err := st.UpdateJobParams(e.cfg, b.now, p.JobID, p.Params, b.ch)
		if err == nil && j == nil {
			j, err = b.ended(st, p.JobID, "update", p)
		}
		return j, err
	})
}

// Heartbeat extends a worker's lease and says whether to go on.
func (e *Engine) Heartbeat(ctx context.Context, p JobOp) (*HeartbeatResult, error) {
	acct, err := e.jobAccount(ctx, p.JobID)
	if err != nil {
		return nil, err
	}
	v, err := e.submit(ctx, &op{kind: "heartbeat", account: acct, apply: func(b *batch, st *ledger.State) (any, error) {
		if st == nil {
			return nil, jobNotFound(p.JobID)
		}
		j, changed, err := st.Heartbeat(e.cfg, b.now, p.JobID, p.LeaseID, b.ch)
		if err == nil && j == nil {
			j, err = b.ended(st, p.JobID, "heartbeat", p)
		}
		if err != nil {
			return nil, err
		}
		return &HeartbeatResult{Job: *j, Changed: changed}, nil
	}})
	if err != nil {
		return nil, err
	}
	r := v.(*HeartbeatResult)
	if r.Job.Status == ledger.JobRunning {
		e.polls.note([]string{r.Job.Action}, e.clock.Now(), 0) // its worker is alive and serves the action
	}
	return r, nil
}

// CompleteJob records outputs and charges for them, in one step, and then
// marks them delivered (see SweepStagedOutputs): only from then on does the
// account see them.
func (e *Engine) CompleteJob(ctx context.Context, p JobOp) (Outcome[*ledger.Job], error) {
	out, err := e.completeJob(ctx, p)
	if err == nil && out.Value != nil {
		e.deliverOutputs(ctx, out.Value)
	}
	return out, err
}

func (e *Engine) completeJob(ctx context.Context, p JobOp) (Outcome[*ledger.Job], error) {
	return e.jobOp(ctx, "complete_job", p, func(b *batch, st *ledger.State) (*ledger.Job, error) {
		j, err := st.CompleteJob(e.cfg, b.now, p.JobID, p.LeaseID, p.Outputs, b.ch)
		if err == nil && j == nil {
			j, err = b.ended(st, p.JobID, "complete", p)
		}
		return j, err
	})
}

// FailJob records a failed attempt (retried or final; never charged).
func (e *Engine) FailJob(ctx context.Context, p JobOp) (Outcome[*ledger.Job], error) {
	return e.jobOp(ctx, "fail_job", p, func(b *batch, st *ledger.State) (*ledger.Job, error) {
		j, err := st.FailJob(e.cfg, b.now, p.JobID, p.LeaseID, p.Error, p.Retryable, b.ch)
		if err == nil && j == nil {
			j, err = b.ended(st, p.JobID, "fail", p)
		}
		return j, err
	})
}

// Lease long-polls for the oldest queued job among actions, up to wait.
// It returns nil when none arrived in time.
//
// A poll makes its actions served (LiveActions) while it lasts, and for
// the lease period after.
func (e *Engine) Lease(ctx context.Context, actions []string, wait time.Duration) (*ledger.Job, error) {
	e.polls.note(actions, e.clock.Now(), 1)
	defer func() { e.polls.note(actions, e.clock.Now(), -1) }()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		c, ok, notify := e.queue.pop(actions)
		if ok {
			leaseID := ledger.NewID("lease")
			v, err := e.submit(ctx, &op{kind: "lease", account: c.account, apply: func(b *batch, st *ledger.State) (any, error) {
				if st == nil {
					return nil, jobNotFound(c.id)
				}
				j, err := st.LeaseJob(e.cfg, b.now, c.id, leaseID, b.ch)
				if err != nil {
					return nil, err
				}
				return copyJob(j), nil
			}})
			switch {
			case err == nil:
				return v.(*ledger.Job), nil
			case ledger.ErrorCode(err) == ledger.EConflict || ledger.ErrorCode(err) == ledger.ENotFound:
				continue // stale queue entry
			default:
				e.requeueLocal(c)
				return nil, err
			}
		}
		select {
		case <-notify:
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-e.drain:
			return nil, nil
		}
	}
}

func (e *Engine) requeueLocal(c queuedJob) {
	e.queue.push(&ledger.Job{ID: c.id, AccountID: c.account, Action: c.action, CreatedAt: c.createdAt})
}

// GetJob reads a job (applying lease loss first if its time has passed).
func (e *Engine) GetJob(ctx context.Context, id string) (ledger.Job, error) {
	acct, err := e.jobAccount(ctx, id)
	if err != nil {
		return ledger.Job{}, err
	}
	st, err := e.state(ctx, acct)
	if err != nil {
		return ledger.Job{}, err
	}
	if j := st.Jobs[id]; j != nil {
		return *j, nil
	}
	j, err := e.store.GetJob(ctx, id)
	if err != nil {
		if ledger.ErrorCode(err) == ledger.ENotFound {
			return ledger.Job{}, jobNotFound(id)
		}
		return ledger.Job{}, err
	}
	return *j, nil
}

// ActiveJobs returns an account's queued and running jobs, oldest first
// (applying lease loss first where its time has passed).
func (e *Engine) ActiveJobs(ctx context.Context, accountID string) ([]ledger.Job, error) {
	st, err := e.state(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := make([]ledger.Job, 0, len(st.Jobs))
	for _, j := range st.Jobs {
		out = append(out, *j)
	}
	slices.SortFunc(out, func(a, b ledger.Job) int { return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID)) })
	return out, nil
}

// LeasedJob reads a job (applying lease loss first, as GetJob does) and
// checks that leaseID holds its lease now (ledger.CheckLease): the check a
// worker's calls outside the committer (input downloads, output uploads)
// pass before they touch the job's assets.
func (e *Engine) LeasedJob(ctx context.Context, id, leaseID string) (ledger.Job, error) {
	j, err := e.GetJob(ctx, id)
	if err != nil {
		return j, err
	}
	return j, ledger.CheckLease(&j, leaseID)
}

// ListJobs pages an account's jobs newest first; the cursor is the Seq of
// the last job of the page, 0 when there is no next page.
func (e *Engine) ListJobs(ctx context.Context, accountID string, beforeSeq int64, limit int) ([]ledger.Job, int64, error) {
	if limit == 0 {
		limit = e.cfg.Limits.PageSizeDefault
	}
	if limit < 1 || limit > e.cfg.Limits.PageSizeMax || beforeSeq < 0 {
		return nil, 0, ledger.Errorf(ledger.EInvalid, "limit must be between 1 and %d", e.cfg.Limits.PageSizeMax)
	}
	if _, err := e.state(ctx, accountID); err != nil {
		return nil, 0, err
	}
	js, err := e.store.ListJobs(ctx, ledger.ListJobsParams{AccountID: accountID, BeforeSeq: beforeSeq, Limit: limit + 1})
	if err != nil {
		return nil, 0, err
	}
	var next int64
	if len(js) > limit {
		js = js[:limit]
		next = js[limit-1].Seq
	}
	return js, next, nil
}

// indexJobs updates the lease queue and the sweeper after a commit.
func (e *Engine) indexJobs(jobs map[string]*ledger.Job) {
	for _, j := range jobs {
		switch j.Status {
		case ledger.JobQueued:
			e.jobAcct[j.ID] = j.AccountID
			e.queue.push(j)
		case ledger.JobRunning:
			e.jobAcct[j.ID] = j.AccountID
			e.queue.remove(j.ID)
			e.expiries.push(ledger.HoldExpiry{HoldID: j.HoldID, AccountID: j.AccountID, ExpiresAt: j.LeaseExpiresAt})
		default:
			delete(e.jobAcct, j.ID)
			e.queue.remove(j.ID)
		}
	}
}

// AssetVisible reports whether asset a is its account's to see: an upload
// or a delivered output (ledger.Asset.Visible), or a staged output that its
// succeeded job lists. The last is the moment between CompleteJob's commit
// (the charge, which publishes the job) and the outputs being marked
// delivered: a page that the job's event refreshes must already show them.
func (e *Engine) AssetVisible(ctx context.Context, a *ledger.Asset) bool {
	if a.Visible() {
		return true
	}
	if a.Kind != ledger.AssetOutput || a.JobID == "" {
		return false
	}
	j, err := e.GetJob(ctx, a.JobID)
	return err == nil && j.Delivers(a)
}
