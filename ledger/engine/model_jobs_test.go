package engine_test

// Jobs in the model-based test (TestModel): create, lease, heartbeat,
// params change, complete, fail, cancel and read, with lease loss and
// queue timeouts applied when the model's clock passes them. The model of
// a job is a few fields beside its hold (an mHold like any other, so the
// bucket, hold and balance checks cover the credits): its status, attempts,
// params versions, lease and outputs. The lease queue is modelled as what
// it promises: a lease takes the oldest queued job (creation time, then
// id) among the actions asked for; a job the lease finds ended when its
// account is touched is skipped.

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"pgregory.net/rapid"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// Error texts of jobs the rules end or requeue themselves.
const (
	mLeaseLost   = "lease lost: the worker stopped heartbeating"
	mInterrupted = "interrupted: the worker stopped heartbeating and no attempts remain"
	mNoWorker    = "interrupted: no worker took the job in time"
)

var mJobActions = []string{"generate", "upscale", "video"}

type mJob struct {
	id, account, action string
	quantity            int64
	hold                *mHold
	status              ledger.JobStatus
	attempts            int64
	paramsVersion       int64
	leaseParamsVersion  int64
	leaseID             string
	leaseIDs            []string // every lease handed out, for stale ones
	leaseExpiresAt      time.Time
	outputs             []string
	charged             int64
	errMsg              string
	createdAt           time.Time
	finishedAt          time.Time
}

// jobLimits are the config's job limits the model follows.
type jobLimits struct {
	leaseS, graceS, queueS, attemptsMax int64
	activeMax, queuedMax                int
}

type jobModel struct {
	lim    jobLimits
	jobs   map[string]*mJob
	jobIDs []string // creation order
	lease0 *mJob    // the job the last lease step took, or nil
}

func newJobModel(cfg *ledger.Config) jobModel {
	l := cfg.Limits
	return jobModel{
		lim: jobLimits{
			leaseS: l.JobLeaseSeconds, graceS: l.JobHoldGraceSeconds, queueS: l.JobQueueSecondsMax,
			attemptsMax: l.JobAttemptsMax, activeMax: l.ActiveJobsPerAccountMax, queuedMax: l.QueuedJobsMax,
		},
		jobs: map[string]*mJob{},
	}
}

// drawJobLimits makes some runs' job limits small, so that the queue
// timeout, the attempts, the account's active jobs and the queue bound are
// reached.
func drawJobLimits(t *rapid.T, cfg *ledger.Config) {
	l := &cfg.Limits
	l.JobQueueSecondsMax = pick(t, "job_queue_seconds_max", []int64{86400, 3600, 300})
	l.JobNoWorkerSecondsMax = min(l.JobNoWorkerSecondsMax, l.JobQueueSecondsMax)
	l.JobAttemptsMax = pick(t, "job_attempts_max", []int64{3, 1, 2})
	if uniformGen(3).Draw(t, "small_job_limits") == 0 {
		l.ActiveJobsPerAccountMax = rapid.IntRange(1, 3).Draw(t, "active_jobs_per_account_max")
		l.QueuedJobsMax = rapid.IntRange(1, 4).Draw(t, "queued_jobs_max")
	}
}

func (m *model) accountJobs(account string, active bool) []*mJob {
	var out []*mJob
	for _, id := range m.jm.jobIDs {
		if j := m.jm.jobs[id]; j.account == account && (!active || j.status.Active()) {
			out = append(out, j)
		}
	}
	return out
}

// jobOwned: the hold belongs to an active job (the holds API refuses it).
func (m *model) jobOwned(h *mHold) bool {
	for _, j := range m.accountJobs(h.account, true) {
		if j.hold == h {
			return true
		}
	}
	return false
}

// setHoldExpiry moves a job's hold expiry; the engine pushes the hold on
// its expiry heap.
func (m *model) setHoldExpiry(j *mJob, at time.Time) {
	j.hold.expiresAt = at
	m.sweeps = append(m.sweeps, mSweep{j.hold, at})
}

// running notes a commit of a running job: the engine pushes its lease
// expiry on the expiry heap.
func (m *model) running(j *mJob) {
	m.sweeps = append(m.sweeps, mSweep{j.hold, j.leaseExpiresAt})
}

func (m *model) requeue(j *mJob) {
	j.status = ledger.JobQueued
	j.leaseID, j.leaseExpiresAt = "", time.Time{}
	m.setHoldExpiry(j, m.now.Add(time.Duration(m.jm.lim.queueS)*time.Second))
}

// endJob ends an active job without a result: its hold is released.
func (m *model) endJob(j *mJob, st ledger.JobStatus, reason string) {
	m.resolve(j.hold, ledger.HoldReleased, 0, reason)
	j.status = st
	j.leaseID, j.leaseExpiresAt = "", time.Time{}
	j.finishedAt = m.now
}

// touchJobs applies lease loss to a's running jobs (first in a touch: a
// running job's hold outlives its lease).
func (m *model) touchJobs(a *mAccount) {
	due := []*mJob{}
	for _, j := range m.accountJobs(a.id, true) {
		if j.status == ledger.JobRunning && !m.now.Before(j.leaseExpiresAt) {
			due = append(due, j)
		}
	}
	slices.SortFunc(due, func(x, y *mJob) int { return cmp.Compare(x.id, y.id) })
	for _, j := range due {
		if j.attempts < m.jm.lim.attemptsMax {
			modelStats.add("model:lease_lost_requeued")
			j.errMsg = mLeaseLost
			m.requeue(j)
		} else {
			modelStats.add("model:lease_lost_interrupted")
			j.errMsg = mInterrupted
			m.endJob(j, ledger.JobInterrupted, "interrupted")
		}
	}
}

// touchOrphanJobs ends a's active jobs whose hold expired (queued too long).
func (m *model) touchOrphanJobs(a *mAccount) {
	for _, j := range m.accountJobs(a.id, true) {
		if j.hold.status != ledger.HoldPending {
			modelStats.add("model:job_orphaned")
			j.status = ledger.JobInterrupted
			j.errMsg = mNoWorker
			j.leaseID, j.leaseExpiresAt = "", time.Time{}
			j.finishedAt = m.now
		}
	}
}

func (m *model) queuedJobs() int {
	n := 0
	for _, j := range m.jm.jobs {
		if j.status == ledger.JobQueued {
			n++
		}
	}
	return n
}

// createJob returns the expected outcome and the job (without ids) to
// record once the engine names it.
func (m *model) createJob(id, action string, qty int64) (outcome, *mJob) {
	if _, ok := mPrices[action]; !ok || qty < 1 || qty > mMaxQuantity {
		return fail(ledger.EInvalid), nil
	}
	a := m.accounts[id]
	if a == nil {
		return fail(ledger.ENotFound), nil
	}
	queued := m.queuedJobs() // the engine's queue holds the committed jobs
	m.touch(a)
	if queued >= m.jm.lim.queuedMax {
		return fail(ledger.EUnavailable), nil
	}
	if len(m.accountJobs(id, true)) >= m.jm.lim.activeMax {
		return fail(ledger.EConflict), nil
	}
	o := m.reserve(id, action, qty, m.jm.lim.queueS)
	if o.code != "" {
		return o, nil
	}
	j := &mJob{
		account: id, action: action, quantity: qty, hold: o.hold, status: ledger.JobQueued,
		paramsVersion: 1, outputs: []string{}, createdAt: m.now,
	}
	return o, j
}

func (m *model) addJob(j *mJob, id, holdID string) {
	j.id = id
	m.jm.jobs[id] = j
	m.jm.jobIDs = append(m.jm.jobIDs, id)
	m.addHold(j.hold, holdID)
}

// lease returns the job a lease for actions takes, touching the account of
// every job it tries, or nil.
func (m *model) lease(actions []string) *mJob {
	for {
		var best *mJob
		for _, id := range m.jm.jobIDs {
			j := m.jm.jobs[id]
			if j.status != ledger.JobQueued || !slices.Contains(actions, j.action) {
				continue
			}
			if best == nil || cmp.Or(j.createdAt.Compare(best.createdAt), cmp.Compare(j.id, best.id)) < 0 {
				best = j
			}
		}
		if best == nil {
			return nil
		}
		m.touch(m.accounts[best.account])
		if best.status != ledger.JobQueued {
			modelStats.add("model:lease_skipped_ended")
			continue
		}
		best.status = ledger.JobRunning
		best.attempts++
		best.leaseExpiresAt = m.now.Add(time.Duration(m.jm.lim.leaseS) * time.Second)
		best.leaseParamsVersion = best.paramsVersion
		m.setHoldExpiry(best, best.leaseExpiresAt.Add(time.Duration(m.jm.lim.graceS)*time.Second))
		m.running(best)
		return best
	}
}

// jobOp finds and touches a job's account: nil and ENotFound for an
// unknown job.
func (m *model) jobOp(id string) (*mJob, outcome) {
	j := m.jm.jobs[id]
	if j == nil {
		return nil, fail(ledger.ENotFound)
	}
	m.touch(m.accounts[j.account])
	return j, outcome{}
}

func (j *mJob) holdsLease(leaseID string) bool {
	return j.status == ledger.JobRunning && j.leaseID == leaseID
}

func (m *model) heartbeat(id, leaseID string) (*mJob, bool, outcome) {
	j, o := m.jobOp(id)
	if j == nil || !j.status.Active() {
		return j, false, o
	}
	if !j.holdsLease(leaseID) {
		return j, false, fail(ledger.EConflict)
	}
	changed := j.leaseParamsVersion != j.paramsVersion
	if changed {
		modelStats.add("model:heartbeat_changed")
	}
	j.leaseParamsVersion = j.paramsVersion
	j.leaseExpiresAt = m.now.Add(time.Duration(m.jm.lim.leaseS) * time.Second)
	m.setHoldExpiry(j, j.leaseExpiresAt.Add(time.Duration(m.jm.lim.graceS)*time.Second))
	m.running(j)
	return j, changed, o
}

func (m *model) updateParams(id string) (*mJob, outcome) {
	j, o := m.jobOp(id)
	if j == nil {
		return j, o
	}
	if !j.status.Active() {
		return j, fail(ledger.EConflict)
	}
	j.paramsVersion++
	if j.status == ledger.JobRunning {
		m.running(j)
	}
	return j, o
}

func (m *model) complete(id, leaseID string, outputs []string) (*mJob, outcome) {
	j, o := m.jobOp(id)
	switch {
	case j == nil:
		return j, o
	case !j.status.Active():
		if j.status == ledger.JobSucceeded && slices.Equal(j.outputs, outputs) {
			return j, o
		}
		return j, fail(ledger.EConflict)
	case !j.holdsLease(leaseID):
		return j, fail(ledger.EConflict)
	case len(outputs) < 1 || int64(len(outputs)) > j.quantity || len(slices.Compact(slices.Sorted(slices.Values(outputs)))) != len(outputs):
		return j, fail(ledger.EInvalid)
	case j.leaseParamsVersion != j.paramsVersion:
		return j, fail(ledger.EConflict)
	}
	m.resolve(j.hold, ledger.HoldCaptured, int64(len(outputs)), "")
	j.status = ledger.JobSucceeded
	j.outputs = slices.Clone(outputs)
	j.charged = j.hold.capturedCredits
	j.leaseID, j.leaseExpiresAt = "", time.Time{}
	j.finishedAt = m.now
	return j, o
}

func (m *model) failJob(id, leaseID, msg string, retryable bool) (*mJob, outcome) {
	j, o := m.jobOp(id)
	switch {
	case j == nil:
		return j, o
	case !j.status.Active():
		if j.status == ledger.JobFailed || j.status == ledger.JobInterrupted {
			return j, o
		}
		return j, fail(ledger.EConflict)
	case !j.holdsLease(leaseID):
		return j, fail(ledger.EConflict)
	}
	j.errMsg = msg
	if retryable && j.attempts < m.jm.lim.attemptsMax {
		m.requeue(j)
		return j, o
	}
	m.endJob(j, ledger.JobFailed, "failed")
	return j, o
}

func (m *model) cancelJob(id string) (*mJob, outcome) {
	j, o := m.jobOp(id)
	switch {
	case j == nil:
		return j, o
	case j.status.Active():
		m.endJob(j, ledger.JobCancelled, "cancelled")
		return j, o
	case j.status == ledger.JobCancelled:
		return j, o
	}
	return j, fail(ledger.EConflict)
}

// ---------------------------------------------------------------------------
// Steps.

// doJobStep runs one job step (k in [0, 25)).
func (h *harness) doJobStep(k int) string {
	switch {
	case k < 6:
		return h.doCreateJob()
	case k < 9:
		return h.doLease()
	case k < 13:
		return h.doWork()
	case k < 16:
		return h.doHeartbeat()
	case k < 18:
		return h.doUpdateParams()
	case k < 20:
		return h.doComplete()
	case k < 22:
		return h.doFailJob()
	case k < 24:
		return h.doCancelJob()
	default:
		return h.doGetJob()
	}
}

// doWork is a worker's round at one instant: a lease, then a heartbeat,
// complete or fail under it.
func (h *harness) doWork() string {
	touched := h.doLease()
	j := h.m.jm.lease0
	if j == nil {
		return touched
	}
	var outputs []string
	for i := range rapid.Int64Range(1, j.quantity).Draw(h.t, "work_outputs") {
		outputs = append(outputs, fmt.Sprintf("ast_%d", i))
	}
	switch uniformGen(5).Draw(h.t, "work_end") {
	case 0:
		return h.heartbeatJob(j.id, j.leaseID)
	case 1:
		return h.failJob(j.id, j.leaseID)
	case 2:
		// The user edits the params while the job runs: completing with the
		// old ones is refused until a heartbeat has told the worker.
		h.updateParams(j.id)
		h.completeJob(j.id, j.leaseID, outputs)
		h.heartbeatJob(j.id, j.leaseID)
	}
	return h.completeJob(j.id, j.leaseID, outputs)
}

// drawJob draws a job id: mostly an active job (a running one, for the
// worker's steps), sometimes any, rarely an unknown one.
func (h *harness) drawJob(label string, worker bool) string {
	ids := h.m.jm.jobIDs
	if len(ids) == 0 || uniformGen(25).Draw(h.t, label+"_bogus") == 0 {
		return "job_bogus"
	}
	if uniformGen(4).Draw(h.t, label+"_active_pref") > 0 {
		var active, running []string
		for _, id := range ids {
			if st := h.m.jm.jobs[id].status; st.Active() {
				active = append(active, id)
				if st == ledger.JobRunning {
					running = append(running, id)
				}
			}
		}
		if worker && len(running) > 0 && rapid.Bool().Draw(h.t, label+"_running_pref") {
			return pick(h.t, label+"_running", running)
		}
		if len(active) > 0 {
			return pick(h.t, label+"_active", active)
		}
	}
	return pick(h.t, label, ids)
}

// drawLease draws the job's live lease mostly, else an earlier one or a
// made-up one.
func (h *harness) drawLease(label, id string) string {
	j := h.m.jm.jobs[id]
	if j == nil {
		return "lease_bogus"
	}
	switch uniformGen(10).Draw(h.t, label+"_kind") {
	case 0:
		return "lease_bogus"
	case 1:
		if len(j.leaseIDs) > 0 {
			return pick(h.t, label+"_old", j.leaseIDs)
		}
	}
	if j.leaseID != "" {
		return j.leaseID
	}
	if len(j.leaseIDs) > 0 {
		return j.leaseIDs[len(j.leaseIDs)-1]
	}
	return "lease_bogus"
}

func (h *harness) jobTouched(id string) string {
	if j := h.m.jm.jobs[id]; j != nil {
		return j.account
	}
	return ""
}

func asJob(h *harness, what string, v engine.Outcome[*ledger.Job]) *ledger.Job {
	if v.Value == nil || v.Replayed {
		h.fatalf("%s: result %+v: want a fresh job", what, v)
	}
	return v.Value
}

func (h *harness) doCreateJob() string {
	t := h.t
	id := h.drawAccount("job_account")
	action := pick(t, "job_action", mJobActions)
	if uniformGen(25).Draw(t, "job_action_bad") == 0 {
		action = "teleport"
	}
	qty := rapid.Int64Range(1, 3).Draw(t, "job_quantity")
	if uniformGen(30).Draw(t, "job_quantity_bad") == 0 {
		qty = pick(t, "job_quantity_bad_value", []int64{0, -1, 101})
	}
	want, mj := h.m.createJob(id, action, qty)
	res, err := h.eng.CreateJob(h.ctx, engine.CreateJobParams{AccountID: id, CreateJobParams: ledger.CreateJobParams{
		Action: action, Quantity: qty, Params: json.RawMessage(`{"v":1}`),
	}})
	what := fmt.Sprintf("create_job %s %d×%s", id, qty, action)
	touched := ""
	if want.code != ledger.EInvalid && want.code != ledger.ENotFound {
		touched = id
	}
	if !h.expectCode(what, want, err) {
		return touched
	}
	j := asJob(h, what, res)
	if _, dup := h.m.jm.jobs[j.ID]; dup || j.ID == "" {
		h.fatalf("%s: job id %q reused", what, j.ID)
	}
	h.m.addJob(mj, j.ID, j.HoldID)
	h.compareJob(what, j, mj)
	return id
}

func (h *harness) doLease() string {
	actions := rapid.SliceOfNDistinct(rapid.SampledFrom(mJobActions), 1, len(mJobActions), rapid.ID).Draw(h.t, "lease_actions")
	want := h.m.lease(actions)
	got, err := h.eng.Lease(h.ctx, actions, 0)
	what := fmt.Sprintf("lease %v", actions)
	h.m.jm.lease0 = nil
	if !h.expectCode(what, outcome{}, err) {
		return ""
	}
	if want == nil {
		if got != nil {
			h.fatalf("%s: engine leased %s, model has no queued job", what, got.ID)
		}
		modelStats.add("lease:none")
		return ""
	}
	if got == nil || got.ID != want.id {
		h.fatalf("%s: engine leased %+v, model %s", what, got, want.id)
	}
	if got.LeaseID == "" || slices.Contains(want.leaseIDs, got.LeaseID) {
		h.fatalf("%s: lease id %q empty or reused", what, got.LeaseID)
	}
	want.leaseID = got.LeaseID
	want.leaseIDs = append(want.leaseIDs, got.LeaseID)
	h.m.jm.lease0 = want
	h.compareJob(what, got, want)
	return want.account
}

func (h *harness) doHeartbeat() string {
	id := h.drawJob("heartbeat_job", true)
	return h.heartbeatJob(id, h.drawLease("heartbeat_lease", id))
}

func (h *harness) heartbeatJob(id, lease string) string {
	want, changed, o := h.m.heartbeat(id, lease)
	res, err := h.eng.Heartbeat(h.ctx, engine.JobOp{JobID: id, LeaseID: lease})
	what := fmt.Sprintf("heartbeat %s lease %s", id, lease)
	if !h.expectCode(what, o, err) {
		return h.jobTouched(id)
	}
	if res.Changed != changed {
		h.fatalf("%s: engine changed=%v, model %v", what, res.Changed, changed)
	}
	h.compareJob(what, &res.Job, want)
	return want.account
}

func (h *harness) doUpdateParams() string {
	return h.updateParams(h.drawJob("params_job", false))
}

func (h *harness) updateParams(id string) string {
	want, o := h.m.updateParams(id)
	var params json.RawMessage
	if want != nil {
		params = json.RawMessage(fmt.Sprintf(`{"v":%d}`, want.paramsVersion))
	}
	res, err := h.eng.UpdateJobParams(h.ctx, engine.JobOp{JobID: id, Params: params})
	what := "update_params " + id
	if !h.expectCode(what, o, err) {
		return h.jobTouched(id)
	}
	h.compareJob(what, asJob(h, what, res), want)
	return want.account
}

func (h *harness) doComplete() string {
	t := h.t
	id := h.drawJob("complete_job", true)
	lease := h.drawLease("complete_lease", id)
	var outputs []string
	if j := h.m.jm.jobs[id]; j != nil && !j.status.Active() && len(j.outputs) > 0 && rapid.Bool().Draw(t, "complete_repeat") {
		outputs = slices.Clone(j.outputs) // a repeat: answered, charged once
	} else {
		for i := range rapid.IntRange(0, 4).Draw(t, "complete_outputs") {
			outputs = append(outputs, fmt.Sprintf("ast_%d", i))
		}
		if len(outputs) > 1 && uniformGen(10).Draw(t, "complete_duplicate") == 0 {
			outputs[1] = outputs[0]
		}
	}
	return h.completeJob(id, lease, outputs)
}

func (h *harness) completeJob(id, lease string, outputs []string) string {
	want, o := h.m.complete(id, lease, outputs)
	res, err := h.eng.CompleteJob(h.ctx, engine.JobOp{JobID: id, LeaseID: lease, Outputs: outputs})
	what := fmt.Sprintf("complete %s lease %s outputs %v", id, lease, outputs)
	if !h.expectCode(what, o, err) {
		return h.jobTouched(id)
	}
	h.compareJob(what, asJob(h, what, res), want)
	return want.account
}

func (h *harness) doFailJob() string {
	id := h.drawJob("fail_job", true)
	return h.failJob(id, h.drawLease("fail_lease", id))
}

func (h *harness) failJob(id, lease string) string {
	t := h.t
	retryable := rapid.Bool().Draw(t, "fail_retryable")
	msg := pick(t, "fail_message", []string{"out of memory", "model crashed"})
	want, o := h.m.failJob(id, lease, msg, retryable)
	res, err := h.eng.FailJob(h.ctx, engine.JobOp{JobID: id, LeaseID: lease, Error: msg, Retryable: retryable})
	what := fmt.Sprintf("fail %s lease %s retryable %v", id, lease, retryable)
	if !h.expectCode(what, o, err) {
		return h.jobTouched(id)
	}
	h.compareJob(what, asJob(h, what, res), want)
	return want.account
}

func (h *harness) doCancelJob() string {
	id := h.drawJob("cancel_job", false)
	want, o := h.m.cancelJob(id)
	res, err := h.eng.CancelJob(h.ctx, engine.JobOp{JobID: id})
	what := "cancel " + id
	if !h.expectCode(what, o, err) {
		return h.jobTouched(id)
	}
	h.compareJob(what, asJob(h, what, res), want)
	return want.account
}

func (h *harness) doGetJob() string {
	id := h.drawJob("get_job", false)
	want, o := h.m.jobOp(id)
	got, err := h.eng.GetJob(h.ctx, id)
	what := "get_job " + id
	if !h.expectCode(what, o, err) {
		return ""
	}
	h.compareJob(what, &got, want)
	return want.account
}

// ---------------------------------------------------------------------------
// Checks.

func (h *harness) compareJob(what string, got *ledger.Job, want *mJob) {
	h.t.Helper()
	outputs := got.Outputs
	if outputs == nil {
		outputs = []string{}
	}
	running := want.status == ledger.JobRunning
	if got.ID != want.id || got.AccountID != want.account || got.Action != want.action || got.Quantity != want.quantity ||
		got.Status != want.status || got.HoldID != want.hold.id || got.CostCredits != want.hold.amount ||
		got.ChargedCredits != want.charged || got.Attempts != want.attempts || got.ParamsVersion != want.paramsVersion ||
		!slices.Equal(outputs, want.outputs) || got.Error != want.errMsg ||
		!got.CreatedAt.Equal(want.createdAt) || !got.FinishedAt.Equal(want.finishedAt) ||
		(running && (got.LeaseID != want.leaseID || !got.LeaseExpiresAt.Equal(want.leaseExpiresAt) || got.LeaseParamsVersion != want.leaseParamsVersion)) ||
		(!running && (got.LeaseID != "" || !got.LeaseExpiresAt.IsZero())) {
		h.fatalf("%s: engine job %+v\nmodel job %s account=%s action=%s qty=%d status=%s hold=%s cost=%d charged=%d attempts=%d params_version=%d/%d outputs=%v error=%q lease=%s until %s created=%s finished=%s",
			what, *got, want.id, want.account, want.action, want.quantity, want.status, want.hold.id, want.hold.amount, want.charged,
			want.attempts, want.paramsVersion, want.leaseParamsVersion, want.outputs, want.errMsg, want.leaseID,
			want.leaseExpiresAt.Format(time.RFC3339Nano), want.createdAt.Format(time.RFC3339Nano), want.finishedAt.Format(time.RFC3339Nano))
	}
	// Charged once, for what was delivered.
	if want := mPrices[got.Action] * int64(len(got.Outputs)); got.Status == ledger.JobSucceeded && got.ChargedCredits != want {
		h.fatalf("%s: job %s charged %d for %d outputs, want %d", what, got.ID, got.ChargedCredits, len(got.Outputs), want)
	}
}

// checkStoredJobs compares an account's stored jobs with the model: the
// active ones (light) or every one (full).
func (h *harness) checkStoredJobs(id string, active map[string]*ledger.Job, full bool) {
	want := h.m.accountJobs(id, !full)
	if !full {
		if len(active) != len(want) {
			h.fatalf("account %s: %d stored active jobs, model has %d", id, len(active), len(want))
		}
		for _, mj := range want {
			j := active[mj.id]
			if j == nil {
				h.fatalf("account %s: active job %s not stored", id, mj.id)
			}
			h.compareJob("stored job of "+id, j, mj)
		}
		return
	}
	for _, mj := range want {
		j, err := h.store.GetJob(h.ctx, mj.id)
		if err != nil {
			h.fatalf("stored job %s: %v", mj.id, err)
		}
		h.compareJob("stored job of "+id, j, mj)
	}
	js, err := h.store.ListJobs(h.ctx, ledger.ListJobsParams{AccountID: id, Limit: len(want) + 1})
	if err != nil {
		h.fatalf("list jobs of %s: %v", id, err)
	}
	if len(js) != len(want) {
		h.fatalf("account %s: %d stored jobs, model has %d", id, len(js), len(want))
	}
}

// jobTargets are the instants where a job rule changes: lease expiries.
func (m *model) jobTargets() []time.Time {
	var out []time.Time
	for _, id := range m.jm.jobIDs {
		if j := m.jm.jobs[id]; j.status == ledger.JobRunning && j.leaseExpiresAt.After(m.now) {
			out = append(out, j.leaseExpiresAt)
		}
	}
	return out
}

// restartSweeps adds what the engine pushes on its expiry heap when it
// starts, beside the pending holds: the lease expiries of running jobs.
func (m *model) restartSweeps() {
	for _, id := range m.jm.jobIDs {
		if j := m.jm.jobs[id]; j.status == ledger.JobRunning {
			m.running(j)
		}
	}
}
